"""``SoftmaxRegression.partial_fit``: online updates from mini-batches, arrays or streams.

The estimator-side half of online learning (the optimiser is :mod:`softreg._online`): check
a batch against the model, encode its labels with ``classes_``, cut it into mini-batches,
and for each take the exact gradient of the regularised objective from
:class:`~softreg._objective.Objective` over an :class:`~softreg._sources.ArraySource` of the
mini-batch, then one :func:`softreg._online.update` step.

A call either completes or changes nothing: every step builds new arrays (the optimiser is
pure), and a call that raises restores the estimator's attributes as they were, so a bad
batch, even one found half-way through a stream, leaves the model exactly as before.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import column_or_1d

from softreg import _datapath as datapath
from softreg import _online
from softreg import _params as rules
from softreg._checks import check_probability, check_sample_weight
from softreg._sources import ArraySource, Dataset, Source

__all__ = ["BATCH_ROWS", "METHOD", "OnlineMixin"]

#: Rows per online step: a call (or a stream's block) with more rows is one pass over them in
#: mini-batches of this many rows, in order. 256 is the batch of the benchmark streams
#: (benchmarks/online.py), where the method was chosen: many steps per pass, each with the
#: cost of its two matrix products, not of Python, dominant on wide data (Fashion-MNIST).
BATCH_ROWS = 256
#: ``solver_`` of a model whose last training was partial_fit.
METHOD = "online-adam"


class OnlineMixin:
    """Adds :meth:`partial_fit` to :class:`~softreg.SoftmaxRegression`."""

    def partial_fit(self, X, y=None, classes=None, sample_weight=None):
        """Update the model with one pass over new rows (a stochastic step per mini-batch).

        Each mini-batch of at most 256 rows gives the exact gradient ``p - y`` of the same
        regularised objective as :meth:`fit` (sample weights, ``class_weight`` as a dict,
        soft labels and ``label_smoothing`` included), normalised by the mini-batch's
        weight; the step is Adam's, with a step size that decays as ``η / √(1 + t/1000)``
        (``η`` = ``learning_rate``, default 0.02), and the model is the average of the
        iterates weighted by step number (see :mod:`softreg._online` for the method and
        the measurements that chose it). After :meth:`fit` it continues from the fitted
        model. ``n_samples_seen_`` grows by the call's rows, ``n_iter_`` counts the online
        steps, and ``history_`` holds this call's steps (each mini-batch's objective and
        gradient norm before its step).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), or a stream
            Rows, or a :class:`~softreg._sources.Dataset` (raw labels, e.g. from
            ``open_dataset``) or :class:`~softreg._sources.Source` (encoded blocks, integer
            codes into ``classes``) to make one pass over; ``y`` and ``sample_weight`` are
            then part of the stream and must be None.
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            Labels, all among ``classes``, or class probabilities (one column per class).
        classes : array-like of shape (n_classes,), default=None
            Every label the model will ever see. Required on the first call (unless the model
            was fitted); later calls may repeat it but not change it.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self

        Raises
        ------
        ValueError
            On the first call without ``classes``; for labels outside ``classes``, a
            different number of features or different feature names than the model's, NaN
            or inf, an empty batch, weights summing to zero, ``class_weight="balanced"`` or
            ``standardize=True`` (they need class counts or feature moments over all the
            data). The model is then left exactly as it
            was.

        Examples
        --------
        >>> import numpy as np
        >>> from softreg import SoftmaxRegression
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((2000, 3))
        >>> y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 1)
        >>> model = SoftmaxRegression()
        >>> for epoch in range(10):  # each call: one pass, 8 steps of 256 rows or fewer
        ...     model = model.partial_fit(X, y, classes=[0, 1, 2])
        >>> model.n_samples_seen_, model.n_iter_
        (20000, 80)
        >>> bool(model.score(X, y) > 0.8)  # fit: 0.85
        True
        """
        snapshot = dict(self.__dict__)
        try:
            self._partial_fit(X, y, classes, sample_weight)
        except BaseException:
            # Steps build new arrays, never write into the old ones: restoring the attribute
            # table restores the model bit for bit.
            self.__dict__.clear()
            self.__dict__.update(snapshot)
            raise
        return self

    # ---------------------------------------------------------------------------------------
    def _partial_fit(self, X, y, classes, sample_weight):
        rules.validate_params(self, self._parameter_table)
        if self.label_smoothing >= 1:
            raise ValueError(
                "The 'label_smoothing' parameter of SoftmaxRegression must be in [0, 1); "
                f"got {self.label_smoothing!r}."
            )
        if isinstance(self.class_weight, str):
            raise ValueError(
                "class_weight='balanced' needs the class counts of all the data, which "
                "partial_fit never sees; pass a dict of per-class weights instead."
            )
        if self.standardize:
            raise ValueError(
                "standardize=True needs the feature moments of all the data, which partial_fit "
                "never sees; scale the features before the stream (or fit on a dataset)."
            )
        if self.l1_ratio:
            raise ValueError(
                f"partial_fit takes stochastic steps on the L2 objective only; l1_ratio="
                f"{self.l1_ratio!r} needs the proximal solver over all the data: use fit "
                "(solver='newton-cd'), or set l1_ratio=0."
            )
        fitted = hasattr(self, "coef_")
        self.classes_ = self._online_classes(classes, fitted)
        # ("balanced", which needs class counts, was refused above.)
        per_class = datapath.class_factors(self.class_weight, self.classes_, None, None)
        if isinstance(X, Dataset):
            datapath.check_dataset_call(X, y, sample_weight, "partial_fit")
            batches = self._stream_batches(X, fitted, per_class)
        elif isinstance(X, Source):
            if y is not None or sample_weight is not None:
                raise ValueError(
                    "`y` and `sample_weight` must be None when `X` is a Source, whose blocks "
                    "carry the targets and weights."
                )
            batches = self._stream_batches(X, fitted, per_class)
        else:
            if y is None:
                raise ValueError("partial_fit needs `y` with array `X`; got None.")
            batches = [self._array_batch(X, y, sample_weight, per_class, reset=not fitted)]
        self._online_pass(batches, fitted)

    def _online_classes(self, classes, fitted):
        if classes is None:
            if not fitted:
                raise ValueError(
                    "`classes` must be passed on the first call to partial_fit: every label "
                    "the model will see, e.g. classes=np.unique(y_all)."
                )
            return self.classes_
        given = np.unique(np.asarray(classes))
        if given.ndim != 1 or given.size < 2 or given.size != np.asarray(classes).size:
            raise ValueError(
                "`classes` must list at least 2 distinct labels; got "
                f"{np.asarray(classes).tolist()!r}."
            )
        if fitted and not np.array_equal(given, self.classes_):
            raise ValueError(
                f"`classes` must stay the model's classes {self.classes_.tolist()!r}; got "
                f"{given.tolist()!r}."
            )
        return given

    def _array_batch(self, X, y, sample_weight, per_class, reset):
        """``(X, target, weight)`` of an array batch, checked against the model."""
        X = self._validate_features(X, reset=reset)
        target = self._online_targets(y, X.shape[0], X.dtype)
        weight = None
        if sample_weight is not None:
            weight = check_sample_weight(sample_weight, (X.shape[0],), X.dtype)
        return X, target, _times_class_factors(weight, target, per_class, X.dtype)

    def _online_targets(self, y, n_samples, dtype):
        classes = self.classes_
        if sp.issparse(y):
            raise TypeError("`y` must be a dense array of labels or of class probabilities.")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] >= 2:
            if y.shape != (n_samples, len(classes)):
                raise ValueError(
                    f"`y` of class probabilities must have shape ({n_samples}, {len(classes)}), "
                    f"one column per class; got {y.shape}."
                )
            return np.ascontiguousarray(check_probability(y, "y").astype(dtype, copy=False))
        y = column_or_1d(y, warn=True)
        if y.shape[0] != n_samples:
            raise ValueError(
                f"`y` must have one label per sample ({n_samples}); got {y.shape[0]} labels."
            )
        codes = np.searchsorted(classes, y)
        codes[codes == len(classes)] = 0
        unknown = classes[codes] != y
        if unknown.any():
            index = int(np.flatnonzero(unknown)[0])
            raise ValueError(
                f"`y` holds label {y[index].item()!r} (at index {index}), which is not among "
                f"`classes` {classes.tolist()!r}; the classes are fixed by the first call."
            )
        return codes.astype(np.intp)

    def _stream_batches(self, stream, fitted, per_class):
        """Check a dataset's or source's description; yield its checked blocks lazily."""
        if isinstance(stream, Dataset):
            source = stream.source(classes=self.classes_, class_weight=per_class)
        else:
            source = stream
        n_features = int(stream.n_features)
        names = stream.feature_names
        if fitted or hasattr(self, "n_features_in_"):
            if n_features != self.n_features_in_:
                raise ValueError(
                    f"X has {n_features} features, but {type(self).__name__} is expecting "
                    f"{self.n_features_in_} features as input."
                )
            known = getattr(self, "feature_names_in_", None)
            if known is not None and names is not None and list(known) != list(names):
                raise ValueError(
                    "The feature names should match those that were passed during fit; "
                    f"the stream has {list(names)[:5]!r}..., the model {list(known)[:5]!r}..."
                )
        else:
            self.n_features_in_ = n_features
            if names is not None:
                self.feature_names_in_ = np.asarray(names, dtype=object)
        # A Dataset's source applies the class weights itself; a Source's blocks do not.
        return self._checked_blocks(source, None if isinstance(stream, Dataset) else per_class)

    def _checked_blocks(self, source, per_class):
        n_classes = len(self.classes_)
        for index, (X, target, weight) in enumerate(source.blocks()):
            where = f"block {index} of the stream"
            if not np.all(np.isfinite(X.data if sp.issparse(X) else X)):
                raise ValueError(f"Input X contains NaN or infinity in {where}.")
            if target.ndim == 1:
                if not np.issubdtype(target.dtype, np.integer) or (
                    target.size and not (target.min() >= 0 and target.max() < n_classes)
                ):
                    raise ValueError(
                        f"The targets of {where} must be integer codes in [0, {n_classes}) "
                        f"for the classes {self.classes_.tolist()!r}."
                    )
            elif target.shape[1] != n_classes:
                raise ValueError(
                    f"The class probabilities of {where} have {target.shape[1]} columns; the "
                    f"model has {n_classes} classes."
                )
            if weight is not None:
                weight = check_sample_weight(weight, (X.shape[0],), X.dtype)
            yield X, target, _times_class_factors(weight, target, per_class, X.dtype)

    def _online_pass(self, batches, fitted):
        """Steps over every mini-batch; the new attributes are set only once all succeeded."""
        from softreg._objective import Objective, SoftmaxLoss  # numba: only when training

        n_classes = len(self.classes_)
        loss = SoftmaxLoss(n_classes, float(self.label_smoothing))
        rate = _online.LEARNING_RATE if self.learning_rate is None else self.learning_rate
        state = self._online_start(n_classes, fitted)
        history = {"objective": [], "gradient_norm": [], "gap_bound": [], "time": []}
        start, n_rows, total_weight, dtype = time.perf_counter(), 0, 0.0, None
        for X, target, weight in batches:
            dtype = X.dtype
            for first in range(0, X.shape[0], BATCH_ROWS):
                rows = slice(first, first + BATCH_ROWS)
                part = None if weight is None else weight[rows]
                mass = float(X[rows].shape[0] if part is None else part.sum(dtype=np.float64))
                n_rows += X[rows].shape[0]
                if not mass > 0:  # no weight, no information: no step
                    continue
                total_weight += mass
                source = ArraySource(
                    X[rows], target[rows], part, n_outputs=n_classes, rows=BATCH_ROWS
                )
                objective = Objective(
                    loss,
                    source,
                    alpha=self.alpha,
                    fit_intercept=self.fit_intercept,
                    transposed_coef=False,
                )
                evaluation = objective.loss_gradient(state.theta, certify=False)
                if not np.isfinite(evaluation.objective):
                    raise FloatingPointError(
                        f"partial_fit diverged: the objective of a mini-batch is "
                        f"{evaluation.objective} after {state.step} steps; lower "
                        f"`learning_rate` (now {rate:g}). The model is left as it was."
                    )
                state = _online.update(state, evaluation.gradient, learning_rate=rate)
                history["objective"].append(evaluation.objective)
                history["gradient_norm"].append(evaluation.gradient_norm)
                history["time"].append(time.perf_counter() - start)
        if n_rows == 0:
            raise ValueError("partial_fit got an empty batch: 0 rows, nothing to learn from.")
        if not total_weight > 0:
            raise ValueError(
                "The weights (sample_weight × class_weight) of the batch sum to zero: nothing "
                "to learn from."
            )
        self._online_finish(state, history, n_rows, dtype)

    def _online_start(self, n_classes, fitted):
        """The optimiser state: carried on, restarted from a fitted or loaded model, or new."""
        size = n_classes * (self.n_features_in_ + (1 if self.fit_intercept else 0))
        kept = getattr(self, "_online_state", None)
        # Carried on only while coef_ is still the array the last call set (fit replaces it).
        if kept is not None and kept[1] is self.coef_ and kept[0].theta.size == size:
            return kept[0]
        if not fitted:
            return _online.init(np.zeros(size))
        parts = [np.asarray(self.coef_, dtype=np.float64).ravel()]
        if self.fit_intercept:
            parts.append(np.asarray(self.intercept_, dtype=np.float64))
        # A model saved after online steps resumes their step-size schedule.
        step = self.n_iter_ if getattr(self, "solver_", None) == METHOD else 0
        return _online.init(np.concatenate(parts), step=step)

    def _online_finish(self, state, history, n_rows, dtype):
        n_classes, n_features = len(self.classes_), self.n_features_in_
        coef = state.average[: n_classes * n_features].reshape(n_classes, n_features)
        if self.fit_intercept:
            intercept = state.average[n_classes * n_features :]
            # softmax ignores a constant added to every intercept: report the zero-mean one.
            intercept = intercept - intercept.mean()
        else:
            intercept = np.zeros(n_classes)
        self.coef_ = coef.astype(dtype)
        self.intercept_ = intercept.astype(dtype)
        self._online_state = (state, self.coef_)
        self.n_samples_seen_ = getattr(self, "n_samples_seen_", 0) + n_rows
        self.n_iter_ = state.step
        self.solver_ = METHOD
        # Nothing certifies an online model: no objective over "the data", no bound.
        self.objective_ = float("nan")
        self.optimality_gap_bound_ = float("inf")
        self.converged_ = False
        history["gap_bound"] = [float("inf")] * len(history["objective"])
        self.history_ = {
            key: np.asarray(values, dtype=np.float64) for key, values in history.items()
        }


def _times_class_factors(weight, target, per_class, dtype):
    """Row weights times each row's class factor (soft labels: ``Σ_k y_k · factor_k``)."""
    if per_class is None:
        return weight
    row = (per_class[target] if target.ndim == 1 else target @ per_class).astype(dtype)
    return row if weight is None else weight * row
