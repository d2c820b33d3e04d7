"""Render a run's results: the ratio summary, ``BENCHMARKS.md`` and the gap-vs-time plot.

``BENCHMARKS.md`` is written only by a full run; its hand-written section between
``<!-- levers:start -->`` and ``<!-- levers:end -->``, and the sections other benchmarks
write between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` (``startup`` from
``python -m benchmarks.startup``, ``online`` from ``python -m benchmarks.online``), are
carried over from the
existing file.
"""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
from collections import defaultdict
from importlib import metadata
from pathlib import Path

from benchmarks import out_of_core
from benchmarks.datasets import REPO_ROOT, RESULTS_DIR
from softreg._objective import _CURVATURE_CACHE_BYTES as CURVATURE_CACHE_BYTES
from softreg._sources import _BLOCK_ENTRIES as BLOCK_ENTRIES

BENCHMARKS_MD = REPO_ROOT / "BENCHMARKS.md"
PLOT = REPO_ROOT / "benchmarks" / "objective_gap_vs_time.png"
LEVERS_START, LEVERS_END = "<!-- levers:start -->", "<!-- levers:end -->"
STARTUP_START, STARTUP_END = "<!-- startup:start -->", "<!-- startup:end -->"
GOALS = {"sklearn": 3.0, "torch": 2.0, "pass_sklearn": 1.5, "pass_torch": 1.0, "roofline": 2.0}
PACKAGES = (
    "softreg",
    "numpy",
    "numba",
    "scipy",
    "scikit-learn",
    "torch",
    "threadpoolctl",
    "matplotlib",
)


# --- facts about the machine ------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def _git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit


def platform_info() -> dict:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "python": platform.python_version(),
        "system": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "versions": versions,
        "commit": _git_commit(),
        "load_average_start": os.getloadavg(),
    }


def merge(parts: list[dict]) -> dict:
    """One full run's results from the parts it was run in (each a ``--cases`` run)."""
    merged = {**parts[0], "cases": {}, "passes": {}, "skipped": {}, "profiles": {}}
    for part in parts:
        for field in ("cases", "passes", "skipped", "profiles"):
            merged[field].update(part.get(field, {}))
    merged["mode"] = "full"
    merged["command"] = "; ".join(part["command"] for part in parts)
    merged["total_seconds"] = sum(part.get("total_seconds", 0.0) for part in parts)
    merged["parts"] = [
        {
            **{key: part.get(key) for key in ("command", "started", "finished", "config")},
            "commit": part["platform"]["commit"],
        }
        for part in parts
    ]
    merged["load_average_end"] = parts[-1].get("load_average_end", [])
    merged["config"] = dict(parts[0]["config"])
    for key, value in merged["config"].items():
        values = [part["config"].get(key) for part in parts]
        if any(other != value for other in values) and isinstance(value, int | float):
            merged["config"][key] = " / ".join(f"{v:g}" for v in values) + " (by part)"
    return merged


# --- reading the results ------------------------------------------------------------------


def _key(target: float) -> str:
    return f"{target:g}"


def time_to(entry: dict | None, target: float):
    """``(seconds, exact)``: exact is False for a lower bound (target not reached)."""
    if not entry or not entry.get("ok"):
        return None
    reached = entry["reached"].get(_key(target))
    if reached:
        return reached["seconds"], True
    return entry["rungs"][-1]["seconds"], False


def format_time(value) -> str:
    if value is None:
        return "—"
    seconds, exact = value
    text = f"{seconds:.3g} s" if seconds >= 0.1 else f"{seconds * 1e3:.3g} ms"
    return text if exact else f"> {text}"


def speedup(peer, softreg):
    """``(ratio, relation)`` with relation '=', '>' or '<'; None when nothing is known."""
    if peer is None or softreg is None:
        return None
    (p, p_exact), (s, s_exact) = peer, softreg
    if p_exact and s_exact:
        return p / s, "="
    if s_exact:
        return p / s, ">"
    if p_exact:
        return p / s, "<"
    return None


def format_speedup(value) -> str:
    if value is None:
        return "—"
    ratio, relation = value
    prefix = {"=": "", ">": "> ", "<": "< "}[relation]
    return f"{prefix}{ratio:.2f}×"


def verdict(value, goal: float) -> str:
    if value is None:
        return "—"
    ratio, relation = value
    if relation in "=>" and ratio >= goal:
        return "met"
    if relation in "=<" and ratio < goal:
        return f"NOT met ({ratio / goal:.2f} of goal)"
    return "unknown"


def _entries(record: dict, family: str, threads: int, threaded_only=False) -> dict:
    """Entries of ``family`` at ``threads`` (sag and saga, single-threaded, count for any)."""
    found = {}
    for key, entry in record["entries"].items():
        tool, entry_threads = key.rsplit("@", 1)
        if tool.startswith(family) and not tool.endswith("certified"):
            uses_threads = tool not in ("sklearn-sag", "sklearn-saga")
            if int(entry_threads) == threads or not (uses_threads or threaded_only):
                found[tool] = entry
    return found


def best_peer(record: dict, family: str, threads: int, target: float, threaded_only=False):
    """The best tool of ``family`` at ``threads``: ``(name, time)``.

    The fastest among those that reached ``target``; if none did, the one that came
    closest (lowest final gap), with its lower bound.
    """
    entries = {
        name: entry
        for name, entry in _entries(record, family, threads, threaded_only).items()
        if time_to(entry, target) is not None
    }
    if not entries:
        return None, None
    exact = {name: time_to(entry, target) for name, entry in entries.items()}
    exact = {name: value for name, value in exact.items() if value[1]}
    if exact:
        name = min(exact, key=lambda n: exact[n][0])
        return name, exact[name]
    name = min(entries, key=lambda n: entries[n]["rungs"][-1]["gap"])
    return name, time_to(entries[name], target)


def _all_threads(results: dict) -> int:
    return results["config"]["all_threads"]


def _thread_counts(results: dict) -> list[int]:
    counts = [_all_threads(results)]
    if results["config"]["single_thread_tools"] and counts[0] > 1:
        counts.append(1)
    return counts


def measurable(record: dict, target: float) -> bool:
    """Whether the reference optimum is accurate enough to tell a gap of ``target``."""
    return target >= 10 * record["reference"].get("estimated_gap", 0.0)


def _time_and_gap(entry, target) -> str:
    """The time to ``target``, with the gap reached when it was not reached."""
    value = time_to(entry, target)
    if value is None or value[1]:
        return format_time(value)
    return f"{format_time(value)} (gap {entry['rungs'][-1]['gap']:.0e})"


def race_rows(results: dict, threads: int, target: float = 1e-6) -> list[dict]:
    rows = []
    for name, record in results["cases"].items():
        if not record.get("entries"):
            continue
        label = name if measurable(record, target) else f"{name} †"
        softreg_entry = record["entries"].get(f"softreg@{threads}")
        softreg = time_to(softreg_entry, target)
        sklearn_name, sklearn_time = best_peer(record, "sklearn", threads, target)
        torch_entry = record["entries"].get(f"torch-lbfgs@{threads}")
        torch_time = time_to(torch_entry, target)
        sklearn_entry = _entries(record, "sklearn", threads).get(sklearn_name)
        rows.append(
            {
                "case": name,
                "label": label,
                "text": {
                    "softreg": _time_and_gap(softreg_entry, target),
                    "sklearn": _time_and_gap(sklearn_entry, target),
                    "torch": _time_and_gap(torch_entry, target),
                },
                "softreg": softreg,
                "sklearn_name": sklearn_name,
                "sklearn": sklearn_time,
                "torch": torch_time,
                "vs_sklearn": speedup(sklearn_time, softreg),
                "vs_torch": speedup(torch_time, softreg),
            }
        )
    return rows


def time_goal_misses(results: dict) -> dict:
    """Cases where softreg misses (or cannot be shown to meet) a time-to-1e-6 goal."""
    misses = {}
    for row in race_rows(results, _all_threads(results)):
        problems = []
        for peer, goal in (("sklearn", GOALS["sklearn"]), ("torch", GOALS["torch"])):
            text = verdict(row[f"vs_{peer}"], goal)
            if text.startswith("NOT") or (row["softreg"] and not row["softreg"][1]):
                problems.append(f"vs {peer}: {format_speedup(row[f'vs_{peer}'])}")
        if problems:
            misses[row["case"]] = "; ".join(problems)
    return misses


def ratio_summary(results: dict) -> str:
    lines = []
    for threads in _thread_counts(results):
        lines.append(
            f"Time to 1e-6 relative gap, {threads} thread(s): speed-up of softreg "
            f"(goal ≥{GOALS['sklearn']:g}× vs best scikit-learn, ≥{GOALS['torch']:g}× vs torch)"
        )
        header = f"{'case':44s} {'softreg':>10s} {'best sklearn':>30s} {'×':>8s} "
        lines.append(header + f"{'torch':>10s} {'×':>8s}")
        for row in race_rows(results, threads):
            sklearn = f"{row['sklearn_name'] or ''} {format_time(row['sklearn'])}"
            lines.append(
                f"{row['case']:44s} {format_time(row['softreg']):>10s} {sklearn:>30s} "
                f"{format_speedup(row['vs_sklearn']):>8s} {format_time(row['torch']):>10s} "
                f"{format_speedup(row['vs_torch']):>8s}"
            )
        lines.append("")
    for dataset_threads, result in results["passes"].items():
        if result.get("ok"):
            timings = result["timings"]
            soft = timings["softreg"]["median"]
            lines.append(
                f"pass {dataset_threads:40s} softreg {soft * 1e3:8.3g} ms   "
                f"sklearn/softreg {timings['sklearn']['median'] / soft:5.2f}   "
                f"torch/softreg {timings['torch']['median'] / soft:5.2f}"
            )
    for dataset, message in results["skipped"].items():
        lines.append(f"skipped {dataset}: {message}")
    return "\n".join(lines)


# --- BENCHMARKS.md -----------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _rates_lines(results: dict) -> list[str]:
    machine = results.get("machine", {})
    if not machine.get("ok"):
        return [f"Roofline measurement failed: {machine.get('error')}"]
    rows = []
    for threads, rates in machine["rates"].items():
        for dtype in ("float64", "float32"):
            gemm = rates["gemm"][dtype]
            rows.append(
                [
                    threads,
                    f"{rates['read_bandwidth'] / 1e9:.1f}",
                    dtype,
                    f"{gemm['numpy'] / 1e9:.1f}",
                    f"{gemm.get('torch', float('nan')) / 1e9:.1f}",
                ]
            )
    return _table(
        ["threads", "read GB/s", "dtype", "GEMM GFLOP/s NumPy", "GEMM GFLOP/s PyTorch"], rows
    )


def _pass_rows(results: dict) -> list[list[str]]:
    from benchmarks.passes import roofline_seconds

    machine = results.get("machine", {})
    rows = []
    for key, result in results["passes"].items():
        dataset, threads = key.rsplit("@", 1)
        if not result.get("ok"):
            rows.append([dataset, threads, "error", "", "", "", "", "", "", "", ""])
            continue
        timings = result["timings"]
        soft, sk, th = (timings[name]["median"] for name in ("softreg", "sklearn", "torch"))
        record = next(r for r in results["cases"].values() if r.get("dataset") == dataset)
        data = record["reference"]["data"]
        roof = (
            roofline_seconds(result["work"], machine["rates"][threads], data["dtype"])
            if machine.get("ok")
            else None
        )
        ratio_roof = soft / roof["seconds"] if roof else float("nan")
        dense = not data["sparse"]
        roof_verdict = (
            ("met" if ratio_roof <= GOALS["roofline"] else "NOT met") if dense else "(sparse)"
        )
        spread = max(v["objective"] for v in timings.values()) - min(
            v["objective"] for v in timings.values()
        )
        rows.append(
            [
                dataset,
                threads,
                f"{soft * 1e3:.3g}",
                f"{sk * 1e3:.3g}",
                f"{th * 1e3:.3g}",
                f"{sk / soft:.2f}× ({'met' if sk / soft >= GOALS['pass_sklearn'] else 'NOT met'})",
                f"{th / soft:.2f}× ({'met' if th / soft >= GOALS['pass_torch'] else 'NOT met'})",
                f"{roof['seconds'] * 1e3:.3g} ({roof['bound']})" if roof else "—",
                f"{ratio_roof:.2f}× ({roof_verdict})",
                f"{timings['softreg']['peak_extra_mb']:.0f} / "
                f"{timings['sklearn']['peak_extra_mb']:.0f} / "
                f"{timings['torch']['peak_extra_mb']:.0f}",
                f"{spread:.1e}",
            ]
        )
    return rows


def _memory_verdict(entry: dict, data: dict) -> str:
    """softreg's extra peak memory against O(block × n_classes) plus parameter-sized state."""
    n_params = (data["n_features"] + 1) * data["n_classes"]
    itemsize = 4 if data["dtype"] == "float32" else 8
    logits_mb = data["n_samples"] * data["n_classes"] * itemsize / 1e6
    # Allowance: a few block-sized arrays, Newton-CG's fixed budget for cached block
    # probabilities, L-BFGS/Newton state of 50 parameter vectors (float64), and 32 MB of
    # interpreter and library slack.
    allowance = (
        6 * BLOCK_ENTRIES * 8 / 1e6 + CURVATURE_CACHE_BYTES / 1e6 + 50 * n_params * 8 / 1e6 + 32
    )
    extra = entry["peak_extra_mb"]
    status = "met" if extra <= allowance else "NOT met"
    return f"{extra:.0f} MB (allowance {allowance:.0f}, full logits {logits_mb:.0f}): {status}"


def portable_source(source: str) -> str:
    """A data set's description without the absolute paths of the machine that ran it.

    Results recorded before the loaders named data sets by their public names say where
    the files lay (e.g. ``LIBSVM files in /data/letter (dense)``); BENCHMARKS.md is read
    elsewhere, so a path keeps only its last component.

    >>> portable_source("LIBSVM files in /srv/shared/data/letter (dense)")
    'LIBSVM files in letter (dense)'
    >>> portable_source("Debian dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), x")
    'Debian dataset-fashion-mnist (fashion-mnist), x'
    """
    return re.sub(r"(?<![\w.])/(?:[^\s/()]+/)*([^\s/()]+)", r"\1", source)


def _ladder_rows(entries: dict, results: dict):
    """``(entry, cells)`` per ladder entry, ``cells`` being the tool, the threads, the time to
    each target and the best gap, or the error (certified entries are left out)."""
    for key, entry in entries.items():
        tool, threads = key.rsplit("@", 1)
        if tool.endswith("certified"):
            continue
        if not entry.get("ok"):
            cells = [tool, threads, "error: " + entry.get("error", "")[:80], "", "", ""]
        else:
            cells = [
                tool,
                threads,
                *(format_time(time_to(entry, t)) for t in results["targets"]),
                f"{entry['rungs'][-1]['gap']:.1e}",
            ]
        yield entry, cells


def _case_section(name: str, record: dict, results: dict) -> list[str]:
    reference = record["reference"]
    lines = [f"### {name}", ""]
    if not reference.get("ok"):
        return [*lines, f"Reference failed: {reference.get('error')}", ""]
    data = reference["data"]
    lines.append(
        f"{data['n_samples']} × {data['n_features']} × {data['n_classes']} "
        f"({data['dtype']}{', sparse, nnz ' + str(data['nnz']) if data['sparse'] else ''}); "
        f"{portable_source(data['source'])}. Reference R* = {reference['objective']:.15g}, "
        f"‖∇R‖₂ = {reference['gradient_norm']:.1e}, relative gap certified ≤ "
        f"{reference.get('certified_gap', float('nan')):.1e}, estimated "
        f"{reference.get('estimated_gap', float('nan')):.1e} (targets below ten times that "
        "are not measurable); test accuracy "
        f"{reference['holdout']['accuracy']:.4f}, test log-loss "
        f"{reference['holdout']['log_loss']:.6f}."
    )
    lines.append("")
    rows = []
    for entry, cells in _ladder_rows(record["entries"], results):
        if not entry.get("ok"):
            rows.append(cells)
            continue
        holdout = entry["holdout"]
        rows.append(
            [
                *cells,
                f"{entry['peak_extra_mb']:.0f}",
                f"{entry['predict_proba_rows_per_second'] / 1e6:.2f}",
                # Results written before the one-row timing existed have none.
                f"{entry['predict_proba_one_row_us']:.1f}"
                if "predict_proba_one_row_us" in entry
                else "—",
                f"{holdout['accuracy']:.4f} / {holdout['log_loss']:.6f}",
                f"{len(entry['rungs'])}: {entry['stop']}",
            ]
        )
    lines += _table(
        [
            "tool",
            "threads",
            "to 1e-3",
            "to 1e-6",
            "to 1e-9",
            "best gap",
            "peak extra MB",
            "predict_proba Mrows/s",
            "predict_proba 1 row µs",
            "test acc / log-loss",
            "fits: stop",
        ],
        rows,
    )
    for tool, reason in record.get("skipped_tools", {}).items():
        lines.append(f"\n{tool} left out: {reason}.")
    for key, entry in record["entries"].items():
        if key.startswith("softreg-certified") and entry.get("ok"):
            parts = [
                f"tol={fit['tol']:g}: {format_time((fit['seconds'], True))}, {fit['solver']}, "
                f"{fit['n_iter']} it, gap {fit['gap']:.1e} (bound {fit['gap_bound']:.1e})"
                + ("" if fit["converged"] else ", not certified")
                for fit in entry["fits"]
            ]
            lines.append(f"\nsoftreg stopping on its certificate ({key}): " + "; ".join(parts))
    softreg = record["entries"].get(f"softreg@{_all_threads(results)}")
    if softreg and softreg.get("ok"):
        lines.append(f"\nsoftreg memory: {_memory_verdict(softreg, data)}.")
    if "no_intercept" in record:
        lines += _no_intercept_lines(record["no_intercept"], results)
    lines.append("")
    return lines


def _no_intercept_lines(sub: dict, results: dict) -> list[str]:
    """The race against mlpack on the objective without intercepts (see benchmarks.tools)."""
    lines = [
        "",
        "Without intercepts (b = 0), the objective mlpack's softmax regression shares with the "
        "others (its `lambda_` also penalises the intercept): softreg `fit_intercept=False` "
        "against mlpack `no_intercept=True`, `lambda_ = alpha`.",
    ]
    reference = sub["reference"]
    if not reference.get("ok"):
        return [*lines, f"Reference failed: {reference.get('error')}"]
    lines.append(
        f"Reference R* = {reference['objective']:.15g}, relative gap certified ≤ "
        f"{reference.get('certified_gap', float('nan')):.1e}."
    )
    lines.append("")
    rows = [
        cells + ([f"{len(entry['rungs'])}: {entry['stop']}"] if entry.get("ok") else [])
        for entry, cells in _ladder_rows(sub["entries"], results)
    ]
    lines += _table(
        ["tool", "threads", "to 1e-3", "to 1e-6", "to 1e-9", "best gap", "fits: stop"], rows
    )
    threads = _all_threads(results)
    softreg, mlpack = (sub["entries"].get(f"{name}@{threads}") for name in ("softreg", "mlpack"))
    ratio = speedup(time_to(mlpack, 1e-6), time_to(softreg, 1e-6))
    lines.append(f"\nSpeed-up of softreg over mlpack to 1e-6: {format_speedup(ratio)}.")
    return lines


def _carried(previous: str, start: str, end: str, placeholder: str) -> list[str]:
    """The hand-written section between ``start`` and ``end`` of the previous file."""
    if start in previous and end in previous:
        text = previous.split(start, 1)[1].split(end, 1)[0].strip("\n")
    else:
        text = placeholder
    return [start, text, end, ""]


def render(results: dict, plot_name: str, previous: str = "") -> str:
    info = results["platform"]
    all_threads = _all_threads(results)
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m benchmarks.run` (`make bench`) from the run of "
        f"{results['started']}; only the section *Levers* is written by hand.",
        "",
        *(
            [
                f"- Command: `python -m benchmarks.run` (`make bench`), here run in "
                f"{len(results['parts'])} parts, {results['total_seconds'] / 60:.1f} min in all: "
                + "; ".join(
                    f"`{part['command']}` from {part['started']} at commit {part['commit']}"
                    for part in results["parts"]
                )
                + "."
            ]
            if "parts" in results
            else [
                f"- Command: `{results['command']}` (mode `{results['mode']}`), "
                + (
                    f"total {results['total_seconds'] / 60:.1f} min."
                    if "total_seconds" in results
                    else "INTERRUPTED: the results below are the cases it finished."
                )
            ]
        ),
        f"- Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gb']:.0f} GiB; "
        f"{info['system']}; Python {info['python']}; load average "
        f"{' / '.join(f'{x:.1f}' for x in info['load_average_start'])} at the start, "
        f"{' / '.join(f'{x:.1f}' for x in results.get('load_average_end', []))} at the end.",
        "- Versions: "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + (f"; repository at {info['commit']}." if "parts" not in results else "."),
        "- Environment: "
        + ", ".join(
            f"`{k}` {'was ' + repr(v) + ', unset' if v is not None else 'not set'}"
            for k, v in results["unset_variables"].items()
        )
        + " for every child process alike.",
        "",
        "## Summary: time to a relative objective gap of 1e-6",
        "",
        "Speed-up of softreg = peer's time / softreg's time (goals: ≥3× against the fastest "
        "scikit-learn solver, ≥2× against PyTorch L-BFGS). `>` marks a peer that did not reach "
        "the gap within its budget (its last fit's time is a lower bound); `<` the same for "
        "softreg. † marks a case whose reference optimum is not accurate enough (estimated gap "
        "over 1e-7) to tell a gap of 1e-6: its times to 1e-6 are not reliable.",
        "",
    ]
    races = [(threads, 1e-6) for threads in _thread_counts(results)] + [(all_threads, 1e-3)]
    for threads, target in races:
        lines.append(f"**Time to {target:g}, {threads} thread(s)**")
        lines.append("")
        rows = [
            [
                row["label"],
                row["text"]["softreg"],
                f"{row['sklearn_name'] or '—'}: {row['text']['sklearn']}",
                f"{format_speedup(row['vs_sklearn'])} ({verdict(row['vs_sklearn'], 3.0)})",
                row["text"]["torch"],
                f"{format_speedup(row['vs_torch'])} ({verdict(row['vs_torch'], 2.0)})",
            ]
            for row in race_rows(results, threads, target)
        ]
        lines += _table(
            ["case", "softreg", "best scikit-learn", "speed-up", "PyTorch L-BFGS", "speed-up"],
            rows,
        )
        lines.append("")
    if results["skipped"]:
        lines.append("Skipped (data not on this machine):")
        lines.append("")
        lines += [f"- {dataset}: {message}" for dataset, message in results["skipped"].items()]
        lines.append("")
    lines += [
        "## One loss+gradient pass",
        "",
        "At the reference optimum of each data set's first case (alpha "
        f"{results['config']['alphas'][0]:g}); median wall time in ms. softreg: "
        "`softreg._objective.Objective.loss_gradient` (includes its gap certificate); "
        "scikit-learn: `LinearModelLoss(HalfMultinomialLoss).loss_gradient` as its lbfgs calls "
        "it; PyTorch: `cross_entropy(X Wᵀ + b) + (α/2)‖W‖²` and `backward()`. Goals: ≥1.5× "
        "faster than scikit-learn, no slower than PyTorch, within 2× of the roofline on dense "
        "cases. The last column is the spread of the three objective values (a check).",
        "",
    ]
    lines += _table(
        [
            "data set",
            "threads",
            "softreg ms",
            "sklearn ms",
            "torch ms",
            "sklearn / softreg",
            "torch / softreg",
            "roofline ms",
            "softreg / roofline",
            "peak extra MB s/k/t",
            "R spread",
        ],
        _pass_rows(results),
    )
    lines += ["", "Roofline rates measured in this run:", ""]
    lines += _rates_lines(results)
    lines += [
        "",
        f"## Objective gap against time ({all_threads} threads)",
        "",
        f"![objective gap against time]({plot_name})",
        "",
        "## Cases",
        "",
        "Times are medians of the repeated fit that first reached each gap; peak extra "
        "memory is the largest over all of a tool's fits (resident high-water mark minus the "
        "resident size before the fit, in a fresh process per tool); predict_proba on the test "
        "rows; test accuracy / log-loss at the tool's lowest objective.",
        "",
    ]
    for name, record in results["cases"].items():
        lines += _case_section(name, record, results)
    lines += ["## Profiles where a goal is missed", ""]
    lines += [
        "cProfile's own time per function (NumPy and BLAS calls show as the built-in methods "
        "that make them, e.g. `{built-in method numpy...}` or `<method 'reduce'...>`).",
        "",
    ]
    for name, profile in results["profiles"].items():
        lines += [f"### Fit: {name}", ""]
        if not profile.get("ok"):
            lines += [f"Profile failed: {profile.get('error')}", ""]
            continue
        lines.append(
            f"One softreg fit (max_iter={profile['max_iter']}, the rung that reached 1e-6 or "
            f"the last one; {profile['seconds']:.3g} s under the profiler):"
        )
        lines += ["", *_profile_table(profile["top"]), ""]
    for key, result in results["passes"].items():
        if not result.get("ok") or key not in pass_misses(results):
            continue
        profile = result["softreg_profile"]
        lines += [
            f"### Loss+gradient pass: {key.replace('@', ', threads ')}",
            "",
            f"Three softreg passes ({profile['seconds']:.3g} s under the profiler):",
            "",
            *_profile_table(profile["top"]),
            "",
        ]
    lines += [
        "## Reference optima",
        "",
        f"Evaluator: {_evaluator(results)}.",
        "",
    ]
    lines += _table(
        ["case", "R*", "‖∇R‖₂", "certified gap", "seconds", "how"],
        [
            [
                name,
                f"{record['reference']['objective']:.15g}",
                f"{record['reference']['gradient_norm']:.1e}",
                f"{record['reference'].get('certified_gap', float('nan')):.1e}",
                f"{record['reference']['seconds']:.1f}",
                record["reference"]["method"],
            ]
            for name, record in results["cases"].items()
            if record["reference"].get("ok")
        ],
    )
    lines += ["", "## Method", "", *_method(results), ""]
    lines += ["## Levers", ""]
    lines += _carried(
        previous,
        LEVERS_START,
        LEVERS_END,
        "_To be written by hand: what would close each missed goal._",
    )
    lines += ["## Start-up", ""]
    lines += _carried(
        previous, STARTUP_START, STARTUP_END, "_From `python -m benchmarks.startup`._"
    )
    lines += ["## Thread pools (threadpoolctl, in the roofline child)", ""]
    machine = results.get("machine", {})
    if machine.get("ok"):
        lines += _table(
            ["library", "prefix", "version", "threads", "architecture"],
            [
                [p["internal_api"], p["prefix"], p["version"], p["num_threads"], p["architecture"]]
                for p in machine["threadpool"]
            ],
        )
    lines.append("")
    lines += _other_benchmarks(previous)
    return "\n".join(lines)


def _other_benchmarks(previous: str) -> list[str]:
    """Sections that other benchmarks write between ``<!-- NAME:start -->`` and ``<!-- NAME:end
    -->`` (e.g. ``benchmarks/online.py``), carried over unchanged.

    >>> _other_benchmarks("x <!-- online:start -->\\n## Online\\n<!-- online:end --> y")
    ['<!-- online:start -->\\n## Online\\n<!-- online:end -->', '']
    """
    found = re.finditer(r"<!-- ([a-z-]+):start -->.*?<!-- \1:end -->", previous, flags=re.DOTALL)
    carried = ("levers", "startup")  # rendered in their own places above
    return [
        item for block in found if block.group(1) not in carried for item in (block.group(0), "")
    ]


def _profile_table(top: list[dict]) -> list[str]:
    return _table(
        ["function", "calls", "own s", "cumulative s"],
        [
            [
                f"`{row['function']}`",
                row["calls"],
                f"{row['own_seconds']:.3f}",
                f"{row['cumulative_seconds']:.3f}",
            ]
            for row in top
        ],
    )


def pass_misses(results: dict) -> set[str]:
    """Keys ``dataset@threads`` whose softreg pass misses one of the pass goals."""
    return {row[0] + "@" + row[1] for row in _pass_rows(results) if "NOT" in " ".join(row)}


def _evaluator(results: dict) -> str:
    references = [r["reference"] for r in results["cases"].values() if r["reference"].get("ok")]
    if not references:
        return "none ran"
    difference = max(reference.get("evaluator_difference", 0.0) for reference in references)
    return (
        f"{references[0]['evaluator']}; largest disagreement between the two "
        f"{difference:.1e} relative"
    )


def _method(results: dict) -> list[str]:
    # Results saved before traced fits existed lack their settings: shown as "—".
    config = defaultdict(lambda: "—")
    for key, value in results["config"].items():
        config[key] = f"{value:g}" if isinstance(value, float) else value
    return [
        "- Same problem for every tool: `R(W, b) = mean cross-entropy + (α/2)‖W‖²_F` (intercept "
        "not penalised); scikit-learn `LogisticRegression(C=1/(α n))`; PyTorch `nn.Linear` with "
        "the penalty added to the loss on the weight only (no `weight_decay`, which would decay "
        "the bias too), full-batch `LBFGS(line_search_fn='strong_wolfe', history_size=20)`; all "
        "start from zeros.",
        "- Time to solution, the same way for every tool: fits from scratch at `max_iter` = 1, "
        "2, 3, 4, 6, 9, … (×1.5 per rung) with every tolerance at its minimum (softreg "
        "`tol=1e-9`, the smallest target: its last inner CG solves are sized from the "
        "certificate and tol, and it may stop once it certifies 1e-9; scikit-learn `tol=0`, "
        "PyTorch `tolerance_grad=tolerance_change=0`), each "
        "timed end to end including input checks, after one untimed warm-up fit on 2000 rows; "
        "every fit's objective is evaluated afterwards by the one float64 evaluator. Where a "
        f"rung takes over {config['trace_after_seconds']} s, the tools that can report their "
        "iterates (softreg, scikit-learn lbfgs and newton-cg, PyTorch: *traced*) switch to one "
        "fit run on: at the same schedule of iterations, and whenever the fit's time has grown "
        "by 10 %, its iterate is copied and graded with the clock stopped, so each rung's "
        "time is that fit's time to the iterate, without the "
        "refits. PyTorch reports the point of each evaluation, line-search trials included. "
        "The time to a gap is that of the fastest fit within it; the first fit within each gap "
        f"is timed again, {config['repeats']} times or more (enough for 0.5 s) when it takes at "
        f"most {config['retime_max_seconds']} s, and the median is used. A tool stops at a gap "
        "of 1e-9, after two rungs without progress, or at its budget: "
        f"{config['cap_seconds']} s for softreg; for a traced peer "
        f"{config['trace_cap_factor']}× the fastest time to 1e-6 seen so far in the case (one "
        f"that does not reach 1e-6 in it is over {config['trace_cap_factor']}× slower); for the "
        f"others, whose ladders of refits cost 2–3× their last fit, {config['cap_factor']}× "
        f"within {config['ladder_cap_seconds']} s; never under {config['cap_floor_seconds']} s. "
        "`>` then gives the last time reached as a lower bound. The schedule over-states every "
        "tool's time by up to the rung factor 1.5 alike.",
        "- softreg is also run as a user would, stopping on its own certificate at `tol=1e-6` "
        "(relative gap bound), where its ladder reached 1e-6; shown under each case.",
        "- Reference optimum: softreg's Newton-CG at `tol=1e-14`, then the benchmark's own "
        "Newton-CG with exact Hessian products for up to "
        f"{2 * float(results['config']['reference_seconds']):g} s, until the certificate "
        "(a duality gap, a bound for any point) bounds the relative gap by 1e-13; cached by "
        "a hash of the data. Relative gap = (R − R*) / R*. Its accuracy is estimated as the "
        "smaller of the certified bound and ‖∇R‖²/(2αR*); targets below ten times that are "
        "marked as not measurable.",
        "- Each measurement runs in a fresh process with the thread count set by environment "
        "(`OMP_NUM_THREADS`, `OPENBLAS_NUM_THREADS`, `MKL_NUM_THREADS`), threadpoolctl and "
        "`torch.set_num_threads`. One-thread runs: softreg and the best scikit-learn BLAS "
        "solver of the all-core run, where softreg's all-core time to 1e-6 is at most "
        f"{config['single_thread_max_seconds']} s; sag and saga are single-threaded loops "
        "without BLAS, run once and counted at both thread counts.",
        "- scikit-learn's newton-cholesky is left out above 2000 parameters (it forms a dense "
        "Hessian every iteration).",
    ]


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    threads = _all_threads(results)
    cases = [(n, r) for n, r in results["cases"].items() if r.get("entries")]
    if not cases:
        return
    columns = min(4, len(cases))
    rows = math.ceil(len(cases) / columns)
    height = 2.7 * rows + 0.9
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.6 * columns, height), squeeze=False, dpi=70
    )
    colours = {}
    palette = plt.get_cmap("tab10").colors
    for axis, (name, record) in zip(axes.flat, cases, strict=False):
        for key, entry in record["entries"].items():
            tool, entry_threads = key.rsplit("@", 1)
            if tool.endswith("certified") or not entry.get("ok"):
                continue
            if int(entry_threads) != threads and tool not in ("sklearn-sag", "sklearn-saga"):
                continue
            colour = colours.setdefault(tool, palette[len(colours) % len(palette)])
            seconds = [rung["seconds"] for rung in entry["rungs"]]
            gaps = [max(rung["gap"], 1e-16) for rung in entry["rungs"]]
            axis.loglog(seconds, gaps, "-o", color=colour, markersize=2, linewidth=1, label=tool)
        for target in results["targets"]:
            axis.axhline(target, color="grey", linewidth=0.5, linestyle=":")
        axis.set_title(name, fontsize=8)
        axis.tick_params(labelsize=6)
        axis.xaxis.set_minor_formatter(NullFormatter())
    for axis in list(axes.flat)[len(cases) :]:
        axis.axis("off")
    handles = [plt.Line2D([], [], color=c, marker="o", markersize=3) for c in colours.values()]
    figure.legend(handles, list(colours), loc="lower center", ncol=len(colours), fontsize=7)
    figure.supxlabel(
        "seconds (each point: one fit from scratch at a larger max_iter)",
        fontsize=8,
        y=0.5 / height,
    )
    figure.supylabel("relative gap (R − R*) / R*", fontsize=8)
    figure.tight_layout(rect=(0.01, 0.7 / height, 1, 1))
    figure.savefig(path)
    plt.close(figure)


def write(results: dict) -> str:
    """Write the report (``BENCHMARKS.md`` for a full run); return where it went."""
    results.setdefault("load_average_end", os.getloadavg())
    if results["mode"] == "full":
        markdown, picture = BENCHMARKS_MD, PLOT
    else:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        markdown = RESULTS_DIR / f"BENCHMARKS-{results['mode']}.md"
        picture = RESULTS_DIR / f"objective_gap_vs_time-{results['mode']}.png"
    previous = markdown.read_text() if markdown.exists() else ""
    if not previous and BENCHMARKS_MD.exists():
        previous = BENCHMARKS_MD.read_text()
    plot(results, picture)
    text = render(results, os.path.relpath(picture, markdown.parent), previous)
    # The out-of-core section is written by `python -m benchmarks.out_of_core --write`.
    kept = out_of_core.section(previous)
    markdown.write_text(text.rstrip("\n") + "\n" + ("\n" + kept if kept else ""))
    return str(markdown.relative_to(REPO_ROOT))
