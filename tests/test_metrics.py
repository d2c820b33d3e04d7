"""Evaluation metrics from log-probabilities: reference values, identities, sklearn agreement."""

import json
import math

import mpmath
import numpy as np
import pytest
import scipy.special
import scipy.stats
import sklearn.metrics
from sklearn.linear_model import LogisticRegression

from softreg._metrics import (
    MetricsAccumulator,
    calibration_bins,
    classification_metrics,
    encode_labels,
    evaluate,
    expected_calibration_error,
    log_loss,
    predictive_entropy,
    surprisal_bits,
)


def random_problem(seed, n_samples=200, n_classes=4, scale=3.0):
    rng = np.random.default_rng(seed)
    logits = scale * rng.normal(size=(n_samples, n_classes))
    log_proba = scipy.special.log_softmax(logits, axis=1)
    y_codes = np.array([rng.choice(n_classes, p=p) for p in np.exp(log_proba)])
    return y_codes, log_proba, rng


# ------------------------------------------------------------------------------------------
# encode_labels


def test_encode_labels_numbers_and_strings():
    assert encode_labels([3, 1, 3], np.array([1, 3])).tolist() == [1, 0, 1]
    assert encode_labels(np.array(["b", "a"]), np.array(["a", "b"])).dtype == np.int64


@pytest.mark.parametrize(
    ("y", "classes", "message"),
    [
        (
            ["a", "z"],
            np.array(["a", "b"]),
            r"`y` holds label 'z' in row 2, which is not one of the "
            r"model's classes \('a', 'b'\)\.",
        ),
        ([0, 5], np.array([1, 2]), r"label 0 in row 1"),
        (list(range(20)), np.arange(1, 21), r"label 0 in row 1.*\(1, 2, .*12, \.\.\.\)"),
    ],
)
def test_encode_labels_unknown_label(y, classes, message):
    with pytest.raises(ValueError, match=message):
        encode_labels(y, classes)


@pytest.mark.parametrize("classes", [np.array(["b", "a"]), np.array([1, 1]), np.eye(2)])
def test_encode_labels_needs_sorted_unique_classes(classes):
    with pytest.raises(ValueError, match=r"`classes` must be 1-D, sorted and unique"):
        encode_labels([1], classes)


def test_encode_labels_refuses_2d():
    with pytest.raises(ValueError, match=r"`y` must be 1-D labels; got an array of shape \(2, 1\)"):
        encode_labels([[1], [2]], np.array([1, 2]))


# ------------------------------------------------------------------------------------------
# surprisal, log-loss, entropy


def test_surprisal_of_tiny_probability_is_finite_and_exact():
    # p = 1e-700 underflows as a float; its log does not.
    log_p = float(mpmath.log(mpmath.mpf("1e-700")))
    log_proba = np.array([[0.0, log_p]])
    expected = float(-mpmath.log(mpmath.mpf("1e-700"), 2))
    assert surprisal_bits(np.array([1]), log_proba)[0] == pytest.approx(expected, rel=1e-15)
    assert log_loss(np.array([1]), log_proba) == pytest.approx(700 * math.log(10), rel=1e-15)


def test_log_loss_matches_scikit_learn_where_clipping_does_not_bite():
    y_codes, log_proba, rng = random_problem(0)
    weight = rng.uniform(0.1, 2.0, size=len(y_codes))
    for sample_weight in (None, weight):
        expected = sklearn.metrics.log_loss(
            y_codes, np.exp(log_proba), labels=range(4), sample_weight=sample_weight
        )
        assert log_loss(y_codes, log_proba, sample_weight) == pytest.approx(expected, rel=1e-12)


def test_surprisal_and_log_loss_shapes_are_checked():
    with pytest.raises(
        ValueError,
        match=r"`log_proba` must have shape \(n_samples, n_classes\) "
        r"and `y_codes` shape \(n_samples,\); got \(2, 2\) and \(3,\)",
    ):
        surprisal_bits(np.zeros(3, int), np.zeros((2, 2)))


def test_predictive_entropy_matches_scipy_and_bounds():
    _, log_proba, _ = random_problem(1)
    expected = scipy.stats.entropy(np.exp(log_proba), axis=1)
    np.testing.assert_allclose(predictive_entropy(log_proba), expected, rtol=1e-12, atol=1e-15)
    uniform = np.full((1, 5), -math.log(5))
    assert predictive_entropy(uniform)[0] == pytest.approx(math.log(5), rel=1e-15)


def test_predictive_entropy_of_certain_prediction_is_zero():
    entropy = predictive_entropy(np.array([[0.0, -np.inf, -np.inf]]))
    assert entropy[0] == 0.0 and not np.signbit(entropy[0])


# ------------------------------------------------------------------------------------------
# calibration


def test_calibration_bins_by_hand():
    # confidences 0.9, 0.9, 0.55, 1.0; correct: yes, no, yes, yes
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.45, 0.55], [1.0, 0.0]])
    with np.errstate(divide="ignore"):
        log_proba = np.log(proba)
    y_codes = np.array([0, 1, 1, 0])
    bins = calibration_bins(y_codes, log_proba, n_bins=5)
    assert [b["upper"] for b in bins] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert [b["weight"] for b in bins] == [0, 0, 1, 0, 3]
    assert bins[0]["accuracy"] is None and bins[0]["mean_confidence"] is None
    assert bins[2]["accuracy"] == 1.0 and bins[2]["mean_confidence"] == pytest.approx(0.55)
    assert bins[4]["accuracy"] == pytest.approx(2 / 3)
    assert bins[4]["mean_confidence"] == pytest.approx(2.8 / 3)
    expected = (1 * abs(1 - 0.55) + 3 * abs(2 / 3 - 2.8 / 3)) / 4
    assert expected_calibration_error(y_codes, log_proba, n_bins=5) == pytest.approx(expected)


def test_calibration_bin_edges_are_right_closed():
    # 0.6 = 3/5 exactly on an edge goes to the lower bin (0.4, 0.6].
    log_proba = np.log([[0.6, 0.4]])
    weights = [b["weight"] for b in calibration_bins(np.array([0]), log_proba, n_bins=5)]
    expected_bin = 2 if math.exp(math.log(0.6)) <= 0.6 else 3
    assert weights.index(1) == expected_bin


def test_ece_of_calibrated_predictions_is_zero():
    # Half the rows say 0.75 for class 0 and 3 of 4 are class 0.
    log_proba = np.log(np.tile([[0.75, 0.25]], (4, 1)))
    assert expected_calibration_error(np.array([0, 0, 0, 1]), log_proba) == pytest.approx(0.0)


def test_integer_weights_equal_repeated_rows():
    y_codes, log_proba, rng = random_problem(2, n_samples=60)
    repeats = rng.integers(0, 4, size=60)
    classes = np.array(["a", "b", "c", "d"])
    weighted = classification_metrics(
        classes[y_codes], log_proba, classes, sample_weight=repeats.astype(float)
    )
    repeated = classification_metrics(
        classes[np.repeat(y_codes, repeats)], np.repeat(log_proba, repeats, axis=0), classes
    )
    for key in (
        "accuracy",
        "log_loss_nats",
        "perplexity",
        "mean_predictive_entropy_nats",
        "expected_calibration_error",
    ):
        assert weighted[key] == pytest.approx(repeated[key], rel=1e-12), key
    np.testing.assert_allclose(weighted["confusion_matrix"], repeated["confusion_matrix"])
    for mine, theirs in zip(weighted["per_class"], repeated["per_class"], strict=True):
        assert mine["f1"] == pytest.approx(theirs["f1"], rel=1e-12)
        assert mine["support"] == pytest.approx(theirs["support"])
    assert isinstance(weighted["confusion_matrix"][0][0], float)
    assert isinstance(repeated["confusion_matrix"][0][0], int)


# ------------------------------------------------------------------------------------------
# classification_metrics


def test_classification_metrics_agree_with_scikit_learn():
    y_codes, log_proba, _ = random_problem(3)
    classes = np.array([10, 20, 30, 40])
    y = classes[y_codes]
    result = classification_metrics(y, log_proba, classes)
    predicted = classes[log_proba.argmax(axis=1)]
    assert result["n_samples"] == 200 and result["n_classes"] == 4
    assert result["classes"] == [10, 20, 30, 40]
    assert result["accuracy"] == sklearn.metrics.accuracy_score(y, predicted)
    assert result["confusion_matrix"] == sklearn.metrics.confusion_matrix(y, predicted).tolist()
    precision, recall, f1, support = sklearn.metrics.precision_recall_fscore_support(y, predicted)
    assert [c["precision"] for c in result["per_class"]] == pytest.approx(precision, rel=1e-15)
    assert [c["recall"] for c in result["per_class"]] == pytest.approx(recall, rel=1e-15)
    assert [c["f1"] for c in result["per_class"]] == pytest.approx(f1, rel=1e-15)
    assert [c["support"] for c in result["per_class"]] == support.tolist()
    assert result["perplexity"] == pytest.approx(math.exp(result["log_loss_nats"]), rel=1e-15)
    assert result["log_loss_bits"] == pytest.approx(result["log_loss_nats"] / math.log(2))
    assert result["mean_predictive_entropy_bits"] == pytest.approx(
        result["mean_predictive_entropy_nats"] / math.log(2)
    )
    json.dumps(result, allow_nan=False)


def test_highest_surprisal_rows_are_ranked_and_numbered():
    log_proba = np.log([[0.5, 0.5], [0.99, 0.01], [0.9, 0.1], [0.99, 0.01]])
    classes = np.array(["cat", "dog"])
    result = classification_metrics(["cat", "dog", "cat", "dog"], log_proba, classes)
    ranked = result["highest_surprisal"]
    # rows 2 and 4 tie at -log2(0.01); file order breaks the tie.
    assert [r["row"] for r in ranked] == [2, 4, 1, 3]
    assert ranked[0] == {
        "row": 2,
        "label": "dog",
        "predicted": "cat",
        "log_proba": pytest.approx(math.log(0.01)),
        "surprisal_bits": pytest.approx(-math.log2(0.01)),
    }
    numbered = classification_metrics(
        ["cat", "dog", "cat", "dog"], log_proba, classes, row_numbers=np.array([7, 8, 9, 10])
    )
    assert numbered["highest_surprisal"][0]["row"] == 8


def test_only_ten_highest_surprisal_rows():
    y_codes, log_proba, _ = random_problem(4)
    result = classification_metrics(y_codes, log_proba, np.arange(4))
    surprisal = [r["surprisal_bits"] for r in result["highest_surprisal"]]
    assert len(surprisal) == 10 and surprisal == sorted(surprisal, reverse=True)
    assert surprisal[0] == pytest.approx(surprisal_bits(y_codes, log_proba).max())


def test_perplexity_overflow_is_inf_not_error():
    log_proba = np.array([[0.0, -800.0]])
    result = classification_metrics([1], log_proba, np.array([0, 1]))
    assert result["perplexity"] == math.inf and result["log_loss_nats"] == 800.0


def test_classification_metrics_column_count_must_match_classes():
    with pytest.raises(
        ValueError, match=r"`log_proba` must have one column per class \(3\); got 2"
    ):
        classification_metrics([0, 1], np.log(np.full((2, 2), 0.5)), np.array([0, 1, 2]))


def test_evaluate_uses_predict_log_proba():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(80, 3))
    y = np.where(X[:, 0] + 0.5 * rng.normal(size=80) > 0, "pos", "neg")
    model = LogisticRegression().fit(X, y)
    result = evaluate(model, X, y)
    assert result == classification_metrics(y, model.predict_log_proba(X), model.classes_)
    assert result["accuracy"] == model.score(X, y)


# ------------------------------------------------------------------------------------------
# MetricsAccumulator: the same metrics over rows streamed in blocks


def assert_metrics_close(streamed, whole):
    """Equal dicts, floats to the rounding of sums taken in a different order."""
    if isinstance(whole, dict):
        assert streamed.keys() == whole.keys()
        for key in whole:
            assert_metrics_close(streamed[key], whole[key])
    elif isinstance(whole, list):
        assert len(streamed) == len(whole)
        for a, b in zip(streamed, whole, strict=True):
            assert_metrics_close(a, b)
    elif isinstance(whole, float):
        assert streamed == pytest.approx(whole, rel=1e-12, abs=1e-15)
    else:
        assert streamed == whole


@pytest.mark.parametrize("weighted", [False, True])
def test_streamed_metrics_equal_the_metrics_of_all_rows(weighted):
    y_codes, log_proba, rng = random_problem(5, n_samples=1000)
    classes = np.array(["a", "b", "c", "d"])
    y = classes[y_codes]
    weight = rng.uniform(0, 3, size=len(y)) if weighted else None
    # Repeated rows give ties in surprisal across blocks: file order must still break them.
    log_proba[700] = log_proba[10]
    y[700] = y[10]
    whole = classification_metrics(y, log_proba, classes, sample_weight=weight)
    streamed = MetricsAccumulator(classes, weighted=weighted)
    for start in range(0, len(y), 137):
        part = slice(start, start + 137)
        streamed.add(y[part], log_proba[part], None if weight is None else weight[part])
    assert_metrics_close(streamed.result(), whole)


def test_streamed_surprisal_histogram_counts_every_finite_row():
    y_codes, log_proba, _ = random_problem(6)
    log_proba[3] = [0.0, -np.inf, -np.inf, -np.inf]
    y_codes[3] = 1  # the true class had probability 0: infinite surprisal
    streamed = MetricsAccumulator(np.arange(4))
    streamed.add(y_codes[:100], log_proba[:100])
    streamed.add(y_codes[100:], log_proba[100:])
    edges, counts = streamed.surprisal_histogram()
    surprisal = surprisal_bits(y_codes, log_proba)
    finite = surprisal[np.isfinite(surprisal)]
    assert counts.sum() == finite.size == 199 and streamed.infinite_surprisal == 1
    np.testing.assert_array_equal(counts, np.histogram(finite, bins=edges)[0])
    assert edges[1] - edges[0] == 1 / 16 and edges[-1] > finite.max()


def test_streamed_metrics_refuse_an_unknown_label_naming_its_row():
    streamed = MetricsAccumulator(np.array(["a", "b"]))
    streamed.add(["a", "b"], np.log([[0.5, 0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match=r"`y` holds label 'z' in row 4, which is not one of"):
        streamed.add(["a", "z"], np.log([[0.5, 0.5], [0.5, 0.5]]))
