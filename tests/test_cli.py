"""The softreg command line, driven through click's test runner: exit codes, messages, outputs."""

import csv
import io
import itertools
import json
import pickle
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sklearn.datasets import dump_svmlight_file, load_iris

import softreg
from softreg import cli
from softreg._data_io import DataError, read_table
from softreg._metrics import classification_metrics
from softreg._model_io import load_model, read_model_file, save_model

ALPHA = "0.01"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def run(*args, expect=0):
    result = CliRunner().invoke(cli.main, [str(a) for a in args])
    assert result.exit_code == expect, (result.exit_code, result.output, result.exception)
    return result


def iris_frames():
    iris = load_iris()
    frame = pd.DataFrame(iris.data, columns=FEATURES)
    frame["species"] = iris.target_names[iris.target]
    rng = np.random.default_rng(0)
    test = np.zeros(len(frame), dtype=bool)
    test[rng.choice(len(frame), size=40, replace=False)] = True
    return frame[~test].reset_index(drop=True), frame[test].reset_index(drop=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Iris train/test files as CSV and Parquet; the test files have their columns reordered."""
    root = tmp_path_factory.mktemp("data")
    train, test = iris_frames()
    test = test[["petal_width", "species", "sepal_length", "petal_length", "sepal_width"]]
    paths = {
        "train.csv": root / "train.csv",
        "test.csv": root / "test.csv",
        "train.parquet": root / "train.parquet",
        "test.parquet": root / "test.parquet",
    }
    train.to_csv(paths["train.csv"], index=False)
    test.to_csv(paths["test.csv"], index=False)
    pq.write_table(pa.Table.from_pandas(train, preserve_index=False), paths["train.parquet"])
    pq.write_table(pa.Table.from_pandas(test, preserve_index=False), paths["test.parquet"])
    return paths


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "iris.softreg"
    run("fit", data["train.csv"], "--target", "species", "-o", path, "--alpha", ALPHA)
    return path


def python_api_model(train_path):
    """The same model through the Python API."""
    table = read_table(train_path, target="species")
    frame = c_ordered_frame(table.X, table.feature_names)
    return softreg.SoftmaxRegression(alpha=float(ALPHA)).fit(frame, table.y)


def c_ordered_frame(X, columns):
    """A DataFrame over C-ordered ``X``, as the CLI builds it: matrix products sum in an order
    that depends on the memory layout, so the last bit of a probability does too (and
    ``pd.DataFrame(X)`` copies into Fortran order)."""
    return pd.DataFrame(np.ascontiguousarray(X), columns=columns, copy=False)


def read_csv_text(text):
    rows = list(csv.reader(io.StringIO(text)))
    return rows[0], rows[1:]


# ------------------------------------------------------------------------------------------
# the group


def test_help_lists_every_command():
    result = run("--help")
    for command in ("fit", "predict", "evaluate", "report", "inspect", "demo"):
        assert re.search(rf"^  {command}\s", result.output, flags=re.MULTILINE), command


def test_version():
    assert run("--version").output == f"softreg, version {softreg.__version__}\n"


def test_unknown_command_is_a_usage_error():
    result = run("train", expect=2)
    assert "No such command 'train'" in result.stderr


# ------------------------------------------------------------------------------------------
# end to end, CSV and Parquet


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_fit_predict_evaluate_report_match_the_python_api(data, tmp_path, kind):
    model_path = tmp_path / "m.softreg"
    train, test = data[f"train.{kind}"], data[f"test.{kind}"]
    fitted = run("fit", train, "--target", "species", "-o", model_path, "--alpha", ALPHA)
    assert fitted.stdout == ""
    assert re.match(
        r"Wrote .*m\.softreg: 3 classes, 4 features; \S+ converged in \d+ iter", fitted.stderr
    )

    reference = python_api_model(train)
    test_table = read_table(test, target="species")
    order = [test_table.feature_names.index(name) for name in FEATURES]
    X_test = c_ordered_frame(test_table.X[:, order], FEATURES)

    # predict to standard output: labels, then probabilities, in input row order
    header, rows = read_csv_text(run("predict", model_path, test, "--proba", "--log-proba").stdout)
    labels = ["setosa", "versicolor", "virginica"]
    assert header == ["prediction"] + [f"proba_{c}" for c in labels] + [
        f"log_proba_{c}" for c in labels
    ]
    assert [row[0] for row in rows] == reference.predict(X_test).tolist()
    np.testing.assert_array_equal(
        np.array([row[1:4] for row in rows], dtype=float), reference.predict_proba(X_test)
    )
    np.testing.assert_array_equal(
        np.array([row[4:] for row in rows], dtype=float), reference.predict_log_proba(X_test)
    )
    # and to a file, of either format
    out = tmp_path / f"predictions.{kind}"
    assert run("predict", model_path, test, "-o", out).stdout == ""
    if kind == "parquet":
        written_labels = pq.read_table(out).column("prediction").to_pylist()
    else:
        written_labels = pd.read_csv(out)["prediction"].tolist()
    assert written_labels == reference.predict(X_test).tolist()

    # evaluate --json equals the metrics of the Python API's model
    metrics = json.loads(run("evaluate", model_path, test, "--target", "species", "--json").stdout)
    expected = classification_metrics(
        test_table.y, reference.predict_log_proba(X_test), reference.classes_
    )
    assert metrics == json.loads(json.dumps(expected))

    # the report holds the same numbers
    report_path = tmp_path / "report.html"
    assert run("report", model_path, test, "-o", report_path).stderr == f"Wrote {report_path}\n"
    parser = ReportCells()
    parser.feed(report_path.read_text())
    assert len(parser.images) == 4
    assert len(parser.cells) > 30
    for path, value in parser.cells.items():
        assert float(value) == lookup(metrics, path), path


class ReportCells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.images = {}, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-metric" in attrs:
            self.cells[attrs["data-metric"]] = attrs["data-value"]
        if tag == "img":
            self.images.append(attrs["src"])


def lookup(tree, dotted):
    for part in dotted.split("."):
        tree = tree[int(part)] if isinstance(tree, list) else tree[part]
    return tree


def test_report_is_self_contained(model, data, tmp_path):
    path = tmp_path / "r.html"
    run("report", model, data["test.csv"], "-o", path, "--quiet")
    page = path.read_text()
    assert "http://" not in page and "https://" not in page
    assert "<script src" not in page and "<link" not in page
    assert page.count('src="data:image/png;base64,') == 4
    for figure in ("training", "reliability", "confusion", "surprisal"):
        assert f'id="figure-{figure}"' in page


# ------------------------------------------------------------------------------------------
# fit


def test_fit_is_quiet_in_a_pipe_and_verbose_on_request(data, tmp_path):
    quiet = run("fit", data["train.csv"], "-t", "species", "-o", tmp_path / "a.softreg", "-q")
    assert quiet.stdout == "" and quiet.stderr == ""
    verbose = run("fit", data["train.csv"], "-t", "species", "-o", tmp_path / "b.softreg", "-v")
    lines = verbose.stderr.splitlines()
    pattern = r"iteration +(\d+)  pass +(\S+) +(\S+) rows/s  objective \S+  gap bound \S+"
    assert re.fullmatch(pattern.replace(r"(\d+)", "0"), lines[0])
    passes = [float(re.fullmatch(pattern, line)[2]) for line in lines[:-1]]
    assert passes[0] == 2  # the first evaluation and the certificate's statistics
    assert all(b > a for a, b in itertools.pairwise(passes))
    speeds = [float(re.fullmatch(pattern, line)[3]) for line in lines[:-1]]
    assert all(speed > 0 for speed in speeds)
    n_iter = read_model_file(tmp_path / "b.softreg").estimator.n_iter_
    assert sum(line.startswith("iteration") for line in lines) >= n_iter
    assert lines[-1].startswith("Wrote ")


def test_fit_progress_updates_one_line_on_a_terminal(data, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "_stderr_is_tty", lambda: True)
    result = run("fit", data["train.csv"], "-t", "species", "-o", tmp_path / "m.softreg")
    assert result.stderr.startswith("\riteration     0  pass    2.00 ")
    progress, summary = result.stderr.rsplit("\n", 2)[:2]
    assert "\n" not in progress and progress.count("\r") > 1
    assert summary.startswith("Wrote ")
    silenced = run("fit", data["train.csv"], "-t", "species", "-o", tmp_path / "q.softreg", "-q")
    assert silenced.stderr == ""


def test_fit_options_reach_the_estimator(data, tmp_path):
    path = tmp_path / "m.softreg"
    run(
        "fit",
        data["train.csv"],
        "-t",
        "species",
        "-o",
        path,
        "--alpha",
        "0.5",
        "--solver",
        "lbfgs",
        "--tol",
        "1e-6",
        "--max-iter",
        "200",
        "--no-intercept",
        "--class-weight",
        "setosa=2,virginica=0.5",
        "--features",
        "petal_length,petal_width",
        "--features",
        "sepal_length",
        "-q",
    )
    model_file = read_model_file(path)
    params = model_file.estimator.get_params()
    assert params["alpha"] == 0.5 and params["solver"] == "lbfgs" and params["tol"] == 1e-6
    assert params["max_iter"] == 200 and params["fit_intercept"] is False
    assert params["class_weight"] == {"setosa": 2.0, "virginica": 0.5}
    assert model_file.header["feature_names"] == ["petal_length", "petal_width", "sepal_length"]
    assert model_file.header["metadata"]["target_column"] == "species"


def test_fit_with_sample_weight_column_and_ignored_column(tmp_path):
    train, _ = iris_frames()
    train["weight"] = np.linspace(0.5, 2.0, len(train))
    train["row_id"] = np.arange(len(train))
    path = tmp_path / "w.csv"
    train.to_csv(path, index=False)
    model_path = tmp_path / "w.softreg"
    run(
        "fit",
        path,
        "-t",
        "species",
        "--sample-weight",
        "weight",
        "--ignore",
        "row_id",
        "-o",
        model_path,
        "--alpha",
        ALPHA,
        "-q",
    )
    frame = c_ordered_frame(train[FEATURES].to_numpy(), FEATURES)
    expected = softreg.SoftmaxRegression(alpha=float(ALPHA)).fit(
        frame, train["species"].to_numpy(str), sample_weight=train["weight"].to_numpy()
    )
    loaded = load_model(model_path)
    np.testing.assert_array_equal(loaded.coef_, expected.coef_)
    assert read_model_file(model_path).header["metadata"]["sample_weight_column"] == "weight"
    # predicting on the same file skips the target and weight columns; row_id must be ignored
    result = run("predict", model_path, path, expect=1)
    assert result.stderr == (
        f"Error: {path}: has columns that are not features of the model: 'row_id'; leave them "
        "out with `exclude` (--ignore on the command line).\n"
    )
    assert "prediction" in run("predict", model_path, path, "--ignore", "row_id").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], r"Missing option '--target': CSV data needs a label column"),
        (
            ["-t", "species", "--alpha", "-1"],
            r"Invalid value for '--alpha': -1\.0 is not in the range x>=0",
        ),
        (
            ["-t", "species", "--solver", "sgd"],
            r"Invalid value for '--solver': 'sgd' is not one of",
        ),
        (["-t", "species", "-q", "-v"], r"--quiet and --verbose exclude each other"),
        (
            ["-t", "species", "--class-weight", "rose=2"],
            r"Invalid value for --class-weight: 'rose' is "
            r"not a label of the target column \(labels: setosa, versicolor, virginica\)",
        ),
        (
            ["-t", "species", "--class-weight", "setosa:2"],
            r"expected 'balanced' or LABEL=WEIGHT pairs "
            r"separated by commas; got 'setosa:2'",
        ),
        (["-t", "species", "--max-iter", "0"], r"Invalid value for '--max-iter'"),
        (
            ["-t", "species", "--tol", "0"],
            r"Invalid value for '--tol': 0\.0 is not in the range x>0",
        ),
    ],
)
def test_fit_usage_errors_exit_2(data, tmp_path, args, message):
    result = run("fit", data["train.csv"], "-o", tmp_path / "m.softreg", *args, expect=2)
    assert re.search(message, result.stderr), result.stderr
    assert not (tmp_path / "m.softreg").exists()


def test_fit_without_output_is_a_usage_error(data):
    result = run("fit", data["train.csv"], "-t", "species", expect=2)
    assert "Missing option '-o' / '--output'" in result.stderr


def test_missing_data_file_is_a_usage_error(tmp_path):
    result = run("fit", tmp_path / "absent.csv", "-t", "y", "-o", tmp_path / "m", expect=2)
    assert re.search(
        r"Invalid value for 'DATA': File '.*absent\.csv' does not exist", result.stderr
    )


def test_unknown_data_suffix_is_a_usage_error(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    result = run("fit", path, "-t", "y", "-o", tmp_path / "m", expect=2)
    assert "cannot tell the format from the file name" in result.stderr


def test_bad_data_exits_1_with_one_line_and_no_traceback(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,label\n1,2,x\n3,oops,y\n")
    result = run("fit", path, "-t", "label", "-o", tmp_path / "m.softreg", expect=1)
    assert result.stderr == f"Error: {path}: column 'b' must be numeric; got 'oops' in row 2.\n"
    assert result.stdout == ""
    assert not (tmp_path / "m.softreg").exists()


def test_debug_shows_the_exception(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,label\n1,2,x\n3,oops,y\n")
    result = run("fit", path, "-t", "label", "-o", tmp_path / "m.softreg", "--debug", expect=1)
    assert isinstance(result.exception, DataError)
    assert "Error:" not in result.stderr


def test_estimator_errors_name_the_data_file(tmp_path):
    path = tmp_path / "one_class.csv"
    path.write_text("a,label\n1,x\n2,x\n")
    result = run("fit", path, "-t", "label", "-o", tmp_path / "m.softreg", expect=1)
    assert result.stderr.startswith(f"Error: {path}: ")
    assert result.stderr.count("\n") == 1


def test_unwritable_output_exits_1(data, tmp_path):
    target = tmp_path / "no-such-dir" / "m.softreg"
    result = run("fit", data["train.csv"], "-t", "species", "-o", target, expect=1)
    assert result.stderr == f"Error: {target}: No such file or directory\n"


def test_non_convergence_writes_the_model_and_exits_3(data, tmp_path):
    path = tmp_path / "m.softreg"
    args = ("fit", data["train.csv"], "-t", "species", "-o", path, "--max-iter", "1")
    result = run(*args, expect=cli.EXIT_NOT_CONVERGED)
    assert cli.EXIT_NOT_CONVERGED == 3
    warning, summary, advice = result.stderr.splitlines()
    assert warning.startswith("Warning: SoftmaxRegression with solver=")
    assert "did NOT converge in 1 iterations" in summary
    assert re.fullmatch(
        rf"Not converged: {re.escape(str(path))} was written, but its certified gap bound "
        r"\S+ is above --tol × objective = \S+\. To converge: raise --max-iter \(this fit used "
        r"all 1 iterations\), standardise the features \(mean 0, variance 1\), or try another "
        r"--solver\. Exit code 3\.",
        advice,
    )
    assert load_model(path).converged_ is False  # written all the same
    # --quiet silences the summary, never the verdict.
    quiet = run(*args, "-q", expect=3).stderr.splitlines()
    assert [line.split(":")[0] for line in quiet] == ["Warning", "Not converged"]


def test_non_convergence_at_the_precision_limit_says_raise_tol(tmp_path):
    """Features of scale 1e20 (within range) leave float64 unable to certify tol=1e-6."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "huge": 1e20 * X[:, 2]})
    frame["label"] = (X[:, 0] + X[:, 1] > 0).astype(int)
    frame.to_csv(tmp_path / "huge.csv", index=False)
    result = run(
        "fit", tmp_path / "huge.csv", "-t", "label", "-o", tmp_path / "m.softreg", "-q", expect=3
    )
    advice = result.stderr.splitlines()[-1]
    assert "To converge: raise --tol (1e-06 is finer than the arithmetic could certify" in advice
    # alpha = 0 judges convergence by the gradient, and says so.
    result = run(
        "fit", tmp_path / "huge.csv", "-t", "label", "-o", tmp_path / "m0.softreg", "-q",
        "--alpha", "0", "--max-iter", "2", expect=3,
    )  # fmt: skip
    assert "but a gradient entry is above --tol = 1e-06. To converge: raise --max-iter" in (
        result.stderr
    )


@pytest.mark.parametrize("scale", [1e300, 1e154, 1e78])
def test_features_that_overflow_the_fit_are_an_error_naming_the_column(tmp_path, scale):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 2))
    frame = pd.DataFrame({"x": X[:, 0], "big": scale * X[:, 1], "y": (X[:, 0] > 0).astype(int)})
    frame.to_csv(tmp_path / "big.csv", index=False)
    result = run("fit", tmp_path / "big.csv", "-t", "y", "-o", tmp_path / "m.softreg", expect=1)
    assert re.fullmatch(
        rf"Error: {re.escape(str(tmp_path / 'big.csv'))}: Feature column 1 \('big'\) holds "
        r"values as large as \S+ in magnitude; the fit's float64 arithmetic overflows "
        r"beyond 1\.16e\+77 \(its products multiply up to four such values\)\. Scale the data, "
        r"e\.g\. with sklearn\.preprocessing\.StandardScaler\.\n",
        result.stderr,
    )
    assert not (tmp_path / "m.softreg").exists()  # nothing written


def test_help_shows_the_estimators_defaults_and_the_readers_formats():
    """cli.py spells these out so that --help imports neither the estimator nor the readers."""
    import inspect

    from softreg._estimator import SoftmaxRegression
    from softreg._files import STREAM_FORMATS

    signature = inspect.signature(SoftmaxRegression).parameters
    assert {name: signature[name].default for name in cli._DEFAULTS} == cli._DEFAULTS
    assert cli._FORMATS == STREAM_FORMATS
    shown = " ".join(run("fit", "--help").output.split())
    assert "[default: 0.0001; x>=0]" in shown and "[default: 1000; x>=1]" in shown
    assert "says what to change, keeps its checkpoint" in shown and "exits with code 3." in shown


# ------------------------------------------------------------------------------------------
# predict


def test_predict_matches_features_by_name_and_skips_the_target(model, data):
    # the test file has the columns in another order and still holds the species column
    result = run("predict", model, data["test.csv"])
    header, rows = read_csv_text(result.stdout)
    assert header == ["prediction"] and len(rows) == 40


def test_predict_names_missing_columns(model, tmp_path):
    _, test = iris_frames()
    path = tmp_path / "partial.csv"
    test.drop(columns=["petal_width", "sepal_width"]).to_csv(path, index=False)
    result = run("predict", model, path, expect=1)
    assert result.stderr == (
        f"Error: {path}: lacks feature columns the model was trained on: 'sepal_width', "
        "'petal_width'.\n"
    )


def test_predict_names_extra_columns(model, tmp_path):
    _, test = iris_frames()
    test["colour"] = "red"
    test["size"] = 1.0
    path = tmp_path / "extra.csv"
    test.to_csv(path, index=False)
    result = run("predict", model, path, expect=1)
    assert "has columns that are not features of the model: 'colour', 'size'" in result.stderr
    assert run("predict", model, path, "--ignore", "colour,size").stdout.startswith("prediction\n")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("out.txt", r"Invalid value for --output: .*out\.txt: cannot tell the format"),
        ("out.npz", r"Invalid value for --output: .*out\.npz: predictions are written as CSV"),
    ],
)
def test_predict_output_format_is_checked_first(model, data, tmp_path, name, message):
    result = run("predict", model, data["test.csv"], "-o", tmp_path / name, expect=2)
    assert re.search(message, result.stderr)


def test_predict_refuses_a_pickle_without_running_it(data, tmp_path):
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "model.softreg"
    path.write_bytes(pickle.dumps(Payload()))
    result = run("predict", path, data["test.csv"], expect=1)
    assert result.stderr.startswith(f"Error: {path}: looks like a pickle file, not a softreg model")
    assert not marker.exists()


def test_predict_on_a_truncated_model(model, data, tmp_path):
    path = tmp_path / "cut.softreg"
    path.write_bytes(model.read_bytes()[:500])
    result = run("predict", path, data["test.csv"], expect=1)
    assert result.stderr.startswith(f"Error: {path}: is truncated or corrupted")


# ------------------------------------------------------------------------------------------
# evaluate


def test_evaluate_prints_tables(model, data):
    text = run("evaluate", model, data["test.csv"]).stdout
    assert text.startswith(f"Evaluation of {model} on {data['test.csv']}\n40 samples, 3 classes\n")
    for expected in (
        r"accuracy\s+\d\.\d{4}",
        r"log-loss\s+\d\.\d{4} nats = \d\.\d{4} bits",
        r"perplexity\s+\d\.\d{4}",
        r"mean predictive entropy\s+\S+ nats = \S+ bits",
        r"expected calibration error\s+\S+ \(top label, 15 equal-width bins\)",
        r"class\s+precision\s+recall\s+f1\s+support",
        r"Confusion matrix \(rows: true class, columns: predicted class\)",
        r"Likeliest mislabelled rows",
    ):
        assert re.search(expected, text), expected


def test_evaluate_json_is_strict_json(model, data):
    metrics = json.loads(run("evaluate", model, data["test.parquet"], "--json").stdout)
    assert metrics["n_samples"] == 40 and metrics["classes"] == [
        "setosa",
        "versicolor",
        "virginica",
    ]
    assert metrics["perplexity"] == pytest.approx(np.exp(metrics["log_loss_nats"]))
    assert len(metrics["highest_surprisal"]) == 10


def test_evaluate_with_unknown_label(model, tmp_path):
    _, test = iris_frames()
    test.loc[2, "species"] = "rose"
    path = tmp_path / "rose.csv"
    test.to_csv(path, index=False)
    result = run("evaluate", model, path, expect=1)
    assert result.stderr == (
        f"Error: {path}: `y` holds label 'rose' in row 3, which is not one of the model's "
        "classes ('setosa', 'versicolor', 'virginica').\n"
    )


def test_evaluate_needs_a_target_when_the_model_has_none(tmp_path, data):
    X, y = load_iris(return_X_y=True)
    model_path = tmp_path / "python.softreg"
    save_model(
        softreg.SoftmaxRegression(alpha=0.1).fit(pd.DataFrame(X, columns=FEATURES), y), model_path
    )
    _, test = iris_frames()
    path = tmp_path / "numbers.csv"
    test.assign(species=test["species"].map({"setosa": 0, "versicolor": 1, "virginica": 2})).to_csv(
        path, index=False
    )
    result = run("evaluate", model_path, path, expect=2)
    assert "Missing option '--target'" in result.stderr
    assert json.loads(run("evaluate", model_path, path, "-t", "species", "--json").stdout)


def test_evaluate_with_sample_weight(model, tmp_path):
    _, test = iris_frames()
    test["weight"] = 2.0
    path = tmp_path / "weighted.csv"
    test.to_csv(path, index=False)
    weighted = json.loads(
        run("evaluate", model, path, "--sample-weight", "weight", "--json").stdout
    )
    plain = json.loads(run("evaluate", model, path, "--ignore", "weight", "--json").stdout)
    assert weighted["log_loss_nats"] == pytest.approx(plain["log_loss_nats"], rel=1e-15)
    assert weighted["per_class"][0]["support"] == 2 * plain["per_class"][0]["support"]


# ------------------------------------------------------------------------------------------
# other formats


def test_svmlight_end_to_end(tmp_path):
    X, y = load_iris(return_X_y=True)
    train, test = tmp_path / "train.svm", tmp_path / "test.svm.gz"
    dump_svmlight_file(X, y, str(train), zero_based=False)
    # a test file whose last feature is always zero has fewer columns than the training file
    X_test = X[::10].copy()
    X_test[:, 3] = 0.0
    dump_svmlight_file(X_test, y[::10], str(tmp_path / "test.svm"), zero_based=False)
    import gzip

    test.write_bytes(gzip.compress((tmp_path / "test.svm").read_bytes()))
    model_path = tmp_path / "m.softreg"
    run("fit", train, "-o", model_path, "--alpha", ALPHA, "-q")
    model_file = read_model_file(model_path)
    assert model_file.header["n_features"] == 5 and model_file.header["feature_names"] is None
    _, rows = read_csv_text(run("predict", model_path, test).stdout)
    expected = model_file.estimator.predict(np.hstack([np.zeros((15, 1)), X_test]))
    assert [int(row[0]) for row in rows] == expected.tolist()
    metrics = json.loads(run("evaluate", model_path, test, "--json").stdout)
    assert metrics["n_samples"] == 15
    result = run("evaluate", model_path, test, "-t", "species", expect=1)
    assert "svmlight files hold the label first on each line" in result.stderr


def test_npz_end_to_end(tmp_path):
    X, y = load_iris(return_X_y=True)
    path = tmp_path / "iris.npz"
    np.savez(path, X=X, y=y, feature_names=np.array(FEATURES))
    model_path = tmp_path / "m.softreg"
    run("fit", path, "-o", model_path, "-q")
    assert read_model_file(model_path).header["feature_names"] == FEATURES
    reordered = tmp_path / "reordered.npz"
    np.savez(reordered, X=X[:, ::-1], feature_names=np.array(FEATURES[::-1]))
    _, rows = read_csv_text(run("predict", model_path, reordered).stdout)
    _, same = read_csv_text(run("predict", model_path, path).stdout)
    assert rows == same
    unlabelled = tmp_path / "unlabelled.npz"
    np.savez(unlabelled, X=X)
    result = run("fit", unlabelled, "-o", model_path, expect=1)
    assert "has no labels: expected an array 'y' or give --target ARRAY" in result.stderr
    wrong_width = tmp_path / "wide.npz"
    np.savez(wrong_width, X=np.hstack([X, X]))
    result = run("predict", model_path, wrong_width, expect=1)
    assert "has 8 feature columns; the model was trained on 4 (matched by position" in result.stderr


# ------------------------------------------------------------------------------------------
# inspect and demo


def test_inspect_shows_the_file(model):
    text = run("inspect", model).stdout
    for expected in (
        r"format\s+softreg-model version 1",
        rf"written by\s+softreg {re.escape(softreg.__version__)}",
        r"estimator\s+SoftmaxRegression",
        r"classes\s+3: setosa, versicolor, virginica",
        r"features\s+4: sepal_length, sepal_width, petal_length, petal_width",
        r"  alpha\s+0\.01",
        r"  converged\s+yes",
        r"  target_column\s+species",
    ):
        assert re.search(expected, text), expected
    header = json.loads(run("inspect", model, "--json").stdout)
    assert header["format"] == "softreg-model" and header["classes"][0] == "setosa"


def test_inspect_refuses_a_foreign_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    result = run("inspect", path, expect=1)
    assert result.stderr == (
        f"Error: {path}: is not a softreg model file (a softreg model file is a zip archive, "
        "starting with b'PK'; this file starts with b'hell').\n"
    )


def test_demo_writes_model_report_and_data(tmp_path):
    out = tmp_path / "demo"
    result = run("demo", "--out-dir", out, "--kernels")
    for name in ("digits-train.csv", "digits-test.csv", "digits.softreg", "digits-report.html"):
        assert (out / name).is_file(), name
    text = result.stdout
    assert re.search(r"test set    accuracy 0\.9\d{3}, log-loss \S+ nats = \S+ bits", text)
    assert re.search(r"certified optimality-gap bound \S+", text)
    assert "Worked examples from the notes" in text
    # The files it writes work with the other commands, and give the demo's numbers.
    metrics = json.loads(
        run("evaluate", out / "digits.softreg", out / "digits-test.csv", "--json").stdout
    )
    assert f"accuracy {metrics['accuracy']:.4f}" in text


def test_linear_regression_models_predict_but_do_not_evaluate(tmp_path, data):
    X, _ = load_iris(return_X_y=True)
    frame = pd.DataFrame(X[:, :3], columns=FEATURES[:3])
    model = softreg.LinearRegression(alpha=0.01).fit(frame, X[:, 3])
    model_path = tmp_path / "linear.softreg"
    save_model(model, model_path, metadata={"target_column": "petal_width"})
    path = tmp_path / "iris.csv"
    frame.assign(petal_width=X[:, 3]).to_csv(path, index=False)
    _, rows = read_csv_text(run("predict", model_path, path).stdout)
    table = read_table(path, target="petal_width")
    expected = model.predict(c_ordered_frame(table.X, table.feature_names))
    np.testing.assert_array_equal([float(row[0]) for row in rows], expected)
    result = run("predict", model_path, path, "--proba", expect=2)
    assert "--proba and --log-proba need a SoftmaxRegression model" in result.stderr
    result = run("evaluate", model_path, path, expect=1)
    assert result.stderr == (
        f"Error: {model_path}: holds a LinearRegression; `softreg evaluate` needs a "
        "SoftmaxRegression classifier.\n"
    )
