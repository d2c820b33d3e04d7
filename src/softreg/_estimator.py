"""The estimators: softmax regression and its squared-loss sibling, scikit-learn style.

Both build an :class:`~softreg._objective.Objective` over the row blocks of a dataset and
hand it to a solver from :mod:`softreg._solvers`; everything specific to the data (labels,
soft labels, weights, dtypes, feature names) is settled here, at the boundary. In-memory
arrays are wrapped in an :class:`~softreg._sources.ArrayDataset`, so ``fit(X, y)`` and
``fit(dataset)`` (files, Dask) run the same steps (see :mod:`softreg._datapath`).
"""

from __future__ import annotations

import os
import warnings
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from softreg import _datapath as datapath
from softreg import _params as rules
from softreg._checkpoint import Checkpoint
from softreg._checks import check_probability, check_sample_weight, column_magnitude
from softreg._kernels import _softmax, log_softmax
from softreg._model_io import register_estimator, save_model
from softreg._partial_fit import OnlineMixin
from softreg._sources import ArrayDataset, Dataset
from softreg._threads import blas_threads

# The objective (numba's compiled kernels) and the solvers (scipy.optimize) are imported inside
# the fits: a model loaded to predict or to be inspected never needs them
# (tests/test_startup.py).

__all__ = ["LinearRegression", "SeparableDataWarning", "SoftmaxRegression"]

# "auto" picks Newton-CG while the parameters are few enough that its Hessian-vector products
# pay off; beyond that, L-BFGS. `python -m benchmarks.solver_choice --budget 20` (quiet
# machine, 2 cores; times to the default certificate): Newton-CG faster on letter alpha 1e-4
# (442 parameters, 0.20 vs 0.29 s), 500000 × 54 × 7 (385: 0.72 vs 1.42 s, 0.64 vs 1.08 s),
# digits alpha 1e-2 (650); L-BFGS faster on 100000 × 784 × 10 (7850: 3.09 vs 3.86 s, 1.77 vs
# 2.47 s) and 20000 × 500 × 100 (50100: 10 s vs > 20 s, 1.36 vs 2.01 s). The exception is
# Fashion-MNIST at alpha 1e-2 (7850, ill-conditioned pixels): Newton-CG 13.6 s, L-BFGS > 20 s.
# Beyond 2000 parameters Newton-CG is still chosen where L-BFGS loses: on sparse data (sector,
# 5.8 M parameters, alpha 1e-2: Newton-CG 32 s, L-BFGS > 40 s on a machine loaded 8x; a
# 11314 × 56436 × 20 tf-idf set: 2.8 against 9.1 s, where scipy's L-BFGS-B spends more per
# iteration on its own bookkeeping than a pass costs), and where the Kronecker preconditioner
# applies (ill-conditioned dense features, see softreg._preconditioner; the benchmarks' pixel-
# like 5000 × 300 × 20, 6020 parameters, loaded machine: 2.97 s against > 60 s at alpha 1e-4,
# 2.31 against 6.87 s at 1e-2).
_AUTO_NEWTON_MAX_PARAMS = 2_000

# Default relative tolerance on the certified gap, by training dtype. In float32 the gradient
# itself carries rounding noise of ~1e-7 per entry, and the bound grows as ‖∇R‖²/(2α): on
# digits (alpha 1e-4) float32 fits stop at certified gaps of 4e-5 to 3e-4 relative while their
# true gap is ~1e-9. float32 therefore stops at 1e-3; float64 certifies 1e-9 on the same data.
_DEFAULT_TOL = {"float64": 1e-6, "float32": 1e-3}


def _is_dask(obj):
    """Whether ``obj`` is a Dask array, DataFrame or Series, without importing Dask."""
    return type(obj).__module__.partition(".")[0] in ("dask", "dask_expr")


def _from_dask(X, y, sample_weight):
    """Dask input as a :class:`~softreg._dask.DaskDataset`, then the dataset path."""
    if not _is_dask(X):
        return X, y, sample_weight
    from softreg._dask import DaskDataset  # Dask is imported for Dask input only

    return DaskDataset.from_collections(X, y, sample_weight), None, None


class SeparableDataWarning(UserWarning):
    """The training data are linearly separable, so ``alpha=0`` has no finite optimum."""


_COMMON_PARAMS = {
    "alpha": rules.real(0),
    "fit_intercept": rules.boolean(),
    "solver": rules.options("auto", "gd", "lbfgs", "newton-cg"),
    "tol": rules.either(rules.none(), rules.real(0, low_open=True)),
    "max_iter": rules.integer(1),
    "learning_rate": rules.either(rules.none(), rules.real(0, low_open=True)),
    "warm_start": rules.boolean(),
    "standardize": rules.boolean(),
    "verbose": rules.integer(0),
    "callback": rules.either(rules.none(), (callable, "a callable")),
    "checkpoint": rules.either(
        rules.none(),
        (lambda v: isinstance(v, str | os.PathLike | Checkpoint), "a file path or a Checkpoint"),
    ),
}
# Parameters that do not change the optimum: a checkpoint written under other values resumes.
_NOT_FINGERPRINTED = ("tol", "max_iter", "verbose", "callback", "checkpoint", "warm_start")


# The largest feature magnitude a fit accepts, by training dtype. A fit multiplies up to four
# feature-sized factors: a Hessian-vector product Xᵀ D X v along v ~ ∇R ~ x, and the
# certificate ‖∇R‖²/(2α) squares the gradient. Beyond the fourth root of the largest number
# these overflow (measured: Newton-CG's products overflow from 1e90 in float64 and 1e15 in
# float32), and such fits end with an infinite or meaningless gap bound; below it every
# product is finite, and a fit that cannot certify its optimum says so (it does not converge).
_MAX_FEATURE_MAGNITUDE = {
    name: float(np.finfo(name).max) ** 0.25 for name in ("float32", "float64")
}


def _check_scale(values, dtype, what):
    """Raise ``ValueError`` naming the first column of ``values`` whose magnitude is too large.

    ``what(j)`` names column ``j`` in the message.
    """
    _check_magnitude(column_magnitude(values), dtype, what)


def _check_magnitude(magnitude, dtype, what):
    """:func:`_check_scale` from the columns' largest magnitudes (a dataset's first pass)."""
    limit = _MAX_FEATURE_MAGNITUDE[np.dtype(dtype).name]
    too_large = np.flatnonzero(magnitude > limit)
    if too_large.size:
        j = int(too_large[0])
        raise ValueError(
            f"{what(j)} holds values as large as {float(magnitude[j]):.3g} in magnitude; the "
            f"fit's {np.dtype(dtype).name} arithmetic overflows beyond {limit:.3g} (its "
            "products multiply up to four such values). Scale the data, e.g. with "
            "sklearn.preprocessing.StandardScaler."
        )


class _LinearModel(BaseEstimator):
    """Fitting machinery shared by both estimators."""

    def _validate_features(self, X, reset):
        X = validate_data(
            self,
            X,
            reset=reset,
            accept_sparse="csr",
            dtype=[np.float64, np.float32],
            ensure_all_finite=True,
        )
        if reset:  # fitting: refuse data whose scale would overflow the fit's arithmetic
            _check_scale(X, X.dtype, self._feature_column)
        return X

    def _check_dataset_scale(self, dataset):
        """The magnitude check of ``_validate_features``, from a file dataset's first pass."""
        magnitude = getattr(dataset, "feature_magnitude", None)
        if magnitude is not None:
            _check_magnitude(magnitude, dataset.dtype, self._feature_column)

    def _feature_column(self, j):
        names = getattr(self, "feature_names_in_", None)
        return f"Feature column {j}" + ("" if names is None else f" ({names[j]!r})")

    def _resolve_solver(self, objective):
        if self.solver != "auto":
            return self.solver
        if objective.n_params <= _AUTO_NEWTON_MAX_PARAMS or objective.source.sparse:
            return "newton-cg"
        return "newton-cg" if objective.preconditioner_pays() else "lbfgs"

    def _run(self, loss, source, n_samples, start):
        """Minimise the objective from ``start = (coef, intercept)`` (None: zeros); set the
        fitted attributes common to both estimators."""
        from softreg._objective import Objective

        objective = Objective(
            loss, source, alpha=self._smooth_alpha(), fit_intercept=self.fit_intercept
        )
        theta0 = np.zeros(objective.n_params) if start is None else objective.pack(*start)
        dtype = np.dtype(source.dtype)
        self._dtype_name = dtype.name
        self.tol_ = self.tol if self.tol is not None else _DEFAULT_TOL[dtype.name]
        self.solver_ = self._resolve_solver(objective)
        with blas_threads(n_samples, source.n_features, objective.n_outputs):
            result = self._minimize(
                objective, theta0, checkpoint=self._checkpoint_for(objective, dtype, n_samples)
            )
        coef, intercept = objective.unpack(result.theta)
        self.coef_ = np.ascontiguousarray(coef, dtype=dtype)  # (sparse fits store it transposed)
        self.intercept_ = (
            intercept.astype(dtype) if intercept is not None else np.zeros(coef.shape[0], dtype)
        )
        self.n_iter_ = result.n_iter
        self.history_ = result.history
        self.objective_ = result.evaluation.objective
        self.optimality_gap_bound_ = result.evaluation.gap_bound
        self.converged_ = result.converged
        if not result.converged:
            warnings.warn(self._convergence_message(result), ConvergenceWarning, stacklevel=3)
        return objective

    def _smooth_alpha(self):
        """The L2 strength of the smooth part of the objective."""
        return self.alpha

    def _minimize(self, objective, theta0, checkpoint):
        from softreg._solvers import minimize

        return minimize(
            objective,
            theta0,
            solver=self.solver_,
            tol=self.tol_,
            max_iter=self.max_iter,
            callback=self._progress_callback(),
            learning_rate=self.learning_rate,
            checkpoint=checkpoint,
        )

    def _dataset(self, X, y, sample_weight):
        """``X`` as a :class:`Dataset` whose features the model adopts (``fit(dataset)``)."""
        datapath.check_dataset_call(X, y, sample_weight, f"{type(self).__name__}.fit")
        self.n_features_in_ = X.n_features
        if X.feature_names is not None:
            self.feature_names_in_ = np.asarray(X.feature_names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return X

    def _scaling(self, dataset, summary):
        """``(mean or None, scale)`` for ``standardize=True``, else None.

        Features are centred only where an intercept can absorb the shift and the data are
        dense (centring would fill sparse rows in).
        """
        if not self.standardize:
            return None
        return datapath.feature_scaling(summary, self.fit_intercept and not dataset.sparse)

    def _fold_scaling(self, scaling):
        """Turn the fitted coefficients of standardised features into those of raw ones."""
        if scaling is not None:
            coef, intercept = datapath.unscale(self.coef_, self.intercept_, *scaling)
            self.coef_ = coef.astype(self.coef_.dtype)
            self.intercept_ = intercept.astype(self.intercept_.dtype)

    def _checkpoint_for(self, objective, dtype, n_samples):
        """The :class:`Checkpoint` of this fit, its fingerprint naming the problem, or None."""
        if self.checkpoint is None:
            return None
        checkpoint = self.checkpoint
        if not isinstance(checkpoint, Checkpoint):
            checkpoint = Checkpoint(checkpoint)
        params = {
            name: sorted((str(k), v) for k, v in value.items())
            if isinstance(value, dict)
            else value
            for name, value in self.get_params().items()
            if name not in _NOT_FINGERPRINTED
        }
        return checkpoint.with_fingerprint(
            estimator=type(self).__name__,
            **params,
            solver_used=self.solver_,
            dtype=np.dtype(dtype).name,
            n_samples=n_samples,
            n_features=objective.source.n_features,
            n_params=objective.n_params,
            classes_=[str(c) for c in getattr(self, "classes_", [])],
        )

    def _progress_callback(self):
        if not self.verbose:
            return self.callback
        user = self.callback

        def report(info):
            print(
                f"iter {info.iteration:4d}  R = {info.objective:.12g}  "
                f"|grad| = {info.gradient_norm:.3e}  gap <= {info.gap_bound:.3e}"
            )
            if user is not None:
                user(info)

        return report

    def _convergence_message(self, result):
        name = type(self).__name__
        if self.alpha > 0:
            where = (
                f"the certified gap bound is {result.evaluation.gap_bound:.3g}, above "
                f"tol * |R| = {self.tol_ * abs(result.evaluation.objective):.3g}"
            )
        else:
            where = f"the largest gradient entry is {np.abs(result.evaluation.gradient).max():.3g}"
        if "precision" in result.message or "stopped early" in result.message:
            advice = (
                f"tol={self.tol_:g} is below what {self._dtype_name} arithmetic can certify on "
                "this problem: "
            )
            remedies = ["raise tol"] + (
                ["use float64 data"] if self._dtype_name == "float32" else []
            )
        else:
            advice = ""
            remedies = [
                "Increase max_iter",
                "scale the features (e.g. StandardScaler)",
                "raise tol",
            ]
        if self.solver_ not in ("newton-cg", "newton-cd"):
            remedies.append("try solver='newton-cg'")
        *first, last = remedies
        advice += (f"{', '.join(first)} or {last}" if first else last) + "."
        return (
            f"{name} with solver={self.solver_!r} stopped after {result.n_iter} iterations "
            f"({result.message}); {where}. {advice}"
        )

    def _decision(self, X):
        if self._servable(X):
            # Any NaN or inf in X reaches every logit of its row (inf·w is ±inf or NaN), so
            # finite logits vouch for X without a pass over it; non-finite ones (bad input, or
            # finite input that overflows) go through the full validation, which decides.
            with np.errstate(all="ignore"):
                scores = self._block_decision(X)
                if np.isfinite(np.sum(scores)):
                    return scores
        check_is_fitted(self)
        X = self._validate_features(X, reset=False)
        return self._block_decision(X)

    def _servable(self, X) -> bool:
        """Whether ``X`` is what :meth:`_validate_features` would return unchanged if finite.

        scikit-learn's validation costs ~50-100 µs a call whatever the size, most of the time
        to predict one row, and one more pass over ``X`` in a batch. A native float64 or
        float32 ndarray or CSR matrix with rows and the fitted number of columns comes out of
        it as is, when the model was fitted without feature names (otherwise it checks them,
        and warns) and its entries are finite (:meth:`_decision` checks that on the logits).
        """
        return (
            (type(X) is np.ndarray or (sp.issparse(X) and X.format == "csr"))
            and (X.dtype == np.float64 or X.dtype == np.float32)
            and X.ndim == 2
            and X.shape[0] > 0
            and X.shape[1] == getattr(self, "n_features_in_", -1)
            and hasattr(self, "coef_")
            and not hasattr(self, "feature_names_in_")
        )

    def _block_decision(self, X):
        """``X Wᵀ + b`` for validated rows ``X`` (dense or CSR)."""
        coef = np.atleast_2d(self.coef_).astype(X.dtype, copy=False)
        scores = _sparse_rows_times(X, coef) if sp.issparse(X) else X @ coef.T
        scores += np.atleast_1d(self.intercept_).astype(X.dtype, copy=False)
        return scores

    def _map_rows(self, X, transform):
        """``transform`` of the decision values of ``X``: an array, or a dataset streamed."""
        if _is_dask(X):  # lazy: a Dask array computed on the workers
            check_is_fitted(self)
            dataset = _from_dask(X, None, None)[0]
            datapath._check_features(self, dataset)
            return dataset.map_rows(lambda rows: transform(self._block_decision(rows)))
        if isinstance(X, Dataset):
            check_is_fitted(self)
            return datapath.stream_rows(self, X, lambda rows: transform(self._block_decision(rows)))
        return transform(self._decision(X))

    def _warm_start(self, objective_shape, scaling):
        """The previous fit's ``(coef, intercept)`` as a start, or None.

        With ``standardize`` they are turned back into coefficients of the standardised
        features: ``W σ`` and ``b + W μ``.
        """
        if not (self.warm_start and hasattr(self, "coef_")):
            return None
        coef = np.atleast_2d(self.coef_).astype(np.float64)
        if coef.shape != objective_shape:
            return None
        intercept = np.atleast_1d(self.intercept_).astype(np.float64)
        if scaling is not None:
            mean, scale = scaling
            if mean is not None:
                intercept = intercept + coef @ mean
            coef = coef * scale
        return coef, intercept

    def save(self, path):
        """Write the fitted model to ``path`` in softreg's pickle-free model format."""
        save_model(self, path)


def _check_sample_weight(sample_weight, n_samples, dtype):
    weight = check_sample_weight(sample_weight, (n_samples,), dtype)
    if sample_weight is None:
        return None
    with np.errstate(over="ignore"):  # an infinite total is reported below
        total = weight.sum(dtype=np.float64)
    if not total > 0:
        raise ValueError("`sample_weight` must have a positive sum; got all zeros.")
    if total > np.finfo(dtype).max:
        # The weighted sums would overflow; the fit depends only on the weights' ratios.
        raise ValueError(
            f"`sample_weight` must sum to a finite {np.dtype(dtype).name}; got weights up to "
            f"{float(weight.max()):.3g} summing to {total:.3g}. Only their ratios matter: "
            "divide them by a constant."
        )
    return weight


@register_estimator
class SoftmaxRegression(ClassifierMixin, OnlineMixin, _LinearModel):
    r"""Softmax (multinomial logistic) regression trained to a certified optimum.

    Minimises, over ``coef_`` ``W`` (n_classes × n_features) and ``intercept_`` ``b``,

    .. math::

        R(W, b) = \frac{1}{\sum_i s_i} \sum_i s_i \,\mathrm{CE}\big(y_i,
        \mathrm{softmax}(W x_i + b)\big) + \alpha \Big(\frac{1 - \rho}{2}
        \lVert W \rVert_F^2 + \rho\, \Omega(W)\Big)

    with sample weights ``s`` (times class weights), ``ρ = l1_ratio`` and the intercept not
    penalised. ``Ω`` is ``Σ_kj |W_kj|`` or, with ``l1_norm="grouped"``, ``Σ_j ‖W[:, j]‖₂``
    (a feature is kept or dropped for all classes at once). With ``l1_ratio=0`` this is
    scikit-learn's ``LogisticRegression`` with ``C = 1 / (alpha · Σ s)``; with ``l1_ratio > 0``
    its elastic net at the same ``C`` and ``l1_ratio``.

    Parameters
    ----------
    alpha : float, default=1e-4
        L2 penalty strength on ``coef_``. With ``alpha > 0`` the fit carries a certificate:
        ``optimality_gap_bound_`` bounds ``R(W, b) - R*`` from above.
    fit_intercept : bool, default=True
    l1_ratio : float in [0, 1], default=0.0
        The share ``ρ`` of ``Ω`` in the penalty (elastic net; 1 is the pure L1 or group-lasso
        penalty). Above 0 the fit needs ``alpha > 0`` and ``solver="newton-cd"`` (what
        ``"auto"`` picks), and coefficients are exactly zero where the optimum has zeros.
    l1_norm : {"elementwise", "grouped"}, default="elementwise"
        ``Ω``: the L1 norm of every coefficient, or the sum over features of the Euclidean
        norm of their column ``W[:, j]`` (glmnet's grouped multinomial penalty).
    solver : {"auto", "gd", "lbfgs", "newton-cg", "newton-cd"}, default="auto"
        ``"gd"`` is the notes' update ``W := W - η ∇R``; ``"lbfgs"`` is scipy's L-BFGS;
        ``"newton-cg"`` is truncated Newton with exact Hessian-vector products from the
        softmax Jacobian ``diag(p) - p pᵀ``; ``"newton-cd"`` is proximal Newton whose quadratic
        models are minimised by coordinate descent, with gap-safe screening of features
        (float64 data), the solver for ``l1_ratio > 0`` (it holds the rows in memory, see
        :meth:`fit`; no checkpoints). ``"auto"`` picks ``"newton-cd"`` when
        ``l1_ratio > 0``; otherwise ``"newton-cg"`` up to 2000 parameters
        (``n_classes × (n_features + 1)``), on sparse ``X`` and where the features are
        ill-conditioned enough for its preconditioner to pay, ``"lbfgs"`` otherwise.
    tol : float or None, default=None
        With ``alpha > 0``: stop when the certified bound on ``R - R*`` is at most
        ``tol · |R|``. With ``alpha = 0``: stop when every gradient entry is at most ``tol``
        in absolute value. None means 1e-6 for float64 data and 1e-3 for float32 data,
        whose gradient rounding noise limits what the bound can certify (the true gap of a
        float32 fit is typically far smaller); the value used is ``tol_``.
    max_iter : int, default=1000
    learning_rate : float or None, default=None
        Only for ``solver="gd"``: a fixed step ``η``, or None for Armijo backtracking
        from the Barzilai–Borwein step. Also :meth:`partial_fit`'s base step (None: 0.02).
    class_weight : dict, "balanced" or None, default=None
        Multiplies each sample's weight by the weight of its class (for soft labels: by
        ``Σ_k y_ik · class_weight[k]``).
    warm_start : bool, default=False
        Start from the previous fit's coefficients when the shapes agree.
    standardize : bool, default=False
        Fit on features standardised with the weighted means and standard deviations of a
        first pass (``(x - μ) / σ``; sparse data and fits without intercept are only
        divided by ``σ``), then fold the scaling back into ``coef_`` and ``intercept_`` so
        that the model takes raw features. This is ``StandardScaler`` that also works out of
        core. ``alpha`` then penalises the standardised coefficients, and ``objective_`` and
        ``optimality_gap_bound_`` certify that standardised problem. With ``l1_ratio > 0``
        the penalty on a raw coefficient is thereby weighted by its feature's deviation:
        ``Ω(W diag(σ))``, e.g. ``Σ_kj σ_j |W_kj|`` (glmnet's ``standardize=TRUE``), so
        features are selected whatever their units; zeros stay exact zeros when folded, and
        the centring goes into the unpenalised intercept.
    label_smoothing : float in [0, 1), default=0.0
        Train on ``(1 - ε) y + ε / n_classes`` instead of ``y``.
    classes : array-like or None, default=None
        The class labels of the columns when ``y`` is a matrix of soft labels (default
        ``0 .. n_classes-1``). With 1-D ``y`` it must equal the labels present.
    verbose : int, default=0
        Print one line per iteration when positive.
    callback : callable or None, default=None
        Called after every iteration with an object carrying ``iteration``, ``objective``,
        ``gradient_norm``, ``gap_bound``, ``time``, and ``passes`` / ``rows`` (the passes
        over the data so far and the rows they read).
    checkpoint : str, path-like or None, default=None
        A file where the solver's state is saved atomically after every iteration. When it
        exists, ``fit`` resumes from it (a checkpoint written for other data or other
        hyper-parameters, ``tol`` and ``max_iter`` aside, is refused). Gradient descent and
        Newton-CG resume exactly; L-BFGS resumes from the saved coefficients with an empty
        memory. The file is left in place after the fit; delete it when done.

    Attributes
    ----------
    coef_ : ndarray of shape (n_classes, n_features)
    intercept_ : ndarray of shape (n_classes,)
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of str, when fitted on a DataFrame with string column names
    n_iter_ : int
    history_ : dict of ndarray
        ``"objective"``, ``"gradient_norm"``, ``"gap_bound"`` and ``"time"`` (seconds since
        the fit started) per iteration, entry 0 being the starting point. ``"newton-cd"``
        adds ``"screened"`` (features proven zero for every class and dropped) and
        ``"sweeps"`` (coordinate-descent sweeps); its ``"gradient_norm"`` is the norm of the
        least-norm subgradient.
    objective_ : float
        ``R`` at the solution.
    optimality_gap_bound_ : float
        Certified upper bound on ``R(coef_, intercept_) - R*``; ``inf`` when ``alpha = 0``.
    converged_ : bool
    solver_ : str
        The solver used (``"auto"`` resolved), or ``"online-adam"`` after :meth:`partial_fit`,
        which also sets ``n_iter_`` to its steps, ``objective_`` to NaN,
        ``optimality_gap_bound_`` to inf and ``converged_`` to False: nothing certifies an
        online model.
    screened_features_ : ndarray of int
        Only with ``solver_ == "newton-cd"``: the features that gap-safe screening proved to
        have zero coefficients for every class at the optimum (a certificate, not a
        heuristic), dropped during the fit.
    n_samples_seen_ : int
        Rows trained on: those of :meth:`fit`, plus those of every :meth:`partial_fit`
        call (a row passed twice counts twice).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from softreg import SoftmaxRegression
    >>> X, y = load_iris(return_X_y=True)
    >>> model = SoftmaxRegression(alpha=1e-2).fit(X, y)
    >>> model.optimality_gap_bound_ <= 1e-6 * model.objective_
    True
    >>> float(model.predict_proba(X[:1]).sum())
    1.0
    """

    _parameter_table: ClassVar[dict] = {
        **_COMMON_PARAMS,
        "solver": rules.options("auto", "gd", "lbfgs", "newton-cg", "newton-cd"),
        "l1_ratio": rules.real(0, 1),
        "l1_norm": rules.options(*rules.L1_NORMS),
        "class_weight": rules.either(
            rules.none(), rules.options("balanced"), (lambda v: isinstance(v, dict), "a dict")
        ),
        "label_smoothing": rules.real(0, 1),
        "classes": rules.anything("array-like or None"),
    }

    def __init__(
        self,
        alpha=1e-4,
        *,
        l1_ratio=0.0,
        l1_norm="elementwise",
        fit_intercept=True,
        solver="auto",
        tol=None,
        max_iter=1000,
        learning_rate=None,
        class_weight=None,
        warm_start=False,
        standardize=False,
        label_smoothing=0.0,
        classes=None,
        verbose=0,
        callback=None,
        checkpoint=None,
    ):
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.l1_norm = l1_norm
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.standardize = standardize
        self.label_smoothing = label_smoothing
        self.classes = classes
        self.verbose = verbose
        self.callback = callback
        self.checkpoint = checkpoint

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- the elastic-net penalty (l1_ratio > 0 or solver="newton-cd") ------------------------
    def _uses_newton_cd(self):
        return self.solver == "newton-cd" or (self.solver == "auto" and self.l1_ratio > 0)

    def _check_penalty(self):
        if self.l1_ratio > 0 and self.solver not in ("auto", "newton-cd"):
            raise ValueError(
                f"solver={self.solver!r} handles only the L2 penalty; l1_ratio={self.l1_ratio!r} "
                "needs solver='newton-cd' (or 'auto')."
            )
        if self._uses_newton_cd() and getattr(self, "checkpoint", None) is not None:
            raise ValueError(
                "solver='newton-cd' (used for l1_ratio > 0) writes no checkpoints; got "
                f"checkpoint={self.checkpoint!r}. Drop it."
            )
        if self._uses_newton_cd() and not self.alpha > 0:
            raise ValueError(
                "solver='newton-cd' (used for l1_ratio > 0) needs alpha > 0; got "
                f"alpha={self.alpha!r}."
            )

    def _resolve_solver(self, objective):
        return "newton-cd" if self._uses_newton_cd() else super()._resolve_solver(objective)

    def _penalty(self):
        from softreg._penalties import ElasticNet

        return ElasticNet(float(self.alpha), float(self.l1_ratio), self.l1_norm)

    def _smooth_alpha(self):
        return self.alpha * (1.0 - self.l1_ratio) if self._uses_newton_cd() else self.alpha

    def _minimize(self, objective, theta0, checkpoint):
        if not self._uses_newton_cd():
            self.__dict__.pop("screened_features_", None)  # from an earlier newton-cd fit
            return super()._minimize(objective, theta0, checkpoint)
        from softreg._proximal import proximal_newton
        from softreg._solvers import Monitor

        monitor = Monitor(tol=self.tol_, strongly_convex=True, callback=self._progress_callback())
        result, screened = proximal_newton(
            objective,
            self._penalty(),
            theta0,
            monitor,
            max_iter=self.max_iter,
            # The gap-safe rule trusts the certificate to the last digit: float64 sums only.
            screening=objective.dtype == np.float64,
        )
        self.screened_features_ = np.flatnonzero(screened)
        return result

    def _targets(self, y, n_samples, dtype):
        """Validated labels (1-D) or class probabilities (2-D, in ``dtype``) from ``y``."""
        y = np.asarray(y) if not sp.issparse(y) else y
        if sp.issparse(y):
            raise TypeError("`y` must be a dense array of labels or of class probabilities.")
        if y.ndim == 2 and y.shape[1] >= 2:
            if y.shape[0] != n_samples:
                raise ValueError(
                    f"`y` must have one row per sample ({n_samples}); got {y.shape[0]} rows."
                )
            return np.ascontiguousarray(check_probability(y, "y").astype(dtype, copy=False))
        y = column_or_1d(y, warn=True)
        if y.shape[0] != n_samples:
            raise ValueError(
                f"`y` must have one label per sample ({n_samples}); got {y.shape[0]} labels."
            )
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            index = int(np.flatnonzero(~np.isfinite(y))[0])
            raise ValueError(f"`y` must hold finite labels; got {y[index]} at index {index}.")
        check_classification_targets(y)
        return y

    def _classes(self, dataset, summary):
        """``classes_`` from the scan (labels) or from ``classes`` (soft-label columns)."""
        if dataset.target_ndim == 2:
            n_columns = len(summary.class_totals)
            classes = np.arange(n_columns) if self.classes is None else np.asarray(self.classes)
            if classes.shape != (n_columns,) or len(np.unique(classes)) != n_columns:
                raise ValueError(
                    f"`classes` must list {n_columns} distinct labels, one per column of the "
                    f"soft-label matrix `y`; got {classes!r}."
                )
            return classes
        classes = summary.classes
        if len(classes) < 2:
            raise ValueError(
                "SoftmaxRegression needs samples of at least 2 classes in `y`; "
                f"got {len(classes)} class{'' if len(classes) == 1 else 'es'}"
                f"{', ' + repr(classes.tolist()[0]) if len(classes) else ''}."
            )
        if self.classes is not None and not np.array_equal(np.asarray(self.classes), classes):
            raise ValueError(
                "`classes` is for soft labels; with 1-D `y` it must equal the labels present "
                f"{classes.tolist()!r}; got {list(self.classes)!r}."
            )
        return classes

    def fit(self, X, y=None, sample_weight=None):
        """Fit to features ``X`` and labels (1-D) or class probabilities (2-D) ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), or a dataset
            float32 input is trained in float32, anything else in float64. A dataset
            (:func:`softreg.open_dataset`) carries its own labels and sample weights and is
            streamed: ``y`` and ``sample_weight`` must then be None. With ``l1_ratio > 0``
            (``solver="newton-cd"``, which reads the rows by columns) its rows are gathered
            into memory once, in its dtype, dense or CSR as they are, when what the fit
            then holds (the rows twice, labels, weights and four float64 arrays of
            n_samples × n_classes) fits in ``X.memory_limit`` bytes, by default half the
            machine's or the container's memory; otherwise ``MemoryLimitError`` (a
            ``RuntimeError``) says how many bytes it needs (:mod:`softreg._gather`).
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        rules.validate_params(self, self._parameter_table)
        self._check_penalty()
        if self.label_smoothing >= 1:
            raise ValueError(
                "The 'label_smoothing' parameter of SoftmaxRegression must be in [0, 1); "
                f"got {self.label_smoothing!r}."
            )
        X, y, sample_weight = _from_dask(X, y, sample_weight)
        if isinstance(X, Dataset):
            return self._fit_dataset(self._dataset(X, y, sample_weight))
        if y is None:
            raise ValueError("SoftmaxRegression requires y to be passed, but the target y is None.")
        X = self._validate_features(X, reset=True)
        y = self._targets(y, X.shape[0], X.dtype)
        weight = _check_sample_weight(sample_weight, X.shape[0], X.dtype)
        return self._fit_dataset(ArrayDataset(X, y, weight))

    def _fit_dataset(self, dataset):
        """Scan, settle classes, class weights and the start, then fit on ``dataset``."""
        summary = dataset.scan(moments=self.standardize)
        _check_rows(summary)
        self._check_dataset_scale(dataset)
        classes = self._classes(dataset, summary)
        hard = dataset.target_ndim == 1
        per_class = datapath.class_factors(
            self.class_weight, classes, summary.class_counts, summary.n_samples
        )
        scaling = self._scaling(dataset, summary)
        rows_scale = scaling
        if self._uses_newton_cd():  # it reads columns: the rows in memory, standardised there
            from softreg._gather import gather

            dataset = gather(dataset, summary.n_samples, len(classes), scale=scaling)
            rows_scale = None
        source = dataset.source(
            classes=classes if hard else None, class_weight=per_class, scale=rows_scale
        )
        # Each class's total weight (sample_weight × class_weight × class probability).
        if hard or per_class is None:
            mass = summary.class_totals * (1.0 if per_class is None else per_class)
        else:
            mass = source.reduce(datapath.target_sums)[0]
        if not mass.sum() > 0:
            raise ValueError("The weights (sample_weight × class_weight) sum to zero.")
        # With one class left the infimum R = 0 is approached as its intercept grows without
        # bound: no minimiser, as with a single class in `y` (smoothing gives every class mass).
        present = np.flatnonzero(mass > 0)
        if len(present) < 2 and not self.label_smoothing:
            raise ValueError(
                "SoftmaxRegression needs at least 2 classes with positive weight in `y` "
                "(sample_weight × class_weight × class probability); "
                f"got 1 class, {classes[present[0]].item()!r}."
            )
        absent = np.flatnonzero(mass <= 0)
        if absent.size and self.fit_intercept and not self.label_smoothing:
            # Such a class is best predicted with probability 0: its unpenalised intercept would
            # run to -inf, so R has an infimum but no minimiser (and no certificate).
            raise ValueError(
                "Every class needs positive total weight (sample_weight × class_weight × class "
                f"probability) when fit_intercept=True; classes {classes[absent].tolist()!r} "
                "have none, so their intercepts would run to -inf. Drop them (and their rows), "
                "give them weight, or set label_smoothing > 0."
            )
        n_classes, n_features = len(classes), dataset.n_features
        self.classes_ = classes
        from softreg._objective import SoftmaxLoss

        loss = SoftmaxLoss(n_classes, float(self.label_smoothing))
        start = self._warm_start((n_classes, n_features), scaling)
        if start is None and self.fit_intercept:
            prior = datapath.log_prior(mass, n_classes, loss.label_smoothing)
            start = np.zeros((n_classes, n_features)), prior
        self._run(loss, source, summary.n_samples, start)
        self.n_samples_seen_ = summary.n_samples
        # Adding one constant to every intercept leaves softmax, and so R, unchanged: report the
        # representative with zero mean, whatever drift rounding caused along that flat direction.
        self.intercept_ -= self.intercept_.mean(dtype=np.float64)
        if self.alpha == 0 and hard:
            self._warn_if_separable(source)
        self._fold_scaling(scaling)
        return self

    def _warn_if_separable(self, source):
        # A strictly separating linear rule scaled by c → ∞ drives every sample's CE to 0, so
        # with alpha = 0 no finite minimiser exists when the fit classifies every row right.
        (wrong,) = source.reduce(datapath.misclassified_weight, self.coef_, self.intercept_)
        if wrong == 0:
            warnings.warn(
                "The training data are linearly separable: with alpha=0 the objective has no "
                "finite minimiser and the coefficients grow until max_iter. Set alpha > 0.",
                SeparableDataWarning,
                stacklevel=3,
            )

    def decision_function(self, X):
        """Logits ``X Wᵀ + b``, shape (n_samples, n_classes); for two classes the log-odds.

        With two classes this is scikit-learn's binary convention: the 1-D log-odds
        ``z_1 - z_0`` of ``classes_[1]`` against ``classes_[0]``, positive where ``classes_[1]``
        is predicted.
        """
        return self._map_rows(X, _log_odds)

    def predict_proba(self, X):
        """Class probabilities ``softmax(X Wᵀ + b)``, shape (n_samples, n_classes)."""
        # The logits are a validated float array: the kernel without its argument checks.
        return self._map_rows(X, lambda logits: _softmax(logits, axis=1))

    def predict_log_proba(self, X):
        """Log-probabilities ``logits - logsumexp(logits)``, exact even where ``p`` underflows."""
        return self._map_rows(X, lambda logits: log_softmax(logits, axis=1))

    def predict(self, X):
        """The most probable class label per row."""
        return self._map_rows(X, lambda logits: self.classes_[np.argmax(logits, axis=1)])

    def _predict_block(self, X):
        """:meth:`predict` of validated rows ``X``."""
        return self.classes_[np.argmax(self._block_decision(X), axis=1)]

    def score(self, X, y=None, sample_weight=None):
        """Accuracy on ``(X, y)``, or on a dataset (streamed); unseen labels are an error."""
        check_is_fitted(self)
        X, y, sample_weight = _from_dask(X, y, sample_weight)
        if isinstance(X, Dataset):
            datapath.check_dataset_call(X, y, sample_weight, "score")
            return datapath.streamed_accuracy(self, X)
        y = column_or_1d(y)
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(
                f"`y` contains labels {unseen.tolist()!r} the model was not trained on; "
                f"its classes are {self.classes_.tolist()!r}."
            )
        return super().score(X, y, sample_weight=sample_weight)


# Above this many products (stored entries × classes), CSR rows are multiplied by a
# C-ordered copy of Wᵀ instead of gathering W's columns: the copy then costs less than the
# gather's temporary array (see _sparse_rows_times).
_GATHER_MAX_PRODUCTS = 2**20


def _sparse_rows_times(X, coef):
    """``X Wᵀ`` for CSR rows ``X`` and dense ``W`` (n_classes × n_features), C-ordered.

    scipy multiplies a CSR matrix by a C-ordered dense one only, so ``X @ W.T`` copies all of
    ``W``: 14.8 ms for one row of sector (55197 features, 105 classes) against 0.11 ms for
    scikit-learn, whose ``coef_`` is already transposed for the product. For a few rows the
    columns of ``W`` that the stored entries touch are gathered instead (``W[:, j]`` times
    ``x_ij``) and summed per row: work in the stored entries, not in ``W``'s size. Duplicate
    or unsorted indices need no care: each stored entry adds its own product.
    """
    n_rows = X.shape[0]
    if X.nnz * coef.shape[0] > _GATHER_MAX_PRODUCTS:
        return np.asarray(X @ np.ascontiguousarray(coef.T))
    scores = np.zeros((coef.shape[0], n_rows), dtype=np.result_type(X.dtype, coef.dtype))
    starts = X.indptr[:-1]
    filled = np.diff(X.indptr) > 0
    if X.nnz:
        products = coef[:, X.indices] * X.data
        scores[:, filled] = np.add.reduceat(products, starts[filled], axis=1)
    return np.ascontiguousarray(scores.T)


def _log_odds(logits):
    """scikit-learn's binary decision values: ``z_1 - z_0`` for two classes, else the logits."""
    return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits


def _check_rows(summary):
    if summary.n_samples == 0:
        raise ValueError("The dataset has no rows to fit on.")
    if not summary.weight_total > 0:
        raise ValueError("`sample_weight` must have a positive sum; got all zeros.")


@register_estimator
class LinearRegression(RegressorMixin, _LinearModel):
    r"""Squared-loss linear regression (ridge when ``alpha > 0``), the notes' starting point.

    .. math::

        R(W, b) = \frac{1}{\sum_i s_i} \sum_i s_i \tfrac12 \lVert W x_i + b - y_i \rVert^2
        + \frac{\alpha}{2} \lVert W \rVert_F^2

    The same objective machinery as :class:`SoftmaxRegression` with the identity link: the
    gradient in the outputs is ``ŷ - y``. Equivalent to scikit-learn's ``Ridge`` with
    ``alpha_ridge = alpha · Σ s``.

    Parameters are those of :class:`SoftmaxRegression` without the classification ones;
    the default ``alpha`` is 0 (ordinary least squares).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
    intercept_ : float or ndarray of shape (n_targets,)
    n_iter_, history_, objective_, optimality_gap_bound_, converged_, solver_
        As in :class:`SoftmaxRegression`.

    Examples
    --------
    >>> import numpy as np
    >>> from softreg import LinearRegression
    >>> X = np.array([[0.0], [1.0], [2.0]])
    >>> model = LinearRegression(alpha=0.0, tol=1e-12).fit(X, 2 * X[:, 0] + 1)
    >>> np.round([model.coef_[0], model.intercept_], 8)
    array([2., 1.])
    """

    _parameter_table: ClassVar[dict] = _COMMON_PARAMS

    def __init__(
        self,
        alpha=0.0,
        *,
        fit_intercept=True,
        solver="auto",
        tol=None,
        max_iter=1000,
        learning_rate=None,
        warm_start=False,
        standardize=False,
        verbose=0,
        callback=None,
        checkpoint=None,
    ):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.warm_start = warm_start
        self.standardize = standardize
        self.verbose = verbose
        self.callback = callback
        self.checkpoint = checkpoint

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y=None, sample_weight=None):
        """Fit to features ``X`` and targets ``y`` of shape (n_samples,) or (n_samples, k).

        ``X`` may be a dataset (:func:`softreg.open_dataset`), streamed, which carries its own
        targets and sample weights (``y`` and ``sample_weight`` must then be None).
        """
        rules.validate_params(self, self._parameter_table)
        X, y, sample_weight = _from_dask(X, y, sample_weight)
        if isinstance(X, Dataset):
            return self._fit_dataset(self._dataset(X, y, sample_weight))
        if y is None:
            raise ValueError("LinearRegression requires y to be passed, but the target y is None.")
        X = self._validate_features(X, reset=True)
        y_arr = np.asarray(y)
        if y_arr.ndim not in (1, 2) or y_arr.shape[0] != X.shape[0]:
            raise ValueError(
                f"`y` must have shape (n_samples,) or (n_samples, n_targets) with n_samples="
                f"{X.shape[0]}; got shape {y_arr.shape}."
            )
        if y_arr.dtype.kind not in "biuf":
            # "Unknown label type" is the phrase scikit-learn's checks look for.
            raise ValueError(
                "Unknown label type: `y` must hold real numbers (a float, int or bool dtype); "
                f"got dtype {y_arr.dtype}."
            )
        if not np.all(np.isfinite(y_arr)):
            raise ValueError("`y` must hold finite numbers (no NaN or inf).")
        targets = y_arr.reshape(X.shape[0], -1).astype(np.float64)
        _check_scale(targets, X.dtype, lambda j: "`y`" if y_arr.ndim == 1 else f"Column {j} of `y`")
        weight = _check_sample_weight(sample_weight, X.shape[0], X.dtype)
        return self._fit_dataset(ArrayDataset(X, y_arr, weight))

    def _fit_dataset(self, dataset):
        summary = dataset.scan(moments=self.standardize, labels=False)
        _check_rows(summary)
        self._check_dataset_scale(dataset)
        self._single_output = dataset.target_ndim == 1
        n_outputs, n_features = len(summary.class_totals), dataset.n_features
        scaling = self._scaling(dataset, summary)
        source = dataset.source(scale=scaling)
        start = self._warm_start((n_outputs, n_features), scaling)
        from softreg._objective import SquaredLoss

        self._run(SquaredLoss(n_outputs), source, summary.n_samples, start)
        self._fold_scaling(scaling)
        if self._single_output:
            self.coef_ = self.coef_[0]
            self.intercept_ = self.intercept_[0]
        return self

    def predict(self, X):
        """Predictions ``X Wᵀ + b``; a dataset is streamed."""
        out = self._map_rows(X, lambda values: values)
        return out[:, 0] if self._single_output else out

    def score(self, X, y=None, sample_weight=None):
        """``R²`` of the predictions on ``(X, y)``, or on a dataset (streamed)."""
        X, y, sample_weight = _from_dask(X, y, sample_weight)
        if isinstance(X, Dataset):
            check_is_fitted(self)
            datapath.check_dataset_call(X, y, sample_weight, "score")
            return datapath.streamed_r2(self, X)
        return super().score(X, y, sample_weight=sample_weight)
