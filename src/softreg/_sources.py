"""Block sources: where the rows of the training data come from.

A *source* is a re-iterable description of row blocks, separate from each scan over it (as a
pyarrow ``Dataset`` is from its ``Scanner``). :class:`~softreg._objective.Objective` consumes a
source and nothing else; the in-memory, memory-mapped, streamed-file and distributed paths
differ only in how a source produces its blocks and adds up per-block sums.

Conventions
-----------
Sources sit below the objective in the layering (kernels → sources → objective → solvers):
they know nothing of losses or parameters, and the objective calls only what is listed here.
Sources whose blocks come from files or a cluster subclass :class:`Source` in modules of their
own.

* ``source.blocks()`` starts a new scan and yields ``Block`` s of *encoded* rows:
  ``X`` dense (C- or Fortran-ordered: a Parquet chunk is column-major, and the kernels'
  matrix products take either layout at the same speed) or CSR in ``source.dtype``,
  ``target`` integer class codes ``(n,)`` or a float matrix ``(n, n_outputs)`` (soft
  labels, regression targets), and ``sample_weight`` ``(n,)`` or None for unit weights.
  Every scan yields the same blocks in the same order.
* ``source.reduce(function, *args, every=1)`` returns ``Σ_b function(index_b, block_b, *args)``
  over the blocks (every ``every``-th one), where ``function`` returns a tuple of floats and
  arrays that are added element by element. This is the one place where per-block results
  meet: a source whose blocks live elsewhere (Dask workers) overrides it to run ``function``
  next to the data and add the results in a tree, sending ``args`` once per call. The
  function must therefore be a module-level function (picklable) and must not rely on side
  effects visible to the caller; ``index_b`` is the block's position in the scan, stable
  across scans, so a local cache may be keyed by it.
* ``None`` is returned by ``reduce`` when the source has no blocks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

__all__ = [
    "ArrayDataset",
    "ArraySource",
    "Block",
    "CallableSource",
    "CountingSource",
    "Dataset",
    "Moments",
    "Source",
    "StandardizedSource",
    "Summary",
    "add_sums",
    "block_rows",
    "standardize_block",
]

# Rows per block: a block's logits hold at most _BLOCK_ENTRIES entries (512 KiB in float64)
# and its rows of X at most _BLOCK_X_BYTES, so that the block stays in cache between the two
# matrix products and the passes over its logits, but never fewer than _BLOCK_MIN_ROWS rows,
# below which BLAS loses more to call overhead than the cache gives back. Measured per
# loss+gradient pass (`make bench` data): letter 15000 × 16 × 26 9.6 ms in one block, 1.7 ms
# in blocks of 2520 rows; 100000 × 784 × 10 (2 threads) 147 ms in one block, 108 ms in 256.
_BLOCK_ENTRIES = 2**16
_BLOCK_X_BYTES = 2**20
_BLOCK_MIN_ROWS = 256


class Block(NamedTuple):
    """Rows of the training data: features, targets and optional sample weights."""

    X: np.ndarray | sp.csr_matrix
    target: np.ndarray
    sample_weight: np.ndarray | None


def block_rows(n_samples: int, n_outputs: int, row_bytes: int = 0, n_features: int = 0) -> int:
    """Rows per block, so that a block's logits and its rows of ``X`` stay in cache.

    ``row_bytes`` is the size of one row of ``X`` (its stored entries for sparse data). Each
    block also returns a ``(n_outputs, n_features)`` gradient: at least ``n_features / 8`` rows
    per block keep that parameter-sized work small next to the block's own (sector, 55197
    features: 11 blocks of 583 rows cost 132 ms in Xᵀ R alone, one block of 6412 rows 74 ms).

    >>> block_rows(15000, 26, 16 * 8), block_rows(100000, 10, 784 * 8), block_rows(100, 10)
    (2520, 256, 100)
    >>> block_rows(6412, 105, 2000, n_features=55197)
    6412
    """
    rows = _BLOCK_ENTRIES // max(n_outputs, 1)
    if row_bytes > 0:
        rows = min(rows, _BLOCK_X_BYTES // row_bytes)
    return max(1, min(n_samples, max(rows, _BLOCK_MIN_ROWS, n_features // 8)))


def add_sums(total, part):
    """Add the tuple of per-block sums ``part`` into ``total`` (arrays in place); return it.

    ``total`` is None before the first block. Arrays of ``total`` are the first block's own
    (each block function returns new arrays), so adding in place copies nothing.
    """
    if total is None:
        return part
    added = []
    for mine, theirs in zip(total, part, strict=True):
        if isinstance(mine, np.ndarray):
            mine += theirs
            added.append(mine)
        else:
            added.append(mine + theirs)
    return type(total)(*added) if hasattr(total, "_fields") else tuple(added)


class Source:
    """A re-iterable collection of row blocks (see the module's conventions).

    Subclasses implement :meth:`blocks` and set ``n_features``, ``dtype``, ``sparse`` (blocks
    hold CSR matrices) and ``feature_names`` (an array of str, or None).
    """

    n_features: int
    dtype: np.dtype
    sparse: bool = False
    feature_names: np.ndarray | None = None

    def blocks(self) -> Iterator[Block]:
        raise NotImplementedError

    def reduce(self, function: Callable, *args, every: int = 1):
        """``Σ_b function(b, block_b, *args)`` over every ``every``-th block, in scan order."""
        total = None
        for index, block in enumerate(itertools.islice(self.blocks(), 0, None, every)):
            total = add_sums(total, function(index, block, *args))
        return total

    def shape(self) -> tuple[int, int]:
        """``(n_samples, n_blocks)`` counted over one scan."""
        rows = count = 0
        for block in self.blocks():
            rows += block.X.shape[0]
            count += 1
        return rows, count


class ArraySource(Source):
    """Arrays (dense C-ordered or CSR) held in memory, cut into row blocks without copies.

    Parameters
    ----------
    X : ndarray or csr_matrix of shape (n_samples, n_features)
    target : ndarray of shape (n_samples,) (int codes) or (n_samples, n_outputs)
    sample_weight : ndarray of shape (n_samples,) or None
    n_outputs : int, optional
        Logits per row, for the block size: by default the columns of a 2-D ``target``, or the
        number of classes its integer codes reach.
    rows : int, optional
        Rows per block; by default :func:`block_rows`.
    feature_names : ndarray of str, optional
    """

    def __init__(
        self, X, target, sample_weight=None, *, n_outputs=None, rows=None, feature_names=None
    ):
        if n_outputs is None:
            n_outputs = target.shape[1] if target.ndim == 2 else int(target.max(initial=1)) + 1
        n_samples = X.shape[0]
        if not rows:
            stored = X.nnz if sp.issparse(X) else n_samples * X.shape[1]
            row_bytes = -(-stored * X.dtype.itemsize // max(n_samples, 1))
            rows = block_rows(n_samples, n_outputs, row_bytes, X.shape[1])
        self.X, self.target, self.sample_weight = X, target, sample_weight
        self.rows = int(rows)
        self.n_features = X.shape[1]
        self.dtype = X.dtype
        self.sparse = sp.issparse(X)
        self.feature_names = feature_names

    def blocks(self) -> Iterator[Block]:
        X, target, weight = self.X, self.target, self.sample_weight
        for start in range(0, X.shape[0], self.rows):
            stop = start + self.rows
            part = None if weight is None else weight[start:stop]
            yield Block(X[start:stop], target[start:stop], part)

    def shape(self) -> tuple[int, int]:
        n_samples = self.X.shape[0]
        return n_samples, -(-n_samples // self.rows)


class CallableSource(Source):
    """A source over any callable that returns a fresh iterable of blocks on each call.

    For generated or custom data (and tests): ``blocks`` is called once per scan.
    """

    def __init__(self, blocks: Callable[[], Iterable[Block]], *, n_features, dtype, sparse=False):
        self._blocks = blocks
        self.n_features = int(n_features)
        self.dtype = np.dtype(dtype)
        self.sparse = bool(sparse)

    def blocks(self) -> Iterator[Block]:
        return iter(self._blocks())


class CountingSource(Source):
    """Another source, unchanged, that counts the passes made over it (for progress lines).

    ``passes`` adds, per ``reduce``, the fraction of the blocks it visited (1 for a full pass,
    about ``1/every`` for a strided one) and ``rows`` the rows that fraction holds, taken from
    the wrapped source's ``shape`` (asked once). ``reduce`` is the wrapped source's own, so
    where and how blocks are reduced (prefetch, Dask workers) does not change.
    """

    def __init__(self, source: Source):
        self.source = source
        self.n_features = source.n_features
        self.dtype = source.dtype
        self.sparse = source.sparse
        self.feature_names = source.feature_names
        self.passes = 0.0
        self._shape = None

    def blocks(self) -> Iterator[Block]:
        return self.source.blocks()

    def shape(self) -> tuple[int, int]:
        if self._shape is None:
            self._shape = self.source.shape()
        return self._shape

    def reduce(self, function: Callable, *args, every: int = 1):
        total = self.source.reduce(function, *args, every=every)
        n_blocks = self.shape()[1]
        self.passes += -(-n_blocks // every) / n_blocks if n_blocks else 0.0
        return total

    @property
    def rows(self) -> float:
        """Rows read so far, a strided pass counting its share of the rows."""
        return self.passes * self.shape()[0]


class Summary(NamedTuple):
    """What a first pass over a :class:`Dataset` collects before a fit iterates.

    ``classes`` are the sorted distinct labels of a 1-D target (the estimator's ``classes_``)
    and ``class_totals`` their total sample weight; for a 2-D target (soft labels,
    regression targets), or a 1-D one scanned with ``labels=False`` (read as one column),
    ``classes`` is None and ``class_totals`` holds the weighted column sums.
    ``class_counts`` is the same without the sample weights (rows per class, or plain column
    sums): what ``class_weight="balanced"`` divides by. ``mean`` and ``std`` are the weighted
    feature means and (population) standard deviations, or None when the scan was not asked
    for them.
    """

    n_samples: int
    classes: np.ndarray | None
    class_totals: np.ndarray
    weight_total: float
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    class_counts: np.ndarray | None = None


class Dataset:
    """Rows as users hold them (raw labels), re-iterable: what ``open_dataset`` returns.

    A dataset is turned into a :class:`Source` for the objective at the estimator's boundary:
    ``scan`` first (classes, counts, weight totals, optionally feature moments), then
    ``source(classes=...)`` yields encoded blocks. Subclasses (files, Dask collections) set
    ``n_features``, ``dtype``, ``feature_names``, ``sparse`` (blocks hold CSR matrices) and
    ``target_ndim`` (1 for labels, 2 for a probability or target matrix, 0 when the data carry
    no target: prediction only).
    """

    n_features: int
    dtype: np.dtype
    feature_names: np.ndarray | None = None
    target_ndim: int = 1
    sparse: bool = False
    #: Bytes a fit may hold when it needs the rows in memory (``l1_ratio > 0``: see
    #: :mod:`softreg._gather`); None: half the machine's or the container's memory.
    memory_limit: int | None = None

    def scan(self, *, moments: bool = False, labels: bool = True) -> Summary:
        """One pass over the rows: the :class:`Summary` a fit needs.

        ``labels=False`` reads a 1-D target as one column of numbers (a regression target)
        instead of collecting its distinct labels.
        """
        raise NotImplementedError

    def source(self, *, classes=None, class_weight=None, scale=None) -> Source:
        """The rows as a :class:`Source` of encoded blocks.

        ``classes`` (sorted labels) maps 1-D labels to codes; a label outside them is an error
        naming where it was found. ``class_weight`` (one factor per class) multiplies each
        row's sample weight. ``scale = (mean, std)`` standardises the features on the fly
        (:func:`standardize_block`; ``mean`` None scales without centring). Without
        ``classes`` the target is a float matrix ``(n, n_outputs)`` in ``dtype``.
        """
        raise NotImplementedError

    def batches(self) -> Iterator[Block]:
        """Raw row blocks for prediction: ``target`` holds raw labels, or None."""
        raise NotImplementedError


def standardize_block(block: Block, mean, scale) -> Block:
    """``block`` with features ``(X - mean) / scale`` (a new array in ``X``'s dtype).

    ``mean`` None only divides by ``scale``, which keeps sparse rows sparse (sparse data are
    never centred: centring would fill them in).
    """
    X = block.X
    if sp.issparse(X):
        X = X @ sp.diags((1 / scale).astype(X.dtype, copy=False), format="csr")
        return block._replace(X=sp.csr_matrix(X))
    if mean is not None:
        X = X - mean.astype(X.dtype, copy=False)
        X /= scale.astype(X.dtype, copy=False)
    else:
        X = X / scale.astype(X.dtype, copy=False)
    return block._replace(X=X)


class StandardizedSource(Source):
    """The blocks of ``source`` with standardised features (see :func:`standardize_block`)."""

    def __init__(self, source: Source, mean, scale):
        self.inner, self.mean, self.scale = source, mean, scale
        self.n_features = source.n_features
        self.dtype = source.dtype
        self.sparse = source.sparse
        self.feature_names = source.feature_names

    def blocks(self) -> Iterator[Block]:
        for block in self.inner.blocks():
            yield standardize_block(block, self.mean, self.scale)

    def shape(self) -> tuple[int, int]:
        return self.inner.shape()


class Moments:
    """Weighted feature means and variances, added one block at a time.

    Blocks are merged by Chan, Golub and LeVeque's pairwise update (each block's own centred
    sum of squares, then the shift between the two means), so no ``Σ x² - n x̄²`` cancellation
    loses the digits of a feature whose mean is large next to its spread. Sparse blocks use
    ``Σ s x²`` within the block (their features are only scaled, never centred).
    """

    def __init__(self, n_features):
        self.weight = 0.0
        self.mean = np.zeros(n_features)
        self.squares = np.zeros(n_features)  # Σ s (x - mean)²

    def add(self, X, sample_weight=None):
        """Add the rows ``X`` (dense or CSR) with weights ``sample_weight`` (None: ones)."""
        s = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
        weight = float(s.sum())
        if not weight > 0:
            return
        if sp.issparse(X):
            mean = np.asarray(X.T @ s, dtype=np.float64).ravel() / weight
            squares = np.asarray(X.multiply(X).T @ s, dtype=np.float64).ravel()
            squares = np.maximum(squares - weight * mean**2, 0.0)
        else:
            mean = (s @ X.astype(np.float64, copy=False)) / weight
            centred = X - mean
            squares = s @ (centred * centred)
        total = self.weight + weight
        shift = mean - self.mean
        self.squares += squares + shift**2 * (self.weight * weight / total)
        self.mean += shift * (weight / total)
        self.weight = total

    def std(self):
        """The weighted population standard deviations (zeros before any weight)."""
        return np.sqrt(self.squares / self.weight) if self.weight > 0 else self.squares.copy()


class ArrayDataset(Dataset):
    """Rows held in memory (a dense array or CSR matrix) with raw labels: a :class:`Dataset`.

    What ``fit(X, y)`` wraps its (validated) arrays in, so that in-memory fits and streamed
    fits run the same code; also handy for tests. Nothing is copied: blocks are row slices.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features) (C-ordered) or csr_matrix, float32 or float64
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs), or None
        Raw labels (any sortable dtype), or a float matrix (soft labels, regression targets).
    sample_weight : ndarray of shape (n_samples,) or None
    feature_names : ndarray of str, optional
    rows : int, optional
        The most rows per block (:func:`block_rows` decides below that).

    Examples
    --------
    >>> import numpy as np
    >>> data = ArrayDataset(np.array([[0.0], [1.0], [3.0]]), np.array(["b", "a", "b"]))
    >>> summary = data.scan(moments=True)
    >>> summary.classes.tolist(), summary.class_totals.tolist(), summary.mean, summary.std
    (['a', 'b'], [1.0, 2.0], array([1.33333333]), array([1.24721913]))
    >>> next(data.source(classes=summary.classes).blocks()).target
    array([1, 0, 1])
    """

    def __init__(self, X, y=None, sample_weight=None, *, feature_names=None, rows=None):
        self.X, self.y, self.sample_weight = X, y, sample_weight
        self.rows = rows
        self.n_features = X.shape[1]
        self.dtype = X.dtype
        self.sparse = sp.issparse(X)
        self.feature_names = feature_names
        self.target_ndim = 0 if y is None else y.ndim

    def _block_rows(self, n_outputs):
        X = self.X
        stored = X.nnz if self.sparse else X.shape[0] * X.shape[1]
        row_bytes = -(-stored * X.dtype.itemsize // max(X.shape[0], 1))
        rows = block_rows(X.shape[0], n_outputs, row_bytes, X.shape[1])
        return min(rows, int(self.rows)) if self.rows else rows

    def scan(self, *, moments=False, labels=True) -> Summary:
        y, weight = self.y, self.sample_weight
        n_samples = self.X.shape[0]
        classes = counts = None
        if y is None:
            totals = counts = np.zeros(0)
        elif y.ndim == 1 and labels:
            classes, codes = np.unique(y, return_inverse=True)
            totals = np.bincount(codes, weights=weight, minlength=len(classes)).astype(float)
            counts = np.bincount(codes, minlength=len(classes)).astype(float)
        else:
            matrix = y.reshape(n_samples, -1)
            counts = matrix.sum(axis=0, dtype=np.float64)
            totals = counts if weight is None else weight.astype(np.float64) @ matrix
        weight_total = float(n_samples if weight is None else weight.sum(dtype=np.float64))
        mean = std = None
        if moments:
            accumulator = Moments(self.n_features)
            for block in self.batches():
                accumulator.add(block.X, block.sample_weight)
            mean, std = accumulator.mean, accumulator.std()
        return Summary(n_samples, classes, totals, weight_total, mean, std, counts)

    def source(self, *, classes=None, class_weight=None, scale=None) -> Source:
        X, y, weight = self.X, self.y, self.sample_weight
        if y is None:
            raise ValueError("This dataset has no target, so it cannot be trained on.")
        if classes is not None:
            classes = np.asarray(classes)
            codes = np.searchsorted(classes, y)
            known = codes < len(classes)
            known[known] = classes[codes[known]] == y[known]
            if not known.all():
                row = int(np.flatnonzero(~known)[0])
                raise ValueError(
                    f"The label {y[row].item()!r} in row {row} is not among the classes "
                    f"{classes.tolist()!r}."
                )
            target, n_outputs = codes.astype(np.intp), len(classes)
        else:
            target = np.ascontiguousarray(y.reshape(X.shape[0], -1), dtype=X.dtype)
            n_outputs = target.shape[1]
        if class_weight is not None:
            per_class = np.asarray(class_weight)
            row = per_class[target] if target.ndim == 1 else target @ per_class
            row = row.astype(X.dtype)
            weight = row if weight is None else weight * row
        source = ArraySource(
            X,
            target,
            weight,
            n_outputs=n_outputs,
            rows=self._block_rows(n_outputs),
            feature_names=self.feature_names,
        )
        return source if scale is None else StandardizedSource(source, *scale)

    def batches(self) -> Iterator[Block]:
        X, y, weight = self.X, self.y, self.sample_weight
        rows = self._block_rows(1)
        for start in range(0, X.shape[0], rows):
            part = slice(start, start + rows)
            yield Block(
                X[part], None if y is None else y[part], None if weight is None else weight[part]
            )
