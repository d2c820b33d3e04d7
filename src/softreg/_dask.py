"""Dask collections as a block source: every pass runs on the workers, next to the chunks.

The distributed objective is Spark MLlib's ``RDDLossFunction`` over Dask chunks: per pass the
parameters go to the workers once, each group of chunks adds up the per-block sums of its
rows where it lives, and the driver adds the groups' sums (a tree of tasks of fixed fan-in
first when there are many groups, as ``treeAggregate``). The driver runs the same solvers and
the same certificate as in memory, and holds parameters and sums only: no row ever travels
to it during a fit.

Conventions
-----------
* ``X`` is a 2-D ``dask.array.Array`` chunked by rows, its columns in one chunk; ``y`` (1-D
  labels, or a 2-D probability or target matrix) and ``sample_weight`` are Dask arrays with
  the same row chunks. Chunk ``c`` holds rows ``starts[c]`` to ``starts[c + 1] - 1``; errors
  about the data name the chunk and its rows.
* A :class:`DaskSource` cuts each chunk into cache-sized *blocks* on the worker, exactly as
  :class:`~softreg._sources.ArraySource` cuts an array; ``reduce(function, *args, every)``
  returns ``Σ_b function(b, block_b, *args)`` over every ``every``-th of those blocks, with
  ``b`` the block's position in that strided scan, as for an in-memory source.
* On a ``distributed`` cluster the chunks are grouped once, at the first pass, by the worker
  that holds them (one group of consecutive chunks per worker thread); a group always adds
  the same chunks in the same order, so a pass returns the same bits wherever it ran. Where
  each worker holds one group (single-threaded workers) and there are at most ``_FAN_IN``
  groups, each group is held by a :class:`_GroupHolder` actor on its worker and a pass is
  one direct call per actor, carrying ``args`` (a scheduler round trip costs ~10 ms; a call
  ~1 ms). Otherwise a pass is one task per group, placed next to its chunks, with ``args``
  inside it up to ``_EMBED_BYTES`` and beyond that computed once by a task every group task
  depends on; more than ``_FAN_IN`` group sums are added by tasks of ``_FAN_IN`` first.
* Without ``distributed`` (another Dask scheduler) a pass is one task per chunk, a tree of
  ``_FAN_IN`` and one task holding ``args``.
* A worker that dies mid-fit loses the chunks it held; Dask recomputes them from the graph
  that built them (files, generators) and the pass returns the same sums: an actor call that
  fails (OSError) runs that pass as tasks, and the actors are rebuilt from the recomputed
  chunks at the next pass (up to ``_REBUILDS`` times). Chunks that have no graph (scattered
  from the client) cannot be recomputed: the pass fails with :class:`DaskDataLostError`
  instead of returning sums over the surviving rows.
"""

from __future__ import annotations

import os
import uuid
import warnings
from concurrent.futures import CancelledError
from typing import NamedTuple

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from softreg._checks import check_probability
from softreg._sources import Block, Dataset, Source, Summary, add_sums, block_rows

__all__ = [
    "DaskDataLostError",
    "DaskDataset",
    "DaskSource",
    "local_cluster",
    "open_dask_dataset",
]

# Partial sums added per task of the reduction tree: 8 keeps the tree shallow (depth 2 up to
# 64 groups or chunks, 3 up to 512) while no task waits on more than 8 transfers (Spark's
# treeAggregate uses depth 2 by default); the driver adds at most this many sums.
_FAN_IN = 8
# Arguments of a pass up to this size travel inside each group's task; larger ones are
# computed once by a task of their own that the group tasks depend on, so that the scheduler
# never holds many copies of large parameters. Measured on the task path (2 workers, 8
# chunks of 125 rows, load 10, ms per pass embedded / own task): 64 KiB 12.5 / 18.5, 1 MiB
# 21.3 / 41.2, 4 MiB 24.7 / 30.7, 16 MiB 51.3 / 46.0; actor calls, which always carry them,
# 3.0, 6.8, 14.4, 37.0.
_EMBED_BYTES = 2**20
# Times a source rebuilds its actors after a worker died; then it uses tasks only.
_REBUILDS = 3


class DaskDataLostError(RuntimeError):
    """Chunks of the training data were lost with a worker and cannot be recomputed."""


# --------------------------------------------------------------------------------------------
# Tasks that run on the workers.
# --------------------------------------------------------------------------------------------


def _chunk_blocks(X, target, weight, rows):
    """The blocks of ``rows`` rows (the last one shorter) that a chunk is cut into."""
    for start in range(0, X.shape[0], rows):
        stop = start + rows
        part = None if weight is None else weight[start:stop]
        yield Block(X[start:stop], target[start:stop], part)


def _chunk_reduce(function, first, every, rows, X, target, weight, args):
    """``Σ function(b // every, block_b, *args)`` over the chunk's blocks ``b ≡ 0 mod every``.

    ``first`` is the scan position of the chunk's first block. None when no block is taken.
    """
    total = None
    for position, block in enumerate(_chunk_blocks(X, target, weight, rows), start=first):
        if position % every == 0:
            total = add_sums(total, function(position // every, block, *args))
    return total


def _group_reduce(function, every, args, specs, *parts):
    """Σ of :func:`_chunk_reduce` over a group's chunks, added in chunk order.

    ``specs`` holds ``(first, rows)`` per chunk of the group, ``parts`` its chunks' arrays,
    ``len(parts) // len(specs)`` per chunk (``X``, target and, when weighted, the weights).
    The same arithmetic runs in a task and in a :class:`_GroupHolder`, so a pass returns the
    same bits whichever ran it. None when no block of the group is taken.
    """
    width = len(parts) // len(specs)
    total = None
    for c, (first, rows) in enumerate(specs):
        X, target, *weight = parts[c * width : (c + 1) * width]
        part = _chunk_reduce(function, first, every, rows, X, target, *(weight or [None]), args)
        if part is not None:
            total = add_sums(total, part)
    return total


class _GroupHolder:
    """Dask actor: one group's chunks, held where they live, reduced without the scheduler.

    Created by a task that depends on the group's chunks, it keeps references to the arrays
    the worker already holds (no copy). A call goes from the driver straight to the worker.
    """

    def __init__(self, *parts):
        self._parts = parts

    def reduce(self, function, every, args, specs):
        return _group_reduce(function, every, args, specs, *self._parts)


def _add_parts(*parts):
    """Tree node: the element-wise sum of the non-None parts (into a copy of the first).

    The parts are other tasks' results, which Dask may still hold: they are never modified.
    """
    total = None
    for part in parts:
        if part is None:
            continue
        if total is None:
            copied = [np.array(value) if isinstance(value, np.ndarray) else value for value in part]
            total = type(part)(*copied) if hasattr(part, "_fields") else tuple(copied)
        else:
            total = add_sums(total, part)
    return total


def _apply_to_chunk(function, args, X, y, weight):
    """``function(block, *args)`` with a chunk's raw rows as the block."""
    return function(Block(X, y, weight), *args)


def _as_list(*values):
    return list(values)


def _identity(value):
    """The task that holds a pass's arguments: computed once, read by every chunk's task."""
    return value


def _rows_named(name, chunk, start, stop):
    return f"`{name}` chunk {chunk} (rows {start} to {stop - 1})"


class _ChunkScan(NamedTuple):
    """What one chunk contributes to a :class:`~softreg._sources.Summary`."""

    n_samples: int
    labels: np.ndarray | None  # distinct labels (1-D targets read as labels)
    totals: np.ndarray  # their weights, or the target's weighted column sums
    counts: np.ndarray  # the same without the sample weights
    weight: float
    mean: np.ndarray | None  # weighted feature means of the chunk
    squares: np.ndarray | None  # Σ s (x - mean)², the chunk's weighted sum of squares


def _check_finite(values, name, chunk, start):
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])
        raise ValueError(
            f"{_rows_named(name, chunk, start, start + values.shape[0])} must hold finite "
            f"numbers; got {values[row].ravel()[bad[row].ravel()][0]} in row {start + row}."
        )


def _scan_chunk(chunk, start, moments, labels, X, y, weight):
    """Check one chunk and return its :class:`_ChunkScan` (runs on a worker)."""
    _check_finite(X, "X", chunk, start)
    n = X.shape[0]
    if weight is None:
        s = np.ones(n)
    else:
        _check_finite(weight, "sample_weight", chunk, start)
        if (weight < 0).any():
            row = int(np.flatnonzero(weight < 0)[0])
            raise ValueError(
                f"{_rows_named('sample_weight', chunk, start, start + n)} must be non-negative; "
                f"got {weight[row]} in row {start + row}."
            )
        s = weight.astype(np.float64)
    distinct = None
    if y is None:
        totals = counts = np.zeros(0)
    elif y.ndim == 1 and labels:
        if y.dtype.kind in "fc":
            _check_finite(y, "y", chunk, start)
        distinct, codes = np.unique(y, return_inverse=True)
        totals = np.bincount(codes.ravel(), weights=s, minlength=len(distinct))
        counts = np.bincount(codes.ravel(), minlength=len(distinct)).astype(np.float64)
    else:
        _check_finite(y, "y", chunk, start)
        if y.ndim == 2 and labels:  # soft labels: each row a probability vector
            try:
                check_probability(y, "y")
            except ValueError as exc:
                where = _rows_named("y", chunk, start, start + n)
                raise ValueError(f"{where}: {exc} (index within the chunk)") from None
        matrix = y.reshape(n, -1).astype(np.float64)
        totals, counts = s @ matrix, matrix.sum(axis=0)
    weight_total = float(s.sum())
    mean = squares = None
    if moments and weight_total > 0:
        mean = (s @ X.astype(np.float64)) / weight_total
        squares = s @ np.square(X - mean)
    return _ChunkScan(n, distinct, totals, counts, weight_total, mean, squares)


def _merge_scans(*parts):
    """Tree node of the first scan: label totals merged, moments by Chan et al.'s formula."""
    parts = [part for part in parts if part is not None]
    n = sum(part.n_samples for part in parts)
    if parts[0].labels is not None:
        labels, codes = np.unique(np.concatenate([p.labels for p in parts]), return_inverse=True)
        totals, counts = (
            np.bincount(codes.ravel(), weights=np.concatenate(values), minlength=len(labels))
            for values in ([p.totals for p in parts], [p.counts for p in parts])
        )
    else:
        labels = None
        totals = np.sum([p.totals for p in parts], axis=0)
        counts = np.sum([p.counts for p in parts], axis=0)
    weight = mean = squares = 0.0
    for part in parts:
        if part.mean is None:
            continue
        if not weight:
            weight, mean, squares = part.weight, part.mean, part.squares
            continue
        # Pairwise update of Chan, Golub & LeVeque (1979): no Σx² - n x̄², which cancels.
        total = weight + part.weight
        delta = part.mean - mean
        mean = mean + delta * (part.weight / total)
        squares = squares + part.squares + delta**2 * (weight * part.weight / total)
        weight = total
    has_moments = any(part.mean is not None for part in parts)
    return _ChunkScan(
        n,
        labels,
        totals,
        counts,
        float(sum(part.weight for part in parts)),
        mean if has_moments else None,
        squares if has_moments else None,
    )


def _encode_features(X, dtype, mean, scale):
    """A chunk of ``X`` in the training dtype, C-ordered, standardised when asked.

    ``(X - mean) / scale``, or ``X / scale`` when ``mean`` is None (as
    :func:`~softreg._sources.standardize_block`).
    """
    X = np.ascontiguousarray(X, dtype=dtype)
    if mean is not None:
        X = X - mean.astype(dtype)
    if scale is not None:
        X = X / scale.astype(dtype)
    return X


def _map_chunk(X, per_block, dtype, block_info=None):
    """``per_block`` of a chunk of features in ``dtype``, after checking they are finite."""
    chunk, start = _where(block_info)
    _check_finite(X, "X", chunk, start)
    return per_block(np.ascontiguousarray(X, dtype=dtype))


def _encode_labels(y, classes, block_info=None):
    """Integer codes of a chunk's labels in the sorted ``classes``."""
    codes = np.searchsorted(classes, y)
    known = (codes < len(classes)) & (classes[np.minimum(codes, len(classes) - 1)] == y)
    if not known.all():
        chunk, start = _where(block_info)
        row = int(np.flatnonzero(~known)[0])
        where = _rows_named("y", chunk, start, start + y.shape[0])
        raise ValueError(
            f"{where} holds the label {_plain(y[row])!r} "
            f"(row {start + row}), which is not among the classes {classes.tolist()!r}."
        )
    return codes.astype(np.intp)


def _plain(value):
    """A NumPy scalar as the Python value it holds, for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _where(block_info):
    """``(chunk, first row)`` of the block a ``map_blocks`` function was called on."""
    info = block_info[0]
    return info["chunk-location"][0], info["array-location"][0][0]


def _class_factor(target, class_weight, dtype):
    """Each row's class weight: ``class_weight[code]``, or ``Σ_k y_k class_weight[k]``."""
    factor = class_weight[target] if target.ndim == 1 else target @ class_weight
    return factor.astype(dtype)


# --------------------------------------------------------------------------------------------
# Graphs built on the driver.
# --------------------------------------------------------------------------------------------


def _row_keys(*arrays):
    """Per row chunk, the chunk's key in each array (None for an array that is None)."""
    n_chunks = arrays[0].numblocks[0]
    keys = [
        [None] * n_chunks
        if array is None
        else [key[0] if isinstance(key, list) else key for key in array.__dask_keys__()]
        for array in arrays
    ]
    return list(zip(*keys, strict=True))


def _tree(name, graph, keys, combine):
    """Add tasks combining ``keys`` in groups of ``_FAN_IN`` until at most ``_FAN_IN`` remain.

    Returns the remaining keys: as in Spark's ``treeAggregate``, the last level is combined on
    the driver, which saves every pass a hop between workers.
    """
    level = 0
    while len(keys) > _FAN_IN:
        parents = []
        for group, start in enumerate(range(0, len(keys), _FAN_IN)):
            key = (f"{name}-level{level}", group)
            graph[key] = (combine, *keys[start : start + _FAN_IN])
            parents.append(key)
        keys, level = parents, level + 1
    return keys


def _data_lost(exc):
    """The error for a pass whose chunks were lost with a worker and cannot be recomputed."""
    return DaskDataLostError(
        "A Dask worker died holding chunks of the training data that cannot be recomputed "
        "(they were scattered from the client, not built by a Dask graph), so the sums "
        "over the data would be incomplete. Build the Dask collections from files or a "
        "graph (dask.array.from_array, dask.dataframe.read_parquet, ...) so that Dask can "
        f"recompute lost chunks; cause: {exc!r}"
    )


def _compute(name, graph, keys, collections, combine):
    """Run the tasks of ``graph`` and return ``combine`` of the values of ``keys``."""
    graph = HighLevelGraph.from_collections(name, graph, dependencies=collections)
    try:
        values = dask.compute(*[Delayed(key, graph, layer=name) for key in keys])
    except CancelledError as exc:
        raise _data_lost(exc) from exc
    return combine(*values)


def _check_rows(X, named):
    """Check the chunking of ``X`` and of the arrays ``named`` (name → array or None)."""
    if not isinstance(X, da.Array) or X.ndim != 2:
        raise TypeError(
            f"`X` must be a 2-D dask.array.Array; got {type(X).__name__} "
            f"with {getattr(X, 'ndim', '?')} dimensions."
        )
    for name, array in {"X": X, **named}.items():
        if array is None:
            continue
        if not isinstance(array, da.Array):
            raise TypeError(
                f"`{name}` must be a dask.array.Array like `X`; got {type(array).__name__}."
            )
        unknown = [c for c, rows in enumerate(array.chunks[0]) if np.isnan(rows)]
        if unknown:
            raise ValueError(
                f"`{name}` has unknown chunk sizes (NaN) along its rows, first chunk "
                f"{unknown[0]}: call `{name}.compute_chunk_sizes()`, or convert a DataFrame "
                "with `.to_dask_array(lengths=True)`."
            )
    if len(X.chunks[1]) > 1:
        warnings.warn(
            f"`X` has its {X.shape[1]} columns in {len(X.chunks[1])} chunks; rechunking to one "
            "column chunk so that each task holds whole rows. Chunk X by rows only "
            "(X.rechunk({1: -1})) to avoid this copy.",
            UserWarning,
            stacklevel=4,
        )
        X = X.rechunk({1: -1})
    for name, array in named.items():
        if array is None:
            continue
        if array.shape[0] != X.shape[0]:
            raise ValueError(
                f"`{name}` must have one row per row of `X` ({X.shape[0]}); got {array.shape[0]}."
            )
        for chunk, (mine, theirs) in enumerate(zip(array.chunks[0], X.chunks[0], strict=True)):
            if mine != theirs:
                raise ValueError(
                    f"`{name}` chunk {chunk} has {mine} rows but `X` chunk {chunk} has "
                    f"{theirs}: chunk them alike along the rows, e.g. "
                    f"`{name}.rechunk({{0: X.chunks[0]}})`."
                )
        if array.ndim == 2 and len(array.chunks[1]) > 1:
            named[name] = array.rechunk({1: -1})
    return X, named


def _as_array(values):
    """A Dask Series as a Dask array with known chunk sizes; anything else unchanged."""
    if values is not None and hasattr(values, "to_dask_array"):
        return values.to_dask_array(lengths=True)
    return values


def _client_of(arrays):
    """The ``distributed.Client`` whose futures hold the persisted ``arrays``, or None."""
    try:
        from distributed import futures_of
    except ImportError:  # pragma: no cover - dask without distributed
        return None
    futures = futures_of(arrays[0])
    return futures[0].client if futures else None


def _nbytes(values):
    """Bytes of the NumPy arrays among ``values`` (what pickling them costs)."""
    return sum(value.nbytes for value in values if isinstance(value, np.ndarray))


class _Group(NamedTuple):
    """Consecutive chunks held by one worker, reduced by one task or actor call per pass."""

    worker: str  # its address when grouped ("" when unknown)
    specs: list  # (first block, rows per block) per chunk
    parts: list  # the chunks' futures: X, target (and weights) per chunk
    spans: list  # (first block, one past the last) per chunk, in scan positions

    def taken(self, every):
        """Whether a block ``b ≡ 0 mod every`` lies in one of the group's chunks."""
        return any(-(-stop // every) != -(-first // every) for first, stop in self.spans)


def _starts(chunks):
    return np.concatenate([[0], np.cumsum(chunks, dtype=np.int64)]).tolist()


class DaskSource(Source):
    """Encoded rows held as Dask arrays on the workers; passes reduced on the workers.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Dense float32 or float64, chunked by rows (columns in one chunk).
    target : dask.array.Array of shape (n_samples,) (int codes) or (n_samples, n_outputs)
    sample_weight : dask.array.Array of shape (n_samples,) or None
    n_outputs : int
        Logits per row (for the block size).
    feature_names : ndarray of str, optional

    The arrays are persisted once (on the cluster when a ``distributed.Client`` is the
    current scheduler) and every pass reuses the persisted chunks.
    """

    def __init__(self, X, target, sample_weight=None, *, n_outputs, feature_names=None):
        X, named = _check_rows(X, {"y": target, "sample_weight": sample_weight})
        target, sample_weight = named["y"], named["sample_weight"]
        if X.dtype not in (np.float32, np.float64):
            raise TypeError(f"`X` must hold float32 or float64; got {X.dtype}.")
        arrays = [X, target] + ([] if sample_weight is None else [sample_weight])
        self._arrays = dask.persist(*arrays)
        self.n_features = int(X.shape[1])
        self.dtype = np.dtype(X.dtype)
        self.sparse = False
        self.feature_names = feature_names
        self.n_outputs = int(n_outputs)
        row_bytes = self.n_features * self.dtype.itemsize
        self._chunk_rows = [int(rows) for rows in X.chunks[0]]
        # Blocks per chunk, cut as ArraySource cuts an array of the chunk's rows.
        self._rows = [
            block_rows(rows, self.n_outputs, row_bytes, self.n_features)
            for rows in self._chunk_rows
        ]
        counts = [-(-rows // per) for rows, per in zip(self._chunk_rows, self._rows, strict=True)]
        self._first = _starts(counts)
        self._client = _client_of(self._arrays)
        self._groups = None  # on a distributed cluster: the chunks grouped where they live
        self._holders = None  # and one _GroupHolder actor per group
        self._rebuilds = 0

    @property
    def chunks(self):
        """The persisted ``(X, target, sample_weight)`` arrays."""
        X, target, *weight = self._arrays
        return X, target, weight[0] if weight else None

    def blocks(self):
        """Blocks computed chunk by chunk *on the driver*: for inspection, never used in a fit."""
        X, target, weight = self.chunks
        for c, rows in enumerate(self._rows):
            parts = dask.compute(
                X.blocks[c], target.blocks[c], None if weight is None else weight.blocks[c]
            )
            yield from _chunk_blocks(*parts, rows)

    def reduce(self, function, *args, every=1):
        """``Σ_b function(b, block_b, *args)``, each chunk's share computed on its worker."""
        if self._client is None:
            return self._reduce_graph(function, args, every)
        groups = [group for group in self._plan() if group.taken(every)]
        if not groups:
            return None
        # A worker runs its actors' calls one at a time: actors only where a worker has one.
        workers = [group.worker for group in self._groups]
        alone = len(set(workers)) == len(workers)
        if alone and len(groups) <= _FAN_IN and self._rebuilds <= _REBUILDS:
            parts = self._call_holders(groups, function, every, args)
            if parts is not None:
                return _add_parts(*parts)
        return self._reduce_tasks(groups, function, every, args)

    def _reduce_graph(self, function, args, every):
        """Any Dask scheduler: one task per chunk, a tree of ``_FAN_IN``, args sent once."""
        X, target, weight = self.chunks
        name = f"softreg-reduce-{uuid.uuid4().hex}"
        arguments = f"{name}-args"
        graph = {arguments: (_identity, args)}
        parts = []
        for c, (x, t, w) in enumerate(_row_keys(X, target, weight)):
            first, stop = self._first[c], self._first[c + 1]
            if -(-stop // every) == -(-first // every):  # no block b ≡ 0 mod every in the chunk
                continue
            rows = self._rows[c]
            graph[(name, c)] = (_chunk_reduce, function, first, every, rows, x, t, w, arguments)
            parts.append((name, c))
        if not parts:
            return None
        keys = _tree(name, graph, parts, _add_parts)
        return _compute(name, graph, keys, list(self._arrays), _add_parts)

    def _plan(self):
        """The chunks grouped by the worker (and thread) that holds them, found once.

        Each worker's chunks, in order, are split into as many groups as it has threads. The
        groups stay fixed for the life of the source: after a worker dies its chunks are
        recomputed elsewhere and its groups' tasks follow them there, adding the same chunks
        in the same order, so every pass returns the same bits.
        """
        if self._groups is None:
            from distributed import futures_of, wait

            client = self._client
            futures = {f.key: f for array in self._arrays for f in futures_of(array)}
            keys = _row_keys(*self.chunks)
            wait(list(futures.values()))  # their places are known once they are in memory
            holders = client.who_has([futures[chunk[0]] for chunk in keys])
            threads = client.nthreads()
            by_worker = {}
            for c, chunk in enumerate(keys):
                where = holders.get(chunk[0]) or ("",)
                by_worker.setdefault(where[0], []).append(c)
            self._groups = []
            for worker, chunks in by_worker.items():
                count = max(1, min(threads.get(worker, 1), len(chunks)))
                for share in np.array_split(np.asarray(chunks), count):
                    members = share.tolist()
                    self._groups.append(
                        _Group(
                            worker,
                            [(self._first[c], self._rows[c]) for c in members],
                            [futures[key] for c in members for key in keys[c] if key is not None],
                            [(self._first[c], self._first[c + 1]) for c in members],
                        )
                    )
        return self._groups

    def _call_holders(self, groups, function, every, args):
        """The groups' sums from their actors (built at the first call), or None on failure.

        A call fails when its worker died (OSError): the actors are rebuilt at the next pass,
        up to ``_REBUILDS`` times, from the persisted chunks (which Dask recomputes first).
        """
        client = self._client
        if self._holders is None:
            self._holders = {}
        try:
            calls = []
            for group in groups:
                key = group.spans[0][0]  # the group's first block: one group per key
                if key not in self._holders:
                    self._holders[key] = client.submit(
                        _GroupHolder,
                        *group.parts,
                        actor=True,
                        pure=False,
                        workers=[group.worker] if group.worker else None,
                        allow_other_workers=True,
                    ).result()
                calls.append(self._holders[key].reduce(function, every, args, group.specs))
            return [call.result() for call in calls]
        except OSError:
            self._holders = None
            self._rebuilds += 1
            return None

    def _reduce_tasks(self, groups, function, every, args):
        """The groups' sums as tasks placed next to their chunks, added in a tree of fan-in 8.

        Small ``args`` travel inside each task; larger ones (``_EMBED_BYTES``) are computed
        once by a task that every group's task depends on, which Dask ships to each worker
        once and can recompute if a worker dies.
        """
        client = self._client
        if _nbytes(args) > _EMBED_BYTES:
            args = client.submit(_identity, args, pure=False)
        level = [
            client.submit(
                _group_reduce,
                function,
                every,
                args,
                group.specs,
                *group.parts,
                pure=False,
                workers=[group.worker] if group.worker else None,
                allow_other_workers=True,
            )
            for group in groups
        ]
        while len(level) > _FAN_IN:
            level = [
                client.submit(_add_parts, *level[start : start + _FAN_IN], pure=False)
                for start in range(0, len(level), _FAN_IN)
            ]
        try:
            return _add_parts(*client.gather(level))
        except CancelledError as exc:
            raise _data_lost(exc) from exc

    def shape(self):
        """``(n_samples, n_blocks)`` from the chunk sizes, without a pass."""
        return sum(self._chunk_rows), self._first[-1]


# --------------------------------------------------------------------------------------------
# The user-facing dataset.
# --------------------------------------------------------------------------------------------


class DaskDataset(Dataset):
    """Rows held as Dask collections, with raw labels: what ``fit`` makes of Dask input.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Chunked by rows; columns in more than one chunk are rechunked with a warning.
    y : dask.array.Array of shape (n_samples,) or (n_samples, n_outputs), optional
        Labels, or a probability or target matrix; None for prediction only.
    sample_weight : dask.array.Array of shape (n_samples,), optional
    feature_names : sequence of str, optional

    Examples
    --------
    >>> import dask, dask.array as da, numpy as np
    >>> X = da.from_array(np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]), chunks=(2, 2))
    >>> y = da.from_array(np.array(["b", "a", "b"]), chunks=2)
    >>> with dask.config.set(scheduler="sync"):
    ...     summary = DaskDataset(X, y).scan()
    >>> summary.classes.tolist(), summary.class_totals.tolist()
    (['a', 'b'], [1.0, 2.0])
    """

    # The files the data were read from (open_dataset), named by a checkpoint's fingerprint.
    paths: tuple = ()

    def __init__(self, X, y=None, sample_weight=None, *, feature_names=None):
        X, named = _check_rows(X, {"y": y, "sample_weight": sample_weight})
        y, sample_weight = named["y"], named["sample_weight"]
        if sample_weight is not None and sample_weight.ndim != 1:
            raise ValueError(
                f"`sample_weight` must be 1-D, one weight per row; got shape {sample_weight.shape}."
            )
        if y is not None and y.ndim not in (1, 2):
            raise ValueError(f"`y` must be 1-D or 2-D; got shape {y.shape}.")
        self.X, self.y, self.sample_weight = X, y, sample_weight
        self.n_features = int(X.shape[1])
        self.dtype = np.dtype(np.float32 if X.dtype == np.float32 else np.float64)
        self.feature_names = None if feature_names is None else np.asarray(feature_names, object)
        self.target_ndim = 0 if y is None else y.ndim
        self.sparse = False
        self._starts = _starts(X.chunks[0])

    @classmethod
    def from_collections(cls, X, y=None, sample_weight=None):
        """A dataset over what ``fit(X, y, sample_weight)`` received with Dask ``X``.

        ``X`` a Dask array: ``y`` and ``sample_weight`` Dask arrays or Series. ``X`` a Dask
        DataFrame: ``y`` and ``sample_weight`` name its columns (the features are the other
        columns), or are Dask Series or arrays.
        """
        if hasattr(X, "columns"):  # a Dask DataFrame
            target = y if isinstance(y, str) else None
            weight = sample_weight if isinstance(sample_weight, str) else None
            dataset = cls.from_dataframe(X, target, sample_weight=weight, persist=y is not None)
            if target is None and y is not None:
                dataset = cls(
                    dataset.X,
                    _as_array(y),
                    dataset.sample_weight,
                    feature_names=dataset.feature_names,
                )
            if weight is None and sample_weight is not None:
                dataset = cls(
                    dataset.X,
                    dataset.y,
                    _as_array(sample_weight),
                    feature_names=dataset.feature_names,
                )
            return dataset
        return cls(X, _as_array(y), _as_array(sample_weight))

    @classmethod
    def from_dataframe(cls, frame, target=None, *, sample_weight=None, features=None, persist=True):
        """A dataset over the columns of a Dask DataFrame, persisted once on the workers.

        ``target`` and ``sample_weight`` name columns; ``features`` (default: every other
        column) lists the feature columns in order. ``persist=False`` (prediction) reads
        the partitions where they are used instead of keeping them on the workers.
        """
        columns = list(frame.columns)
        targets = [target] if isinstance(target, str) else list(target or [])
        named = targets + ([] if sample_weight is None else [sample_weight])
        missing = [name for name in named + list(features or []) if name not in columns]
        if missing:
            raise ValueError(
                f"The DataFrame has no columns {missing!r}; its columns are {columns!r}."
            )
        if features is None:
            features = [name for name in columns if name not in named]
        frame = frame[list(features) + named]
        if persist:
            frame = frame.persist()
            X = frame[list(features)].to_dask_array(lengths=True)
        else:
            # Lengths from the array's own chunks: Dask may fuse small Parquet files into
            # fewer partitions when it computes a DataFrame's lengths than it converts.
            X = frame[list(features)].to_dask_array().compute_chunk_sizes()
        lengths = {"lengths": X.chunks[0]}
        with warnings.catch_warnings():
            # String labels become an object array, which is what the scan expects.
            warnings.filterwarnings("ignore", "Dask currently has limited support for convert")
            y = None if target is None else frame[target].to_dask_array(**lengths)  # list: 2-D
        weight = None if sample_weight is None else frame[sample_weight].to_dask_array(**lengths)
        return cls(X, y, weight, feature_names=[str(name) for name in features])

    def map_rows(self, per_block):
        """Lazy ``per_block(rows)`` over the row chunks of ``X``, concatenated along the rows.

        Each chunk is cast to the dataset's dtype and checked for NaN and inf (an error naming
        the chunk) on its worker. The output's shape past the rows is found by calling
        ``per_block`` on one row of zeros.
        """
        sample = per_block(np.zeros((1, self.n_features), self.dtype))
        if sample.ndim == 1:
            shape = {"drop_axis": 1}
        else:
            shape = {"chunks": (self.X.chunks[0], *((n,) for n in sample.shape[1:]))}
        return self.X.map_blocks(
            _map_chunk,
            per_block,
            self.dtype,
            dtype=sample.dtype,
            meta=np.empty((0,) * sample.ndim, sample.dtype),
            **shape,
        )

    def map_batches(self, function, *args):
        """``[function(block, *args)]`` per chunk, computed on the workers (for ``score``).

        Each chunk's raw rows are one block; only the results travel to the driver.
        """
        name = f"softreg-batches-{uuid.uuid4().hex}"
        arrays = [self.X, self.y, self.sample_weight]
        graph = {}
        for c, keys in enumerate(_row_keys(*arrays)):
            graph[(name, c)] = (_apply_to_chunk, function, args, *keys)
        keys = [(name, c) for c in range(self.X.numblocks[0])]
        return _compute(name, graph, keys, [a for a in arrays if a is not None], _as_list)

    def _scan_graph(self, moments, labels):
        name = f"softreg-scan-{uuid.uuid4().hex}"
        arrays = [self.X, self.y, self.sample_weight]
        graph = {}
        parts = []
        for c, (x, y, w) in enumerate(_row_keys(*arrays)):
            graph[(name, c)] = (_scan_chunk, c, self._starts[c], moments, labels, x, y, w)
            parts.append((name, c))
        keys = _tree(name, graph, parts, _merge_scans)
        return _compute(name, graph, keys, [a for a in arrays if a is not None], _merge_scans)

    def scan(self, *, moments=False, labels=True):
        """Classes, class totals, weight total (and feature moments), computed on the workers.

        Every chunk is checked on its worker: NaN or inf in ``X`` (or in a float ``y``),
        negative or non-finite weights are errors naming the chunk and row. ``labels=False``
        reads a 1-D ``y`` as one column of numbers.
        """
        scan = self._scan_graph(moments, labels)
        std = None if scan.squares is None else np.sqrt(scan.squares / scan.weight)
        return Summary(
            scan.n_samples, scan.labels, scan.totals, scan.weight, scan.mean, std, scan.counts
        )

    def source(self, *, classes=None, class_weight=None, scale=None):
        """The rows encoded on the workers (codes, class weights, scaling) and persisted."""
        if self.y is None:
            raise ValueError("This dataset has no target `y`: it can be used for prediction only.")
        mean, scale = (None, None) if scale is None else scale
        X = self.X.map_blocks(_encode_features, self.dtype, mean, scale, dtype=self.dtype)
        if classes is not None:
            classes = np.asarray(classes)
            target = self.y.map_blocks(_encode_labels, classes, dtype=np.intp)
            n_outputs = len(classes)
        else:
            y = self.y if self.y.ndim == 2 else self.y[:, None]
            target = y.map_blocks(_encode_features, self.dtype, None, None, dtype=self.dtype)
            n_outputs = y.shape[1]
        weight = None if self.sample_weight is None else self.sample_weight.astype(self.dtype)
        if class_weight is not None:
            drop = {} if target.ndim == 1 else {"drop_axis": 1}
            factor = target.map_blocks(
                _class_factor,
                np.asarray(class_weight, np.float64),
                self.dtype,
                dtype=self.dtype,
                **drop,
            )
            weight = factor if weight is None else weight * factor
        return DaskSource(X, target, weight, n_outputs=n_outputs, feature_names=self.feature_names)

    def batches(self):
        """Raw row blocks, one per chunk, computed to the driver (for prediction)."""
        arrays = [self.X, self.y, self.sample_weight]
        for c in range(self.X.numblocks[0]):
            parts = [None if a is None else a.blocks[c] for a in arrays]
            yield Block(*dask.compute(*parts))


# What distributed's nannies set MALLOC_TRIM_THRESHOLD_ to in the workers they start (and,
# since they run in the process that starts a LocalCluster, in that process's environment).
_TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def local_cluster(n_workers):
    """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes, for fitting.

    The workers are started without the ``MALLOC_TRIM_THRESHOLD_=65536`` that Dask sets by
    default: setting it turns off glibc's adaptive mmap threshold, so every temporary of a
    block (its logits, 512 KiB) is mapped and page-faulted afresh, which made a pass's work
    on a worker twice that of the same work in the driver (55–62 ms against 29 ms for
    200000 × 20 rows, 10 classes). The workers keep freed memory for the next pass instead.
    """
    import distributed

    default = dask.config.get(_TRIM_KEY, None)
    if default is not None and os.environ.get("MALLOC_TRIM_THRESHOLD_") == str(default):
        del os.environ["MALLOC_TRIM_THRESHOLD_"]  # left by an earlier LocalCluster's nanny
    with dask.config.set({_TRIM_KEY: None}):
        return distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        )


def open_dask_dataset(paths, format, engine, target, features, sample_weight, exclude):
    """``open_dataset(..., engine="dask")``: Parquet or CSV files read by ``dask.dataframe``."""
    import dask.dataframe as dd

    if engine != "dask":
        raise ValueError(f'`engine` must be None or "dask"; got {engine!r}.')
    if format == "parquet":
        frame = dd.read_parquet(paths)
    elif format == "csv":
        # Compressed files cannot be split into byte ranges: one partition per file.
        compressed = any(path.lower().endswith((".gz", ".bz2")) for path in paths)
        frame = dd.read_csv(paths, blocksize=None if compressed else "64MiB")
    else:
        raise ValueError(f'engine="dask" reads Parquet and CSV files; got {format} ({paths[0]}).')
    if features is None and exclude:
        targets = [target] if isinstance(target, str) else list(target or [])
        named = {*exclude, sample_weight, *targets}
        features = [name for name in frame.columns if name not in named]
    dataset = DaskDataset.from_dataframe(
        frame, target, sample_weight=sample_weight, features=features
    )
    dataset.paths = tuple(paths)  # what a checkpoint's fingerprint names
    return dataset
