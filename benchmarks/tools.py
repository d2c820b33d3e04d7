"""One fit adapter per tool, all solving the same problem from the same start (zeros).

Matched regularisation, with ``n`` training rows and unit weights:

- softreg: ``SoftmaxRegression(alpha=alpha)``;
- scikit-learn: ``LogisticRegression(C=1 / (alpha * n))``: its objective divided by ``C n``
  is ``R``;
- PyTorch: ``nn.Linear`` + mean ``cross_entropy`` + ``(alpha / 2) ‖W‖²`` added explicitly to
  the loss, on the weight only (optimizer ``weight_decay`` is not used: it would also
  penalise the bias), minimised by full-batch ``LBFGS(line_search_fn="strong_wolfe")``;
- cyanure (Mairal's C++ toolbox): ``Classifier(loss="multiclass-logistic", penalty="l2",
  lambda_1=alpha)``, which minimises ``R`` itself (intercept not penalised: on standardised
  digits at alpha 1e-4 it reaches softreg's optimum to a relative gap of 2.7e-12), with its
  duality-gap stopping test switched off (``tol=0``) like every other tool's;
- mlpack (C++, L-BFGS): ``softmax_regression(lambda_=alpha, no_intercept=True)``. Its
  ``lambda_`` penalises the whole parameter matrix, the intercept column included (checked on
  digits: at its optimum ``∇_b`` of the mean cross-entropy is ``-lambda_ · b``, not 0), so with
  an intercept it minimises another problem; without one it minimises ``R`` with ``b = 0``
  exactly. It therefore races on that objective only, against softreg with
  ``fit_intercept=False`` (``benchmarks.run``'s cases ``…/no-intercept``). Its L-BFGS keeps its
  own stopping tests (the Python binding exposes no other), and mlpack 4.8 runs it to them
  whatever ``max_iterations`` says (on digits, α = 1e-2: the same R to 1e-10 at every
  ``max_iterations`` from 0 to 1000), so each of its fits is a full one and its time to each
  target is that of a full fit: an upper bound.

Each adapter is timed end to end (input checks, conversions, the solver) by the worker, which
runs it with ``max_iter`` set by the ladder and every tolerance at its minimum, so that only
``max_iter`` stops it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from unittest.mock import patch

import numpy as np
import scipy.sparse as sp

# L-BFGS memory for PyTorch: torch's default of 100 pairs would hold 200 copies of the
# parameters (9 GB on sector); 20 is what softreg's L-BFGS keeps (scikit-learn keeps 10).
TORCH_HISTORY_SIZE = 20

# scikit-learn's newton-cholesky forms the dense Hessian of (n_features + 1) · n_classes
# parameters at every iteration, n_samples · n_params² flops: on fashion-mnist (7850
# parameters) one iteration took over 60 s here. Above this many parameters it is left out.
NEWTON_CHOLESKY_MAX_PARAMS = 2_000


class TraceStopError(Exception):
    """Raised by a trace (see ``benchmarks.worker.Trace``) to end a traced fit early."""


def _sklearn_parameters(flat, n_classes, n_features):
    """scikit-learn's ravelled multinomial parameters as (coef, intercept).

    Its lbfgs and newton-cg solvers optimise ``w.reshape((n_classes, -1), order="F")``, the
    intercept in the last column (``sklearn.linear_model._logistic``).
    """
    matrix = np.reshape(flat, (n_classes, -1), order="F")
    if matrix.shape[1] != n_features + 1:
        raise ValueError(f"scikit-learn's parameters have shape {matrix.shape}")
    return matrix[:, :n_features].copy(), matrix[:, n_features].copy()


@contextmanager
def _sklearn_traced(solver, trace, n_classes, n_features):
    """Report each iterate of scikit-learn's lbfgs or newton-cg to ``trace(count, parameters)``.

    lbfgs: scipy's ``minimize`` is given a callback, called with each iterate (``callback(xk)``,
    after sklearn's own, if any). newton-cg: its ``grad_hess`` runs once per outer iteration,
    at the iterate; the wrapper reports that iterate first. Nothing else changes.
    """
    if trace is None:
        yield
        return
    from sklearn.linear_model import _logistic

    def report(count, flat):
        trace(count, lambda: _sklearn_parameters(flat, n_classes, n_features))

    if solver == "lbfgs":
        original = _logistic.optimize.minimize

        def minimize(fun, x0, *args, callback=None, **kwargs):
            count = [0]

            def each(xk):
                count[0] += 1
                report(count[0], xk)
                if callback is not None:
                    callback(xk)

            return original(fun, x0, *args, callback=each, **kwargs)

        with patch.object(_logistic.optimize, "minimize", minimize):
            yield
    elif solver == "newton-cg":
        original = _logistic._newton_cg

        def newton_cg(grad_hess, *args, **kwargs):
            count = [-1]

            def traced(w, *more):
                count[0] += 1
                if count[0] > 0:
                    report(count[0], w)
                return grad_hess(w, *more)

            return original(traced, *args, **kwargs)

        with patch.object(_logistic, "_newton_cg", newton_cg):
            yield
    else:
        raise ValueError(f"no trace for scikit-learn's {solver!r}")


@dataclass
class Fitted:
    """The result of one fit: parameters and the tool's own ``predict_proba``."""

    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int
    predict_proba: Callable


@dataclass(frozen=True)
class Tool:
    name: str
    family: str  # "softreg", "sklearn" or "torch"
    fit: Callable  # (X, y, n_classes, alpha, max_iter, **options) -> Fitted
    uses_threads: bool = True
    intercept: bool = True  # False: races only on the objective without intercepts
    full_fits: bool = False  # True: ignores max_iter, every fit runs to the tool's own stop
    traced: bool = False  # True: fit(..., trace=...) reports each iterate (one fit, no ladder)

    def unsupported_reason(self, n_features: int, n_classes: int, sparse=False) -> str | None:
        """Why this tool cannot run on a data set of this shape (None when it can)."""
        if self.name == "mlpack" and sparse:
            return "mlpack's softmax_regression binding takes dense matrices only"
        if self.name == "sklearn-newton-cholesky":
            n_params = (n_features + 1) * n_classes
            if n_params > NEWTON_CHOLESKY_MAX_PARAMS:
                return (
                    f"each iteration forms a dense Hessian of {n_params}² entries "
                    f"({n_params**2 * 8 / 1e9:.1f} GB; over 60 s per iteration at 7850 "
                    "parameters on this machine)"
                )
        return None


@contextmanager
def _softreg_traced(trace):
    """Report each iterate of a softreg fit to ``trace(count, parameters)``.

    softreg's solvers hand every iterate to ``Monitor.record`` (which keeps ``history_`` and
    tests the stopping rule); the wrapper reports the iterate first, unpacked into
    ``(coef, intercept)`` by the fit's ``Objective``.
    """
    if trace is None:
        yield
        return
    from softreg import SoftmaxRegression, _solvers

    fitting = {}
    minimize, record = SoftmaxRegression._minimize, _solvers.Monitor.record

    def traced_minimize(self, objective, *args, **kwargs):
        fitting["objective"] = objective
        return minimize(self, objective, *args, **kwargs)

    def parameters(theta):
        coef, intercept = fitting["objective"].unpack(theta)
        coef = np.array(coef, dtype=np.float64)
        if intercept is None:
            return coef, np.zeros(coef.shape[0])
        return coef, np.array(intercept, dtype=np.float64)

    def traced_record(self, evaluation, theta):
        count = len(self.objective)  # the iterate's number (0: the start)
        if count > 0:
            trace(count, lambda: parameters(theta))
        return record(self, evaluation, theta)

    with (
        patch.object(SoftmaxRegression, "_minimize", traced_minimize),
        patch.object(_solvers.Monitor, "record", traced_record),
    ):
        yield


# softreg's tol in the race: the smallest target. Its Newton-CG sizes the last inner solves
# from the certificate and tol (``softreg._solvers._forcing``); at tol=1e-300 it would solve
# them tighter than any target asks. It may stop itself once it certifies 1e-9; the shared
# evaluator still grades every fit.
SOFTREG_RACE_TOL = 1e-9


def _fit_softreg(
    X, y, n_classes, alpha, max_iter, tol=SOFTREG_RACE_TOL, fit_intercept=True, trace=None
):
    from softreg import SoftmaxRegression

    with warnings.catch_warnings(), _softreg_traced(trace):
        warnings.simplefilter("ignore")
        model = SoftmaxRegression(
            alpha=alpha, tol=tol, max_iter=max_iter, fit_intercept=fit_intercept
        ).fit(X, y)
    return Fitted(model.coef_, model.intercept_, int(model.n_iter_), model.predict_proba)


def _sklearn_fitter(solver):
    def fit(X, y, n_classes, alpha, max_iter, trace=None):
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(
            C=1.0 / (alpha * X.shape[0]),
            solver=solver,
            tol=0.0,
            max_iter=max_iter,
            random_state=0,
        )
        with warnings.catch_warnings(), _sklearn_traced(solver, trace, n_classes, X.shape[1]):
            warnings.simplefilter("ignore")
            model.fit(X, y)
        return Fitted(
            model.coef_, model.intercept_, int(np.max(model.n_iter_)), model.predict_proba
        )

    return fit


def _torch_input(X, dtype):
    import torch

    if sp.issparse(X):
        return torch.sparse_csr_tensor(
            torch.from_numpy(X.indptr.astype(np.int64)),
            torch.from_numpy(X.indices.astype(np.int64)),
            torch.from_numpy(X.data.astype(dtype)),
            size=X.shape,
        )
    return torch.from_numpy(np.asarray(X, dtype=dtype))


def _torch_logits(model, X_torch):
    import torch

    if X_torch.layout == torch.sparse_csr:
        return torch.sparse.mm(X_torch, model.weight.T) + model.bias
    return model(X_torch)


def _fit_torch(X, y, n_classes, alpha, max_iter, trace=None):
    import torch
    from torch.nn import functional

    dtype = np.float32 if X.dtype == np.float32 else np.float64
    X_torch = _torch_input(X, dtype)
    y_torch = torch.from_numpy(np.asarray(y, dtype=np.int64))
    model = torch.nn.Linear(X.shape[1], n_classes, dtype=X_torch.dtype)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    optimizer = torch.optim.LBFGS(
        model.parameters(),
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        history_size=TORCH_HISTORY_SIZE,
        line_search_fn="strong_wolfe",
    )

    def parameters():
        return model.weight.detach().numpy().copy(), model.bias.detach().numpy().copy()

    def closure():
        if trace is not None:
            # The point about to be evaluated, counted by the iteration under way (a
            # line-search trial; the strong Wolfe search most often accepts its first).
            trace(optimizer.state[optimizer._params[0]].get("n_iter", 0), parameters)
        optimizer.zero_grad()
        loss = functional.cross_entropy(_torch_logits(model, X_torch), y_torch)
        loss = loss + 0.5 * alpha * torch.sum(model.weight * model.weight)
        loss.backward()
        return loss

    optimizer.step(closure)
    n_iter = optimizer.state[optimizer._params[0]].get("n_iter", 0)

    def predict_proba(X_new):
        with torch.no_grad():
            logits = _torch_logits(model, _torch_input(X_new, dtype))
            return torch.softmax(logits, dim=1).numpy()

    return Fitted(
        model.weight.detach().numpy().copy(),
        model.bias.detach().numpy().copy(),
        int(n_iter),
        predict_proba,
    )


def _fit_cyanure(X, y, n_classes, alpha, max_iter):
    from cyanure.estimators import Classifier

    model = Classifier(
        loss="multiclass-logistic",
        penalty="l2",
        lambda_1=alpha,
        fit_intercept=True,
        tol=0.0,
        max_iter=max_iter,
        verbose=False,
        # Its duality gap is computed every this many iterations to test tol: never, here.
        duality_gap_interval=10**9,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    coef = np.asarray(model.coef_)
    if coef.shape != (n_classes, X.shape[1]):  # (n_features, n_classes) in some versions
        coef = coef.T
    n_iter = int(np.max(getattr(model, "n_iter_", max_iter)))
    return Fitted(coef, np.asarray(model.intercept_).ravel(), n_iter, model.predict_proba)


def mlpack_parameters(model) -> np.ndarray:
    """The parameter matrix of a fitted mlpack ``SoftmaxRegressionType``, (K, D [+ 1]).

    Its pickled state is mlpack's binary archive: a 4-byte class version, the matrix's rows
    and columns (8 bytes each) and 8 more, then the entries in column-major order, then the
    number of classes, ``lambda_`` and the intercept flag. With an intercept, column 0 holds it.
    """
    state = model.__getstate__()
    rows, cols = (int(v) for v in np.frombuffer(state, np.uint64, count=2, offset=4))
    values = np.frombuffer(state, np.float64, count=rows * cols, offset=28)
    return values.reshape((rows, cols), order="F").copy()


def _fit_mlpack(X, y, n_classes, alpha, max_iter, fit_intercept=True):
    import mlpack

    if fit_intercept:
        raise ValueError(
            "mlpack's lambda_ penalises the intercept: it races only on the objective without "
            "intercepts (fit_intercept=False)"
        )
    output = mlpack.softmax_regression(
        training=np.asarray(X, dtype=np.float64),
        labels=np.asarray(y, dtype=np.int64),
        number_of_classes=n_classes,
        lambda_=alpha,
        max_iterations=max_iter,
        no_intercept=True,
    )
    model = output["output_model"]
    coef = mlpack_parameters(model)
    if coef.shape != (n_classes, X.shape[1]):
        raise ValueError(f"mlpack's parameters have shape {coef.shape}, expected (K, D)")

    def predict_proba(X_new):
        test = np.asarray(X_new, dtype=np.float64)
        return mlpack.softmax_regression(input_model=model, test=test)["probabilities"]

    # The binding does not report the iterations made: max_iter is an upper bound.
    return Fitted(coef, np.zeros(n_classes), max_iter, predict_proba)


# The order in which a case runs them: softreg first, then the usual peers, so that the
# budget of the slower solvers can be set from the fastest time seen (see benchmarks.run).
TOOLS = {
    "softreg": Tool("softreg", "softreg", _fit_softreg, traced=True),
    "sklearn-lbfgs": Tool("sklearn-lbfgs", "sklearn", _sklearn_fitter("lbfgs"), traced=True),
    "torch-lbfgs": Tool("torch-lbfgs", "torch", _fit_torch, traced=True),
    "sklearn-newton-cg": Tool(
        "sklearn-newton-cg", "sklearn", _sklearn_fitter("newton-cg"), traced=True
    ),
    "sklearn-newton-cholesky": Tool(
        "sklearn-newton-cholesky", "sklearn", _sklearn_fitter("newton-cholesky")
    ),
    # sag and saga are single-threaded Cython loops without BLAS: timed once, not per thread count.
    "sklearn-sag": Tool("sklearn-sag", "sklearn", _sklearn_fitter("sag"), uses_threads=False),
    "sklearn-saga": Tool("sklearn-saga", "sklearn", _sklearn_fitter("saga"), uses_threads=False),
    "cyanure": Tool("cyanure", "cyanure", _fit_cyanure),
    # Raced on the objective without intercepts only (see the module's docstring).
    "mlpack": Tool("mlpack", "mlpack", _fit_mlpack, intercept=False, full_fits=True),
}
# The tools that race on the objective without intercepts (``Case(fit_intercept=False)``).
NO_INTERCEPT_TOOLS = ("softreg", "mlpack")
