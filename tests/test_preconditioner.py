"""Tests of softreg._preconditioner and preconditioned Newton-CG: the Kronecker preconditioner
is the inverse of ``A ⊗ C + α I`` built by hand, it is used only where it applies, and
Newton-CG with it reaches the optimum in fewer Hessian-vector products on badly scaled data."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from softreg import _objective, _preconditioner
from softreg._objective import Evaluation, Objective, SoftmaxLoss, SquaredLoss, in_memory
from softreg._solvers import Monitor, _forcing, minimize

N_SAMPLES, N_FEATURES, N_CLASSES = 300, 5, 4


def badly_scaled(seed=0):
    """Features on scales 1e-2 .. 1e2 with a large offset: C's spread is ~1e8."""
    rng = np.random.default_rng(seed)
    scales = np.logspace(-2, 2, N_FEATURES)
    X = rng.standard_normal((N_SAMPLES, N_FEATURES)) * scales + 3.0
    # Labels from a softmax of the standardised features: overlapping classes, R* well above 0.
    logits = ((X - 3.0) / scales) @ rng.standard_normal((N_FEATURES, N_CLASSES))
    y = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    weight = rng.uniform(0.5, 2.0, N_SAMPLES)
    return X, y, weight


def objective_on(X, y, weight, *, alpha=1e-3, fit_intercept=True, rows=None):
    return Objective(
        SoftmaxLoss(N_CLASSES),
        in_memory(X, y, weight, n_outputs=N_CLASSES, rows=rows),
        alpha=alpha,
        fit_intercept=fit_intercept,
    )


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
def test_preconditioner_inverts_the_kronecker_matrix_built_by_hand(fit_intercept, weighted):
    X, y, weight = badly_scaled()
    weight = weight if weighted else None
    alpha = 1e-3
    objective = objective_on(X, y, weight, alpha=alpha, fit_intercept=fit_intercept, rows=70)
    theta = np.random.default_rng(1).normal(scale=0.1, size=objective.n_params)
    precondition = objective.hessp(theta).preconditioner()
    assert precondition is not None
    # A = mean of s_i (diag(p_i) - p_i p_iᵀ) and C = mean of s_i x̃_i x̃_iᵀ, by hand.
    coef, intercept = objective.unpack(theta)
    logits = X @ coef.T + (0 if intercept is None else intercept)
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    s = np.ones(N_SAMPLES) if weight is None else weight
    A = sum(si * (np.diag(p) - np.outer(p, p)) for si, p in zip(s, proba, strict=True)) / s.sum()
    X_tilde = np.column_stack([X, np.ones(N_SAMPLES)]) if fit_intercept else X
    C = (X_tilde * s[:, None]).T @ X_tilde / s.sum()
    M = np.kron(A, C) + alpha * np.eye(A.shape[0] * C.shape[0])
    # θ holds coef row by row, then the intercept: map it to vec_row([W | b]) and back.
    D_tilde = C.shape[0]
    order = np.arange(objective.n_params)
    if fit_intercept:
        grid = np.empty((N_CLASSES, D_tilde), dtype=int)
        grid[:, :N_FEATURES] = order[: objective.n_coef].reshape(N_CLASSES, N_FEATURES)
        grid[:, N_FEATURES] = order[objective.n_coef :]
        order = grid.ravel()
    M_theta = np.empty_like(M)
    M_theta[np.ix_(order, order)] = M
    residual = np.random.default_rng(2).standard_normal(objective.n_params)
    # C is estimated from every row here (300 < MOMENT_ROWS), so the inverse is exact.
    assert_allclose(M_theta @ precondition(residual), residual, rtol=1e-8, atol=1e-10)


def test_preconditioner_only_where_it_applies():
    X, y, weight = badly_scaled()
    theta = np.zeros(N_CLASSES * (N_FEATURES + 1))
    assert objective_on(X, y, weight).hessp(theta).preconditioner() is not None
    # alpha = 0: A is singular along 1, so M⁻¹ would amplify rounding along flat directions.
    assert objective_on(X, y, weight, alpha=0.0).hessp(theta).preconditioner() is None
    # Standardised features: C is near the identity, nothing to gain.
    standard = (X - X.mean(axis=0)) / X.std(axis=0)
    assert objective_on(standard, y, weight).hessp(theta).preconditioner() is None
    # Sparse data and squared loss: not formed.
    sparse = objective_on(sp.csr_matrix(X), y, weight)
    assert sparse.feature_moments() is None
    assert sparse.hessp(np.zeros(sparse.n_params)).preconditioner() is None
    squared = Objective(
        SquaredLoss(1), in_memory(X, X[:, :1].copy()), alpha=1e-3, fit_intercept=True
    )
    assert squared.feature_moments() is None


def test_preconditioned_newton_reaches_the_optimum_in_fewer_products(monkeypatch):
    X, y, weight = badly_scaled()
    counts = {}
    results = {}
    original = _objective.HessianProduct.__call__
    for precondition in (True, False):
        calls = []

        def counting(self, v, calls=calls):
            calls.append(1)
            return original(self, v)

        monkeypatch.setattr(_objective.HessianProduct, "__call__", counting)
        if not precondition:
            monkeypatch.setattr(_preconditioner, "worth_it", lambda moments, alpha: False)
        objective = objective_on(X, y, weight, alpha=1e-4)
        theta0 = np.zeros(objective.n_params)
        results[precondition] = minimize(
            objective, theta0, solver="newton-cg", tol=1e-12, max_iter=100
        )
        counts[precondition] = len(calls)
    for result in results.values():
        assert result.converged, result.message
        assert result.evaluation.gap_bound <= 1e-12 * result.evaluation.objective
    # Both certify the same optimum to 1e-12 relative; their objectives agree to that.
    assert_allclose(
        results[True].evaluation.objective, results[False].evaluation.objective, rtol=2e-12
    )
    # The features span four orders of magnitude: plain CG needs several times the products.
    assert counts[True] * 2 < counts[False], counts


def test_forcing_is_no_tighter_than_the_certificate_needs():
    monitor = Monitor(tol=1e-6, strongly_convex=True)

    def evaluation(gradient_norm, gap_bound, objective=1.0):
        return Evaluation(objective, np.zeros(1), gradient_norm, gap_bound)

    # Far from the target the superlinear term rules: min(0.5, ‖g‖^power), power 1/2 …
    assert _forcing(evaluation(1e-2, 1.0), monitor) == pytest.approx(0.1)
    # … or 1/4 (Newton-CG's where every product reads every row).
    assert _forcing(evaluation(1e-4, 1.0), monitor, power=0.25) == pytest.approx(0.1)
    # A bound 100 times the target needs the gradient cut 10-fold: η = 0.5 · sqrt(1/100).
    assert _forcing(evaluation(1e-8, 1e-4), monitor) == pytest.approx(0.05)
    # Never looser than 0.5; without a certificate (alpha = 0) the superlinear term alone.
    assert _forcing(evaluation(1e-8, 1e-7), monitor) == 0.5
    flat = Monitor(tol=1e-6, strongly_convex=False)
    assert _forcing(evaluation(1e-8, math.inf), flat) == pytest.approx(1e-4)
    assert _forcing(evaluation(1e-8, math.inf), flat, power=0.25) == pytest.approx(1e-2)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_feature_moment_sums_equal_the_definition(fit_intercept, weighted, dtype):
    """Σ s x̃ x̃ᵀ assembled from Xᵀ S X, the weighted column sums and Σ s equals the sum
    over x̃ = [x, 1] written out."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(37, 6)).astype(dtype)
    weight = rng.uniform(0.5, 2.0, size=37) if weighted else None
    moments, total = _preconditioner.feature_moment_sums(0, (X, None, weight), fit_intercept)
    X_tilde = X.astype(np.float64)
    if fit_intercept:
        X_tilde = np.column_stack([X_tilde, np.ones(37)])
    s = np.ones(37) if weight is None else weight
    expected = sum(s_i * np.outer(x, x) for s_i, x in zip(s, X_tilde, strict=True))
    assert moments.shape == (X_tilde.shape[1],) * 2 and moments.dtype == np.float64
    assert_allclose(moments, expected, rtol=1e-12, atol=1e-12)
    assert total == pytest.approx(s.sum(), rel=1e-15)
