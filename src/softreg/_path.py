"""Regularisation paths: certified fits over a decreasing grid of ``alpha``, warm-started.

The grid starts, as glmnet's does, at ``alpha_max``: the smallest ``alpha`` at which every
coefficient is zero. At ``W = 0`` with the best intercept the predicted probabilities are the
weighted class frequencies ``ȳ`` (uniform without intercept), and ``W = 0`` is optimal exactly
when the data gradient ``G₀ = (1/S) Σ_i s_i (ȳ - y_i) x_iᵀ`` satisfies ``‖G₀_g‖ ≤ αρ`` for
every group ``g`` (an entry, or a feature's column): ``alpha_max = max_g ‖G₀_g‖ / ρ``. For
``ρ < 1e-3`` the grid starts at the value for ``ρ = 1e-3`` (scikit-learn's and glmnet's
convention: a pure L2 path has no such point).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array

from softreg import _datapath as datapath
from softreg._estimator import SoftmaxRegression, _check_sample_weight
from softreg._gather import gathered_arrays
from softreg._penalties import ElasticNet

__all__ = ["RegularizationPath", "alpha_max", "regularization_path"]

# The smallest l1_ratio the grid's start is computed for (glmnet, scikit-learn).
_MIN_L1_RATIO = 1e-3


@dataclass(frozen=True)
class RegularizationPath:
    """The fits along a path, one row per ``alpha`` (decreasing).

    Attributes
    ----------
    alphas : ndarray of shape (n_alphas,)
    coefs : ndarray of shape (n_alphas, n_classes, n_features)
    intercepts : ndarray of shape (n_alphas, n_classes)
    objectives : ndarray of shape (n_alphas,)
        ``F`` at each fit.
    gap_bounds : ndarray of shape (n_alphas,)
        The certified bound on ``F - F*`` of each fit.
    n_nonzero : ndarray of int of shape (n_alphas, n_classes)
        Non-zero coefficients per class.
    n_iter : ndarray of int of shape (n_alphas,)
    converged : ndarray of bool of shape (n_alphas,)
    classes : ndarray of shape (n_classes,)
    l1_ratio : float
    l1_norm : str
    """

    alphas: np.ndarray
    coefs: np.ndarray
    intercepts: np.ndarray
    objectives: np.ndarray
    gap_bounds: np.ndarray
    n_nonzero: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    classes: np.ndarray
    l1_ratio: float
    l1_norm: str

    @property
    def n_features_selected(self) -> np.ndarray:
        """Features with a non-zero coefficient for some class, per ``alpha``."""
        return np.any(self.coefs != 0, axis=1).sum(axis=1)


def alpha_max(
    X,
    y,
    *,
    l1_ratio=1.0,
    l1_norm="elementwise",
    sample_weight=None,
    fit_intercept=True,
    label_smoothing=0.0,
    class_weight=None,
):
    """The smallest ``alpha`` at which every coefficient of the fit is exactly zero.

    Parameters are those of :class:`~softreg.SoftmaxRegression`; ``y`` holds labels or
    class probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> from softreg import SoftmaxRegression
    >>> X = np.array([[1.0, 0.5], [-1.0, 0.2], [0.5, -0.3], [-0.2, 1.0]])
    >>> y = np.array([0, 1, 0, 1])
    >>> top = alpha_max(X, y)
    >>> bool(np.all(SoftmaxRegression(alpha=top, l1_ratio=1.0).fit(X, y).coef_ == 0))
    True
    >>> bool(np.any(SoftmaxRegression(alpha=0.9 * top, l1_ratio=1.0).fit(X, y).coef_ != 0))
    True
    """
    model = SoftmaxRegression(l1_ratio=l1_ratio, l1_norm=l1_norm)
    X = check_array(X, accept_sparse="csr", dtype=[np.float64, np.float32])
    y = model._targets(y, X.shape[0], X.dtype)
    weight = _check_sample_weight(sample_weight, X.shape[0], X.dtype)
    if y.ndim == 1:
        classes, codes = np.unique(y, return_inverse=True)
        Y = np.eye(len(classes))[codes]
    else:
        Y = np.asarray(y, dtype=np.float64)
        classes = np.arange(Y.shape[1])
    K = len(classes)
    if label_smoothing:
        Y = (1 - label_smoothing) * Y + label_smoothing / K
    s = np.ones(X.shape[0]) if weight is None else np.asarray(weight, dtype=np.float64)
    per_class = datapath.class_factors(class_weight, classes, Y.sum(axis=0), X.shape[0])
    if per_class is not None:
        s = s * (Y @ per_class)
    S = s.sum()
    start = s @ Y / S if fit_intercept else np.full(K, 1 / K)
    residual = (start - Y) * s[:, None]
    gradient = np.asarray((X.T @ residual).T) / S if sp.issparse(X) else residual.T @ X / S
    norms = ElasticNet(1.0, 1.0, l1_norm).dual_norms(gradient)
    return float(np.max(norms, initial=0.0)) / max(float(l1_ratio), _MIN_L1_RATIO)


def alpha_grid(top, n_alphas, eps):
    """``n_alphas`` values from ``top`` down to ``eps · top``, evenly spaced in log scale."""
    return top * np.logspace(0, np.log10(eps), n_alphas)


def regularization_path(
    X,
    y=None,
    *,
    alphas=None,
    n_alphas=30,
    eps=1e-3,
    l1_ratio=1.0,
    l1_norm="elementwise",
    sample_weight=None,
    **params,
):
    """Fit :class:`~softreg.SoftmaxRegression` along a decreasing grid of ``alpha``.

    Each fit starts from the previous one's coefficients (warm start) and is certified:
    ``gap_bounds[i]`` bounds its distance to the optimum at ``alphas[i]``.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_samples, n_features), or a dataset
        A dataset (:func:`softreg.open_dataset`) carries its own labels and weights (``y``
        and ``sample_weight`` must then be None); its rows are gathered into memory once,
        within its ``memory_limit`` (:mod:`softreg._gather`).
    y : array-like of shape (n_samples,) or (n_samples, n_classes)
    alphas : array-like or None, default=None
        The grid (sorted into decreasing order). None: ``n_alphas`` values from
        :func:`alpha_max` down to ``eps · alpha_max``, evenly spaced in log scale.
    n_alphas : int, default=30
    eps : float, default=1e-3
    l1_ratio : float in [0, 1], default=1.0
    l1_norm : {"elementwise", "grouped"}, default="elementwise"
    sample_weight : array-like of shape (n_samples,), default=None
    **params
        Other parameters of :class:`~softreg.SoftmaxRegression` (``tol``, ``max_iter``,
        ``fit_intercept``, ``class_weight``, ``label_smoothing``, ...).

    Returns
    -------
    RegularizationPath

    Raises
    ------
    ValueError
        For an empty or non-positive ``alphas``, ``n_alphas < 1`` or ``eps`` outside (0, 1).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from softreg import regularization_path
    >>> X, y = load_iris(return_X_y=True)
    >>> path = regularization_path(X, y, n_alphas=5, l1_ratio=1.0)
    >>> path.n_features_selected.tolist()  # none at alpha_max, more as alpha drops
    [0, 1, 2, 4, 4]
    >>> bool(np.all(path.gap_bounds <= 1e-6 * path.objectives))
    True
    """
    X, y, sample_weight, _ = gathered_arrays(X, y, sample_weight, "regularization_path")
    if y is None:
        raise ValueError(
            "regularization_path needs labels: pass `y`, or a dataset with a target as `X`; "
            "got y=None."
        )
    if alphas is None:
        if isinstance(n_alphas, bool) or not isinstance(n_alphas, int | np.integer) or n_alphas < 1:
            raise ValueError(f"`n_alphas` must be an integer >= 1; got {n_alphas!r}.")
        if not 0 < eps < 1:
            raise ValueError(f"`eps` must be in (0, 1); got {eps!r}.")
        keys = ("fit_intercept", "label_smoothing", "class_weight")
        top = alpha_max(
            X,
            y,
            l1_ratio=l1_ratio,
            l1_norm=l1_norm,
            sample_weight=sample_weight,
            **{key: params[key] for key in keys if key in params},
        )
        if not top > 0:
            raise ValueError(
                "alpha_max is 0: no feature correlates with the labels, so every coefficient "
                "is zero at any alpha; pass `alphas` explicitly."
            )
        alphas = alpha_grid(top, n_alphas, eps)
    else:
        alphas = np.sort(np.asarray(alphas, dtype=np.float64).ravel())[::-1]
        if alphas.size == 0 or not np.all(np.isfinite(alphas) & (alphas > 0)):
            raise ValueError(
                f"`alphas` must be a non-empty list of positive numbers; got {alphas.tolist()!r}."
            )
    model = SoftmaxRegression(l1_ratio=l1_ratio, l1_norm=l1_norm, warm_start=True, **params)
    fits = []
    for alpha in alphas:
        model.set_params(alpha=float(alpha)).fit(X, y, sample_weight)
        fits.append(
            (
                model.coef_.copy(),
                model.intercept_.copy(),
                model.objective_,
                model.optimality_gap_bound_,
                model.n_iter_,
                model.converged_,
            )
        )
    columns = (np.array(column) for column in zip(*fits, strict=True))
    coefs, intercepts, objectives, gaps, n_iter, converged = columns
    return RegularizationPath(
        alphas=alphas,
        coefs=coefs,
        intercepts=intercepts,
        objectives=objectives,
        gap_bounds=gaps,
        n_nonzero=(coefs != 0).sum(axis=2),
        n_iter=n_iter,
        converged=converged,
        classes=model.classes_,
        l1_ratio=float(l1_ratio),
        l1_norm=l1_norm,
    )
