"""``SoftmaxRegressionCV``: alpha (and l1_ratio) chosen by cross-validated log-loss.

For each ``l1_ratio`` and each fold, one warm-started :func:`~softreg.regularization_path`
over the same grid of ``alpha`` is fitted on the fold's training rows and scored on its test
rows; the folds run in parallel with joblib. The pair with the lowest mean test log-loss is
refitted on all the data.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import check_cv
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from softreg import _params as rules
from softreg._estimator import SoftmaxRegression, _check_sample_weight
from softreg._gather import gathered_arrays
from softreg._kernels import log_softmax
from softreg._path import alpha_grid, alpha_max, regularization_path

__all__ = ["SoftmaxRegressionCV", "cv_summary"]

# The features whose coefficients a model file keeps along the path (for its plot): the ones
# with the largest column norm anywhere on the path.
_PATH_FEATURES = 20
# Probabilities below this count as this in the test log-loss (scikit-learn's log_loss clips
# the same way): a class absent from a fold's training rows gets probability 0 there.
_PROBA_FLOOR = 1e-15


def _positive_list(value):
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return array.ndim == 1 and array.size > 0 and bool(np.all(np.isfinite(array) & (array > 0)))


def _ratio_list(value):
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return array.ndim == 1 and array.size > 0 and bool(np.all((array >= 0) & (array <= 1)))


def _fold_scores(X, y, weight, train, test, alphas, l1_ratio, classes, params):
    """Mean test log-loss of each fit of the path on the fold's training rows."""
    w_train = None if weight is None else weight[train]
    path = regularization_path(
        X[train], y[train], alphas=alphas, l1_ratio=l1_ratio, sample_weight=w_train, **params
    )
    columns = np.searchsorted(classes, path.classes)
    codes = np.searchsorted(classes, y[test])
    s = np.ones(len(test)) if weight is None else weight[test].astype(np.float64)
    scores = np.empty(len(alphas))
    X_test = X[test]
    for index, (coef, intercept) in enumerate(zip(path.coefs, path.intercepts, strict=True)):
        log_proba = np.full((len(test), len(classes)), np.log(_PROBA_FLOOR))
        logits = np.asarray(X_test @ coef.T.astype(np.float64)) + intercept
        log_proba[:, columns] = np.maximum(log_softmax(logits, axis=1), np.log(_PROBA_FLOOR))
        scores[index] = -(s @ log_proba[np.arange(len(test)), codes]) / s.sum()
    return scores


class SoftmaxRegressionCV(ClassifierMixin, BaseEstimator):
    """Softmax regression with ``alpha`` and ``l1_ratio`` chosen by cross-validation.

    The score is the (weighted) log-loss on the test rows of each fold; the grid of ``alpha``
    is shared by the folds (from :func:`~softreg.alpha_max` on all the data, per
    ``l1_ratio``), each fold fits a warm-started path, and the best pair is refitted on
    all the data as ``estimator_``, whose fitted attributes this estimator exposes.

    Parameters
    ----------
    alphas : int or array-like, default=30
        The number of values in the grid (from ``alpha_max`` down to ``eps · alpha_max``,
        log-spaced), or the values themselves.
    l1_ratios : array-like of float in [0, 1], default=(1.0,)
    l1_norm : {"elementwise", "grouped"}, default="elementwise"
    eps : float, default=1e-3
    cv : int, cross-validation generator or iterable, default=5
        Stratified folds for an int (scikit-learn's ``check_cv``).
    fit_intercept, tol, max_iter, class_weight, label_smoothing
        As in :class:`~softreg.SoftmaxRegression`.
    n_jobs : int or None, default=None
        Folds (times ``l1_ratios``) fitted in parallel by joblib.

    Attributes
    ----------
    alphas_ : ndarray of shape (n_l1_ratios, n_alphas)
    scores_ : ndarray of shape (n_l1_ratios, n_folds, n_alphas)
        Test log-loss of every fit.
    alpha_, l1_ratio_ : float
        The chosen pair (lowest mean test log-loss; the largest ``alpha`` on ties).
    estimator_ : SoftmaxRegression
        Refitted on all the data.
    coef_, intercept_, classes_, n_iter_, objective_, optimality_gap_bound_, history_
        Those of ``estimator_``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from softreg import SoftmaxRegressionCV
    >>> X, y = load_iris(return_X_y=True)
    >>> model = SoftmaxRegressionCV(alphas=8, cv=3).fit(X, y)
    >>> model.scores_.shape
    (1, 3, 8)
    >>> bool(model.alpha_ in model.alphas_[0]), model.score(X, y) > 0.9
    (True, True)
    """

    _parameter_table: ClassVar[dict] = {
        "alphas": rules.either(
            rules.integer(1), (_positive_list, "a non-empty list of positive numbers")
        ),
        "l1_ratios": (_ratio_list, "a non-empty list of numbers in [0, 1]"),
        "l1_norm": rules.options(*rules.L1_NORMS),
        "eps": rules.real(0, 1, low_open=True),
        "fit_intercept": rules.boolean(),
        "tol": rules.either(rules.none(), rules.real(0, low_open=True)),
        "max_iter": rules.integer(1),
        "label_smoothing": rules.real(0, 1),
        "n_jobs": rules.either(rules.none(), rules.integer(-1)),
    }

    def __init__(
        self,
        alphas=30,
        *,
        l1_ratios=(1.0,),
        l1_norm="elementwise",
        eps=1e-3,
        cv=5,
        fit_intercept=True,
        tol=None,
        max_iter=1000,
        class_weight=None,
        label_smoothing=0.0,
        n_jobs=None,
    ):
        self.alphas = alphas
        self.l1_ratios = l1_ratios
        self.l1_norm = l1_norm
        self.eps = eps
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.label_smoothing = label_smoothing
        self.n_jobs = n_jobs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _params(self):
        return {
            "l1_norm": self.l1_norm,
            "fit_intercept": self.fit_intercept,
            "tol": self.tol,
            "max_iter": self.max_iter,
            "class_weight": self.class_weight,
            "label_smoothing": self.label_smoothing,
        }

    def fit(self, X, y=None, sample_weight=None):
        """Cross-validate the grid, then refit the best pair on all of ``(X, y)``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), or a dataset
            A dataset (:func:`softreg.open_dataset`) carries its own labels and weights
            (``y`` and ``sample_weight`` must then be None); its rows are gathered into
            memory once, within its ``memory_limit`` (:mod:`softreg._gather`).
        y : array-like of shape (n_samples,)
            Class labels (the folds are stratified on them).
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        rules.validate_params(self, self._parameter_table)
        # Each fold copies its training rows: one copy more than a single fit holds.
        X, y, sample_weight, names = gathered_arrays(
            X, y, sample_weight, "SoftmaxRegressionCV.fit", copies=1
        )
        if y is None:
            raise ValueError(
                "SoftmaxRegressionCV requires y to be passed, but the target y is None."
            )
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse="csr",
            dtype=[np.float64, np.float32],
            ensure_all_finite=True,
            y_numeric=False,
        )
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(
                "SoftmaxRegressionCV needs samples of at least 2 classes in `y`; "
                f"got 1 class, {classes.tolist()[0]!r}."
            )
        weight = _check_sample_weight(sample_weight, X.shape[0], X.dtype)
        if weight is not None:
            present = np.unique(y[weight > 0])
            if len(present) < 2:
                raise ValueError(
                    "SoftmaxRegressionCV needs at least 2 classes with positive sample_weight; "
                    f"got {len(present)} class: {present.tolist()!r}."
                )
        l1_ratios = np.asarray(self.l1_ratios, dtype=np.float64)
        params = self._params()
        if isinstance(self.alphas, int | np.integer) and not isinstance(self.alphas, bool):
            grids = [
                alpha_grid(
                    alpha_max(
                        X,
                        y,
                        l1_ratio=ratio,
                        l1_norm=self.l1_norm,
                        sample_weight=weight,
                        fit_intercept=self.fit_intercept,
                        label_smoothing=self.label_smoothing,
                        class_weight=self.class_weight,
                    ),
                    int(self.alphas),
                    self.eps,
                )
                for ratio in l1_ratios
            ]
        else:
            grid = np.sort(np.asarray(self.alphas, dtype=np.float64))[::-1]
            grids = [grid for _ in l1_ratios]
        self.alphas_ = np.array(grids)
        folds = list(check_cv(self.cv, y, classifier=True).split(X, y))
        jobs = (
            delayed(_fold_scores)(X, y, weight, train, test, grid, ratio, classes, params)
            for ratio, grid in zip(l1_ratios, grids, strict=True)
            for train, test in folds
        )
        scores = Parallel(n_jobs=self.n_jobs)(jobs)
        self.scores_ = np.array(scores).reshape(len(l1_ratios), len(folds), -1)
        mean = self.scores_.mean(axis=1)
        best_ratio, best_alpha = np.unravel_index(np.argmin(mean), mean.shape)
        self.l1_ratio_ = float(l1_ratios[best_ratio])
        self.alpha_ = float(self.alphas_[best_ratio, best_alpha])
        self.estimator_ = SoftmaxRegression(
            alpha=self.alpha_, l1_ratio=self.l1_ratio_, **params
        ).fit(X, y, weight)
        for name in (
            "classes_",
            "coef_",
            "intercept_",
            "n_iter_",
            "objective_",
            "optimality_gap_bound_",
            "converged_",
            "history_",
        ):
            setattr(self, name, getattr(self.estimator_, name))
        if names is not None:  # a dataset's feature names, as fit(DataFrame) would keep them
            names = np.asarray(names, dtype=object)
            self.feature_names_in_ = self.estimator_.feature_names_in_ = names
        return self

    def _features(self, X):
        check_is_fitted(self)
        return validate_data(
            self,
            X,
            reset=False,
            accept_sparse="csr",
            dtype=[np.float64, np.float32],
            ensure_all_finite=True,
        )

    def decision_function(self, X):
        """Logits of the refitted model (see :meth:`SoftmaxRegression.decision_function`)."""
        X = self._features(X)
        return self.estimator_.decision_function(X)

    def predict_proba(self, X):
        """Class probabilities of the refitted model."""
        X = self._features(X)
        return self.estimator_.predict_proba(X)

    def predict_log_proba(self, X):
        """Log-probabilities of the refitted model."""
        X = self._features(X)
        return self.estimator_.predict_log_proba(X)

    def predict(self, X):
        """The most probable class label per row."""
        X = self._features(X)
        return self.estimator_.predict(X)


def cv_summary(model, X, y=None, sample_weight=None, *, max_features=_PATH_FEATURES):
    """What a model file keeps of a fitted :class:`SoftmaxRegressionCV` (JSON-ready).

    The grid and test log-loss of every fold, the chosen pair, and the path on all of
    ``(X, y)`` (the data ``model`` was fitted on) at the chosen ``l1_ratio``: per ``alpha``,
    the non-zero coefficients per class, the objective and gap bound, and the column norms
    ``‖W[:, j]‖₂`` of the ``max_features`` features whose norm is largest on the path.
    See ``docs/model-format.md`` (``cross_validation``).
    """
    check_is_fitted(model)
    ratios = np.asarray(model.l1_ratios, dtype=np.float64).ravel()
    best = int(np.flatnonzero(ratios == model.l1_ratio_)[0])
    path = regularization_path(
        X,
        y,
        alphas=model.alphas_[best],
        l1_ratio=model.l1_ratio_,
        sample_weight=sample_weight,
        **model._params(),
    )
    norms = np.linalg.norm(path.coefs, axis=1)  # (n_alphas, n_features)
    shown = np.argsort(-norms.max(axis=0), kind="stable")[:max_features]
    shown = np.sort(shown[norms.max(axis=0)[shown] > 0])
    return {
        "n_folds": int(model.scores_.shape[1]),
        "l1_norm": model.l1_norm,
        "l1_ratios": ratios.tolist(),
        "alphas": model.alphas_.tolist(),
        "scores": model.scores_.tolist(),
        "alpha": model.alpha_,
        "l1_ratio": model.l1_ratio_,
        "path": {
            "alphas": path.alphas.tolist(),
            "n_nonzero": path.n_nonzero.tolist(),
            "objectives": path.objectives.tolist(),
            "gap_bounds": path.gap_bounds.tolist(),
            "features": shown.tolist(),
            "coef_norms": norms[:, shown].tolist(),
        },
    }
