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
  ``X`` dense (C-ordered) or CSR in ``source.dtype``, ``target`` integer class codes
  ``(n,)`` or a float matrix ``(n, n_outputs)`` (soft labels, regression targets), and
  ``sample_weight`` ``(n,)`` or None for unit weights. Every scan yields the same blocks in
  the same order.
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

__all__ = ["ArraySource", "Block", "CallableSource", "Source", "add_sums", "block_rows"]

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


class Summary(NamedTuple):
    """What a first pass over a :class:`Dataset` collects before a fit iterates.

    ``classes`` are the sorted distinct labels of a 1-D target (the estimator's ``classes_``)
    and ``class_totals`` their total sample weight; for a 2-D target (soft labels,
    regression targets) ``classes`` is None and ``class_totals`` holds the weighted column
    sums. ``mean`` and ``std`` are the weighted feature means and standard deviations, or
    None when the scan was not asked for them.
    """

    n_samples: int
    classes: np.ndarray | None
    class_totals: np.ndarray
    weight_total: float
    mean: np.ndarray | None = None
    std: np.ndarray | None = None


class Dataset:
    """Rows as users hold them (raw labels), re-iterable: what ``open_dataset`` returns.

    A dataset is turned into a :class:`Source` for the objective at the estimator's boundary:
    ``scan`` first (classes, counts, weight totals, optionally feature moments), then
    ``source(classes=...)`` yields encoded blocks. Subclasses (files, Dask collections) set
    ``n_features``, ``dtype``, ``feature_names`` and ``target_ndim`` (1 for labels, 2 for a
    probability or target matrix, 0 when the data carry no target: prediction only).
    """

    n_features: int
    dtype: np.dtype
    feature_names: np.ndarray | None = None
    target_ndim: int = 1

    def scan(self, *, moments: bool = False) -> Summary:
        """One pass over the rows: the :class:`Summary` a fit needs."""
        raise NotImplementedError

    def source(self, *, classes=None, class_weight=None, scale=None) -> Source:
        """The rows as a :class:`Source` of encoded blocks.

        ``classes`` (sorted labels) maps 1-D labels to codes; a label outside them is an error
        naming where it was found. ``class_weight`` (one factor per class) multiplies each
        row's sample weight. ``scale = (mean, std)`` standardises the features on the fly.
        """
        raise NotImplementedError

    def batches(self) -> Iterator[Block]:
        """Raw row blocks for prediction: ``target`` holds raw labels, or None."""
        raise NotImplementedError
