"""The estimators' dataset path: from a first scan of a :class:`~softreg._sources.Dataset` to
what a fit needs, and predictions streamed over a dataset's batches.

Conventions
-----------
``fit(X, y)`` wraps its validated arrays in an :class:`~softreg._sources.ArrayDataset` and
``fit(dataset)`` takes any dataset (files, Dask collections); both then run the same steps:
``dataset.scan`` (classes, class totals, weight total, feature moments when standardising),
the class weights and the starting intercept derived from that summary, then
``dataset.source(...)`` for the objective. Nothing here holds more than one block of rows
beyond per-class or per-feature vectors.

Standardising fits ``(x - μ) / σ`` and folds the scaling back, since
``W (x - μ) / σ + b = (W / σ) x + (b - (W / σ) μ)``: the model takes raw features.
"""

from __future__ import annotations

import numpy as np

from softreg._sources import Dataset

__all__ = [
    "check_dataset_call",
    "class_factors",
    "feature_scaling",
    "log_prior",
    "misclassified_weight",
    "stream_rows",
    "streamed_accuracy",
    "streamed_r2",
    "target_sums",
    "unscale",
]


def check_dataset_call(dataset, y, sample_weight, method):
    """Refuse ``y`` or ``sample_weight`` next to a dataset, which carries its own."""
    for name, value in (("y", y), ("sample_weight", sample_weight)):
        if value is not None:
            raise ValueError(
                f"`{name}` must be None when `X` is a dataset, which carries its own "
                f"target and sample weights (open_dataset(..., target=, sample_weight=)); "
                f"got {name} of type {type(value).__name__} in {method}."
            )
    if dataset.target_ndim == 0:
        raise ValueError(
            f"{method} needs a dataset with a target; this one has none "
            "(give `target=` to open_dataset)."
        )


def class_factors(class_weight, classes, class_counts, n_samples):
    """One weight factor per class from ``class_weight`` (None, "balanced" or a dict).

    "balanced" is scikit-learn's ``n_samples / (n_classes · count)``, with the unweighted
    class counts (column sums for soft labels) of the scan.
    """
    if class_weight is None:
        return None
    if isinstance(class_weight, str):  # "balanced"
        return n_samples / (len(classes) * np.maximum(class_counts, 1e-300))
    known = set(classes.tolist())
    unknown = [label for label in class_weight if label not in known]
    if unknown:
        raise ValueError(
            f"`class_weight` names labels {unknown!r} that are not among the classes "
            f"{classes.tolist()!r}."
        )
    per_class = np.array([float(class_weight.get(c, 1.0)) for c in classes.tolist()])
    if not np.all(np.isfinite(per_class) & (per_class >= 0)):
        raise ValueError(
            f"`class_weight` values must be finite and non-negative; got {class_weight!r}."
        )
    return per_class


def target_sums(index, block):
    """``(Σ s_i y_i,)`` over a block of soft labels, in float64 (a ``Source.reduce`` function)."""
    Y = block.target.astype(np.float64, copy=False)
    s = block.sample_weight
    return (Y.sum(axis=0) if s is None else s.astype(np.float64) @ Y,)


def log_prior(mass, n_classes, label_smoothing):
    """Log of the (smoothed) weighted class frequencies, centred: the best intercept at W = 0.

    ``mass`` is each class's total weight (sample weight × class weight × class probability).
    """
    freq = mass / mass.sum()
    eps = label_smoothing
    freq = (1 - eps) * freq + eps / n_classes
    log_freq = np.log(np.maximum(freq, np.finfo(np.float64).tiny))
    return log_freq - log_freq.mean()


def feature_scaling(summary, center):
    """``(mean or None, scale)`` from a scan's moments; constant features get scale 1."""
    scale = np.where(summary.std > 0, summary.std, 1.0)
    return (summary.mean if center else None), scale


def unscale(coef, intercept, mean, scale):
    """Coefficients of standardised features turned into those of raw features."""
    raw = coef / scale
    if mean is not None:
        intercept = intercept - raw @ mean
    return raw, intercept


def misclassified_weight(index, block, coef, intercept):
    """``(Σ_{s_i > 0} [argmax z_i ≠ y_i],)`` over a block of int codes (``Source.reduce``)."""
    logits = np.asarray(block.X @ coef.T) + intercept
    wrong = np.argmax(logits, axis=1) != block.target
    if block.sample_weight is not None:
        wrong &= block.sample_weight > 0
    return (float(np.count_nonzero(wrong)),)


def _check_features(estimator, dataset):
    if dataset.n_features != estimator.n_features_in_:
        raise ValueError(
            f"X has {dataset.n_features} features, but {type(estimator).__name__} is "
            f"expecting {estimator.n_features_in_} features as input."
        )
    trained = getattr(estimator, "feature_names_in_", None)
    names = dataset.feature_names
    if trained is not None and names is not None and list(trained) != list(names):
        raise ValueError(
            f"The dataset's feature names {[str(n) for n in names]!r} differ from those the model "
            f"was trained on {[str(n) for n in trained]!r}."
        )


def stream_rows(estimator, dataset, per_block):
    """``per_block(X)`` over every batch of ``dataset``, concatenated along the rows."""
    _check_features(estimator, dataset)
    parts = [per_block(block.X) for block in dataset.batches()]
    if not parts:
        raise ValueError("The dataset has no rows to predict.")
    return np.concatenate(parts)


def _check_scored(dataset):
    if not isinstance(dataset, Dataset) or dataset.target_ndim == 0:
        raise ValueError("score needs a dataset with a target (open_dataset(..., target=)).")


def _per_batch(dataset, function, *args):
    """``function(block, *args)`` for each batch, in order.

    A dataset that has ``map_batches`` (Dask) runs ``function`` where its rows are and
    returns the results only; any other is read batch by batch here.
    """
    mapped = getattr(dataset, "map_batches", None)
    if mapped is not None:
        return mapped(function, *args)
    return (function(block, *args) for block in dataset.batches())


def _accuracy_sums(block, estimator):
    """``(Σ s [predicted = y], Σ s)`` over one batch; unseen labels are an error."""
    classes = estimator.classes_
    unseen = np.setdiff1d(np.unique(block.target), classes)
    if unseen.size:
        raise ValueError(
            f"`y` contains labels {unseen.tolist()!r} the model was not trained on; "
            f"its classes are {classes.tolist()!r}."
        )
    hit = (estimator._predict_block(block.X) == block.target).astype(np.float64)
    s = block.sample_weight
    return (hit.sum(), len(hit)) if s is None else (float(s @ hit), float(s.sum()))


def streamed_accuracy(estimator, dataset):
    """Weighted accuracy of ``estimator.predict`` over a dataset's batches."""
    _check_scored(dataset)
    _check_features(estimator, dataset)
    if dataset.target_ndim != 1:
        raise ValueError("score needs 1-D labels; this dataset's target is a matrix.")
    right = total = 0.0
    for hits, weight in _per_batch(dataset, _accuracy_sums, estimator):
        right += hits
        total += weight
    return right / total


def _r2_sums(block, estimator):
    """``(Σ s, Σ s (y - ŷ)², weighted mean of y, Σ s (y - mean)²)`` over one batch."""
    y = np.asarray(block.target, dtype=np.float64).reshape(block.X.shape[0], -1)
    s = np.ones(y.shape[0]) if block.sample_weight is None else block.sample_weight
    predicted = np.asarray(estimator._block_decision(block.X), dtype=np.float64)
    residual = s @ (y - predicted) ** 2
    weight = float(s.sum())
    if not weight > 0:
        return weight, residual, 0.0, 0.0
    mean = s @ y / weight
    return weight, residual, mean, s @ (y - mean) ** 2


def streamed_r2(estimator, dataset):
    """Weighted ``R²`` (averaged over outputs, as scikit-learn) over a dataset's batches.

    The total sum of squares is merged batch by batch (Chan et al.'s update), never formed as
    ``Σ y² - n ȳ²``.
    """
    _check_scored(dataset)
    _check_features(estimator, dataset)
    weight = residual = 0.0
    mean = squares = 0.0
    for block_weight, block_residual, block_mean, block_squares in _per_batch(
        dataset, _r2_sums, estimator
    ):
        residual = residual + block_residual
        if not block_weight > 0:
            continue
        total = weight + block_weight
        shift = block_mean - mean
        squares = squares + block_squares + shift**2 * (weight * block_weight / total)
        mean = mean + shift * (block_weight / total)
        weight = total
    residual, squares = np.atleast_1d(residual), np.atleast_1d(squares)
    # scikit-learn's force_finite: a constant target scores 1 if predicted exactly, else 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(squares > 0, 1 - residual / squares, np.where(residual > 0, 0.0, 1.0))
    return float(scores.mean())
