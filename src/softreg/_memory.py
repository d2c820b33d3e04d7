"""The command line's memory bound: block sizes chosen from it, and memory use checked against it.

Conventions
-----------
``--memory-limit`` bounds the memory a command holds for data, on top of the interpreter and
its libraries (measured when the command starts):

* **Sizing.** A streamed pass holds a few blocks at a time: the one the solver computes on,
  the one the background thread is reading (prefetch depth 1), the one waiting between
  them, and the copies made converting a record batch into a float array; per block, the
  logits and their temporaries (a few ``n_classes`` floats per row). :func:`block_rows`
  caps the rows per block so that ``_BLOCKS_IN_FLIGHT`` blocks take at most a quarter of
  the limit; the rest covers the solver's vectors, Newton-CG's curvature cache (64 MiB at
  most), reader buffers and the allocator's slack. The cap bounds a file's reads (chunks of
  about 1 MiB, cut into blocks) as well as its blocks; below it the block size is the
  cache-friendly one of :func:`softreg._sources.block_rows`, so a generous limit changes
  nothing but the check.
* **Checking.** :class:`MemoryGuard` reads the process's anonymous resident memory
  (``RssAnon`` in ``/proc/self/status``: heap and arrays, not memory-mapped file pages,
  which the kernel can drop at will) when the command starts, and again after every
  iteration and every block written; growth beyond the limit stops the command with
  :class:`MemoryLimitError` (exit code 1, no output file left behind).
* The default limit is half the machine's memory, or half the limit of the process's memory
  cgroup when that is lower (a container's budget): the other half is left to the
  interpreter, its libraries and the page cache.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

__all__ = [
    "MemoryGuard",
    "MemoryLimitError",
    "block_rows",
    "default_memory_limit",
    "format_bytes",
    "parse_size",
]

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)
# Blocks alive at once in a streamed pass (see the conventions), and the most a block's
# logits and their temporaries take: 2**16 entries (softreg._sources.block_rows) in float64,
# four copies (logits, probabilities, their difference with the targets, the exp).
_BLOCKS_IN_FLIGHT = 5
_LOGIT_BYTES = 4 * 2**16 * 8
# The fewest rows per block worth streaming; a limit that cannot hold them is refused.
_MIN_ROWS = 64


class MemoryLimitError(RuntimeError):
    """The command needs, or used, more memory than ``--memory-limit`` allows."""


def parse_size(text: str) -> int:
    """Bytes from a size such as ``"512M"``, ``"2G"``, ``"1.5GiB"`` or ``"1000000"``.

    Units are powers of 1024.

    >>> parse_size("512M"), parse_size("1.5GiB"), parse_size("4096")
    (536870912, 1610612736, 4096)
    >>> parse_size("lots")
    Traceback (most recent call last):
    ...
    ValueError: expected a size such as 512M or 2G (units K, M, G, T: powers of 1024); got 'lots'.
    """
    match = _SIZE.fullmatch(text)
    if match is None or float(match[1]) <= 0:
        raise ValueError(
            f"expected a size such as 512M or 2G (units K, M, G, T: powers of 1024); got {text!r}."
        )
    return int(float(match[1]) * _UNITS[match[2].upper()])


def format_bytes(size: float) -> str:
    """A byte count for messages: ``"1.5 GiB"``, ``"300 MiB"``.

    >>> format_bytes(1.5 * 2**30), format_bytes(300 * 2**20), format_bytes(512)
    ('1.5 GiB', '300 MiB', '512 B')
    """
    for unit, factor in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{int(size)} B"


def _cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup (v1 or v2), or None when it has none."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, group = line.split(":", 2)
        if "memory" in controllers.split(","):
            name = Path("/sys/fs/cgroup/memory") / group.lstrip("/") / "memory.limit_in_bytes"
        elif controllers == "":
            name = Path("/sys/fs/cgroup") / group.lstrip("/") / "memory.max"
        else:
            continue
        try:
            text = name.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def default_memory_limit() -> int:
    """Half the machine's memory, or half the memory cgroup's limit when that is lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cgroup = _cgroup_limit()
    if cgroup is not None:
        total = min(total, cgroup)
    return total // 2


def block_rows(limit: int, row_bytes: int, option="--memory-limit") -> int:
    """The most rows per block that keep a pass's blocks within a quarter of ``limit``.

    ``row_bytes`` is the size of a row of features; a block's logits and their temporaries
    take at most ``_LOGIT_BYTES`` whatever the rows (:func:`softreg._sources.block_rows` caps
    the logits of a block at 2**16 entries).

    >>> block_rows(2**30, 784 * 8)
    8225
    >>> block_rows(2**25, 784 * 8)
    Traceback (most recent call last):
    ...
    softreg._memory.MemoryLimitError: --memory-limit 32 MiB is too small: ... 47.7 MiB.
    """
    budget = limit // 4 - _BLOCKS_IN_FLIGHT * _LOGIT_BYTES
    rows = budget // (_BLOCKS_IN_FLIGHT * max(row_bytes, 1))
    if rows < _MIN_ROWS:
        need = _BLOCKS_IN_FLIGHT * (_MIN_ROWS * row_bytes + _LOGIT_BYTES)
        raise MemoryLimitError(
            f"{option} {format_bytes(limit)} is too small: a pass holds {_BLOCKS_IN_FLIGHT} "
            f"blocks of at least {_MIN_ROWS} rows of {format_bytes(row_bytes)} and their "
            f"logits ({format_bytes(_LOGIT_BYTES)}), {format_bytes(need)} in all, which must "
            f"stay within a quarter of the limit; give at least {format_bytes(4 * need)}."
        )
    return int(rows)


def anonymous_memory() -> int | None:
    """The process's anonymous resident memory in bytes (Linux), or None where unknown."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"^RssAnon:\s+(\d+)\s+kB", status, re.MULTILINE)
    return None if match is None else int(match[1]) * 1024


class MemoryGuard:
    """Checks that anonymous memory has grown by at most ``limit`` since it was created.

    Parameters
    ----------
    limit : int
        Bytes.
    option : str
        How the limit is named in messages.
    """

    def __init__(self, limit: int, option: str = "--memory-limit"):
        self.limit = int(limit)
        self.option = option
        self.baseline = anonymous_memory()
        self.peak = 0

    def check(self, *_):
        """Raise :class:`MemoryLimitError` when the growth exceeds the limit (any arguments
        are ignored, so that it can serve as a callback)."""
        if self.baseline is None:
            return
        grown = (anonymous_memory() or 0) - self.baseline
        self.peak = max(self.peak, grown)
        if grown > self.limit:
            raise MemoryLimitError(
                f"softreg holds {format_bytes(grown)} of memory for data, more than "
                f"{self.option} {format_bytes(self.limit)}: raise the limit (the data, not "
                "the number of rows, decide what a pass holds: a Parquet file with very "
                "large row groups is read a row group at a time)."
            )

    def rows_for(self, dataset) -> int:
        """The most rows a block or a read of ``dataset`` may hold within the limit.

        The dataset takes its own cache-friendly sizes below this cap (``dataset.rows``).
        """
        itemsize = np.dtype(dataset.dtype).itemsize
        row_bytes = dataset.n_features * itemsize
        if dataset.sparse:  # value and column index per stored entry
            stored = getattr(dataset, "X", None)
            n_samples = getattr(dataset, "n_samples", None)
            if isinstance(stored, tuple) and n_samples:
                row_bytes = 2 * (-(-2 * len(stored[0]) * itemsize // n_samples))  # twice the mean
            else:
                row_bytes *= 2
        return block_rows(self.limit, row_bytes, self.option)
