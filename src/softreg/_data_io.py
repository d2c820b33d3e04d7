"""Read feature tables from CSV, Parquet, LIBSVM/svmlight and NumPy ``.npz`` files; write tables.

Conventions
-----------
A data file holds one row per sample. :func:`read_table` returns the features ``X`` as a
``(n_samples, n_features)`` float64 array (a CSR matrix for svmlight files), the labels ``y``
(strings, integers, floats or booleans, never coerced from one kind to another), optional
non-negative ``sample_weight`` and the feature names.

* **CSV and Parquet** (through pyarrow) have named columns. The label column is ``target``;
  every other column is a feature unless it is the ``sample_weight`` column, listed in
  ``exclude``, or left out by an explicit ``features`` list. Features must be numeric
  (integers, floats or booleans) with no empty cell, NA or NaN; softreg never imputes.
  Row numbers in messages count data rows from 1, the header not included.
* **LIBSVM/svmlight** files (``.svm``, ``.svmlight``, ``.libsvm``, optionally ``.gz``/``.bz2``)
  hold the label first on each line. Feature index ``j`` goes to column ``j`` whether the file
  counts from 0 or from 1, so a training file and a test file always agree (a file counting
  from 1 gets an all-zero column 0, which changes nothing in the fit). The features have no
  names; labels that are all whole numbers are returned as int64.
* **NumPy** ``.npz`` files hold a 2-D numeric array ``X``, optionally ``y`` (or the array named by
  ``target``), ``feature_names`` (1-D strings) and the array named by ``sample_weight``. They are
  read with ``allow_pickle=False``: object arrays are refused.

Every problem with the data raises :class:`DataError`, whose message starts with the file name
and names the column and row where they are known. Files are untrusted: what a file declares
about its size (a compressed stream's length, an ``.npz`` member's shape, a Parquet footer's
row count, an svmlight feature index) is checked against ``softreg._archive.MAX_DECODED_BYTES``
(half the machine's memory) before memory is allocated for it.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import importlib
import io
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # an annotation only: importing SciPy here would slow `softreg --help`
    import scipy.sparse as sp

from softreg._archive import (
    ARCHIVE_ERRORS,
    DECOMPRESSION_ERRORS,
    UnreadableFileError,
    ZipArrays,
    check_decoded_size,
    compression,
    one_line,
    open_binary,
)

__all__ = [
    "FORMATS",
    "DataError",
    "MissingDependencyError",
    "Table",
    "check_svmlight_options",
    "column_names",
    "format_csv",
    "guess_format",
    "import_optional",
    "read_table",
    "write_table",
]

#: The formats :func:`read_table` reads, by the name ``format`` takes.
FORMATS = ("csv", "parquet", "svmlight", "npz")

_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".svm": "svmlight",
    ".svmlight": "svmlight",
    ".libsvm": "svmlight",
    ".npz": "npz",
}
# Only the text formats may be compressed as a whole file.
_COMPRESSION_SUFFIXES = (".gz", ".bz2")
_COMPRESSIBLE = ("csv", "svmlight")
# CSV text is parsed in blocks of this size; the header line must fit in one block.
_CSV_BLOCK_BYTES = 1 << 20
# What pyarrow's CSV parser takes per column, measured: 10^5 columns of one row take ~1 GB
# (and 8 s). A header's width is checked against the decode bound with this before parsing.
_CSV_BYTES_PER_COLUMN = 16 << 10
# Names listed in full in "the columns are ..." hints; longer lists are cut.
_MAX_NAMES_SHOWN = 12


class DataError(ValueError):
    """A data file cannot be used as asked; the message names the file (and column, row).

    Parameters
    ----------
    path : str or path-like
        The data file.
    message : str
        What is wrong, and where useful the fix.
    column : str, optional
        The offending column.
    row : int, optional
        The offending data row, counted from 1.
    """

    def __init__(self, path, message, *, column=None, row=None):
        # One line: the command line prints it as one "Error:" line.
        super().__init__(f"{path}: {one_line(message)}")
        self.path = str(path)
        self.column = column
        self.row = row


class MissingDependencyError(ImportError):
    """An optional package that a feature needs is not installed."""


def import_optional(module, extra, purpose):
    """Import an optional dependency, or say which softreg extra installs it.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"pyarrow.parquet"``.
    extra : str
        The softreg extra that installs it, e.g. ``"io"``.
    purpose : str
        What needs it, e.g. ``"reading Parquet files"``.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingDependencyError
        If the module cannot be imported.

    Examples
    --------
    >>> import_optional("numpy", "io", "arrays").__name__
    'numpy'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise MissingDependencyError(
            f"{purpose} needs the `{top}` package, which is not installed; "
            f"install it with: pip install 'softreg[{extra}]'"
        ) from exc


@dataclass(frozen=True)
class Table:
    """Features, labels and sample weights read from one data file.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features) or scipy.sparse.csr_matrix
        Float64 features.
    y : ndarray of shape (n_samples,) or None
        Labels, or None when the file has none (or none was asked for).
    sample_weight : ndarray of shape (n_samples,) or None
        Non-negative float64 weights, or None.
    feature_names : list of str or None
        Column names of ``X``; None for svmlight files and ``.npz`` files without names.
    path : str
        The file the table was read from.
    format : str
        One of :data:`FORMATS`.
    """

    X: np.ndarray | sp.csr_matrix
    y: np.ndarray | None
    sample_weight: np.ndarray | None
    feature_names: list[str] | None
    path: str
    format: str

    @property
    def n_samples(self):
        """Number of rows."""
        return self.X.shape[0]

    @property
    def n_features(self):
        """Number of feature columns."""
        return self.X.shape[1]


def guess_format(path):
    """Tell a data file's format from its name.

    Parameters
    ----------
    path : str or path-like
        A file name ending in ``.csv``, ``.parquet``/``.pq``, ``.svm``/``.svmlight``/``.libsvm``
        or ``.npz``; CSV and svmlight names may add ``.gz`` or ``.bz2``.

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    DataError
        If the name does not end in a known suffix.

    Examples
    --------
    >>> guess_format("train.csv.gz"), guess_format("a9a.t.svm"), guess_format("x.pq")
    ('csv', 'svmlight', 'parquet')
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes = suffixes[:-1]
        found = _SUFFIX_FORMATS.get(suffixes[-1]) if suffixes else None
        if found in _COMPRESSIBLE:
            return found
    elif suffixes and suffixes[-1] in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[suffixes[-1]]
    raise DataError(
        path,
        "cannot tell the format from the file name; expected a name ending in "
        ".csv, .parquet, .pq, .svm, .svmlight, .libsvm or .npz (CSV and svmlight may add "
        ".gz or .bz2), or give the format explicitly (--format csv|parquet|svmlight|npz).",
    )


def check_svmlight_options(path, target, features, sample_weight, exclude):
    """Refuse the column options an svmlight file cannot have (it names no columns)."""
    for name, value in (("target", target), ("features", features)):
        if value is not None:
            raise DataError(
                path,
                f"svmlight files hold the label first on each line and have no column "
                f"names, so `{name}` does not apply; got {value!r}.",
            )
    if sample_weight is not None or tuple(exclude):
        raise DataError(
            path, "svmlight files have no named columns to use as sample weights or exclude."
        )


def read_table(
    path,
    *,
    target=None,
    features=None,
    exclude=(),
    sample_weight=None,
    format=None,
    n_features=None,
    strict_features=False,
):
    """Read features, labels and sample weights from a CSV, Parquet, svmlight or ``.npz`` file.

    Parameters
    ----------
    path : str or path-like
        The data file.
    target : str, optional
        The label column (CSV, Parquet) or array (``.npz``, default ``"y"`` when present).
        Must be None for svmlight files, whose labels come first on each line. When None for
        CSV or Parquet, ``y`` is None and every column is a feature candidate.
    features : sequence of str, optional
        The feature columns, in this order. Default: every column that is not ``target``,
        ``sample_weight`` or in ``exclude``.
    exclude : sequence of str, optional
        Columns to leave out of the default feature list (e.g. a row id). Each must exist.
    sample_weight : str, optional
        The column (CSV, Parquet) or array (``.npz``) holding non-negative sample weights.
    format : {"csv", "parquet", "svmlight", "npz"}, optional
        The file format; default: from the file name (:func:`guess_format`).
    n_features : int, optional
        svmlight only: the number of columns of ``X`` (a test file may use fewer indices than
        the training file had).
    strict_features : bool, default False
        With ``features``: also refuse any other column that is not the target, the sample
        weights or excluded, as a model's features are matched at prediction time.

    Returns
    -------
    Table
        ``X`` is float64, C-ordered (CSR for svmlight).

    Raises
    ------
    DataError
        If the file cannot be read or parsed, a named column is missing (or, with
        ``strict_features``, a column is left over), a feature is not
        numeric, a value is missing or not finite, a weight is negative, or the file has no
        rows. The message names the file and, where known, the column and row.
    MissingDependencyError
        If pyarrow is needed (CSV, Parquet) and not installed.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "iris.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("petal_length,petal_width,species\\n1.4,0.2,setosa\\n4.7,1.4,versicolor\\n")
    >>> table = read_table(path, target="species")
    >>> table.X
    array([[1.4, 0.2],
           [4.7, 1.4]])
    >>> table.y.tolist(), table.feature_names
    (['setosa', 'versicolor'], ['petal_length', 'petal_width'])
    """
    if format is None:
        format = guess_format(path)
    elif format not in FORMATS:
        raise ValueError(f"`format` must be one of {', '.join(FORMATS)}; got {format!r}.")
    path = os.fspath(path)
    if format == "svmlight":
        check_svmlight_options(path, target, features, sample_weight, exclude)
        return _read_svmlight(path, n_features)
    if format == "npz":
        return _read_npz(path, target, features, tuple(exclude), sample_weight, strict_features)
    return _read_arrow(
        path, format, target, features, tuple(exclude), sample_weight, strict_features
    )


def column_names(path, *, format=None):
    """The named columns of a data file, read without parsing its rows.

    Parameters
    ----------
    path : str or path-like
    format : {"csv", "parquet", "svmlight", "npz"}, optional
        Default: from the file name.

    Returns
    -------
    list of str or None
        Every column of a CSV or Parquet file; the ``feature_names`` array of an ``.npz`` file;
        None for svmlight files and ``.npz`` files without names.

    Raises
    ------
    DataError
        If the file cannot be read.
    """
    format = guess_format(path) if format is None else format
    if format == "npz":
        # Only the names are read; read_table checks them against X.
        with _npz_archive(path) as (archive, keys):
            if "feature_names" not in keys:
                return None
            names = archive.read_array(keys["feature_names"], "array 'feature_names'")
        return names.tolist() if names.dtype.kind == "U" and names.ndim == 1 else None
    if format == "svmlight":
        return None
    pa = import_optional("pyarrow", "io", "reading CSV and Parquet files")
    path = os.fspath(path)
    try:
        if format == "csv":
            csv_module = import_optional("pyarrow.csv", "io", "reading CSV files")
            _check_csv_header(path)
            try:
                with _csv_source(pa, path) as source, csv_module.open_csv(source) as reader:
                    return reader.schema.names
            except pa.ArrowInvalid as exc:
                if "Empty CSV file" in str(exc):
                    raise _empty_csv_error(path) from exc
                raise
        parquet = import_optional("pyarrow.parquet", "io", "reading Parquet files")
        with _parquet_file(parquet, path) as file:
            return file.schema_arrow.names
    except _arrow_errors(pa) as exc:
        raise _arrow_data_error(path, format, exc) from exc


# --------------------------------------------------------------------------------------------
# CSV and Parquet


def _read_arrow(path, format, target, features, exclude, sample_weight, strict):
    pa = import_optional("pyarrow", "io", f"reading {'CSV' if format == 'csv' else 'Parquet'}")
    try:
        table = _read_csv(path) if format == "csv" else _read_parquet(path)
        names = table.column_names
    except _arrow_errors(pa) as exc:
        raise _arrow_data_error(path, format, exc) from exc
    duplicated = [name for name, count in Counter(names).items() if count > 1]
    if duplicated:
        raise DataError(path, f"column name {duplicated[0]!r} appears more than once.")
    if table.num_rows == 0:
        raise DataError(path, "has no data rows.")
    feature_names = _select_features(path, names, target, features, exclude, sample_weight, strict)
    columns = [_numeric_column(path, table.column(name), name) for name in feature_names]
    X = np.ascontiguousarray(np.column_stack(columns), dtype=np.float64)
    y = None if target is None else _label_column(path, table.column(target), target)
    weight = None
    if sample_weight is not None:
        weight = _numeric_column(path, table.column(sample_weight), sample_weight)
        _check_weights(path, weight, sample_weight)
    return Table(X, y, weight, feature_names, path, format)


def _arrow_errors(pa):
    """What reading a CSV or Parquet file raises when the file is bad, not softreg.

    pyarrow decodes column names as UTF-8 only when they are asked for (UnicodeDecodeError).
    """
    return (pa.ArrowException, UnreadableFileError, UnicodeDecodeError, *DECOMPRESSION_ERRORS)


def _arrow_data_error(path, format, exc):
    if isinstance(exc, FileNotFoundError):
        return exc
    if isinstance(exc, UnreadableFileError):
        return DataError(path, f"{exc}.")
    kind = "CSV" if format == "csv" else "Parquet"
    return DataError(path, f"cannot read as a {kind} file: {exc}")


def _read_csv(path):
    csv_module = import_optional("pyarrow.csv", "io", "reading CSV files")
    pa = import_optional("pyarrow", "io", "reading CSV files")
    # Empty cells (and NA, NaN, null, ...) are missing values in text columns too, so an empty
    # label is reported instead of becoming the class "".
    convert = csv_module.ConvertOptions(strings_can_be_null=True)
    read = csv_module.ReadOptions(block_size=_CSV_BLOCK_BYTES)
    _check_csv_header(path)
    try:
        with _csv_source(pa, path) as source:
            return csv_module.read_csv(source, read_options=read, convert_options=convert)
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            raise _empty_csv_error(path) from exc
        # The multi-threaded reader does not say where a parse error is; a single-threaded
        # re-read does ("Row #N").
        with _csv_source(pa, path) as source:
            csv_module.read_csv(
                source,
                read_options=csv_module.ReadOptions(block_size=_CSV_BLOCK_BYTES, use_threads=False),
                convert_options=convert,
            )
        raise


@contextlib.contextmanager
def _csv_source(pa, path):
    """What pyarrow parses: the file itself, or its decompressed text in memory.

    Never a Python file object: pyarrow reads ahead on threads of its own, and a read that
    failed part-way left such a thread calling into a stream already closed (segmentation
    faults in the fuzz tests). So compressed text is decompressed here, within the decode
    bound, and a plain file is opened by pyarrow without guessing a compression from its name.
    """
    if compression(path) is None:
        check_decoded_size(os.path.getsize(path), "the file")
        with pa.OSFile(path, "rb") as source:
            yield source
    else:
        with open_binary(path) as stream:
            text = stream.read()
        yield pa.BufferReader(text)


def _check_csv_header(path):
    """Refuse a CSV header too long or too wide for pyarrow's parser, before it parses."""
    with open_binary(path) as source:
        start = source.read(_CSV_BLOCK_BYTES + 1).lstrip(b"\r\n")
    header = start.split(b"\n", 1)[0]
    if len(header) >= _CSV_BLOCK_BYTES:
        raise _empty_csv_error(path)
    # An upper bound: a quoted name may hold a comma.
    n_columns = header.count(b",") + 1
    try:
        check_decoded_size(
            n_columns * _CSV_BYTES_PER_COLUMN,
            f"a CSV header of {n_columns} columns (pyarrow's parser takes some "
            f"{_CSV_BYTES_PER_COLUMN >> 10} KiB per column)",
        )
    except UnreadableFileError as exc:
        raise DataError(path, f"{exc}; store such wide data as Parquet or .npz.") from exc


def _empty_csv_error(path):
    """Why pyarrow found no columns: an empty file, or a first line longer than a block."""
    with open_binary(path) as source:
        start = source.read(_CSV_BLOCK_BYTES + 1)
    if start.strip() and len(start.split(b"\n", 1)[0]) >= _CSV_BLOCK_BYTES:
        return DataError(
            path,
            f"has a header line longer than {_CSV_BLOCK_BYTES >> 20} MiB, the most softreg "
            "reads (some 100000 columns: parsing more takes minutes); store such wide data "
            "as Parquet or .npz.",
        )
    return DataError(path, "is empty; expected a header line and data rows.")


def _parquet_file(parquet, path):
    """A Parquet file whose footer may not declare strings or lists longer than the file.

    pyarrow's Thrift decoder allocates what a footer declares (up to 100 MB per string by
    default) before it finds the data missing: a 1 kB file took 180 MB.
    """
    size = max(os.path.getsize(path), 1)
    return parquet.ParquetFile(
        path, thrift_string_size_limit=size, thrift_container_size_limit=size
    )


def _read_parquet(path):
    parquet = import_optional("pyarrow.parquet", "io", "reading Parquet files")
    # ParquetFile.read, not read_table: the dataset layer refuses repeated column names
    # with an unhelpful message; they are reported by name below.
    with _parquet_file(parquet, path) as file:
        # The footer declares the table's size: check it before the columns are read.
        metadata = file.metadata
        declared = sum(
            metadata.row_group(index).total_byte_size for index in range(metadata.num_row_groups)
        )
        check_decoded_size(
            max(declared, 8 * metadata.num_rows * metadata.num_columns),
            f"the table of {metadata.num_rows} rows and {metadata.num_columns} columns",
        )
        return file.read()


def _select_features(path, names, target, features, exclude, sample_weight, strict=False):
    def require(name, role):
        if name not in names:
            raise DataError(
                path, f"has no column {name!r} ({role}); the columns are {_name_list(names)}."
            )

    if target is not None:
        require(target, "the target")
    if sample_weight is not None:
        require(sample_weight, "the sample weights")
        if sample_weight == target:
            raise DataError(path, f"column {target!r} cannot be both target and sample weight.")
    for name in exclude:
        require(name, "listed to exclude")
    reserved = {target, sample_weight}
    if features is None:
        selected = [name for name in names if name not in reserved and name not in exclude]
        if not selected:
            raise DataError(
                path, "has no feature columns left after the target, weights, exclusions."
            )
        return selected
    features = list(features)
    missing = [name for name in features if name not in names]
    if missing and strict:
        raise DataError(
            path, f"lacks feature columns the model was trained on: {_name_list(missing)}."
        )
    if len(missing) == 1:
        require(missing[0], "listed as a feature")
    if missing:
        raise DataError(
            path,
            f"has no columns {_name_list(missing)} (listed as features); "
            f"the columns are {_name_list(names)}.",
        )
    for name in features:
        if name in reserved:
            raise DataError(path, f"column {name!r} is the target or sample weight, not a feature.")
    if len(set(features)) != len(features):
        raise DataError(path, "the feature list names a column more than once.")
    if strict:
        extra = [n for n in names if n not in features and n not in reserved and n not in exclude]
        if extra:
            raise DataError(
                path,
                f"has columns that are not features of the model: {_name_list(extra)}; leave "
                "them out with `exclude` (--ignore on the command line).",
            )
    return features


def _name_list(names):
    shown = ", ".join(repr(name) for name in names[:_MAX_NAMES_SHOWN])
    if len(names) > _MAX_NAMES_SHOWN:
        shown += f", ... ({len(names)} in all)"
    return shown


def _first_index(mask):
    return int(np.flatnonzero(mask)[0])


def _decoded(column):
    pa = import_optional("pyarrow", "io", "reading tables")
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return column


def _numeric_column(path, column, name):
    """A feature or weight column as float64, refusing text, missing and non-finite values."""
    pa = import_optional("pyarrow", "io", "reading tables")
    column = _decoded(column)
    kind = column.type
    if column.null_count == len(column):
        raise DataError(path, f"column {name!r} is empty in every row.", column=name)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        for row, value in enumerate(_texts(path, column, name), start=1):
            if value is not None and not _parses_as_float(value):
                raise DataError(
                    path,
                    f"column {name!r} must be numeric; got {value!r} in row {row}.",
                    column=name,
                    row=row,
                )
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise DataError(
            path, f"column {name!r} must be numeric; got values of type {kind}.", column=name
        )
    if column.null_count:
        row = _first_index(column.is_null().to_numpy(zero_copy_only=False)) + 1
        raise DataError(
            path,
            f"column {name!r} has a missing value (empty cell, NA or NaN) in row {row}; "
            "softreg does not impute: drop or fill such rows first.",
            column=name,
            row=row,
        )
    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        row = _first_index(~finite) + 1
        raise DataError(
            path,
            f"column {name!r} has a non-finite value ({values[row - 1]}) in row {row}; "
            "softreg does not impute: drop or fill such rows first.",
            column=name,
            row=row,
        )
    return values


def _texts(path, column, name):
    """A text column as Python strings; Parquet does not guarantee its text is UTF-8."""
    try:
        return column.to_pylist()
    except UnicodeDecodeError as exc:
        raise DataError(
            path, f"column {name!r} holds text that is not UTF-8 ({exc.reason}).", column=name
        ) from exc


def _parses_as_float(value):
    try:
        float(value)
    except ValueError:
        return False
    return True


def _label_column(path, column, name):
    """A label column as a 1-D array of str, int64, float64 or bool, refusing missing labels."""
    pa = import_optional("pyarrow", "io", "reading tables")
    column = _decoded(column)
    kind = column.type
    if column.null_count:
        row = _first_index(column.is_null().to_numpy(zero_copy_only=False)) + 1
        raise DataError(
            path, f"target column {name!r} has a missing label in row {row}.", column=name, row=row
        )
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        labels = _texts(path, column, name)
        # NumPy's fixed-width text drops trailing NULs: "a\0" would silently become "a".
        with_nul = [row for row, label in enumerate(labels, start=1) if "\x00" in label]
        if with_nul:
            raise DataError(
                path,
                f"target column {name!r} has a NUL character in the label in row {with_nul[0]}.",
                column=name,
                row=with_nul[0],
            )
        # Fixed-width unicode, not object dtype: labels stay plain data end to end. Every label
        # takes the width of the longest, so one long label in a short file would multiply its
        # size: the array's size is checked first.
        longest = max(map(len, labels), default=0)
        try:
            check_decoded_size(
                4 * len(labels) * max(longest, 1),
                f"target column {name!r} ({len(labels)} labels as wide as the longest, "
                f"{longest} characters)",
            )
        except UnreadableFileError as exc:
            raise DataError(path, f"{exc}.", column=name) from exc
        return np.asarray(labels, dtype=str)
    if pa.types.is_integer(kind):
        return column.to_numpy(zero_copy_only=False).astype(np.int64)
    if pa.types.is_boolean(kind):
        return column.to_numpy(zero_copy_only=False).astype(bool)
    if pa.types.is_floating(kind):
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
        if np.isnan(values).any():
            row = _first_index(np.isnan(values)) + 1
            raise DataError(
                path,
                f"target column {name!r} has a missing label (NaN) in row {row}.",
                column=name,
                row=row,
            )
        return values
    raise DataError(
        path,
        f"target column {name!r} must hold strings, integers, floats or booleans; got {kind}.",
        column=name,
    )


def _check_weights(path, weight, name):
    negative = weight < 0
    if negative.any():
        row = _first_index(negative) + 1
        raise DataError(
            path,
            f"sample weight column {name!r} must be non-negative; got {weight[row - 1]} in "
            f"row {row}.",
            column=name,
            row=row,
        )


# --------------------------------------------------------------------------------------------
# svmlight / LIBSVM


def _read_svmlight(path, n_features):
    from sklearn.datasets import load_svmlight_file

    try:
        with open_binary(path) as source:
            X, y = load_svmlight_file(
                source, n_features=n_features, dtype=np.float64, zero_based=True
            )
    except UnreadableFileError as exc:
        raise DataError(path, f"{exc}.") from exc
    except ValueError as exc:
        message = str(exc)
        if n_features is not None and "n_features was set" in message:
            raise DataError(
                path,
                f"uses feature indices beyond the {n_features} features the model knows "
                f"({message}).",
            ) from exc
        raise DataError(path, f"cannot read as an svmlight/LIBSVM file: {message}.") from exc
    except OverflowError as exc:
        # scikit-learn's parser holds feature indices as 32-bit integers.
        raise DataError(
            path,
            f"cannot read as an svmlight/LIBSVM file: a feature index is too large ({exc}).",
        ) from exc
    except DECOMPRESSION_ERRORS as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataError(path, f"cannot read as an svmlight/LIBSVM file: {exc}.") from exc
    if X.shape[0] == 0:
        raise DataError(path, "has no data rows.")
    try:
        # The largest feature index declares the width of X: a model needs a dense row of it.
        check_decoded_size(8 * X.shape[1], f"feature index {X.shape[1] - 1} (one dense row)")
    except UnreadableFileError as exc:
        raise DataError(path, f"{exc}.") from exc
    if not np.isfinite(X.data).all():
        bad = _first_index(~np.isfinite(X.data))
        row = int(np.searchsorted(X.indptr, bad, side="right"))
        raise DataError(
            path,
            f"has a non-finite value ({X.data[bad]}) at feature index {X.indices[bad]} "
            f"in row {row}.",
            row=row,
        )
    if not np.isfinite(y).all():
        row = _first_index(~np.isfinite(y)) + 1
        raise DataError(path, f"has a non-finite label ({y[row - 1]}) in row {row}.", row=row)
    # Whole numbers become int64 labels only where int64 holds them exactly (|y| <= 2^53):
    # a label like 1e20 stays a float instead of wrapping around.
    if np.array_equal(y, np.round(y)) and (np.abs(y) <= 2**53).all():
        y = y.astype(np.int64)
    return Table(X.tocsr(), y, None, None, path, "svmlight")


# --------------------------------------------------------------------------------------------
# NumPy .npz


@contextlib.contextmanager
def _npz_archive(path):
    """The ``.npz`` archive and its arrays' member names by key; any problem is a DataError."""
    with open(path, "rb") as handle:
        start = handle.read(6)
        if start == b"\x93NUMPY":
            raise DataError(path, "holds a single .npy array; expected an .npz archive with `X`.")
        if not start.startswith(b"PK"):
            raise DataError(
                path,
                "cannot read as a NumPy .npz file: it is not a zip archive (it starts with "
                f"{start[:4]!r}).",
            )
        handle.seek(0)
        try:
            with ZipArrays(handle) as archive:
                # numpy's keys: member names without ".npy".
                keys = {name.removesuffix(".npy"): name for name in archive.names}
                if len(keys) != len(archive.names):
                    raise UnreadableFileError("has two members for the same array (a.npy and a)")
                yield archive, keys
        except UnreadableFileError as exc:
            raise DataError(path, f"{exc}.") from exc
        except ARCHIVE_ERRORS as exc:
            raise DataError(path, f"cannot read as a NumPy .npz file: {exc}.") from exc


def _read_npz(path, target, features, exclude, sample_weight, strict):
    label_key = "y" if target is None else target
    with _npz_archive(path) as (archive, keys):
        available = sorted(keys)
        wanted = {"X", "feature_names", label_key, sample_weight} & set(keys)
        arrays = {key: archive.read_array(keys[key], f"array {key!r}") for key in sorted(wanted)}
    if "X" not in arrays:
        raise DataError(path, f"has no array 'X'; the arrays are {_name_list(available)}.")
    X = arrays["X"]
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise DataError(path, f"array 'X' must be a 2-D numeric array; got {X.ndim}-D {X.dtype}.")
    if X.shape[0] == 0:
        raise DataError(path, "has no data rows.")
    try:
        check_decoded_size(8 * X.size, "array 'X' as float64")
    except UnreadableFileError as exc:
        raise DataError(path, f"{exc}.") from exc
    X = np.ascontiguousarray(X, dtype=np.float64)
    _check_finite_matrix(path, X)
    names = None
    if "feature_names" in arrays:
        names = arrays["feature_names"]
        if names.ndim != 1 or names.dtype.kind != "U" or names.shape[0] != X.shape[1]:
            raise DataError(
                path,
                f"array 'feature_names' must be 1-D strings, one per column of X "
                f"({X.shape[1]}); got {names.ndim}-D {names.dtype} of shape {names.shape}.",
            )
        names = names.tolist()
    if features is not None or exclude:
        if names is None:
            raise DataError(path, "has no 'feature_names' array to select or exclude features by.")
        selected = _select_features(path, names, None, features, exclude, None, strict)
        X = np.ascontiguousarray(X[:, [names.index(name) for name in selected]])
        names = selected
    y = None
    if target is not None or "y" in arrays:
        y = _npz_vector(path, arrays, available, label_key, X.shape[0], "the target")
        if y.dtype.kind not in "biufU":
            raise DataError(path, f"array {label_key!r} must hold labels; got dtype {y.dtype}.")
        if y.dtype.kind == "f" and np.isnan(y).any():
            index = int(np.argmax(np.isnan(y)))
            raise DataError(path, f"array {label_key!r} has a NaN label at index ({index},).")
    weight = None
    if sample_weight is not None:
        weight = _npz_vector(
            path, arrays, available, sample_weight, X.shape[0], "the sample weights"
        )
        if weight.dtype.kind not in "biuf" or not np.isfinite(weight).all():
            raise DataError(path, f"array {sample_weight!r} must be finite numbers.")
        weight = weight.astype(np.float64)
        if (weight < 0).any():
            index = int(np.argmax(weight < 0))
            raise DataError(
                path,
                f"array {sample_weight!r} must be non-negative; got {weight[index]} at "
                f"index ({index},).",
            )
    return Table(X, y, weight, names, path, "npz")


def _npz_vector(path, arrays, available, key, n_samples, role):
    if key not in arrays:
        raise DataError(
            path, f"has no array {key!r} ({role}); the arrays are {_name_list(available)}."
        )
    vector = arrays[key]
    if vector.shape != (n_samples,):
        raise DataError(
            path,
            f"array {key!r} must have shape ({n_samples},) to match X; got {vector.shape}.",
        )
    return vector


def _check_finite_matrix(path, X):
    finite = np.isfinite(X)
    if not finite.all():
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise DataError(path, f"array 'X' has a non-finite value ({X[index]}) at index {index}.")


# --------------------------------------------------------------------------------------------
# Writing


def _cell(value):
    # repr of a Python float is the shortest string that reads back to the same double.
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


def format_csv(columns):
    """Format named columns as CSV text (header line, then one line per row).

    Floats are written with the shortest digits that read back to the same double.

    Parameters
    ----------
    columns : mapping of str to ndarray of shape (n_rows,)
        The columns, in order.

    Returns
    -------
    str

    Examples
    --------
    >>> print(format_csv({"prediction": np.array(["b", "a"]), "p": np.array([0.1, 2 / 3])}), end="")
    prediction,p
    b,0.1
    a,0.6666666666666666
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    for row in zip(*columns.values(), strict=True):
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue()


def write_table(path, columns: Mapping[str, np.ndarray], *, format=None):
    """Write named columns to a CSV or Parquet file, atomically.

    Parameters
    ----------
    path : str or path-like
        Output file; ``.csv`` or ``.parquet``/``.pq`` (or ``format``).
    columns : mapping of str to ndarray of shape (n_rows,)
        The columns, in order.
    format : {"csv", "parquet"}, optional
        Default: from the file name.

    Raises
    ------
    DataError
        If the format cannot be written (svmlight, npz) or told from the name.
    MissingDependencyError
        If Parquet is asked for and pyarrow is not installed.
    """
    from softreg._model_io import atomic_write

    if format is None:
        format = guess_format(path)
    if format == "csv":
        text = format_csv(columns).encode()
        opener = {".gz": gzip.compress, ".bz2": bz2.compress}.get(Path(path).suffix.lower())
        with atomic_write(path) as handle:
            handle.write(opener(text) if opener else text)
    elif format == "parquet":
        pa = import_optional("pyarrow", "io", "writing Parquet files")
        parquet = import_optional("pyarrow.parquet", "io", "writing Parquet files")
        table = pa.table({name: pa.array(values) for name, values in columns.items()})
        with atomic_write(path) as handle:
            parquet.write_table(table, handle)
    else:
        raise DataError(path, f"predictions can be written as CSV or Parquet, not {format}.")
