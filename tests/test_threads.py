"""Tests of softreg._threads: which BLAS pools a fit limits, and that limits are undone."""

from pathlib import Path

import numpy as np
import pytest
import scipy
from threadpoolctl import ThreadpoolController, threadpool_limits

import softreg._solvers as solvers
import softreg._threads as threads_module
from softreg._objective import Objective, SoftmaxLoss, in_memory
from softreg._threads import SINGLE_THREAD_BELOW, blas_threads, scipy_blas_single_thread

SCIPY_ROOT = str(Path(scipy.__file__).resolve().parent)


def blas_threads_by_owner():
    """{"scipy": [threads...], "other": [threads...]} over the loaded BLAS libraries."""
    owners = {"scipy": [], "other": []}
    for library in ThreadpoolController().lib_controllers:
        if library.user_api == "blas":
            own = str(Path(library.filepath).resolve()).startswith(SCIPY_ROOT)
            owners["scipy" if own else "other"].append(library.num_threads)
    return owners


def test_scipy_blas_single_thread_limits_only_scipys_pool():
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads_by_owner()
        if not before["scipy"]:
            pytest.skip("scipy shares NumPy's BLAS here: there is no second pool to limit")
        with scipy_blas_single_thread():
            inside = blas_threads_by_owner()
        after = blas_threads_by_owner()
    assert inside["scipy"] == [1] * len(before["scipy"])
    assert inside["other"] == before["other"]  # NumPy's pool keeps its threads
    assert after == before


def test_scipy_blas_limit_is_undone_when_the_fit_raises():
    before = blas_threads_by_owner()
    with pytest.raises(RuntimeError, match="boom"), scipy_blas_single_thread():
        raise RuntimeError("boom")
    assert blas_threads_by_owner() == before


def test_lbfgs_runs_scipy_with_one_thread(monkeypatch):
    """The limit is in force while scipy's L-BFGS-B runs, and only then."""
    seen = []
    original = solvers._lbfgsb

    def spy(*args, **kwargs):
        seen.append(blas_threads_by_owner()["scipy"])
        return original(*args, **kwargs)

    monkeypatch.setattr(solvers, "_lbfgsb", spy)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 3)), np.arange(60) % 3
    objective = Objective(SoftmaxLoss(3), in_memory(X, y), alpha=0.1, fit_intercept=True)
    result = solvers.minimize(
        objective, np.zeros(objective.n_params), solver="lbfgs", tol=1e-8, max_iter=100
    )
    assert result.converged
    assert len(seen) == 1 and all(threads == 1 for threads in seen[0])


@pytest.mark.parametrize(
    ("shape", "limited"),
    [((1000, 100, 10), True), ((10**5, 100, 10), False)],
    ids=["small", "large"],
)
def test_blas_threads_single_below_the_threshold(shape, limited, monkeypatch):
    monkeypatch.setattr(threads_module, "_cores_taken", lambda: False)  # a quiet machine
    assert (shape[0] * shape[1] * shape[2] < SINGLE_THREAD_BELOW) == limited
    with threadpool_limits(limits=2, user_api="blas"), blas_threads(*shape):
        controllers = ThreadpoolController().lib_controllers
        threads = {lib.num_threads for lib in controllers if lib.user_api == "blas"}
    assert threads == ({1} if limited else {2})


@pytest.mark.parametrize(("load", "limited"), [(0.5, False), (2.9, False), (3.0, True)])
def test_blas_threads_single_while_other_work_takes_the_cores(load, limited, monkeypatch):
    """Above the threshold, two threads only while the load average leaves a core free."""
    monkeypatch.setattr(threads_module.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads_module.os, "getloadavg", lambda: (load, 0.0, 0.0))
    with threadpool_limits(limits=2, user_api="blas"), blas_threads(10**5, 100, 10):
        controllers = ThreadpoolController().lib_controllers
        threads = {lib.num_threads for lib in controllers if lib.user_api == "blas"}
    assert threads == ({1} if limited else {2})


def test_no_load_average_counts_as_a_quiet_machine(monkeypatch):
    def unavailable():
        raise OSError("no load average")

    monkeypatch.setattr(threads_module.os, "getloadavg", unavailable)
    assert threads_module._cores_taken() is False


def test_loaded_libraries_are_scanned_once_per_process(monkeypatch):
    """threadpoolctl's scan (2–25 ms) runs once, not in every fit."""
    import threadpoolctl

    from softreg import SoftmaxRegression

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 3)), np.arange(60) % 3
    SoftmaxRegression(solver="lbfgs").fit(X, y)  # the first fit may scan
    scans = []
    original = threadpoolctl.ThreadpoolController.__init__

    def counting(self, *args, **kwargs):
        scans.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(threadpoolctl.ThreadpoolController, "__init__", counting)
    for solver in ("lbfgs", "newton-cg"):  # both limit BLAS threads; L-BFGS scipy's pool too
        assert SoftmaxRegression(solver=solver).fit(X, y).converged_
    assert scans == []
