"""newton-cd's explicit model Hessian: its entries, and the model minimiser it leads to.

The explicit model (``softreg._explicit_hessian``) and the column model of
``softreg._proximal`` minimise the same quadratic model plus ``λ₁ Ω``; the end-to-end
optima under both are pinned in tests/test_sparse.py (the ``cd_model`` fixture)."""

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from softreg import SoftmaxRegression, _explicit_hessian, _proximal
from softreg._explicit_hessian import model_hessian
from softreg._objective import Objective, SoftmaxLoss
from softreg._penalties import ElasticNet
from softreg._proximal import _Columns, _minimise_model, _probabilities, _Screen
from softreg._sources import ArraySource


def kronecker_hessian(X, weight, proba, features, fit_intercept):
    """``Σ_i w_i (x̃_i x̃_iᵀ) ⊗ (diag(p_i) - p_i p_iᵀ)``, row by row."""
    X = X.toarray() if sp.issparse(X) else X
    columns = X[:, features]
    if fit_intercept:
        columns = np.hstack([columns, np.ones((X.shape[0], 1))])
    return sum(
        w * np.kron(np.outer(x, x), np.diag(p) - np.outer(p, p))
        for w, x, p in zip(weight, columns, proba, strict=True)
    )


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("block_entries", [1 << 21, 50])  # one block of rows, or many
def test_model_hessian_is_the_kronecker_sum(fit_intercept, sparse, block_entries, monkeypatch):
    monkeypatch.setattr(_explicit_hessian, "_BLOCK_ENTRIES", block_entries)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 5)) * (rng.random((30, 5)) < 0.6)
    X = sp.csr_matrix(X) if sparse else X
    proba = rng.dirichlet(np.ones(4), size=30)
    weight = rng.uniform(0.5, 2.0, 30) / 30
    features = np.array([0, 2, 3])
    hessian = model_hessian(X, weight, proba, features, fit_intercept)
    expected = kronecker_hessian(X, weight, proba, features, fit_intercept)
    assert hessian.shape == ((3 + fit_intercept) * 4,) * 2
    assert_allclose(hessian, expected, rtol=1e-13, atol=1e-15)


def model_minimiser(kind, monkeypatch, *, l1_norm, fit_intercept, sparse, subset=False):
    """The model minimiser at a non-zero point, with one coordinate or feature screened.

    ``subset``: feature 3 is zero and outside the working set (it must stay zero).
    """
    monkeypatch.setattr(_proximal, "_explicit_pays", lambda *args: kind == "explicit")
    rng = np.random.default_rng(3)
    n, D, K = 80, 6, 3
    X = rng.standard_normal((n, D))
    X = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0)) if sparse else X
    y = rng.integers(0, K, n)
    penalty = ElasticNet(0.05, 0.7, l1_norm)
    objective = Objective(
        SoftmaxLoss(K, 0.0),
        ArraySource(X, y, None, n_outputs=K),
        alpha=penalty.l2,
        fit_intercept=fit_intercept,
    )
    coef = rng.standard_normal((K, D)) * 0.3
    coef[:, 4] = 0.0
    if subset:
        coef[:, 3] = 0.0
    intercept = rng.standard_normal(K) * 0.2 if fit_intercept else None
    theta = objective.pack(coef, intercept)
    sums = objective.sums(theta)
    grad_coef = sums.grad_coef / sums.weight + penalty.l2 * coef
    grad_intercept = sums.grad_intercept / sums.weight if fit_intercept else None
    columns = _Columns(X, None)
    screen = _Screen(penalty, K, D, columns.norms, True)
    if penalty.grouped:
        screen.mask[4] = True
    else:
        screen.mask[1, 4] = True
    working = np.array([0, 1, 2, 4, 5] if subset else range(D), dtype=np.int64)
    point = (np.asfortranarray(coef), intercept, grad_coef, grad_intercept)
    # Damping 0.1: along b + c·1 the model's only curvature is the damping, and coordinate
    # descent converges along it at the rate 1 - μ/h; with μ = 1e-3 neither model settles
    # within the cap of sweeps (both are then cut at the same point, proving nothing).
    new_coef, new_intercept, n_sweeps = _minimise_model(
        objective, columns, penalty, screen, working, point, damping=0.1, inner_tol=1e-12
    )
    assert _probabilities(objective, X, coef, intercept).shape == (n, K)
    return new_coef, new_intercept, n_sweeps


@pytest.mark.parametrize("l1_norm", ["elementwise", "grouped"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize(("sparse", "subset"), [(False, False), (True, False), (False, True)])
def test_both_models_reach_the_same_minimiser(l1_norm, fit_intercept, sparse, subset, monkeypatch):
    options = {"l1_norm": l1_norm, "fit_intercept": fit_intercept, "sparse": sparse}
    options["subset"] = subset
    explicit = model_minimiser("explicit", monkeypatch, **options)
    columns = model_minimiser("columns", monkeypatch, **options)
    assert explicit[2] < _proximal._MAX_SWEEPS and columns[2] < _proximal._MAX_SWEEPS
    # Both run to a move below 1e-12 (h |δ|); grouped, along different paths (the explicit
    # model's exact block curvature against the column model's bound).
    assert_allclose(explicit[0], columns[0], rtol=1e-9, atol=1e-11)
    if fit_intercept:
        assert_allclose(explicit[1], columns[1], rtol=1e-9, atol=1e-11)
    # The same exact zeros, the screened coordinate among them.
    np.testing.assert_array_equal(explicit[0] == 0, columns[0] == 0)
    assert explicit[0][1, 4] == 0 and np.any(explicit[0] != 0)
    if subset:
        assert not np.any(explicit[0][:, 3]) and not np.any(columns[0][:, 3])


def test_explicit_model_is_chosen_for_many_rows_per_coordinate():
    rng = np.random.default_rng(0)
    tall = _Columns(rng.standard_normal((5000, 8)), None)
    assert _proximal._explicit_pays(tall, np.arange(8, dtype=np.int64), 5)
    wide = _Columns(sp.random(200, 500, density=0.05, format="csr", random_state=0), None)
    assert not _proximal._explicit_pays(wide, np.arange(500, dtype=np.int64), 5)
    # Too many coordinates for the explicit model, however many rows.
    many = _Columns(rng.standard_normal((5000, 300)), None)
    assert not _proximal._explicit_pays(many, np.arange(300, dtype=np.int64), 5)


def counted_builds(monkeypatch):
    builds = []
    build = _proximal.model_hessian
    monkeypatch.setattr(_proximal, "model_hessian", lambda *args: builds.append(1) or build(*args))
    return builds


def test_a_warm_started_refit_on_the_same_rows_keeps_the_hessian(monkeypatch):
    builds = counted_builds(monkeypatch)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((2000, 4))
    y = (X[:, 0] + 0.5 * rng.standard_normal(2000) > 0).astype(int) + (X[:, 1] > 0.3)
    model = SoftmaxRegression(alpha=0.01, l1_ratio=1.0, tol=1e-10, warm_start=True).fit(X, y)
    assert len(builds) >= 1
    builds.clear()
    model.set_params(alpha=0.0099).fit(X, y)
    assert model.n_iter_ >= 1 and len(builds) == 0  # a small step: the last Hessian serves
    cold = SoftmaxRegression(alpha=0.0099, l1_ratio=1.0, tol=1e-10).fit(X, y)
    assert_allclose(model.coef_, cold.coef_, rtol=1e-6, atol=1e-8)


def test_rows_changed_in_place_between_fits_give_the_new_optimum():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((2000, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.3)
    model = SoftmaxRegression(alpha=0.01, l1_ratio=1.0, tol=1e-10, warm_start=True).fit(X, y)
    X[:, 2] += 0.8 * X[:, 0]  # the same object, other rows: the kept Hessian is stale
    model.fit(X, y)
    cold = SoftmaxRegression(alpha=0.01, l1_ratio=1.0, tol=1e-10).fit(X.copy(), y)
    assert_allclose(model.coef_, cold.coef_, rtol=1e-6, atol=1e-8)
    assert model.optimality_gap_bound_ <= 1e-10 * abs(model.objective_)


def test_hessian_samples_are_nested_and_weighted_to_one():
    weight = np.random.default_rng(7).random(1000)
    weight /= weight.sum()
    rows, sampled = _proximal._hessian_sample(weight, 100)
    larger, _ = _proximal._hessian_sample(weight, 400)
    assert rows.shape == (100,) and np.all(np.diff(rows) > 0)
    assert np.all(np.isin(rows, larger))  # a doubled sample holds the smaller one
    assert_allclose(sampled, weight[rows] / weight[rows].sum(), rtol=1e-15)
    assert_allclose(sampled.sum(), 1.0, rtol=1e-14)
    everything, same = _proximal._hessian_sample(weight, 1000)
    assert everything is None and same is weight
    # A sample whose weights are all zero would be no Hessian at all: all rows instead.
    zeros = np.zeros(1000)
    zeros[np.setdiff1d(np.arange(1000), rows)] = 1e-3
    assert _proximal._hessian_sample(zeros, 100)[0] is None


def test_sampled_hessian_equals_the_full_one_on_its_rows():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((900, 4))
    proba = rng.dirichlet(np.ones(3), 900)
    columns = _Columns(X, rng.random(900) + 0.5)
    features = np.arange(4, dtype=np.int64)
    _proximal._LAST_HESSIAN.clear()
    sampled = _proximal._model_hessian(columns, proba, features, True, 300)
    rows, weight = _proximal._hessian_sample(columns.weight, 300)
    assert_allclose(sampled, kronecker_hessian(X[rows], weight, proba[rows], features, True),
                    rtol=1e-12, atol=1e-15)  # fmt: skip
    # At the same probabilities it is kept for as many rows or fewer, never for more.
    assert _proximal._model_hessian(columns, proba, features, True, 200) is sampled
    full = _proximal._model_hessian(columns, proba, features, True, None)
    assert full is not sampled
    assert_allclose(full, kronecker_hessian(X, columns.weight, proba, features, True),
                    rtol=1e-12, atol=1e-15)  # fmt: skip
    assert _proximal._model_hessian(columns, proba, features, True, 300) is full
    # Probabilities moved beyond keeping it but near it (a warm start): all rows again.
    shifted = proba * np.exp(rng.uniform(-1.0, 1.0, proba.shape))
    shifted /= shifted.sum(axis=1, keepdims=True)
    moved = _proximal._model_hessian(columns, shifted, features, True, 300)
    assert moved is not full
    assert_allclose(moved, kronecker_hessian(X, columns.weight, shifted, features, True),
                    rtol=1e-12, atol=1e-15)  # fmt: skip
    # Far from it (a cold start): the sample asked for.
    far = np.maximum(rng.dirichlet(np.full(3, 0.05), 900), 1e-12)
    far /= far.sum(axis=1, keepdims=True)
    assert np.max(np.abs(np.log(far) - np.log(shifted))) > _proximal._NEAR_LOG_PROBA
    assert_allclose(_proximal._model_hessian(columns, far, features, True, 300),
                    kronecker_hessian(X[rows], weight, far[rows], features, True),
                    rtol=1e-12, atol=1e-15)  # fmt: skip


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_a_sampled_model_hessian_reaches_the_exact_optimum(l1_ratio, monkeypatch):
    rng = np.random.default_rng(9)
    n, D, K = 3000, 6, 4
    X = rng.standard_normal((n, D)) @ rng.standard_normal((D, D))  # correlated features
    logits = X[:, :3] @ rng.standard_normal((3, K))
    y = (logits + rng.gumbel(size=(n, K))).argmax(axis=1)
    rows_asked = []
    build = _proximal._model_hessian
    monkeypatch.setattr(
        _proximal, "_model_hessian", lambda *args: rows_asked.append(args[-1]) or build(*args)
    )

    def fit(start, tol):
        monkeypatch.setattr(_proximal, "_SAMPLE_START", start)
        _proximal._LAST_HESSIAN.clear()
        rows_asked.clear()
        return SoftmaxRegression(alpha=0.02, l1_ratio=l1_ratio, tol=tol).fit(X, y)

    exact = fit(1 << 40, 1e-13)
    assert min(rows_asked) >= n  # the exact Hessian throughout
    for tol in (1e-6, 1e-10):
        sampled = fit(16, tol)
        assert min(rows_asked) == 16 and sampled.converged_  # sampled models were used
        true_gap = sampled.objective_ - exact.objective_
        # The certificate bounds the true gap (exact's own gap, ≤ 1e-13 |F|, is the slack).
        assert sampled.optimality_gap_bound_ >= true_gap - 1e-13 * abs(exact.objective_)
        assert sampled.optimality_gap_bound_ <= tol * abs(sampled.objective_)
    assert abs(sampled.objective_ - exact.objective_) <= 1e-10 * abs(exact.objective_)
    np.testing.assert_array_equal(sampled.coef_ == 0, exact.coef_ == 0)
    assert np.any(exact.coef_ == 0) and np.any(exact.coef_ != 0)
