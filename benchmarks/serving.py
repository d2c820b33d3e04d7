"""``python -m benchmarks.serving``: ``predict_proba`` latency and throughput, tools interleaved.

One fitted model per tool (softreg, scikit-learn ``LogisticRegression``, PyTorch ``nn.Linear``
with ``softmax``; PyTorch only if installed) on Gaussian data of ``--features`` columns and
``--classes`` classes. Each round times every tool on one row (the median of ``--calls``
calls) and on a batch of ``--rows`` rows, in turn, so that load changes hit all tools alike;
the table gives the median over ``--rounds`` rounds. softreg is also timed on the row as a
list, which takes scikit-learn's validation (what every call paid before the fast path).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np


def median_call(function, calls):
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tools(X, y, n_classes):
    from sklearn.linear_model import LogisticRegression

    from softreg import SoftmaxRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        softreg = SoftmaxRegression(alpha=1e-2, max_iter=3).fit(X, y)
        sklearn = LogisticRegression(max_iter=3).fit(X, y)
    found = {
        "softreg": softreg.predict_proba,
        "softreg, validated (list input)": lambda rows: softreg.predict_proba(rows.tolist()),
        "scikit-learn": sklearn.predict_proba,
    }
    try:
        import torch
    except ImportError:
        return found
    linear = torch.nn.Linear(X.shape[1], n_classes).double()

    def torch_proba(rows):
        with torch.no_grad():
            return torch.softmax(linear(torch.from_numpy(rows)), 1).numpy()

    found["PyTorch"] = torch_proba
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=784)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rows", type=int, default=20000, help="rows per batch")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300, help="one-row calls per round")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2000, args.features))
    y = np.arange(2000) % args.classes
    batch = rng.standard_normal((args.rows, args.features))
    row = batch[:1].copy()
    measured = tools(X, y, args.classes)
    one, many = {name: [] for name in measured}, {name: [] for name in measured}
    for _ in range(args.rounds):
        for name, predict_proba in measured.items():
            one[name].append(median_call(lambda f=predict_proba: f(row), args.calls))
            if "validated" not in name:  # the same arithmetic as softreg's on a batch
                many[name].append(median_call(lambda f=predict_proba: f(batch), 5))
    print(f"| tool | one row (µs) | batch of {args.rows} (M rows/s) |")
    print("|---|---|---|")
    for name in measured:
        rate = f"{args.rows / statistics.median(many[name]) / 1e6:.2f}" if many[name] else "—"
        print(f"| {name} | {statistics.median(one[name]) * 1e6:.1f} | {rate} |")


if __name__ == "__main__":
    main()
