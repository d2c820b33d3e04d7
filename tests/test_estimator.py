"""Tests of SoftmaxRegression: the optimum against scikit-learn on digits for every solver, the
optimality certificate against a tight reference, equivalences (soft labels, weights, dtypes,
sparse input, class weights, label smoothing), the two-class sigmoid form, stable
log-probabilities, fitting options (warm start, callback, verbose), warnings, and every error."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import softreg
from softreg import SeparableDataWarning, SoftmaxRegression
from softreg._objective import SoftmaxLoss, objective_value

SOLVERS = ["newton-cg", "lbfgs", "gd"]
ALPHAS = [1e-2, 1e-4]


# --------------------------------------------------------------------------------------------
# Data and references
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's bundled digits (1797 × 64, 10 classes), standardised, and sample weights."""
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, size=X.shape[0])
    return X, y, sample_weight


@pytest.fixture(scope="module")
def sklearn_fit(digits):
    """scikit-learn's LogisticRegression at our objective (C = 1 / (alpha · Σ s)), cached.

    One BLAS/OpenMP thread: on this shared 2-core machine scikit-learn's threaded fit of
    digits takes 10-20 s instead of 0.2 s.
    """
    X, y, weight = digits
    cache = {}

    def fit(alpha, weighted, solver, tol, fit_intercept=True):
        key = (alpha, weighted, solver, tol, fit_intercept)
        if key not in cache:
            sample_weight = weight if weighted else None
            total = weight.sum() if weighted else X.shape[0]
            model = LogisticRegression(
                C=1 / (alpha * total),
                solver=solver,
                tol=tol,
                max_iter=10_000,
                fit_intercept=fit_intercept,
            )
            with threadpool_limits(limits=1):
                cache[key] = model.fit(X, y, sample_weight=sample_weight)
        return cache[key]

    return fit


def blobs(n_samples=150, n_features=4, n_classes=3, *, spread=1.5, seed=0):
    """Overlapping Gaussian classes: a small problem with a finite optimum even at alpha=0."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=spread, size=(n_classes, n_features))
    y = rng.permutation(np.arange(n_samples) % n_classes)
    X = centers[y] + rng.normal(size=(n_samples, n_features))
    return X, y


def tight(**params):
    """Newton-CG certified to 1e-12 relative: the fit compared in the equivalence tests."""
    return SoftmaxRegression(solver="newton-cg", tol=1e-12, **params)


# Two tight fits of one optimum on these small problems agree to 3e-14 (measured).
COEF_ATOL = 1e-12


# --------------------------------------------------------------------------------------------
# The optimum on digits, against scikit-learn
# --------------------------------------------------------------------------------------------

# Every solver certifies a relative gap of 1e-12 on digits (with the intercept polish;
# measured: newton-cg 9-13 iterations, lbfgs 72-235, gd 151-604). Coefficients to 1e-5 need
# that much: a certificate pins R, and at alpha=1e-4 a relative gap of 1e-10 still leaves the
# intercept 5e-5 from the optimum along the flattest directions (lbfgs, measured).
TOL = 1e-12


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("solver", SOLVERS)
def test_digits_optimum_matches_sklearn(digits, sklearn_fit, solver, alpha, weighted):
    X, y, weight = digits
    sample_weight = weight if weighted else None
    model = SoftmaxRegression(alpha=alpha, solver=solver, tol=TOL, max_iter=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(X, y, sample_weight=sample_weight)
    assert model.converged_
    assert model.optimality_gap_bound_ <= TOL * model.objective_
    objective = objective_value(X, y, model.coef_, model.intercept_, alpha, sample_weight)
    assert model.objective_ == pytest.approx(objective, rel=1e-14)  # R at the coefficients
    # The bar: scikit-learn's lbfgs at tol 1e-10 agrees to 1e-8 in the objective.
    lbfgs = sklearn_fit(alpha, weighted, "lbfgs", 1e-10)
    reference = objective_value(X, y, lbfgs.coef_, lbfgs.intercept_, alpha, sample_weight)
    assert abs(objective - reference) <= 1e-8 * reference
    # The certificate holds against scikit-learn's newton-cholesky optimum (tol 1e-12), up to
    # the rounding of R: each evaluation sums 1797 weighted terms in blocks, measured to differ
    # by up to 1.3e-15 relative between two evaluations of the same optimum (numpy 2.4).
    newton = sklearn_fit(alpha, weighted, "newton-cholesky", 1e-12)
    optimum = objective_value(X, y, newton.coef_, newton.intercept_, alpha, sample_weight)
    assert objective - optimum <= model.optimality_gap_bound_ + 4e-15 * optimum
    # Coefficients to 1e-5 against that optimum. scikit-learn's lbfgs at tol 1e-10 is itself
    # off by up to 1.1e-5 in coef_ and 6e-5 in intercept_ at alpha=1e-4 (its objective is
    # 1.3e-11 relative above the optimum), so it cannot be the coefficient reference.
    # The intercept lies along the flattest directions: at a certified relative gap of 1e-12,
    # gd's intercept (alpha 1e-4, weighted) was measured 1.13e-5 away (2.4e-6 at tol 1e-13).
    assert_allclose(model.coef_, newton.coef_, rtol=0, atol=1e-5)
    assert_allclose(model.intercept_, newton.intercept_, rtol=0, atol=2e-5)


# --------------------------------------------------------------------------------------------
# The certificate and the history
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_certificate_bounds_the_true_gap(digits, sklearn_fit, solver, weighted, fit_intercept):
    """Every recorded iterate's bound is >= R - R*, and the last one <= tol·|R|."""
    X, y, weight = digits
    alpha, tol = 1e-2, 1e-4  # a loose tol, so that the true gaps are far above rounding
    sample_weight = weight if weighted else None
    newton = sklearn_fit(alpha, weighted, "newton-cholesky", 1e-12, fit_intercept)
    intercept = newton.intercept_ if fit_intercept else None
    optimum = objective_value(X, y, newton.coef_, intercept, alpha, sample_weight)
    model = SoftmaxRegression(alpha=alpha, solver=solver, tol=tol, fit_intercept=fit_intercept).fit(
        X, y, sample_weight=sample_weight
    )
    history = model.history_
    true_gap = history["objective"] - optimum
    assert true_gap[0] > 1e-2 * optimum  # the start is far from the optimum
    # R* is known to ~1e-16 relative; allow a few rounding errors of R.
    assert np.all(history["gap_bound"] >= true_gap - 4e-16 * optimum)
    assert model.converged_
    assert model.optimality_gap_bound_ <= tol * abs(model.objective_)
    assert model.optimality_gap_bound_ == history["gap_bound"][-1]
    assert model.objective_ == history["objective"][-1]


@pytest.mark.parametrize("solver", SOLVERS)
def test_history_records_every_iteration(solver):
    X, y = blobs()
    model = SoftmaxRegression(alpha=1e-2, solver=solver).fit(X, y)
    history = model.history_
    assert set(history) == {"objective", "gradient_norm", "gap_bound", "time"}
    for values in history.values():
        assert values.shape == (model.n_iter_ + 1,)
    assert model.n_iter_ >= 2
    time = history["time"]
    assert time[0] >= 0 and np.all(np.diff(time) >= 0)
    assert np.all(np.isfinite(history["gap_bound"])) and np.all(history["gradient_norm"] >= 0)
    if solver in ("gd", "newton-cg"):
        # Both accept a step only on Armijo's sufficient decrease; L-BFGS's line search
        # does too, but scipy may report an iterate of its own, so it is not pinned here.
        assert np.all(np.diff(history["objective"]) <= 0)


def test_no_certificate_without_penalty():
    """alpha = 0: no bound (inf); the run stops when every gradient entry is <= tol."""
    X, y = blobs(spread=0.5)  # heavily overlapping: a finite optimum exists
    model = SoftmaxRegression(alpha=0.0, tol=1e-9).fit(X, y)
    assert model.optimality_gap_bound_ == np.inf
    assert np.all(model.history_["gap_bound"] == np.inf)
    assert model.converged_
    assert model.history_["gradient_norm"][-1] <= 1e-9 * np.sqrt(model.coef_.size + 3)


def test_solver_auto_and_default_tol(digits):
    X, y, _ = digits
    model = SoftmaxRegression(alpha=1e-2).fit(X, y)
    assert model.solver_ == "newton-cg"
    assert model.tol_ == 1e-6
    assert SoftmaxRegression(alpha=1e-2).fit(X.astype(np.float32), y).tol_ == 1e-3


@pytest.mark.parametrize(("n_features", "solver"), [(199, "newton-cg"), (200, "lbfgs")])
def test_solver_auto_threshold(n_features, solver):
    """Newton-CG up to 2000 parameters (10 classes × 200 = 2000), L-BFGS from 2010 on
    well-conditioned dense features (Gaussian: C's eigenvalue spread ~3)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((400, n_features)), np.arange(400) % 10
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = SoftmaxRegression(alpha=1.0, max_iter=2).fit(X, y)
    assert model.solver_ == solver


@pytest.mark.parametrize("kind", ["sparse", "ill-conditioned"])
def test_solver_auto_newton_beyond_the_threshold(kind):
    """Beyond 2000 parameters Newton-CG on sparse data and where its preconditioner pays."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((400, 200)), np.arange(400) % 10
    if kind == "sparse":
        X = sp.random(400, 200, density=0.05, format="csr", random_state=0)
    else:  # features on scales 1e-2 .. 1e2: C's eigenvalue spread ~1e8
        X *= np.logspace(-2, 2, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = SoftmaxRegression(alpha=1.0, max_iter=2).fit(X, y)
    assert model.solver_ == "newton-cg"


def test_newton_cg_certifies_past_the_rounding_of_the_objective():
    """Regression: Newton-CG's Armijo test compares objective values, so it stalled at
    |grad| = 9.2e-10 once the decrease left was below the rounding of R, with a bound (first
    order in the intercept gradient) stuck at 2.4e-9 relative. Fixed by the intercept polish."""
    X, y = blobs()
    repeat = np.random.default_rng(2).integers(0, 4, size=len(y))
    X, y = np.repeat(X, repeat, axis=0), np.repeat(y, repeat)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = SoftmaxRegression(alpha=1e-2, solver="newton-cg", tol=1e-12).fit(X, y)
    assert model.converged_


def test_newton_cg_certifies_the_weighted_flat_problem():
    """Regression: Newton-CG stalled at |grad| = 2.3e-11 with the bound at 8.9e-10 relative,
    because the final intercept polish was refused for raising R by rounding noise."""
    rng = np.random.RandomState(42)  # the data of check_sample_weight_equivalence
    X, y = rng.rand(15, 30), rng.randint(0, 3, size=15)
    weight = rng.randint(0, 5, size=15)
    order = np.random.RandomState(0).permutation(15)  # sklearn.utils.shuffle(random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = SoftmaxRegression(solver="newton-cg", tol=1e-12).fit(
            X[order], y[order], sample_weight=weight[order]
        )
    assert model.converged_


# --------------------------------------------------------------------------------------------
# Equivalences
# --------------------------------------------------------------------------------------------


def test_one_hot_soft_labels_equal_labels():
    X, y = blobs()
    hard = tight(alpha=1e-2).fit(X, y)
    soft = tight(alpha=1e-2).fit(X, np.eye(3)[y])
    assert_array_equal(soft.classes_, [0, 1, 2])
    assert_allclose(soft.coef_, hard.coef_, rtol=0, atol=COEF_ATOL)
    assert_allclose(soft.intercept_, hard.intercept_, rtol=0, atol=COEF_ATOL)
    assert soft.objective_ == pytest.approx(hard.objective_, rel=1e-14)


def test_soft_labels_with_class_names():
    X, y = blobs()
    proba = np.random.default_rng(1).dirichlet(np.ones(3), size=len(y))
    model = tight(alpha=1e-2, classes=["a", "b", "c"]).fit(X, proba)
    assert_array_equal(model.classes_, ["a", "b", "c"])
    assert set(model.predict(X)) <= {"a", "b", "c"}
    # The gradient for soft targets, (P - Y)ᵀX / n + alpha W and mean(P - Y), written out
    # here, is the one the fit drove to (nearly) zero.
    residual = model.predict_proba(X) - proba
    gradient = np.concatenate(
        [(residual.T @ X / len(y) + 1e-2 * model.coef_).ravel(), residual.mean(axis=0)]
    )
    assert np.linalg.norm(gradient) == pytest.approx(model.history_["gradient_norm"][-1], rel=1e-5)
    assert np.linalg.norm(gradient) <= 1e-7


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_integer_weights_equal_repeated_rows(sparse):
    X, y = blobs()
    weight = np.random.default_rng(2).integers(0, 4, size=len(y))  # zeros drop rows
    repeated_X, repeated_y = np.repeat(X, weight, axis=0), np.repeat(y, weight)
    convert = sp.csr_matrix if sparse else np.asarray
    weighted = tight(alpha=1e-2).fit(convert(X), y, sample_weight=weight)
    repeated = tight(alpha=1e-2).fit(convert(repeated_X), repeated_y)
    assert_allclose(weighted.coef_, repeated.coef_, rtol=0, atol=COEF_ATOL)
    assert_allclose(weighted.intercept_, repeated.intercept_, rtol=0, atol=COEF_ATOL)


def test_weight_two_equals_duplicating_every_row():
    X, y = blobs()
    doubled = tight(alpha=1e-2).fit(X, y, sample_weight=np.full(len(y), 2.0))
    duplicated = tight(alpha=1e-2).fit(np.vstack([X, X]), np.concatenate([y, y]))
    plain = tight(alpha=1e-2).fit(X, y)
    for other in (duplicated, plain):  # R is normalised by Σ s, so all three agree
        assert_allclose(doubled.coef_, other.coef_, rtol=0, atol=COEF_ATOL)
        assert_allclose(doubled.intercept_, other.intercept_, rtol=0, atol=COEF_ATOL)


def test_csr_and_dense_fits_agree(digits):
    X, y, weight = digits
    dense = SoftmaxRegression(alpha=1e-2, tol=1e-10).fit(X, y, sample_weight=weight)
    csr = SoftmaxRegression(alpha=1e-2, tol=1e-10).fit(sp.csr_matrix(X), y, sample_weight=weight)
    assert_allclose(csr.coef_, dense.coef_, rtol=0, atol=1e-10)
    assert_allclose(csr.intercept_, dense.intercept_, rtol=0, atol=1e-10)
    # Sparse fits keep W transposed inside θ; the fitted attribute is C-ordered all the same.
    assert csr.coef_.flags.c_contiguous and dense.coef_.flags.c_contiguous
    assert_allclose(csr.predict_proba(sp.csr_matrix(X)), dense.predict_proba(X), atol=1e-12)
    assert_array_equal(csr.predict(X), dense.predict(X))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_rows", [1, 3, 400])
def test_sparse_rows_score_like_dense_ones(monkeypatch, dtype, n_rows):
    """Few CSR rows gather W's columns, many use a transposed copy of W: both give the
    dense logits, with empty rows, duplicate and unsorted indices."""
    from softreg import _estimator

    rng = np.random.default_rng(7)
    X_fit = rng.normal(size=(60, 50)).astype(dtype)
    model = SoftmaxRegression(alpha=1e-1).fit(X_fit, rng.integers(0, 4, 60))
    dense = sp.random(n_rows, 50, density=0.1, random_state=3, dtype=dtype).toarray()
    dense[0, 0] = 1.5  # the first row is never empty
    if n_rows > 1:
        dense[-1] = 0.0  # an empty row
    # CSR built by hand: in each row the first entry stored twice as halves, indices reversed.
    data, indices, indptr = [], [], [0]
    for row in dense:
        (columns,) = np.nonzero(row)
        values = row[columns]
        if columns.size:
            columns = np.concatenate([columns[:1], columns])[::-1]
            values = np.concatenate([values[:1] / 2, values[:1] / 2, values[1:]])[::-1]
        data.extend(values)
        indices.extend(columns)
        indptr.append(len(indices))
    rows = sp.csr_matrix(
        (np.array(data, dtype=dtype), np.array(indices), np.array(indptr)), shape=dense.shape
    )
    assert n_rows == 1 or not rows.has_sorted_indices
    expected = dense @ model.coef_.T + model.intercept_
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    for limit in (2**20, 0):  # gathered, then through the transposed copy
        monkeypatch.setattr(_estimator, "_GATHER_MAX_PRODUCTS", limit)
        logits = model.decision_function(rows)
        assert logits.dtype == dtype and logits.flags.c_contiguous
        assert_allclose(logits, expected, rtol=0, atol=tolerance)
        assert_allclose(model.predict_proba(rows), model.predict_proba(dense), atol=tolerance)
    # Served without scikit-learn's validation, bad entries still meet it (see _decision).
    rows.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict_proba(rows)


@pytest.mark.parametrize("solver", SOLVERS)
def test_float32_agrees_with_float64_to_float32_precision(digits, solver):
    """The certified quantity, R, agrees to float32 precision; the rest follows from it."""
    X, y, _ = digits
    X32 = X.astype(np.float32)
    double = SoftmaxRegression(alpha=1e-2, tol=1e-12).fit(X, y)
    # 1e-5 is certifiable in float32 by every solver here (measured bounds: newton-cg 5.8e-7,
    # lbfgs 2.7e-6, gd 1.4e-6 relative).
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        single = SoftmaxRegression(alpha=1e-2, solver=solver, tol=1e-5).fit(X32, y)
    assert single.coef_.dtype == single.intercept_.dtype == np.float32
    for method in ("predict_proba", "predict_log_proba", "decision_function"):
        assert getattr(single, method)(X32).dtype == np.float32
    # R of the float32 coefficients, evaluated in float64: within the certified 1e-5 (plus
    # float32 rounding of the bound itself); measured 9e-8 (newton-cg) to 6e-7 (lbfgs).
    eps = float(np.finfo(np.float32).eps)
    objective = objective_value(X, y, single.coef_, single.intercept_, 1e-2)
    # (Newton-CG's last step often lands far below the 1e-5 it certified, 9e-8 to 1.3e-7
    # measured, but only the certified 1e-5 is a property of the solver.)
    assert 0 <= objective - double.objective_ <= (1e-5 + 10 * eps) * double.objective_
    # A gap of δ·R pins the coefficients only to ~sqrt(2 δ R / alpha) ≈ 0.03 here, so the
    # probabilities are held to what was measured, not to what the bound implies: 3e-4 to
    # 1.01e-3 (gd, whose stopping point moves with the last bit of the block sums).
    assert_allclose(single.predict_proba(X32), double.predict_proba(X), rtol=0, atol=2e-3)
    assert_array_equal(single.predict(X32), double.predict(X))


def test_float32_is_computed_in_float32(digits, monkeypatch):
    """Every block of the objective sees float32 features and coefficients."""
    seen = set()
    original = SoftmaxLoss.block_sums

    def spy(self, block, coef, intercept, want_entropy):
        seen.add((block.X.dtype, coef.dtype, intercept.dtype, block.sample_weight.dtype))
        return original(self, block, coef, intercept, want_entropy)

    monkeypatch.setattr(SoftmaxLoss, "block_sums", spy)
    X, y, weight = digits
    SoftmaxRegression(alpha=1e-2).fit(X.astype(np.float32), y, sample_weight=weight)
    assert seen == {(np.dtype(np.float32),) * 4}


def test_gap_bound_finite_at_the_start_in_float32():
    """Regression: u in the certificate's repair summed to 0 when ∇_b R was at rounding level
    (float32 at the log-prior start), giving a NaN bound and a RuntimeWarning."""
    X, y = blobs()
    model = SoftmaxRegression(alpha=1e-2).fit(X.astype(np.float32), y)
    assert np.all(np.isfinite(model.history_["gap_bound"]))


@pytest.mark.parametrize("solver", ["lbfgs", "gd"])
def test_float32_default_tol_is_certifiable(digits, solver):
    """Regression: float32 L-BFGS and gd stopped at the rounding floor with a certified gap of
    3.6e-4 and 6.8e-4 relative, above the then default 1e-4, so a default float32 fit warned."""
    X, y, _ = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = SoftmaxRegression(alpha=1e-2, solver=solver).fit(X.astype(np.float32), y)
    assert model.converged_


def test_intercept_has_zero_mean_in_float32(digits):
    """Regression: float32 Newton-CG drifted all intercepts by -0.63 (R is flat along 1)."""
    X, y, _ = digits
    model = SoftmaxRegression(alpha=1e-2, solver="newton-cg", tol=1e-6).fit(X.astype(np.float32), y)
    assert abs(float(model.intercept_.mean())) <= 1e-6
    double = SoftmaxRegression(alpha=1e-2, tol=1e-12).fit(X, y)
    assert_allclose(model.intercept_, double.intercept_, rtol=0, atol=1e-2)


def test_string_labels_equal_integer_labels():
    X, y = blobs()
    names = np.array(["cat", "ant", "bee"])[y]  # sorted classes: ant, bee, cat
    named = tight(alpha=1e-2).fit(X, names)
    codes = tight(alpha=1e-2).fit(X, np.searchsorted(["ant", "bee", "cat"], names))
    assert_array_equal(named.classes_, ["ant", "bee", "cat"])
    assert_allclose(named.coef_, codes.coef_, rtol=0, atol=1e-12)
    assert_array_equal(named.predict(X), named.classes_[codes.predict(X)])
    assert named.score(X, names) == codes.score(X, np.searchsorted(named.classes_, names))


def test_label_smoothing_equals_smoothed_soft_labels():
    X, y = blobs()
    epsilon = 0.2
    smoothed = tight(alpha=1e-2, label_smoothing=epsilon).fit(X, y)
    soft = tight(alpha=1e-2).fit(X, (1 - epsilon) * np.eye(3)[y] + epsilon / 3)
    assert_allclose(smoothed.coef_, soft.coef_, rtol=0, atol=COEF_ATOL)
    assert_allclose(smoothed.intercept_, soft.intercept_, rtol=0, atol=COEF_ATOL)
    assert smoothed.objective_ == pytest.approx(soft.objective_, rel=1e-13)
    # Smoothing pulls the probabilities away from 0 and 1.
    assert smoothed.predict_proba(X).max() < tight(alpha=1e-2).fit(X, y).predict_proba(X).max()


def test_class_weight_balanced_equals_sample_weight():
    X, y = blobs(n_samples=150)
    y = np.where(np.arange(150) < 100, y, 0)  # make class 0 the majority
    counts = np.bincount(y)
    balanced = tight(alpha=1e-2, class_weight="balanced").fit(X, y)
    weighted = tight(alpha=1e-2).fit(X, y, sample_weight=(150 / (3 * counts))[y])
    assert_allclose(balanced.coef_, weighted.coef_, rtol=0, atol=COEF_ATOL)
    assert_allclose(balanced.intercept_, weighted.intercept_, rtol=0, atol=COEF_ATOL)


def test_class_weight_dict_equals_sample_weight():
    X, y = blobs()
    names = np.array(["a", "b", "c"])[y]
    base = np.random.default_rng(3).uniform(0.5, 2, size=len(y))
    by_dict = tight(alpha=1e-2, class_weight={"a": 3.0, "c": 0.5}).fit(X, names, sample_weight=base)
    weighted = tight(alpha=1e-2).fit(X, names, sample_weight=base * np.array([3.0, 1.0, 0.5])[y])
    assert_allclose(by_dict.coef_, weighted.coef_, rtol=0, atol=COEF_ATOL)
    assert_allclose(by_dict.intercept_, weighted.intercept_, rtol=0, atol=COEF_ATOL)


# --------------------------------------------------------------------------------------------
# Two classes: the sigmoid form
# --------------------------------------------------------------------------------------------


def test_two_classes_equal_logistic_regression_with_half_penalty():
    """Softmax with K=2 and penalty alpha on both rows is logistic regression on
    w = w1 - w0 with penalty alpha/2, since at the optimum w1 = -w0."""
    X, y = blobs(n_samples=120, n_classes=2)
    alpha = 1e-2
    model = tight(alpha=alpha).fit(X, y)
    assert model.coef_.shape == (2, 4)
    assert_allclose(model.coef_[1], -model.coef_[0], rtol=0, atol=1e-12)
    assert_allclose(model.intercept_[1], -model.intercept_[0], rtol=0, atol=1e-12)
    with threadpool_limits(limits=1):
        logistic = LogisticRegression(
            C=1 / (alpha / 2 * len(y)), solver="newton-cholesky", tol=1e-12
        ).fit(X, y)
    w = model.coef_[1] - model.coef_[0]
    b = model.intercept_[1] - model.intercept_[0]
    # R is alpha-strongly convex in W, so R(W) - R* <= gap gives ‖W - W*‖_F <= sqrt(2 gap /
    # alpha), and w = W[1] - W[0] is within sqrt(2) times that (measured bound 1.8e-7, error
    # 6e-9; scikit-learn's newton-cholesky at tol 1e-12 adds ~1e-12).
    w_atol = np.sqrt(2) * np.sqrt(2 * model.optimality_gap_bound_ / alpha) + 1e-12
    assert_allclose(w, logistic.coef_[0], rtol=0, atol=w_atol)
    assert_allclose(b, logistic.intercept_[0], rtol=0, atol=1e-9)
    decision = model.decision_function(X)
    assert decision.shape == (120,)
    assert_allclose(decision, X @ w + b, rtol=1e-12, atol=1e-12)
    assert_allclose(model.predict_proba(X)[:, 1], expit(decision), rtol=1e-12, atol=1e-15)
    assert_array_equal(model.predict(X), (decision > 0).astype(int))


# --------------------------------------------------------------------------------------------
# Stable log-probabilities
# --------------------------------------------------------------------------------------------


def test_predict_log_proba_finite_where_sklearn_gives_minus_inf():
    """Far from the data the logit gap is ~1415: exp(-1415) underflows even as a subnormal
    (below e^-745), so log(predict_proba) is -inf; ours is logits - logsumexp, exact."""
    X, y = blobs(n_samples=120, n_classes=2)
    alpha = 1e-2
    model = tight(alpha=alpha).fit(X, y)
    with threadpool_limits(limits=1):
        logistic = LogisticRegression(
            C=1 / (alpha / 2 * len(y)), solver="newton-cholesky", tol=1e-12
        ).fit(X, y)
    w = model.coef_[1] - model.coef_[0]
    b = model.intercept_[1] - model.intercept_[0]
    far = (1415.0 - b) * w / (w @ w)  # a point whose log-odds z1 - z0 are 1415
    far = far[None, :]
    gap = float(model.decision_function(far)[0])
    assert gap == pytest.approx(1415.0, rel=1e-12)
    ours = model.predict_log_proba(far)[0]
    with np.errstate(divide="ignore"):  # scikit-learn takes log(0) here
        theirs = logistic.predict_log_proba(far)[0]
    assert theirs[0] == -np.inf  # scikit-learn: log(0)
    assert np.isfinite(ours).all()
    # log p0 = -log(1 + e^gap) = -gap - log1p(e^-gap) = -gap in float64; log p1 = -log1p(e^-gap).
    assert ours[0] == pytest.approx(-gap, rel=1e-15)
    assert ours[1] == pytest.approx(-np.exp(-gap), abs=1e-300)
    assert_allclose(np.exp(ours), model.predict_proba(far)[0], rtol=1e-15)


def test_float32_log_proba_exact_where_proba_rounds_to_one():
    """Where p = 1 - 5e-8 rounds to 1.0 in float32, log(predict_proba) is 0 and ours is the
    true ~-5e-8 (this is why scikit-learn's float32 check_classifiers_train is an expected
    failure in test_sklearn_compat.py)."""
    X, y = blobs(n_samples=120, n_classes=2)
    model = SoftmaxRegression(alpha=1e-2).fit(X.astype(np.float32), y)
    w = model.coef_[1].astype(np.float64) - model.coef_[0]
    b = float(model.intercept_[1]) - float(model.intercept_[0])
    row = ((16.8 - b) * w / (w @ w))[None, :].astype(np.float32)  # log-odds ~16.8
    gap = float(model.decision_function(row)[0])
    exact = -np.log1p(np.exp(-gap))  # log p1 in float64, ~ -5e-8
    assert model.predict_proba(row)[0, 1] == np.float32(1.0)
    log_proba = model.predict_log_proba(row)[0, 1]
    assert log_proba.dtype == np.float32
    assert log_proba == pytest.approx(exact, rel=1e-6)


# --------------------------------------------------------------------------------------------
# Fitting options
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS)
def test_warm_start_takes_fewer_iterations(digits, solver):
    X, y, _ = digits
    warm = SoftmaxRegression(alpha=1e-2, solver=solver, warm_start=True).fit(X, y)
    warm.set_params(alpha=0.8e-2).fit(X, y)
    cold = SoftmaxRegression(alpha=0.8e-2, solver=solver).fit(X, y)
    assert warm.converged_ and cold.converged_
    assert warm.n_iter_ < cold.n_iter_
    assert warm.objective_ == pytest.approx(cold.objective_, rel=2e-6)
    # Refitting a converged model on the same problem starts at a certified point.
    assert warm.fit(X, y).n_iter_ == 0


def test_warm_start_with_new_classes_starts_cold():
    X, y = blobs(n_classes=3)
    model = SoftmaxRegression(alpha=1e-2, warm_start=True).fit(X, y)
    X4, y4 = blobs(n_classes=4)
    model.fit(X4, y4)
    assert model.coef_.shape == (4, 4)
    assert_allclose(model.coef_, SoftmaxRegression(alpha=1e-2).fit(X4, y4).coef_, atol=1e-12)


def test_callback_sees_every_iteration():
    X, y = blobs()
    infos = []
    model = SoftmaxRegression(alpha=1e-2, solver="lbfgs", callback=infos.append).fit(X, y)
    assert [info.iteration for info in infos] == list(range(model.n_iter_ + 1))
    for key in ("objective", "gradient_norm", "gap_bound", "time"):
        assert_array_equal([getattr(info, key) for info in infos], model.history_[key])


def test_verbose_prints_one_line_per_iteration(capsys):
    X, y = blobs()
    infos = []
    model = SoftmaxRegression(alpha=1e-2, verbose=1, callback=infos.append).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == model.n_iter_ + 1 == len(infos)  # the callback still runs
    assert re.match(r"iter +0  R = [0-9.]+  \|grad\| = [0-9.e+-]+  gap <= [0-9.e+-]+$", lines[0])
    assert float(lines[-1].split("R = ")[1].split()[0]) == pytest.approx(model.objective_)


def test_dataframe_records_feature_names():
    X, y = blobs()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = SoftmaxRegression(alpha=1e-2).fit(frame, y)
    assert_array_equal(model.feature_names_in_, ["a", "b", "c", "d"])
    assert model.n_features_in_ == 4
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        from_array = model.predict_proba(X)
    assert_allclose(model.predict_proba(frame), from_array, rtol=1e-15)
    numbered = SoftmaxRegression(alpha=1e-2).fit(pd.DataFrame(X), y)
    assert not hasattr(numbered, "feature_names_in_")


# --------------------------------------------------------------------------------------------
# Warnings
# --------------------------------------------------------------------------------------------


def test_separable_data_without_penalty_warns():
    X, y = blobs(spread=20.0)  # far-apart classes: linearly separable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(SeparableDataWarning, match=r"linearly separable.*Set alpha > 0"):
            SoftmaxRegression(alpha=0.0, max_iter=50).fit(X, y)


def test_separable_check_on_a_dataframe_does_not_warn_about_feature_names():
    """Regression: the check re-validated the fit's ndarray copy of a DataFrame's values, and
    scikit-learn warned "X does not have valid feature names" on every alpha=0 fit of a
    DataFrame (so on every `softreg fit --alpha 0` of a CSV file)."""
    X, y = blobs(spread=0.5)
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SoftmaxRegression(alpha=0.0, tol=1e-8).fit(frame, y)


def test_overlapping_data_without_penalty_does_not_warn():
    X, y = blobs(spread=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = SoftmaxRegression(alpha=0.0, tol=1e-8).fit(X, y)
    assert model.converged_


def test_max_iter_reached_warns_with_advice(digits):
    X, y, _ = digits
    message = (
        r"SoftmaxRegression with solver='gd' stopped after 3 iterations \(max_iter reached\); "
        r"the certified gap bound is .*, above tol \* \|R\| = .*\. Increase max_iter"
    )
    with pytest.warns(ConvergenceWarning, match=message):
        model = SoftmaxRegression(alpha=1e-2, solver="gd", max_iter=3).fit(X, y)
    assert not model.converged_ and model.n_iter_ == 3
    assert model.history_["objective"].shape == (4,)


def test_max_iter_reached_without_penalty_names_the_gradient():
    X, y = blobs(spread=0.5)
    with pytest.warns(ConvergenceWarning, match=r"the largest gradient entry is .*Increase"):
        SoftmaxRegression(alpha=0.0, solver="gd", max_iter=2).fit(X, y)


def test_tol_below_float32_floor_warns_with_advice(digits):
    X, y, _ = digits
    with pytest.warns(
        ConvergenceWarning,
        match=r"tol=1e-09 is below what float32 arithmetic can certify on this problem: "
        r"raise tol or use float64 data\.$",
    ):
        model = SoftmaxRegression(alpha=1e-2, tol=1e-9).fit(X.astype(np.float32), y)
    assert not model.converged_


def test_newton_cg_is_not_advised_to_itself(digits):
    X, y, _ = digits
    with pytest.warns(ConvergenceWarning) as caught:
        SoftmaxRegression(alpha=1e-2, solver="newton-cg", max_iter=1).fit(X, y)
    (message,) = [str(w.message) for w in caught]
    assert message.endswith(
        "Increase max_iter, scale the features (e.g. StandardScaler) or raise tol."
    )


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

X_SMALL, Y_SMALL = blobs(n_samples=30)
X_NAN = np.where(np.eye(30, 4) == 1, np.nan, X_SMALL)
X_INF = np.where(np.eye(30, 4) == 1, np.inf, X_SMALL)


@pytest.mark.parametrize(
    ("X", "y", "error", "match"),
    [
        (X_NAN, Y_SMALL, ValueError, "Input X contains NaN"),
        (X_INF, Y_SMALL, ValueError, "Input X contains infinity"),
        (X_SMALL[:, 0], Y_SMALL, ValueError, "Expected 2D array, got 1D array instead"),
        (X_SMALL, Y_SMALL[:-1], ValueError, r"`y` must have one label per sample \(30\); got 29"),
        (X_SMALL, np.eye(3)[Y_SMALL][:-1], ValueError, r"one row per sample \(30\); got 29 rows"),
        (X_SMALL, np.zeros(30, int), ValueError, "at least 2 classes in `y`; got 1 class, 0"),
        (X_SMALL, Y_SMALL + 0.5, ValueError, "Unknown label type: continuous"),
        (
            X_SMALL,
            np.r_[0.0, 1.0, np.nan, Y_SMALL[3:]],
            ValueError,
            "`y` must hold finite labels; got nan at index 2",
        ),
        (X_SMALL, sp.csr_matrix(np.eye(3)[Y_SMALL]), TypeError, "`y` must be a dense array"),
        (X_SMALL, None, ValueError, "requires y to be passed"),
    ],
    ids=[
        "nan",
        "inf",
        "1d-X",
        "y-length",
        "soft-y-rows",
        "one-class",
        "continuous",
        "nan-label",
        "sparse-y",
        "no-y",
    ],
)
def test_bad_input_raises(X, y, error, match):
    with pytest.raises(error, match=match):
        SoftmaxRegression().fit(X, y)


@pytest.mark.parametrize(
    ("proba", "match"),
    [
        (np.full((30, 3), 0.3), r"`y` must hold probability vectors .*summing to 0\.9"),
        (np.tile([1.5, -0.5, 0.0], (30, 1)), r"got a negative entry -0\.5 at index \(0, 1\)"),
        (np.tile([np.nan, 0.5, 0.5], (30, 1)), r"non-negative.*; got nan at index \(0, 0\)"),
    ],
    ids=["sum", "negative", "nan"],
)
def test_soft_labels_that_are_not_distributions_raise(proba, match):
    with pytest.raises(ValueError, match=match):
        SoftmaxRegression().fit(X_SMALL, proba)


@pytest.mark.parametrize(
    ("sample_weight", "match"),
    [
        (np.r_[np.ones(29), -1.0], r"`sample_weight` must be finite and non-negative; got -1\.0"),
        (np.r_[np.ones(29), np.nan], r"`sample_weight` must be finite and non-negative; got nan"),
        (
            np.ones(29),
            r"`sample_weight` must have shape \(30,\), one weight per sample; got shape \(29,\)",
        ),
        (np.zeros(30), r"`sample_weight` must have a positive sum; got all zeros"),
        (
            (Y_SMALL == 1).astype(float),
            r"needs at least 2 classes with positive weight in `y` \(sample_weight × "
            r"class_weight × class probability\); got 1 class, 1\.",
        ),
    ],
    ids=["negative", "nan", "shape", "zeros", "one-class-weighted"],
)
def test_bad_sample_weight_raises(sample_weight, match):
    with pytest.raises(ValueError, match=match):
        SoftmaxRegression().fit(X_SMALL, Y_SMALL, sample_weight=sample_weight)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (
            {"alpha": -1.0},
            r"The 'alpha' parameter of SoftmaxRegression must be a real number in "
            r"\[0, inf\); got -1\.0",
        ),
        ({"alpha": np.nan}, r"'alpha' parameter .*; got nan"),
        ({"tol": 0.0}, r"'tol' parameter .* must be None or a real number in \(0, inf\); got 0\.0"),
        ({"max_iter": 0}, r"'max_iter' parameter .* must be an integer >= 1; got 0"),
        (
            {"solver": "sgd"},
            r"'solver' parameter .* must be one of 'auto', 'gd', 'lbfgs', "
            r"'newton-cg', 'newton-cd'; got 'sgd'",
        ),
        ({"fit_intercept": 1}, r"'fit_intercept' parameter .* must be True or False; got 1"),
        ({"learning_rate": -0.1}, r"'learning_rate' parameter .*; got -0\.1"),
        ({"verbose": -1}, r"'verbose' parameter .* must be an integer >= 0; got -1"),
        ({"callback": 3}, r"'callback' parameter .* must be None or a callable; got 3"),
        ({"warm_start": "yes"}, r"'warm_start' parameter .* must be True or False; got 'yes'"),
        ({"label_smoothing": -0.1}, r"'label_smoothing' parameter .* in \[0, 1\]; got -0\.1"),
        ({"label_smoothing": 1.0}, r"'label_smoothing' parameter .* must be in \[0, 1\); got 1\.0"),
        (
            {"class_weight": "even"},
            r"'class_weight' parameter .* None or one of 'balanced' or a "
            r"dict; got 'even'",
        ),
        (
            {"class_weight": {7: 1.0}},
            r"`class_weight` names labels \[7\] that are not among the "
            r"classes \[0, 1, 2\]",
        ),
        ({"class_weight": {0: -1.0}}, r"`class_weight` values must be finite and non-negative"),
        ({"class_weight": {0: 0.0, 1: 0.0, 2: 0.0}}, r"sample_weight × class_weight\) sum to zero"),
        (
            {"class_weight": {0: 0.0, 1: 0.0}},
            r"2 classes with positive weight .*; got 1 class, 2\.",
        ),
        (
            {"classes": [0, 1, 5]},
            r"`classes` is for soft labels; with 1-D `y` it must equal the "
            r"labels present \[0, 1, 2\]; got \[0, 1, 5\]",
        ),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) else "",
)
def test_bad_parameters_raise(params, match):
    with pytest.raises(ValueError, match=match):
        SoftmaxRegression(**params).fit(X_SMALL, Y_SMALL)


def test_soft_labels_of_one_class_raise():
    proba = np.zeros((30, 3))
    proba[:, 1] = 1.0
    with pytest.raises(
        ValueError, match=r"at least 2 classes with positive weight .*; got 1 class, 1\."
    ):
        SoftmaxRegression().fit(X_SMALL, proba)


def test_label_smoothing_gives_a_weighted_out_class_a_minimiser():
    """Weights that leave one class are an error, unless smoothing gives every class mass."""
    weight = (Y_SMALL == 1).astype(float)
    model = SoftmaxRegression(alpha=1e-2, label_smoothing=0.1).fit(X_SMALL, Y_SMALL, weight)
    assert model.converged_ and np.all(np.isfinite(model.intercept_))
    assert_array_equal(model.predict(X_SMALL), 1)


def test_classes_must_name_each_soft_label_column():
    with pytest.raises(ValueError, match=r"`classes` must list 3 distinct labels, one per column"):
        SoftmaxRegression(classes=["a", "a", "b"]).fit(X_SMALL, np.eye(3)[Y_SMALL])


@pytest.fixture(scope="module")
def fitted_on_frame():
    frame = pd.DataFrame(X_SMALL, columns=["a", "b", "c", "d"])
    return SoftmaxRegression(alpha=1e-2).fit(frame, np.array(["x", "y", "z"])[Y_SMALL])


def test_predict_with_wrong_feature_count_raises():
    model = SoftmaxRegression(alpha=1e-2).fit(X_SMALL, Y_SMALL)
    message = "X has 3 features, but SoftmaxRegression is expecting 4 features as input"
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        with pytest.raises(ValueError, match=message):
            getattr(model, method)(X_SMALL[:, :3])
    with pytest.raises(ValueError, match=message):
        model.score(X_SMALL[:, :3], Y_SMALL)


def test_predict_with_wrong_feature_names_raises(fitted_on_frame):
    renamed = pd.DataFrame(X_SMALL, columns=["a", "b", "c", "e"])
    with pytest.raises(ValueError, match=r"(?s)feature names should match.*Feature names unseen"):
        fitted_on_frame.predict(renamed)
    reordered = pd.DataFrame(X_SMALL[:, [1, 0, 2, 3]], columns=["b", "a", "c", "d"])
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        fitted_on_frame.predict_proba(reordered)


def test_score_with_unseen_labels_raises(fitted_on_frame):
    frame = pd.DataFrame(X_SMALL, columns=["a", "b", "c", "d"])
    labels = np.array(["x", "y", "w"])[Y_SMALL]
    with pytest.raises(
        ValueError,
        match=r"`y` contains labels \['w'\] the model was not trained on; its classes are "
        r"\['x', 'y', 'z'\]",
    ):
        fitted_on_frame.score(frame, labels)
    assert 0 <= fitted_on_frame.score(frame, np.array(["x", "y", "z"])[Y_SMALL]) <= 1


@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "predict_log_proba", "decision_function", "score"]
)
def test_unfitted_model_raises(method):
    args = (X_SMALL, Y_SMALL) if method == "score" else (X_SMALL,)
    with pytest.raises(NotFittedError, match="This SoftmaxRegression instance is not fitted"):
        getattr(SoftmaxRegression(), method)(*args)


# --------------------------------------------------------------------------------------------
# Data whose scale would overflow the fit
# --------------------------------------------------------------------------------------------


def _scaled(dtype, scale, column=1, sparse=False):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 3))
    X[:, column] *= scale / np.abs(X[:, column]).max()  # so that max |x| = |scale|
    y = (X[:, 0] > 0).astype(int)
    X = X.astype(dtype)
    return (sp.csr_matrix(X) if sparse else X), y


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize(
    ("dtype", "limit", "scale"),
    [
        (np.float64, "1.16e+77", 1e78),
        (np.float64, "1.16e+77", -1e300),
        (np.float32, "4.29e+09", 1e10),
    ],
)
def test_features_beyond_the_fourth_root_of_the_largest_float_are_refused(
    dtype, limit, scale, sparse
):
    X, y = _scaled(dtype, scale, sparse=sparse)
    name, largest = np.dtype(dtype).name, re.escape(f"{abs(scale):.3g}")
    message = (
        rf"^Feature column 1 holds values as large as {largest} in magnitude; the fit's {name} "
        rf"arithmetic overflows beyond {re.escape(limit)} \(its products multiply up to four "
        r"such values\)\. Scale the data, e\.g\. with sklearn\.preprocessing\.StandardScaler\.$"
    )
    with pytest.raises(ValueError, match=message):
        SoftmaxRegression().fit(X, y)
    with pytest.raises(ValueError, match=message):
        softreg.LinearRegression().fit(X, y.astype(float))


def test_scale_error_names_a_dataframe_column():
    X, y = _scaled(np.float64, 2.5e100, column=2)
    frame = pd.DataFrame(X, columns=["a", "b", "income"])
    message = r"^Feature column 2 \('income'\) holds values as large as 2\.5e\+100 in magnitude"
    with pytest.raises(ValueError, match=message):
        SoftmaxRegression().fit(frame, y)


def test_sample_weights_whose_sum_overflows_are_refused():
    """Regression: weights summing past the largest float ended in a LinAlgError ("SVD did not
    converge") from the intercept's starting point."""
    X, y = _scaled(np.float64, 1.0)
    message = (
        r"^`sample_weight` must sum to a finite float64; got weights up to 1e\+308 summing to "
        r"inf\. Only their ratios matter: divide them by a constant\.$"
    )
    with pytest.raises(ValueError, match=message):
        SoftmaxRegression().fit(X, y, sample_weight=np.full(len(y), 1e308))
    # float32 data weigh in float32: 30 weights of 1e38 sum past its largest number.
    with pytest.raises(ValueError, match=r"^`sample_weight` must sum to a finite float32; "):
        SoftmaxRegression().fit(X.astype(np.float32), y, sample_weight=np.full(len(y), 1e38))
    assert SoftmaxRegression().fit(X, y, sample_weight=np.full(len(y), 1e300)).converged_


def test_linear_regression_targets_that_overflow_are_refused():
    X, y = _scaled(np.float64, 1.0)
    with pytest.raises(ValueError, match=r"^`y` holds values as large as 1e\+200 in magnitude"):
        softreg.LinearRegression().fit(X, np.where(y == 1, 1e200, 0.0))
    with pytest.raises(ValueError, match=r"^Column 1 of `y` holds values as large as 1e\+200 "):
        softreg.LinearRegression().fit(X, np.column_stack([y, 1e200 * y]).astype(float))


@pytest.mark.parametrize(("dtype", "scale"), [(np.float64, 1e76), (np.float32, 4e9)])
def test_features_just_within_range_fit_without_overflow(dtype, scale):
    """Just below the limit every product stays finite: no RuntimeWarning (pytest turns
    softreg's into errors), and a finite certificate, even though at this scale the fit
    cannot certify the default tolerance and says so."""
    X, y = _scaled(dtype, scale)
    for solver in ("newton-cg", "lbfgs"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("error", RuntimeWarning)
            model = SoftmaxRegression(solver=solver, max_iter=50).fit(X, y)
        assert np.isfinite(model.optimality_gap_bound_) and np.isfinite(model.objective_)


PREDICTIONS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_serving_fast_path_skips_validation_and_matches_it(monkeypatch, digits, dtype):
    """Native float ndarrays skip scikit-learn's validation, with the same results."""
    X, y, _ = digits
    X = X.astype(dtype)
    model = SoftmaxRegression(alpha=1e-2).fit(X, y)
    # A DataFrame without column names goes through the validation and comes out as X.
    validated = {method: getattr(model, method)(pd.DataFrame(X)) for method in PREDICTIONS}

    def no_validation(*args, **kwargs):
        raise AssertionError("validated")

    monkeypatch.setattr(SoftmaxRegression, "_validate_features", no_validation)
    for method in PREDICTIONS:
        fast = getattr(model, method)(X)
        assert fast.dtype == validated[method].dtype
        assert_array_equal(fast, validated[method])
        assert_array_equal(getattr(model, method)(np.asfortranarray(X)), fast)


@pytest.mark.parametrize(
    ("value", "message"),
    [(np.nan, "Input X contains NaN"), (np.inf, "Input X contains infinity")],
)
def test_serving_rejects_non_finite_rows(value, message):
    model = SoftmaxRegression(alpha=1e-2).fit(X_SMALL, Y_SMALL)
    row = X_SMALL[:1].copy()
    row[0, 2] = value
    for method in PREDICTIONS:
        with pytest.raises(ValueError, match=message):
            getattr(model, method)(row)


def test_serving_logits_that_overflow_are_validated_not_rejected(monkeypatch):
    """Finite entries whose logits overflow take the full validation, which accepts them."""
    model = SoftmaxRegression(alpha=1e-2).fit(X_SMALL, Y_SMALL)
    row = np.full((1, X_SMALL.shape[1]), 1e308)
    assert model._servable(row)
    seen = []
    original = SoftmaxRegression._validate_features

    def spy(self, X, reset):
        seen.append(X)
        return original(self, X, reset)

    monkeypatch.setattr(SoftmaxRegression, "_validate_features", spy)
    model.predict_proba(X_SMALL)
    assert seen == []  # finite logits: no validation
    # Logits of 1e308-sized features overflow: that is the arithmetic's, not the check's.
    with np.errstate(over="ignore", invalid="ignore"):
        logits = model.decision_function(row)
    assert len(seen) == 1 and seen[0] is row
    assert not np.all(np.isfinite(logits))


def test_serving_empty_input_still_raises():
    model = SoftmaxRegression(alpha=1e-2).fit(X_SMALL, Y_SMALL)
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\)"):
        model.predict_proba(np.empty((0, X_SMALL.shape[1])))
