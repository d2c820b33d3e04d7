"""The benchmark cases: data sets, their train/test splits, and the values of ``alpha``.

Every data set is turned once into ``.npy`` files under ``benchmarks/results/cache/`` so
that each child process loads it in milliseconds. Labels are integer codes ``0..K-1``.

Optional data (Fashion-MNIST from Debian's ``dataset-fashion-mnist``; sector and letter
from ``../shared/data`` or ``$SOFTREG_BENCH_DATA``) raises :class:`DataUnavailableError` with a
message saying how to get it; the harness skips such a case and goes on.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
CACHE_DIR = RESULTS_DIR / "cache"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

ALPHAS = (1e-4, 1e-2)


class DataUnavailableError(Exception):
    """An optional data set is not on this machine; the message says how to get it."""


@dataclass
class Dataset:
    """Train and test arrays of one data set; ``y_*`` are integer codes ``0..n_classes-1``."""

    name: str
    X_train: np.ndarray | sp.csr_matrix
    y_train: np.ndarray
    X_test: np.ndarray | sp.csr_matrix
    y_test: np.ndarray
    n_classes: int
    source: str

    @property
    def is_sparse(self) -> bool:
        return sp.issparse(self.X_train)

    @property
    def dtype(self) -> np.dtype:
        return self.X_train.dtype

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(n_samples, n_features, n_classes)`` of the training set."""
        return (*self.X_train.shape, self.n_classes)

    def x_nbytes(self) -> int:
        """Bytes of the training ``X`` (data, indices and pointers when sparse)."""
        X = self.X_train
        if sp.issparse(X):
            return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
        return X.nbytes

    def fingerprint(self) -> str:
        """A short hash of the training data, keying the cached reference optimum."""
        digest = hashlib.sha256()
        X = self.X_train
        parts = [X.data, X.indices, X.indptr] if sp.issparse(X) else [X]
        for part in [*parts, self.y_train]:
            digest.update(np.ascontiguousarray(part).view(np.uint8))
        digest.update(str(self.shape).encode())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Case:
    """One race: a data set, a regularisation strength ``alpha`` and whether ``b`` is fitted.

    ``fit_intercept=False`` is the objective without intercepts, ``b = 0``: the one mlpack's
    softmax regression shares with the others (its ``lambda_`` penalises the intercept too).
    """

    dataset: str
    alpha: float
    fit_intercept: bool = True

    @property
    def name(self) -> str:
        suffix = "" if self.fit_intercept else "/no-intercept"
        return f"{self.dataset}/alpha={self.alpha:g}{suffix}"

    @property
    def slug(self) -> str:
        suffix = "" if self.fit_intercept else "_no-intercept"
        return f"{self.dataset}_alpha{self.alpha:g}{suffix}".replace(".", "p")


# --- locating optional data -------------------------------------------------------------


def shared_data_dir() -> Path:
    """``$SOFTREG_BENCH_DATA`` if set, else ``../shared/data`` beside the repository."""
    override = os.environ.get("SOFTREG_BENCH_DATA")
    if override:
        return Path(override)
    return REPO_ROOT.parent / "shared" / "data"


def _read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (the MNIST format: big-endian header, then uint8 data)."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    _, _, dtype_code, n_dims = struct.unpack(">BBBB", raw[:4])
    if dtype_code != 0x08:
        raise ValueError(f"IDX file {path} holds type code {dtype_code:#x}; expected 0x08 (uint8)")
    dims = struct.unpack(f">{n_dims}I", raw[4 : 4 + 4 * n_dims])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * n_dims).reshape(dims)


def _load_fashion_mnist() -> Dataset:
    files = {
        "X_train": "train-images-idx3-ubyte.gz",
        "y_train": "train-labels-idx1-ubyte.gz",
        "X_test": "t10k-images-idx3-ubyte.gz",
        "y_test": "t10k-labels-idx1-ubyte.gz",
    }
    missing = [name for name in files.values() if not (FASHION_DIR / name).exists()]
    if missing:
        raise DataUnavailableError(
            f"Fashion-MNIST not found in {FASHION_DIR} (missing {', '.join(missing)}); "
            "install it with `apt-get install dataset-fashion-mnist`"
        )
    arrays = {key: _read_idx(FASHION_DIR / name) for key, name in files.items()}
    # Pixels scaled to [0, 1], the usual preprocessing for this data set.
    scale = np.float64(1.0 / 255.0)
    return Dataset(
        name="fashion-mnist",
        X_train=arrays["X_train"].reshape(60000, -1) * scale,
        y_train=arrays["y_train"].astype(np.int64),
        X_test=arrays["X_test"].reshape(10000, -1) * scale,
        y_test=arrays["y_test"].astype(np.int64),
        n_classes=10,
        source="Debian package dataset-fashion-mnist, pixels / 255",
    )


def _load_libsvm_pair(name: str, train_file: str, test_file: str, dense: bool) -> Dataset:
    from sklearn.datasets import load_svmlight_files

    folder = shared_data_dir() / name
    paths = [folder / train_file, folder / test_file]
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise DataUnavailableError(
            f"{name} not found (missing {', '.join(missing)}); it lives in ../shared/data "
            "beside the repository, or set SOFTREG_BENCH_DATA to the folder holding "
            f"{name}/"
        )
    X_train, y_train, X_test, y_test = load_svmlight_files([str(p) for p in paths])
    labels = np.unique(np.concatenate([y_train, y_test]))
    X_train = X_train.astype(np.float64).tocsr()
    X_test = X_test.astype(np.float64).tocsr()
    X_train.sort_indices()
    X_test.sort_indices()
    return Dataset(
        name=name,
        X_train=X_train.toarray() if dense else X_train,
        y_train=np.searchsorted(labels, y_train).astype(np.int64),
        X_test=X_test.toarray() if dense else X_test,
        y_test=np.searchsorted(labels, y_test).astype(np.int64),
        n_classes=labels.size,
        # The public name, never this machine's path: the line goes into BENCHMARKS.md.
        source=(
            f"LIBSVM data set {name} ({train_file}, {test_file}; {'dense' if dense else 'CSR'})"
        ),
    )


def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    # Pixel intensities 0..16 scaled to [0, 1].
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    return Dataset(
        name="digits",
        X_train=np.ascontiguousarray(X_train),
        y_train=y_train.astype(np.int64),
        X_test=np.ascontiguousarray(X_test),
        y_test=y_test.astype(np.int64),
        n_classes=10,
        source="sklearn.datasets.load_digits, pixels / 16, stratified 75/25 split (seed 0)",
    )


def _load_digits_standardised() -> Dataset:
    """digits with ``StandardScaler`` fitted on the training rows: the usual preprocessing."""
    from sklearn.preprocessing import StandardScaler

    digits = _load_digits()
    scaler = StandardScaler().fit(digits.X_train)
    digits.name = "digits-standardised"
    digits.X_train = np.ascontiguousarray(scaler.transform(digits.X_train))
    digits.X_test = np.ascontiguousarray(scaler.transform(digits.X_test))
    digits.source = "sklearn.datasets.load_digits, StandardScaler fitted on the 75 % train split"
    return digits


def _synthetic(
    n_samples: int, n_features: int, n_classes: int, dtype: str, spread: float = 2.0
) -> Dataset:
    """Gaussian features, labels drawn from a softmax model with logits of spread ``spread``.

    The float32 data set is the float64 one rounded, with the same labels, so both dtypes
    pose the same problem up to rounding of ``X``. A large spread (20) makes the classes
    nearly separable: few rows sit near a boundary, and at small alpha the optimum has large
    coefficients and a Hessian close to singular.
    """
    n_test = min(n_samples // 4, 20000)
    rng = np.random.default_rng([n_samples, n_features, n_classes])
    X = rng.standard_normal((n_samples + n_test, n_features))
    coef = rng.standard_normal((n_classes, n_features)) * (spread / np.sqrt(n_features))
    intercept = rng.standard_normal(n_classes) * 0.5
    y = np.empty(n_samples + n_test, dtype=np.int64)
    block = max(1, 2**22 // n_classes)
    for start in range(0, X.shape[0], block):
        rows = slice(start, start + block)
        logits = X[rows] @ coef.T + intercept
        # Gumbel-max trick: argmax(logits + Gumbel noise) is a draw from softmax(logits).
        y[rows] = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    X = X.astype(dtype)
    suffix = "" if spread == 2.0 else f"-spread{spread:g}"
    return Dataset(
        name=f"synthetic-{n_samples}x{n_features}x{n_classes}-{dtype}{suffix}",
        X_train=X[:n_samples],
        y_train=y[:n_samples],
        X_test=X[n_samples:],
        y_test=y[n_samples:],
        n_classes=n_classes,
        source=(
            f"Gaussian X, labels from a random softmax model (logit spread {spread:g}); "
            f"{n_test} test rows "
            "(seeded by the shape)"
        ),
    )


def _synthetic_pixels(n_samples: int, n_features: int, n_classes: int) -> Dataset:
    """Pixel-like features: 40 Gaussian factors mixed into correlated columns of uneven scale,
    clipped to [0, 1]; labels from a random softmax model. Ill-conditioned as images are (C's
    eigenvalue spread in the hundreds), without needing an image data set on the machine.
    """
    n_test = min(n_samples // 4, 20000)
    rng = np.random.default_rng([n_samples, n_features, n_classes, 1])
    factors = rng.standard_normal((n_samples + n_test, 40))
    mix = rng.standard_normal((40, n_features)) * np.linspace(0.05, 1, n_features)
    X = np.clip(factors @ mix / 6 + 0.3, 0, 1)
    coef = rng.standard_normal((n_classes, n_features)) * (3 / np.sqrt(n_features))
    y = np.argmax(X @ coef.T + rng.gumbel(size=(X.shape[0], n_classes)), axis=1)
    return Dataset(
        name=f"synthetic-{n_samples}x{n_features}x{n_classes}-pixels",
        X_train=np.ascontiguousarray(X[:n_samples]),
        y_train=y[:n_samples].astype(np.int64),
        X_test=np.ascontiguousarray(X[n_samples:]),
        y_test=y[n_samples:].astype(np.int64),
        n_classes=n_classes,
        source=f"40 Gaussian factors mixed and clipped to [0, 1]; {n_test} test rows",
    )


SYNTHETIC_SHAPES = ((500000, 54, 7), (100000, 784, 10), (20000, 500, 100), (50000, 256, 1000))
# The nearly separable dense case: few parameters, many rows, labels almost determined by X.
SEPARABLE_SHAPE = (50000, 100, 5)
# The ill-conditioned dense case beyond 2000 parameters (6020), for solver="auto".
PIXELS_SHAPE = (5000, 300, 20)


def _loaders() -> dict:
    loaders = {
        "digits": _load_digits,
        "digits-standardised": _load_digits_standardised,
        "letter": lambda: _load_libsvm_pair("letter", "letter.scale", "letter.scale.t", True),
        "fashion-mnist": _load_fashion_mnist,
        "sector": lambda: _load_libsvm_pair(
            "sector", "sector.scale.bz2", "sector.t.scale.bz2", False
        ),
    }
    for n, d, k in SYNTHETIC_SHAPES:
        for dtype in ("float64", "float32"):
            loaders[f"synthetic-{n}x{d}x{k}-{dtype}"] = lambda n=n, d=d, k=k, dtype=dtype: (
                _synthetic(n, d, k, dtype)
            )
    n, d, k = SEPARABLE_SHAPE
    loaders[f"synthetic-{n}x{d}x{k}-float64-spread20"] = lambda: _synthetic(
        n, d, k, "float64", spread=20.0
    )
    n, d, k = PIXELS_SHAPE
    loaders[f"synthetic-{n}x{d}x{k}-pixels"] = lambda: _synthetic_pixels(n, d, k)
    return loaders


DATASET_NAMES = tuple(_loaders())
QUICK_DATASETS = ("digits", "letter", "synthetic-500000x54x7-float32")


# --- the cache of .npy files ------------------------------------------------------------


def _save(dataset: Dataset, folder: Path) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        X = getattr(dataset, f"X_{split}")
        if sp.issparse(X):
            for part in ("data", "indices", "indptr"):
                np.save(tmp / f"X_{split}.{part}.npy", getattr(X, part))
            np.save(tmp / f"X_{split}.shape.npy", np.array(X.shape))
        else:
            np.save(tmp / f"X_{split}.npy", np.ascontiguousarray(X))
        np.save(tmp / f"y_{split}.npy", getattr(dataset, f"y_{split}"))
    (tmp / "meta.txt").write_text(f"{dataset.n_classes}\n{dataset.source}\n")
    tmp.rename(folder)


def _load_saved(name: str, folder: Path) -> Dataset:
    arrays = {}
    for split in ("train", "test"):
        dense = folder / f"X_{split}.npy"
        if dense.exists():
            arrays[f"X_{split}"] = np.load(dense)
        else:
            parts = [np.load(folder / f"X_{split}.{p}.npy") for p in ("data", "indices", "indptr")]
            shape = tuple(np.load(folder / f"X_{split}.shape.npy"))
            arrays[f"X_{split}"] = sp.csr_matrix(tuple(parts), shape=shape)
        arrays[f"y_{split}"] = np.load(folder / f"y_{split}.npy")
    n_classes, source = (folder / "meta.txt").read_text().split("\n", 1)
    return Dataset(name=name, n_classes=int(n_classes), source=source.strip(), **arrays)


def load(name: str) -> Dataset:
    """Load data set ``name``, building its cache on first use.

    Raises
    ------
    DataUnavailableError
        If it is optional data that this machine does not have.
    """
    loaders = _loaders()
    if name not in loaders:
        raise ValueError(f"`name` must be one of {', '.join(loaders)}; got {name!r}.")
    folder = CACHE_DIR / name
    if not (folder / "meta.txt").exists():
        _save(loaders[name](), folder)
    return _load_saved(name, folder)


def all_cases(datasets: tuple[str, ...] = DATASET_NAMES, alphas=ALPHAS) -> list[Case]:
    return [Case(name, alpha) for name in datasets for alpha in alphas]
