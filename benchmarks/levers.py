"""``python -m benchmarks.levers``: what each speed lever buys, each measured on and off.

One run, one machine, median of ``--repeats`` timings per row. The levers:

- BLAS threads: one loss+gradient pass with one BLAS thread and with all of them;
- curvature cache: a Newton-CG fit with block probabilities kept between Hessian-vector
  products, and recomputed every time (``_CURVATURE_CACHE_BYTES = 0``);
- intercept polish: fits to a tight certificate with and without it;
- starting point: intercept at the log class priors, and at zero;
- float32 end to end: one pass on float32 data against the same data in float64;
- fused kernels: one pass with the compiled per-block kernels and with their NumPy twins;
- cache-sized blocks: one pass in today's blocks and in blocks of 2**20 logits (the old size);
- scipy's BLAS pool: an L-BFGS fit with scipy's own OpenBLAS limited to one thread and not;
- subsampled Hessian: a Newton-CG fit with the strided-subset Hessian and with every row;
- exp floor: one pass at a point whose logits span thousands, floored and not;
- transposed sparse layout: one pass on CSR data with ``coef`` stored (D, K) and (K, D);
- Kronecker preconditioner: a Newton-CG fit with preconditioned CG and with plain CG;
- certificate-tied forcing: a Newton-CG fit whose CG tolerance stops tightening once the
  certificate's target is in reach, and with the superlinear term ``‖g‖^power`` alone;
- forcing ``‖g‖^(1/4)``: a Newton-CG fit (every product a full pass) whose CG tolerance
  tightens as ``‖g‖^(1/4)``, and as Eisenstat–Walker's ``sqrt(‖g‖)`` (both tied to the
  certificate);
- one threadpoolctl scan: a small fit with the scan of loaded libraries done once per process,
  and done at every fit (as before);
- serving fast path: ``predict_proba`` on one row of 784 features, with and without
  scikit-learn's input validation;
- Rᵀ X as (Xᵀ R)ᵀ: one Hessian-vector product with the dense ``Rᵀ X`` computed as the
  transpose of ``Xᵀ R`` (OpenBLAS's better-shaped call) and as ``R.T @ X``.

``--levers NAME ...`` runs only the named levers.

Prints a Markdown table for BENCHMARKS.md and writes ``benchmarks/results/levers.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks import datasets
from benchmarks.datasets import RESULTS_DIR, DataUnavailableError


def median_time(function, repeats, warm_up=True):
    if warm_up:
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def objective_for(dataset, alpha, dtype=None):
    from softreg._objective import Objective, SoftmaxLoss, in_memory

    X = dataset.X_train if dtype is None else dataset.X_train.astype(dtype)
    K = dataset.n_classes
    objective = Objective(
        SoftmaxLoss(K),
        in_memory(X, dataset.y_train, n_outputs=K),
        alpha=alpha,
        fit_intercept=True,
    )
    theta = np.random.default_rng(0).normal(scale=0.01, size=objective.n_params)
    return objective, theta


def fit(dataset, **params):
    from softreg import SoftmaxRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SoftmaxRegression(max_iter=10_000, **params).fit(dataset.X_train, dataset.y_train)


@contextmanager
def patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def lever_threads(dataset, repeats):
    objective, theta = objective_for(dataset, 1e-2)
    with threadpool_limits(limits=1, user_api="blas"):
        one = median_time(lambda: objective.loss_gradient(theta), repeats)
    many = median_time(lambda: objective.loss_gradient(theta), repeats)
    return {"on": one, "off": many, "what": "one pass, 1 BLAS thread (on) vs all (off)"}


def summary(model):
    relative = model.optimality_gap_bound_ / model.objective_
    return f"{model.n_iter_} it, certified {relative:.1e}, converged {model.converged_}"


def fits_with_and_without(run, repeats, obj, name, value, what):
    """Time the fit ``run()`` as it is, then with ``obj.name`` patched to ``value``."""
    on_model = run()  # also the warm-up
    on = median_time(run, repeats, warm_up=False)
    with patched(obj, name, value):
        off_model = run()
        off = median_time(run, repeats, warm_up=False)
    return {
        "on": on,
        "off": off,
        "what": what,
        "detail": f"with: {summary(on_model)}; without: {summary(off_model)}",
    }


def lever_curvature_cache(dataset, repeats):
    from softreg import _objective

    return fits_with_and_without(
        lambda: fit(dataset, alpha=1e-2, solver="newton-cg"),
        repeats,
        _objective,
        "_CURVATURE_CACHE_BYTES",
        0,
        "Newton-CG fit, probabilities cached vs recomputed",
    )


def lever_polish(dataset, repeats, solver):
    from softreg._objective import Objective

    return fits_with_and_without(
        lambda: fit(dataset, alpha=1e-4, solver=solver, tol=1e-9),
        repeats,
        Objective,
        "can_polish_intercept",
        lambda self: False,
        f"{solver} fit to tol 1e-9 (alpha 1e-4)",
    )


def lever_start(dataset, repeats):
    from softreg import _estimator

    return fits_with_and_without(
        lambda: fit(dataset, alpha=1e-2, solver="newton-cg"),
        repeats,
        _estimator,
        "_log_prior",
        lambda loss, target, weight: 0.0,
        "Newton-CG fit from log-prior intercepts vs zeros",
    )


def lever_scipy_pool(dataset, repeats):
    import contextlib

    from softreg import _solvers

    return fits_with_and_without(
        lambda: fit(dataset, alpha=1e-2, solver="lbfgs"),
        repeats,
        _solvers,
        "scipy_blas_single_thread",
        contextlib.nullcontext,
        "L-BFGS fit, scipy's BLAS pool at 1 thread vs all",
    )


def lever_subsample(dataset, repeats):
    from softreg._objective import Objective

    return fits_with_and_without(
        lambda: fit(dataset, alpha=1e-4, solver="newton-cg"),
        repeats,
        Objective,
        "hessian_subsample",
        lambda self: 1,
        "Newton-CG fit (alpha 1e-4), subsampled Hessian vs every row",
    )


def lever_float32(dataset, repeats):
    objective32, theta = objective_for(dataset, 1e-2, np.float32)
    objective64, _ = objective_for(dataset, 1e-2, np.float64)
    on = median_time(lambda: objective32.loss_gradient(theta), repeats)
    off = median_time(lambda: objective64.loss_gradient(theta), repeats)
    return {"on": on, "off": off, "what": "one pass in float32 vs the same data in float64"}


def lever_fused(dataset, repeats):
    from softreg import _fused

    objective, theta = objective_for(dataset, 1e-2)
    on = median_time(lambda: objective.loss_gradient(theta), repeats)
    with patched(_fused, "ENABLED", False):
        off = median_time(lambda: objective.loss_gradient(theta), repeats)
    return {"on": on, "off": off, "what": "one pass, compiled kernels vs NumPy"}


def lever_blocks(dataset, repeats):
    from softreg import _sources

    objective, theta = objective_for(dataset, 1e-2)
    on = median_time(lambda: objective.loss_gradient(theta), repeats)
    with (
        patched(_sources, "_BLOCK_ENTRIES", 2**20),
        patched(_sources, "_BLOCK_X_BYTES", 2**40),
    ):
        objective, theta = objective_for(dataset, 1e-2)
        off = median_time(lambda: objective.loss_gradient(theta), repeats)
    return {"on": on, "off": off, "what": "one pass, cache-sized blocks vs 2**20 logits"}


def lever_exp_floor(dataset, repeats):
    from softreg import _fused

    objective, theta = objective_for(dataset, 1e-2)
    theta = theta * 3e4  # logits thousands apart, as a line search's trial steps produce
    on = median_time(lambda: objective.loss_gradient(theta), repeats)
    floors = {np.dtype(np.float64): -np.inf, np.dtype(np.float32): -np.inf}
    with patched(_fused, "EXP_FLOOR", floors):
        off = median_time(lambda: objective.loss_gradient(theta), repeats)
    return {"on": on, "off": off, "what": "one pass at logits thousands apart, floored vs not"}


def lever_sparse_layout(dataset, repeats):
    from softreg._objective import Objective, SoftmaxLoss, in_memory

    X, K = dataset.X_train, dataset.n_classes
    times = {}
    for transposed in (True, False):
        objective = Objective(
            SoftmaxLoss(K),
            in_memory(X, dataset.y_train, n_outputs=K),
            alpha=1e-2,
            fit_intercept=True,
            transposed_coef=transposed,
        )
        theta = np.random.default_rng(0).normal(scale=0.01, size=objective.n_params)
        times[transposed] = median_time(lambda o=objective, t=theta: o.loss_gradient(t), repeats)
    return {"on": times[True], "off": times[False], "what": "one pass, coef (D, K) vs (K, D)"}


def counted_products():
    """A patch counting Hessian-vector products: ``(patched, counts)``."""
    from softreg import _objective

    counts = []
    original = _objective.HessianProduct.__call__

    def counting(self, v):
        counts.append(1)
        return original(self, v)

    return patched(_objective.HessianProduct, "__call__", counting), counts


def fits_counting_products(run, repeats, obj, name, value, what):
    """:func:`fits_with_and_without`, with the Hessian-vector products of each fit counted."""
    patch, counts = counted_products()
    with patch:
        counts.clear()
        run()
        on_products = len(counts)
        with patched(obj, name, value):
            counts.clear()
            run()
            off_products = len(counts)
        result = fits_with_and_without(run, repeats, obj, name, value, what)
    result["detail"] = (
        f"{on_products} against {off_products} Hessian-vector products; " + result["detail"]
    )
    return result


def lever_preconditioner(dataset, repeats, alpha=1e-4):
    from softreg import _preconditioner

    return fits_counting_products(
        lambda: fit(dataset, alpha=alpha, solver="newton-cg"),
        repeats,
        _preconditioner,
        "worth_it",
        lambda moments, alpha: False,
        f"Newton-CG fit (alpha {alpha:g}), Kronecker-preconditioned CG vs plain",
    )


def lever_forcing(dataset, repeats):

    from softreg import _solvers

    return fits_counting_products(
        lambda: fit(dataset, alpha=1e-4, solver="newton-cg"),
        repeats,
        _solvers,
        "_forcing",
        lambda evaluation, monitor, power: min(0.5, evaluation.gradient_norm**power),
        "Newton-CG fit (alpha 1e-4), forcing tied to the certificate vs ‖g‖^power alone",
    )


def lever_forcing_power(dataset, repeats, tol=1e-6):
    from softreg import _solvers

    return fits_counting_products(
        lambda: fit(dataset, alpha=1e-4, solver="newton-cg", tol=tol),
        repeats,
        _solvers,
        "_FULL_PASS_FORCING_POWER",
        0.5,
        f"Newton-CG fit (alpha 1e-4, tol {tol:g}), forcing ‖g‖^(1/4) vs sqrt(‖g‖)",
    )


def lever_thread_scan(dataset, repeats):
    from threadpoolctl import ThreadpoolController

    from softreg import _threads

    def scan_every_time():
        return ThreadpoolController()

    with patched(_threads, "_scipy_blas", _threads._scipy_blas.__wrapped__):
        return fits_with_and_without(
            lambda: fit(dataset, alpha=1e-2, solver="lbfgs"),
            repeats,
            _threads,
            "_controller",
            scan_every_time,
            "L-BFGS fit (alpha 1e-2), library scan once per process vs every fit",
        )


def lever_serving(dataset, repeats):
    from softreg import SoftmaxRegression

    rows = min(dataset.X_train.shape[0], 2000)
    model = SoftmaxRegression(alpha=1e-2, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(dataset.X_train[:rows], dataset.y_train[:rows])
    row = np.ascontiguousarray(dataset.X_test[:1])
    many = max(200, repeats * 200)  # one call takes microseconds: time many, take the median
    on = median_time(lambda: model.predict_proba(row), many)
    with patched(SoftmaxRegression, "_servable", lambda self, X: False):
        off = median_time(lambda: model.predict_proba(row), many)
    return {"on": on, "off": off, "what": "predict_proba, one row, fast path vs validated"}


def lever_rows_t_x(dataset, repeats):
    from softreg import _objective

    objective, theta = objective_for(dataset, 1e-2)
    product = objective.hessp(theta)
    v = np.random.default_rng(1).normal(size=objective.n_params)
    many = max(20, repeats * 20)  # a product takes well under a millisecond on small data
    on = median_time(lambda: product(v), many)
    with patched(_objective, "_rows_t_x", _rows_t_x_untransposed):
        off = median_time(lambda: product(v), many)
    return {"on": on, "off": off, "what": "one Hessian-vector product, (Xᵀ R)ᵀ vs R.T @ X"}


def _rows_t_x_untransposed(R, X):
    """The dense ``Rᵀ X`` as it was computed before: ``R.T @ X``."""
    return R.T @ X


PLAN = (
    ("BLAS threads", "digits", lever_threads),
    ("BLAS threads", "letter", lever_threads),
    ("BLAS threads", "synthetic-100000x784x10-float64", lever_threads),
    ("curvature cache", "letter", lever_curvature_cache),
    ("curvature cache", "synthetic-20000x500x100-float64", lever_curvature_cache),
    ("intercept polish", "digits", lambda d, r: lever_polish(d, r, "lbfgs")),
    ("intercept polish", "letter", lambda d, r: lever_polish(d, r, "newton-cg")),
    ("log-prior start", "letter", lever_start),
    ("log-prior start", "digits", lever_start),
    ("float32 end to end", "synthetic-500000x54x7-float32", lever_float32),
    ("fused kernels", "letter", lever_fused),
    ("fused kernels", "synthetic-500000x54x7-float64", lever_fused),
    ("fused kernels", "synthetic-100000x784x10-float64", lever_fused),
    ("cache-sized blocks", "letter", lever_blocks),
    ("cache-sized blocks", "synthetic-500000x54x7-float64", lever_blocks),
    ("cache-sized blocks", "synthetic-100000x784x10-float64", lever_blocks),
    ("cache-sized blocks", "sector", lever_blocks),
    ("scipy BLAS pool", "synthetic-500000x54x7-float64", lever_scipy_pool),
    ("scipy BLAS pool", "synthetic-100000x784x10-float64", lever_scipy_pool),
    ("subsampled Hessian", "synthetic-500000x54x7-float64", lever_subsample),
    ("exp floor", "synthetic-500000x54x7-float64", lever_exp_floor),
    ("transposed sparse layout", "sector", lever_sparse_layout),
    ("Kronecker preconditioner", "digits", lever_preconditioner),
    ("Kronecker preconditioner", "letter", lever_preconditioner),
    ("Kronecker preconditioner", "digits-standardised", lever_preconditioner),
    ("Kronecker preconditioner", "letter", lambda d, r: lever_preconditioner(d, r, 1e-2)),
    (
        "Kronecker preconditioner",
        "synthetic-50000x100x5-float64-spread20",
        lever_preconditioner,
    ),
    ("certificate-tied forcing", "digits-standardised", lever_forcing),
    ("certificate-tied forcing", "letter", lever_forcing),
    ("forcing ‖g‖^(1/4)", "digits-standardised", lever_forcing_power),
    ("forcing ‖g‖^(1/4)", "digits", lever_forcing_power),
    ("forcing ‖g‖^(1/4)", "letter", lever_forcing_power),
    ("forcing ‖g‖^(1/4)", "digits-standardised", lambda d, r: lever_forcing_power(d, r, 1e-10)),
    ("one threadpoolctl scan", "digits", lever_thread_scan),
    ("serving fast path", "synthetic-100000x784x10-float64", lever_serving),
    ("Rᵀ X as (Xᵀ R)ᵀ", "digits", lever_rows_t_x),
    ("Rᵀ X as (Xᵀ R)ᵀ", "digits-standardised", lever_rows_t_x),
    ("Rᵀ X as (Xᵀ R)ᵀ", "letter", lever_rows_t_x),
    ("Rᵀ X as (Xᵀ R)ᵀ", "synthetic-100000x784x10-float64", lever_rows_t_x),
    ("Rᵀ X as (Xᵀ R)ᵀ", "synthetic-20000x500x100-float64", lever_rows_t_x),
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--levers", nargs="+", metavar="NAME", help="only these levers")
    args = parser.parse_args(argv)
    plan = [row for row in PLAN if not args.levers or row[0] in args.levers]
    rows = []
    print("| lever | data set | what is timed | with | without | gain | notes |")
    print("|---|---|---|---|---|---|---|")
    for lever, name, measure in plan:
        try:
            dataset = datasets.load(name)
        except DataUnavailableError as error:
            print(f"| {lever} | {name} | skipped: {error} | | | | |")
            continue
        result = measure(dataset, args.repeats)
        rows.append({"lever": lever, "dataset": name, **result})
        gain = result["off"] / result["on"]
        print(
            f"| {lever} | {name} | {result['what']} | {result['on'] * 1e3:.3g} ms | "
            f"{result['off'] * 1e3:.3g} ms | {gain:.2f}× | {result.get('detail', '')} |",
            flush=True,
        )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "levers.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
