"""Parquet datasets: one file, a directory or a glob of files, read by record batch.

pyarrow's dataset layer finds the files and unifies their schema; each pass reads every file
(a *fragment*) by record batch with only the needed columns, one batch ahead in the
background (:func:`~softreg._files.prefetch`). Rows in messages count from 1 in each file.
"""

from __future__ import annotations

import os

import numpy as np

from softreg._data_io import (
    DataError,
    _check_weights,
    _label_column,
    _numeric_column,
    import_optional,
)
from softreg._files import (
    FileDataset,
    check_probability_rows,
    feature_matrix,
    names_not_utf8,
    select_columns,
    shifted,
)
from softreg._sources import Block

__all__ = ["ParquetDataset"]


class ParquetDataset(FileDataset):
    """Parquet files read by record batch, only the needed columns (pyarrow datasets)."""

    def __init__(self, paths, target, features, sample_weight, exclude=()):
        pa_dataset = import_optional("pyarrow.dataset", "io", "reading Parquet files")
        pa = import_optional("pyarrow", "io", "reading Parquet files")
        where = paths[0] if len(paths) == 1 else os.path.dirname(paths[0])
        try:
            self._dataset = pa_dataset.dataset(list(paths), format="parquet")
            names = self._dataset.schema.names
        except UnicodeDecodeError as exc:
            raise names_not_utf8(where, exc) from exc
        except (pa.ArrowException, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise DataError(where, f"cannot read as Parquet: {exc}") from exc
        selected, targets, soft = select_columns(
            where, names, target, features, exclude, sample_weight
        )
        self.paths = tuple(os.fspath(p) for p in paths)
        self.columns = selected
        self.target_columns = targets
        self.weight_column = sample_weight
        self.n_features = len(selected)
        self.feature_names = np.asarray(selected)
        self.dtype = np.dtype(np.float64)
        self.target_ndim = 0 if target is None else (2 if soft else 1)
        self.target_names = target
        self._remember_files()

    def _raw_blocks(self, rows, order):
        pa = import_optional("pyarrow", "io", "reading Parquet files")
        pa_dataset = import_optional("pyarrow.dataset", "io", "reading Parquet files")
        wanted = self.columns + self.target_columns
        if self.weight_column is not None:
            wanted = [*wanted, self.weight_column]
        total, path = 0, self.paths[0]
        for fragment in self._dataset.get_fragments():
            path, offset = fragment.path, 0
            try:
                # In the dataset's schema (the first file's): a file whose column types
                # differ is cast, or refused with a message naming it.
                # pre_buffer=False: pyarrow would otherwise read every row group of the file
                # ahead into memory (measured: 552 MiB held for a 465 MiB file, against two
                # row groups, 99 MiB, without it; and 4× slower).
                batches = fragment.to_batches(
                    schema=self._dataset.schema,
                    columns=wanted,
                    batch_size=rows,
                    batch_readahead=1,
                    fragment_readahead=1,
                    fragment_scan_options=pa_dataset.ParquetFragmentScanOptions(pre_buffer=False),
                )
                for batch in batches:
                    if batch.num_rows == 0:  # a row group of no rows: nothing to convert
                        continue
                    block = self._convert(path, batch, offset, order)
                    yield block, path, offset
                    offset += batch.num_rows
            except (pa.ArrowException, OSError) as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                raise DataError(
                    path, f"cannot be read from row {offset + 1} on: {exc}", row=offset + 1
                ) from exc
            total += offset
        if total == 0:
            where = path if len(self.paths) == 1 else os.path.dirname(path)
            raise DataError(where, "has no data rows.")

    def _convert(self, path, batch, offset, order):
        try:
            # Once a pass has checked every row, the files are known unchanged at each later
            # one (their size and modification time), so their features are not checked
            # again: the check reads every value twice.
            X = feature_matrix(
                path, batch, self.columns, check_finite=not self._validated, order=order
            )
            if self.target_ndim == 1:
                labels = _label_column(
                    path, batch.column(self.target_columns[0]), self.target_names
                )
            elif self.target_ndim == 2:
                labels = np.column_stack(
                    [_numeric_column(path, batch.column(n), n) for n in self.target_columns]
                )
                check_probability_rows(path, labels, 0, self.target_columns)
            else:
                labels = None
            weight = None
            if self.weight_column is not None:
                weight = _numeric_column(path, batch.column(self.weight_column), self.weight_column)
                _check_weights(path, weight, self.weight_column)
        except DataError as error:
            raise shifted(error, offset) from None
        return Block(X, labels, weight)
