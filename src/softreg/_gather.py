"""A dataset's rows gathered into memory, for the solvers that read them by columns.

``solver="newton-cd"`` (every fit with ``l1_ratio > 0``) updates one coefficient at a time
and reads a feature's column per update, so it needs the rows in memory; the regularisation
path and cross-validation, built on it, too. A file or Dask dataset
(:func:`softreg.open_dataset`) is read block by block, once, into one array (dense) or CSR
matrix (sparse) of the dataset's dtype, with the raw labels and sample weights, and becomes an
:class:`~softreg._sources.ArrayDataset`.

Conventions
-----------
* **Budget.** Gathering is allowed when what the fit then holds fits in the dataset's
  ``memory_limit`` (bytes; the command line sets it from ``--memory-limit``), or, when that
  is None, in :func:`softreg._memory.default_memory_limit` (half the machine's or the
  container's memory). What the fit holds is :func:`newton_cd_bytes`: the rows, labels and
  weights, the column-ordered copy newton-cd makes of ``X`` (CSC with 64-bit indices when
  sparse), and four float64 ``(n_samples, n_classes)`` work arrays; cross-validation holds
  one more copy of the rows (a fold's training rows). Beyond the budget the fit
  stops with :class:`~softreg._memory.MemoryLimitError` naming the bytes needed and the limit,
  before (dense data, or sparse data whose stored entries are known) or while (other sparse
  data) the rows are read.
* **Standardising.** With ``scale = (mean, std)`` each block is standardised as it is
  gathered (:func:`~softreg._sources.standardize_block`), so a standardised fit holds one copy
  of the rows, as the streamed path holds none; an in-memory dataset is then copied once.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from softreg._memory import MemoryLimitError, default_memory_limit, format_bytes
from softreg._sources import ArrayDataset, Block, Dataset, standardize_block

__all__ = ["gather", "gathered_arrays", "newton_cd_bytes"]

# newton-cd's float64 work arrays of shape (n_samples, n_classes): probabilities, the change
# of the logits, the logits and a temporary of the line search.
_WORK_ARRAYS = 4


def newton_cd_bytes(n_samples, n_features, n_classes, itemsize, nnz=None, extra_copies=0):
    """Bytes a newton-cd fit holds for ``n_samples`` rows (see the module's conventions).

    ``nnz`` is the number of stored entries of sparse rows; None for dense rows.
    ``extra_copies`` more copies of the rows are held beside (cross-validation: one).

    >>> newton_cd_bytes(1000, 10, 3, 8)  # two copies of X, labels and weights, work arrays
    272000
    """
    if nnz is None:
        rows = (2 + extra_copies) * n_samples * n_features * itemsize
    else:  # CSR (int32 indices) and CSC (int64 indices, float64 squares for the norms)
        csr = nnz * (itemsize + 4) + 4 * n_samples
        rows = (1 + extra_copies) * csr + nnz * (itemsize + 8 + 8) + 8 * (n_samples + n_features)
    labels_and_weights = 16 * n_samples
    return rows + labels_and_weights + _WORK_ARRAYS * 8 * n_samples * n_classes


def _limit(dataset):
    limit = getattr(dataset, "memory_limit", None)
    return default_memory_limit() if limit is None else int(limit)


def _known_nnz(dataset):
    """Stored entries of a sparse dataset when known without a pass (memory-mapped CSR)."""
    stored = getattr(dataset, "X", None)
    if sp.issparse(stored):
        return stored.nnz
    if isinstance(stored, tuple):  # a memory-mapped CSR triple (data, indices, indptr)
        return len(stored[0])
    return None


def _refuse(needed, limit, n_samples, what, at_least=False):
    raise MemoryLimitError(
        f"{what} holds the rows in memory: {n_samples} rows need "
        f"{'at least ' if at_least else ''}{format_bytes(needed)} ({needed} bytes), more than "
        f"the memory limit {format_bytes(limit)} ({limit} bytes). Raise the dataset's "
        "`memory_limit` (--memory-limit on the command line), or fit with l1_ratio=0, "
        "which streams the rows."
    )


def gather(dataset, n_samples, n_classes, *, scale=None, what="solver='newton-cd'", copies=0):
    """``dataset`` as an :class:`~softreg._sources.ArrayDataset`, within its memory budget.

    Parameters
    ----------
    dataset : Dataset
        With a target. An :class:`~softreg._sources.ArrayDataset` is returned as it is when
        ``scale`` is None (its rows are in memory already).
    n_samples, n_classes : int
        From the dataset's scan: the budget is checked before the rows are read.
    scale : tuple (mean or None, std), optional
        Standardise the rows as they are gathered.
    what : str
        What needs the rows, for the message.
    copies : int
        Copies of the rows the caller makes beside (``extra_copies`` of
        :func:`newton_cd_bytes`).

    Returns
    -------
    ArrayDataset
        The rows in ``dataset.dtype`` (dense or CSR as the blocks are), raw labels, sample
        weights in ``dataset.dtype``, the feature names.

    Raises
    ------
    MemoryLimitError
        When :func:`newton_cd_bytes` exceeds the budget (see the module's conventions).
    """
    in_memory = isinstance(dataset, ArrayDataset)
    if in_memory and scale is None:
        return dataset
    dtype = np.dtype(dataset.dtype)
    nnz = _known_nnz(dataset) if dataset.sparse else None
    limit = _limit(dataset)
    if not in_memory and (not dataset.sparse or nnz is not None):
        needed = newton_cd_bytes(
            n_samples, dataset.n_features, n_classes, dtype.itemsize, nnz, copies
        )
        if needed > limit:
            _refuse(needed, limit, n_samples, what)
    parts, rows, stored = [], 0, 0
    for block in dataset.batches():
        X = block.X.astype(dtype, copy=False)
        if dataset.sparse:
            X = sp.csr_matrix(X)
        weight = block.sample_weight
        weight = None if weight is None else np.asarray(weight).astype(dtype, copy=False)
        block = Block(X, np.asarray(block.target), weight)
        if scale is not None:
            block = standardize_block(block, *scale)
        parts.append(block)
        rows += X.shape[0]
        if dataset.sparse and not in_memory and nnz is None:
            stored += X.nnz
            needed = newton_cd_bytes(
                rows, dataset.n_features, n_classes, dtype.itemsize, stored, copies
            )
            if needed > limit:
                _refuse(needed, limit, n_samples, what, at_least=True)
    return _concatenate(dataset, parts, dtype)


def _concatenate(dataset, parts, dtype):
    if not parts:  # no rows: the fit refuses them with its own message
        return ArrayDataset(np.zeros((0, dataset.n_features), dtype), np.zeros(0))
    if dataset.sparse:
        X = sp.vstack([part.X for part in parts], format="csr", dtype=dtype)
    else:
        X = np.ascontiguousarray(np.concatenate([part.X for part in parts]), dtype=dtype)
    y = np.concatenate([part.target for part in parts])
    weights = [part.sample_weight for part in parts]
    weight = None if weights[0] is None else np.concatenate(weights)
    return ArrayDataset(X, y, weight, feature_names=dataset.feature_names)


def gathered_arrays(X, y, sample_weight, what, copies=0):
    """``(X, y, sample_weight, feature_names)`` from arrays, or from a dataset's rows gathered.

    For the functions that take arrays (:func:`softreg.regularization_path`,
    :class:`softreg.SoftmaxRegressionCV`): a dataset carries its own labels and weights,
    so ``y`` and ``sample_weight`` must then be None; its budget is checked as for
    :func:`gather`, after a first pass (:meth:`Dataset.scan`) has counted the rows and classes.
    """
    if not isinstance(X, Dataset):
        return X, y, sample_weight, None
    from softreg._datapath import check_dataset_call

    check_dataset_call(X, y, sample_weight, what)
    summary = X.scan()
    n_classes = 2 if summary.classes is None else len(summary.classes)
    gathered = gather(X, summary.n_samples, n_classes, what=what, copies=copies)
    return gathered.X, gathered.y, gathered.sample_weight, gathered.feature_names
