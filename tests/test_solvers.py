"""Tests of softreg._solvers as a table (solver × problem × dtype): each solver reaches an
optimum known independently, stops by the certificate (alpha > 0) or by the largest gradient
entry (alpha = 0), keeps its history and its iteration budget, and gd and Newton-CG never
increase the objective."""

import functools

import numpy as np
import pytest
from numpy.testing import assert_allclose

from softreg._objective import Objective, SoftmaxLoss, SquaredLoss, in_memory
from softreg._solvers import minimize

N_SAMPLES, N_FEATURES, N_CLASSES, N_TARGETS = 60, 4, 3, 2
PROBLEMS = ["quadratic", "softmax"]
DTYPES = [np.float64, np.float32]
# The solvers of the table: (solver, fixed learning rate?). The fixed step is 1/L.
SOLVERS = [("gd", False), ("gd", True), ("lbfgs", False), ("newton-cg", False)]
SOLVER_IDS = ["gd-armijo", "gd-fixed", "lbfgs", "newton-cg"]
# Relative tolerance on the certified gap: tight in float64; in float32 the gradient and the
# bound carry rounding of order ε32 · |R| ≈ 1e-7, so 1e-5 is what can be certified.
TOL = {np.float64: 1e-10, np.float32: 1e-5}


@functools.cache
def data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N_SAMPLES, N_FEATURES)) + 0.3
    # Overlapping classes (labels drawn from a softmax of a random linear model), so that
    # alpha = 0 has a finite minimiser too.
    true_logits = X @ rng.standard_normal((N_FEATURES, N_CLASSES))
    proba = np.exp(true_logits - true_logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(N_CLASSES, p=p) for p in proba])
    targets = X @ rng.standard_normal((N_FEATURES, N_TARGETS)) + rng.standard_normal(
        (N_SAMPLES, N_TARGETS)
    )
    weight = rng.uniform(0.5, 2.0, N_SAMPLES)
    return X, labels, targets, weight


def make_objective(problem, *, alpha, dtype=np.float64, fit_intercept=True):
    X, labels, targets, weight = data()
    if problem == "quadratic":
        loss, target, n_outputs = SquaredLoss(N_TARGETS), targets.astype(dtype), N_TARGETS
    else:
        loss, target, n_outputs = SoftmaxLoss(N_CLASSES), labels, N_CLASSES
    return Objective(
        loss,
        in_memory(X.astype(dtype), target, weight.astype(dtype), n_outputs=n_outputs),
        alpha=alpha,
        fit_intercept=fit_intercept,
    )


def hessian(objective, theta):
    product = objective.hessp(theta)
    return np.column_stack([product(e) for e in np.eye(objective.n_params)])


@functools.cache
def known_optimum(problem, alpha):
    """``(θ*, R*, μ)``: the float64 minimiser, its value and the smallest curvature there.

    Squared loss: the closed form (weighted ridge, the intercept unpenalised). Softmax:
    Newton's method with least-squares steps on the dense Hessian, to ‖∇R‖ < 1e-13.
    μ is the smallest Hessian eigenvalue that is not the softmax's null direction "add the
    same number to every intercept".
    """
    objective = make_objective(problem, alpha=alpha)
    X, _, targets, weight = data()
    if problem == "quadratic":
        S = weight.sum()
        mean_x, mean_y = weight @ X / S, weight @ targets / S
        Xc = X - mean_x
        gram = (Xc * weight[:, None]).T @ Xc / S + alpha * np.eye(N_FEATURES)
        coef = np.linalg.solve(gram, (Xc * weight[:, None]).T @ (targets - mean_y) / S).T
        theta = objective.pack(coef, mean_y - coef @ mean_x)
    else:
        theta = np.zeros(objective.n_params)
        for _ in range(30):
            evaluation = objective.loss_gradient(theta)
            step = np.linalg.lstsq(hessian(objective, theta), -evaluation.gradient, rcond=None)[0]
            theta = theta + step  # full steps converge from 0 on this well-conditioned problem
    evaluation = objective.loss_gradient(theta)
    assert evaluation.gradient_norm < 1e-13
    eigenvalues = np.linalg.eigvalsh(hessian(objective, theta))
    mu = eigenvalues[eigenvalues > 1e-10].min()
    return theta, evaluation.objective, mu


def lipschitz_constant(problem, alpha):
    """L with ‖∇²R‖ ≤ L everywhere: λ_max of the weighted second moment of [x, 1], times the
    curvature bound of the loss in the outputs (1 for squared loss, ½ for softmax, the
    largest eigenvalue of diag(p) - p pᵀ), plus alpha."""
    X, _, _, weight = data()
    augmented = np.column_stack([X, np.ones(N_SAMPLES)])
    moment = (augmented * weight[:, None]).T @ augmented / weight.sum()
    return (1.0 if problem == "quadratic" else 0.5) * np.linalg.eigvalsh(moment).max() + alpha


def run(problem, solver, fixed_step, *, alpha, dtype=np.float64, tol=None, max_iter=2000):
    objective = make_objective(problem, alpha=alpha, dtype=dtype)
    learning_rate = 1 / lipschitz_constant(problem, alpha) if fixed_step else None
    calls = []
    result = minimize(
        objective,
        np.zeros(objective.n_params),
        solver=solver,
        tol=TOL[dtype] if tol is None else tol,
        max_iter=max_iter,
        callback=calls.append,
        learning_rate=learning_rate,
    )
    return objective, result, calls


def without_shift(problem, theta):
    """θ with the mean intercept removed: softmax is unchanged by a common shift."""
    theta = np.array(theta, dtype=np.float64)
    if problem == "softmax":
        theta[-N_CLASSES:] -= theta[-N_CLASSES:].mean()
    return theta


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize(("solver", "fixed_step"), SOLVERS, ids=SOLVER_IDS)
def test_solver_reaches_the_known_optimum(solver, fixed_step, problem, dtype):
    alpha, tol = 0.1, TOL[dtype]
    _, result, calls = run(problem, solver, fixed_step, alpha=alpha, dtype=dtype)
    assert result.converged, result.message
    assert result.message == "converged"
    theta_star, optimal_value, mu = known_optimum(problem, alpha)
    # The stopping rule: the certified gap is within tol · |R| here and was not one step before.
    history = result.history
    assert history["gap_bound"][-1] <= tol * abs(history["objective"][-1])
    assert history["gap_bound"][-2] > tol * abs(history["objective"][-2])
    # The certificate holds against R* computed independently (in float64 for both dtypes;
    # the float32 run's own R carries rounding of order ε32 · |R|).
    value = make_objective(problem, alpha=alpha).loss_gradient(result.theta).objective
    rounding = 1e-15 if dtype == np.float64 else 1e-6
    assert value - optimal_value <= (tol + rounding) * abs(optimal_value)
    # Near θ*, R - R* ≥ ½ μ ‖θ - θ*‖², so the distance is at most √(2 · gap / μ) (doubled
    # for the curvature varying between θ and θ*).
    distance = np.linalg.norm(without_shift(problem, result.theta) - theta_star)
    assert distance <= 2 * np.sqrt(2 * (tol + rounding) * abs(optimal_value) / mu)
    # Float32 data are fitted in float32: the final evaluation stays close to float64's.
    assert_allclose(result.evaluation.objective, value, rtol=1e-15 if dtype == np.float64 else 1e-6)
    assert len(calls) == result.n_iter + 1


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize(("solver", "fixed_step"), SOLVERS, ids=SOLVER_IDS)
def test_history_and_callback_record_every_iterate(solver, fixed_step, problem):
    _, result, calls = run(problem, solver, fixed_step, alpha=0.1)
    history = result.history
    assert set(history) == {"objective", "gradient_norm", "gap_bound", "time"}
    # Entry 0 is the starting point, then one entry per iteration.
    for values in history.values():
        assert values.shape == (result.n_iter + 1,)
    assert [info.iteration for info in calls] == list(range(result.n_iter + 1))
    assert_allclose([info.objective for info in calls], history["objective"], rtol=0)
    assert_allclose([info.gap_bound for info in calls], history["gap_bound"], rtol=0)
    assert history["objective"][-1] == result.evaluation.objective
    assert history["gradient_norm"][-1] == result.evaluation.gradient_norm
    assert np.all(np.diff(history["time"]) >= 0)
    assert history["objective"][0] > history["objective"][-1]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize(("solver", "fixed_step"), [s for s in SOLVERS if s[0] != "lbfgs"])
def test_gd_and_newton_cg_never_increase_the_objective(solver, fixed_step, problem, dtype):
    _, result, _ = run(problem, solver, fixed_step, alpha=0.1, dtype=dtype)
    objective = result.history["objective"]
    # Armijo's test accepts a step only when R(θ + s d) ≤ R(θ) + c s ∇Rᵀd ≤ R(θ), exactly. A
    # fixed step of 1/L decreases R by at least ‖∇R‖² / (2L) in exact arithmetic; once that is
    # below the rounding of R (ε · |R|), an evaluation may come out a few ulps higher.
    slack = 8 * np.finfo(dtype).eps * np.abs(objective[1:]) if fixed_step else 0.0
    # The last step may be the intercept polish instead (exact Newton on b, computed in
    # float64): R decreases, but its float32 evaluation may come out a few ulps higher.
    slack = np.broadcast_to(slack, objective[1:].shape).copy()
    slack[-1] = 8 * np.finfo(dtype).eps * abs(objective[-1])
    assert np.all(np.diff(objective) <= slack)


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize(("solver", "fixed_step"), SOLVERS, ids=SOLVER_IDS)
def test_max_iter_is_respected(solver, fixed_step, problem):
    # tol = 1e-300 cannot be certified: every solver runs out of iterations.
    _, result, calls = run(problem, solver, fixed_step, alpha=0.1, tol=1e-300, max_iter=3)
    assert result.n_iter == 3
    assert not result.converged
    assert result.message == "max_iter reached"
    assert len(result.history["objective"]) == 4
    assert len(calls) == 4


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize(("solver", "fixed_step"), SOLVERS, ids=SOLVER_IDS)
def test_alpha_zero_stops_on_the_largest_gradient_entry(solver, fixed_step, problem):
    # Without a penalty there is no certificate (the bound is inf); the run stops at the first
    # iterate whose gradient entries are all at most tol in absolute value.
    tol = 1e-6
    _, result, _ = run(problem, solver, fixed_step, alpha=0.0, tol=tol)
    assert result.converged, result.message
    assert np.all(np.isinf(result.history["gap_bound"]))
    assert np.abs(result.evaluation.gradient).max() <= tol
    # The iterate before did not stop the run: its largest entry, at most its norm, was > tol.
    assert result.history["gradient_norm"][-2] > tol
    theta_star, optimal_value, mu = known_optimum(problem, 0.0)
    # R - R* ≤ ‖∇R‖² / (2μ) near θ* for a function with curvature at least μ there.
    gradient_norm = result.evaluation.gradient_norm
    assert result.evaluation.objective - optimal_value <= gradient_norm**2 / mu + 1e-15
    distance = np.linalg.norm(without_shift(problem, result.theta) - theta_star)
    assert distance <= 2 * gradient_norm / mu


@pytest.mark.parametrize(("solver", "fixed_step"), SOLVERS, ids=SOLVER_IDS)
def test_starting_at_the_optimum_stops_at_once(solver, fixed_step):
    theta_star, _, _ = known_optimum("softmax", 0.1)
    objective = make_objective("softmax", alpha=0.1)
    result = minimize(
        objective,
        theta_star,
        solver=solver,
        tol=1e-10,
        max_iter=10,
        learning_rate=0.1 if fixed_step else None,
    )
    assert (result.n_iter, result.converged, result.message) == (0, True, "converged")
    assert len(result.history["objective"]) == 1
    assert_allclose(result.theta, theta_star, rtol=0, atol=0)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_gd_reports_a_learning_rate_whose_objective_overflows(problem):
    # The first step lands at R ~ 1e200 or overflows: the run ends at once with the message
    # below, keeps the last iterate whose R did not rise, and no RuntimeWarning escapes.
    objective = make_objective(problem, alpha=0.1)
    result = minimize(
        objective,
        np.zeros(objective.n_params),
        solver="gd",
        tol=1e-10,
        max_iter=1000,
        learning_rate=1e100,
    )
    assert not result.converged
    assert result.message.startswith("the objective rose from ")
    assert "with learning_rate=1e+100" in result.message
    assert result.message.endswith("lower it, or use learning_rate=None (Armijo)")
    assert np.isfinite(result.evaluation.objective)
    assert np.all(np.isfinite(result.theta))


def test_gd_reports_a_learning_rate_that_diverges():
    # 2.5/L exceeds the stability limit 2/λ_max of gradient descent on this quadratic: R grows
    # geometrically (to 1e6 within 20 steps). The message must blame the learning rate, not
    # floating-point precision, whose advice (raise tol, use float64) cannot help.
    objective = make_objective("quadratic", alpha=0.1)
    learning_rate = 2.5 / lipschitz_constant("quadratic", 0.1)
    result = minimize(
        objective,
        np.zeros(objective.n_params),
        solver="gd",
        tol=1e-10,
        max_iter=1000,
        learning_rate=learning_rate,
    )
    assert not result.converged
    assert "learning_rate" in result.message, result.message
    assert "lower it" in result.message, result.message
