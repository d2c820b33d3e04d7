"""Tests of softreg._objective: derivatives by central differences, by slope and by hand;
additivity over row blocks; agreement with the cross-entropy kernel; the optimality
certificate against optima computed independently; memory per block; error messages."""

import functools
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from scipy.special import entr, logsumexp, softmax

import softreg._objective as objective_module
from softreg import check_gradient, cross_entropy_from_logits
from softreg._objective import (
    Block,
    Objective,
    SoftmaxLoss,
    SquaredLoss,
    in_memory,
    objective_value,
)
from softreg._sources import CallableSource

KINDS = ["hard", "soft", "smoothed", "squared"]
SOFTMAX_KINDS = ["hard", "soft", "smoothed"]
DTYPES = [np.float64, np.float32]
N_SAMPLES, N_FEATURES, N_CLASSES = 24, 4, 3
LABEL_SMOOTHING = 0.2


# --------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------


def make_data(kind, *, n_samples=N_SAMPLES, sparse=False, weighted=False, dtype=np.float64, seed=0):
    """``(X, target, sample_weight, loss)`` for one kind of target.

    "hard": integer class codes; "soft": rows of a Dirichlet draw; "smoothed": class codes
    with label smoothing; "squared": a float target matrix of two outputs for SquaredLoss.
    The features are shifted off zero so that the intercept and the coefficients interact.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, N_FEATURES)) + 0.5
    if sparse:
        X[rng.random(X.shape) < 0.5] = 0.0
        X = sp.csr_matrix(X.astype(dtype))
    else:
        X = X.astype(dtype)
    if kind == "squared":
        target = rng.standard_normal((n_samples, 2)).astype(dtype)
        loss = SquaredLoss(2)
    elif kind == "soft":
        target = rng.dirichlet(np.ones(N_CLASSES), size=n_samples).astype(dtype)
        loss = SoftmaxLoss(N_CLASSES)
    else:
        # Every class present, so that R has a finite minimiser.
        target = rng.permutation(np.arange(n_samples) % N_CLASSES)
        loss = SoftmaxLoss(N_CLASSES, LABEL_SMOOTHING if kind == "smoothed" else 0.0)
    # Weights spanning three orders of magnitude, so that a wrong normalisation shows.
    weight = 10.0 ** rng.uniform(-1.5, 1.5, n_samples) if weighted else None
    weight = None if weight is None else weight.astype(dtype)
    return X, target, weight, loss


def make_objective(
    kind,
    *,
    fit_intercept=True,
    alpha=0.3,
    sparse=False,
    weighted=False,
    dtype=np.float64,
    rows=None,
    seed=0,
):
    X, target, weight, loss = make_data(
        kind, sparse=sparse, weighted=weighted, dtype=dtype, seed=seed
    )
    return Objective(
        loss,
        in_memory(X, target, weight, n_outputs=outputs(loss), rows=rows),
        alpha=alpha,
        fit_intercept=fit_intercept,
        # One layout for dense and sparse here (float32 finite differences are layout-
        # sensitive at their noise floor); test_transposed_coef_layout_is_the_same_objective
        # holds the two layouts together.
        transposed_coef=False,
    )


def outputs(loss):
    """Logits (or outputs) per row of a loss."""
    return loss.n_outputs if isinstance(loss, SquaredLoss) else loss.n_classes


def random_theta(objective, scale=1.0, seed=1):
    return scale * np.random.default_rng(seed).standard_normal(objective.n_params)


def hessian(objective, theta):
    """The dense Hessian, one column per Hessian-vector product with a unit vector."""
    product = objective.hessp(theta)
    return np.column_stack([product(e) for e in np.eye(objective.n_params)])


def dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def smoothed_targets(loss, target):
    """The target matrix Y actually trained on, in float64."""
    return loss.targets(target, np.float64)


def newton(objective, theta, n_iter=30):
    """Newton's method on the dense Hessian; returns the iterate with the smallest ‖∇R‖.

    The step is a least-squares solve because with an intercept the Hessian is singular
    along "add the same number to every intercept", a direction R does not depend on. Steps
    are halved until R decreases while ‖∇R‖ > 1e-6; closer in, R no longer resolves the
    decrease and full steps converge quadratically.
    """
    evaluation = objective.loss_gradient(theta)
    best = theta, evaluation
    for _ in range(n_iter):
        step = np.linalg.lstsq(hessian(objective, theta), -evaluation.gradient, rcond=None)[0]
        trial = objective.loss_gradient(theta + step)
        while evaluation.gradient_norm > 1e-6 and trial.objective > evaluation.objective:
            step /= 2
            trial = objective.loss_gradient(theta + step)
        theta, evaluation = theta + step, trial
        if evaluation.gradient_norm < best[1].gradient_norm:
            best = theta, evaluation
    return best


@functools.cache
def tight_optimum(kind, fit_intercept, weighted, alpha, sparse=False):
    """``(objective, θ*, R(θ*))`` of a float64 problem, with ‖∇R(θ*)‖ < 1e-13."""
    objective = make_objective(
        kind, fit_intercept=fit_intercept, weighted=weighted, alpha=alpha, sparse=sparse
    )
    theta, evaluation = newton(objective, np.zeros(objective.n_params))
    assert evaluation.gradient_norm < 1e-13
    return objective, theta, evaluation.objective


# --------------------------------------------------------------------------------------------
# Derivatives
# --------------------------------------------------------------------------------------------

# check_gradient's relative error for a correct derivative (see its Notes): float64 central
# differences with the default step reach 1e-7 or better here (measured: 6e-9 for the gradient,
# 1e-7 for the Hessian's smallest entries); float32 ones are limited by rounding of the float32
# logits (eps32 / h ≈ 1e-7 / 5e-3 relative to the size of R), measured up to 1.5e-3.
GRADIENT_TOL = {np.float64: 1e-6, np.float32: 1e-2}

DERIVATIVE_CASES = [
    pytest.param(kind, sparse, weighted, fit_intercept, id=f"{kind}-{name}-{w}-{i}")
    for kind in KINDS
    for sparse, name in [(False, "dense"), (True, "csr")]
    for weighted, w in [(False, "unweighted"), (True, "weighted")]
    for fit_intercept, i in [(False, "no_intercept"), (True, "intercept")]
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kind", "sparse", "weighted", "fit_intercept"), DERIVATIVE_CASES)
def test_gradient_matches_central_differences(kind, sparse, weighted, fit_intercept, dtype):
    objective = make_objective(
        kind, fit_intercept=fit_intercept, sparse=sparse, weighted=weighted, dtype=dtype
    )
    # θ in the dtype of the data: the step of the differences then matches its precision.
    theta = random_theta(objective).astype(dtype)
    check = check_gradient(
        lambda t: objective.loss_gradient(t).objective,
        lambda t: objective.loss_gradient(t).gradient,
        theta,
    )
    assert check.max_relative_error < GRADIENT_TOL[dtype], check


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("kind", "sparse", "weighted", "fit_intercept"), DERIVATIVE_CASES)
def test_hessp_matches_central_differences_of_gradient(
    kind, sparse, weighted, fit_intercept, dtype
):
    objective = make_objective(
        kind, fit_intercept=fit_intercept, sparse=sparse, weighted=weighted, dtype=dtype
    )
    theta = random_theta(objective).astype(dtype)
    direction = random_theta(objective, seed=9)
    Hv = objective.hessp(theta)(direction)
    # The derivative of θ ↦ vᵀ∇R(θ) is H v (H is symmetric).
    check = check_gradient(
        lambda t: objective.loss_gradient(t).gradient @ direction, lambda t: Hv, theta
    )
    assert check.max_relative_error < GRADIENT_TOL[dtype], check


@pytest.mark.parametrize(("kind", "sparse", "weighted", "fit_intercept"), DERIVATIVE_CASES)
def test_hessian_matches_central_differences_of_gradient(kind, sparse, weighted, fit_intercept):
    # Entry by entry, so float64 only: in float32 the Hessian's smallest entries (1e-5 next
    # to entries of 0.1) sit at the level of the rounding in the gradient.
    objective = make_objective(kind, fit_intercept=fit_intercept, sparse=sparse, weighted=weighted)
    theta = random_theta(objective)
    H = hessian(objective, theta)
    # The Jacobian of the gradient, entry [i, j] = ∂g_i/∂θ_j, is column j of H.
    check = check_gradient(lambda t: objective.loss_gradient(t).gradient, lambda t: H, theta)
    assert check.max_relative_error < GRADIENT_TOL[np.float64], check
    assert_allclose(H, H.T, rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_hessian_agrees_with_float64(kind):
    theta = random_theta(make_objective(kind))
    H64 = hessian(make_objective(kind, weighted=True), theta)
    H32 = hessian(make_objective(kind, weighted=True, dtype=np.float32), theta)
    # The float32 data and θ are the float64 ones rounded: agreement to float32 precision
    # (ε32 = 1.2e-7) times the condition of a few sums, relative to the largest entry.
    assert np.abs(H32 - H64).max() < 1e-5 * np.abs(H64).max()


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("kind", SOFTMAX_KINDS)
def test_hessp_by_slope(kind, fit_intercept, weighted):
    # ∇R(θ + εv) - ∇R(θ) - ε H v = O(ε²): halving ε divides the remainder by 4, so the
    # slope of log(remainder) against log(ε) is 2. A wrong Hessian leaves an O(ε) remainder.
    objective = make_objective(kind, fit_intercept=fit_intercept, weighted=weighted)
    theta = random_theta(objective)
    direction = random_theta(objective, seed=2)
    gradient = objective.loss_gradient(theta).gradient
    Hv = objective.hessp(theta)(direction)
    steps = 2.0 ** -np.arange(4, 12)
    remainders = [
        np.linalg.norm(objective.loss_gradient(theta + e * direction).gradient - gradient - e * Hv)
        for e in steps
    ]
    slope = np.polyfit(np.log(steps), np.log(remainders), 1)[0]
    assert 1.95 < slope < 2.05, remainders


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_squared_loss_gradient_is_exactly_linear(fit_intercept):
    # For ½‖Wx + b - y‖² the remainder of the slope test is 0: only rounding is left.
    objective = make_objective("squared", fit_intercept=fit_intercept, weighted=True)
    theta = random_theta(objective)
    direction = random_theta(objective, seed=2)
    gradient = objective.loss_gradient(theta).gradient
    Hv = objective.hessp(theta)(direction)
    for e in [1.0, 1e-3]:
        moved = objective.loss_gradient(theta + e * direction).gradient
        assert_allclose(moved - gradient, e * Hv, rtol=1e-12, atol=1e-14 * np.abs(gradient).max())


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_hessian_built_by_hand(weighted, fit_intercept):
    # Two samples, three classes, two features: per sample the Hessian of CE in the logits is
    # the softmax Jacobian J_i = diag(p_i) - p_i p_iᵀ, and with z_i = W x_i + b
    #   ∂²R/∂W_kd ∂W_me = (1/S) Σ_i s_i J_i[k, m] x_id x_ie + α δ_km δ_de  (kron(J_i, x_i x_iᵀ))
    #   ∂²R/∂W_kd ∂b_m  = (1/S) Σ_i s_i J_i[k, m] x_id
    #   ∂²R/∂b_k ∂b_m   = (1/S) Σ_i s_i J_i[k, m]
    X = np.array([[0.5, -1.5], [2.0, 0.25]])
    target = np.array([2, 0])
    weight = np.array([0.25, 3.0]) if weighted else None
    alpha = 0.7
    n_classes, n_features = 3, 2
    objective = Objective(
        SoftmaxLoss(n_classes),
        in_memory(X, target, weight, n_outputs=n_classes),
        alpha=alpha,
        fit_intercept=fit_intercept,
    )
    coef = np.array([[0.3, -0.2], [1.1, 0.4], [-0.5, 0.9]])
    intercept = np.array([0.2, -0.1, 0.4]) if fit_intercept else np.zeros(n_classes)
    s = np.ones(2) if weight is None else weight
    proba = softmax(X @ coef.T + intercept, axis=1)
    n_coef = n_classes * n_features
    expected = np.zeros((objective.n_params, objective.n_params))
    for i in range(2):
        J = np.diag(proba[i]) - np.outer(proba[i], proba[i])
        expected[:n_coef, :n_coef] += s[i] * np.kron(J, np.outer(X[i], X[i]))
        if fit_intercept:
            cross = s[i] * np.kron(J, X[i][:, None])  # rows (k, d), columns m
            expected[:n_coef, n_coef:] += cross
            expected[n_coef:, :n_coef] += cross.T
            expected[n_coef:, n_coef:] += s[i] * J
    expected /= s.sum()
    expected[:n_coef, :n_coef] += alpha * np.eye(n_coef)
    theta = objective.pack(coef, intercept if fit_intercept else None)
    assert_allclose(hessian(objective, theta), expected, rtol=1e-13, atol=1e-16)


def test_hessian_null_directions_of_softmax():
    # softmax(z + c·1) = softmax(z), so with α = 0 the Hessian annihilates "add w to every
    # row of W" and "add c to every intercept".
    objective = make_objective("hard", alpha=0.0, weighted=True)
    theta = random_theta(objective)
    product = objective.hessp(theta)
    shift_coef = objective.pack(np.tile([0.3, -1.0, 2.0, 0.5], (N_CLASSES, 1)), np.zeros(3))
    shift_intercept = objective.pack(np.zeros((N_CLASSES, N_FEATURES)), np.ones(N_CLASSES))
    for v in [shift_coef, shift_intercept]:
        assert np.abs(product(v)).max() < 1e-15
    assert np.abs(product(random_theta(objective, seed=5))).max() > 1e-2


# --------------------------------------------------------------------------------------------
# One objective, additive over blocks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_block_size_does_not_change_the_sums(kind, sparse):
    whole = make_objective(kind, sparse=sparse, weighted=True, rows=N_SAMPLES)
    theta = random_theta(whole)
    reference = whole.loss_gradient(theta)
    reference_hv = whole.hessp(theta)(theta)
    for rows in [1, 2, 5, N_SAMPLES - 1, None]:
        blocked = make_objective(kind, sparse=sparse, weighted=True, rows=rows)
        evaluation = blocked.loss_gradient(theta)
        assert_allclose(evaluation.objective, reference.objective, rtol=1e-12)
        assert_allclose(evaluation.gradient, reference.gradient, rtol=1e-12, atol=1e-15)
        assert_allclose(evaluation.gap_bound, reference.gap_bound, rtol=1e-9)
        assert_allclose(blocked.hessp(theta)(theta), reference_hv, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_blocks_are_summed_then_normalised_once(kind, fit_intercept):
    # Blocks of 3, 1 and 20 rows whose weight totals differ by 10⁸: an average of per-block
    # means (or a division by the number of rows) would be far off the global weighted mean.
    X, target, _, loss = make_data(kind)
    weight = np.concatenate([np.full(3, 1e4), np.full(1, 1e-4), np.linspace(0.5, 2.0, 20)])
    cuts = [(0, 3), (3, 4), (4, N_SAMPLES)]

    def blocks():
        return [Block(X[a:b], target[a:b], weight[a:b]) for a, b in cuts]

    objective = Objective(
        loss,
        CallableSource(blocks, n_features=N_FEATURES, dtype=np.float64),
        alpha=0.3,
        fit_intercept=fit_intercept,
    )
    theta = random_theta(objective)
    coef, intercept = objective.unpack(theta)
    outputs = X @ coef.T + (0 if intercept is None else intercept)
    Y = smoothed_targets(loss, target)
    if kind == "squared":
        per_sample = 0.5 * np.sum((outputs - Y) ** 2, axis=1)
        residual = outputs - Y
    else:
        per_sample = logsumexp(outputs, axis=1) - np.sum(Y * outputs, axis=1)
        residual = softmax(outputs, axis=1) - Y
    S = weight.sum()
    expected = weight @ per_sample / S + 0.15 * np.sum(coef**2)
    grad_coef = (residual * weight[:, None]).T @ X / S + 0.3 * coef
    grad_intercept = weight @ residual / S
    evaluation = objective.loss_gradient(theta)
    assert_allclose(evaluation.objective, expected, rtol=1e-13)
    assert_allclose(
        evaluation.gradient, objective.pack(grad_coef, grad_intercept), rtol=1e-12, atol=1e-16
    )


# --------------------------------------------------------------------------------------------
# The objective against the kernels
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", SOFTMAX_KINDS)
def test_objective_is_mean_cross_entropy_plus_penalty(kind, weighted, fit_intercept, sparse):
    X, target, weight, loss = make_data(kind, sparse=sparse, weighted=weighted)
    alpha = 0.3
    objective = make_objective(
        kind, fit_intercept=fit_intercept, alpha=alpha, sparse=sparse, weighted=weighted
    )
    theta = random_theta(objective)
    coef, intercept = objective.unpack(theta)
    logits = dense(X) @ coef.T + (0 if intercept is None else intercept)
    expected = cross_entropy_from_logits(
        logits,
        target,
        sample_weight=weight,
        label_smoothing=loss.label_smoothing,
        reduction="mean",
    ) + 0.5 * alpha * np.sum(coef**2)
    assert_allclose(objective.loss_gradient(theta).objective, expected, rtol=1e-14)
    if kind != "smoothed":  # objective_value takes no label smoothing
        value = objective_value(X, target, coef, intercept, alpha=alpha, sample_weight=weight)
        assert_allclose(value, expected, rtol=1e-14)


def test_objective_value_converts_inputs_to_float64():
    X, target, weight, _ = make_data("hard", weighted=True, dtype=np.float32)
    coef = random_theta(make_objective("hard", fit_intercept=False))
    coef = coef.reshape(N_CLASSES, N_FEATURES).astype(np.float32)
    logits = X.astype(np.float64) @ coef.astype(np.float64).T
    expected = cross_entropy_from_logits(logits, target, sample_weight=weight.astype(np.float64))
    value = objective_value(X, target, coef, sample_weight=weight)
    assert isinstance(value, float)
    assert_allclose(value, expected, rtol=1e-14)


def test_objective_value_at_zero_coef_is_log_n_classes():
    X, target, weight, _ = make_data("soft", weighted=True)
    coef, intercept = np.zeros((N_CLASSES, N_FEATURES)), np.zeros(N_CLASSES)
    value = objective_value(X, target, coef, intercept, alpha=5.0, sample_weight=weight)
    assert_allclose(value, np.log(N_CLASSES), rtol=1e-15)


# --------------------------------------------------------------------------------------------
# The optimality certificate
# --------------------------------------------------------------------------------------------


def dual_point_and_gap(objective, theta, X, target, weight, loss):
    """The repaired dual point q' of docs/derivation.md, computed sample by sample.

    Returns ``(q, t, concave_gap, exact_gap)``: the ``(n_samples, n_classes)`` dual point,
    the mixing weight t, ``R - D̲(q')`` where ``D̲`` uses the concavity bound
    ``H(q'_i) ≥ (1-t) H(p_i) + t H(u)`` (what `_gap_bound` reports), and ``R - D(q')``.
    """
    alpha = objective.alpha
    coef, intercept = objective.unpack(theta)
    X = dense(X)
    s = np.ones(X.shape[0]) if weight is None else weight
    S = s.sum()
    Y = smoothed_targets(loss, target)
    proba = softmax(X @ coef.T + intercept, axis=1)
    mean_y, mean_p = s @ Y / S, s @ proba / S
    g_b = mean_p - mean_y
    t = max(0.0, np.max(g_b / mean_p))
    # u_k = 0 where the ratio is largest; clip the rounding there, as _gap_bound does.
    u = np.clip(mean_p - g_b / t, 0, None) if t > 0 else mean_p
    q = (1 - t) * proba + t * u

    def data_gradient(Q):
        return ((Q - Y) * s[:, None]).T @ X / S

    def dual(mean_entropy, Q):
        G = data_gradient(Q)
        return mean_entropy - np.sum(G**2) / (2 * alpha)

    R = objective.loss_gradient(theta).objective
    mean_entropy_p = s @ entr(proba).sum(axis=1) / S
    concave = (1 - t) * mean_entropy_p + t * entr(u).sum()
    exact = s @ entr(q).sum(axis=1) / S
    return q, t, R - dual(concave, q), R - dual(exact, q)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", SOFTMAX_KINDS)
def test_gap_bound_without_intercept_is_the_strong_convexity_bound(kind, weighted):
    # No intercept: R is α-strongly convex, R - R* ≤ ‖∇R‖²/(2α), and this is exactly the
    # duality gap R - D(p) at the dual point q_i = p_i = softmax(z_i).
    objective = make_objective(kind, fit_intercept=False, weighted=weighted)
    X, target, weight, loss = make_data(kind, weighted=weighted)
    for scale in [0.1, 1.0, 3.0]:
        theta = random_theta(objective, scale=scale)
        evaluation = objective.loss_gradient(theta)
        assert_allclose(
            evaluation.gap_bound,
            evaluation.gradient_norm**2 / (2 * objective.alpha),
            rtol=1e-14,
        )
        coef, _ = objective.unpack(theta)
        s = np.ones(N_SAMPLES) if weight is None else weight
        proba = softmax(X @ coef.T, axis=1)
        G = ((proba - smoothed_targets(loss, target)) * s[:, None]).T @ X / s.sum()
        dual = s @ entr(proba).sum(axis=1) / s.sum() - np.sum(G**2) / (2 * objective.alpha)
        assert_allclose(evaluation.objective - dual, evaluation.gap_bound, rtol=1e-10)


CERTIFICATE_CASES = [
    pytest.param(kind, fit_intercept, weighted, alpha, id=f"{kind}-{i}-{w}-alpha={alpha}")
    for kind in SOFTMAX_KINDS
    for fit_intercept, i in [(False, "no_intercept"), (True, "intercept")]
    for weighted, w in [(False, "unweighted"), (True, "weighted")]
    for alpha in [0.01, 1.0]
]


@pytest.mark.parametrize(("kind", "fit_intercept", "weighted", "alpha"), CERTIFICATE_CASES)
def test_gap_bound_bounds_the_suboptimality(kind, fit_intercept, weighted, alpha):
    objective, optimum, optimal_value = tight_optimum(kind, fit_intercept, weighted, alpha)
    rng = np.random.default_rng(3)
    # R(θ*) is R* up to ‖∇R(θ*)‖² / (2α) < 1e-24; R itself carries a few roundings.
    rounding = 1e-15 * abs(optimal_value)
    for scale in [1e-6, 1e-4, 1e-2, 0.3, 1.0, 5.0]:
        for _ in range(3):
            theta = optimum + scale * rng.standard_normal(objective.n_params)
            evaluation = objective.loss_gradient(theta)
            assert evaluation.gap_bound >= evaluation.objective - optimal_value - rounding
    # At the optimum the bound vanishes (to rounding in the gradient).
    assert objective.loss_gradient(optimum).gap_bound < 1e-12


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", SOFTMAX_KINDS)
def test_gap_bound_shrinks_to_zero_near_the_optimum(kind, weighted):
    objective, optimum, _ = tight_optimum(kind, True, weighted, 0.01)
    direction = random_theta(objective, seed=4)
    bounds = [
        objective.loss_gradient(optimum + scale * direction).gap_bound
        for scale in 10.0 ** -np.arange(1, 8)
    ]
    assert np.all(np.diff(bounds) < 0), bounds
    # The intercept's repair costs O(‖∇_b R‖) (see docs/derivation.md), so the bound
    # shrinks like the distance to θ*, not its square.
    assert bounds[-1] < 1e-6, bounds


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", SOFTMAX_KINDS)
def test_gap_bound_with_intercept_is_the_gap_at_the_repaired_dual_point(kind, weighted, sparse):
    X, target, weight, loss = make_data(kind, sparse=sparse, weighted=weighted)
    objective = make_objective(kind, sparse=sparse, weighted=weighted)
    s = np.ones(N_SAMPLES) if weight is None else weight
    Y = smoothed_targets(loss, target)
    _, _, optimal_value = tight_optimum(kind, True, weighted, objective.alpha, sparse)
    for scale in [0.01, 0.3, 1.0, 4.0]:
        theta = random_theta(objective, scale=scale, seed=7)
        q, t, concave_gap, exact_gap = dual_point_and_gap(objective, theta, X, target, weight, loss)
        assert 0 < t <= 1
        # q' is dual feasible: probability vectors whose weighted mean is the target mean.
        assert np.all(q >= 0)
        assert_allclose(q.sum(axis=1), 1, rtol=1e-15)
        assert_allclose(s @ q / s.sum(), s @ Y / s.sum(), rtol=0, atol=1e-15)
        evaluation = objective.loss_gradient(theta)
        # _gap_bound is R - D̲(q'), evaluated without the cancellation of R against D̲.
        assert_allclose(evaluation.gap_bound, concave_gap, rtol=1e-9)
        # D̲(q') ≤ D(q') ≤ R* (weak duality), so the bound is valid.
        assert exact_gap <= concave_gap
        assert evaluation.objective - exact_gap <= optimal_value + 1e-15


def test_gap_bound_is_infinite_without_penalty():
    for kind in KINDS:
        objective = make_objective(kind, alpha=0.0)
        assert objective.loss_gradient(random_theta(objective)).gap_bound == np.inf


def ridge_optimum(fit_intercept, weighted, alpha):
    """Closed-form minimiser of the weighted squared loss with unpenalised intercept."""
    X, target, weight, _ = make_data("squared", weighted=weighted)
    s = np.ones(N_SAMPLES) if weight is None else weight
    S = s.sum()
    if fit_intercept:
        mean_x, mean_y = s @ X / S, s @ target / S
        Xc, Yc = X - mean_x, target - mean_y
    else:
        Xc, Yc = X, target
    gram = (Xc * s[:, None]).T @ Xc / S + alpha * np.eye(N_FEATURES)
    coef = np.linalg.solve(gram, (Xc * s[:, None]).T @ Yc / S).T
    intercept = mean_y - coef @ mean_x if fit_intercept else None
    return coef, intercept


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_squared_loss_gap_bound_against_closed_form(fit_intercept, weighted):
    alpha = 0.05
    X, target, weight, _ = make_data("squared", weighted=weighted)
    objective = make_objective(
        "squared", fit_intercept=fit_intercept, weighted=weighted, alpha=alpha
    )
    coef, intercept = ridge_optimum(fit_intercept, weighted, alpha)
    optimum = objective.pack(coef, intercept)
    at_optimum = objective.loss_gradient(optimum)
    assert at_optimum.gradient_norm < 1e-14
    assert at_optimum.gap_bound < 1e-26
    optimal_value = at_optimum.objective
    s = np.ones(N_SAMPLES) if weight is None else weight
    S = s.sum()
    rng = np.random.default_rng(5)
    for scale in [1e-5, 1e-2, 1.0, 10.0]:
        theta = optimum + scale * rng.standard_normal(objective.n_params)
        evaluation = objective.loss_gradient(theta)
        assert evaluation.gap_bound >= evaluation.objective - optimal_value - 1e-15
        if not fit_intercept:
            assert_allclose(
                evaluation.gap_bound, evaluation.gradient_norm**2 / (2 * alpha), rtol=1e-14
            )
        # The dual point q_i = r_i - r̄ (centred residuals) gives the exact duality gap:
        # D(q) = -(1/S) Σ s_i (q_iᵀ y_i + ½‖q_i‖²) - ‖(1/S) Σ s_i q_i x_iᵀ‖² / (2α).
        W, b = objective.unpack(theta)
        residual = X @ W.T + (0 if b is None else b) - target
        q = residual - s @ residual / S if fit_intercept else residual
        G = (q * s[:, None]).T @ X / S
        dual = -(s @ (np.sum(q * target, axis=1) + 0.5 * np.sum(q**2, axis=1))) / S
        dual -= np.sum(G**2) / (2 * alpha)
        # (R - D formed directly loses ~1e-16 absolute to cancellation.)
        assert_allclose(evaluation.gap_bound, evaluation.objective - dual, rtol=1e-9, atol=1e-15)


def peak_traced_bytes(function):
    """Peak of the memory allocated (NumPy arrays included) while `function` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        function()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@functools.cache
def large_problem():
    n_samples, n_features, n_classes = 200_000, 5, 10
    rng = np.random.default_rng(6)
    X = rng.standard_normal((n_samples, n_features))
    target = rng.integers(0, n_classes, n_samples)
    weight = rng.uniform(0.5, 2.0, n_samples)
    return X, target, weight, n_classes


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_loss_gradient_memory_is_per_block(fit_intercept):
    X, target, weight, n_classes = large_problem()
    rows = 1000
    objective = Objective(
        SoftmaxLoss(n_classes),
        in_memory(X, target, weight, n_outputs=n_classes, rows=rows),
        alpha=0.1,
        fit_intercept=fit_intercept,
    )
    theta = random_theta(objective, scale=0.1)
    objective.loss_gradient(theta)  # statistics for the certificate, computed once
    peak = peak_traced_bytes(lambda: objective.loss_gradient(theta))
    whole = X.shape[0] * n_classes * 8  # one float64 logits matrix for all rows: 16 MB
    block = rows * n_classes * 8
    # A few block-sized temporaries (logits, probabilities, per-sample terms) at a time.
    assert peak < 10 * block + 64 * 2**10
    assert peak < whole / 40


def test_hessp_memory_stays_within_the_curvature_budget(monkeypatch):
    # Newton-CG keeps block probabilities between products up to a fixed budget; beyond it
    # they are recomputed, so extra memory stays O(budget + block × n_classes).
    X, target, weight, n_classes = large_problem()
    rows, budget = 1000, 2**20
    monkeypatch.setattr(objective_module, "_CURVATURE_CACHE_BYTES", budget)
    objective = Objective(
        SoftmaxLoss(n_classes),
        in_memory(X, target, weight, n_outputs=n_classes, rows=rows),
        alpha=0.1,
        fit_intercept=True,
    )
    theta = random_theta(objective, scale=0.1)
    direction = random_theta(objective, seed=2)

    def two_products():
        product = objective.hessp(theta)
        product(direction)
        product(direction)

    peak = peak_traced_bytes(two_products)
    assert peak < budget + 10 * rows * n_classes * 8 + 64 * 2**10


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_all_zero_weights_are_an_error():
    X, target, _, loss = make_data("hard")
    objective = Objective(
        loss,
        in_memory(X, target, np.zeros(N_SAMPLES), n_outputs=N_CLASSES),
        alpha=0.1,
        fit_intercept=True,
    )
    with pytest.raises(ValueError, match="no rows with positive sample_weight"):
        objective.loss_gradient(np.zeros(objective.n_params))


def test_no_blocks_is_an_error():
    objective = Objective(
        SoftmaxLoss(2),
        CallableSource(list, n_features=3, dtype=np.float64),
        alpha=0.1,
        fit_intercept=False,
    )
    with pytest.raises(ValueError, match="no rows with positive sample_weight"):
        objective.loss_gradient(np.zeros(objective.n_params))


# --------------------------------------------------------------------------------------------
# The subsampled Hessian (Newton-CG on data with many more rows than parameters)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("kind", KINDS)
def test_subsampled_hessp_is_the_hessian_of_the_strided_blocks(kind, weighted):
    """``hessp(θ, every=3)`` is exactly the Hessian of the rows of blocks 0, 3, 6, ..."""
    rows, every = 5, 3
    X, target, weight, loss = make_data(kind, weighted=weighted, n_samples=40)
    full = Objective(
        loss,
        in_memory(X, target, weight, n_outputs=outputs(loss), rows=rows),
        alpha=0.3,
        fit_intercept=True,
    )
    kept = np.concatenate([np.arange(start, start + rows) for start in range(0, 40, rows * every)])
    subset = Objective(
        loss,
        in_memory(
            X[kept], target[kept], None if weight is None else weight[kept], n_outputs=outputs(loss)
        ),
        alpha=0.3,
        fit_intercept=True,
    )
    theta, v = random_theta(full), random_theta(full, seed=5)
    assert_allclose(full.hessp(theta, every=every)(v), subset.hessp(theta)(v), rtol=1e-13)
    # ... and not the full Hessian (the subset is a third of the rows).
    assert not np.allclose(full.hessp(theta, every=every)(v), full.hessp(theta)(v), rtol=1e-3)


def test_hessian_subsample_stride(monkeypatch):
    """Every row unless rows per parameter and blocks allow a power-of-two stride."""
    X, target, _, loss = make_data("hard", n_samples=N_SAMPLES)

    def stride(n_rows, rows_per_block):
        big_X = np.tile(X, (n_rows // N_SAMPLES, 1))
        big_target = np.tile(target, n_rows // N_SAMPLES)
        objective = Objective(
            loss,
            in_memory(big_X, big_target, n_outputs=N_CLASSES, rows=rows_per_block),
            alpha=0.1,
            fit_intercept=True,
        )
        return objective.hessian_subsample()

    monkeypatch.setattr(objective_module, "_HESSIAN_ROWS_PER_PARAM", 4)  # 15 parameters
    monkeypatch.setattr(objective_module, "_HESSIAN_MIN_BLOCKS", 8)
    assert stride(N_SAMPLES, 4) == 1  # 24 rows: fewer than 4 × 15 per subsample
    assert stride(24 * 40, 24) == 4  # 960 rows in 40 blocks: 10 blocks of 24 rows at stride 4
    assert stride(24 * 400, 24) == 16  # capped at _HESSIAN_MAX_STRIDE
    assert stride(24 * 400, 24 * 50) == 1  # 8 blocks: no stride keeps 8 of them


def test_newton_cg_with_a_subsampled_hessian_certifies(monkeypatch):
    """The subsampled steps converge to the same certified optimum as exact Newton."""
    from softreg._solvers import minimize

    monkeypatch.setattr(objective_module, "_HESSIAN_ROWS_PER_PARAM", 4)
    monkeypatch.setattr(objective_module, "_HESSIAN_MIN_BLOCKS", 4)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4000, N_FEATURES))
    target = rng.integers(0, N_CLASSES, 4000)
    weight = rng.uniform(0.5, 2.0, 4000)
    results = {}
    for every in (1, None):
        objective = Objective(
            SoftmaxLoss(N_CLASSES),
            in_memory(X, target, weight, n_outputs=N_CLASSES, rows=100),
            alpha=1e-3,
            fit_intercept=True,
        )
        if every == 1:
            monkeypatch.setattr(objective, "hessian_subsample", lambda: 1)
        else:
            assert objective.hessian_subsample() == 8
        result = minimize(
            objective, np.zeros(objective.n_params), solver="newton-cg", tol=1e-12, max_iter=50
        )
        assert result.converged
        assert result.evaluation.gap_bound <= 1e-12 * result.evaluation.objective
        results[every] = result
    exact, sampled = results[1].evaluation.objective, results[None].evaluation.objective
    assert abs(exact - sampled) <= 2e-12 * exact


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("kind", KINDS)
def test_transposed_coef_layout_is_the_same_objective(kind, sparse):
    """``transposed_coef=True`` stores W as (D, K) in θ; R, ∇R, ∇²R v and the bound agree."""
    X, target, weight, loss = make_data(kind, sparse=sparse, weighted=True)
    objectives = [
        Objective(
            loss,
            in_memory(X, target, weight, n_outputs=outputs(loss), rows=7),
            alpha=0.3,
            fit_intercept=True,
            transposed_coef=transposed,
        )
        for transposed in (False, True)
    ]
    usual, transposed = objectives
    rng = np.random.default_rng(4)
    coef, intercept = (
        rng.standard_normal((2, outputs(loss), N_FEATURES)),
        rng.standard_normal((2, outputs(loss))),
    )
    theta = [o.pack(coef[0], intercept[0]) for o in objectives]
    v = [o.pack(coef[1], intercept[1]) for o in objectives]
    # The layouts differ, the flat vectors too: W.ravel() against W.T.ravel().
    assert not np.array_equal(theta[0], theta[1])
    assert_allclose(transposed.unpack(theta[1])[0], coef[0], rtol=0, atol=0)
    a, b = usual.loss_gradient(theta[0]), transposed.loss_gradient(theta[1])
    assert b.objective == pytest.approx(a.objective, rel=1e-14)
    assert b.gap_bound == pytest.approx(a.gap_bound, rel=1e-12)
    for got, want in zip(transposed.unpack(b.gradient), usual.unpack(a.gradient), strict=True):
        assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    products = usual.hessp(theta[0])(v[0]), transposed.hessp(theta[1])(v[1])
    for got, want in zip(transposed.unpack(products[1]), usual.unpack(products[0]), strict=True):
        assert_allclose(got, want, rtol=1e-13, atol=1e-15)
