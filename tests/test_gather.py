"""Sparse (l1_ratio > 0) fits of datasets: the rows gathered into memory within a budget.

A streamed dataset's fit must equal the in-memory fit of the same rows (newton-cd runs on
the same arrays, so to rounding); standardising must be the fit on standardised features,
folded back; a dataset beyond its memory budget is refused with the bytes it needs.
"""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file, load_iris, load_svmlight_file

from softreg import SoftmaxRegression, SoftmaxRegressionCV, open_dataset, regularization_path
from softreg._gather import gather, newton_cd_bytes
from softreg._memory import MemoryLimitError
from softreg._sources import ArrayDataset, Dataset

NAMES = ["a", "b", "c", "d"]
SPECIES = np.array(["setosa", "versicolor", "virginica"])
# newton-cd certifies 1e-11 relative on iris: the two fits then agree far inside the 1e-10
# (objective) and 1e-8 (coefficients) the checks ask for, however the rows were read.
PARAMS = {"alpha": 0.02, "tol": 1e-11, "max_iter": 500}
BLOCK_ROWS = 16


@pytest.fixture(scope="module")
def data():
    X, codes = load_iris(return_X_y=True)
    X = X - X.mean(axis=0)
    X[np.abs(X) < 0.3] = 0.0  # exact zeros, so that the svmlight file is truly sparse
    rng = np.random.default_rng(1)
    weight = rng.uniform(0.5, 2.0, len(codes))
    proba = rng.dirichlet(np.ones(3), size=len(codes))
    return X, codes, weight, proba


@pytest.fixture(scope="module")
def files(tmp_path_factory, data):
    X, codes, weight, proba = data
    folder = tmp_path_factory.mktemp("gather")
    columns = {name: X[:, j] for j, name in enumerate(NAMES)}
    columns.update(species=SPECIES[codes], weight=weight)
    columns.update({f"p{k}": proba[:, k] for k in range(3)})
    lines = [",".join(columns)]
    lines += [",".join(map(str, row)) for row in zip(*columns.values(), strict=True)]
    (folder / "iris.csv").write_text("\n".join(lines) + "\n")
    pq.write_table(pa.table(columns), folder / "iris.parquet", row_group_size=40)
    np.save(folder / "X.npy", X)
    np.save(folder / "X32.npy", X.astype(np.float32))
    np.save(folder / "y.npy", codes)
    np.save(folder / "proba.npy", proba)
    dump_svmlight_file(X, codes, str(folder / "iris.svm"))
    return folder


def open_rows(files, name, kind):
    if name.endswith(".npy"):
        target = files / ("proba.npy" if kind == "soft" else "y.npy")
        dataset = open_dataset(files / name, target=target)
    elif name.endswith(".svm"):
        dataset = open_dataset(files / name)
    else:
        target = [f"p{k}" for k in range(3)] if kind == "soft" else "species"
        others = ["species"] if kind == "soft" else [f"p{k}" for k in range(3)]
        dataset = open_dataset(
            files / name,
            target=target,
            sample_weight="weight" if kind == "weighted" else None,
            exclude=others + ([] if kind == "weighted" else ["weight"]),
        )
    dataset.rows = BLOCK_ROWS
    return dataset


def in_memory(files, data, name, kind):
    X, codes, weight, proba = data
    if name.endswith(".svm"):
        X, codes = load_svmlight_file(str(files / name))
        return X, codes, None
    if name == "X32.npy":
        X = X.astype(np.float32)
    y = proba if kind == "soft" else codes if name.endswith(".npy") else SPECIES[codes]
    return X, y, weight if kind == "weighted" else None


@pytest.mark.parametrize(
    ("name", "kind", "l1_norm", "standardize"),
    [
        ("iris.csv", "hard", "elementwise", False),
        ("iris.csv", "weighted", "elementwise", True),
        ("iris.parquet", "weighted", "grouped", False),
        ("iris.parquet", "soft", "grouped", True),
        ("X.npy", "soft", "elementwise", False),
        ("X32.npy", "hard", "grouped", False),
        ("iris.svm", "hard", "elementwise", False),
        ("iris.svm", "hard", "grouped", True),
    ],
)
def test_streamed_sparse_fit_equals_the_in_memory_fit(
    files, data, name, kind, l1_norm, standardize
):
    dataset = open_rows(files, name, kind)
    model = SoftmaxRegression(l1_ratio=0.7, l1_norm=l1_norm, standardize=standardize, **PARAMS)
    if name == "X32.npy":
        model.set_params(tol=1e-3)  # float32's default; the arithmetic is the same either way
    streamed = model.fit(dataset)
    coef, intercept, objective = streamed.coef_, streamed.intercept_, streamed.objective_
    X, y, weight = in_memory(files, data, name, kind)
    expected = model.fit(X, y, sample_weight=weight)
    assert streamed.solver_ == expected.solver_ == "newton-cd"
    assert coef.dtype == expected.coef_.dtype == X.dtype
    np.testing.assert_allclose(objective, expected.objective_, rtol=1e-10)
    np.testing.assert_allclose(coef, expected.coef_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(intercept, expected.intercept_, rtol=1e-8, atol=1e-8)
    assert np.array_equal(coef == 0, expected.coef_ == 0)
    assert np.count_nonzero(coef) > 0


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("l1_norm", ["elementwise", "grouped"])
def test_standardize_penalises_the_standardised_coefficients(data, sparse, l1_norm):
    """``standardize=True`` is the fit on (x - μ)/σ (sparse: x/σ) with the penalty on those
    coefficients, folded back: raw coef_ = W̃ / σ, the same zeros."""
    X, codes, weight, _ = data
    X = X * np.array([1.0, 10.0, 0.1, 3.0])  # scales the penalty must not see
    mean = np.average(X, axis=0, weights=weight)
    std = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=weight))
    params = {"l1_ratio": 0.8, "l1_norm": l1_norm, **PARAMS, "alpha": 0.1}
    rows = sp.csr_matrix(X) if sparse else X
    folded = SoftmaxRegression(standardize=True, **params).fit(rows, codes, weight)
    scaled = sp.csr_matrix(X / std) if sparse else (X - mean) / std
    plain = SoftmaxRegression(**params).fit(scaled, codes, weight)
    # The same arithmetic on the same standardised rows (the moments differ in the last bits):
    # equal to rounding, measured within 2e-14.
    np.testing.assert_allclose(folded.objective_, plain.objective_, rtol=1e-13)
    np.testing.assert_allclose(folded.coef_, plain.coef_ / std, rtol=1e-12, atol=1e-12)
    assert np.array_equal(folded.coef_ == 0, plain.coef_ == 0)
    assert np.count_nonzero(folded.coef_ == 0) >= (3 if l1_norm == "grouped" else 1)
    offset = 0 if sparse else (plain.coef_ / std) @ mean
    np.testing.assert_allclose(folded.intercept_, plain.intercept_ - offset, atol=1e-12)


def test_a_dataset_beyond_its_memory_limit_is_refused_before_it_is_read(files):
    dataset = open_rows(files, "iris.csv", "hard")
    needed = newton_cd_bytes(150, 4, 3, 8)
    dataset.memory_limit = needed - 1
    with pytest.raises(
        MemoryLimitError,
        match=rf"solver='newton-cd' holds the rows in memory: 150 rows need \S+ KiB "
        rf"\({needed} bytes\), more than the memory limit \S+ KiB \({needed - 1} bytes\)\. "
        r"Raise the dataset's `memory_limit` \(--memory-limit on the command line\), or fit "
        r"with l1_ratio=0, which streams the rows\.",
    ):
        SoftmaxRegression(l1_ratio=0.5).fit(dataset)
    dataset.memory_limit = needed
    assert SoftmaxRegression(l1_ratio=0.5).fit(dataset).converged_
    # The L2 fit streams the rows: no budget applies.
    dataset.memory_limit = 1
    assert SoftmaxRegression().fit(dataset).converged_


class SparseRows(Dataset):
    """A sparse dataset that does not know its stored entries before it is read."""

    def __init__(self, X, y):
        self.inner = ArrayDataset(sp.csr_matrix(X), y, rows=50)
        self.n_features, self.dtype, self.sparse = X.shape[1], np.dtype(np.float64), True

    def scan(self, **kwargs):
        return self.inner.scan(**kwargs)

    def batches(self):
        return self.inner.batches()


def test_sparse_rows_of_unknown_size_are_refused_while_they_are_read(data):
    X, codes, *_ = data
    dataset = SparseRows(X, codes)
    needed = newton_cd_bytes(50, 4, 3, 8, sp.csr_matrix(X[:50]).nnz)
    dataset.memory_limit = needed - 1
    with pytest.raises(MemoryLimitError, match=rf"150 rows need at least \S+ KiB \({needed} "):
        gather(dataset, 150, 3)
    dataset.memory_limit = None  # half the machine's memory
    gathered = gather(dataset, 150, 3)
    assert (sp.csr_matrix(X) != gathered.X).nnz == 0 and np.array_equal(gathered.y, codes)


def test_path_and_cross_validation_take_a_dataset(files, data):
    X, codes, *_ = data
    dataset = open_rows(files, "iris.csv", "hard")
    path = regularization_path(dataset, n_alphas=4, l1_ratio=0.5, tol=1e-10)
    expected = regularization_path(X, SPECIES[codes], n_alphas=4, l1_ratio=0.5, tol=1e-10)
    np.testing.assert_allclose(path.alphas, expected.alphas, rtol=1e-12)
    np.testing.assert_allclose(path.objectives, expected.objectives, rtol=1e-10)
    np.testing.assert_array_equal(path.n_nonzero, expected.n_nonzero)
    model = SoftmaxRegressionCV(alphas=4, cv=3, tol=1e-10).fit(dataset)
    arrays = SoftmaxRegressionCV(alphas=4, cv=3, tol=1e-10).fit(X, SPECIES[codes])
    np.testing.assert_allclose(model.scores_, arrays.scores_, rtol=1e-9)
    assert model.alpha_ == arrays.alpha_
    assert model.feature_names_in_.tolist() == model.estimator_.feature_names_in_.tolist() == NAMES
    # Cross-validation holds a fold's training rows beside: one copy of the rows more.
    dataset.memory_limit = newton_cd_bytes(150, 4, 3, 8)
    with pytest.raises(MemoryLimitError, match=r"^SoftmaxRegressionCV\.fit holds the rows in "):
        SoftmaxRegressionCV(alphas=4, cv=3).fit(dataset)
    dataset.memory_limit = newton_cd_bytes(150, 4, 3, 8, extra_copies=1)
    assert SoftmaxRegressionCV(alphas=2, cv=3).fit(dataset).alpha_ > 0
    with pytest.raises(ValueError, match=r"`y` must be None when `X` is a dataset.* in reg"):
        regularization_path(dataset, codes)
    with pytest.raises(ValueError, match=r"regularization_path needs labels: pass `y`, or a "):
        regularization_path(X)
