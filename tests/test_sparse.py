"""Elastic-net and grouped penalties: the proximal operator, the Fenchel duality gap, the
newton-cd solver and its gap-safe screening.

References are independent of newton-cd: scikit-learn's saga run long at a tiny tol for the
elementwise elastic net, and a long accelerated proximal-gradient run (FISTA, written here)
for the grouped penalty."""

import functools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from softreg import SoftmaxRegression, _proximal
from softreg._objective import Objective, SoftmaxLoss
from softreg._penalties import ElasticNet, duality_gap, mean_target_entropy
from softreg._proximal import proximal_newton
from softreg._solvers import Monitor
from softreg._sources import ArraySource


@pytest.fixture(params=["explicit", "columns"])
def cd_model(request, monkeypatch):
    """newton-cd with its model Hessian built explicitly, or sweeping the columns of X."""
    monkeypatch.setattr(_proximal, "_explicit_pays", lambda *args: request.param == "explicit")
    return request.param


@functools.cache
def problem(seed, n_samples=50, n_features=6, n_classes=3, soft=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features)) * rng.uniform(0.3, 2.0, n_features)
    X[:, : n_features // 3] += 0.5
    logits = X @ rng.standard_normal((n_features, n_classes))
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    if soft:
        return X, proba
    labels = np.array([rng.choice(n_classes, p=p) for p in proba])
    labels[:n_classes] = np.arange(n_classes)  # every class present
    return X, labels


def make_objective(X, target, penalty, *, weight=None, fit_intercept=True, smoothing=0.0):
    n_classes = target.shape[1] if target.ndim == 2 else int(target.max()) + 1
    return Objective(
        SoftmaxLoss(n_classes, smoothing),
        ArraySource(X, target, weight, n_outputs=n_classes),
        alpha=penalty.l2,
        fit_intercept=fit_intercept,
    )


def composite(objective, penalty, theta):
    """F(θ) = smooth part + λ₁ Ω, evaluated afresh."""
    sums = objective.sums(theta)
    coef, _ = objective.unpack(theta)
    return sums.loss / sums.weight + penalty.value(coef)


def certificate(objective, penalty, theta):
    sums = objective.sums(theta, want_entropy=True)
    coef, intercept = objective.unpack(theta)
    entropy = mean_target_entropy(objective)
    return duality_gap(penalty, coef, intercept, sums, objective, entropy).gap


def solve(objective, penalty, *, tol=1e-13, screening=True):
    """newton-cd run to (near) the limit of float64."""
    theta = np.zeros(objective.n_params)
    monitor = Monitor(tol=tol, strongly_convex=True)
    return proximal_newton(objective, penalty, theta, monitor, max_iter=200, screening=screening)


def fista(objective, penalty, n_iter):
    """Accelerated proximal gradient (Beck & Teboulle, 2009) with backtracking on L."""
    theta = np.zeros(objective.n_params)
    momentum, previous, t, L = theta.copy(), theta.copy(), 1.0, 1.0
    n_coef = objective.n_coef
    for _ in range(n_iter):
        evaluation = objective.loss_gradient(momentum)
        while True:
            candidate = momentum - evaluation.gradient / L
            coef, _ = objective.unpack(candidate)
            candidate[:n_coef] = objective.pack(penalty_prox(penalty, coef, 1 / L))[:n_coef]
            step = candidate - momentum
            upper = evaluation.objective + evaluation.gradient @ step + 0.5 * L * step @ step
            if objective.loss_gradient(candidate).objective <= upper + 1e-15:
                break
            L *= 2
        theta, previous = candidate, theta
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        momentum = theta + (t - 1) / t_next * (theta - previous)
        t = t_next
    return theta


def penalty_prox(penalty, coef, step):
    """The prox of the non-smooth part λ₁Ω alone (the smooth objective holds λ₂)."""
    return ElasticNet(penalty.l1, 1.0, penalty.l1_norm).prox(coef, step)


# -- the penalty ---------------------------------------------------------------------------


@pytest.mark.parametrize("l1_norm", ["elementwise", "grouped"])
@pytest.mark.parametrize("l1_ratio", [0.0, 0.4, 1.0])
def test_prox_is_the_minimiser(l1_norm, l1_ratio):
    rng = np.random.default_rng(3)
    penalty = ElasticNet(0.7, l1_ratio, l1_norm)
    coef = rng.standard_normal((3, 5))
    coef[:, 1] *= 0.05  # a column the grouped prox sets to zero
    step = 0.8
    prox = penalty.prox(coef, step)

    def objective(V):
        return np.sum((V - coef) ** 2) / (2 * step) + penalty.value(V)

    best = objective(prox)
    for _ in range(200):  # no nearby point is lower (the objective is strongly convex)
        assert objective(prox + 1e-3 * rng.standard_normal(coef.shape)) > best
    if l1_ratio > 0:
        assert np.any(prox == 0)


@pytest.mark.parametrize("l1_norm", ["elementwise", "grouped"])
def test_fenchel_young_matches_its_definition(l1_norm):
    rng = np.random.default_rng(4)
    penalty = ElasticNet(1.3, 0.6, l1_norm)
    l1, l2 = penalty.l1, penalty.l2
    for _ in range(20):
        W, A = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
        W[:, 0] = 0
        norms = penalty.dual_norms(A)
        conjugate = np.sum(np.maximum(norms - l1, 0) ** 2) / (2 * l2)
        direct = penalty.value(W) + conjugate - np.sum(A * W)
        assert_allclose(penalty.fenchel_young(W, A), direct, rtol=1e-12, atol=1e-14)
        assert penalty.fenchel_young(W, A) >= 0


def test_fenchel_young_without_l2_is_infinite_outside_the_dual_ball():
    penalty = ElasticNet(1.0, 1.0)
    W = np.ones((2, 2))
    assert penalty.fenchel_young(W, np.full((2, 2), 1.5)) == np.inf
    # Inside: λ₁Ω(W) - ⟨A, W⟩.
    assert_allclose(penalty.fenchel_young(W, np.full((2, 2), 0.25)), 4 - 1, rtol=1e-15)


@pytest.mark.parametrize("l1_norm", ["elementwise", "grouped"])
def test_min_norm_subgradient_vanishes_only_at_the_prox_fixed_point(l1_norm):
    rng = np.random.default_rng(5)
    penalty = ElasticNet(0.5, 1.0, l1_norm)
    grad = rng.standard_normal((3, 4))
    coef = penalty.prox(-grad, 1.0)  # then 0 ∈ ∇ + ∂(λ₁Ω) at coef for the model ‖V + g‖²/2
    assert_allclose(penalty.min_norm_subgradient(coef, coef + grad), 0, atol=1e-15)
    assert np.linalg.norm(penalty.min_norm_subgradient(coef, grad)) > 0.1


# -- the certificate ---------------------------------------------------------------------------

CASES = [
    # (seed, alpha, l1_ratio, l1_norm, fit_intercept, variant)
    (0, 0.05, 1.0, "elementwise", True, "plain"),
    (1, 0.02, 0.5, "elementwise", True, "weights"),
    (2, 0.05, 1.0, "grouped", True, "plain"),
    (3, 0.03, 0.3, "grouped", False, "plain"),
    (4, 0.05, 1.0, "elementwise", False, "soft"),
    (5, 0.02, 0.7, "grouped", True, "smoothing"),
    (6, 0.01, 1.0, "grouped", True, "weights"),
    (7, 0.1, 0.9, "elementwise", True, "soft"),
    (8, 0.03, 1.0, "elementwise", True, "smoothing"),
    (9, 0.2, 0.5, "grouped", True, "sparse"),
]


def case_objective(seed, alpha, l1_ratio, l1_norm, fit_intercept, variant):
    X, target = problem(seed, soft=variant == "soft")
    weight = None
    if variant == "weights":
        weight = np.random.default_rng(seed).uniform(0.2, 3.0, X.shape[0])
    if variant == "sparse":
        X = sp.csr_matrix(np.where(np.abs(X) > 0.8, X, 0.0))
    penalty = ElasticNet(alpha, l1_ratio, l1_norm)
    smoothing = 0.1 if variant == "smoothing" else 0.0
    objective = make_objective(
        X, target, penalty, weight=weight, fit_intercept=fit_intercept, smoothing=smoothing
    )
    return penalty, objective


@pytest.mark.parametrize("case", CASES, ids=[f"{c[3]}-{c[2]}-{c[5]}" for c in CASES])
def test_certificate_is_never_below_the_true_gap(case):
    penalty, objective = case_objective(*case)
    reference, _ = solve(objective, penalty)
    F_star = composite(objective, penalty, reference.theta)
    assert reference.evaluation.gap_bound <= 1e-11 * F_star
    rng = np.random.default_rng(case[0])
    # Points at every distance from the optimum, sparse ones included, and far ones.
    points = []
    for scale in [1e-6, 1e-4, 1e-2, 1e-1, 1.0]:
        for _ in range(8):
            theta = reference.theta + scale * rng.standard_normal(objective.n_params)
            theta[: objective.n_coef][rng.random(objective.n_coef) < 0.4] = 0.0
            points.append(theta)
    points.append(np.zeros(objective.n_params))
    for theta in points:
        true_gap = composite(objective, penalty, theta) - F_star
        bound = certificate(objective, penalty, theta)
        # The true gap is known to the rounding of F (float64 sums), a few ulps of F*.
        assert bound >= true_gap - 1e-14 * F_star, (bound, true_gap)


@pytest.mark.usefixtures("cd_model")
@pytest.mark.parametrize("l1_norm", ["elementwise", "grouped"])
def test_certificate_goes_to_zero_at_the_optimum(l1_norm):
    penalty, objective = case_objective(11, 0.05, 1.0, l1_norm, True, "plain")
    result, _ = solve(objective, penalty, tol=1e-14)
    gaps = result.history["gap_bound"]
    assert gaps[0] > 1e-2 and gaps[-1] < 1e-13
    assert result.converged or "precision" in result.message


# -- the solver: references -------------------------------------------------------------------


def saga_reference(X, y, alpha, l1_ratio, weight=None):
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.utils.fixes import parse_version

    total = X.shape[0] if weight is None else weight.sum()
    # Before scikit-learn 1.8 `l1_ratio` is ignored unless penalty="elasticnet" (the oldest
    # supported, 1.6, fitted plain L2); from 1.8 on `penalty` is deprecated.
    legacy = parse_version(sklearn.__version__) < parse_version("1.8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(
            **({"penalty": "elasticnet"} if legacy else {}),
            l1_ratio=l1_ratio,
            C=1 / (alpha * total),
            solver="saga",
            tol=1e-15,
            max_iter=30000,
        ).fit(X, y, sample_weight=weight)
    return model.coef_, model.intercept_


@pytest.mark.usefixtures("cd_model")
@pytest.mark.parametrize("l1_ratio", [0.5, 1.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_elementwise_optimum_equals_saga(l1_ratio, weighted):
    X, y = problem(21, n_samples=40, n_features=4)
    weight = np.random.default_rng(1).uniform(0.5, 2, 40) if weighted else None
    alpha = 0.05
    model = SoftmaxRegression(alpha=alpha, l1_ratio=l1_ratio, tol=1e-12).fit(X, y, weight)
    coef, intercept = saga_reference(X, y, alpha, l1_ratio, weight)
    penalty = ElasticNet(alpha, l1_ratio)
    objective = make_objective(X, y, penalty, weight=weight)
    mine = composite(objective, penalty, objective.pack(model.coef_, model.intercept_))
    theirs = composite(objective, penalty, objective.pack(coef, intercept))
    # saga at tol 1e-15 lands within ~1e-12 of F*; newton-cd certifies 1e-12.
    assert abs(mine - theirs) <= 1e-8 * theirs
    assert mine <= theirs + 1e-13
    assert_array_equal(model.coef_ == 0, np.abs(coef) < 1e-6)  # the same exact zeros
    assert np.any(model.coef_ == 0)


@pytest.mark.usefixtures("cd_model")
@pytest.mark.parametrize("l1_ratio", [0.6, 1.0])
def test_grouped_optimum_equals_a_long_proximal_gradient_run(l1_ratio):
    X, y = problem(22, n_samples=40, n_features=5)
    penalty = ElasticNet(0.08, l1_ratio, "grouped")
    objective = make_objective(X, y, penalty)
    reference = fista(objective, penalty, 3000)
    result, _ = solve(objective, penalty, tol=1e-12)
    mine = composite(objective, penalty, result.theta)
    theirs = composite(objective, penalty, reference)
    assert abs(mine - theirs) <= 1e-8 * theirs
    coef, _ = objective.unpack(result.theta)
    reference_coef, _ = objective.unpack(reference)
    dropped = np.all(coef == 0, axis=0)
    assert dropped.any() and not dropped.all()
    assert_array_equal(dropped, np.linalg.norm(reference_coef, axis=0) < 1e-6)


# -- screening ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("cd_model")
@pytest.mark.parametrize("case", CASES, ids=[f"{c[3]}-{c[2]}-{c[5]}" for c in CASES])
def test_screening_never_removes_a_feature_nonzero_at_the_optimum(case):
    penalty, objective = case_objective(*case)
    unscreened, nothing = solve(objective, penalty, screening=False)
    screened_fit, screened = solve(objective, penalty)
    assert not nothing.any()
    coef, _ = objective.unpack(unscreened.theta)
    assert not np.any(coef[:, screened] != 0)
    assert_allclose(screened_fit.evaluation.objective, unscreened.evaluation.objective, rtol=1e-12)
    assert screened_fit.history["screened"][-1] == screened.sum()


def test_screening_drops_most_irrelevant_features():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((200, 40))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    model = SoftmaxRegression(alpha=0.05, l1_ratio=1.0, l1_norm="grouped").fit(X, y)
    assert model.history_["screened"][-1] >= 30
    assert set(model.screened_features_) <= set(np.flatnonzero(~np.any(model.coef_, axis=0)))
    assert {0, 1}.isdisjoint(model.screened_features_)


# -- the estimator ------------------------------------------------------------------------------


def test_l1_ratio_zero_is_todays_model():
    X, y = problem(30)
    plain = SoftmaxRegression(alpha=0.01, tol=1e-12).fit(X, y)
    cd = SoftmaxRegression(alpha=0.01, solver="newton-cd", tol=1e-12).fit(X, y)
    assert cd.solver_ == "newton-cd" and plain.solver_ == "newton-cg"
    # Both within 1e-12 F of F*: α-strong convexity puts each within sqrt(2e-12 F / α) ≈ 1e-5.
    assert_allclose(cd.coef_, plain.coef_, rtol=0, atol=2e-5)
    assert_allclose(cd.objective_, plain.objective_, rtol=2e-12)


def test_large_alpha_gives_all_zero_coefficients_and_log_prior_intercept():
    X, y = problem(31)
    model = SoftmaxRegression(alpha=10.0, l1_ratio=1.0).fit(X, y)
    assert not model.coef_.any()
    prior = np.log(np.bincount(y) / len(y))
    assert_allclose(model.intercept_, prior - prior.mean(), atol=1e-6)


@pytest.mark.usefixtures("cd_model")
@pytest.mark.parametrize("l1_norm", ["elementwise", "grouped"])
def test_composes_with_weights_csr_soft_labels_and_float32(l1_norm):
    X, y = problem(32, n_samples=30)
    params = {"alpha": 0.03, "l1_ratio": 0.8, "l1_norm": l1_norm, "tol": 1e-12}
    reference = SoftmaxRegression(**params).fit(X, y)
    # Integer weights are repeated rows.
    counts = np.arange(30) % 3 + 1
    weighted = SoftmaxRegression(**params).fit(X, y, counts)
    repeated = SoftmaxRegression(**params).fit(np.repeat(X, counts, 0), np.repeat(y, counts))
    assert_allclose(weighted.coef_, repeated.coef_, atol=1e-6)
    assert_array_equal(weighted.coef_ == 0, repeated.coef_ == 0)
    # CSR equals dense; one-hot soft labels equal hard labels.
    sparse = SoftmaxRegression(**params).fit(sp.csr_matrix(X), y)
    assert_allclose(sparse.coef_, reference.coef_, atol=1e-6)
    soft = SoftmaxRegression(**params).fit(X, np.eye(3)[y])
    assert_allclose(soft.coef_, reference.coef_, atol=1e-6)
    # float32 trains in float32 (no screening) to float32's certificate.
    single = SoftmaxRegression(**{**params, "tol": None}).fit(X.astype(np.float32), y)
    assert single.coef_.dtype == np.float32 and len(single.screened_features_) == 0
    assert_allclose(single.coef_, reference.coef_, atol=2e-2)
    # Label smoothing changes the optimum and is still certified.
    smooth = SoftmaxRegression(**params, label_smoothing=0.2).fit(X, y)
    assert smooth.converged_ and not np.allclose(smooth.coef_, reference.coef_)


def test_history_counts_screened_features_and_sweeps():
    X, y = problem(33, n_samples=60, n_features=12)
    model = SoftmaxRegression(alpha=0.1, l1_ratio=1.0).fit(X, y)
    history = model.history_
    n = len(history["objective"])
    assert n == model.n_iter_ + 1
    for key in ["screened", "sweeps", "gap_bound", "gradient_norm", "time"]:
        assert len(history[key]) == n
    assert np.all(np.diff(history["screened"]) >= 0)  # screening never undoes itself
    assert history["gap_bound"][-1] <= model.tol_ * model.objective_
    assert model.optimality_gap_bound_ == history["gap_bound"][-1]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"l1_ratio": 0.5, "solver": "lbfgs"}, "solver='lbfgs' handles only the L2 penalty"),
        ({"l1_ratio": 0.5, "alpha": 0.0}, r"needs alpha > 0; got alpha=0.0"),
        ({"solver": "newton-cd", "alpha": 0}, r"needs alpha > 0; got alpha=0"),
        ({"l1_ratio": 1.5}, r"'l1_ratio' parameter of SoftmaxRegression must be a real number"),
        ({"l1_norm": "rows"}, r"'l1_norm' parameter .* must be one of 'elementwise', 'grouped'"),
        ({"l1_ratio": 0.5, "checkpoint": "x.ckpt"}, r"writes no checkpoints; got checkpoint="),
    ],
)
def test_bad_penalty_parameters_are_clear_errors(params, message):
    X, y = problem(34)
    with pytest.raises(ValueError, match=message):
        SoftmaxRegression(**params).fit(X, y)


def test_newton_cd_needs_the_rows_in_memory():
    from softreg._sources import Block, CallableSource

    X, y = problem(35)
    source = CallableSource(lambda: [Block(X, y, None)], n_features=X.shape[1], dtype=X.dtype)
    objective = Objective(SoftmaxLoss(3), source, alpha=0.0, fit_intercept=True)
    with pytest.raises(TypeError, match=r"must be in memory \(an ArraySource\); got a Callable"):
        solve(objective, ElasticNet(0.1, 1.0))
