"""The long fuzz campaign behind ``make fuzz``: every reader, many mutated files each.

Usage::

    python -m fuzz.campaign [--cases N] [--targets csv,npz,...] [--engine auto|atheris|random]
                            [--seed S] [--out DIR]

Each target runs in its own worker process, one after the other (the machine is shared):

* ``atheris`` (coverage-guided, libFuzzer): the worker is :mod:`fuzz.atheris_target`. It
  mutates with libFuzzer's own byte mutations and with :func:`fuzz.mutate.mutate` (a custom
  mutator), keeps inputs that reach new lines of softreg, zipfile, json, gzip and bz2, and
  enforces the time limit (``-timeout``) and the memory bound (``-rss_limit_mb``) itself.
* ``random``: the worker is this module (``--worker``): case ``i`` is seed ``i`` of a
  :class:`random.Random`, so any case can be replayed; time is bounded by an alarm and
  memory by the process's peak RSS after each case.

``auto`` uses atheris when it is installed. A worker that dies (a crash in native code, a
time-out or memory limit under libFuzzer) is reported with the input it died on. The summary
(one row per target: cases, loaded, refused, failures, seconds) is printed and written to
``DIR/summary.json``; every failing input is kept under ``DIR/failures/``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter

from fuzz.cases import bound_memory, log, run_case, scratch_directory, signature, warm_up
from fuzz.hostile import hostile_seeds
from fuzz.mutate import mutate, new_rng
from fuzz.seeds import seeds
from fuzz.targets import TARGETS

#: Mutants are cut to this size: big enough for every seed and its hostile variants.
MAX_CASE_BYTES = 1 << 16


def mutant(target, index, seed, pool):
    """Case ``index`` of a random campaign: one to three stacked mutations of a pool file."""
    rng = new_rng(f"{seed}:{target}:{index}")
    data = rng.choice(pool)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        data = mutate(TARGETS[target].files, data, rng, pool)
    return data[:MAX_CASE_BYTES]


def pool_for(target):
    """The files mutants start from: the valid seeds and the hostile files of ``target``."""
    files = TARGETS[target].files
    return list(seeds(files)) + [case.data for case in hostile_seeds(files)]


def random_worker(target, n_cases, seed, out):
    """Run ``n_cases`` random mutants of ``target``; return the summary row."""
    bound_memory()
    pool = pool_for(target)
    directory = scratch_directory()
    warm_up(target, directory)
    log(f"[{target}] scratch {directory}")
    counts = Counter()
    bugs = {}
    start = time.perf_counter()
    try:
        for index in range(n_cases):
            data = mutant(target, index, seed, pool)
            outcome = run_case(target, data, directory)
            counts[outcome.kind] += 1
            if outcome.kind == "failure":
                _keep_failure(out, target, index, data, outcome.detail, bugs)
            if (index + 1) % 10_000 == 0:
                log(f"[{target}] {index + 1} cases, {dict(counts)}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return _row(target, "random", n_cases, counts, bugs, time.perf_counter() - start)


def _keep_failure(out, target, index, data, detail, bugs):
    folder = os.path.join(out, "failures", target)
    os.makedirs(folder, exist_ok=True)
    name = f"case-{index}{TARGETS[target].suffix}"
    with open(os.path.join(folder, name), "wb") as handle:
        handle.write(data)
    key = signature(detail)
    if key not in bugs:
        bugs[key] = {"detail": detail, "example": name, "count": 0}
        log(f"[{target}] FAILURE case {index}: {detail}")
    bugs[key]["count"] += 1


def _row(target, engine, n_cases, counts, bugs, seconds):
    return {
        "target": target,
        "engine": engine,
        "cases": n_cases,
        "loaded": counts["loaded"],
        "refused": counts["refused"],
        "failures": counts["failure"],
        "bugs": bugs,
        "seconds": round(seconds, 1),
    }


def write_row(out, row):
    """Keep a worker's summary row in ``out/rows/TARGET.json`` (written atomically)."""
    folder = os.path.join(out, "rows")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{row['target']}.json")
    with open(path + ".tmp", "w") as handle:
        json.dump(row, handle)
    os.replace(path + ".tmp", path)


def _run_worker(command, target, out):
    """Run one worker process and return its summary row, marked if the worker died."""
    path = os.path.join(out, "rows", f"{target}.json")
    if os.path.exists(path):
        os.unlink(path)
    result = subprocess.run(command, check=False)
    if os.path.exists(path):
        with open(path) as handle:
            row = json.load(handle)
    else:
        row = _row(target, "?", 0, Counter(), {}, 0.0)
    if result.returncode != 0:
        # libFuzzer's time-out or memory limit, or a crash in native code: the input that did
        # it is under out/failures/TARGET/ (libFuzzer's timeout-*, oom-*, crash-* files).
        row["failures"] += 1
        row["bugs"]["worker died"] = {"detail": f"exit code {result.returncode}", "count": 1}
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000, help="cases per target")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="fuzz-out")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        write_row(args.out, random_worker(args.worker, args.cases, args.seed, args.out))
        return 0
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if importlib.util.find_spec("atheris") else "random"
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for target in args.targets.split(","):
        if target not in TARGETS:
            parser.error(f"unknown target {target!r}; the targets are {', '.join(TARGETS)}")
        if engine == "atheris":
            command = [sys.executable, "-m", "fuzz.atheris_target", target, args.out]
            command += [f"-runs={args.cases}", f"-seed={args.seed + 1}"]
        else:
            command = [sys.executable, "-m", "fuzz.campaign", "--worker", target]
            command += ["--cases", str(args.cases), "--seed", str(args.seed), "--out", args.out]
        log(f"[{target}] {engine}: {args.cases} cases")
        rows.append(_run_worker(command, target, args.out))
        log(_format_row(rows[-1]))
    with open(os.path.join(args.out, "summary.json"), "w") as handle:
        json.dump(rows, handle, indent=2)
    print("\n".join(_format_row(row) for row in rows))
    return 1 if any(row["failures"] for row in rows) else 0


def _format_row(row):
    bugs = "; ".join(f"{key} (x{bug['count']})" for key, bug in row["bugs"].items()) or "none"
    return (
        f"{row['target']:>9} {row['engine']:>8} {row['cases']:>8} cases {row['seconds']:>8.1f} s"
        f"  loaded {row['loaded']:>7}  refused {row['refused']:>7}  failures "
        f"{row['failures']:>5}  bugs: {bugs}"
    )


if __name__ == "__main__":
    sys.exit(main())
