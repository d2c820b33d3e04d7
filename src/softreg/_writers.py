"""Tables written block by block: predictions of a file larger than memory.

:class:`TableWriter` appends named columns to a CSV (optionally ``.gz``/``.bz2``) or Parquet
file as blocks arrive, holding one block at a time. The rows go to a temporary file in the
target's directory, renamed onto the target only when the writer closes without error
(:func:`softreg._model_io.atomic_write`): a reader never sees a half-written file, and a
command that fails or is killed leaves no output under the target name.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
from contextlib import ExitStack
from pathlib import Path

from softreg._data_io import DataError, _cell, guess_format, import_optional

__all__ = ["TableWriter", "csv_lines"]


def csv_lines(columns, *, header):
    """Rows of named columns as CSV text (the header line first when ``header``).

    Floats are written with the shortest digits that read back to the same double, as
    :func:`softreg._data_io.format_csv` writes them.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(list(columns))
    for row in zip(*columns.values(), strict=True):
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue()


class TableWriter:
    """Write named columns to ``path`` block by block, atomically.

    Parameters
    ----------
    path : str or path-like
        ``.csv`` (``.csv.gz``, ``.csv.bz2``) or ``.parquet``/``.pq``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "out.csv"
    >>> with TableWriter(path) as writer:
    ...     writer.write({"prediction": np.array(["a", "b"])})
    ...     writer.write({"prediction": np.array(["c"])})
    >>> print(path.read_text(), end="")
    prediction
    a
    b
    c
    """

    def __init__(self, path):
        self.path = Path(path)
        self.format = guess_format(path)
        if self.format not in ("csv", "parquet"):
            raise DataError(
                path, f"predictions can be written as CSV or Parquet, not {self.format}."
            )
        self._stack = ExitStack()
        self._parquet = None
        self._text = None
        self._header_written = False
        self.n_rows = 0

    def __enter__(self):
        from softreg._model_io import atomic_write

        handle = self._stack.enter_context(atomic_write(self.path))
        if self.format == "csv":
            suffix = self.path.suffix.lower()
            if suffix == ".gz":
                handle = self._stack.enter_context(gzip.GzipFile(fileobj=handle, mode="wb"))
            elif suffix == ".bz2":
                handle = self._stack.enter_context(bz2.BZ2File(handle, mode="wb"))
            self._text = handle
        else:
            self._handle = handle
        return self

    def write(self, columns):
        """Append the rows of ``columns`` (a mapping of name to 1-D array)."""
        if self.format == "csv":
            self._text.write(csv_lines(columns, header=not self._header_written).encode())
            self._header_written = True
        else:
            pa = import_optional("pyarrow", "io", "writing Parquet files")
            parquet = import_optional("pyarrow.parquet", "io", "writing Parquet files")
            table = pa.table({name: pa.array(values) for name, values in columns.items()})
            if self._parquet is None:
                self._parquet = self._stack.enter_context(
                    parquet.ParquetWriter(self._handle, table.schema)
                )
            self._parquet.write_table(table)
        self.n_rows += len(next(iter(columns.values())))

    def __exit__(self, *exc_info):
        return self._stack.__exit__(*exc_info)
