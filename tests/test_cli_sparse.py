"""``softreg fit --l1-ratio`` and ``--cv``, and what inspect and report show of sparse models."""

import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from softreg import SoftmaxRegression, SoftmaxRegressionCV
from softreg._gather import newton_cd_bytes
from softreg._memory import format_bytes
from softreg._model_io import ModelFileError, read_model_file, save_model
from test_cli import FEATURES, run  # tests/ has no __init__.py: pytest puts it on sys.path


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    """Iris as CSV, and the same rows as arrays."""
    iris = load_iris()
    frame = pd.DataFrame(iris.data, columns=FEATURES)
    frame["species"] = iris.target_names[iris.target]
    path = tmp_path_factory.mktemp("sparse") / "iris.csv"
    frame.to_csv(path, index=False)
    return path, np.ascontiguousarray(iris.data), iris.target_names[iris.target]


@pytest.fixture(scope="module")
def cv_model(iris, tmp_path_factory):
    path, _, _ = iris
    output = tmp_path_factory.mktemp("cv") / "cv.softreg"
    args = ["--cv", "3", "--n-alphas", "5", "--l1-ratios", "0.5,1"]
    result = run("fit", path, "-t", "species", "-o", output, *args)
    return output, result


def test_fit_l1_ratio_equals_the_api_and_inspect_shows_the_zeros(iris, tmp_path):
    path, X, y = iris
    output = tmp_path / "l1.softreg"
    args = ["--alpha", "0.05", "--l1-ratio", "0.8", "--l1-norm", "grouped", "--tol", "1e-10"]
    result = run("fit", path, "-t", "species", "-o", output, *args)
    assert "newton-cd converged" in result.stderr
    expected = SoftmaxRegression(alpha=0.05, l1_ratio=0.8, l1_norm="grouped", tol=1e-10).fit(X, y)
    loaded = read_model_file(output)
    np.testing.assert_allclose(loaded.estimator.coef_, expected.coef_, rtol=1e-8, atol=1e-10)
    assert loaded.header["params"]["l1_ratio"] == 0.8
    per_class = np.count_nonzero(expected.coef_, axis=1)
    kept = int(np.any(expected.coef_ != 0, axis=0).sum())
    assert kept < len(FEATURES)  # the grouped norm dropped a feature for every class
    shown = run("inspect", output).stdout
    counts = ", ".join(f"{c}: {n}" for c, n in zip(expected.classes_, per_class, strict=True))
    assert f"non-zero per class     {counts} (of 4 features)" in shown
    assert f"features kept          {kept} of 4" in shown


def test_an_l2_model_shows_no_sparsity(iris, tmp_path):
    path, _, _ = iris
    run("fit", path, "-t", "species", "-o", tmp_path / "l2.softreg")
    assert "non-zero" not in run("inspect", tmp_path / "l2.softreg").stdout


def test_fit_cv_equals_the_api_and_keeps_its_results(iris, cv_model):
    _, X, y = iris
    output, result = cv_model
    # The same computation as the command's: equal to rounding.
    expected = SoftmaxRegressionCV(alphas=5, l1_ratios=[0.5, 1.0], cv=3).fit(X, y)
    header = read_model_file(output).header
    section = header["cross_validation"]
    np.testing.assert_allclose(section["scores"], expected.scores_, rtol=1e-8)
    np.testing.assert_allclose(section["alphas"], expected.alphas_, rtol=1e-12)
    assert (section["alpha"], section["l1_ratio"]) == (expected.alpha_, expected.l1_ratio_)
    assert header["params"]["alpha"] == expected.alpha_
    assert header["feature_names"] == FEATURES
    mean = expected.scores_.mean(axis=1)[[0.5, 1.0].index(expected.l1_ratio_)]
    best = mean[list(expected.alphas_[[0.5, 1.0].index(expected.l1_ratio_)]).index(expected.alpha_)]
    assert f"log-loss {best:.6g} ± " in result.stderr
    # The path on all the data: non-zeros rise from none at alpha_max.
    nonzero = np.asarray(section["path"]["n_nonzero"]).sum(axis=1)
    assert nonzero[0] == 0 and nonzero[-1] > 0
    shown = run("inspect", output).stdout
    assert f"chosen alpha           {expected.alpha_!r}" in shown
    assert "folds                  3" in shown and "l1_ratios              0.5, 1" in shown


def test_report_of_a_cv_model_has_the_sparsity_and_the_path(iris, cv_model, tmp_path):
    path, _, _ = iris
    output, _ = cv_model
    run("report", output, path, "-o", tmp_path / "r.html", "-q")
    page = (tmp_path / "r.html").read_text()
    coef = read_model_file(output).estimator.coef_
    kept = int(np.any(coef != 0, axis=0).sum())
    assert f'data-metric="sparsity.features_kept" data-value="{kept}"' in page
    for k, n in enumerate(np.count_nonzero(coef, axis=1)):
        assert f'data-metric="sparsity.non_zero.{k}" data-value="{n}"' in page
    alpha = read_model_file(output).header["cross_validation"]["alpha"]
    assert f'data-metric="cross_validation.alpha" data-value="{alpha!r}"' in page
    assert re.search(r'<figure id="figure-path"><img alt="[^"]+" src="data:image/png;base64,', page)


def test_fit_cv_with_given_alphas(iris, tmp_path):
    path, _, _ = iris
    output = tmp_path / "m.softreg"
    run("fit", path, "-t", "species", "-o", output, "--cv", "3", "--alphas", "0.01,0.1", "-q")
    section = read_model_file(output).header["cross_validation"]
    assert section["alphas"] == [[0.1, 0.01]] and section["l1_ratios"] == [1.0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cv", "3", "--alphas", "0.1,x"], r"Invalid value for --alphas: expected numbers "),
        (["--cv", "3", "--alphas", "0,1"], r"numbers in \(0, inf\] separated by commas; got '0,1'"),
        (["--cv", "3", "--l1-ratios", "0.5,2"], r"Invalid value for --l1-ratios: expected "),
        (["--cv", "1"], r"Invalid value for '--cv': 1 is not in the range x>=2"),
        (["--l1-ratio", "1.5"], r"Invalid value for '--l1-ratio': 1.5 is not in the range"),
        (["--l1-norm", "l2"], r"Invalid value for '--l1-norm': 'l2' is not one of"),
        (["--alphas", "0.1"], r"--alphas applies only with --cv N\."),
        (["--l1-ratios", "1"], r"--l1-ratios applies only with --cv N\."),
        (["--cv", "3", "--alpha", "0.1"], r"--alpha and --cv exclude each other: give the val"),
        (["--cv", "3", "--l1-ratio", "1"], r"--l1-ratio and --cv exclude each other: give the "),
        (["--cv", "3", "--alphas", "1", "--n-alphas", "3"], r"--alphas and --n-alphas exclude"),
        (["--cv", "3", "--standardize"], r"--standardize does not apply with --cv\."),
        (["--cv", "3", "--solver", "lbfgs"], r"Invalid value for --solver: --cv fits with "),
        (["--l1-ratio", "0.5", "--solver", "gd"], r"for --solver: 'gd' handles only the L2 pen"),
        (["--l1-ratio", "0.5", "--alpha", "0"], r"for --alpha: newton-cd \(used for --l1-ratio"),
        (["--l1-ratio", "0.5", "--checkpoint", "c"], r"--checkpoint does not apply to newton-cd"),
    ],
)
def test_bad_penalty_options_exit_2_naming_the_option(iris, tmp_path, args, message):
    path, _, _ = iris
    result = run("fit", path, "-t", "species", "-o", tmp_path / "m.softreg", *args, expect=2)
    assert re.search(message, " ".join(result.stderr.split())), result.stderr
    assert not (tmp_path / "m.softreg").exists()


def test_an_l1_fit_beyond_the_memory_limit_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    n_samples, n_features = 200_000, 20
    np.save(tmp_path / "X.npy", rng.standard_normal((n_samples, n_features)))
    np.save(tmp_path / "y.npy", rng.integers(0, 2, n_samples))
    needed = newton_cd_bytes(n_samples, n_features, 2, 8)
    output = tmp_path / "m.softreg"
    args = ["-t", tmp_path / "y.npy", "-o", output, "--l1-ratio", "1", "--memory-limit", "48M"]
    result = run("fit", tmp_path / "X.npy", *args, expect=1)
    assert result.stderr == (
        f"Error: solver='newton-cd' holds the rows in memory: {n_samples} rows need "
        f"{format_bytes(needed)} ({needed} bytes), more than the memory limit 48 MiB "
        f"({48 * 2**20} bytes). Raise the dataset's `memory_limit` (--memory-limit on the "
        "command line), or fit with l1_ratio=0, which streams the rows.\n"
    )
    assert not output.exists()


def test_an_unconverged_l1_fit_exits_3(iris, tmp_path):
    path, _, _ = iris
    output = tmp_path / "m.softreg"
    args = ["--l1-ratio", "1", "--alpha", "1e-3", "--max-iter", "1"]
    result = run("fit", path, "-t", "species", "-o", output, *args, expect=3)
    assert "Not converged: " in result.stderr and "raise --max-iter" in result.stderr
    assert not read_model_file(output).header["training"]["converged"]


def rewrite_header(source, target, edit):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename == "header.json":
                header = json.loads(data)
                edit(header)
                data = json.dumps(header).encode()
            new.writestr(item, data)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda h: h["cross_validation"].pop("path"), r"expected a mapping with a mapping 'path'"),
        (lambda h: h["cross_validation"].update(n_folds=1), r"'n_folds' must be an integer >= 2"),
        (lambda h: h["cross_validation"]["scores"][0].pop(), r"'scores' must hold numbers of sh"),
        (
            lambda h: h["cross_validation"]["path"]["features"].append(4),
            r"'path.features' names features beyond the 4 of the model",
        ),
        (lambda h: h["cross_validation"].update(l1_norm="l2"), r"'l1_norm' must be 'elementwise'"),
    ],
)
def test_a_bad_cross_validation_section_is_refused(cv_model, tmp_path, edit, message):
    output, _ = cv_model
    rewrite_header(output, tmp_path / "bad.softreg", edit)
    with pytest.raises(
        ModelFileError, match=r"has an invalid cross_validation section: " + message
    ):
        read_model_file(tmp_path / "bad.softreg")


def test_save_model_checks_the_cross_validation_section(cv_model, tmp_path):
    loaded = read_model_file(cv_model[0])
    section = loaded.header["cross_validation"]
    save_model(loaded.estimator, tmp_path / "again.softreg", cross_validation=section)
    assert read_model_file(tmp_path / "again.softreg").header["cross_validation"] == section
    with pytest.raises(ValueError, match=r"cannot save `cross_validation`: 'n_folds' must be"):
        save_model(
            loaded.estimator, tmp_path / "x.softreg", cross_validation={**section, "n_folds": 0}
        )
    assert not (tmp_path / "x.softreg").exists()
