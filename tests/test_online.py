"""Online learning: the optimiser (`_online.py`) and `SoftmaxRegression.partial_fit`."""

import copy
import os

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits

from softreg import DataError, SoftmaxRegression, _online, open_dataset
from softreg._objective import Objective, SoftmaxLoss, objective_value
from softreg._partial_fit import BATCH_ROWS, METHOD
from softreg._sources import ArrayDataset, ArraySource, Block, CallableSource


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _problem(n=300, n_features=5, n_classes=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features)).astype(dtype)
    y = rng.integers(0, n_classes, n)
    return X, y


# --------------------------------------------------------------------------------------------
# The optimiser


def test_update_is_pure():
    state = _online.init(np.arange(4.0))
    frozen = copy.deepcopy(state)
    new = _online.update(state, np.ones(4))
    for before, after in zip(frozen, state, strict=True):
        np.testing.assert_array_equal(before, after)  # nothing written into the old state
    assert new.step == 1 and new.moment_steps == 1
    assert not np.shares_memory(new.theta, state.theta)


def test_first_step_is_learning_rate_against_the_gradient_sign():
    # At k = 1 the bias-corrected moments are g and g², so the step is -η₁ g / (|g| + ε) with
    # η₁ = η / sqrt(1 + 1/τ).
    gradient = np.array([3.0, -0.5, 1e-3])
    state = _online.update(_online.init(np.zeros(3)), gradient, learning_rate=0.1)
    rate = 0.1 / np.sqrt(1 + 1 / _online.DECAY_STEPS)
    np.testing.assert_allclose(
        state.theta, -rate * gradient / (np.abs(gradient) + 1e-8), rtol=1e-12
    )
    np.testing.assert_array_equal(state.average, state.theta)  # weight 2/(1+1) = 1


def test_average_is_weighted_by_step_number():
    # θ̄_t = Σ s θ_s / Σ s: check the recursion against the closed form over 50 steps.
    rng = np.random.default_rng(0)
    state, iterates = _online.init(np.zeros(2)), []
    for _ in range(50):
        state = _online.update(state, rng.standard_normal(2))
        iterates.append(state.theta)
    steps = np.arange(1, 51)
    expected = (steps[:, None] * np.array(iterates)).sum(axis=0) / steps.sum()
    np.testing.assert_allclose(state.average, expected, rtol=1e-12, atol=1e-15)


def test_step_size_decays_and_resumes_from_a_saved_step():
    gradient = np.ones(1)
    fresh = _online.update(_online.init(np.zeros(1)), gradient, learning_rate=0.1)
    late = _online.update(_online.init(np.zeros(1), step=3000), gradient, learning_rate=0.1)
    # η / sqrt(1 + t/τ): step 3001 moves 1/sqrt(1 + 3001/1000) of step 1's distance.
    ratio = late.theta[0] / fresh.theta[0]
    assert ratio == pytest.approx(np.sqrt(1 + 1 / _online.DECAY_STEPS) / np.sqrt(1 + 3001 / 1000))
    assert late.step == 3001 and late.moment_steps == 1


# --------------------------------------------------------------------------------------------
# The gradient a step receives is the objective's, on the mini-batch


def _captured_gradients(monkeypatch):
    seen = []
    real = _online.update

    def spy(state, gradient, **kwargs):
        seen.append((state.theta.copy(), gradient.copy()))
        return real(state, gradient, **kwargs)

    monkeypatch.setattr(_online, "update", spy)
    return seen


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_step_gradient_matches_finite_differences(monkeypatch, soft, weighted):
    rng = np.random.default_rng(1)
    X, codes = _problem(40, 3, 3, seed=1)
    y = rng.dirichlet(np.ones(3), 40) if soft else codes
    weight = rng.uniform(0.5, 2.0, 40) if weighted else None
    alpha, eps = 0.3, 0.1
    model = SoftmaxRegression(alpha=alpha, label_smoothing=eps)
    model.partial_fit(X, y, classes=[0, 1, 2], sample_weight=weight)
    seen = _captured_gradients(monkeypatch)
    model.partial_fit(X, y, sample_weight=weight)
    theta, gradient = seen[0]
    smoothed = (1 - eps) * (np.eye(3)[codes] if not soft else y) + eps / 3

    def objective(flat):
        coef, intercept = flat[:9].reshape(3, 3), flat[9:]
        return objective_value(X, smoothed, coef, intercept, alpha, sample_weight=weight)

    step = 1e-6
    numeric = np.array(
        [
            (objective(theta + step * e) - objective(theta - step * e)) / (2 * step)
            for e in np.eye(theta.size)
        ]
    )
    # Central differences in float64: error ~ step² · R''' + eps_machine / step ~ 1e-10.
    np.testing.assert_allclose(gradient, numeric, rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------------------------
# Convergence


def test_repeated_passes_converge_to_the_fit_optimum(digits):
    X, y = digits
    alpha = 0.1
    reference = SoftmaxRegression(alpha=alpha, tol=1e-12).fit(X, y)
    optimum = objective_value(X, y, reference.coef_, reference.intercept_, alpha)
    model = SoftmaxRegression(alpha=alpha)
    rng = np.random.default_rng(0)
    gaps = []
    for epoch in range(50):
        order = rng.permutation(len(y))
        for rows in np.array_split(order, len(y) // 64):
            model.partial_fit(X[rows], y[rows], classes=np.arange(10))
        if epoch in (9, 49):
            value = objective_value(X, y, model.coef_, model.intercept_, alpha)
            gaps.append((value - optimum) / optimum)
    # Measured 3.6e-4 after 10 passes and 9.8e-6 after 50 (28 steps of ~64 rows per pass).
    assert gaps[1] < 1e-4
    assert gaps[1] < gaps[0] / 2


def test_partial_fit_after_fit_continues_from_the_fitted_model(digits):
    X, y = digits
    model = SoftmaxRegression(alpha=1e-2).fit(X, y)
    coef, intercept = model.coef_.copy(), model.intercept_.copy()
    model.set_params(learning_rate=1e-9)
    model.partial_fit(X[:100], y[:100])
    # One step of at most 1e-9 per coordinate (intercepts re-centred, also 1e-9 at most).
    np.testing.assert_allclose(model.coef_, coef, rtol=0, atol=2e-9)
    np.testing.assert_allclose(model.intercept_, intercept, rtol=0, atol=3e-9)
    assert model.n_samples_seen_ == len(y) + 100
    assert model.n_iter_ == 1 and model.solver_ == METHOD


def test_fit_after_partial_fit_restarts_the_optimiser():
    X, y = _problem()
    model = SoftmaxRegression().partial_fit(X, y, classes=[0, 1, 2])
    model.fit(X, y)
    fitted = model.coef_.copy()
    model.set_params(learning_rate=1e-12)
    model.partial_fit(X[:10], y[:10])
    # From fit's coefficients, not from the earlier online iterate.
    np.testing.assert_allclose(model.coef_, fitted, rtol=0, atol=1e-11)


# --------------------------------------------------------------------------------------------
# Equivalences


def test_large_call_is_a_pass_in_mini_batches():
    X, y = _problem(3 * BATCH_ROWS + 17)
    whole = SoftmaxRegression().partial_fit(X, y, classes=[0, 1, 2])
    split = SoftmaxRegression()
    for start in range(0, len(y), BATCH_ROWS):
        split.partial_fit(X[start : start + BATCH_ROWS], y[start : start + BATCH_ROWS], [0, 1, 2])
    np.testing.assert_array_equal(whole.coef_, split.coef_)
    np.testing.assert_array_equal(whole.intercept_, split.intercept_)
    assert whole.n_iter_ == 4 and whole.n_samples_seen_ == len(y)


def test_sample_weight_two_equals_a_repeated_row():
    X, y = _problem(50)
    weight = np.ones(50)
    weight[0] = 2.0
    weighted = SoftmaxRegression().partial_fit(X, y, [0, 1, 2], sample_weight=weight)
    repeated = SoftmaxRegression().partial_fit(np.vstack([X, X[:1]]), np.r_[y, y[0]], [0, 1, 2])
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-12, atol=1e-15)


def test_one_hot_probabilities_equal_labels():
    X, y = _problem()
    labels = SoftmaxRegression().partial_fit(X, y, classes=[0, 1, 2])
    soft = SoftmaxRegression().partial_fit(X, np.eye(3)[y], classes=[0, 1, 2])
    np.testing.assert_allclose(soft.coef_, labels.coef_, rtol=1e-12, atol=1e-15)


def test_sparse_equals_dense():
    X, y = _problem()
    X[np.abs(X) < 1] = 0
    dense = SoftmaxRegression().partial_fit(X, y, classes=[0, 1, 2])
    sparse = SoftmaxRegression().partial_fit(sp.csr_matrix(X), y, classes=[0, 1, 2])
    np.testing.assert_allclose(sparse.coef_, dense.coef_, rtol=1e-12, atol=1e-15)


def test_float32_trains_in_float32():
    X, y = _problem(dtype=np.float32)
    model = SoftmaxRegression().partial_fit(X, y, classes=[0, 1, 2])
    reference = SoftmaxRegression().partial_fit(X.astype(np.float64), y, classes=[0, 1, 2])
    assert model.coef_.dtype == np.float32
    # Adam divides by |g|: rounding of a near-zero gradient entry moves a step by up to η.
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=5e-3)


def test_string_labels_and_class_weight_dict():
    X, y = _problem()
    names = np.array(["a", "b", "c"])[y]
    model = SoftmaxRegression(class_weight={"a": 3.0}).partial_fit(X, names, ["c", "b", "a"])
    np.testing.assert_array_equal(model.classes_, ["a", "b", "c"])
    weight = np.where(y == 0, 3.0, 1.0)
    reference = SoftmaxRegression().partial_fit(X, y, [0, 1, 2], sample_weight=weight)
    np.testing.assert_array_equal(model.coef_, reference.coef_)


# --------------------------------------------------------------------------------------------
# Streams: a Source or a Dataset is one pass


def test_source_and_dataset_pass_equal_the_array_pass():
    X, y = _problem(4 * BATCH_ROWS)
    arrays = SoftmaxRegression(class_weight={1: 2.0}).partial_fit(X, y, classes=[0, 1, 2])
    dataset = SoftmaxRegression(class_weight={1: 2.0}).partial_fit(
        ArrayDataset(X, y, rows=2 * BATCH_ROWS), classes=[0, 1, 2]
    )
    source = SoftmaxRegression(class_weight={1: 2.0}).partial_fit(
        ArraySource(X, y, rows=BATCH_ROWS), classes=[0, 1, 2]
    )
    for model in (dataset, source):
        np.testing.assert_array_equal(model.coef_, arrays.coef_)
        assert model.n_samples_seen_ == len(y) and model.n_iter_ == 4


def _csv(tmp_path, X, labels):
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["label"] = labels
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)  # shortest round-trip digits: the file holds X exactly
    return open_dataset(path, target="label", cache_dir=tmp_path / "cache")


def test_file_dataset_pass_equals_the_array_pass(tmp_path):
    X, y = _problem(600)
    labels = np.array(["a", "b", "c"])[y]
    streamed = SoftmaxRegression().partial_fit(_csv(tmp_path, X, labels), classes=["a", "b", "c"])
    arrays = SoftmaxRegression().partial_fit(X, labels, classes=["a", "b", "c"])
    np.testing.assert_array_equal(streamed.coef_, arrays.coef_)
    np.testing.assert_array_equal(streamed.feature_names_in_, [f"f{i}" for i in range(5)])
    assert streamed.n_samples_seen_ == 600 and streamed.n_iter_ == 3


def test_file_with_an_unknown_label_deep_inside_leaves_the_model_unchanged(tmp_path):
    X, y = _problem(600)
    labels = np.array(["a", "b", "c"])[y]
    model = SoftmaxRegression().partial_fit(_csv(tmp_path, X, labels), classes=["a", "b", "c"])
    before = _attributes(model)
    labels[500] = "z"
    os.makedirs(tmp_path / "bad")
    with pytest.raises(DataError, match=r"has the label 'z' in row 501"):
        model.partial_fit(_csv(tmp_path / "bad", X, labels))
    _assert_same(before, model)


def _attributes(model):
    """Every attribute, arrays copied, so that a later comparison is bit for bit."""
    return copy.deepcopy(model.__dict__)


def _assert_same(before, model):
    after = model.__dict__
    assert set(after) == set(before)
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            assert after[key].dtype == value.dtype, key
            np.testing.assert_array_equal(after[key], value, err_msg=key)
        elif isinstance(value, dict):
            assert set(value) == set(after[key]), key
            for name in value:
                np.testing.assert_array_equal(after[key][name], value[name], err_msg=key)
        elif key == "_online_state":
            for mine, theirs in zip(value[0], after[key][0], strict=True):
                np.testing.assert_array_equal(mine, theirs)
            assert after[key][1] is model.coef_
        elif isinstance(value, float) and np.isnan(value):
            assert np.isnan(after[key]), key
        else:
            assert after[key] == value, key


def test_a_stream_failing_half_way_leaves_the_model_unchanged():
    X, y = _problem(600)
    model = SoftmaxRegression().partial_fit(X, y, classes=[0, 1, 2])
    before = _attributes(model)
    bad = X[:200].copy()
    bad[5, 2] = np.nan

    def blocks():
        yield Block(X[:200], y[:200], None)
        yield Block(X[200:400], y[200:400], None)
        yield Block(bad, y[:200], None)

    stream = CallableSource(blocks, n_features=5, dtype=np.float64)
    with pytest.raises(ValueError, match=r"NaN or infinity in block 2 of the stream"):
        model.partial_fit(stream)
    _assert_same(before, model)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda X, y: (X, np.r_[y[:-1], 7]), r"label 7 \(at index 299\).*not among `classes`"),
        (lambda X, y: (np.where(X > 2, np.nan, X), y), r"Input X contains NaN"),
        (lambda X, y: (np.where(X > 2, np.inf, X), y), r"Input X contains infinity"),
        (lambda X, y: (X[:0], y[:0]), r"Found array with 0 sample\(s\)"),
        (lambda X, y: (X, np.eye(4)[y]), r"must have shape \(300, 3\), one column per class"),
        (lambda X, y: (X, y[:-1]), r"`y` must have one label per sample \(300\); got 299"),
    ],
)
@pytest.mark.parametrize("trained", [False, True])
def test_bad_batch_leaves_the_model_exactly_as_before(make, message, trained):
    X, y = _problem()
    model = SoftmaxRegression()
    if trained:
        model.partial_fit(X, y, classes=[0, 1, 2])
    before = _attributes(model)
    bad_X, bad_y = make(X, y)
    with pytest.raises(ValueError, match=message):
        model.partial_fit(bad_X, bad_y, classes=[0, 1, 2])
    _assert_same(before, model)


def test_divergence_is_an_error_and_changes_nothing():
    X, y = _problem()
    model = SoftmaxRegression().partial_fit(X, y, classes=[0, 1, 2])
    before = _attributes(model)
    model.set_params(learning_rate=1e300)
    before["learning_rate"] = 1e300
    with pytest.raises(FloatingPointError, match=r"partial_fit diverged: .* lower `learning_rate`"):
        model.partial_fit(X, y)
    _assert_same(before, model)


def test_unchecked_gradient_equals_the_certified_one():
    X, y = _problem()
    objective = Objective(SoftmaxLoss(3, 0.1), ArraySource(X, y), alpha=0.1, fit_intercept=True)
    theta = np.random.default_rng(0).standard_normal(objective.n_params)
    full, quick = objective.loss_gradient(theta), objective.loss_gradient(theta, certify=False)
    np.testing.assert_array_equal(quick.gradient, full.gradient)
    assert quick.objective == full.objective and quick.gap_bound == np.inf > full.gap_bound


def test_an_empty_stream_is_an_error_and_changes_nothing():
    X, y = _problem()
    model = SoftmaxRegression().partial_fit(X, y, classes=[0, 1, 2])
    before = _attributes(model)
    empty = CallableSource(list, n_features=5, dtype=np.float64)
    with pytest.raises(ValueError, match=r"partial_fit got an empty batch: 0 rows"):
        model.partial_fit(empty)
    _assert_same(before, model)


def test_different_n_features_leaves_the_model_unchanged():
    X, y = _problem()
    model = SoftmaxRegression().partial_fit(X, y, classes=[0, 1, 2])
    before = _attributes(model)
    with pytest.raises(ValueError, match=r"X has 4 features, but SoftmaxRegression is expecting 5"):
        model.partial_fit(X[:, :4], y)
    with pytest.raises(ValueError, match=r"X has 4 features, but SoftmaxRegression is expecting 5"):
        model.partial_fit(ArraySource(X[:, :4], y))
    _assert_same(before, model)


def test_feature_names_must_match_and_model_is_unchanged():
    pandas = pytest.importorskip("pandas")
    X, y = _problem()
    names = [f"f{i}" for i in range(5)]
    model = SoftmaxRegression().partial_fit(pandas.DataFrame(X, columns=names), y, [0, 1, 2])
    before = _attributes(model)
    renamed = pandas.DataFrame(X, columns=[*names[:4], "other"])
    with pytest.raises(ValueError, match="The feature names should match"):
        model.partial_fit(renamed, y)
    _assert_same(before, model)
    stream = ArrayDataset(X, y, rows=100, feature_names=np.array([*names[:4], "other"]))
    with pytest.raises(ValueError, match="The feature names should match"):
        model.partial_fit(stream)
    _assert_same(before, model)


@pytest.mark.parametrize(
    ("kwargs", "params", "message"),
    [
        ({}, {}, r"`classes` must be passed on the first call to partial_fit"),
        ({"classes": [0]}, {}, r"`classes` must list at least 2 distinct labels; got \[0\]"),
        ({"classes": [0, 1, 2], "sample_weight": np.zeros(300)}, {}, r"sum to zero"),
        ({"classes": [0, 1, 2]}, {"class_weight": "balanced"}, r"pass a dict of per-class"),
        ({"classes": [0, 1, 2]}, {"alpha": -1.0}, r"alpha"),
        ({"classes": [0, 1, 2]}, {"standardize": True}, r"standardize=True needs the feature"),
        ({"classes": [0, 1, 2]}, {"l1_ratio": 0.5}, r"L2 objective only; l1_ratio=0\.5"),
        ({"classes": [0, 1, 2]}, {"label_smoothing": 1.0}, r"must be in \[0, 1\); got 1\.0"),
        ({"classes": [0, 1, 2]}, {"class_weight": {5: 1.0}}, r"names labels \[5\] that are not"),
        ({"classes": [0, 1, 2]}, {"class_weight": {0: -1.0}}, r"finite and non-negative"),
    ],
)
def test_bad_call_on_a_new_model_sets_nothing(kwargs, params, message):
    X, y = _problem()
    model = SoftmaxRegression(**params)
    before = _attributes(model)
    with pytest.raises(ValueError, match=message):
        model.partial_fit(X, y, **kwargs)
    _assert_same(before, model)


def test_classes_cannot_change_and_streams_take_no_y():
    X, y = _problem()
    model = SoftmaxRegression().partial_fit(X, y, classes=[0, 1, 2])
    before = _attributes(model)
    with pytest.raises(ValueError, match=r"must stay the model's classes \[0, 1, 2\]; got \[0, 1"):
        model.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"`y` and `sample_weight` must be None when `X` is a So"):
        model.partial_fit(ArraySource(X, y), y)
    with pytest.raises(ValueError, match=r"`sample_weight` must be None when `X` is a dataset"):
        model.partial_fit(ArrayDataset(X, y), sample_weight=np.ones(300))
    with pytest.raises(ValueError, match=r"partial_fit needs a dataset with a target"):
        model.partial_fit(ArrayDataset(X))
    with pytest.raises(ValueError, match=r"integer codes in \[0, 3\)"):
        model.partial_fit(ArraySource(X, y + 1))
    with pytest.raises(ValueError, match=r"probabilities of block 0 of the stream have 4 col"):
        model.partial_fit(ArraySource(X, np.eye(4)[y]))
    with pytest.raises(TypeError, match=r"`y` must be a dense array of labels or of class"):
        model.partial_fit(X, sp.csr_matrix(np.eye(3)[y]))
    with pytest.raises(ValueError, match=r"partial_fit needs `y` with array `X`; got None"):
        model.partial_fit(X)
    _assert_same(before, model)
