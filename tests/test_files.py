"""File datasets: streamed fits equal in-memory fits for every format, solver and target kind;
bad rows deep in a file are DataErrors naming file, row and column; the CSV/LIBSVM cache."""

import gzip
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import dump_svmlight_file, load_iris

import softreg._files
from softreg import DataError, LinearRegression, SoftmaxRegression, open_dataset
from softreg._file_cache import _csv_error
from softreg._files import feature_matrix, prefetch

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = np.array(["setosa", "versicolor", "virginica"])
# Every solver (gd included) reaches the optimum to rounding on standardised iris at alpha
# 0.1, so a streamed fit and an in-memory fit of the same rows agree to ~1e-15.
PARAMS = {"alpha": 0.1, "tol": 1e-13, "max_iter": 2000}
BLOCK_ROWS = 16  # many blocks (and Parquet batches) out of 150 rows
RUN = {"capture_output": True, "text": True, "check": True, "timeout": 300}


@pytest.fixture(scope="module")
def data():
    X, codes = load_iris(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    rng = np.random.default_rng(0)
    weight = rng.uniform(0.5, 2.0, len(codes))
    proba = rng.dirichlet(np.ones(3), size=len(codes))
    return X, codes, SPECIES[codes], weight, proba


def write_csv(path, columns):
    lines = [",".join(columns)]
    for row in zip(*columns.values(), strict=True):
        lines.append(",".join(repr(v.item()) if hasattr(v, "item") else str(v) for v in row))
    text = "\n".join(lines).replace("'", "") + "\n"
    if str(path).endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def table(X, labels, weight, proba):
    columns = {name: X[:, i] for i, name in enumerate(NAMES)}
    columns.update(species=labels, weight=weight)
    columns.update({f"p_{c}": proba[:, k] for k, c in enumerate(SPECIES)})
    return columns


@pytest.fixture(scope="module")
def files(tmp_path_factory, data):
    X, codes, labels, weight, proba = data
    folder = tmp_path_factory.mktemp("files")
    columns = table(X, labels, weight, proba)
    write_csv(folder / "iris.csv", columns)
    write_csv(folder / "iris.csv.gz", columns)
    arrow = pa.table(columns)
    pq.write_table(arrow, folder / "iris.parquet", row_group_size=50)
    (folder / "parts").mkdir()
    for part, start in enumerate(range(0, 150, 60)):
        pq.write_table(arrow.slice(start, 60), folder / "parts" / f"part-{part}.parquet")
    np.save(folder / "X.npy", X)
    np.save(folder / "species.npy", labels)
    np.save(folder / "weight.npy", weight)
    np.save(folder / "proba.npy", proba)
    dump_svmlight_file(X, codes, str(folder / "iris.svm"))
    return folder


SOFT = [f"p_{c}" for c in SPECIES]
TABLE_FORMATS = ["iris.csv", "iris.csv.gz", "iris.parquet", "parts"]


def open_as(files, name, kind, cache):
    """``name`` opened with hard labels, soft labels or hard labels and weights."""
    if name == "X.npy":
        target = files / ("proba.npy" if kind == "soft" else "species.npy")
        weight = files / "weight.npy" if kind == "weighted" else None
        dataset = open_dataset(files / name, target=target, sample_weight=weight)
    elif name == "iris.svm":
        dataset = open_dataset(files / name, cache_dir=cache)
    else:
        target = SOFT if kind == "soft" else "species"
        weight = "weight" if kind == "weighted" else None
        dataset = open_dataset(
            files / name,
            target=target,
            sample_weight=weight,
            cache_dir=cache,
            exclude=exclude(kind),
        )
    dataset.rows = BLOCK_ROWS
    return dataset


def exclude(kind):
    others = ["weight"] if kind != "weighted" else []
    return others + ([] if kind == "soft" else SOFT) + (["species"] if kind == "soft" else [])


def in_memory_fit(data, name, kind, solver):
    X, codes, labels, weight, proba = data
    model = SoftmaxRegression(solver=solver, **PARAMS)
    if name == "iris.svm":
        return model.fit(X, codes)
    if kind == "soft":
        return model.fit(X, proba)
    return model.fit(X, labels, sample_weight=weight if kind == "weighted" else None)


@pytest.mark.parametrize("solver", ["gd", "lbfgs", "newton-cg"])
@pytest.mark.parametrize(
    ("name", "kind"),
    [(name, kind) for name in [*TABLE_FORMATS, "X.npy"] for kind in ("hard", "soft", "weighted")]
    + [("iris.svm", "hard")],
)
def test_streamed_fit_equals_in_memory_fit(files, data, tmp_path, name, kind, solver):
    dataset = open_as(files, name, kind, tmp_path)
    streamed = SoftmaxRegression(solver=solver, **PARAMS).fit(dataset)
    expected = in_memory_fit(data, name, kind, solver)
    np.testing.assert_allclose(streamed.objective_, expected.objective_, rtol=1e-10)
    np.testing.assert_allclose(streamed.coef_, expected.coef_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(streamed.intercept_, expected.intercept_, rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(streamed.classes_, expected.classes_)
    if name not in ("X.npy", "iris.svm"):
        assert streamed.feature_names_in_.tolist() == NAMES
    X = data[0]
    np.testing.assert_allclose(streamed.predict_proba(dataset), expected.predict_proba(X), 1e-8)


@pytest.mark.parametrize("name", ["iris.parquet", "parts", "iris.csv", "X.npy"])
def test_chunks_cut_into_blocks_give_the_in_memory_fit(files, data, tmp_path, name, monkeypatch):
    # Reads of 50 rows (the Parquet row groups' size) cut into blocks of at most 16: the
    # chunking a pass does on large files (reads of ~4 MiB, blocks of block_rows), in small.
    row_bytes = len(NAMES) * 8
    monkeypatch.setattr(softreg._files, "_READ_BYTES", 50 * row_bytes)
    monkeypatch.setattr(softreg._files, "block_rows", lambda *args: 16)
    dataset = open_as(files, name, "weighted", tmp_path)
    dataset.rows = None
    streamed = SoftmaxRegression(solver="lbfgs", **PARAMS).fit(dataset)
    expected = in_memory_fit(data, name, "weighted", "lbfgs")
    np.testing.assert_allclose(streamed.objective_, expected.objective_, rtol=1e-10)
    np.testing.assert_allclose(streamed.coef_, expected.coef_, rtol=1e-8, atol=1e-8)
    source = dataset.source(classes=SPECIES)
    assert (source.rows, source.read_rows) == (16, 50)
    sizes = [len(block.target) for block in source.blocks()]
    assert sum(sizes) == 150 and max(sizes) <= 16
    assert min(sizes) >= 10  # near-equal pieces: no block of a few rows at a chunk's end


def test_memory_cap_bounds_reads_as_well_as_blocks(files, tmp_path):
    dataset = open_as(files, "iris.parquet", "hard", tmp_path)
    dataset.rows = None
    source = dataset.source(classes=SPECIES)
    assert source.read_rows == 2**20 // (len(NAMES) * 8)  # ~1 MiB of features per read
    assert source.rows == 2**16 // 3  # block_rows (before a scan has counted the rows)
    dataset.rows = 40
    source = dataset.source(classes=SPECIES)
    assert (source.rows, source.read_rows) == (40, 40)
    assert max(len(block.target) for block in source.blocks()) == 40


def test_parquet_passes_column_major_and_batches_row_major(files, data, tmp_path):
    # A pass takes the cheapest copy out of Arrow (column-major); batches, which callers may
    # stack into one array (softreg._gather), stay C-ordered so that stacking copies once.
    dataset = open_as(files, "iris.parquet", "hard", tmp_path)
    blocks = list(dataset.source(classes=SPECIES).blocks())
    batches = list(dataset.batches())
    assert all(block.X.flags.f_contiguous and block.X.shape[0] > 1 for block in blocks)
    assert all(batch.X.flags.c_contiguous for batch in batches)
    np.testing.assert_array_equal(np.concatenate([block.X for block in blocks]), data[0])
    np.testing.assert_array_equal(np.concatenate([batch.X for batch in batches]), data[0])


@pytest.mark.parametrize("order", ["C", "F"])
def test_feature_matrix_through_arrow_or_column_by_column(data, order, monkeypatch):
    X = data[0]
    batch = pa.RecordBatch.from_arrays([pa.array(column) for column in X.T], names=NAMES)
    whole = feature_matrix("f.parquet", batch, NAMES[::-1], order=order)
    assert whole.flags[f"{order}_CONTIGUOUS"]
    np.testing.assert_array_equal(whole, X[:, ::-1])
    monkeypatch.setattr(softreg._files, "_arrow_matrix", lambda *args: None)  # older pyarrow
    by_column = feature_matrix("f.parquet", batch, NAMES[::-1], order=order)
    assert by_column.flags[f"{order}_CONTIGUOUS"]
    np.testing.assert_array_equal(by_column, X[:, ::-1])


def test_feature_matrix_of_integer_or_incomplete_columns(data):
    # Not all float64 without nulls: converted column by column, as exact, or explained.
    counts = np.arange(150)
    batch = pa.RecordBatch.from_arrays([pa.array(counts), pa.array(data[0][:, 0])], ["count", "x"])
    np.testing.assert_array_equal(
        feature_matrix("f.parquet", batch, ["count", "x"], order="F"),
        np.column_stack([counts, data[0][:, 0]]),
    )
    missing = pa.array([1.0, None, 3.0])
    batch = pa.RecordBatch.from_arrays([missing, pa.array([1.0, 2.0, 3.0])], names=["a", "b"])
    with pytest.raises(DataError, match=r"f\.parquet: column 'a' has a missing value .* row 2;"):
        feature_matrix("f.parquet", batch, ["a", "b"], order="F")


def test_parquet_glob_and_list_read_the_same_rows_as_the_directory(files):
    kwargs = {"target": "species", "sample_weight": "weight", "exclude": SOFT}
    parts = sorted(str(p) for p in (files / "parts").iterdir())
    by_folder = open_dataset(files / "parts", **kwargs).scan(moments=True)
    for spelling in (str(files / "parts" / "part-*.parquet"), parts):
        summary = open_dataset(spelling, **kwargs).scan(moments=True)
        assert summary.n_samples == by_folder.n_samples == 150
        np.testing.assert_array_equal(summary.class_totals, by_folder.class_totals)
        np.testing.assert_array_equal(summary.mean, by_folder.mean)


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_streamed_predictions_and_score(files, data, tmp_path):
    X, _, labels, weight, _ = data
    dataset = open_as(files, "iris.csv.gz", "weighted", tmp_path)
    model = SoftmaxRegression(**PARAMS).fit(dataset)
    np.testing.assert_array_equal(model.predict(dataset), model.predict(X))
    np.testing.assert_array_equal(model.decision_function(dataset), model.decision_function(X))
    assert model.score(dataset) == pytest.approx(model.score(X, labels, sample_weight=weight))
    features_only = open_dataset(files / "iris.parquet", exclude=["species", "weight", *SOFT])
    np.testing.assert_array_equal(model.predict(features_only), model.predict(X))


def test_linear_regression_and_standardize_on_files(files, data, tmp_path):
    X, _, _, weight, _ = data
    dataset = open_dataset(
        files / "iris.parquet",
        target="petal_width",
        features=NAMES[:3],
        sample_weight="weight",
    )
    dataset.rows = BLOCK_ROWS
    expected = LinearRegression(**PARAMS).fit(X[:, :3], X[:, 3], sample_weight=weight)
    streamed = LinearRegression(**PARAMS).fit(dataset)
    np.testing.assert_allclose(streamed.objective_, expected.objective_, rtol=1e-10)
    np.testing.assert_allclose(streamed.coef_, expected.coef_, rtol=1e-8, atol=1e-8)
    assert streamed.score(dataset) == pytest.approx(
        expected.score(X[:, :3], X[:, 3], sample_weight=weight), rel=1e-12
    )
    raw = X * [1.0, 10.0, 100.0, 0.1] + [5.0, -3.0, 40.0, 1.0]
    np.save(tmp_path / "raw.npy", raw)
    np.save(tmp_path / "y.npy", data[2])
    scaled = open_dataset(tmp_path / "raw.npy", target=tmp_path / "y.npy")
    scaled.rows = BLOCK_ROWS
    model = SoftmaxRegression(standardize=True, **PARAMS).fit(scaled)
    reference = SoftmaxRegression(**PARAMS).fit(X, data[2])
    np.testing.assert_allclose(model.objective_, reference.objective_, rtol=1e-10)
    np.testing.assert_allclose(model.predict_proba(raw), reference.predict_proba(X), rtol=1e-8)


# --------------------------------------------------------------------------------------------
# The cache


def entries(cache):
    return sorted(os.listdir(cache)) if os.path.isdir(cache) else []


def test_cache_is_reused_while_the_file_is_unchanged_and_rebuilt_when_not(tmp_path, data):
    X, _, labels, weight, proba = data
    path = tmp_path / "data.csv"
    write_csv(path, table(X, labels, weight, proba))
    cache = tmp_path / "cache"
    open_dataset(path, target="species", exclude=["weight", *SOFT], cache_dir=cache)
    (entry,) = entries(cache)
    built = os.stat(cache / entry / "manifest.json").st_mtime_ns
    time.sleep(0.01)
    again = open_dataset(path, target="species", exclude=["weight", *SOFT], cache_dir=cache)
    assert os.stat(cache / entry / "manifest.json").st_mtime_ns == built
    assert again.scan().n_samples == 150
    write_csv(path, table(X[:100], labels[:100], weight[:100], proba[:100]))
    changed = open_dataset(path, target="species", exclude=["weight", *SOFT], cache_dir=cache)
    assert entries(cache) == [entry]
    assert changed.scan().n_samples == 100


class Terminal:
    """A stand-in for standard error on a TTY."""

    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_conversion_shows_a_progress_bar_on_a_tty(tmp_path, data, monkeypatch):
    X, codes, *_ = data
    dump_svmlight_file(X, codes, str(tmp_path / "a.svm"))
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    open_dataset(tmp_path / "a.svm", cache_dir=tmp_path / "cache")
    assert terminal.text.startswith("\rsoftreg: caching a.svm [")
    assert "100% of" in terminal.text and terminal.text.endswith("\n")


def test_svmlight_test_file_with_fewer_feature_indices(tmp_path, data):
    X, codes, *_ = data
    dump_svmlight_file(X, codes, str(tmp_path / "train.svm"))
    dump_svmlight_file(X[:, :2], codes, str(tmp_path / "test.svm"))
    model = SoftmaxRegression(**PARAMS).fit(
        open_dataset(tmp_path / "train.svm", cache_dir=tmp_path)
    )
    test = open_dataset(tmp_path / "test.svm", cache_dir=tmp_path, n_features=4)
    padded = np.column_stack([X[:, :2], np.zeros((150, 2))])
    np.testing.assert_allclose(model.predict_proba(test), model.predict_proba(padded), 1e-12)
    with pytest.raises(DataError, match=r"uses feature indices up to 3, beyond the n_features=2"):
        open_dataset(tmp_path / "train.svm", cache_dir=tmp_path, n_features=2)
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(ValueError, match=r"`n_features` applies to svmlight files only"):
        open_dataset(tmp_path / "x.npy", n_features=2)


def test_regression_target_must_be_numeric(tmp_path, data):
    X, _, labels, *_ = data
    dataset = npy_dataset(tmp_path, X, labels)
    with pytest.raises(DataError, match=r"target '.*y\.npy' must hold numbers for this fit"):
        LinearRegression().fit(dataset)


def test_a_conversion_killed_midway_is_never_used_and_is_cleaned_up(tmp_path, data):
    X, codes, *_ = data
    dump_svmlight_file(X, codes, str(tmp_path / "a.svm"))
    cache = tmp_path / "cache"
    open_dataset(tmp_path / "a.svm", cache_dir=cache)
    (entry,) = entries(cache)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **RUN)
    orphan = cache / f".{entry}.{dead.stdout.strip()}.abc.tmp"
    orphan.mkdir()
    (orphan / "X.f8").write_bytes(b"half")
    (tmp_path / "a.svm").write_text("1 0:1\n0 0:2\n")  # changed: rebuilt, orphan removed
    assert open_dataset(tmp_path / "a.svm", cache_dir=cache).scan().n_samples == 2
    assert entries(cache) == [entry]


def test_cache_dir_from_the_environment(tmp_path, data, monkeypatch):
    X, codes, *_ = data
    dump_svmlight_file(X, codes, str(tmp_path / "a.svm"))
    monkeypatch.setenv("SOFTREG_CACHE_DIR", str(tmp_path / "env-cache"))
    open_dataset(tmp_path / "a.svm")
    assert len(entries(tmp_path / "env-cache")) == 1


# --------------------------------------------------------------------------------------------
# Bad input deep in a file


def csv_with(tmp_path, name, edit, data):
    X, _, labels, _, _ = data
    lines = ["sepal_length,sepal_width,petal_length,petal_width,species"]
    lines += [
        ",".join([*(repr(float(v)) for v in row), str(s)]) for row, s in zip(X, labels, strict=True)
    ]
    lines = edit(lines)
    path = tmp_path / name
    text = "\n".join(lines) + "\n"
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


def replace_row(row, text):
    def edit(lines):
        lines[row] = text
        return lines

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (replace_row(120, "1,2,-inf,4,setosa"), r"column 'petal_length' has a non-finite value "),
        (replace_row(140, "1,abc,3,4,setosa"), r"column 'sepal_width' must be numeric; got 'abc'"),
        (replace_row(130, "1,2,3,4,setosa,5"), r"row 130 has 6 columns; the header has 5"),
        (replace_row(110, "1,2,,4,setosa"), r"column 'petal_length' has a missing value"),
        (replace_row(110, "1,2,NaN,4,setosa"), r"column 'petal_length' has a missing value"),
    ],
)
def test_bad_csv_row_names_file_row_and_column_and_leaves_no_cache(tmp_path, data, edit, message):
    path = csv_with(tmp_path, "bad.csv", edit, data)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"bad\.csv: " + message) as caught:
        open_dataset(path, target="species", cache_dir=cache)
    assert caught.value.row in (110, 120, 130, 140)
    assert entries(cache) == []


def test_bad_weight_or_label_deep_in_a_csv(tmp_path, monkeypatch):
    monkeypatch.setattr("softreg._file_cache._CSV_BLOCK_BYTES", 2**16)  # many batches
    rows = ["a,y,w"] + [f"{i},{i % 3},1.0" for i in range(1, 40001)]
    rows[30000] = "5,1,-2.0"
    path = tmp_path / "weights.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(
        DataError, match=r"column 'w' must be non-negative; got -2.0 in row 30000\."
    ) as caught:
        open_dataset(path, target="y", sample_weight="w", cache_dir=tmp_path / "cache")
    assert caught.value.row == 30000
    rows[30000] = "5,cat,1.0"  # integer labels in the first block, then text
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"column 'y' changes type: got 'cat' in row 30000\."):
        open_dataset(path, target="y", sample_weight="w", cache_dir=tmp_path / "cache")
    assert entries(tmp_path / "cache") == []


def test_bad_csv_row_counts_from_the_first_data_row(tmp_path, data):
    path = csv_with(tmp_path, "late.csv", replace_row(120, "1,2,inf,4,setosa"), data)
    with pytest.raises(DataError, match=r"in row 120;") as caught:
        open_dataset(path, target="species", cache_dir=tmp_path / "cache")
    assert caught.value.column == "petal_length"


def test_truncated_gzip_is_an_error_and_leaves_no_cache(tmp_path, data):
    X, _, labels, weight, proba = data
    rows = np.tile(np.arange(len(labels)), 40)  # large enough to span several compressed blocks
    path = tmp_path / "whole.csv.gz"
    write_csv(path, table(X[rows], labels[rows], weight[rows], proba[rows]))
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"cut\.csv\.gz: is truncated"):
        open_dataset(cut, target="species", exclude=["weight", *SOFT], cache_dir=cache)
    assert entries(cache) == []
    svm = tmp_path / "cut.svm.gz"
    dump_svmlight_file(X[rows], rows % 3, str(tmp_path / "whole.svm"))
    whole = gzip.compress((tmp_path / "whole.svm").read_bytes())
    svm.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut\.svm\.gz: is truncated or corrupt after row \d+"):
        open_dataset(svm, cache_dir=cache)
    assert entries(cache) == []


def test_bad_svmlight_row(tmp_path, data):
    X, codes, *_ = data
    dump_svmlight_file(X, codes, str(tmp_path / "bad.svm"))
    lines = (tmp_path / "bad.svm").read_text().splitlines()
    lines[99] = "1 0:1.0 x:2"
    (tmp_path / "bad.svm").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"bad\.svm: row 100 cannot be read as svmlight"):
        open_dataset(tmp_path / "bad.svm", cache_dir=tmp_path / "cache")
    lines[99] = "1 0:nan"
    (tmp_path / "bad.svm").write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DataError, match=r"has a non-finite value \(nan\) at feature index 0 in row 100"
    ):
        open_dataset(tmp_path / "bad.svm", cache_dir=tmp_path / "cache")


def test_bad_parquet_batch_names_file_and_row(tmp_path, data):
    X, _, labels, weight, proba = data
    columns = table(X, labels, weight, proba)
    columns["petal_length"] = X[:, 2].copy()
    columns["petal_length"][97] = np.nan
    pq.write_table(pa.table(columns), tmp_path / "nan.parquet", row_group_size=40)
    dataset = open_dataset(tmp_path / "nan.parquet", target="species", exclude=["weight", *SOFT])
    dataset.rows = BLOCK_ROWS
    with pytest.raises(DataError, match=r"nan\.parquet: column 'petal_length' has a non-finite"):
        SoftmaxRegression().fit(dataset)
    columns["petal_length"] = np.where(np.arange(150) == 97, np.inf, X[:, 2])
    pq.write_table(pa.table(columns), tmp_path / "inf.parquet", row_group_size=40)
    dataset = open_dataset(tmp_path / "inf.parquet", target="species", exclude=["weight", *SOFT])
    dataset.rows = BLOCK_ROWS
    with pytest.raises(DataError, match=r"non-finite value \(inf\) in row 98") as caught:
        dataset.scan()
    assert caught.value.row == 98
    columns["petal_length"] = np.where(np.arange(150) < 140, X[:, 2].astype(str), "x")
    pq.write_table(pa.table(columns), tmp_path / "text.parquet")
    dataset = open_dataset(tmp_path / "text.parquet", target="species", exclude=["weight", *SOFT])
    with pytest.raises(
        DataError, match=r"column 'petal_length' must be numeric; got 'x' in row 141"
    ):
        dataset.scan()


def npy_dataset(folder, X, target):
    """``X.npy`` and ``y.npy`` written to ``folder`` and opened, in blocks of BLOCK_ROWS."""
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", target)
    dataset = open_dataset(folder / "X.npy", target=folder / "y.npy")
    dataset.rows = BLOCK_ROWS
    return dataset


def test_bad_npy_rows(tmp_path, data):
    X, codes, *_ = data
    bad = X.copy()
    bad[77, 2] = np.inf
    dataset = npy_dataset(tmp_path, bad, codes)
    with pytest.raises(
        DataError, match=r"X\.npy: has a non-finite value \(inf\) in row 78, column 2"
    ):
        SoftmaxRegression().fit(dataset)
    np.save(tmp_path / "short.npy", codes[:10])
    with pytest.raises(
        DataError, match=r"short\.npy: must hold one target per row of .*X\.npy \(150\)"
    ):
        open_dataset(tmp_path / "X.npy", target=tmp_path / "short.npy")
    np.save(tmp_path / "good.npy", X)
    np.save(tmp_path / "w.npy", -np.ones(150))
    dataset = open_dataset(tmp_path / "good.npy", sample_weight=tmp_path / "w.npy")
    with pytest.raises(DataError, match=r"must be non-negative; got -1.0 in row 1"):
        dataset.scan()
    with pytest.raises(DataError, match=r"\.npy files have no column names to select"):
        open_dataset(tmp_path / "X.npy", features=["a"])


def test_file_changed_between_passes(tmp_path, data):
    X, codes, *_ = data
    dataset = npy_dataset(tmp_path, X, codes)
    summary = dataset.scan()
    source = dataset.source(classes=summary.classes)
    time.sleep(0.01)
    np.save(tmp_path / "y.npy", codes + 1)
    with pytest.raises(DataError, match=r"y\.npy: changed since the dataset was opened"):
        next(iter(source.blocks()))
    pq.write_table(pa.table({"a": X[:, 0], "y": codes}), tmp_path / "t.parquet")
    dataset = open_dataset(tmp_path / "t.parquet", target="y")
    dataset.scan()
    time.sleep(0.01)
    pq.write_table(pa.table({"a": X[:10, 0], "y": codes[:10]}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"t\.parquet: changed since the dataset was opened"):
        SoftmaxRegression().fit(dataset)


def test_label_not_seen_in_the_first_pass(tmp_path, data):
    X, codes, *_ = data
    dataset = npy_dataset(tmp_path, X, codes)
    with pytest.raises(
        DataError, match=r"X\.npy: has the label 2 in row 101 .*first pass did not see"
    ):
        list(dataset.source(classes=np.array([0, 1])).blocks())


def test_open_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No such file"):
        open_dataset(tmp_path / "missing.csv", target="y")
    with pytest.raises(DataError, match=r"matches no files"):
        open_dataset(str(tmp_path / "part-*.parquet"), target="y")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"is a directory without \.parquet or \.pq files"):
        open_dataset(tmp_path / "empty", target="y")
    with pytest.raises(ValueError, match=r"`format` must be one of npy, parquet, csv, svmlight"):
        open_dataset(tmp_path, format="xlsx")
    (tmp_path / "a.csv").write_text("a,y\n1,2\n")
    with pytest.raises(DataError, match=r"several files are read together only as Parquet"):
        open_dataset([tmp_path / "a.csv", tmp_path / "a.csv"], target="y")
    with pytest.raises(DataError, match=r"has no column 'label' \(the target\)"):
        open_dataset(tmp_path / "a.csv", target="label", cache_dir=tmp_path / "c")
    (tmp_path / "head.csv").write_text("a,y\n")
    with pytest.raises(DataError, match=r"head\.csv: has no data rows"):
        open_dataset(tmp_path / "head.csv", target="y", cache_dir=tmp_path / "c")
    (tmp_path / "a.svm").write_text("1 0:1\n")
    with pytest.raises(DataError, match=r"so `target` does not apply"):
        open_dataset(tmp_path / "a.svm", target="y")


# --------------------------------------------------------------------------------------------
# Prefetch


def test_prefetch_reads_the_next_item_while_the_caller_works():
    produced = []
    second_ready = threading.Event()

    def items():
        for i in range(3):
            produced.append(i)
            if i == 1:
                second_ready.set()
            yield i

    stream = prefetch(items())
    assert next(stream) == 0
    assert second_ready.wait(5)  # item 1 is produced while the caller still holds item 0
    assert list(stream) == [1, 2]


def test_prefetch_raises_in_the_caller_and_stops_when_abandoned():
    def failing():
        yield 1
        raise DataError("f.csv", "bad row 7.", row=7)

    stream = prefetch(failing())
    assert next(stream) == 1
    with pytest.raises(DataError, match=r"f\.csv: bad row 7"):
        next(stream)
    endless = prefetch(iter(range(10**9)))
    assert next(endless) == 0
    endless.close()  # the thread stops (joined in close) instead of running on


# --------------------------------------------------------------------------------------------
# Memory


PEAK_ANON_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time, warnings
    import numpy as np
    from numpy.lib.format import open_memmap
    from softreg import SoftmaxRegression, open_dataset

    def anon_kib():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])

    folder, n_rows = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    X = open_memmap(f"{folder}/X.npy", mode="w+", dtype=np.float64, shape=(n_rows, 20))
    y = open_memmap(f"{folder}/y.npy", mode="w+", dtype=np.int64, shape=(n_rows,))
    for start in range(0, n_rows, 50_000):  # written in chunks: never all in memory
        part = slice(start, start + 50_000)
        X[part] = rng.normal(size=X[part].shape)
        y[part] = np.argmax(X[part][:, :3] + rng.normal(size=(len(X[part]), 3)), axis=1)
    X.flush(); y.flush(); del X, y
    dataset = open_dataset(f"{folder}/X.npy", target=f"{folder}/y.npy")
    peak, done = [anon_kib()], threading.Event()

    def sample():
        while not done.is_set():
            peak.append(anon_kib())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SoftmaxRegression(solver="lbfgs", max_iter=4).fit(dataset)
    done.set(); sampler.join()
    print(max(peak))
    """
)


def peak_anon_kib(folder, n_rows):
    result = subprocess.run(
        [sys.executable, "-c", PEAK_ANON_SCRIPT, str(folder), str(n_rows)], **RUN
    )
    return int(result.stdout.split()[-1])


def test_peak_anonymous_memory_does_not_grow_with_rows(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    small.mkdir()
    large.mkdir()
    n_small, n_large = 60_000, 300_000  # X: 9.6 MB and 48 MB of float64
    grown = peak_anon_kib(large, n_large) - peak_anon_kib(small, n_small)
    data_kib = (n_large - n_small) * 20 * 8 // 1024
    # Memory-mapped rows count as file pages, not anonymous memory; what a fit holds is a few
    # blocks (1 MiB each) and parameter-sized vectors. 6 MiB of slack for allocator noise,
    # a sixth of the 37 MiB more data (measured: 0.1 MiB less at 5× the rows).
    assert grown < 6 * 1024, f"peak RssAnon grew by {grown} KiB for {data_kib} KiB more rows"


def test_more_errors_are_named(tmp_path, data):
    X, codes, _, weight, proba = data
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"This dataset has no target, so it cannot be trained"):
        npy_dataset(tmp_path, X, codes)  # (writes the files)
        open_dataset(tmp_path / "X.npy").source()
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(DataError, match=r"text\.npy: cannot read as a NumPy \.npy file"):
        open_dataset(tmp_path / "text.npy")
    np.save(tmp_path / "strings.npy", np.array([["a"]]))
    with pytest.raises(DataError, match=r"must hold a numeric \.npy array \(the features\)"):
        open_dataset(tmp_path / "strings.npy")
    np.save(tmp_path / "flat.npy", np.zeros(3))
    with pytest.raises(DataError, match=r"must hold a 2-D array of features; got shape \(3,\)"):
        open_dataset(tmp_path / "flat.npy")
    np.save(tmp_path / "none.npy", np.zeros((0, 3)))
    with pytest.raises(DataError, match=r"none\.npy: has no data rows"):
        open_dataset(tmp_path / "none.npy")
    nan_labels = np.where(np.arange(150) == 33, np.nan, codes.astype(float))
    with pytest.raises(DataError, match=r"has a missing label \(NaN\) in row 34"):
        npy_dataset(tmp_path, X, nan_labels).scan()
    np.save(tmp_path / "w.npy", np.where(np.arange(150) == 5, np.inf, weight))
    with pytest.raises(DataError, match=r"has a non-finite sample weight in row 6"):
        open_dataset(tmp_path / "X.npy", sample_weight=tmp_path / "w.npy").scan()
    bad = proba.copy()
    bad[90] = [0.5, 0.5, 0.5]
    with pytest.raises(DataError, match=r"must hold class probabilities .* in row 91"):
        npy_dataset(tmp_path, X, bad).scan()
    with pytest.raises(ValueError, match=r"`path_or_paths` must name at least one file"):
        open_dataset([])
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"junk\.parquet: cannot read as Parquet"):
        open_dataset(tmp_path / "junk.parquet", target="y")
    (tmp_path / "mixed").mkdir()
    pq.write_table(pa.table({"a": [1.0, 2.0], "y": [0, 1]}), tmp_path / "mixed" / "p0.parquet")
    pq.write_table(pa.table({"a": [3.0], "y": ["cat"]}), tmp_path / "mixed" / "p1.parquet")
    with pytest.raises(DataError, match=r"p1\.parquet: cannot be read from row 1 on: .*'cat'"):
        open_dataset(tmp_path / "mixed", target="y").scan()
    (tmp_path / "a.svm").write_text("1 0:1\n")
    with pytest.raises(DataError, match=r"no named columns to use as sample weights or exclude"):
        open_dataset(tmp_path / "a.svm", sample_weight="w", cache_dir=cache)
    (tmp_path / "nan.svm").write_text("1 0:1\nnan 0:2\n")
    with pytest.raises(DataError, match=r"nan\.svm: has a non-finite label in row 2"):
        open_dataset(tmp_path / "nan.svm", cache_dir=cache)
    (tmp_path / "blank.svm").write_text("\n\n")
    with pytest.raises(DataError, match=r"blank\.svm: has no data rows"):
        open_dataset(tmp_path / "blank.svm", cache_dir=cache)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv: is empty; expected a header line"):
        open_dataset(tmp_path / "empty.csv", target="y", cache_dir=cache)
    (tmp_path / "twice.csv").write_text("a,a,y\n1,2,3\n")
    with pytest.raises(DataError, match=r"column name 'a' appears more than once"):
        open_dataset(tmp_path / "twice.csv", target="y", cache_dir=cache)
    (tmp_path / "soft.csv").write_text("a,p,q\n1,0.5,0.5\n2,0.9,0.3\n")
    with pytest.raises(
        DataError, match=r"target columns \['p', 'q'\] must hold class prob.* row 2"
    ):
        open_dataset(tmp_path / "soft.csv", target=["p", "q"], cache_dir=cache)
    (tmp_path / "binary.csv").write_bytes(b"a,y\n1,\xff\xfe\n")
    with pytest.raises(DataError, match=r"target column 'y' must hold strings, .*; got binary"):
        open_dataset(tmp_path / "binary.csv", target="y", cache_dir=cache)
    assert entries(cache) == []
    # Any other reader error still names the file and where reading stopped.
    error = _csv_error("f.csv", pa.ArrowInvalid("odd failure"), ["a"], 12)
    assert str(error) == "f.csv: cannot be read as CSV after row 12: odd failure"
    assert error.row == 13
