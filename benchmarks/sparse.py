"""``python -m benchmarks.sparse [--cases ...] [--write]``: sparse models against their peers.

Two races per data set (dense ``letter``, sparse ``sector``; both from ``../shared/data``):

* ``fit``: time to a 1e-6 relative objective gap for one L1 (``l1_ratio=1``) and one elastic
  net (``l1_ratio=0.5``) problem at ``alpha = 0.1 alpha_max``. softreg stops on its own
  certificate (``tol=1e-6``); scikit-learn's saga and cyanure run a ladder of tolerances and
  the first rung whose objective is within 1e-6 of ``F*`` counts (``F*`` from softreg at
  ``tol=1e-11``, checked to be below every peer's objective).
* ``cv``: a 30-point path with 5-fold cross-validation: ``SoftmaxRegressionCV`` against
  ``LogisticRegressionCV(solver="saga", l1_ratios=[...])`` on the same grid and glmnet's
  ``LogitNet`` (Fortran, ``standardize=False``), with each tool's best mean CV log-loss.

Each peer runs in a forked child that is stopped when its budget is spent (``--budget``
seconds per fit race, over all its rungs; ``--cv-budget`` per CV race): one that does not
finish is reported as "> budget". Every row records the 1-minute load average at its start
and end. Results are printed as JSON rows and written to ``benchmarks/results/sparse.json``
after every row; ``--write`` also puts the table into ``BENCHMARKS.md`` between the sparse
markers. The defaults run every race the issue asks for (letter: fit and CV; sector: fit).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import warnings

import numpy as np

from benchmarks.datasets import REPO_ROOT, RESULTS_DIR, load
from softreg import SoftmaxRegression, SoftmaxRegressionCV, alpha_max
from softreg._objective import objective_value
from softreg._path import alpha_grid
from softreg._penalties import ElasticNet

TARGET = 1e-6
LADDER = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
START, END = "<!-- sparse:start -->", "<!-- sparse:end -->"
BENCHMARKS_MD = REPO_ROOT / "BENCHMARKS.md"


def _child(fit, pipe):
    start = time.perf_counter()
    out = fit()
    pipe.send((time.perf_counter() - start, out))


def budgeted(fit, budget):
    """``(seconds, fit())`` run in a forked child, or ``(None, None)`` when ``budget`` runs out.

    ``fit`` returns something picklable; the data are shared by the fork, never copied.
    """
    if budget <= 0:
        return None, None
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(fit, sender), daemon=True)
    process.start()
    sender.close()
    try:
        if receiver.poll(budget):
            return receiver.recv()
        return None, None
    except EOFError:  # the child died (e.g. out of memory): counted as out of budget
        return None, None
    finally:
        process.kill()
        process.join()


def composite(X, y, coef, intercept, alpha, l1_ratio):
    """``F(W, b)`` in float64, the one evaluator every tool's answer goes through."""
    penalty = ElasticNet(alpha, l1_ratio)
    return objective_value(X, y, coef, intercept) + penalty.value(np.asarray(coef))


def timed(fit):
    start = time.perf_counter()
    out = fit()
    return time.perf_counter() - start, out


def ladder(fit_at, F_star, budget):
    """First tolerance rung within TARGET of F*: ``(seconds, F, tol)`` or ``(None, best F, tol)``.

    ``fit_at(tol)`` returns the objective reached; every rung runs in a child given what is
    left of ``budget``; the last ``tol`` is the rung that ran out (None: none did).
    """
    spent, best = 0.0, np.inf
    for tol in LADDER:
        seconds, F = budgeted(lambda tol=tol: fit_at(tol), budget - spent)
        if seconds is None:
            return None, best, tol
        spent += seconds
        best = min(best, F)
        if (F - F_star) / abs(F_star) <= TARGET:
            return seconds, F, None
    return None, best, None


def fit_race(X, y, l1_ratio, budget):
    top = alpha_max(X, y, l1_ratio=l1_ratio)
    alpha = 0.1 * top
    n_samples = X.shape[0]
    reference = SoftmaxRegression(alpha=alpha, l1_ratio=l1_ratio, tol=1e-11).fit(X, y)
    F_star = composite(X, y, reference.coef_, reference.intercept_, alpha, l1_ratio)
    row = {"alpha": alpha, "l1_ratio": l1_ratio, "F_star": F_star}
    seconds, model = timed(
        lambda: SoftmaxRegression(alpha=alpha, l1_ratio=l1_ratio, tol=TARGET).fit(X, y)
    )
    F = composite(X, y, model.coef_, model.intercept_, alpha, l1_ratio)
    row["softreg"] = {"seconds": seconds, "gap": (F - F_star) / F_star, "n_iter": model.n_iter_}

    def saga(tol):
        from sklearn.linear_model import LogisticRegression

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = LogisticRegression(
                C=1 / (alpha * n_samples), l1_ratio=l1_ratio, solver="saga", tol=tol, max_iter=10**6
            ).fit(X, y)
        return composite(X, y, m.coef_, m.intercept_, alpha, l1_ratio)

    seconds, F, out_at = ladder(saga, F_star, budget)
    row["saga"] = {
        "seconds": seconds, "gap": (F - F_star) / F_star, "out_of_budget_at": out_at,
        "budget": budget,
    }  # fmt: skip
    if l1_ratio == 1.0:
        try:
            from cyanure.estimators import Classifier
        except ImportError as exc:  # pragma: no cover - optional peer
            row["cyanure"] = {"unavailable": str(exc)}
        else:

            def cyanure(tol):
                m = Classifier(
                    loss="multiclass-logistic", penalty="l1", lambda_1=alpha, tol=tol,
                    fit_intercept=True, max_iter=10**5, verbose=False, n_threads=os.cpu_count(),
                )  # fmt: skip
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    m.fit(X, y)
                coef, intercept = np.asarray(m.coef_).T, np.asarray(m.intercept_).ravel()
                return composite(X, y, coef, intercept, alpha, l1_ratio)

            seconds, F, out_at = ladder(cyanure, F_star, budget)
            row["cyanure"] = {
                "seconds": seconds, "gap": (F - F_star) / F_star, "out_of_budget_at": out_at,
                "budget": budget,
            }  # fmt: skip
    return row


def cv_race(X, y, l1_ratio, budget, n_alphas=30, n_folds=5):
    grid = alpha_grid(alpha_max(X, y, l1_ratio=l1_ratio), n_alphas, 1e-3)
    row = {"l1_ratio": l1_ratio, "n_alphas": n_alphas, "folds": n_folds}
    seconds, model = timed(
        lambda: SoftmaxRegressionCV(
            alphas=grid, l1_ratios=[l1_ratio], cv=n_folds, n_jobs=os.cpu_count()
        ).fit(X, y)
    )
    row["softreg"] = {
        "seconds": seconds,
        "cv_log_loss": float(model.scores_[0].mean(axis=0).min()),
        "alpha": model.alpha_,
    }
    for name, peer in (("sklearn_saga", _sklearn_cv), ("glmnet", _glmnet_cv)):
        seconds, out = budgeted(lambda peer=peer: peer(X, y, grid, l1_ratio, n_folds), budget)
        row[name] = {"seconds": seconds, **(out or {"out_of_budget": budget})}
    return row


def _sklearn_cv(X, y, grid, l1_ratio, n_folds):
    from sklearn.linear_model import LogisticRegressionCV

    n_train = X.shape[0] * (n_folds - 1) / n_folds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegressionCV(
            Cs=list(1 / (grid * n_train)), l1_ratios=[l1_ratio], solver="saga", cv=n_folds,
            penalty="elasticnet", scoring="neg_log_loss", n_jobs=os.cpu_count(),
        ).fit(X, y)  # fmt: skip
    scores = np.asarray(next(iter(model.scores_.values()))).reshape(n_folds, -1)
    return {"cv_log_loss": float(-scores.mean(axis=0).max())}


def _glmnet_cv(X, y, grid, l1_ratio, n_folds):
    """cv.glmnet's work: one path per fold and one on all rows, scored from the coefficients.

    python-glmnet 2.6's ``predict_proba(X, lamb=...)`` returns wrong probabilities on a
    multinomial path (iris, L1, smallest alpha: log-loss 0.62 where its own coefficients give
    0.094, as softreg's do), hence its ``cv_mean_score_``: the folds (scikit-learn's
    ``StratifiedKFold``, as the other tools use) are fitted with ``n_splits=0`` and scored
    here with the softmax of the path's coefficients.
    """
    try:
        from glmnet import LogitNet
    except ImportError as exc:  # pragma: no cover - optional peer
        return {"unavailable": str(exc)}
    from scipy.special import log_softmax
    from sklearn.model_selection import StratifiedKFold

    def path(rows):
        return LogitNet(alpha=l1_ratio, lambda_path=grid, standardize=False, n_splits=0).fit(
            X[rows], y[rows]
        )

    classes = np.unique(y)
    losses = np.zeros(len(grid))
    for train, test in StratifiedKFold(n_folds).split(X, y):
        model = path(train)
        target = np.searchsorted(classes, y[test])
        losses[model.coef_path_.shape[2] :] = np.inf  # glmnet may stop its path early
        for a in range(min(len(grid), model.coef_path_.shape[2])):
            logits = X[test] @ model.coef_path_[:, :, a].T + model.intercept_path_[:, a]
            log_proba = log_softmax(np.asarray(logits), axis=1)
            losses[a] -= log_proba[np.arange(len(test)), target].mean() / n_folds
    path(np.arange(X.shape[0]))  # the refit on all rows, as cv.glmnet does
    return {"cv_log_loss": float(losses.min())}


def _seconds(peer):
    if "unavailable" in peer:
        return "unavailable"
    if peer.get("seconds") is not None:
        return f"{peer['seconds']:.2f} s"
    if peer.get("out_of_budget") is not None:
        return f"> {peer['out_of_budget']:.0f} s"
    notes = []
    if np.isfinite(peer.get("gap", np.inf)):
        notes.append(f"best gap {peer['gap']:.1e}")
    if peer.get("out_of_budget_at"):
        notes.append(f"out at tol {peer['out_of_budget_at']:g}")
    return "> budget" + (f" ({', '.join(notes)})" if notes else "")


def _loss(peer):
    loss = peer.get("cv_log_loss")
    return "–" if loss is None else f"{loss:.5f}"


def _gap(gap):
    """The true relative gap; below 1e-14 it is rounding in F (and may come out negative)."""
    return "< 1e-14" if gap < 1e-14 else f"{gap:.0e}"


def _ratio(ours, peer):
    if peer.get("seconds") is None or "unavailable" in peer:
        return "–"
    return f"{peer['seconds'] / ours['seconds']:.1f}×"


def table(results, command, when):
    """The BENCHMARKS.md section (between the sparse markers) from ``results``."""
    lines = [
        START,
        "## Sparse models: elastic net and L1 (issue 14)",
        "",
        f"{command} on {when}. Each row gives the 1-minute load average at its start and end "
        "(2 cores, shared): absolute times are noisy, ratios within one row less so. A ratio "
        "is the peer's time over softreg's (above 1: softreg is faster).",
        "",
        "Time to a relative objective gap `(F - F*)/F* ≤ 1e-6` at `alpha = 0.1 alpha_max`, "
        "`F*` from softreg at `tol=1e-11`. softreg (newton-cd) stops on its own certificate "
        "(`tol=1e-6`); saga and cyanure run a ladder of tolerances `1e-1 … 1e-8` and the first "
        "rung within 1e-6 counts (the time of that rung alone, the cheaper rungs before it "
        "not added); a peer out of budget shows its best gap.",
        "",
        "| case | l1_ratio | softreg | saga | ratio | cyanure (L1) | ratio | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in (r for r in results if r["race"] == "fit"):
        ours = row["softreg"]
        cyanure = row.get("cyanure")
        lines.append(
            f"| {row['case']} {row['shape']} | {row['l1_ratio']} | {ours['seconds']:.2f} s "
            f"({ours['n_iter']} it., true gap {_gap(ours['gap'])}) | "
            f"{_seconds(row['saga'])} | {_ratio(ours, row['saga'])} | "
            f"{_seconds(cyanure) if cyanure else '–'} | "
            f"{_ratio(ours, cyanure) if cyanure else '–'} | "
            f"{row['load'][0]:.1f} → {row['load'][1]:.1f} |"
        )
    cv_rows = [r for r in results if r["race"] == "cv"]
    if cv_rows:
        lines += [
            "",
            "Path and cross-validation: 30 alphas from `alpha_max` down to `1e-3 alpha_max`, "
            "5 stratified folds, each tool's best mean CV log-loss; softreg's "
            "`SoftmaxRegressionCV` (certified, warm-started paths, folds in parallel) against "
            "`LogisticRegressionCV(solver='saga', l1_ratios=[...])` on the same grid (its "
            "defaults: `tol=1e-4`, `max_iter=100`) and glmnet's `LogitNet` (Fortran, "
            "`standardize=False`, same `lambda_path`), each peer in a child with the CV budget.",
            "",
            "| case | l1_ratio | softreg | CV log-loss | saga CV | ratio | CV log-loss | "
            "glmnet | ratio | CV log-loss | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in cv_rows:
            ours, saga, glmnet = row["softreg"], row["sklearn_saga"], row["glmnet"]
            lines.append(
                f"| {row['case']} | {row['l1_ratio']} | {ours['seconds']:.1f} s | "
                f"{ours['cv_log_loss']:.5f} | {_seconds(saga)} | {_ratio(ours, saga)} | "
                f"{_loss(saga)} | {_seconds(glmnet)} | {_ratio(ours, glmnet)} | {_loss(glmnet)} | "
                f"{row['load'][0]:.1f} → {row['load'][1]:.1f} |"
            )
    lines += ["", "Against the issue's goals (from the rows above):", ""]
    lines += [f"* {line}" for line in goals(results)]
    lines += ["", END]
    return "\n".join(lines)


def goals(results):
    """One line per race and goal: met or not, with the ratio it rests on."""
    out = []
    for row in results:
        where = f"{row['case']}, l1_ratio {row['l1_ratio']}"
        ours = row["softreg"]
        if row["race"] == "fit":
            for peer, target in (("saga", 10.0), ("cyanure", 1.0)):
                if peer not in row or "unavailable" in row[peer]:
                    continue
                verdict = _verdict(ours, row[peer], target)
                out.append(f"{where}: ≥ {target:g}× faster than {peer} to a 1e-6 gap: {verdict}")
            continue
        for peer, target, label in (("sklearn_saga", 10.0, "LogisticRegressionCV(saga)"),
                                    ("glmnet", 1.0, "glmnet LogitNet")):  # fmt: skip
            verdict = _verdict(ours, row[peer], target)
            theirs = row[peer].get("cv_log_loss")
            loss = (
                f"CV log-loss {ours['cv_log_loss']:.5f} against {theirs:.5f}"
                if theirs is not None
                else "no CV log-loss from the peer"
            )
            out.append(f"{where}: path + CV ≥ {target:g}× faster than {label}: {verdict}; {loss}")
    return out


def _verdict(ours, peer, target):
    """Met or not; a peer out of its budget ``B`` gives only the lower bound ``B / ours``."""
    if peer.get("seconds") is None:
        budget = peer.get("out_of_budget", peer.get("budget"))
        if budget is None:
            return f"peer {_seconds(peer)}, no ratio"
        bound = budget / ours["seconds"]
        verdict = "met" if bound >= target else "not shown"
        return f"{verdict} (peer {_seconds(peer)}: > {bound:.1f}×)"
    ratio = peer["seconds"] / ours["seconds"]
    return f"{'met' if ratio >= target else 'NOT met'} ({ratio:.2f}×)"


def write_section(text):
    """Replace the sparse section of BENCHMARKS.md in place (appended when it is missing)."""
    previous = BENCHMARKS_MD.read_text()
    if START in previous and END in previous:
        before, rest = previous.split(START, 1)
        updated = before + text + rest.split(END, 1)[1]
    else:
        updated = previous.rstrip("\n") + "\n\n" + text + "\n"
    BENCHMARKS_MD.write_text(updated)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=["letter:fit", "sector:fit", "letter:cv"])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per fit race peer")
    parser.add_argument("--cv-budget", type=float, default=300.0, help="seconds per CV peer")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument(
        "--from-results",
        action="store_true",
        help="no runs: the table from benchmarks/results/sparse.json (with --write, written); "
        "rows from several runs may be concatenated there",
    )
    args = parser.parse_args(argv)
    command = "python -m benchmarks.sparse " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.from_results:
        results = json.loads((RESULTS_DIR / "sparse.json").read_text())
        runs = dict.fromkeys((row.get("command", "?"), row.get("when", "?")) for row in results)
        if len(runs) == 1:
            (run, when), *_ = runs
            text = table(results, f"`{run}`", when)
        else:  # rows of several runs, concatenated
            described = " and ".join(f"`{run}` ({when})" for run, when in runs)
            text = table(results, described, "those times (compare ratios within a row only)")
        print(text)
        if args.write:
            write_section(text)
        return
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = []
    for case in args.cases:
        name, race = case.split(":")
        if race not in ("fit", "cv"):
            raise SystemExit(f"--cases: each case is NAME:fit or NAME:cv; got {case!r}.")
        data = load(name)
        X, y = data.X_train, data.y_train
        for l1_ratio in (1.0, 0.5):
            start_load = os.getloadavg()[0]
            if race == "fit":
                row = fit_race(X, y, l1_ratio, args.budget)
            else:
                row = cv_race(X, y, l1_ratio, args.cv_budget)
            shape = f"{X.shape[0]} × {X.shape[1]} × {len(np.unique(y))}"
            shape += ", CSR" if hasattr(X, "tocsr") else ", dense"
            row.update({"case": name, "race": race, "shape": shape})
            row["load"] = [start_load, os.getloadavg()[0]]
            row.update({"command": command.strip(), "when": when})
            print(json.dumps(row), flush=True)
            results.append(row)
            # After every row, so that a run stopped early keeps what it measured.
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            (RESULTS_DIR / "sparse.json").write_text(json.dumps(results, indent=1))
    text = table(results, f"`{command.strip()}`", when)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
