"""The readers under test: how each is fed a file and which error it may raise.

A target reads one file the way softreg's command line would, and goes on to use what it read
(a loaded model predicts and is shown by ``softreg inspect``), so a file that loads but cannot
be used counts as a failure too. The only exception a target may let out is the reader's
documented error: :class:`softreg.DataError` for data files, :class:`softreg.ModelFileError`
for model files. Anything else is a bug.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from softreg._data_io import DataError, column_names, read_table
from softreg._files import open_dataset
from softreg._model_io import ModelFileError, read_model_file
from softreg._report import format_model


@dataclass(frozen=True)
class Target:
    """One reader: the file suffix it is fed, how it reads, and its documented error."""

    name: str
    suffix: str
    read: Callable[[str], object]
    error: type[Exception]
    #: The kind of file it reads, for ``fuzz.seeds``, ``fuzz.mutate`` and ``fuzz.hostile``
    #: (default: ``name``); the ``open-`` targets read the same files as the others.
    kind: str = ""

    @property
    def files(self):
        return self.kind or self.name


def read_columns(path):
    """Read a CSV or Parquet file as ``softreg fit`` does, with the label and weights found."""
    names = column_names(path)
    return read_table(
        path,
        target="label" if "label" in names else None,
        sample_weight="w" if "w" in names else None,
    )


def read_svmlight(path):
    return read_table(path)


def read_npz(path):
    column_names(path)
    return read_table(path, sample_weight="w")


def read_model(path):
    """Load a model, predict with it and format it as ``softreg inspect`` does."""
    loaded = read_model_file(path)
    estimator = loaded.estimator
    X = np.zeros((2, loaded.header["n_features"]))
    estimator.predict(X)
    if hasattr(estimator, "predict_proba"):
        estimator.predict_proba(X)
    # What `softreg inspect` (and --json) print must encode as UTF-8.
    format_model(loaded.header).encode()
    json.dumps(loaded.header, indent=2, ensure_ascii=False).encode()
    return loaded


#: Rows per block of the ``open-`` targets' second and third passes over a file of at most
#: ``SMALL_FILE_ROWS`` rows: small, so a file of a few rows makes several blocks. The first
#: pass (the scan) takes the default block size, as the command line does.
STREAM_ROWS = 3
SMALL_FILE_ROWS = 1000


def stream_dataset(path):
    """Open, scan and stream a file as ``softreg fit`` and ``predict`` do (``open_dataset``).

    CSV, LIBSVM and Parquet files are read by ``open_dataset``'s own paths (the cache's
    converters, Parquet record batches), not by ``read_table``. The label and weight columns
    are found with ``column_names``; a file it refuses is still opened (without them), since
    ``open_dataset`` must refuse it too. The cache lives in a fresh directory per case.
    """
    svmlight = path.endswith(".svm")
    cache_dir = tempfile.mkdtemp(prefix="softreg-fuzz-cache-")
    try:
        try:
            names = () if svmlight else column_names(path)
        except DataError:  # read_table's check; open_dataset must refuse the file too
            names = ()
        target = "label" if "label" in names else None
        dataset = open_dataset(
            path, target=target, sample_weight="w" if "w" in names else None, cache_dir=cache_dir
        )
        summary = dataset.scan(labels=svmlight or target is not None)
        if summary.n_samples <= SMALL_FILE_ROWS:  # a few blocks each; 10^6 rows stay in few
            dataset.rows = STREAM_ROWS
        if summary.classes is not None and len(summary.classes):
            for _ in dataset.source(classes=summary.classes).blocks():
                pass
        for _ in dataset.batches():
            pass
        return summary
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


TARGETS = {
    target.name: target
    for target in (
        Target("csv", ".csv", read_columns, DataError),
        Target("csv.gz", ".csv.gz", read_columns, DataError),
        Target("csv.bz2", ".csv.bz2", read_columns, DataError),
        Target("svmlight", ".svm", read_svmlight, DataError),
        Target("parquet", ".parquet", read_columns, DataError),
        Target("npz", ".npz", read_npz, DataError),
        Target("model", ".softreg", read_model, ModelFileError),
        Target("open-csv", ".csv", stream_dataset, DataError, kind="csv"),
        Target("open-csv.gz", ".csv.gz", stream_dataset, DataError, kind="csv.gz"),
        Target("open-svmlight", ".svm", stream_dataset, DataError, kind="svmlight"),
        Target("open-parquet", ".parquet", stream_dataset, DataError, kind="parquet"),
    )
}
