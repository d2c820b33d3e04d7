"""Datasets streamed from files: ``.npy`` memory-mapped, Parquet by record batch
(:mod:`softreg._parquet`), CSV and LIBSVM through a memory-mapped cache
(:mod:`softreg._file_cache`); :func:`open_dataset` picks one.

Conventions
-----------
Every file dataset is a :class:`~softreg._sources.Dataset`: a re-iterable description of the
files, separate from each pass over them. A pass reads *raw* blocks (features as float
arrays, labels as the file holds them) in a background thread (:func:`prefetch`) while the
caller computes on the previous one, then the dataset turns them into what was asked for:
a :class:`~softreg._sources.Summary` (``scan``), encoded blocks (``source``) or raw batches
for prediction (``batches``). Memory held is a few blocks, whatever the number of rows.

Every problem with the data raises :class:`~softreg._data_io.DataError` naming the file, the
row (counted from 1 in that file, header excluded) and the column where known. A file that
changes while a dataset is open (its size or modification time) stops the next pass.
"""

from __future__ import annotations

import glob
import os
import queue
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from softreg._checks import column_magnitude
from softreg._data_io import (
    DataError,
    _check_weights,
    _numeric_column,
    _select_features,
    guess_format,
    import_optional,
    read_table,
)
from softreg._sources import (
    ArrayDataset,
    Block,
    Dataset,
    Moments,
    Source,
    StandardizedSource,
    Summary,
    block_rows,
)
from softreg._threads import one_blas_thread

__all__ = [
    "FileDataset",
    "MappedDataset",
    "check_probability_rows",
    "feature_matrix",
    "open_dataset",
    "prefetch",
    "select_columns",
    "shifted",
    "split_block",
]

#: The formats :func:`open_dataset` streams, by the name ``format`` takes.
STREAM_FORMATS = ("npy", "parquet", "csv", "svmlight", "npz")

# Bytes of features per read: a pass reads chunks of about this size and cuts each into blocks
# of :func:`~softreg._sources.block_rows` for the kernels (smaller than a read where the logits,
# not the features, bound a block: many classes). What a read costs per call (a record batch
# per column in pyarrow, the hand-over between the threads) is paid per chunk. Not more: with
# reads of 4 MiB (9709 rows × 54 features) a streamed pass held ~100 MiB more anonymous memory
# at its peak than with 1 MiB (pyarrow decodes ahead while the pass computes, by batch), for
# ~10% less CPU time per pass (0.23 against 0.25 s for 256 MB in the page cache).
_READ_BYTES = 2**20


# --------------------------------------------------------------------------------------------
# Background prefetch


class _Failure:
    def __init__(self, error):
        self.error = error


_DONE = object()


def prefetch(iterable, depth=1):
    """Iterate ``iterable`` in a background thread, ``depth`` items ahead of the caller.

    While the caller works on item ``i`` the thread produces item ``i + 1`` (pyarrow and
    NumPy release the GIL while they read and convert, so I/O overlaps compute). An exception
    in the thread is raised in the caller; a caller that stops early stops the thread.

    >>> list(prefetch(iter(range(5))))
    [0, 1, 2, 3, 4]
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item):
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in iterable:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the caller, raised there
            put(_Failure(error))

    thread = threading.Thread(target=produce, name="softreg-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()


# --------------------------------------------------------------------------------------------
# Where rows come from, for messages and change detection


def file_state(path):
    """``(size, mtime_ns)`` of a file: what a pass checks to notice a changed file."""
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns


def shifted(error: DataError, offset: int, path=None) -> DataError:
    """``error`` (rows counted within one batch) with rows counted from the file's start."""
    path = error.path if path is None else os.fspath(path)
    message = str(error)[len(error.path) + 2 :]
    row = error.row
    if row is not None and offset:
        message = re.sub(rf"\brow {row}\b", f"row {row + offset}", message)
        row += offset
    return DataError(path, message, column=error.column, row=row)


def names_not_utf8(path, exc: UnicodeDecodeError) -> DataError:
    """The error for column names pyarrow cannot decode (it decodes them as UTF-8 on demand).

    The same words as the command line's for a text file that is not UTF-8 (``cli._open``).
    """
    return DataError(
        path,
        f"is not UTF-8 text ({exc.reason}: {exc.object[exc.start : exc.end]!r}); save it as UTF-8.",
    )


def check_probability_rows(path, proba, offset, names):
    """Refuse soft-label rows that are not probability vectors (finite, ≥ 0, sum 1)."""
    bad = ~np.isfinite(proba).all(axis=1) | (proba < 0).any(axis=1)
    tolerance = 1e-6 if proba.dtype == np.float64 else 1e-3
    bad |= np.abs(proba.sum(axis=1) - 1) > tolerance
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise DataError(
            path,
            f"target columns {names!r} must hold class probabilities (finite, non-negative, "
            f"summing to 1) in every row; got {proba[index].tolist()!r} in row "
            f"{offset + index + 1}.",
            row=offset + index + 1,
        )


def select_columns(path, names, target, features, exclude, sample_weight):
    """``(features, target columns, soft)`` of a table with columns ``names``.

    ``target`` is a column name (labels or a regression target) or a list of them (soft
    labels, several targets: ``soft`` is then True); the features default to every other
    column that is not the sample weight or excluded (:func:`~softreg._data_io.read_table`'s
    rules and messages).
    """
    soft = isinstance(target, list)
    targets = target if soft else ([] if target is None else [target])
    for name in targets:
        if name not in names:
            _select_features(path, names, name, None, (), None)  # raises "has no column"
    selected = _select_features(
        path,
        names,
        None if soft else target,
        features,
        tuple(exclude) + tuple(targets if soft else ()),
        sample_weight,
    )
    return [name for name in selected if name not in targets], targets, soft


def feature_matrix(path, batch, names, check_finite=True, order="C"):
    """The columns ``names`` of an Arrow batch as a float64 matrix, validated.

    ``order="F"`` gives a column-major matrix: each column is then one contiguous copy of an
    Arrow column instead of a scatter across the rows, 3.5× faster (0.25 against 0.87 ms
    for 9709 rows × 54 columns), and the kernels' matrix products take either layout at the
    same speed. Float64 columns without missing values are converted in one call into Arrow
    (:func:`_arrow_matrix`); other plain numeric columns are copied in one by one, and a
    column with a problem (missing values, text) goes through
    :func:`~softreg._data_io._numeric_column`, which says what and where (rows within the
    batch: :func:`shifted` moves them). Non-finite values are looked for once at the end,
    unless ``check_finite`` is False (rows that a complete pass has checked already).
    """
    pa = import_optional("pyarrow", "io", "reading tables")
    X = _arrow_matrix(pa, batch, names, order) if batch.num_rows and names else None
    if X is None:
        X = np.empty((batch.num_rows, len(names)), order=order)
        for j, name in enumerate(names):
            column = batch.column(name)
            kind = column.type
            if column.null_count or not (pa.types.is_floating(kind) or pa.types.is_integer(kind)):
                X[:, j] = _numeric_column(path, column, name)
            else:
                X[:, j] = column.to_numpy(zero_copy_only=False)
    # min and max carry a NaN through and reach ±inf: the check for non-finite values in two
    # reductions without a temporary (np.isfinite(X) writes one, and took twice as long).
    if check_finite and X.size and not (np.isfinite(X.min()) and np.isfinite(X.max())):
        finite = np.isfinite(X).all(axis=0)
        name = names[int(np.flatnonzero(~finite)[0])]
        _numeric_column(path, batch.column(name), name)  # raises, naming the row
    return X


def _arrow_matrix(pa, batch, names, order):
    """Float64 columns ``names`` without missing values as one matrix in ``order``, or None.

    ``RecordBatch.to_tensor`` (pyarrow ≥ 16) fills the matrix in C++ with the GIL released:
    per column, a copy through NumPy costs a few µs of Python holding the GIL, which at 784
    columns was most of a chunk's conversion (2.6 ms against 0.9 ms for 668 rows, row-major).
    None where this pyarrow cannot, or a column is not float64 or has missing values: the
    caller then converts (and explains) column by column.
    """
    try:
        features = batch.select(names)
        if any(kind != pa.float64() for kind in features.schema.types):
            return None
        # malloc, as for NumPy's own arrays: from Arrow's default pool (mimalloc), which
        # keeps freed pages, one pass measured a 600 MiB peak of anonymous memory, 425 here.
        tensor = features.to_tensor(row_major=order == "C", memory_pool=pa.system_memory_pool())
    except (AttributeError, TypeError, pa.ArrowException):  # older pyarrow; missing values
        return None  # (RecordBatch.to_tensor is new in pyarrow 16; the pins allow 14)
    return tensor.to_numpy()


# --------------------------------------------------------------------------------------------
# The generic file dataset: raw blocks in, Summary / encoded source / batches out


class FileDataset(Dataset):
    """A dataset whose passes read raw blocks from files (see the module's conventions).

    Subclasses implement ``_raw_blocks(rows, order)``, yielding ``(block, path, offset)``: a
    :class:`~softreg._sources.Block` of float features and raw labels, the file it came from
    and the number of rows of that file before it. ``order`` is the memory layout the
    features may take where the reader chooses it: ``"C"`` for :meth:`batches` (whose blocks
    callers may stack into one C-ordered array), ``"F"`` within a pass (the cheapest copy out
    of Arrow's columns, :func:`feature_matrix`). They set ``paths`` (checked for changes at
    the start of each pass), ``target_names`` (for messages) and the Dataset attributes.
    """

    paths: tuple = ()
    target_names: object = None
    _validated = False
    n_samples: int | None = None
    #: The most rows a block or a read may hold (the command line's ``--memory-limit``; tests
    #: set it small); None for no cap beyond :func:`~softreg._sources.block_rows` and
    #: ``_READ_BYTES``.
    rows: int | None = None

    def _remember_files(self):
        self._states = {path: file_state(path) for path in self.paths}

    def _check_unchanged(self):
        for path, state in self._states.items():
            try:
                now = file_state(path)
            except FileNotFoundError:
                now = None
            if now != state:
                raise DataError(
                    path,
                    "changed since the dataset was opened (its size or modification time "
                    "differ), so passes over it no longer see the same rows; open it again.",
                )

    def _row_bytes(self):
        return self.n_features * np.dtype(self.dtype).itemsize

    def _rows(self, n_outputs):
        """Rows per block for the kernels, for ``n_outputs`` logits per row."""
        rows = block_rows(self.n_samples or 2**62, n_outputs, self._row_bytes(), self.n_features)
        return min(rows, int(self.rows)) if self.rows else rows

    def _read_rows(self, rows):
        """Rows per read: about ``_READ_BYTES`` of features, at least a block of ``rows``."""
        read = max(rows, _READ_BYTES // max(self._row_bytes(), 1))
        return max(rows, min(read, int(self.rows))) if self.rows else read

    def _pass(self, rows, order="F"):
        self._check_unchanged()
        return prefetch(self._raw_blocks(rows, order))

    def batches(self) -> Iterator[Block]:
        for block, _, _ in self._pass(self._rows(1), order="C"):
            yield block

    def scan(self, *, moments=False, labels=True) -> Summary:
        n_samples, weight_total = 0, 0.0
        label_totals: dict = {}
        totals = counts = None
        accumulator = Moments(self.n_features) if moments else None
        hard = self.target_ndim == 1 and labels
        magnitude = np.zeros(self.n_features)
        for block, path, offset in self._pass(self._read_rows(self._rows(1))):
            n = block.X.shape[0]
            n_samples += n
            # The fit refuses features large enough to overflow its products (the estimator's
            # scale check, made here for data it never holds at once).
            np.maximum(magnitude, column_magnitude(block.X), out=magnitude)
            w = block.sample_weight
            weight_total += n if w is None else float(w.sum(dtype=np.float64))
            if accumulator is not None:
                accumulator.add(block.X, w)
            if self.target_ndim == 0:
                continue
            if hard:
                values, inverse = np.unique(block.target, return_inverse=True)
                block_totals = np.bincount(inverse, weights=w, minlength=len(values))
                block_counts = np.bincount(inverse, minlength=len(values))
                for value, total, count in zip(
                    values.tolist(), block_totals.tolist(), block_counts.tolist(), strict=True
                ):
                    old = label_totals.get(value, (0.0, 0))
                    label_totals[value] = (old[0] + total, old[1] + count)
            else:
                matrix = self._numeric_target(block.target, path, offset)
                block_counts = matrix.sum(axis=0)
                block_totals = block_counts if w is None else w.astype(np.float64) @ matrix
                totals = block_totals if totals is None else totals + block_totals
                counts = block_counts if counts is None else counts + block_counts
        self.n_samples = n_samples
        self.feature_magnitude = magnitude
        self._validated = True  # every row was checked; unchanged files need no re-check
        classes = None
        if hard:
            classes = np.array(sorted(label_totals))
            totals = np.array([label_totals[c][0] for c in sorted(label_totals)], dtype=float)
            counts = np.array([label_totals[c][1] for c in sorted(label_totals)], dtype=float)
        elif totals is None:
            totals = counts = np.zeros(0 if self.target_ndim == 0 else 1)
        mean = std = None
        if accumulator is not None:
            mean, std = accumulator.mean, accumulator.std()
        return Summary(n_samples, classes, totals, weight_total, mean, std, counts)

    def source(self, *, classes=None, class_weight=None, scale=None) -> Source:
        if self.target_ndim == 0:
            raise ValueError("This dataset has no target, so it cannot be trained on.")
        source = _FileSource(self, classes, class_weight)
        return source if scale is None else StandardizedSource(source, *scale)

    def _numeric_target(self, labels, path, offset):
        """A block's target as a float64 matrix ``(n, n_outputs)``; text is an error."""
        if labels.dtype.kind not in "biuf":
            raise DataError(
                path,
                f"target {self.target_names!r} must hold numbers for this fit; got "
                f"{labels[0].item()!r} in row {offset + 1}.",
                column=self.target_names,
                row=offset + 1,
            )
        return np.ascontiguousarray(labels.reshape(len(labels), -1), dtype=np.float64)

    def _encoded_blocks(self, classes, class_weight, rows):
        """Raw blocks turned into encoded ones (run in the prefetch thread)."""
        dtype = np.dtype(self.dtype)
        per_class = None if class_weight is None else np.asarray(class_weight)
        for block, path, offset in self._raw_blocks(rows, "F"):
            labels = block.target
            if classes is not None:
                codes = np.searchsorted(classes, labels)
                known = codes < len(classes)
                known[known] = classes[codes[known]] == labels[known]
                if not known.all():
                    index = int(np.flatnonzero(~known)[0])
                    raise DataError(
                        path,
                        f"has the label {labels[index].item()!r} in row {offset + index + 1} "
                        f"(target {self.target_names!r}), which the first pass did not see "
                        f"(classes {classes.tolist()!r}); did the file change?",
                        column=self.target_names,
                        row=offset + index + 1,
                    )
                target = codes.astype(np.intp)
            else:
                target = self._numeric_target(labels, path, offset).astype(dtype, copy=False)
            weight = block.sample_weight
            if per_class is not None:
                factor = per_class[target] if target.ndim == 1 else target @ per_class
                factor = factor.astype(dtype)
                weight = factor if weight is None else weight.astype(dtype) * factor
            elif weight is not None:
                weight = weight.astype(dtype, copy=False)
            yield Block(block.X, target, weight)


class _FileSource(Source):
    """Encoded blocks of a :class:`FileDataset`, read one ahead in a background thread."""

    def __init__(self, dataset: FileDataset, classes, class_weight):
        self.dataset = dataset
        self.classes = None if classes is None else np.asarray(classes)
        self.class_weight = class_weight
        self.n_features = dataset.n_features
        self.dtype = np.dtype(dataset.dtype)
        self.sparse = dataset.sparse
        self.feature_names = dataset.feature_names
        n_outputs = len(self.classes) if self.classes is not None else 1
        self.rows = dataset._rows(max(n_outputs, 1))
        self.read_rows = dataset._read_rows(self.rows)
        self._shape = None

    def blocks(self) -> Iterator[Block]:
        self.dataset._check_unchanged()
        rows = count = 0
        encoded = self.dataset._encoded_blocks(self.classes, self.class_weight, self.read_rows)
        # BLAS on one thread while blocks stream in: the reading threads (prefetch's, and
        # pyarrow's decoding) keep the other core busy, and a second BLAS thread spins waiting
        # for it. On 2 cores at load 10, a loss+gradient pass over a 256 MB Parquet file (54
        # features) took 0.6-1.1 s with one OpenBLAS thread, 7-17 s with two.
        with one_blas_thread():
            # Chunks are read, converted and encoded in the background thread; cutting them
            # into blocks (views) here costs nothing.
            for chunk in prefetch(encoded):
                for block in split_block(chunk, self.rows):
                    rows += block.X.shape[0]
                    count += 1
                    yield block
        self._shape = (rows, count)

    def shape(self) -> tuple[int, int]:
        """``(n_samples, n_blocks)``, remembered from the last complete scan (or counted)."""
        if self._shape is None:
            self._shape = super().shape()
        return self._shape


# --------------------------------------------------------------------------------------------
# Memory-mapped arrays: .npy files and the CSV / LIBSVM cache


class MappedDataset(FileDataset):
    """Rows in memory-mapped arrays: dense ``X`` or a CSR triple, labels, weights.

    Parameters
    ----------
    X : ndarray (n_samples, n_features), possibly a memmap, or tuple (data, indices, indptr)
    target : ndarray (n_samples,) or (n_samples, k), or None
    sample_weight : ndarray (n_samples,) or None
    paths : tuple of str
        The files behind the arrays (checked for changes at every pass).
    where : str
        The file named in messages.
    label_values : ndarray, optional
        When ``target`` holds codes into these labels (string labels of a cache).
    validate : bool
        Check every block (finite features, labels, weights) until one complete pass has
        checked every row (the files are then known unchanged at each later pass): for user
        files; a cache was checked when it was built.
    """

    def __init__(
        self,
        X,
        target,
        sample_weight,
        *,
        paths,
        where,
        n_features=None,
        feature_names=None,
        target_names=None,
        label_values=None,
        label_dtype=None,
        validate=True,
        row_offset=0,
    ):
        self.sparse = isinstance(X, tuple)
        self.X, self.target, self.sample_weight = X, target, sample_weight
        self.n_samples = (len(X[2]) - 1) if self.sparse else X.shape[0]
        self.n_features = int(n_features if self.sparse else X.shape[1])
        data_dtype = X[0].dtype if self.sparse else X.dtype
        self.dtype = np.dtype(np.float32 if data_dtype == np.float32 else np.float64)
        self.feature_names = None if feature_names is None else np.asarray(feature_names)
        self.target_ndim = 0 if target is None else target.ndim
        self.target_names = target_names
        self.label_values, self.label_dtype = label_values, label_dtype
        self.paths, self.where, self.validate = tuple(paths), where, validate
        self.row_offset = row_offset
        self._remember_files()

    def _features(self, start, stop):
        if not self.sparse:
            return np.asarray(self.X[start:stop], dtype=self.dtype)
        data, indices, indptr = self.X
        first, last = int(indptr[start]), int(indptr[stop])
        return sp.csr_matrix(
            (
                np.asarray(data[first:last], dtype=self.dtype),
                np.asarray(indices[first:last]),
                np.asarray(indptr[start : stop + 1]) - first,
            ),
            shape=(stop - start, self.n_features),
        )

    def _labels(self, start, stop):
        if self.target is None:
            return None
        labels = np.asarray(self.target[start:stop])
        if self.label_values is not None:
            return self.label_values[labels]
        return labels if self.label_dtype is None else labels.astype(self.label_dtype)

    def _raw_blocks(self, rows, order):  # (memory-mapped rows are C-ordered)
        where = self.where
        for start in range(0, self.n_samples, rows):
            stop = min(start + rows, self.n_samples)
            offset = self.row_offset + start
            X = self._features(start, stop)
            labels = self._labels(start, stop)
            weight = None
            if self.sample_weight is not None:
                weight = np.asarray(self.sample_weight[start:stop], dtype=np.float64)
            if self.validate and not self._validated:
                _check_block(where, X, labels, weight, offset, self.target_names)
            yield Block(X, labels, weight), where, offset


def split_block(block: Block, rows: int) -> Iterator[Block]:
    """``block`` cut into the fewest blocks of at most ``rows`` rows, of near-equal sizes.

    Near-equal rather than full blocks and a remainder: a chunk that ends a row group or a
    file then leaves no block of a few rows, whose per-block costs would buy little work.

    >>> [len(part.target) for part in split_block(Block(np.zeros((10, 1)), np.zeros(10), None), 4)]
    [3, 3, 4]
    """
    n_samples = block.X.shape[0]
    pieces = -(-n_samples // rows)
    if pieces <= 1:
        yield block
        return
    X, target, weight = block
    stops = [n_samples * (i + 1) // pieces for i in range(pieces)]
    for start, stop in zip([0, *stops[:-1]], stops, strict=True):
        yield Block(
            X[start:stop],
            None if target is None else target[start:stop],
            None if weight is None else weight[start:stop],
        )


def _check_block(path, X, labels, weight, offset, target_names):
    values = X.data if sp.issparse(X) else X
    finite = np.isfinite(values)
    if not finite.all():
        if sp.issparse(X):
            bad = int(np.flatnonzero(~finite)[0])
            row, column = int(np.searchsorted(X.indptr, bad, side="right")) - 1, X.indices[bad]
        else:
            row, column = (int(i) for i in np.argwhere(~finite)[0])
        raise DataError(
            path,
            f"has a non-finite value ({values[~finite][0]}) in row {offset + row + 1}, "
            f"column {column}; softreg does not impute: drop or fill such rows first.",
            column=column,
            row=offset + row + 1,
        )
    if labels is not None and labels.dtype.kind == "f":
        if labels.ndim == 2:
            check_probability_rows(path, labels, offset, target_names)
        elif np.isnan(labels).any():
            row = offset + int(np.flatnonzero(np.isnan(labels))[0]) + 1
            raise DataError(path, f"has a missing label (NaN) in row {row}.", row=row)
    if weight is not None:
        if not np.isfinite(weight).all():
            row = offset + int(np.flatnonzero(~np.isfinite(weight))[0]) + 1
            raise DataError(path, f"has a non-finite sample weight in row {row}.", row=row)
        try:
            _check_weights(path, weight, "sample_weight")
        except DataError as error:
            raise shifted(error, offset) from None


def _open_npy(path, role, allowed):
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataError(path, f"cannot read as a NumPy .npy file ({role}): {exc}.") from exc
    if not isinstance(array, np.ndarray) or array.dtype.kind not in allowed:
        raise DataError(path, f"must hold a numeric .npy array ({role}); got {array.dtype}.")
    return array


def _open_npy_dataset(path, target, features, sample_weight):
    if features is not None:
        raise DataError(path, f".npy files have no column names to select; got {features!r}.")
    X = _open_npy(path, "the features", "biuf")
    if X.ndim != 2:
        raise DataError(path, f"must hold a 2-D array of features; got shape {X.shape}.")
    if X.shape[0] == 0:
        raise DataError(path, "has no data rows.")
    paths = [os.fspath(path)]
    arrays = {}
    for role, name, kinds in (
        ("target", target, "biufU"),
        ("sample_weight", sample_weight, "biuf"),
    ):
        if name is None:
            continue
        array = _open_npy(name, f"the {role}", kinds)
        if array.shape[0] != X.shape[0] or array.ndim > 2 or (role != "target" and array.ndim != 1):
            raise DataError(
                name,
                f"must hold one {role} per row of {os.fspath(path)} ({X.shape[0]}); got an array "
                f"of shape {array.shape}.",
            )
        arrays[role] = array
        paths.append(os.fspath(name))
    return MappedDataset(
        X,
        arrays.get("target"),
        arrays.get("sample_weight"),
        paths=paths,
        where=os.fspath(path),
        target_names=None if target is None else os.fspath(target),
    )


# --------------------------------------------------------------------------------------------
# open_dataset


def _expand(path_or_paths):
    """The list of files: a path, a directory (its Parquet files), a glob or a list of them."""
    items = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else path_or_paths
    paths = []
    for item in items:
        item = os.fspath(item)
        if os.path.isdir(item):
            found = sorted(
                str(p)
                for p in Path(item).rglob("*")
                if p.is_file() and p.suffix.lower() in (".parquet", ".pq")
            )
            if not found:
                raise DataError(item, "is a directory without .parquet or .pq files.")
            paths.extend(found)
        elif glob.has_magic(item):
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                raise DataError(item, "matches no files.")
            paths.extend(found)
        else:
            if not os.path.exists(item):
                raise FileNotFoundError(f"No such file: {item!r}")
            paths.append(item)
    if not paths:
        raise ValueError("`path_or_paths` must name at least one file; got an empty list.")
    return paths


def _format_of(path):
    if path.lower().endswith(".npy"):
        return "npy"
    return guess_format(path)


def open_dataset(
    path_or_paths,
    target=None,
    features=None,
    sample_weight=None,
    format=None,
    cache_dir=None,
    exclude=(),
    n_features=None,
    engine=None,
):
    """Open data files as a dataset that fits and predictions stream, never loading it whole.

    Parameters
    ----------
    path_or_paths : str, path-like or list of them
        A file; for Parquet also a directory (every ``.parquet``/``.pq`` file below it), a
        glob (``"data/part-*.parquet"``) or a list of files with the same columns.
    target : str or list of str, optional
        CSV and Parquet: the label column, or a list of columns holding class probabilities
        (soft labels) or regression targets. ``.npy``: the path of a ``.npy`` file with one
        label (or row of probabilities) per row of ``X``. LIBSVM: must be None (the label
        comes first on each line). None: a dataset for prediction only.
    features : list of str, optional
        CSV and Parquet: the feature columns, in this order; default every other column.
    sample_weight : str, optional
        CSV and Parquet: the column of non-negative sample weights; ``.npy``: the path of a
        ``.npy`` file of them.
    format : {"npy", "parquet", "csv", "svmlight", "npz"}, optional
        Default: from the file name (``.npy``, ``.parquet``/``.pq``, ``.csv[.gz|.bz2]``,
        ``.svm``/``.svmlight``/``.libsvm[.gz|.bz2]``, ``.npz``).
    cache_dir : str or path-like, optional
        Where CSV and LIBSVM files are converted, on first use, into memory-mappable arrays
        (reused while the file is unchanged: size, modification time and a hash of its first
        and last MiB). Default ``$SOFTREG_CACHE_DIR``, else ``~/.cache/softreg``.
    exclude : list of str, optional
        CSV and Parquet: columns left out of the default feature list.
    n_features : int, optional
        LIBSVM only: the number of feature columns, when the file may use fewer indices than
        the data a model was trained on (a test file).
    engine : {None, "dask"}, optional
        ``"dask"``: read Parquet or CSV files with ``dask.dataframe`` into a dataset whose
        passes run on the Dask workers (the current ``distributed.Client``, see
        docs/distributed.md); the partitions are read once and kept on the workers.

    Returns
    -------
    Dataset
        With ``n_features``, ``feature_names``, ``dtype``; pass it to ``fit``, ``predict``,
        ``predict_proba``, ``score``.

    Raises
    ------
    DataError
        If a file cannot be read or its data are unusable (the message names the file, and
        where known the row and column); also later, during a pass, for a bad row deep in a
        file or a file changed since it was opened.
    FileNotFoundError
        If a file does not exist.

    Notes
    -----
    ``.npy`` files are memory-mapped (``X`` 2-D; the target and weights in their own
    ``.npy`` files); Parquet is read by record batch; CSV (plain, ``.gz``, ``.bz2``) and
    LIBSVM are read once into the cache, then memory-mapped; ``.npz`` archives are read
    into memory. A background thread reads the next block while the current one is
    computed on.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from softreg import SoftmaxRegression, open_dataset
    >>> folder = tempfile.mkdtemp()
    >>> np.save(os.path.join(folder, "X.npy"), np.array([[0.0], [1.0], [2.0], [3.0]]))
    >>> np.save(os.path.join(folder, "y.npy"), np.array([0, 0, 1, 1]))
    >>> data = open_dataset(os.path.join(folder, "X.npy"), target=os.path.join(folder, "y.npy"))
    >>> model = SoftmaxRegression(alpha=1e-2).fit(data)
    >>> model.predict(data).tolist()
    [0, 0, 1, 1]
    """
    if format is not None and format not in STREAM_FORMATS:
        raise ValueError(f"`format` must be one of {', '.join(STREAM_FORMATS)}; got {format!r}.")
    paths = _expand(path_or_paths)
    format = _format_of(paths[0]) if format is None else format
    if target is not None and not isinstance(target, (str, os.PathLike)):
        target = [os.fspath(name) for name in target]  # soft-label or target columns
    if n_features is not None and format != "svmlight":
        raise ValueError(f"`n_features` applies to svmlight files only; got format {format!r}.")
    if engine is not None:
        from softreg._dask import open_dask_dataset  # Dask is imported when asked for only

        return open_dask_dataset(paths, format, engine, target, features, sample_weight, exclude)
    if format != "parquet" and len(paths) > 1:
        raise DataError(paths[0], f"several files are read together only as Parquet; got {format}.")
    path = paths[0]
    if format == "parquet":
        from softreg._parquet import ParquetDataset

        return ParquetDataset(paths, target, features, sample_weight, exclude)
    if format == "npy":
        return _open_npy_dataset(path, target, features, sample_weight)
    if format == "npz":
        table = read_table(
            path, target=target, features=features, sample_weight=sample_weight, exclude=exclude
        )
        names = None if table.feature_names is None else np.asarray(table.feature_names)
        return ArrayDataset(table.X, table.y, table.sample_weight, feature_names=names)
    from softreg._file_cache import cached_dataset

    dataset = cached_dataset(path, format, target, features, sample_weight, exclude, cache_dir)
    if n_features is not None:
        if n_features < dataset.n_features:
            raise DataError(
                path,
                f"uses feature indices up to {dataset.n_features - 1}, beyond the "
                f"n_features={n_features} asked for.",
            )
        dataset.n_features = int(n_features)
    return dataset
