"""Evaluation metrics for a probabilistic classifier, computed from log-probabilities.

Conventions
-----------
``log_proba`` is the ``(n_samples, n_classes)`` matrix of natural-log class probabilities that
``predict_log_proba`` returns; column ``k`` belongs to ``classes[k]``. ``y_codes`` are integer
positions into ``classes`` (:func:`encode_labels` turns labels into codes). Every metric works
from ``log_proba`` rather than from probabilities: a true class given p = 1e-700 has a finite
surprisal of 2325.3 bits, where a probability would underflow to 0 and need clipping, which
changes the number. Optional ``sample_weight`` turns every mean into a weighted mean
``Σ s_i v_i / Σ s_i``. Rows in results are numbered from 1, like rows in data-file messages.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "DEFAULT_N_BINS",
    "MetricsAccumulator",
    "calibration_bins",
    "classification_metrics",
    "encode_labels",
    "evaluate",
    "expected_calibration_error",
    "log_loss",
    "predictive_entropy",
    "surprisal_bits",
]

#: Equal-width confidence bins for the expected calibration error (Guo et al., 2017).
DEFAULT_N_BINS = 15
#: Rows listed as the likeliest mislabelled (highest surprisal of the given label).
N_HIGHEST_SURPRISAL = 10


def encode_labels(y, classes, *, first_row=1):
    """Positions of labels in ``classes``.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels.
    classes : ndarray of shape (n_classes,)
        The sorted classes of a fitted model (``classes_``).
    first_row : int, default 1
        The row number of ``y[0]`` in messages (rows of a file streamed in blocks).

    Returns
    -------
    ndarray of shape (n_samples,), int64
        ``classes[codes] == y``.

    Raises
    ------
    ValueError
        If a label is not among ``classes``; the message names it and its row.

    Examples
    --------
    >>> encode_labels(["b", "a", "b"], np.array(["a", "b"])).tolist()
    [1, 0, 1]
    """
    y = np.asarray(y)
    classes = np.asarray(classes)
    if y.ndim != 1:
        raise ValueError(f"`y` must be 1-D labels; got an array of shape {y.shape}.")
    if classes.ndim != 1 or not (classes[1:] > classes[:-1]).all():
        raise ValueError("`classes` must be 1-D, sorted and unique, like a model's `classes_`.")
    codes = np.searchsorted(classes, y).clip(0, len(classes) - 1)
    unknown = classes[codes] != y
    if unknown.any():
        index = int(np.argmax(unknown))
        shown = ", ".join(repr(label) for label in classes.tolist()[:12])
        raise ValueError(
            f"`y` holds label {y[index].item()!r} in row {first_row + index}, which is not one of "
            f"the model's classes ({shown}{', ...' if len(classes) > 12 else ''})."
        )
    return codes.astype(np.int64)


def _check(y_codes, log_proba):
    log_proba = np.asarray(log_proba, dtype=np.float64)
    y_codes = np.asarray(y_codes)
    if log_proba.ndim != 2 or y_codes.shape != (log_proba.shape[0],):
        raise ValueError(
            f"`log_proba` must have shape (n_samples, n_classes) and `y_codes` shape "
            f"(n_samples,); got {log_proba.shape} and {y_codes.shape}."
        )
    return y_codes, log_proba


def _mean(values, sample_weight):
    return float(np.average(values, weights=sample_weight))


def surprisal_bits(y_codes, log_proba):
    """Per-sample surprisal of the true class in bits.

    .. math:: s_i = -\\log_2 p_{i, y_i} = -\\log p_{i, y_i} / \\log 2

    Parameters
    ----------
    y_codes : ndarray of shape (n_samples,)
        Class positions.
    log_proba : ndarray of shape (n_samples, n_classes)
        Natural-log probabilities.

    Returns
    -------
    ndarray of shape (n_samples,)
        Non-negative; +inf where the true class has probability exactly 0.

    Examples
    --------
    >>> surprisal_bits(np.array([0, 1]), np.log([[0.5, 0.5], [0.75, 0.25]]))
    array([1., 2.])
    >>> surprisal_bits(np.array([1]), np.array([[0.0, -1611.8]]))  # p = 1e-700
    array([2325.3...])
    """
    return _negative_log_likelihood(y_codes, log_proba) / math.log(2)


def _negative_log_likelihood(y_codes, log_proba):
    y_codes, log_proba = _check(y_codes, log_proba)
    return -np.take_along_axis(log_proba, y_codes[:, None], axis=1)[:, 0]


def log_loss(y_codes, log_proba, sample_weight=None):
    """Mean cross-entropy of the true class in nats.

    .. math:: L = -\\frac{1}{\\sum_i s_i} \\sum_i s_i \\log p_{i, y_i}

    Parameters
    ----------
    y_codes : ndarray of shape (n_samples,)
        Class positions.
    log_proba : ndarray of shape (n_samples, n_classes)
        Natural-log probabilities.
    sample_weight : ndarray of shape (n_samples,), optional

    Returns
    -------
    float

    Examples
    --------
    >>> log_loss(np.array([0, 1]), np.log([[0.5, 0.5], [0.75, 0.25]]))  # (log 2 + log 4) / 2
    1.0397...
    """
    return _mean(_negative_log_likelihood(y_codes, log_proba), sample_weight)


def predictive_entropy(log_proba):
    """Per-sample entropy of the predicted distribution in nats.

    .. math:: H_i = -\\sum_k p_{ik} \\log p_{ik}, \\qquad 0 \\log 0 = 0

    Parameters
    ----------
    log_proba : ndarray of shape (n_samples, n_classes)

    Returns
    -------
    ndarray of shape (n_samples,)
        Between 0 (certain) and ``log(n_classes)`` (uniform).

    Examples
    --------
    >>> predictive_entropy(np.array([[np.log(0.5), np.log(0.5)], [0.0, -np.inf]]))
    array([0.6931..., 0. ])
    """
    log_proba = np.asarray(log_proba, dtype=np.float64)
    # A class with log p = -inf contributes 0·log 0 = 0; multiplying would give nan.
    finite_log = np.where(np.isfinite(log_proba), log_proba, 0.0)
    # Adding 0.0 turns the -0.0 of a certain prediction into 0.0.
    return -np.sum(np.exp(log_proba) * finite_log, axis=1) + 0.0


def calibration_bins(y_codes, log_proba, n_bins=DEFAULT_N_BINS, sample_weight=None):
    """Top-label reliability table: accuracy against confidence in equal-width bins.

    The confidence of a sample is its largest class probability, ``c_i = max_k p_ik``; bin
    ``b`` holds the samples with ``b/B < c_i <= (b+1)/B`` (the first bin also holds 0).

    Parameters
    ----------
    y_codes : ndarray of shape (n_samples,)
    log_proba : ndarray of shape (n_samples, n_classes)
    n_bins : int, default 15
    sample_weight : ndarray of shape (n_samples,), optional

    Returns
    -------
    list of dict
        One dict per bin with ``lower``, ``upper``, ``weight`` (the sample count when
        unweighted), ``mean_confidence`` and ``accuracy`` (both None for an empty bin).

    Examples
    --------
    >>> bins = calibration_bins(np.array([0, 0]), np.log([[0.9, 0.1], [0.8, 0.2]]), n_bins=5)
    >>> [(b["upper"], b["weight"], b["accuracy"]) for b in bins if b["weight"]]
    [(0.8, 1.0, 1.0), (1.0, 1.0, 1.0)]
    """
    return _accumulated(y_codes, log_proba, n_bins, sample_weight)["calibration_bins"]


def _accumulated(y_codes, log_proba, n_bins, sample_weight):
    y_codes, log_proba = _check(y_codes, log_proba)
    metrics = MetricsAccumulator(np.arange(log_proba.shape[1]), n_bins=n_bins)
    metrics.add(None, log_proba, sample_weight, y_codes=y_codes)
    return metrics.result()


def expected_calibration_error(y_codes, log_proba, n_bins=DEFAULT_N_BINS, sample_weight=None):
    """Top-label expected calibration error over equal-width confidence bins.

    .. math:: \\mathrm{ECE} = \\sum_b (W_b / W) \\, | \\mathrm{acc}_b - \\mathrm{conf}_b |

    with :func:`calibration_bins`' bins, ``W_b`` the weight in bin ``b`` and ``W`` the total.

    Parameters
    ----------
    y_codes : ndarray of shape (n_samples,)
    log_proba : ndarray of shape (n_samples, n_classes)
    n_bins : int, default 15
    sample_weight : ndarray of shape (n_samples,), optional

    Returns
    -------
    float
        Between 0 (calibrated) and 1.

    Examples
    --------
    A model that says 0.9 and is right half the time is off by 0.4:

    >>> expected_calibration_error(np.array([0, 1]), np.log([[0.9, 0.1], [0.9, 0.1]]))
    0.4
    """
    return _accumulated(y_codes, log_proba, n_bins, sample_weight)["expected_calibration_error"]


def _label(value):
    return value.item() if isinstance(value, np.generic) else value


def classification_metrics(
    y, log_proba, classes, *, sample_weight=None, n_bins=DEFAULT_N_BINS, row_numbers=None
):
    """Everything ``softreg evaluate`` reports, from labels and log-probabilities.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        True labels, each one of ``classes``.
    log_proba : ndarray of shape (n_samples, n_classes)
        Natural-log probabilities from ``predict_log_proba``.
    classes : ndarray of shape (n_classes,)
        The model's sorted classes.
    sample_weight : ndarray of shape (n_samples,), optional
        Weights for every mean, count and table.
    n_bins : int, default 15
        Confidence bins for the calibration error.
    row_numbers : ndarray of shape (n_samples,), optional
        Row numbers to report; default ``1..n_samples``.

    Returns
    -------
    dict
        JSON-ready: ``n_samples``, ``n_classes``, ``classes``, ``accuracy``, ``log_loss_nats``,
        ``log_loss_bits``, ``perplexity`` (``exp`` of the log-loss in nats),
        ``mean_predictive_entropy_nats``, ``mean_predictive_entropy_bits``,
        ``expected_calibration_error``, ``calibration_bins``, ``per_class`` (precision, recall,
        F1 and support per class), ``confusion_matrix`` (rows: true class, columns: predicted)
        and ``highest_surprisal`` (the 10 rows whose label the model finds least likely:
        the likeliest mislabelled). Floats that overflow are ``inf``.

    Raises
    ------
    ValueError
        If a label is not among ``classes`` or the shapes disagree.

    Examples
    --------
    >>> log_proba = np.log([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> result = classification_metrics(["a", "b", "b"], log_proba, np.array(["a", "b"]))
    >>> result["accuracy"], result["confusion_matrix"]
    (0.666..., [[1, 0], [1, 1]])
    >>> result["highest_surprisal"][0]
    {'row': 3, 'label': 'b', 'predicted': 'a', 'log_proba': -0.916..., 'surprisal_bits': 1.32...}
    """
    metrics = MetricsAccumulator(classes, n_bins=n_bins, weighted=sample_weight is not None)
    metrics.add(y, log_proba, sample_weight, row_numbers=row_numbers)
    return metrics.result()


class MetricsAccumulator:
    """:func:`classification_metrics` over rows that arrive in blocks (a file streamed).

    Every metric is a weighted mean or count, so the accumulator keeps sums, not rows: the
    weight total, the weighted sums of correctness, log-loss and entropy, the calibration
    bins' sums, the weighted confusion matrix (which gives precision, recall and F1), the
    ten highest-surprisal rows so far, and a histogram of the surprisal in bins of
    1/16 bit (for the report's figure). Memory is ``O(n_classes² + n_bins)``, whatever the
    number of rows; the results equal those of one call on all rows up to the rounding of
    the float sums.

    Parameters
    ----------
    classes : ndarray of shape (n_classes,)
        The model's sorted classes.
    n_bins : int, default 15
    weighted : bool, default False
        Whether rows carry sample weights (counts are then reported as floats).

    Examples
    --------
    >>> metrics = MetricsAccumulator(np.array(["a", "b"]))
    >>> metrics.add(["a"], np.log([[0.9, 0.1]]))
    >>> metrics.add(["b", "b"], np.log([[0.2, 0.8], [0.6, 0.4]]))
    >>> metrics.result()["accuracy"], metrics.result()["highest_surprisal"][0]["row"]
    (0.666..., 3)
    """

    #: Width of the surprisal histogram's bins, in bits.
    SURPRISAL_BIN_BITS = 1 / 16

    def __init__(self, classes, *, n_bins=DEFAULT_N_BINS, weighted=False):
        self.classes = np.asarray(classes)
        self.n_bins = n_bins
        self.weighted = weighted
        n_classes = len(self.classes)
        self.n_samples = 0
        self.confusion = np.zeros((n_classes, n_classes))
        self.loss = self.entropy = 0.0
        self.bin_weight = np.zeros(n_bins)
        self.bin_confidence = np.zeros(n_bins)
        self.bin_correct = np.zeros(n_bins)
        self.surprisal_counts = np.zeros(0, dtype=np.int64)
        self.infinite_surprisal = 0
        self._highest = []  # (-surprisal, row, label code, predicted code, log p(label))

    def add(self, y, log_proba, sample_weight=None, *, row_numbers=None, y_codes=None):
        """Add a block of labels (or their codes ``y_codes``) and log-probabilities."""
        n_classes = len(self.classes)
        if y_codes is None:
            y_codes = encode_labels(y, self.classes, first_row=self.n_samples + 1)
        codes = np.asarray(y_codes)
        codes, log_proba = _check(codes, log_proba)
        if log_proba.shape[1] != n_classes:
            raise ValueError(
                f"`log_proba` must have one column per class ({n_classes}); "
                f"got {log_proba.shape[1]}."
            )
        n = len(codes)
        weight = np.ones(n) if sample_weight is None else np.asarray(sample_weight, np.float64)
        predicted = log_proba.argmax(axis=1)
        correct = (predicted == codes).astype(np.float64)
        np.add.at(self.confusion, (codes, predicted), weight)
        nll = _negative_log_likelihood(codes, log_proba)
        self.loss += float(weight @ nll) if n else 0.0
        self.entropy += float(weight @ predictive_entropy(log_proba)) if n else 0.0
        confidence = np.exp(log_proba.max(axis=1, initial=-np.inf))
        edges = np.linspace(0.0, 1.0, self.n_bins + 1)
        # right=True: bin b is (edges[b], edges[b+1]], so a confidence of exactly 1 is in the last.
        index = np.digitize(confidence, edges[1:-1], right=True)
        self.bin_weight += np.bincount(index, weight, self.n_bins)
        self.bin_confidence += np.bincount(index, weight * confidence, self.n_bins)
        self.bin_correct += np.bincount(index, weight * correct, self.n_bins)
        surprisal = nll / math.log(2)
        finite = np.isfinite(surprisal)
        self.infinite_surprisal += int(n - finite.sum())
        fine = np.bincount((surprisal[finite] / self.SURPRISAL_BIN_BITS).astype(np.int64))
        if fine.size > self.surprisal_counts.size:
            fine[: self.surprisal_counts.size] += self.surprisal_counts
            self.surprisal_counts = fine
        else:
            self.surprisal_counts[: fine.size] += fine
        rows = (
            np.arange(self.n_samples + 1, self.n_samples + n + 1)
            if row_numbers is None
            else np.asarray(row_numbers)
        )
        # Stable sort on -surprisal: ties keep file order (blocks arrive in file order).
        top = np.argsort(-surprisal, kind="stable")[:N_HIGHEST_SURPRISAL]
        candidates = [
            (-surprisal[i], int(rows[i]), int(codes[i]), int(predicted[i]), log_proba[i, codes[i]])
            for i in top
        ]
        self._highest = sorted(self._highest + candidates, key=lambda c: (c[0], c[1]))[
            :N_HIGHEST_SURPRISAL
        ]
        self.n_samples += n

    def surprisal_histogram(self):
        """``(edges, counts)`` of the finite surprisals in bits, in bins of 1/16 bit."""
        edges = np.arange(self.surprisal_counts.size + 1) * self.SURPRISAL_BIN_BITS
        return edges, self.surprisal_counts.copy()

    def result(self):
        """The dict of :func:`classification_metrics` for every row added so far."""
        classes, matrix = self.classes, self.confusion
        n_classes = len(classes)
        total = float(matrix.sum())
        true_positive = np.diag(matrix)
        support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            # zero_division=0, as scikit-learn's precision_recall_fscore_support is called.
            precision = np.where(predicted > 0, true_positive / predicted, 0.0)
            recall = np.where(support > 0, true_positive / support, 0.0)
            denominator = precision + recall
            f1 = np.where(denominator > 0, 2 * precision * recall / denominator, 0.0)
        log_loss_nats = self.loss / total
        entropy = self.entropy / total
        numeric = float if self.weighted else int
        with np.errstate(over="ignore"):
            perplexity = float(np.exp(log_loss_nats))
        edges = np.linspace(0.0, 1.0, self.n_bins + 1)
        bins = [
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "weight": float(self.bin_weight[b]),
                "mean_confidence": (
                    float(self.bin_confidence[b] / self.bin_weight[b])
                    if self.bin_weight[b]
                    else None
                ),
                "accuracy": (
                    float(self.bin_correct[b] / self.bin_weight[b]) if self.bin_weight[b] else None
                ),
            }
            for b in range(self.n_bins)
        ]
        ece = sum(
            b["weight"] * abs(b["accuracy"] - b["mean_confidence"]) for b in bins if b["weight"]
        )
        return {
            "n_samples": self.n_samples,
            "n_classes": n_classes,
            "classes": [_label(c) for c in classes],
            "accuracy": float(true_positive.sum() / total),
            "log_loss_nats": log_loss_nats,
            "log_loss_bits": log_loss_nats / math.log(2),
            "perplexity": perplexity,
            "mean_predictive_entropy_nats": entropy,
            "mean_predictive_entropy_bits": entropy / math.log(2),
            "expected_calibration_error": float(ece / total),
            "calibration_bins": bins,
            "per_class": [
                {
                    "class": _label(classes[k]),
                    "precision": float(precision[k]),
                    "recall": float(recall[k]),
                    "f1": float(f1[k]),
                    "support": numeric(support[k]),
                }
                for k in range(n_classes)
            ],
            "confusion_matrix": [[numeric(v) for v in row] for row in matrix],
            "highest_surprisal": [
                {
                    "row": row,
                    "label": _label(classes[code]),
                    "predicted": _label(classes[guess]),
                    "log_proba": float(log_p),
                    "surprisal_bits": float(-negative),
                }
                for negative, row, code, guess, log_p in self._highest
            ],
        }


def evaluate(estimator, X, y, *, sample_weight=None, n_bins=DEFAULT_N_BINS):
    """Evaluate a fitted classifier on ``(X, y)``: :func:`classification_metrics` of its
    ``predict_log_proba(X)``.

    Parameters
    ----------
    estimator : fitted classifier with ``predict_log_proba`` and ``classes_``
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    sample_weight : ndarray of shape (n_samples,), optional
    n_bins : int, default 15

    Returns
    -------
    dict
        See :func:`classification_metrics`.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> model = LogisticRegression().fit(X, ["a", "a", "b", "b"])
    >>> evaluate(model, X, ["a", "a", "b", "b"])["accuracy"]
    1.0
    """
    return classification_metrics(
        y,
        estimator.predict_log_proba(X),
        estimator.classes_,
        sample_weight=sample_weight,
        n_bins=n_bins,
    )
