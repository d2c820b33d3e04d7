"""The estimators' dataset path: fit(dataset), standardize=True, predictions streamed."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_iris

from softreg import LinearRegression, SoftmaxRegression
from softreg._sources import ArrayDataset, Moments

# Every solver (gd included) reaches the optimum to rounding on standardised iris at alpha
# 0.1 within a few dozen iterations, so fits that differ only in how rows are cut into blocks
# agree to ~1e-15: tighter than the 1e-10 / 1e-8 the tests ask.
TIGHT = {"tol": 1e-13, "max_iter": 2000}


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    labels = np.array(["setosa", "versicolor", "virginica"])[y[order]]
    return np.ascontiguousarray(X[order]), labels, rng.uniform(0.5, 2.0, len(y))


def assert_same_fit(a, b, rtol=1e-10):
    np.testing.assert_allclose(a.objective_, b.objective_, rtol=rtol)
    # How far apart two certified fits may be in W. R = L + (α/2)‖W‖²_F with L convex, so R
    # is α-strongly convex in W (μ ≥ α) and, at the minimiser θ* where ∇R(θ*) = 0,
    #     R(θ) - R* ≥ ∇R(θ*)ᵀ(θ - θ*) + (α/2)‖W - W*‖²_F = (α/2)‖W - W*‖²_F;
    # each fit certifies R(θ) - R* ≤ gap, hence ‖W - W*‖_F ≤ sqrt(2 gap / α), and two fits
    # are within the sum of their radii. Here (tol 1e-13, α 0.1) that is about 2e-6: fits whose
    # rounding differs (the blocks' sums added in another order) may differ that much, and
    # gradient descent, which approaches W* along the flat directions last, does (~1e-8).
    radius = sum(np.sqrt(2 * fit.optimality_gap_bound_ / fit.alpha) for fit in (a, b))
    assert np.linalg.norm(a.coef_ - b.coef_) <= radius
    # The intercept is unpenalised, so α bounds nothing there; these fits agree to 1e-8 in it.
    np.testing.assert_allclose(a.intercept_, b.intercept_, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("solver", ["gd", "lbfgs", "newton-cg"])
@pytest.mark.parametrize("weighted", [False, True])
def test_dataset_fit_in_blocks_equals_array_fit(iris, solver, weighted):
    X, y, weight = iris
    weight = weight if weighted else None
    params = {"alpha": 0.1, "solver": solver, **TIGHT}
    expected = SoftmaxRegression(**params).fit(X, y, sample_weight=weight)
    streamed = SoftmaxRegression(**params).fit(ArrayDataset(X, y, weight, rows=17))
    assert_same_fit(streamed, expected)
    assert streamed.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    assert streamed.n_features_in_ == 4


def test_soft_labels_with_class_weight_through_a_dataset(iris):
    X, y, weight = iris
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(3), size=len(y))
    params = {"alpha": 1e-2, "class_weight": {0: 2.0, 2: 0.5}, **TIGHT}
    expected = SoftmaxRegression(**params).fit(X, proba, sample_weight=weight)
    streamed = SoftmaxRegression(**params).fit(ArrayDataset(X, proba, weight, rows=32))
    assert_same_fit(streamed, expected)


@pytest.mark.parametrize("class_weight", ["balanced", {"setosa": 3.0}])
def test_class_weight_and_label_smoothing_through_a_dataset(iris, class_weight):
    X, y, weight = iris
    params = {"alpha": 1e-2, "class_weight": class_weight, "label_smoothing": 0.1, **TIGHT}
    expected = SoftmaxRegression(**params).fit(X, y, sample_weight=weight)
    streamed = SoftmaxRegression(**params).fit(ArrayDataset(X, y, weight, rows=40))
    assert_same_fit(streamed, expected)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_standardize_equals_a_fit_on_standardized_features(iris, fit_intercept):
    X, y, weight = iris
    X = X * np.array([1.0, 100.0, 1e-3, 7.0])
    if fit_intercept:  # (without one, offsets would only make the reference ill-conditioned)
        X = X + np.array([5.0, -300.0, 0.0, 1e3])
    mean = np.average(X, axis=0, weights=weight)
    std = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=weight))
    center = mean if fit_intercept else 0.0
    params = {"alpha": 1e-2, "fit_intercept": fit_intercept, **TIGHT}
    reference = SoftmaxRegression(**params).fit((X - center) / std, y, sample_weight=weight)
    model = SoftmaxRegression(standardize=True, **params).fit(X, y, sample_weight=weight)
    np.testing.assert_allclose(model.objective_, reference.objective_, rtol=1e-10)
    # The model takes raw features: its logits equal the reference's on standardised rows.
    np.testing.assert_allclose(
        model.predict_log_proba(X),
        reference.predict_log_proba((X - center) / std),
        rtol=1e-8,
        atol=1e-8,
    )
    np.testing.assert_allclose(model.coef_, reference.coef_ / std, rtol=1e-8, atol=1e-10)


def test_standardize_sparse_scales_without_centring(iris):
    X, y, _ = iris
    X = X * np.array([1.0, 100.0, 1e-3, 7.0])
    std = X.std(axis=0)
    reference = SoftmaxRegression(alpha=1e-2, **TIGHT).fit(X / std, y)
    model = SoftmaxRegression(alpha=1e-2, standardize=True, **TIGHT).fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(model.objective_, reference.objective_, rtol=1e-10)
    np.testing.assert_allclose(model.coef_, reference.coef_ / std, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=1e-8, atol=1e-8)


def test_standardize_keeps_constant_features(iris):
    X, y, _ = iris
    X = np.column_stack([X, np.full(len(y), 3.0)])
    model = SoftmaxRegression(alpha=1e-2, standardize=True, **TIGHT).fit(X, y)
    reference = SoftmaxRegression(alpha=1e-2, **TIGHT).fit(X[:, :4], y)
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(X[:, :4]))


def test_linear_regression_through_a_dataset_and_standardize():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 5)) * [1, 10, 100, 0.1, 1] + [0, 5, -50, 1, 0]
    Y = X @ rng.normal(size=(5, 2)) + rng.normal(size=(300, 2))
    weight = rng.uniform(0.5, 2.0, 300)
    params = {"alpha": 1e-3, **TIGHT}
    for y in (Y[:, 0], Y):
        expected = LinearRegression(**params).fit(X, y, sample_weight=weight)
        streamed = LinearRegression(**params).fit(ArrayDataset(X, y, weight, rows=33))
        assert_same_fit(streamed, expected)
        assert np.shape(streamed.coef_) == np.shape(expected.coef_)
        dataset = ArrayDataset(X, y, weight, rows=33)
        np.testing.assert_allclose(streamed.predict(dataset), streamed.predict(X), rtol=1e-14)
        np.testing.assert_allclose(
            streamed.score(dataset), streamed.score(X, y, sample_weight=weight), rtol=1e-14
        )
    mean = np.average(X, axis=0, weights=weight)
    std = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=weight))
    reference = LinearRegression(**params).fit((X - mean) / std, Y, sample_weight=weight)
    model = LinearRegression(standardize=True, **params).fit(X, Y, sample_weight=weight)
    np.testing.assert_allclose(model.objective_, reference.objective_, rtol=1e-10)
    np.testing.assert_allclose(model.predict(X), reference.predict((X - mean) / std), rtol=1e-9)


def test_predictions_stream_over_a_dataset(iris):
    X, y, weight = iris
    model = SoftmaxRegression(alpha=1e-2).fit(X, y)
    dataset = ArrayDataset(X, y, weight, rows=16)
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        np.testing.assert_array_equal(
            getattr(model, method)(dataset), getattr(model, method)(X), err_msg=method
        )
    assert model.score(dataset) == pytest.approx(model.score(X, y, sample_weight=weight), 1e-15)
    features_only = ArrayDataset(X, rows=16)
    np.testing.assert_array_equal(model.predict(features_only), model.predict(X))


def test_moments_merge_blocks_without_cancellation():
    rng = np.random.default_rng(3)
    X = 1e8 + rng.normal(size=(1000, 3))
    weight = rng.uniform(0, 2, 1000)
    moments = Moments(3)
    for start in range(0, 1000, 37):
        moments.add(X[start : start + 37], weight[start : start + 37])
    mean = np.average(X, axis=0, weights=weight)
    np.testing.assert_allclose(moments.mean, mean, rtol=1e-14)
    std = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=weight))
    np.testing.assert_allclose(moments.std(), std, rtol=1e-9)


def test_dataset_errors(iris):
    X, y, weight = iris
    dataset = ArrayDataset(X, y)
    with pytest.raises(ValueError, match=r"`y` must be None when `X` is a dataset"):
        SoftmaxRegression().fit(dataset, y)
    with pytest.raises(ValueError, match=r"`sample_weight` must be None when `X` is a dataset"):
        LinearRegression().fit(ArrayDataset(X, X[:, 0]), sample_weight=weight)
    with pytest.raises(ValueError, match=r"needs a dataset with a target; this one has none"):
        SoftmaxRegression().fit(ArrayDataset(X))
    with pytest.raises(ValueError, match=r"has no rows to fit on"):
        SoftmaxRegression().fit(ArrayDataset(X[:0], y[:0]))
    with pytest.raises(ValueError, match=r"`sample_weight` must have a positive sum"):
        SoftmaxRegression().fit(ArrayDataset(X, y, np.zeros(len(y))))
    with pytest.raises(ValueError, match=r"at least 2 classes in `y`; got 1 class, 'a'"):
        SoftmaxRegression().fit(ArrayDataset(X, np.full(len(y), "a")))
    model = SoftmaxRegression(alpha=1e-2).fit(dataset)
    with pytest.raises(ValueError, match=r"X has 3 features, but SoftmaxRegression is expecting 4"):
        model.predict(ArrayDataset(X[:, :3]))
    named = ArrayDataset(X, y, feature_names=np.array(["a", "b", "c", "d"]))
    model = SoftmaxRegression(alpha=1e-2).fit(named)
    assert model.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    renamed = ArrayDataset(X, y, feature_names=np.array(["a", "b", "c", "e"]))
    with pytest.raises(ValueError, match=r"feature names \['a', 'b', 'c', 'e'\] differ"):
        model.predict(renamed)
    with pytest.raises(ValueError, match=r"score needs a dataset with a target"):
        model.score(ArrayDataset(X))
    with pytest.raises(ValueError, match=r"labels \['zzz'\] the model was not trained on"):
        model.score(ArrayDataset(X, np.where(y == "setosa", "zzz", y)))
    with pytest.raises(ValueError, match=r"score needs 1-D labels"):
        model.score(ArrayDataset(X, np.eye(3)[np.searchsorted(model.classes_, y)]))
    with pytest.raises(ValueError, match=r"The label 'zzz' in row 0 is not among the classes"):
        ArrayDataset(X[:1], np.array(["zzz"])).source(classes=model.classes_)
    with pytest.raises(ValueError, match=r"has no rows to predict"):
        model.predict(ArrayDataset(X[:0]))


@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_warm_start_refit_on_the_same_data_needs_no_iteration(iris, standardize, sparse):
    # Regression: a sparse fit lays coef out transposed in θ, and a standardised one fits
    # W σ; a warm start must pack the previous coefficients the same way.
    X, y, weight = iris
    X = sp.csr_matrix(X * [1.0, 10.0, 100.0, 1.0]) if sparse else X * [1.0, 10.0, 100.0, 1.0]
    params = {"alpha": 0.1, "tol": 1e-10, "standardize": standardize, "warm_start": True}
    model = SoftmaxRegression(**params).fit(X, y, sample_weight=weight)
    assert model.n_iter_ > 0
    assert model.fit(X, y, sample_weight=weight).n_iter_ == 0
    regression = LinearRegression(**params).fit(X, weight)
    assert regression.n_iter_ > 0
    assert regression.fit(X, weight).n_iter_ == 0
