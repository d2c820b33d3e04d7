"""Online learning: one pass over a stream of mini-batches, softreg against its peers.

``python -m benchmarks.online`` streams each data set's training rows once, in one shuffled
order (seed 0) and in mini-batches of 256 rows, into

- softreg ``SoftmaxRegression(alpha=1e-4).partial_fit`` (a true softmax);
- scikit-learn ``SGDClassifier(loss="log_loss", alpha=1e-4).partial_fit`` (one-vs-rest
  logistic regressions, probabilities renormalised), the same penalty ``alpha/2 ‖W‖²``;
- River ``linear_model.SoftmaxRegression()`` with its defaults (SGD, step 0.01, no penalty),
  which learns one row at a time: it gets the same rows in the same order, row by row.

and reports, after the one pass, the test log-loss (probabilities floored at 1e-15),
accuracy and training rows per second (the pass alone, without the test predictions).
River is slow, so ``--river-rows N`` stops it after the first N rows of the stream; its
figures then say "after N rows".

``--compare`` instead races the online methods that ``softreg._online`` chose between, all
fed the exact mini-batch gradient of the same objective, on the same streams.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.datasets import DataUnavailableError, load
from softreg import SoftmaxRegression, _online
from softreg._objective import Objective, SoftmaxLoss
from softreg._sources import ArraySource

DATASETS = ("fashion-mnist", "synthetic-500000x54x7-float64")
BATCH = 256
ALPHA = 1e-4
_FLOOR = 1e-15


def _log_loss(proba, y):
    proba = np.asarray(proba, dtype=np.float64)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(np.maximum(proba[np.arange(len(y)), y], _FLOOR))))


def _batches(n_samples, seed=0):
    order = np.random.default_rng(seed).permutation(n_samples)
    return [order[start : start + BATCH] for start in range(0, n_samples, BATCH)]


def _softreg(data, batches):
    model = SoftmaxRegression(alpha=ALPHA)
    classes = np.arange(data.n_classes)
    start = time.perf_counter()
    for rows in batches:
        model.partial_fit(data.X_train[rows], data.y_train[rows], classes=classes)
    return time.perf_counter() - start, model.predict_proba(data.X_test)


def _sklearn(data, batches):
    from sklearn.linear_model import SGDClassifier

    model = SGDClassifier(loss="log_loss", alpha=ALPHA, random_state=0)
    classes = np.arange(data.n_classes)
    start = time.perf_counter()
    for rows in batches:
        model.partial_fit(data.X_train[rows], data.y_train[rows], classes=classes)
    return time.perf_counter() - start, model.predict_proba(data.X_test)


def _river(data, batches, limit):
    from river import linear_model

    model = linear_model.SoftmaxRegression()
    order = np.concatenate(batches)[:limit]
    keys = range(data.X_train.shape[1])
    rows = [dict(zip(keys, data.X_train[i].tolist(), strict=True)) for i in order]
    labels = data.y_train[order].tolist()
    start = time.perf_counter()  # the learning alone, not the conversion to dicts
    for x, label in zip(rows, labels, strict=True):
        model.learn_one(x, label)
    elapsed = time.perf_counter() - start
    proba = np.zeros((len(data.y_test), data.n_classes))
    for i, row in enumerate(data.X_test):
        for label, p in model.predict_proba_one(dict(zip(keys, row.tolist(), strict=True))).items():
            proba[i, label] = p
    return elapsed, proba, len(order)


def race(name, river_rows):
    data = load(name)
    batches = _batches(len(data.y_train))
    n = len(data.y_train)
    results = []
    for tool, run in (("softreg partial_fit", _softreg), ("sklearn SGDClassifier", _sklearn)):
        elapsed, proba = run(data, batches)
        results.append((tool, n, elapsed, proba))
    elapsed, proba, rows = _river(data, batches, river_rows)
    results.append(("river SoftmaxRegression", rows, elapsed, proba))
    lines = [
        f"### {name}: {n} training rows, {data.X_train.shape[1]} features, "
        f"{data.n_classes} classes; {len(data.y_test)} test rows",
        "",
        "| tool | rows learnt | test log-loss | test accuracy | rows/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for tool, rows, elapsed, proba in results:
        accuracy = float(np.mean(np.argmax(proba, axis=1) == data.y_test))
        lines.append(
            f"| {tool} | {rows} | {_log_loss(proba, data.y_test):.4f} | {accuracy:.4f} | "
            f"{rows / elapsed:,.0f} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# --compare: the candidate methods, each a (state, gradient) -> state step on flat parameters


def _sgd(rate):
    return lambda theta, gradient, step, memory: (theta - rate * gradient, memory)


def _adagrad(rate):
    def step_(theta, gradient, step, memory):
        memory = gradient**2 if memory is None else memory + gradient**2
        return theta - rate * gradient / (np.sqrt(memory) + 1e-10), memory

    return step_


def _adam(rate):
    def step_(theta, gradient, step, memory):
        state = _online.init(theta) if memory is None else memory._replace(theta=theta)
        # No decay: τ = ∞.
        state = _online.update(state, gradient, learning_rate=rate, decay_steps=np.inf)
        return state.theta, state

    return step_


CANDIDATES = {
    "SGD, step 0.5": _sgd(0.5),
    "AdaGrad, step 0.1": _adagrad(0.1),
    "Adam, step 3e-3": _adam(3e-3),
    "Adam, step 0.02": _adam(0.02),
}


def compare(name):
    data = load(name)
    K, D = data.n_classes, data.X_train.shape[1]
    loss = SoftmaxLoss(K)
    lines = [f"### {name}", "", "| method | test log-loss |", "|---|---:|"]
    for label, method in CANDIDATES.items():
        theta, memory = np.zeros(K * (D + 1)), None
        for step, rows in enumerate(_batches(len(data.y_train)), start=1):
            source = ArraySource(data.X_train[rows], data.y_train[rows], n_outputs=K)
            objective = Objective(loss, source, alpha=ALPHA, fit_intercept=True)
            gradient = objective.loss_gradient(theta, certify=False).gradient
            theta, memory = method(theta, gradient, step, memory)
        logits = data.X_test @ theta[: K * D].reshape(K, D).T + theta[K * D :]
        proba = np.exp(logits - logits.max(axis=1, keepdims=True))
        lines.append(f"| {label} | {_log_loss(proba, data.y_test):.4f} |")
    _, proba = _softreg(data, _batches(len(data.y_train)))
    lines.append(
        f"| softreg: Adam, step 0.02, decay, averaged | {_log_loss(proba, data.y_test):.4f} |"
    )
    fitted = SoftmaxRegression(alpha=ALPHA).fit(data.X_train, data.y_train)
    lines.append(
        f"| (fit's optimum) | {_log_loss(fitted.predict_proba(data.X_test), data.y_test):.4f} |"
    )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--river-rows", type=int, default=None, metavar="N")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args(argv)
    for name in args.datasets:
        try:
            print(compare(name) if args.compare else race(name, args.river_rows), flush=True)
        except DataUnavailableError as exc:
            print(f"### {name}: skipped ({exc})", flush=True)
        print()


if __name__ == "__main__":
    main()
