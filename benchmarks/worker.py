"""What runs in a fresh child process: ``python -m benchmarks.worker SPEC.json OUT.json``.

One child per measurement keeps each tool's memory and thread pools apart: its peak memory
is read from ``/proc/self/status`` (``VmHWM``, reset before each fit through
``/proc/self/clear_refs``) minus the resident size just before the fit, so it counts BLAS
and PyTorch allocations that ``tracemalloc`` misses.

Kinds of spec:

- ``machine``: read bandwidth and GEMM rates (the roofline), threadpoolctl's report;
- ``reference``: the case's reference optimum (cached on disk);
- ``ladder``: one tool on one case, fitted from scratch at ``max_iter`` = 1, 2, 3, 4, 6, 9,
  … (every tolerance at its minimum), each fit timed end to end and graded by the shared
  evaluator; the first rung within each target gap is then timed again for the median;
- ``certified``: softreg with ``tol`` set to each target, stopping on its own certificate;
- ``pass``: one loss+gradient pass of softreg, scikit-learn and PyTorch;
- ``profile``: cProfile of one softreg fit.
"""

from __future__ import annotations

import cProfile
import io
import json
import math
import os
import pstats
import re
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

from benchmarks import datasets, objective, passes
from benchmarks.tools import TOOLS, Fitted, TraceStopError


def _status_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1))


def _reset_peak() -> None:
    # Writing 5 resets VmHWM to the current resident size (Linux ≥ 4.0).
    Path("/proc/self/clear_refs").write_text("5")


class PeakMemory:
    """Extra peak resident memory of a block of code, in MB."""

    def __enter__(self):
        self.before = _status_kib("VmRSS")
        _reset_peak()
        return self

    def __exit__(self, *exc_info):
        self.extra_mb = (_status_kib("VmHWM") - self.before) * 1024 / 1e6
        return False


def thread_report() -> list[dict]:
    """threadpoolctl's view of the thread pools loaded in this process."""
    from threadpoolctl import threadpool_info

    keys = ("internal_api", "prefix", "version", "num_threads", "architecture")
    return [{key: pool.get(key) for key in keys} for pool in threadpool_info()]


def _set_threads(threads: int, with_torch: bool):
    from threadpoolctl import threadpool_limits

    if with_torch:
        import torch

        torch.set_num_threads(threads)
    return threadpool_limits(limits=threads)


def next_max_iter(max_iter: int) -> int:
    """The ladder: 1, 2, 3, 4, 6, 9, 14, 21, … (a factor of about 1.5 per rung)."""
    return max(max_iter + 1, round(max_iter * 1.5))


def _rows_per_second(predict_proba, X) -> float:
    timing = passes.time_call(lambda: predict_proba(X), budget=0.5, min_repeats=3, max_repeats=50)
    return X.shape[0] / timing["median"]


def _one_row_seconds(predict_proba, X) -> float:
    """Median time of ``predict_proba`` on one row (a serving request), input checks included."""
    row = X[:1]
    timing = passes.time_call(
        lambda: predict_proba(row), budget=0.2, min_repeats=50, max_repeats=2000
    )
    return timing["median"]


# A traced fit is graded again once its time has grown by this factor (see Trace).
TRACE_TIME_FACTOR = 1.1


class Trace:
    """One fit of a traced tool (``Tool.traced``), its iterates graded off the clock.

    The tool calls ``trace(count, parameters)`` at each iterate (``count``: its iteration).
    At the counts of the ladder's schedule (1, 2, 3, 4, 6, 9, … from ``first``), whenever the
    fit's time has grown by 10 % since the last grading, and once the budget is spent, the
    clock is stopped, ``parameters()`` copied and graded by the shared evaluator, and the
    clock restarted: a rung's ``seconds`` is the fit's time to that iterate with the grading
    left out. It raises ``TraceStopError`` when the gap reaches
    ``target`` or the budget is spent. One such fit replaces the ladder's rungs beyond
    ``first``, which would cost two to three times as much (each rung refits from the start).
    """

    def __init__(self, grade, target: float, budget: float, first: int):
        self.grade, self.target, self.budget, self.next = grade, target, budget, first
        self.rungs: list[dict] = []
        self.best: tuple | None = None
        self.start = time.perf_counter()
        self.paused = 0.0
        self.last_graded = math.inf  # no grading by time before the first at a count

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def record(self, count: int, coef, intercept, seconds: float) -> float:
        value, gap = self.grade(coef, intercept)
        self.rungs.append(
            {
                "max_iter": count,
                "n_iter": count,
                "seconds": seconds,
                "objective": value,
                "gap": gap,
                "traced": True,
            }
        )
        if self.best is None or value <= self.best[0]:
            self.best = (value, coef, intercept, count, len(self.rungs) - 1)
        return gap

    def __call__(self, count: int, parameters) -> None:
        seconds = self.elapsed()
        spent = seconds > self.budget
        # Graded at the schedule's counts, and whenever the fit's time has grown by a tenth
        # since the last grading: Newton's late iterations each cost many early ones.
        late = seconds > TRACE_TIME_FACTOR * self.last_graded
        if count < self.next and not late and not spent:
            return
        paused_at = time.perf_counter()
        coef, intercept = parameters()
        gap = self.record(count, coef, intercept, seconds)
        self.next = next_max_iter(count)
        self.last_graded = seconds
        self.paused += time.perf_counter() - paused_at
        if gap <= self.target or spent:
            raise TraceStopError(f"reached {self.target:g}" if gap <= self.target else "budget")


def run_ladder(spec: dict) -> dict:
    data = datasets.load(spec["dataset"])
    tool = TOOLS[spec["tool"]]
    _set_threads(spec["threads"], tool.family == "torch")
    X, y, n_classes, alpha = data.X_train, data.y_train, data.n_classes, spec["alpha"]
    reference = spec["reference_objective"]
    targets = spec["targets"]
    # The evaluator works in float64: convert a float32 X once, outside the timed fits.
    X_eval = X.astype(np.float64) if X.dtype != np.float64 else X
    # A case without intercepts: every fit has b = 0, graded by the same evaluator at b = 0.
    options = {} if spec.get("fit_intercept", True) else {"fit_intercept": False}

    # Warm-up on a few rows: imports, thread pools and first-call costs stay out of the times.
    warm = min(X.shape[0], 2000)
    warmed = tool.fit(X[:warm], y[:warm], n_classes, alpha, 2, **options)

    def grade(coef, intercept):
        value = objective.objective_value(X_eval, y, coef, intercept, alpha)
        return value, (value - reference) / abs(reference)

    rungs, kept, total, max_iter, stop = [], {}, 0.0, 1, ""
    while True:
        with PeakMemory() as memory:
            start = time.perf_counter()
            fitted = tool.fit(X, y, n_classes, alpha, max_iter, **options)
            seconds = time.perf_counter() - start
        value, gap = grade(fitted.coef, fitted.intercept)
        rungs.append(
            {
                "max_iter": max_iter,
                "n_iter": fitted.n_iter,
                "seconds": seconds,
                "objective": value,
                "gap": gap,
                "peak_extra_mb": memory.extra_mb,
            }
        )
        if not kept or value <= kept["value"]:
            kept = {"value": value, "fitted": fitted, "rung": len(rungs) - 1}
        del fitted
        total += seconds
        best_before = min((r["objective"] for r in rungs[:-2]), default=math.inf)
        following = next_max_iter(max_iter)
        remaining = spec["cap_seconds"] - total
        if gap <= min(targets):
            stop = f"reached {min(targets):g}"
        elif tool.traced and seconds > spec.get("trace_after_seconds", 1.0) and remaining > seconds:
            stop = "trace"
        elif len(rungs) >= 4 and min(r["objective"] for r in rungs[-2:]) >= best_before - (
            1e-14 * abs(reference)
        ):
            stop = "stalled: two more rungs gave no lower objective"
        elif total + seconds * following / max_iter > spec["cap_seconds"]:
            stop = f"time budget of {spec['cap_seconds']:g} s"
        elif following > spec["max_iter_limit"]:
            stop = f"max_iter limit {spec['max_iter_limit']}"
        if stop:
            break
        max_iter = following

    if stop == "trace":
        trace = Trace(grade, min(targets), remaining, next_max_iter(max_iter))
        with PeakMemory() as memory:
            trace.start = time.perf_counter()
            try:
                fitted = tool.fit(
                    X, y, n_classes, alpha, spec["max_iter_limit"], trace=trace, **options
                )
            except TraceStopError as reason:
                stop = f"one traced fit: {reason}"
            else:
                seconds = trace.elapsed()
                trace.record(fitted.n_iter, fitted.coef, fitted.intercept, seconds)
                stop = "one traced fit: the tool's own stop"
                del fitted
        for rung in trace.rungs:
            rung["peak_extra_mb"] = memory.extra_mb
        offset = len(rungs)
        rungs.extend(trace.rungs)
        if trace.best is not None and trace.best[0] <= kept["value"]:
            value, coef, intercept, count, index = trace.best
            # The tool's predict_proba from its warm-up fit: the same shapes, the same speed.
            model = Fitted(coef, intercept, count, warmed.predict_proba)
            kept = {"value": value, "fitted": model, "rung": offset + index}

    # Time again the first rung within each target (more often when it is short); a target's
    # time is that of the fastest fit within it, by the median of each fit's timings.
    for target in targets:
        index = next((i for i, r in enumerate(rungs) if r["gap"] <= target), None)
        if index is None or "times" in rungs[index]:
            continue
        rung = rungs[index]
        rung["times"] = [rung["seconds"]]
        if rung["seconds"] <= spec["retime_max_seconds"]:
            count = max(spec["repeats"], min(20, math.ceil(0.5 / max(rung["seconds"], 1e-6))))
            for _ in range(count - 1):
                start = time.perf_counter()
                fitted = tool.fit(X, y, n_classes, alpha, rung["max_iter"], **options)
                rung["times"].append(time.perf_counter() - start)
                del fitted
    reached = {}
    for target in targets:
        within = [
            (statistics.median(r.get("times", [r["seconds"]])), i)
            for i, r in enumerate(rungs)
            if r["gap"] <= target
        ]
        if within:
            seconds, index = min(within)
            reached[f"{target:g}"] = {
                "rung": index,
                "seconds": seconds,
                "peak_extra_mb": rungs[index]["peak_extra_mb"],
            }
    model = kept["fitted"]
    result = {
        "rungs": rungs,
        "stop": stop,
        "reached": reached,
        "metrics_rung": kept["rung"],
        "holdout": objective.holdout_metrics(data.X_test, data.y_test, model.coef, model.intercept),
        "predict_proba_rows_per_second": _rows_per_second(model.predict_proba, data.X_test),
        "predict_proba_one_row_us": 1e6 * _one_row_seconds(model.predict_proba, data.X_test),
        "peak_extra_mb": max(r["peak_extra_mb"] for r in rungs),
        "threadpool": thread_report(),
    }
    return result


def run_certified(spec: dict) -> dict:
    """softreg stopped by its own certificate at ``tol`` = each target."""
    data = datasets.load(spec["dataset"])
    _set_threads(spec["threads"], False)
    X, y, n_classes, alpha = data.X_train, data.y_train, data.n_classes, spec["alpha"]
    from softreg import SoftmaxRegression

    tool = TOOLS["softreg"]
    tool.fit(X[:2000], y[:2000], n_classes, alpha, 2)
    fits = []
    for tol in spec["targets"]:
        with PeakMemory() as memory:
            start = time.perf_counter()
            model = SoftmaxRegression(alpha=alpha, tol=tol, max_iter=100000)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model.fit(X, y)
            seconds = time.perf_counter() - start
        value = objective.objective_value(X, y, model.coef_, model.intercept_, alpha)
        times = [seconds]
        if seconds <= spec["retime_max_seconds"]:
            for _ in range(spec["repeats"] - 1):
                start = time.perf_counter()
                SoftmaxRegression(alpha=alpha, tol=tol, max_iter=100000).fit(X, y)
                times.append(time.perf_counter() - start)
        fits.append(
            {
                "tol": tol,
                "seconds": statistics.median(times),
                "n_iter": int(model.n_iter_),
                "solver": model.solver_,
                "converged": bool(model.converged_),
                "gap_bound": float(model.optimality_gap_bound_),
                "objective": value,
                "gap": (value - spec["reference_objective"]) / abs(spec["reference_objective"]),
                "peak_extra_mb": memory.extra_mb,
                "warnings": [str(w.message)[:300] for w in caught],
            }
        )
        if seconds > spec["cap_seconds"]:
            break
    return {"fits": fits, "threadpool": thread_report()}


def run_pass(spec: dict) -> dict:
    data = datasets.load(spec["dataset"])
    threads = spec["threads"]
    _set_threads(threads, True)
    saved = np.load(spec["reference_path"])
    coef, intercept = saved["coef"], saved["intercept"]
    X, y, n_classes, alpha = data.X_train, data.y_train, data.n_classes, spec["alpha"]
    runners = {
        "softreg": passes.softreg_pass(X, y, n_classes, coef, intercept, alpha),
        "sklearn": passes.sklearn_pass(X, y, n_classes, coef, intercept, alpha, threads),
        "torch": passes.torch_pass(X, y, n_classes, coef, intercept, alpha),
    }
    timings = {}
    for name, run in runners.items():
        with PeakMemory() as memory:
            value = run()
        timing = passes.time_call(run, budget=spec["budget"], min_repeats=3)
        timings[name] = {**timing, "objective": value, "peak_extra_mb": memory.extra_mb}
    work = passes.pass_work(X, n_classes)
    profile = _profile(lambda: [runners["softreg"]() for _ in range(3)])
    return {
        "timings": timings,
        "work": work,
        "softreg_profile": profile,
        "threadpool": thread_report(),
    }


def run_machine(spec: dict) -> dict:
    import torch

    result = {"threadpool": thread_report(), "rates": {}}
    for threads in spec["thread_counts"]:
        with _set_threads(threads, True):
            result["rates"][str(threads)] = passes.machine_rates(threads)
    result["torch_parallel_info"] = torch.__config__.parallel_info()
    return result


def run_reference(spec: dict) -> dict:
    case = datasets.Case(spec["dataset"], spec["alpha"], spec.get("fit_intercept", True))
    data = datasets.load(case.dataset)
    _set_threads(spec["threads"], False)
    messages = []
    reference = objective.reference_optimum(
        case, data, time_budget=spec["time_budget"], log=messages.append
    )
    difference = objective.check_evaluators(
        data.X_train, data.y_train, reference["coef"], reference["intercept"], case.alpha
    )
    return {
        "objective": reference["objective"],
        "gradient_norm": reference["gradient_norm"],
        "certified_gap": reference["certified_gap"],
        "estimated_gap": reference["estimated_gap"],
        "method": reference["method"],
        "seconds": reference["seconds"],
        "cached": reference["cached"],
        "path": reference["path"],
        "evaluator_difference": difference,
        "evaluator": objective.evaluator_name(),
        "holdout": objective.holdout_metrics(
            data.X_test, data.y_test, reference["coef"], reference["intercept"]
        ),
        "log": messages,
        "data": describe(data),
    }


def describe(data: datasets.Dataset) -> dict:
    n_samples, n_features, n_classes = data.shape
    return {
        "n_samples": n_samples,
        "n_features": n_features,
        "n_classes": n_classes,
        "n_test": data.X_test.shape[0],
        "dtype": str(data.dtype),
        "sparse": data.is_sparse,
        "nnz": int(data.X_train.nnz) if data.is_sparse else n_samples * n_features,
        "x_bytes": data.x_nbytes(),
        "source": data.source,
    }


def _profile(function, rows: int = 12) -> dict:
    """cProfile of ``function()``: wall time and the functions with the most own time."""
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    function()
    profiler.disable()
    seconds = time.perf_counter() - start
    stats = pstats.Stats(profiler, stream=io.StringIO())
    top = [
        {
            "function": f"{Path(filename).name}:{line}({name})",
            "calls": calls,
            "own_seconds": own,
            "cumulative_seconds": cumulative,
        }
        for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items()
    ]
    top.sort(key=lambda row: row["own_seconds"], reverse=True)
    return {"seconds": seconds, "top": top[:rows]}


def run_profile(spec: dict) -> dict:
    data = datasets.load(spec["dataset"])
    _set_threads(spec["threads"], False)
    X, y, n_classes, alpha = data.X_train, data.y_train, data.n_classes, spec["alpha"]
    fit = TOOLS["softreg"].fit
    fit(X[:2000], y[:2000], n_classes, alpha, 2)
    profile = _profile(lambda: fit(X, y, n_classes, alpha, spec["max_iter"]))
    return {"max_iter": spec["max_iter"], **profile}


KINDS = {
    "ladder": run_ladder,
    "certified": run_certified,
    "pass": run_pass,
    "machine": run_machine,
    "reference": run_reference,
    "profile": run_profile,
}


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    try:
        result = {"ok": True, **KINDS[spec["kind"]](spec)}
    except Exception as error:  # reported to the parent, which records it and goes on
        result = {"ok": False, "error": f"{type(error).__name__}: {error}"[:2000]}
        result["traceback"] = traceback.format_exc()[-4000:]
    result["child_pid"] = os.getpid()
    Path(argv[1]).write_text(json.dumps(result, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
