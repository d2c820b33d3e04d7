"""Valid files to start mutating from: a few small files per reader, made here, deterministic.

Each seed is small (a few hundred bytes to a few kilobytes) so that a mutation lands in the
structure (headers, footers, zip directories) as often as in the numbers.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import os
import tempfile

import numpy as np

from softreg._estimator import LinearRegression, SoftmaxRegression
from softreg._model_io import save_model

_ROWS = 12


def _data(seed=0, n_rows=_ROWS, n_features=3):
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(n_rows, n_features)), 3)
    labels = np.array(["a", "b", "c"])[rng.integers(0, 3, size=n_rows)]
    labels[:3] = ["a", "b", "c"]  # every class present
    weights = np.round(rng.uniform(0.5, 2.0, size=n_rows), 2)
    return X, labels, weights


def csv_seeds():
    """Plain CSV text: floats, integers, booleans, quoted labels, scientific notation."""
    X, labels, weights = _data()
    lines = ["x0,x1,x2,label,w"]
    lines += [
        f"{a},{b},{c},{label},{w}" for (a, b, c), label, w in zip(X, labels, weights, strict=True)
    ]
    first = ("\n".join(lines) + "\n").encode()
    second = (
        'count,flag,"ratio",label\n'
        + "".join(
            f'{i},{"true" if i % 2 else "false"},{i * 1.5e-3:e},"class {i % 3}"\n'
            for i in range(_ROWS)
        )
    ).encode()
    third = b"x,label\r\n" + b"".join(b"%d.25,%d\r\n" % (i, i % 2) for i in range(_ROWS))
    return [first, second, third]


def csv_gz_seeds():
    return [gzip.compress(seed, mtime=0) for seed in csv_seeds()]


def csv_bz2_seeds():
    return [bz2.compress(seed) for seed in csv_seeds()]


def svmlight_seeds():
    X, labels, _ = _data()
    codes = np.searchsorted(np.unique(labels), labels)
    zero_based = "".join(
        f"{code} " + " ".join(f"{j}:{value}" for j, value in enumerate(row) if value) + "\n"
        for code, row in zip(codes, X, strict=True)
    )
    one_based = "# a comment line\n" + "".join(
        f"{1 if code else -1} qid:{i % 2} 1:{row[0]} 3:{row[2]} # tail\n"
        for i, (code, row) in enumerate(zip(codes, X, strict=True))
    )
    return [zero_based.encode(), one_based.encode()]


def parquet_seeds():
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, labels, weights = _data()
    table = pa.table({"x0": X[:, 0], "x1": X[:, 1], "x2": X[:, 2], "label": labels, "w": weights})
    mixed = pa.table(
        {
            "count": pa.array(range(_ROWS), type=pa.int32()),
            "flag": pa.array([i % 2 == 0 for i in range(_ROWS)]),
            "label": pa.array(labels).dictionary_encode(),
        }
    )
    seeds = []
    for data, options in (
        (table, {"compression": "none"}),
        (table, {"compression": "snappy", "row_group_size": 5}),
        (mixed, {"compression": "gzip", "use_dictionary": False}),
        (mixed, {"compression": "zstd"}),
    ):
        buffer = io.BytesIO()
        pq.write_table(data, buffer, **options)
        seeds.append(buffer.getvalue())
    return seeds


def npz_seeds():
    X, labels, weights = _data()
    seeds = []
    for save, arrays in (
        (np.savez, {"X": X, "y": labels, "w": weights}),
        (
            np.savez_compressed,
            {"X": X, "y": labels, "w": weights, "feature_names": np.array(["p", "q", "r"])},
        ),
        (
            np.savez,
            {
                "X": np.asfortranarray(X.astype(np.float32)),
                "y": np.arange(_ROWS) % 2,
                "w": weights.astype(np.int64),
            },
        ),
        (np.savez_compressed, {"X": (X > 0), "y": labels == "a", "w": weights}),
    ):
        buffer = io.BytesIO()
        save(buffer, **arrays)
        seeds.append(buffer.getvalue())
    return seeds


def model_seeds():
    X, labels, _ = _data(n_rows=30)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.softreg")
        seeds = []
        for estimator, y in (
            (SoftmaxRegression(alpha=0.1), labels),
            (SoftmaxRegression(alpha=0.5, class_weight={"a": 2.0}), labels),
            (SoftmaxRegression(alpha=0.1), np.searchsorted(np.unique(labels), labels)),
            (LinearRegression(alpha=0.1), X[:, 0] - X[:, 1]),
            (LinearRegression(alpha=0.1), X[:, :2]),
        ):
            estimator.fit(X, y)
            save_model(estimator, path, metadata={"target_column": "label"})
            with open(path, "rb") as handle:
                seeds.append(handle.read())
        return seeds


@functools.cache
def seeds(target):
    """The seed files of a target (see :data:`fuzz.targets.TARGETS`), as a tuple of bytes."""
    return tuple(_BUILDERS[target]())


_BUILDERS = {
    "csv": csv_seeds,
    "csv.gz": csv_gz_seeds,
    "csv.bz2": csv_bz2_seeds,
    "svmlight": svmlight_seeds,
    "parquet": parquet_seeds,
    "npz": npz_seeds,
    "model": model_seeds,
}
