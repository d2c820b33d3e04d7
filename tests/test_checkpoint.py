"""Checkpointed fits: killed with SIGKILL at any moment, resumed, the same optimum."""

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.datasets import load_digits

from softreg import SoftmaxRegression
from softreg._checkpoint import Checkpoint, CheckpointError, SolverState
from softreg._objective import in_memory
from softreg._solvers import minimize
from softreg._sources import CountingSource

ALPHA = 1e-2
# Both fits certify R - R* <= tol·R, so two of them agree on R to about tol relative. Gradient
# descent resumes to the last bit, so its looser tol (fewer, cheaper iterations) costs nothing.
TOL = {"gd": 1e-8, "newton-cg": 1e-12, "lbfgs": 1e-12}


def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16, y


# A child process that fits digits with a checkpoint and kills itself with SIGKILL: either in
# the callback of iteration KILL_AT (before that iterate is saved: one iteration lost), or in
# the middle of the KILL_AT-th save, after the temporary file is written and before the rename.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import softreg._model_io
    from sklearn.datasets import load_digits
    from softreg import SoftmaxRegression

    solver, path, kill_at, where = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    X, y = load_digits(return_X_y=True)

    def die(info):
        if where == "callback" and info.iteration == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    saves = [0]
    rename = os.replace

    def replace(source, target):
        saves[0] += 1
        if where == "rename" and saves[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        rename(source, target)

    softreg._model_io.os.replace = replace
    SoftmaxRegression(
        alpha={alpha}, solver=solver, tol={tol}[solver], checkpoint=path, callback=die
    ).fit(X / 16, y)
    """
).format(alpha=ALPHA, tol=TOL)


def killed_fit(tmp_path, solver, kill_at, where):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    path = tmp_path / f"{solver}.ckpt"
    args = [sys.executable, str(script), solver, str(path), str(kill_at), where]
    child = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    return path


@pytest.fixture(scope="module")
def reference():
    X, y = digits()
    return {
        solver: SoftmaxRegression(alpha=ALPHA, solver=solver, tol=TOL[solver]).fit(X, y)
        for solver in ("gd", "newton-cg", "lbfgs")
    }


@pytest.mark.parametrize(
    ("solver", "kill_at", "where"),
    [
        ("newton-cg", 3, "callback"),
        ("newton-cg", 4, "rename"),
        ("gd", 40, "callback"),
        ("lbfgs", 20, "callback"),
    ],
)
def test_fit_killed_mid_fit_then_resumed_reaches_the_same_optimum(
    tmp_path, reference, solver, kill_at, where
):
    path = killed_fit(tmp_path, solver, kill_at, where)
    X, y = digits()
    resumed = SoftmaxRegression(alpha=ALPHA, solver=solver, tol=TOL[solver], checkpoint=path)
    resumed.fit(X, y)
    expected = reference[solver]
    # A kill in the callback loses the iterate being recorded; one in a save keeps the one before.
    lost = 1 if where == "callback" else 2
    assert resumed.history_["objective"].size == resumed.n_iter_ + 1
    assert np.isclose(resumed.objective_, expected.objective_, rtol=1e-10, atol=0)
    if solver == "lbfgs":  # resumed with an empty memory: a different path to the optimum
        return
    # Gradient descent and Newton-CG continue exactly: the same iterates, to the last bit.
    assert resumed.n_iter_ == expected.n_iter_
    np.testing.assert_array_equal(resumed.coef_, expected.coef_)
    np.testing.assert_array_equal(
        resumed.history_["objective"][: kill_at - lost + 1],
        expected.history_["objective"][: kill_at - lost + 1],
    )


def test_a_kill_during_a_save_leaves_the_previous_checkpoint_readable(tmp_path):
    path = killed_fit(tmp_path, "newton-cg", 4, "rename")
    assert [p.name for p in tmp_path.glob(".newton-cg.ckpt.*.tmp")]  # the save that never landed
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(str(archive["header"]))
    state = Checkpoint(path, header["fingerprint"]).load()
    assert state.iteration == 2  # saves 1, 2, 3 are iterates 0, 1, 2; the 4th never landed
    assert state.history["objective"].size == 3


def test_a_checkpoint_for_other_hyper_parameters_is_refused(tmp_path):
    X, y = digits()
    path = tmp_path / "fit.ckpt"
    SoftmaxRegression(alpha=ALPHA, solver="newton-cg", checkpoint=path).fit(X, y)
    with pytest.raises(
        CheckpointError,
        match=r"fit\.ckpt: was written for a different problem: alpha is 0\.01 there and 0\.1 "
        r"here\. Delete the file to start afresh, or give another checkpoint file\.",
    ):
        SoftmaxRegression(alpha=0.1, solver="newton-cg", checkpoint=path).fit(X, y)
    with pytest.raises(CheckpointError, match="solver is 'newton-cg' there and 'lbfgs' here"):
        SoftmaxRegression(alpha=ALPHA, solver="lbfgs", checkpoint=path).fit(X, y)
    with pytest.raises(CheckpointError, match="n_samples is 1797 there and 1000 here"):
        SoftmaxRegression(alpha=ALPHA, solver="newton-cg", checkpoint=path).fit(X[:1000], y[:1000])
    # tol and max_iter do not change the optimum: a resumed run may ask for more.
    tighter = SoftmaxRegression(alpha=ALPHA, solver="newton-cg", tol=1e-12, checkpoint=path)
    assert tighter.fit(X, y).optimality_gap_bound_ <= 1e-12 * tighter.objective_


def test_a_checkpoint_for_changed_data_of_the_same_shape_is_refused(tmp_path):
    X, y = digits()
    path = tmp_path / "fit.ckpt"
    with pytest.warns(UserWarning, match="max_iter reached"):
        SoftmaxRegression(alpha=ALPHA, solver="gd", max_iter=3, checkpoint=path).fit(X, y)
    X[100, 30] += 0.5
    with pytest.raises(
        CheckpointError,
        match=r"fit\.ckpt: the objective at its saved coefficients was \S+ and is \S+ on this "
        r"data: the data changed since the checkpoint was written\. Delete the file",
    ):
        SoftmaxRegression(alpha=ALPHA, solver="gd", checkpoint=path).fit(X, y)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a zip file", r"is not a readable softreg checkpoint \(.+\); delete it"),
        (None, r"is not a softreg checkpoint; delete it or give another checkpoint file"),
    ],
)
def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path, content, message):
    path = tmp_path / "fit.ckpt"
    if content is None:
        with open(path, "wb") as handle:  # a path would get ".npz" appended
            np.savez(handle, header=np.array('{"format": "other"}'), theta=np.zeros(1))
    else:
        path.write_bytes(content)
    X, y = digits()
    with pytest.raises(CheckpointError, match=message):
        SoftmaxRegression(alpha=ALPHA, checkpoint=path).fit(X, y)
    assert not list(tmp_path.glob(".fit.ckpt.*"))


def test_the_checkpoint_parameter_is_validated():
    X, y = digits()
    with pytest.raises(ValueError, match=r"'checkpoint' parameter .* must be None or a file path"):
        SoftmaxRegression(checkpoint=3).fit(X, y)


def test_a_resumed_run_past_a_lowered_max_iter_stops_at_once(tmp_path):
    X, y = digits()
    path = tmp_path / "fit.ckpt"
    with pytest.warns(UserWarning, match="max_iter reached"):
        SoftmaxRegression(alpha=ALPHA, solver="gd", max_iter=6, checkpoint=path).fit(X, y)
    with pytest.warns(UserWarning, match="stopped after 6 iterations"):
        model = SoftmaxRegression(alpha=ALPHA, solver="gd", max_iter=4, checkpoint=path)
        model.fit(X, y)
    assert model.n_iter_ == 6 and model.history_["objective"].size == 7


def test_the_state_round_trips_and_the_fingerprint_adds_up(tmp_path):
    checkpoint = Checkpoint(tmp_path / "c.ckpt", {"data": "a"}).with_fingerprint(
        alpha=np.float64(1)
    )
    assert checkpoint.fingerprint == {"alpha": 1.0, "data": "a"}
    history = {name: np.arange(3.0) for name in ("objective", "gradient_norm", "gap_bound", "time")}
    theta = np.linspace(0, 1, 7)
    checkpoint.save(SolverState("gd", 2, theta, 0.5, history, {"trial_step": 0.25}))
    state = checkpoint.load()
    np.testing.assert_array_equal(state.theta, theta)
    assert (state.solver, state.iteration, state.objective) == ("gd", 2, 0.5)
    assert state.extra == {"trial_step": 0.25}
    np.testing.assert_array_equal(state.history["time"], np.arange(3.0))


def test_passes_and_rows_are_counted_for_the_callback():
    X, y = digits()
    seen = []
    SoftmaxRegression(alpha=ALPHA, solver="newton-cg", callback=seen.append).fit(X, y)
    passes = np.array([info.passes for info in seen])
    assert np.all(np.diff(passes) > 1)  # a gradient and at least a strided Hessian pass
    np.testing.assert_allclose([info.rows for info in seen], passes * X.shape[0], rtol=1e-15)
    # A fixed-step gradient descent makes exactly one pass per iteration, after the first
    # evaluation and the pass gathering the certificate's statistics.
    source = in_memory(X, y, n_outputs=10)
    counted = CountingSource(source)
    assert counted.shape() == source.shape()
    seen.clear()
    model = SoftmaxRegression(alpha=ALPHA, solver="gd", learning_rate=0.5, max_iter=5)
    with pytest.warns(UserWarning, match="max_iter reached"):
        model.set_params(callback=seen.append).fit(X, y)
    assert [info.passes for info in seen] == [2, 3, 4, 5, 6, 7]


def test_minimize_without_checkpoint_or_callback_leaves_the_source_alone():
    X, y = digits()
    from softreg._objective import Objective, SoftmaxLoss

    source = in_memory(X, y, n_outputs=10)
    objective = Objective(SoftmaxLoss(10, 0.0), source, alpha=ALPHA, fit_intercept=True)
    minimize(
        objective,
        np.zeros(objective.n_params),
        solver="newton-cg",
        tol=1e-6,
        max_iter=50,
        callback=lambda info: None,
    )
    assert objective.source is source
