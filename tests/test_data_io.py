"""Reading CSV, Parquet, svmlight and .npz data files; writing prediction tables."""

import bz2
import gzip
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from softreg._data_io import (
    DataError,
    MissingDependencyError,
    Table,
    column_names,
    format_csv,
    guess_format,
    import_optional,
    read_table,
    write_table,
)

IRIS_CSV = """\
sepal_length,petal_length,species,weight
5.1,1.4,setosa,1.0
7.0,4.7,versicolor,2.0
6.3,6.0,virginica,0.5
"""


@pytest.fixture
def iris_csv(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text(IRIS_CSV)
    return path


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------
# format detection


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.csv", "csv"),
        ("a.CSV", "csv"),
        ("a.csv.gz", "csv"),
        ("a.csv.bz2", "csv"),
        ("a.parquet", "parquet"),
        ("a.pq", "parquet"),
        ("news20.scale.svm.bz2", "svmlight"),
        ("a.svmlight", "svmlight"),
        ("a.libsvm.gz", "svmlight"),
        ("a.npz", "npz"),
    ],
)
def test_guess_format(name, expected):
    assert guess_format(name) == expected


@pytest.mark.parametrize("name", ["a.txt", "a", "a.parquet.gz", "a.npz.bz2", "a.gz"])
def test_guess_format_refuses_unknown_names(name):
    with pytest.raises(DataError, match=r"cannot tell the format from the file name.*--format"):
        guess_format(name)


def test_read_table_refuses_unknown_format_argument(iris_csv):
    with pytest.raises(ValueError, match=r"`format` must be one of csv, parquet.*got 'xlsx'"):
        read_table(iris_csv, format="xlsx")


# ------------------------------------------------------------------------------------------
# CSV


def test_csv_reads_features_labels_and_names(iris_csv):
    table = read_table(iris_csv, target="species", sample_weight="weight")
    assert isinstance(table, Table)
    np.testing.assert_array_equal(table.X, [[5.1, 1.4], [7.0, 4.7], [6.3, 6.0]])
    assert table.X.dtype == np.float64 and table.X.flags.c_contiguous
    assert table.y.dtype.kind == "U"
    assert table.y.tolist() == ["setosa", "versicolor", "virginica"]
    np.testing.assert_array_equal(table.sample_weight, [1.0, 2.0, 0.5])
    assert table.feature_names == ["sepal_length", "petal_length"]
    assert (table.n_samples, table.n_features) == (3, 2)
    assert table.path == str(iris_csv) and table.format == "csv"


def test_csv_without_target_keeps_every_other_column(iris_csv):
    table = read_table(iris_csv, exclude=["species"])
    assert table.y is None and table.sample_weight is None
    assert table.feature_names == ["sepal_length", "petal_length", "weight"]


def test_csv_feature_list_sets_columns_and_order(iris_csv):
    table = read_table(iris_csv, target="species", features=["petal_length", "weight"])
    assert table.feature_names == ["petal_length", "weight"]
    np.testing.assert_array_equal(table.X[:, 0], [1.4, 4.7, 6.0])


def test_csv_integer_and_boolean_columns(tmp_path):
    path = write(tmp_path, "ints.csv", "a,flag,label\n1,true,3\n2,false,1\n")
    table = read_table(path, target="label")
    np.testing.assert_array_equal(table.X, [[1.0, 1.0], [2.0, 0.0]])
    assert table.y.dtype == np.int64 and table.y.tolist() == [3, 1]


def test_csv_float_and_boolean_labels_keep_their_kind(tmp_path):
    path = write(tmp_path, "f.csv", "a,label,flag\n1,0.5,true\n2,1.5,false\n")
    assert read_table(path, target="label", exclude=["flag"]).y.dtype == np.float64
    assert read_table(path, target="flag", exclude=["label"]).y.dtype == np.bool_


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_compressed_csv(tmp_path, compress):
    suffix = ".gz" if compress is gzip.compress else ".bz2"
    path = tmp_path / f"iris.csv{suffix}"
    path.write_bytes(compress(IRIS_CSV.encode()))
    table = read_table(path, target="species", exclude=["weight"])
    assert table.X.shape == (3, 2)


def test_csv_missing_target_column_lists_columns(iris_csv):
    with pytest.raises(
        DataError,
        match=r"iris\.csv: has no column 'label' \(the target\); the columns are "
        r"'sepal_length', 'petal_length', 'species', 'weight'\.",
    ):
        read_table(iris_csv, target="label")


def test_long_column_lists_are_cut(tmp_path):
    header = ",".join(f"c{i}" for i in range(20))
    path = write(tmp_path, "wide.csv", header + "\n" + ",".join(["1"] * 20) + "\n")
    with pytest.raises(DataError, match=r"'c11', \.\.\. \(20 in all\)\.") as info:
        read_table(path, target="label")
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_weight": "w"}, r"has no column 'w' \(the sample weights\)"),
        ({"exclude": ["id"]}, r"has no column 'id' \(listed to exclude\)"),
        ({"features": ["x"]}, r"has no column 'x' \(listed as a feature\)"),
        (
            {"features": ["species"]},
            r"column 'species' is the target or sample weight, not a feature",
        ),
        ({"features": ["weight", "weight"]}, r"the feature list names a column more than once"),
        ({"sample_weight": "species"}, r"cannot be both target and sample weight"),
        (
            {"exclude": ["sepal_length", "petal_length", "weight"]},
            r"has no feature columns left",
        ),
    ],
)
def test_csv_column_selection_errors(iris_csv, kwargs, message):
    with pytest.raises(DataError, match=message):
        read_table(iris_csv, target="species", **kwargs)


def test_csv_text_in_feature_column_names_column_and_row(tmp_path):
    path = write(tmp_path, "bad.csv", "a,b,label\n1,2,x\n3,oops,y\n")
    with pytest.raises(
        DataError, match=r"bad\.csv: column 'b' must be numeric; got 'oops' in row 2\."
    ) as info:
        read_table(path, target="label")
    assert (info.value.column, info.value.row) == ("b", 2)


def test_csv_date_column_is_not_numeric(tmp_path):
    path = write(tmp_path, "dates.csv", "day,label\n2024-01-01,x\n2024-01-02,y\n")
    with pytest.raises(DataError, match=r"column 'day' must be numeric; got values of type date"):
        read_table(path, target="label")


@pytest.mark.parametrize("cell", ["", "NA", "NaN", "null"])
def test_csv_missing_value_names_row(tmp_path, cell):
    path = write(tmp_path, "gap.csv", f"a,b,label\n1,2,x\n3,4,y\n5,{cell},z\n")
    with pytest.raises(
        DataError,
        match=r"column 'b' has a missing value \(empty cell, NA or NaN\) in row 3; "
        r"softreg does not impute",
    ):
        read_table(path, target="label")


def test_csv_infinite_value_names_row(tmp_path):
    path = write(tmp_path, "inf.csv", "a,label\n1,x\n-inf,y\n")
    with pytest.raises(DataError, match=r"column 'a' has a non-finite value \(-inf\) in row 2"):
        read_table(path, target="label")


def test_csv_empty_feature_column(tmp_path):
    path = write(tmp_path, "blank.csv", "a,b,label\n1,,x\n2,,y\n")
    with pytest.raises(DataError, match=r"column 'b' is empty in every row"):
        read_table(path, target="label")


def test_csv_missing_label_names_row(tmp_path):
    path = write(tmp_path, "nolabel.csv", "a,label\n1,x\n2,\n")
    with pytest.raises(DataError, match=r"target column 'label' has a missing label in row 2"):
        read_table(path, target="label")


def test_csv_empty_file(tmp_path):
    with pytest.raises(DataError, match=r"empty\.csv: is empty; expected a header line"):
        read_table(write(tmp_path, "empty.csv", ""), target="label")


def test_csv_header_only(tmp_path):
    with pytest.raises(DataError, match=r"head\.csv: has no data rows"):
        read_table(write(tmp_path, "head.csv", "a,label\n"), target="label")


def test_csv_duplicate_column_names(tmp_path):
    path = write(tmp_path, "dup.csv", "a,a,label\n1,2,x\n")
    with pytest.raises(DataError, match=r"column name 'a' appears more than once"):
        read_table(path, target="label")


def test_csv_ragged_row_names_its_line(tmp_path):
    path = write(tmp_path, "ragged.csv", "a,label\n1,x\n2,y\n3\n")
    with pytest.raises(DataError, match=r"cannot read as a CSV file: .*Row #4: Expected 2 columns"):
        read_table(path, target="label")


def test_negative_sample_weight_names_row(iris_csv, tmp_path):
    path = write(tmp_path, "neg.csv", "a,label,w\n1,x,1\n2,y,-0.5\n")
    with pytest.raises(
        DataError, match=r"sample weight column 'w' must be non-negative; got -0\.5 in row 2"
    ):
        read_table(path, target="label", sample_weight="w")


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_table(tmp_path / "absent.csv", target="label")


# ------------------------------------------------------------------------------------------
# Parquet


def test_parquet_reads_like_csv(tmp_path, iris_csv):
    path = tmp_path / "iris.parquet"
    pq.write_table(
        pa.table(
            {
                "sepal_length": [5.1, 7.0, 6.3],
                "petal_length": pa.array([1.4, 4.7, 6.0], pa.float32()),
                "species": pa.array(["setosa", "versicolor", "virginica"]).dictionary_encode(),
                "weight": [1, 2, 0],
            }
        ),
        path,
    )
    table = read_table(path, target="species", sample_weight="weight")
    from_csv = read_table(iris_csv, target="species", sample_weight="weight")
    np.testing.assert_array_equal(table.X[:, 0], from_csv.X[:, 0])
    np.testing.assert_array_equal(table.X[:, 1], from_csv.X[:, 1].astype(np.float32))
    np.testing.assert_array_equal(table.y, from_csv.y)
    assert table.format == "parquet" and table.feature_names == from_csv.feature_names


def test_parquet_nan_feature_is_missing(tmp_path):
    path = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"a": [1.0, float("nan")], "label": ["x", "y"]}), path)
    with pytest.raises(DataError, match=r"column 'a' has a non-finite value \(nan\) in row 2"):
        read_table(path, target="label")


def test_parquet_nan_label(tmp_path):
    path = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0], "label": [1.0, float("nan")]}), path)
    with pytest.raises(
        DataError, match=r"target column 'label' has a missing label \(NaN\) in row 2"
    ):
        read_table(path, target="label")


def test_parquet_label_of_unsupported_type(tmp_path):
    path = tmp_path / "bytes.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0], "label": [b"x", b"y"]}), path)
    with pytest.raises(
        DataError, match=r"target column 'label' must hold strings, integers, floats or booleans"
    ):
        read_table(path, target="label")


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(DataError, match=r"bad\.parquet: cannot read as a Parquet file"):
        read_table(path, target="label")


# ------------------------------------------------------------------------------------------
# svmlight


def test_svmlight_maps_index_j_to_column_j(tmp_path):
    path = write(tmp_path, "one_based.svm", "1 1:0.5 3:2\n2 2:1\n")
    table = read_table(path)
    assert sp.issparse(table.X) and table.X.format == "csr"
    np.testing.assert_array_equal(table.X.toarray(), [[0, 0.5, 0, 2], [0, 0, 1, 0]])
    assert table.y.dtype == np.int64 and table.y.tolist() == [1, 2]
    assert table.feature_names is None and table.format == "svmlight"


def test_svmlight_pads_to_n_features_and_keeps_float_labels(tmp_path):
    path = write(tmp_path, "test.svm", "0.5 1:1\n-1 2:1\n")
    table = read_table(path, n_features=5)
    assert table.X.shape == (2, 5)
    assert table.y.dtype == np.float64


def test_svmlight_compressed(tmp_path):
    path = tmp_path / "a.svm.bz2"
    path.write_bytes(bz2.compress(b"1 1:0.5\n0 2:1\n"))
    assert read_table(path).X.shape == (2, 3)


def test_svmlight_index_beyond_model(tmp_path):
    path = write(tmp_path, "wide.svm", "1 9:1\n")
    with pytest.raises(DataError, match=r"uses feature indices beyond the 4 features the model"):
        read_table(path, n_features=4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 1:x\n", r"cannot read as an svmlight/LIBSVM file: could not convert"),
        ("1 1:1\n2 3:nan\n", r"has a non-finite value \(nan\) at feature index 3 in row 2"),
        ("nan 1:1\n", r"has a non-finite label \(nan\) in row 1"),
        ("", r"bad\.svm: has no data rows"),
    ],
)
def test_svmlight_bad_content(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_table(write(tmp_path, "bad.svm", text))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": "label"}, r"`target` does not apply; got 'label'"),
        ({"features": ["a"]}, r"`features` does not apply"),
        ({"sample_weight": "w"}, r"no named columns to use as sample weights"),
    ],
)
def test_svmlight_refuses_column_arguments(tmp_path, kwargs, message):
    with pytest.raises(DataError, match=message):
        read_table(write(tmp_path, "a.svm", "1 1:1\n"), **kwargs)


# ------------------------------------------------------------------------------------------
# .npz


def test_npz_with_names_labels_and_weights(tmp_path):
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 3)).astype(np.float32)
    np.savez(
        path,
        X=X,
        y=np.array(["a", "b", "a", "b", "a"]),
        feature_names=np.array(["p", "q", "r"]),
        w=np.arange(5),
    )
    table = read_table(path, sample_weight="w")
    np.testing.assert_array_equal(table.X, X.astype(np.float64))
    assert table.y.tolist() == ["a", "b", "a", "b", "a"]
    assert table.feature_names == ["p", "q", "r"]
    np.testing.assert_array_equal(table.sample_weight, np.arange(5.0))
    selected = read_table(path, features=["r", "p"])
    np.testing.assert_array_equal(selected.X, X[:, [2, 0]].astype(np.float64))
    assert read_table(path, exclude=["q"]).feature_names == ["p", "r"]


def test_npz_named_target_and_no_labels(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.eye(2), label=np.array([3, 4]))
    assert read_table(path).y is None
    assert read_table(path, target="label").y.tolist() == [3, 4]


def test_npz_object_array_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, X=np.eye(2), y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match=r"array 'y' cannot be read without pickle"):
        read_table(path)


@pytest.mark.parametrize(
    ("arrays", "kwargs", "message"),
    [
        ({"data": np.eye(2)}, {}, r"has no array 'X'; the arrays are 'data'"),
        ({"X": np.ones(3)}, {}, r"array 'X' must be a 2-D numeric array; got 1-D float64"),
        ({"X": np.array([["a"]])}, {}, r"must be a 2-D numeric array; got 2-D <U1"),
        ({"X": np.ones((0, 2))}, {}, r"has no data rows"),
        ({"X": np.array([[1.0, np.inf]])}, {}, r"non-finite value \(inf\) at index \(0, 1\)"),
        ({"X": np.eye(2), "y": np.ones(3)}, {}, r"array 'y' must have shape \(2,\) to match X"),
        ({"X": np.eye(2), "y": np.array([1.0, np.nan])}, {}, r"NaN label at index \(1,\)"),
        ({"X": np.eye(2)}, {"target": "t"}, r"has no array 't' \(the target\)"),
        ({"X": np.eye(2)}, {"features": ["a"]}, r"has no 'feature_names' array"),
        (
            {"X": np.eye(2), "feature_names": np.array(["a"])},
            {},
            r"'feature_names' must be 1-D strings, one per column of X \(2\)",
        ),
        (
            {"X": np.eye(2), "w": np.array([1.0, -2.0])},
            {"sample_weight": "w"},
            r"array 'w' must be non-negative; got -2\.0 at index \(1,\)",
        ),
        (
            {"X": np.eye(2), "w": np.array([1.0, np.nan])},
            {"sample_weight": "w"},
            r"array 'w' must be finite numbers",
        ),
    ],
)
def test_npz_errors(tmp_path, arrays, kwargs, message):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        read_table(path, **kwargs)


def test_npz_single_array_file(tmp_path):
    path = tmp_path / "d.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.eye(2))
    with pytest.raises(DataError, match=r"holds a single \.npy array; expected an \.npz archive"):
        read_table(path)


def test_npz_garbage(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(b"not numpy at all")
    with pytest.raises(DataError, match=r"cannot read as a NumPy \.npz file"):
        read_table(path)


# ------------------------------------------------------------------------------------------
# optional dependencies


def test_missing_pyarrow_names_the_extra(monkeypatch, iris_csv):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(
        MissingDependencyError,
        match=r"reading CSV needs the `pyarrow` package, which is not installed; "
        r"install it with: pip install 'softreg\[io\]'",
    ):
        read_table(iris_csv, target="species")


def test_import_optional_names_top_level_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"plots needs the `matplotlib` package"):
        import_optional("matplotlib.pyplot", "report", "plots")


# ------------------------------------------------------------------------------------------
# writing


def test_format_csv_round_trips_floats_exactly():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(size=50) * 10.0 ** rng.integers(-300, 300, 50), [0.1]])
    text = format_csv({"value": values, "label": np.arange(values.size)})
    lines = text.splitlines()
    assert lines[0] == "value,label"
    np.testing.assert_array_equal([float(line.split(",")[0]) for line in lines[1:]], values)
    assert lines[-1] == "0.1,50"


def test_format_csv_quotes_when_needed():
    assert format_csv({"label": np.array(["a,b", 'c"d'])}) == 'label\n"a,b"\n"c""d"\n'


@pytest.mark.parametrize("name", ["p.csv", "p.csv.gz", "p.csv.bz2", "p.parquet"])
def test_write_table_round_trips(tmp_path, name):
    columns = {
        "prediction": np.array(["x", "y"]),
        "proba_x": np.array([0.25, 1 / 3]),
        "proba_y": np.array([0.75, 2 / 3]),
    }
    path = tmp_path / name
    write_table(path, columns)
    table = read_table(path, target="prediction")
    np.testing.assert_array_equal(
        table.X, np.column_stack([columns["proba_x"], columns["proba_y"]])
    )
    assert table.y.tolist() == ["x", "y"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_write_table_refuses_unwritable_format(tmp_path):
    with pytest.raises(DataError, match=r"predictions can be written as CSV or Parquet, not npz"):
        write_table(tmp_path / "p.npz", {"a": np.ones(2)})


# ------------------------------------------------------------------------------------------
# matching a model's features


def test_strict_features_reorders_by_name(iris_csv):
    table = read_table(
        iris_csv,
        target="species",
        sample_weight="weight",
        features=["petal_length", "sepal_length"],
        strict_features=True,
    )
    assert table.feature_names == ["petal_length", "sepal_length"]
    np.testing.assert_array_equal(table.X[:, 0], [1.4, 4.7, 6.0])


def test_strict_features_names_every_missing_column(iris_csv):
    with pytest.raises(
        DataError, match=r"lacks feature columns the model was trained on: 'width', 'depth'\."
    ):
        read_table(iris_csv, features=["width", "sepal_length", "depth"], strict_features=True)


def test_strict_features_names_every_extra_column(iris_csv):
    with pytest.raises(
        DataError,
        match=r"has columns that are not features of the model: 'species', 'weight'; leave "
        r"them out with `exclude` \(--ignore on the command line\)\.",
    ):
        read_table(iris_csv, features=["petal_length", "sepal_length"], strict_features=True)
    table = read_table(
        iris_csv,
        features=["petal_length", "sepal_length"],
        exclude=["species", "weight"],
        strict_features=True,
    )
    assert table.X.shape == (3, 2)


def test_non_strict_features_names_every_missing_column(iris_csv):
    with pytest.raises(DataError, match=r"has no columns 'a', 'b' \(listed as features\)"):
        read_table(iris_csv, features=["a", "b"])


def test_strict_features_in_npz(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.eye(3), feature_names=np.array(["a", "b", "c"]))
    with pytest.raises(DataError, match=r"not features of the model: 'c'"):
        read_table(path, features=["b", "a"], strict_features=True)


def test_column_names(iris_csv, tmp_path):
    assert column_names(iris_csv) == ["sepal_length", "petal_length", "species", "weight"]
    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1.0], "y": ["a"]}), parquet)
    assert column_names(parquet) == ["x", "y"]
    assert column_names(tmp_path / "a.svm") is None
    np.savez(tmp_path / "named.npz", X=np.eye(2), feature_names=np.array(["u", "v"]))
    assert column_names(tmp_path / "named.npz") == ["u", "v"]
    np.savez(tmp_path / "unnamed.npz", X=np.eye(2))
    assert column_names(tmp_path / "unnamed.npz") is None
    with open(tmp_path / "single.npz", "wb") as handle:
        np.save(handle, np.eye(2))
    with pytest.raises(DataError, match=r"single\.npz: holds a single \.npy array"):
        column_names(tmp_path / "single.npz")
    (tmp_path / "garbage.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"garbage\.npz: cannot read as a NumPy \.npz file"):
        column_names(tmp_path / "garbage.npz")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"nope")
    with pytest.raises(DataError, match=r"bad\.parquet: cannot read as a Parquet file"):
        column_names(bad)
