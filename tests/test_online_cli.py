"""`softreg update`: online updates of saved models, through click's test runner."""

import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_iris

from softreg import LinearRegression, cli
from softreg._model_io import load_model, read_model_file
from softreg._partial_fit import METHOD

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def run(*args, expect=0):
    result = CliRunner().invoke(cli.main, [str(a) for a in args])
    assert result.exit_code == expect, (result.exit_code, result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Iris split in two CSV files (the second with its columns reordered) and a fitted model."""
    root = tmp_path_factory.mktemp("online")
    iris = load_iris()
    frame = pd.DataFrame(iris.data, columns=FEATURES)
    frame["species"] = iris.target_names[iris.target]
    order = np.random.default_rng(0).permutation(len(frame))
    first, second = frame.iloc[order[:100]], frame.iloc[order[100:]]
    second = second[["petal_width", "species", *FEATURES[:3]]]
    paths = {"first": root / "first.csv", "second": root / "second.csv"}
    first.to_csv(paths["first"], index=False)
    second.to_csv(paths["second"], index=False)
    paths["model"] = root / "iris.softreg"
    run("fit", paths["first"], "--target", "species", "-o", paths["model"], "--alpha", "0.01")
    return paths


def _expected(model_path, data_path, passes, seed=0):
    """The same update through the Python API."""
    model = load_model(model_path)
    frame = pd.read_csv(data_path)
    X = pd.DataFrame(np.ascontiguousarray(frame[FEATURES].to_numpy()), columns=FEATURES)
    y = frame["species"].to_numpy()
    rng = np.random.default_rng(seed)
    for _ in range(passes):
        order = rng.permutation(len(y))
        model.partial_fit(X.iloc[order], y[order])
    return model


def test_help_lists_update():
    assert re.search(r"^  update\s", run("--help").output, flags=re.MULTILINE)


def test_update_round_trips_through_the_model_format(files, tmp_path):
    updated = tmp_path / "updated.softreg"
    result = run("update", files["model"], files["second"], "-o", updated, "--passes", 3)
    assert f"Wrote {updated}: 50 rows × 3 passes" in result.stderr
    # Rows are counted per pass, as scikit-learn's n_samples_seen_: 100 + 3 × 50.
    assert "250 rows seen in all, 3 online steps" in result.stderr
    loaded = read_model_file(updated)
    expected = _expected(files["model"], files["second"], passes=3)
    np.testing.assert_array_equal(loaded.estimator.coef_, expected.coef_)
    np.testing.assert_array_equal(loaded.estimator.intercept_, expected.intercept_)
    training = loaded.header["training"]
    assert training["n_samples_seen"] == 250 and training["n_iter"] == 3
    assert training["solver"] == METHOD and training["converged"] is False
    assert training["objective"] == "nan" and training["optimality_gap_bound"] == "inf"
    assert loaded.header["metadata"]["training_data"] == "first.csv"
    assert loaded.header["metadata"]["updates"] == [["second.csv", 50, 3]]

    # A second update resumes the step count (and so the step-size schedule) from the file.
    again = tmp_path / "again.softreg"
    run("update", updated, files["first"], "-o", again, "--seed", 5, "-q")
    chained = read_model_file(again)
    expected = _expected(updated, files["first"], passes=1, seed=5)
    np.testing.assert_array_equal(chained.estimator.coef_, expected.coef_)
    assert chained.header["training"]["n_iter"] == 4
    assert chained.header["training"]["n_samples_seen"] == 350
    assert chained.header["metadata"]["updates"] == [["second.csv", 50, 3], ["first.csv", 100, 1]]
    shown = run("inspect", again).output
    assert re.search(r"^  solver\s+online-adam$", shown, flags=re.MULTILINE)
    assert re.search(r"^  rows seen\s+350$", shown, flags=re.MULTILINE)
    assert re.search(
        r"^  updates\s+\[\['second.csv', 50, 3\], \['first.csv', 100, 1\]\]$",
        shown,
        flags=re.MULTILINE,
    )
    # The online model still predicts and evaluates through the other commands.
    metrics = json.loads(run("evaluate", again, files["second"], "--json").output)
    assert metrics["accuracy"] > 0.8


def test_update_in_place_replaces_the_file(files, tmp_path):
    path = tmp_path / "model.softreg"
    path.write_bytes(files["model"].read_bytes())
    run("update", path, files["second"], "-o", path, "-q")
    assert read_model_file(path).header["training"]["solver"] == METHOD


def test_bad_labels_exit_1_and_write_nothing(files, tmp_path):
    frame = pd.read_csv(files["second"])
    frame.loc[3, "species"] = "rose"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    in_place = tmp_path / "model.softreg"
    in_place.write_bytes(files["model"].read_bytes())
    result = run("update", in_place, bad, "-o", in_place, expect=1)
    assert re.match(
        rf"Error: {re.escape(str(bad))}: `y` holds label 'rose' \(at index \d+\), which is not "
        r"among `classes` \['setosa', 'versicolor', 'virginica'\]",
        result.stderr,
    )
    assert in_place.read_bytes() == files["model"].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "model.softreg"]


def test_missing_feature_column_exits_1(files, tmp_path):
    frame = pd.read_csv(files["second"]).drop(columns="petal_width")
    path = tmp_path / "narrow.csv"
    frame.to_csv(path, index=False)
    result = run("update", files["model"], path, "-o", tmp_path / "out.softreg", expect=1)
    assert "petal_width" in result.stderr
    assert not (tmp_path / "out.softreg").exists()


def test_zero_passes_is_a_usage_error(files, tmp_path):
    result = run(
        "update", files["model"], files["second"], "-o", tmp_path / "x", "--passes", 0, expect=2
    )
    assert "Invalid value for '--passes'" in result.stderr


def test_regression_model_is_refused(files, tmp_path):
    path = tmp_path / "linear.softreg"
    LinearRegression().fit(np.eye(4), np.arange(4.0)).save(path)
    result = run("update", path, files["second"], "-o", tmp_path / "out.softreg", expect=1)
    assert "holds a LinearRegression; `softreg update` needs a SoftmaxRegression" in result.stderr


def test_older_files_without_rows_seen_still_load(files, tmp_path):
    # Files written before `n_samples_seen` existed: the field is simply absent.
    path = tmp_path / "old.softreg"
    with zipfile.ZipFile(files["model"]) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "header.json":
                header = json.loads(data)
                del header["training"]["n_samples_seen"]
                data = json.dumps(header).encode()
            target.writestr(info, data)
    model = load_model(path)
    assert not hasattr(model, "n_samples_seen_")
    model.partial_fit(pd.DataFrame(np.zeros((2, 4)), columns=FEATURES), ["setosa", "virginica"])
    assert model.n_samples_seen_ == 2
