"""Tests of LinearRegression: the closed-form ridge solution (weighted, with and without
intercept, one and several outputs) for every solver, the certificate, equivalences (weights,
dtypes, sparse input), fitting options, warnings, and every error."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import Ridge

from softreg import LinearRegression

SOLVERS = ["newton-cg", "lbfgs", "gd"]
N_SAMPLES, N_FEATURES = 80, 5


def regression(n_outputs=None, *, seed=0):
    """Correlated, off-centre features and a noisy linear target; ``n_outputs=None`` is 1-D y."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(N_FEATURES, N_FEATURES)) + np.eye(N_FEATURES)
    X = rng.normal(size=(N_SAMPLES, N_FEATURES)) @ mixing + 2.0
    coef = rng.normal(size=(n_outputs or 1, N_FEATURES))
    Y = X @ coef.T + rng.normal(size=(1, n_outputs or 1)) + 0.3 * rng.normal(size=(N_SAMPLES, 1))
    return X, (Y[:, 0] if n_outputs is None else Y)


def closed_form(X, y, alpha, sample_weight=None, fit_intercept=True):
    """Minimiser of (1/S) Σ s_i ½‖W x_i + b - y_i‖² + (alpha/2)‖W‖²: the ridge normal equations
    (Xcᵀ S Xc / ΣS + alpha I) Wᵀ = Xcᵀ S Yc / ΣS on weighted-centred data, b = ȳ - W x̄."""
    s = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
    Y = y.reshape(X.shape[0], -1)
    mean_x = s @ X / s.sum() if fit_intercept else np.zeros(X.shape[1])
    mean_y = s @ Y / s.sum() if fit_intercept else np.zeros(Y.shape[1])
    Xc, Yc = X - mean_x, Y - mean_y
    gram = Xc.T @ (s[:, None] * Xc) / s.sum() + alpha * np.eye(X.shape[1])
    coef = np.linalg.solve(gram, Xc.T @ (s[:, None] * Yc) / s.sum()).T
    intercept = mean_y - coef @ mean_x
    return (coef[0], intercept[0]) if y.ndim == 1 else (coef, intercept)


def objective(X, y, coef, intercept, alpha, sample_weight=None):
    """R(W, b) in float64, written out."""
    s = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
    residual = (X @ np.atleast_2d(coef).T + intercept).reshape(X.shape[0], -1) - y.reshape(
        X.shape[0], -1
    )
    return 0.5 * s @ np.sum(residual**2, axis=1) / s.sum() + 0.5 * alpha * np.sum(coef**2)


# --------------------------------------------------------------------------------------------
# The closed-form ridge solution
# --------------------------------------------------------------------------------------------

# What each solver reaches here before the rounding floor. alpha > 0: the relative gap bound
# (newton-cg and lbfgs 1e-12, gd 1e-10). alpha = 0: tol is the largest gradient entry; lbfgs
# stops between 1e-12 and 1.5e-9, gd between 5e-10 and 1.6e-8 (the objective's rounding).
TOL = {
    ("newton-cg", 1e-2): 1e-12,
    ("lbfgs", 1e-2): 1e-12,
    ("gd", 1e-2): 1e-10,
    ("newton-cg", 0.0): 1e-12,
    ("lbfgs", 0.0): 1e-8,
    ("gd", 0.0): 3e-8,
}


@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n_outputs", [None, 3], ids=["single", "multi"])
@pytest.mark.parametrize("alpha", [1e-2, 0.0])
@pytest.mark.parametrize("solver", SOLVERS)
def test_matches_closed_form_ridge(solver, alpha, n_outputs, weighted, fit_intercept):
    X, y = regression(n_outputs)
    rng = np.random.default_rng(1)
    sample_weight = 10.0 ** rng.uniform(-1, 1, N_SAMPLES) if weighted else None
    model = LinearRegression(
        alpha=alpha,
        solver=solver,
        tol=TOL[solver, alpha],
        fit_intercept=fit_intercept,
        max_iter=20_000,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model.fit(X, y, sample_weight=sample_weight)
    coef, intercept = closed_form(X, y, alpha, sample_weight, fit_intercept)
    shape = (N_FEATURES,) if n_outputs is None else (n_outputs, N_FEATURES)
    assert model.coef_.shape == shape
    assert np.shape(model.intercept_) == np.shape(intercept)
    # Coefficients to 1e-6. Measured: newton-cg 2e-8 (1e-14 at alpha=0), lbfgs 1e-8, gd 7e-7:
    # a certified gap bounds the distance to the optimum only by ~sqrt(2 gap / λ_min).
    assert_allclose(model.coef_, coef, rtol=0, atol=1e-6)
    assert_allclose(model.intercept_, intercept if fit_intercept else 0.0, rtol=0, atol=1e-6)
    optimum = objective(X, y, coef, intercept, alpha, sample_weight)
    assert model.objective_ == pytest.approx(optimum, rel=1e-10)
    if alpha > 0:
        assert model.optimality_gap_bound_ <= TOL[solver, alpha] * model.objective_
    else:
        assert model.optimality_gap_bound_ == np.inf


def test_matches_sklearn_ridge():
    """Ridge's alpha is ours times Σ s (its objective is not divided by the weight total)."""
    X, y = regression(2)
    sample_weight = np.random.default_rng(2).uniform(0.5, 2, N_SAMPLES)
    alpha = 1e-2
    model = LinearRegression(alpha=alpha, tol=1e-12).fit(X, y, sample_weight=sample_weight)
    ridge = Ridge(alpha=alpha * sample_weight.sum(), solver="cholesky").fit(
        X, y, sample_weight=sample_weight
    )
    assert_allclose(model.coef_, ridge.coef_, rtol=0, atol=1e-8)
    assert_allclose(model.intercept_, ridge.intercept_, rtol=0, atol=1e-8)
    assert_allclose(model.predict(X), ridge.predict(X), rtol=0, atol=1e-8)


def test_prediction_shapes():
    X, y = regression()
    single = LinearRegression().fit(X, y)
    assert single.predict(X).shape == (N_SAMPLES,)
    assert np.ndim(single.intercept_) == 0
    column = LinearRegression().fit(X, y[:, None])  # (n, 1) stays two-dimensional
    assert column.coef_.shape == (1, N_FEATURES)
    assert column.predict(X).shape == (N_SAMPLES, 1)
    assert_allclose(column.predict(X)[:, 0], single.predict(X), rtol=1e-12)
    assert_allclose(single.predict(X), X @ single.coef_ + single.intercept_, rtol=1e-14)
    assert single.score(X, y) > 0.9  # R², from RegressorMixin


# --------------------------------------------------------------------------------------------
# The certificate
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_certificate_bounds_the_true_gap(solver, fit_intercept):
    X, y = regression(2)
    sample_weight = np.random.default_rng(3).uniform(0.5, 2, N_SAMPLES)
    alpha, tol = 1e-1, 1e-5
    model = LinearRegression(alpha=alpha, solver=solver, tol=tol, fit_intercept=fit_intercept)
    model.fit(X, y, sample_weight=sample_weight)
    coef, intercept = closed_form(X, y, alpha, sample_weight, fit_intercept)
    optimum = objective(X, y, coef, intercept, alpha, sample_weight)
    true_gap = model.history_["objective"] - optimum
    assert true_gap[0] > 1e-2 * optimum
    assert np.all(model.history_["gap_bound"] >= true_gap - 4e-16 * optimum)
    assert model.converged_ and model.optimality_gap_bound_ <= tol * model.objective_
    history = model.history_
    for values in history.values():
        assert values.shape == (model.n_iter_ + 1,)
    if solver in ("gd", "newton-cg"):
        assert np.all(np.diff(history["objective"]) <= 0)


# --------------------------------------------------------------------------------------------
# Equivalences
# --------------------------------------------------------------------------------------------


def test_integer_weights_equal_repeated_rows():
    X, y = regression(2)
    repeat = np.random.default_rng(4).integers(0, 4, size=N_SAMPLES)
    weighted = LinearRegression(alpha=1e-2, tol=1e-12).fit(X, y, sample_weight=repeat)
    repeated = LinearRegression(alpha=1e-2, tol=1e-12).fit(
        np.repeat(X, repeat, axis=0), np.repeat(y, repeat, axis=0)
    )
    assert_allclose(weighted.coef_, repeated.coef_, rtol=0, atol=1e-9)
    assert_allclose(weighted.intercept_, repeated.intercept_, rtol=0, atol=1e-9)


def test_csr_and_dense_fits_agree():
    X, y = regression(2)
    X[np.random.default_rng(5).random(X.shape) < 0.5] = 0.0
    dense = LinearRegression(alpha=1e-2, tol=1e-12).fit(X, y)
    csr = LinearRegression(alpha=1e-2, tol=1e-12).fit(sp.csr_matrix(X), y)
    assert_allclose(csr.coef_, dense.coef_, rtol=0, atol=1e-10)
    assert_allclose(csr.predict(sp.csr_matrix(X)), dense.predict(X), rtol=0, atol=1e-10)


def test_float32_agrees_with_float64_to_float32_precision():
    X, y = regression(2)
    single = LinearRegression(alpha=1e-2).fit(X.astype(np.float32), y.astype(np.float32))
    coef, intercept = closed_form(X, y, 1e-2)
    assert single.coef_.dtype == single.intercept_.dtype == np.float32
    assert single.predict(X.astype(np.float32)).dtype == np.float32
    # float32 rounding of the gradient, amplified by the Gram matrix's conditioning (~1e3).
    scale = np.abs(coef).max()
    assert_allclose(single.coef_, coef, rtol=0, atol=1e-4 * scale)
    assert_allclose(single.intercept_, intercept, rtol=0, atol=1e-4 * np.abs(intercept).max())


def test_dataframe_records_feature_names():
    X, y = regression()
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(N_FEATURES)])
    model = LinearRegression().fit(frame, pd.Series(y))
    assert_array_equal(model.feature_names_in_, frame.columns)
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        model.predict(frame[frame.columns[::-1]])


# --------------------------------------------------------------------------------------------
# Fitting options and warnings
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS)
def test_warm_start_takes_fewer_iterations(solver):
    X, y = regression(2)
    warm = LinearRegression(alpha=1e-1, solver=solver, warm_start=True, tol=1e-8).fit(X, y)
    warm.set_params(alpha=0.9e-1).fit(X, y)
    cold = LinearRegression(alpha=0.9e-1, solver=solver, tol=1e-8).fit(X, y)
    assert warm.n_iter_ < cold.n_iter_
    assert warm.objective_ == pytest.approx(cold.objective_, rel=2e-8)  # both certified 1e-8


def test_callback_and_verbose(capsys):
    X, y = regression()
    infos = []
    model = LinearRegression(alpha=1e-2, verbose=1, callback=infos.append).fit(X, y)
    assert [info.iteration for info in infos] == list(range(model.n_iter_ + 1))
    assert_array_equal([info.objective for info in infos], model.history_["objective"])
    assert len(capsys.readouterr().out.splitlines()) == model.n_iter_ + 1


def test_max_iter_reached_warns_with_advice():
    X, y = regression()
    with pytest.warns(
        ConvergenceWarning,
        match=r"LinearRegression with solver='gd' stopped after 2 iterations \(max_iter "
        r"reached\); .*Increase max_iter",
    ):
        model = LinearRegression(alpha=1e-2, solver="gd", max_iter=2).fit(X, y)
    assert not model.converged_ and model.n_iter_ == 2


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

X_SMALL, Y_SMALL = regression()


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.where(np.eye(N_SAMPLES, N_FEATURES) == 1, np.nan, X_SMALL), Y_SMALL, "contains NaN"),
        (X_SMALL, np.r_[np.inf, Y_SMALL[1:]], r"`y` must hold finite numbers \(no NaN or inf\)"),
        (X_SMALL, Y_SMALL[:-1], r"n_samples=80; got shape \(79,\)"),
        (X_SMALL, Y_SMALL[:, None, None], r"\(n_samples, n_targets\) .*; got shape \(80, 1, 1\)"),
        (
            X_SMALL,
            Y_SMALL.astype(object),
            r"Unknown label type: `y` must hold real numbers .*; got dtype object",
        ),
        (X_SMALL, Y_SMALL.astype(complex), r"Unknown label type: .*; got dtype complex128"),
        (X_SMALL, None, "LinearRegression requires y to be passed"),
    ],
    ids=["nan-X", "inf-y", "y-length", "y-3d", "object-y", "complex-y", "no-y"],
)
def test_bad_input_raises(X, y, match):
    with pytest.raises(ValueError, match=match):
        LinearRegression().fit(X, y)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"alpha": -1.0}, r"'alpha' parameter of LinearRegression must be a real number in \[0,"),
        ({"tol": -1.0}, r"'tol' parameter of LinearRegression must be None or a real number"),
        ({"solver": "cholesky"}, r"'solver' parameter .*; got 'cholesky'"),
    ],
)
def test_bad_parameters_raise(params, match):
    with pytest.raises(ValueError, match=match):
        LinearRegression(**params).fit(X_SMALL, Y_SMALL)


def test_bad_sample_weight_raises():
    with pytest.raises(ValueError, match=r"`sample_weight` must be finite and non-negative"):
        LinearRegression().fit(X_SMALL, Y_SMALL, sample_weight=-np.ones(N_SAMPLES))
    with pytest.raises(ValueError, match=r"`sample_weight` must have a positive sum"):
        LinearRegression().fit(X_SMALL, Y_SMALL, sample_weight=np.zeros(N_SAMPLES))


def test_predict_errors():
    with pytest.raises(NotFittedError, match="This LinearRegression instance is not fitted"):
        LinearRegression().predict(X_SMALL)
    model = LinearRegression().fit(X_SMALL, Y_SMALL)
    with pytest.raises(ValueError, match="X has 4 features, but LinearRegression is expecting 5"):
        model.predict(X_SMALL[:, :4])
