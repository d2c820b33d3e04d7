"""``python -m benchmarks.sparse [--cases ...] [--budget S]``: sparse models against their peers.

Two races per data set (dense ``letter``, sparse ``sector``; both from ``../shared/data``):

* ``fit``: time to a 1e-6 relative objective gap for one L1 (``l1_ratio=1``) and one elastic
  net (``l1_ratio=0.5``) problem at ``alpha = 0.1 alpha_max``. softreg stops on its own
  certificate (``tol=1e-6``); scikit-learn's saga and cyanure run a ladder of tolerances and
  the first rung whose objective is within 1e-6 of ``F*`` counts (``F*`` from softreg at
  ``tol=1e-11``, checked to be below every peer's objective).
* ``cv``: a 30-point path with 5-fold cross-validation: ``SoftmaxRegressionCV`` against
  ``LogisticRegressionCV(solver="saga", l1_ratios=[...])`` on the same grid and glmnet's
  ``LogitNet`` (Fortran, ``standardize=False``), with each tool's best mean CV log-loss.

Each peer gets ``--budget`` seconds per race; one that does not finish is reported as
"> budget". Results are printed as Markdown rows and written to
``benchmarks/results/sparse.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np

from benchmarks.datasets import RESULTS_DIR, load
from softreg import SoftmaxRegression, SoftmaxRegressionCV, alpha_max
from softreg._objective import objective_value
from softreg._path import alpha_grid
from softreg._penalties import ElasticNet

TARGET = 1e-6
LADDER = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)


def composite(X, y, coef, intercept, alpha, l1_ratio):
    """``F(W, b)`` in float64, the one evaluator every tool's answer goes through."""
    penalty = ElasticNet(alpha, l1_ratio)
    return objective_value(X, y, coef, intercept) + penalty.value(np.asarray(coef))


def timed(fit):
    start = time.perf_counter()
    out = fit()
    return time.perf_counter() - start, out


def ladder(fit_at, F_star, budget):
    """First tolerance rung within TARGET of F*: (seconds, F) or (None, best F)."""
    spent, best = 0.0, np.inf
    for tol in LADDER:
        seconds, F = timed(lambda tol=tol: fit_at(tol))
        F = F if isinstance(F, float) else F()
        spent += seconds
        best = min(best, F)
        if (F - F_star) / abs(F_star) <= TARGET:
            return seconds, F
        if spent > budget:
            break
    return None, best


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
        return lambda: composite(X, y, m.coef_, m.intercept_, alpha, l1_ratio)

    seconds, F = ladder(saga, F_star, budget)
    row["saga"] = {"seconds": seconds, "F": F}
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
                return lambda: composite(X, y, coef, intercept, alpha, l1_ratio)

            seconds, F = ladder(cyanure, F_star, budget)
            row["cyanure"] = {"seconds": seconds, "F": F}
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
    row["sklearn_saga"] = _sklearn_cv(X, y, grid, l1_ratio, n_folds, budget)
    row["glmnet"] = _glmnet_cv(X, y, grid, l1_ratio, n_folds)
    return row


def _sklearn_cv(X, y, grid, l1_ratio, n_folds, budget):
    from sklearn.linear_model import LogisticRegressionCV

    n_train = X.shape[0] * (n_folds - 1) / n_folds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds, model = timed(
            lambda: LogisticRegressionCV(
                Cs=list(1 / (grid * n_train)), l1_ratios=[l1_ratio], solver="saga", cv=n_folds,
                scoring="neg_log_loss", n_jobs=os.cpu_count(), max_iter=max(100, int(budget)),
            ).fit(X, y)
        )  # fmt: skip
    scores = np.asarray(next(iter(model.scores_.values()))).reshape(n_folds, -1)
    return {"seconds": seconds, "cv_log_loss": float(-scores.mean(axis=0).max())}


def _glmnet_cv(X, y, grid, l1_ratio, n_folds):
    try:
        from glmnet import LogitNet
    except ImportError as exc:  # pragma: no cover - optional peer
        return {"unavailable": str(exc)}
    seconds, model = timed(
        lambda: LogitNet(
            alpha=l1_ratio, lambda_path=grid, standardize=False, n_splits=n_folds,
            scoring="log_loss", n_jobs=os.cpu_count(),
        ).fit(X, y)
    )  # fmt: skip
    return {"seconds": seconds, "cv_log_loss": float(-np.max(model.cv_mean_score_))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=["letter:fit", "letter:cv", "sector:fit"])
    parser.add_argument("--budget", type=float, default=300.0)
    args = parser.parse_args(argv)
    results = []
    for case in args.cases:
        name, race = case.split(":")
        data = load(name)
        X, y = data.X_train, data.y_train
        for l1_ratio in (1.0, 0.5):
            row = fit_race(X, y, l1_ratio, args.budget) if race == "fit" else None
            if race == "cv":
                row = cv_race(X, y, l1_ratio, args.budget)
            row.update({"case": name, "race": race, "load": os.getloadavg()[0]})
            print(json.dumps(row), flush=True)
            results.append(row)
            # After every row, so that a run stopped early keeps what it measured.
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            (RESULTS_DIR / "sparse.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
