"""The command line streams files larger than memory: same results as in memory, in blocks,
checkpointed, within a memory limit."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sklearn.datasets import dump_svmlight_file

import softreg._memory
from softreg import SoftmaxRegression, cli
from softreg._checkpoint import Checkpoint, SolverState
from softreg._memory import MemoryGuard
from softreg._metrics import classification_metrics
from softreg._model_io import load_model, read_model_file
from test_metrics import assert_metrics_close

ALPHA = 1e-2
TOL = 1e-10  # both fits certify R - R* <= tol·R: they agree on R to ~1e-10 relative
ROWS = 64  # rows per block in these tests: every file is read in many blocks
FEATURES = [f"f{j}" for j in range(5)]


def run(*args, expect=0):
    result = CliRunner().invoke(cli.main, [str(a) for a in args])
    assert result.exit_code == expect, (result.exit_code, result.output, result.exception)
    return result


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch, tmp_path):
    monkeypatch.setattr(MemoryGuard, "rows_for", lambda self, dataset: ROWS)
    monkeypatch.setenv("SOFTREG_CACHE_DIR", str(tmp_path / "cache"))


def problem(n_samples=600, seed=0):
    """Features with 6 decimals (exact through CSV text), 3 classes, positive weights."""
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(n_samples, len(FEATURES))) * [1, 2, 0.5, 1, 3], 6)
    logits = X @ rng.normal(size=(len(FEATURES), 3))
    y = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)
    weight = np.round(rng.uniform(0.5, 2.0, size=n_samples), 3)
    return X, y, weight


def frame(X, y, weight):
    # A copy: pandas < 3 (no copy-on-write) would let a test's edit of the frame reach the
    # module-scoped fixture's X.
    table = pd.DataFrame(X.copy(), columns=FEATURES)
    table["label"] = y
    table["weight"] = weight
    return table


def write_files(root, X, y, weight):
    """The same rows in every streamed format; returns {kind: (path, fit options, weighted)}."""
    table = frame(X, y, weight)
    table.to_csv(root / "data.csv", index=False)
    table.to_csv(root / "data.csv.gz", index=False)
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), root / "data.parquet")
    (root / "parts").mkdir()
    for index, part in enumerate(np.array_split(np.arange(len(y)), 3)):
        piece = pa.Table.from_pandas(table.iloc[part], preserve_index=False)
        pq.write_table(piece, root / "parts" / f"part-{index}.parquet", row_group_size=50)
    np.save(root / "X.npy", X)
    np.save(root / "y.npy", y)
    np.save(root / "w.npy", weight)
    dump_svmlight_file(X, y, str(root / "data.svm"), zero_based=True)
    columns = ["-t", "label", "--sample-weight", "weight"]
    return {
        "csv": (root / "data.csv", columns, True),
        "csv.gz": (root / "data.csv.gz", columns, True),
        "parquet": (root / "data.parquet", columns, True),
        "parquet-dir": (root / "parts", columns, True),
        "parquet-glob": (root / "parts" / "part-*.parquet", columns, True),
        "npy": (root / "X.npy", ["-t", root / "y.npy", "--sample-weight", root / "w.npy"], True),
        "svmlight": (root / "data.svm", [], False),
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("streamed")
    X, y, weight = problem()
    return X, y, weight, write_files(root, X, y, weight)


@pytest.mark.parametrize(
    "kind", ["csv", "csv.gz", "parquet", "parquet-dir", "parquet-glob", "npy", "svmlight"]
)
def test_a_streamed_fit_equals_the_in_memory_fit(files, tmp_path, kind):
    X, y, weight, paths = files
    path, options, weighted = paths[kind]
    model_path = tmp_path / "m.softreg"
    args = ["--alpha", ALPHA, "--tol", TOL, "--solver", "newton-cg", "-q"]
    run("fit", path, *options, "-o", model_path, *args)
    streamed = load_model(model_path)
    expected = SoftmaxRegression(alpha=ALPHA, tol=TOL, solver="newton-cg")
    expected.fit(X, y, sample_weight=weight if weighted else None)
    assert streamed.objective_ == pytest.approx(expected.objective_, rel=1e-10)
    np.testing.assert_allclose(streamed.coef_, expected.coef_, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(streamed.intercept_, expected.intercept_, rtol=1e-8, atol=1e-8)
    assert read_model_file(model_path).header["metadata"]["n_samples"] == len(y)


def test_fit_standardize_equals_the_estimator_option(files, tmp_path):
    X, y, weight, paths = files
    path, options, _ = paths["parquet"]
    model_path = tmp_path / "m.softreg"
    run(
        "fit",
        path,
        *options,
        "--standardize",
        "--alpha",
        ALPHA,
        "--tol",
        TOL,
        "-q",
        "-o",
        model_path,
    )
    expected = SoftmaxRegression(alpha=ALPHA, tol=TOL, standardize=True)
    expected.fit(X, y, sample_weight=weight)
    streamed = load_model(model_path)
    assert streamed.objective_ == pytest.approx(expected.objective_, rel=1e-10)
    np.testing.assert_allclose(streamed.coef_, expected.coef_, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_predict_writes_every_block_in_order(files, tmp_path, suffix):
    X, _, _, paths = files
    model_path = tmp_path / "m.softreg"
    run("fit", paths["parquet"][0], *paths["parquet"][1], "-o", model_path, "-q")
    out = tmp_path / f"predictions.{suffix}"
    run("predict", model_path, paths["parquet-dir"][0], "--proba", "-o", out)
    written = pq.read_table(out).to_pandas() if suffix == "parquet" else pd.read_csv(out)
    model = load_model(model_path)
    named = pd.DataFrame(X, columns=FEATURES)
    assert written["prediction"].tolist() == model.predict(named).tolist()
    # Rows computed block by block: the same products as one block, to the last ulp or so.
    proba = written[[f"proba_{k}" for k in range(3)]].to_numpy()
    np.testing.assert_allclose(proba, model.predict_proba(named), rtol=1e-14, atol=1e-16)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_predict_leaves_no_output_when_a_row_deep_in_the_file_is_bad(files, tmp_path):
    X, y, weight, paths = files
    model_path = tmp_path / "m.softreg"
    run("fit", paths["parquet"][0], *paths["parquet"][1], "-o", model_path, "-q")
    table = frame(X, y, weight)
    table.loc[500, "f3"] = np.nan
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), bad, row_group_size=100)
    out = tmp_path / "out.parquet"
    result = run("predict", model_path, bad, "-o", out, expect=1)
    assert result.stderr.startswith(f"Error: {bad}: ")
    assert "row 501" in result.stderr and "'f3'" in result.stderr
    assert result.stderr.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["bad.parquet", "m.softreg"]


@pytest.mark.parametrize("weighted", [False, True])
def test_evaluate_streams_the_metrics_of_all_rows(files, tmp_path, weighted):
    X, y, weight, paths = files
    path, options, _ = paths["parquet"]
    model_path = tmp_path / "m.softreg"
    run("fit", path, *options, "-o", model_path, "-q")
    extra = ["--sample-weight", "weight"] if weighted else ["--ignore", "weight"]
    streamed = json.loads(run("evaluate", model_path, path, *extra, "--json").stdout)
    model = load_model(model_path)
    expected = classification_metrics(
        y,
        model.predict_log_proba(pd.DataFrame(X, columns=FEATURES)),
        model.classes_,
        sample_weight=weight if weighted else None,
    )
    assert_metrics_close(streamed, json.loads(json.dumps(expected)))
    report = tmp_path / "r.html"
    run("report", model_path, path, *extra, "-o", report, "-q")
    assert report.read_text().count('src="data:image/png;base64,') == 4


# ------------------------------------------------------------------------------------------
# --checkpoint: kill -9, then the same command resumes


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import softreg._checkpoint, softreg._memory
    from softreg import cli

    kill_at = int(sys.argv[1])
    saves = [0]
    save = softreg._checkpoint.Checkpoint.save

    def save_then_die(self, state):
        save(self, state)
        saves[0] += 1
        if saves[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    softreg._checkpoint.Checkpoint.save = save_then_die
    softreg._memory.MemoryGuard.rows_for = lambda self, dataset: {rows}  # as in the parent
    cli.main(sys.argv[2:])
    """
).format(rows=ROWS)


def test_fit_killed_then_rerun_resumes_to_the_same_optimum(files, tmp_path):
    _, _, _, paths = files
    path, options, _ = paths["csv"]
    checkpoint, model_path = tmp_path / "fit.ckpt", tmp_path / "m.softreg"
    args = ["fit", str(path), *map(str, options), "-o", str(model_path), "--alpha", str(ALPHA)]
    args += ["--tol", str(TOL), "--solver", "gd", "-q", "--checkpoint", str(checkpoint)]
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "SOFTREG_CACHE_DIR": str(tmp_path / "cache")}
    child = subprocess.run(
        [sys.executable, str(script), "30", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert checkpoint.exists() and not model_path.exists()
    run(*args)
    assert not checkpoint.exists()  # the model holds the result now
    resumed = load_model(model_path)
    assert resumed.history_["objective"].size == resumed.n_iter_ + 1 > 30
    uninterrupted = tmp_path / "u.softreg"
    run(*[a if a != str(model_path) else str(uninterrupted) for a in args[:-2]])
    expected = load_model(uninterrupted)
    assert resumed.objective_ == pytest.approx(expected.objective_, rel=1e-10)
    np.testing.assert_array_equal(resumed.coef_, expected.coef_)  # gd resumes exactly


def test_a_checkpoint_of_another_fit_is_refused(files, tmp_path):
    _, _, _, paths = files
    path, options, _ = paths["parquet"]
    checkpoint, model_path = tmp_path / "fit.ckpt", tmp_path / "m.softreg"
    args = ["fit", path, *options, "-o", model_path, "--checkpoint", checkpoint]
    result = run(*args, "--max-iter", "2", expect=3)
    assert "did NOT converge" in result.stderr and model_path.exists()
    assert checkpoint.exists()  # not converged: kept, so that a rerun continues
    resumed = run(*args, "--max-iter", "50", "-v")
    assert resumed.stderr.startswith("iteration     3  ")  # iterations 0-2 were saved
    assert not checkpoint.exists()  # converged: removed once the model is written
    model_path.unlink()
    # A checkpoint left by a killed run whose command has changed since:
    history = {k: np.zeros(1) for k in ("objective", "gradient_norm", "gap_bound", "time")}
    Checkpoint(checkpoint, {"alpha": 1.0}).save(SolverState("gd", 0, np.zeros(18), 1.0, history))
    result = run(*args, expect=1)
    assert result.stderr.startswith(f"Error: {checkpoint}: was written for a different problem: ")
    assert "Delete the file to start afresh" in result.stderr
    assert result.stderr.count("\n") == 1
    assert not model_path.exists()


def test_a_checkpoint_of_a_changed_file_is_refused(files, tmp_path):
    X, y, weight, _ = files
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pandas(frame(X, y, weight), preserve_index=False), path)
    checkpoint = tmp_path / "fit.ckpt"
    args = ["fit", path, "-t", "label", "-o", tmp_path / "m", "--checkpoint", checkpoint]
    args += ["--solver", "gd", "-q"]
    with pytest.MonkeyPatch.context() as patch:  # a run that dies after its third save
        patch.setattr(Checkpoint, "save", _dies_after(3, Checkpoint.save))
        run(*args, expect=1)  # click turns the interrupt into "Aborted!", exit code 1
    assert checkpoint.exists()
    os.utime(path, ns=(1, 1))  # touched: same bytes, another modification time
    result = run(*args, expect=1)
    assert "data_files is " in result.stderr and "Delete the file" in result.stderr


def _dies_after(n, save):
    calls = [0]

    def dying_save(self, state):
        save(self, state)
        calls[0] += 1
        if calls[0] == n:
            raise KeyboardInterrupt

    return dying_save


# ------------------------------------------------------------------------------------------
# --memory-limit


def test_a_memory_limit_too_small_for_one_block_is_refused(files, tmp_path, monkeypatch):
    monkeypatch.undo()  # the real block sizing
    _, _, _, paths = files
    path, options, _ = paths["parquet"]
    result = run("fit", path, *options, "-o", tmp_path / "m", "--memory-limit", "8M", expect=1)
    assert result.stderr.startswith("Error: --memory-limit 8 MiB is too small: a pass holds 5 ")
    assert result.stderr.count("\n") == 1


def test_memory_use_beyond_the_limit_stops_the_command(files, tmp_path, monkeypatch):
    _, _, _, paths = files
    path, options, _ = paths["parquet"]
    used = iter(range(0, 2**40, 2**28))  # 256 MiB more at every look
    monkeypatch.setattr(softreg._memory, "anonymous_memory", lambda: next(used))
    model_path = tmp_path / "m.softreg"
    result = run("fit", path, *options, "-o", model_path, "--memory-limit", "1G", expect=1)
    assert result.stderr.startswith(
        "Error: softreg holds 1.25 GiB of memory for data, more than --memory-limit 1 GiB: raise "
        "the limit"
    )
    assert not model_path.exists()


def test_a_memory_limit_that_is_not_a_size_is_a_usage_error(files, tmp_path):
    _, _, _, paths = files
    path, options, _ = paths["parquet"]
    result = run("fit", path, *options, "-o", tmp_path / "m", "--memory-limit", "lots", expect=2)
    assert "Invalid value for '--memory-limit': expected a size such as 512M" in result.stderr


def test_the_default_memory_limit_is_half_the_memory_or_half_the_cgroup_limit(monkeypatch):
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < softreg._memory.default_memory_limit() <= total // 2
    monkeypatch.setattr(softreg._memory, "_cgroup_limit", lambda: 2**30)
    assert softreg._memory.default_memory_limit() == 2**29


def test_cache_dir_places_the_csv_cache(files, tmp_path):
    _, _, _, paths = files
    path, options, _ = paths["csv"]
    cache = tmp_path / "here"
    run("fit", path, *options, "-o", tmp_path / "m", "-q", "--cache-dir", cache)
    assert [entry.name.startswith("data.csv-") for entry in cache.iterdir()] == [True]


# ------------------------------------------------------------------------------------------
# errors of the streamed commands: exit code 1, one line naming the file


def test_an_npy_file_without_labels_is_refused(files, tmp_path):
    _, _, _, paths = files
    result = run("fit", paths["npy"][0], "-o", tmp_path / "m", expect=1)
    assert result.stderr == (
        f"Error: {paths['npy'][0]}: has no labels: give --target LABELS.npy, a file of one "
        "label per row.\n"
    )


def test_an_svmlight_file_wider_than_the_model_is_refused(files, tmp_path):
    X, y, _, paths = files
    model_path = tmp_path / "m.softreg"
    run("fit", paths["svmlight"][0], "-o", model_path, "-q")
    wide = tmp_path / "wide.svm"
    dump_svmlight_file(np.hstack([X, X]), y, str(wide), zero_based=True)
    result = run("predict", model_path, wide, expect=1)
    assert result.stderr == (
        f"Error: {wide}: has feature indices up to 9; the model was trained on 5 features.\n"
    )


def test_a_label_deep_in_the_file_that_the_model_never_saw(files, tmp_path):
    X, y, weight, paths = files
    model_path = tmp_path / "m.softreg"
    run("fit", paths["parquet"][0], *paths["parquet"][1], "-o", model_path, "-q")
    y = y.copy()
    y[450] = 9
    path = tmp_path / "unseen.parquet"
    pq.write_table(pa.Table.from_pandas(frame(X, y, weight), preserve_index=False), path)
    result = run("evaluate", model_path, path, "--ignore", "weight", expect=1)
    assert result.stderr == (
        f"Error: {path}: `y` holds label 9 in row 451, which is not one of the model's "
        "classes (0, 1, 2).\n"
    )


def test_a_csv_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("caf\u00e9,label\n1,x\n2,y\n".encode("latin-1"))  # in the header
    result = run("fit", path, "-t", "label", "-o", tmp_path / "m", expect=1)
    assert result.stderr == (
        f"Error: {path}: is not UTF-8 text (unexpected end of data: b'\\xe9'); save it as UTF-8.\n"
    )
