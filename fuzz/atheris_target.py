"""A coverage-guided (atheris / libFuzzer) worker for one target.

Usage: ``python -m fuzz.atheris_target TARGET OUT [libFuzzer options]``; started by
:mod:`fuzz.campaign`, which passes ``-runs=N``. softreg, zipfile, json, gzip, bz2 and numpy's
``.npy`` parser are instrumented, so inputs that reach new lines of them are kept and mutated
further (pyarrow's and scikit-learn's compiled parsers are not: for CSV, Parquet and svmlight
the guidance comes from softreg's side of the call). Each input is mutated either by
libFuzzer's byte mutations or by :func:`fuzz.mutate.mutate` (the custom mutator), so zip CRCs
and model checksums stay valid often enough to test what lies behind them.

A failure (any exception but the target's documented error) is recorded, its input kept under
``OUT/failures/TARGET/``, and the campaign goes on; a time-out (``-timeout``) or a breach of
the memory bound (``-rss_limit_mb``) stops libFuzzer, which then keeps the input itself. The
summary row is kept up to date in ``OUT/rows/TARGET.json`` for :mod:`fuzz.campaign`.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from collections import Counter

import atheris

# softreg._fused is compiled by numba, which cannot compile instrumented bytecode.
with atheris.instrument_imports(
    include=[
        "softreg",
        "zipfile",
        "json",
        "gzip",
        "bz2",
        "numpy.lib.format",
        "numpy.lib._format_impl",
    ],
    exclude=["softreg._fused"],
):
    from fuzz.campaign import MAX_CASE_BYTES, pool_for, write_row
    from fuzz.cases import (
        TIME_LIMIT,
        bound_memory,
        run_case,
        scratch_directory,
        signature,
        warm_up,
    )
    from fuzz.mutate import mutate
    from fuzz.targets import TARGETS


def main(argv):
    target, out, *options = argv[1:]
    suffix = TARGETS[target].suffix
    baseline = bound_memory()
    pool = pool_for(target)
    directory = scratch_directory()
    warm_up(target, directory)
    corpus = os.path.join(out, "corpus", target)
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(os.path.join(out, "failures", target), exist_ok=True)
    for data in pool:
        with open(os.path.join(corpus, hashlib.sha1(data).hexdigest()), "wb") as handle:
            handle.write(data)
    counts = Counter()
    bugs = {}
    start = time.perf_counter()

    def test_one_input(data):
        outcome = run_case(target, data, directory, time_limit=TIME_LIMIT)
        counts[outcome.kind] += 1
        n_cases = sum(counts.values())
        if n_cases % 1000 == 0 or n_cases == runs or outcome.kind == "failure":
            write_summary()
        if outcome.kind != "failure":
            return
        key = signature(outcome.detail)
        folder = os.path.join(out, "failures", target)
        os.makedirs(folder, exist_ok=True)
        name = hashlib.sha1(data).hexdigest() + suffix
        with open(os.path.join(folder, name), "wb") as handle:
            handle.write(data)
        if key not in bugs:
            bugs[key] = {"detail": outcome.detail, "example": name, "count": 0}
            print(f"[{target}] FAILURE: {outcome.detail}", file=sys.stderr, flush=True)
        bugs[key]["count"] += 1
        write_summary()

    def custom_mutator(data, max_size, seed):
        rng = random.Random(seed)
        if rng.random() < 0.5:
            return atheris.Mutate(data, max_size)
        return mutate(TARGETS[target].files, data, rng, pool)[:max_size]

    runs = next((int(o.split("=", 1)[1]) for o in options if o.startswith("-runs=")), None)

    def write_summary():
        # libFuzzer ends the process with _exit: no atexit, so the row is written as we go.
        row = {
            "target": target,
            "engine": "atheris",
            "cases": sum(counts.values()),
            "loaded": counts["loaded"],
            "refused": counts["refused"],
            "failures": counts["failure"],
            "bugs": bugs,
            "seconds": round(time.perf_counter() - start, 1),
        }
        write_row(out, row)

    # A backstop for the machine: each case's own rise is checked by run_case (RSS_STEP).
    rss_limit_mb = (baseline + (2 << 30)) >> 20
    atheris.Setup(
        [
            argv[0],
            f"-timeout={int(TIME_LIMIT)}",
            f"-rss_limit_mb={rss_limit_mb}",
            f"-max_len={MAX_CASE_BYTES}",
            "-print_final_stats=1",
            f"-artifact_prefix={os.path.join(out, 'failures', target)}/",
            *options,
            corpus,
        ],
        test_one_input,
        custom_mutator=custom_mutator,
    )
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
