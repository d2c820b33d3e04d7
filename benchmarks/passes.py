"""One loss+gradient pass of each tool, and this machine's roofline for it.

The roofline time of one pass over ``X`` (``n`` rows, ``d`` features, ``K`` classes) is

.. math::

    t_{roof} = \\max\\Big(\\frac{\\text{bytes of } X}{\\text{read bandwidth}},
                         \\frac{4 n d K}{\\text{GEMM rate}}\\Big)

(two matrix products of ``2 n d K`` flops each: the logits ``X Wᵀ`` and the gradient
``(P - Y)ᵀ X``; for sparse ``X``, ``4 · nnz · K``). The read bandwidth and the GEMM rate are
measured in the same run: a reduction over an array far larger than the caches, and the
best of NumPy's and PyTorch's products of two 2048 × 2048 matrices.
"""

from __future__ import annotations

import statistics
import threading
import time

import numpy as np
import scipy.sparse as sp

_BANDWIDTH_BYTES = 2**29  # 512 MiB, far beyond any cache
_GEMM_SIZE = 2048


def time_call(function, budget=1.0, min_repeats=3, max_repeats=25) -> dict:
    """Median wall time of ``function()`` after one untimed warm-up call."""
    function()
    times = []
    start = time.perf_counter()
    while len(times) < max_repeats and (
        len(times) < min_repeats or time.perf_counter() - start < budget
    ):
        t0 = time.perf_counter()
        function()
        times.append(time.perf_counter() - t0)
    return {"median": statistics.median(times), "min": min(times), "repeats": len(times)}


def read_bandwidth(threads: int) -> float:
    """Bytes per second read by summing a 512 MiB float64 array, split over ``threads``."""
    x = np.ones(_BANDWIDTH_BYTES // 8)
    parts = np.array_split(x, threads)

    def read_all():
        # NumPy's reductions release the GIL, so the threads read concurrently.
        workers = [threading.Thread(target=np.add.reduce, args=(part,)) for part in parts]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    return x.nbytes / time_call(read_all, budget=2.0, min_repeats=5)["min"]


def gemm_rate(dtype, threads: int) -> dict:
    """Flops per second of a 2048³ matrix product: NumPy (OpenBLAS) and PyTorch (MKL)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((_GEMM_SIZE, _GEMM_SIZE)).astype(dtype)
    b = rng.standard_normal((_GEMM_SIZE, _GEMM_SIZE)).astype(dtype)
    flops = 2.0 * _GEMM_SIZE**3
    rates = {"numpy": flops / time_call(lambda: a @ b, budget=1.5)["min"]}
    try:
        import torch
    except ImportError:
        return rates
    torch.set_num_threads(threads)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    rates["torch"] = flops / time_call(lambda: ta @ tb, budget=1.5)["min"]
    return rates


def machine_rates(threads: int) -> dict:
    """The roofline's two rates at ``threads`` threads."""
    return {
        "read_bandwidth": read_bandwidth(threads),
        "gemm": {
            "float64": gemm_rate(np.float64, threads),
            "float32": gemm_rate(np.float32, threads),
        },
    }


def pass_work(X, n_classes: int) -> dict:
    """Bytes read and flops of one loss+gradient pass over ``X``."""
    if sp.issparse(X):
        nbytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
        flops = 4.0 * X.nnz * n_classes
    else:
        nbytes = X.nbytes
        flops = 4.0 * X.shape[0] * X.shape[1] * n_classes
    return {"bytes": nbytes, "flops": flops}


def roofline_seconds(work: dict, rates: dict, dtype: str) -> dict:
    gemm = max(rates["gemm"][dtype].values())
    memory_time = work["bytes"] / rates["read_bandwidth"]
    compute_time = work["flops"] / gemm
    return {
        "seconds": max(memory_time, compute_time),
        "bound": "memory" if memory_time >= compute_time else "compute",
        "memory_seconds": memory_time,
        "compute_seconds": compute_time,
    }


# --- the three loss+gradient passes -------------------------------------------------------


def softreg_pass(X, y, n_classes, coef, intercept, alpha):
    """softreg's ``Objective.loss_gradient``: what its solvers call once per iteration."""
    from softreg._objective import Objective, SoftmaxLoss, in_memory

    objective = Objective(
        SoftmaxLoss(n_classes),
        in_memory(X, y),
        alpha=alpha,
        fit_intercept=True,
    )
    theta = objective.pack(coef, intercept)

    def run():
        return objective.loss_gradient(theta).objective

    return run


def sklearn_pass(X, y, n_classes, coef, intercept, alpha, threads):
    """scikit-learn's ``LinearModelLoss.loss_gradient``, as its lbfgs solver calls it."""
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    loss = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=n_classes), fit_intercept=True)
    # lbfgs passes the parameters ravelled in Fortran order (classes contiguous).
    parameters = np.column_stack([coef, intercept]).astype(X.dtype).ravel(order="F")
    target = y.astype(X.dtype)

    def run():
        value, _ = loss.loss_gradient(parameters, X, target, None, alpha, threads)
        return float(value)

    return run


def torch_pass(X, y, n_classes, coef, intercept, alpha):
    """PyTorch: ``cross_entropy(X Wᵀ + b) + (alpha/2)‖W‖²`` forward, then ``backward()``."""
    import torch
    from torch.nn import functional

    from benchmarks.tools import _torch_input

    dtype = np.float32 if X.dtype == np.float32 else np.float64
    X_torch = _torch_input(X, dtype)
    y_torch = torch.from_numpy(np.asarray(y, dtype=np.int64))
    weight = torch.tensor(coef.astype(dtype), requires_grad=True)
    bias = torch.tensor(intercept.astype(dtype), requires_grad=True)
    sparse = X_torch.layout == torch.sparse_csr

    def run():
        weight.grad = None
        bias.grad = None
        logits = (torch.sparse.mm(X_torch, weight.T) if sparse else X_torch @ weight.T) + bias
        loss = functional.cross_entropy(logits, y_torch) + 0.5 * alpha * torch.sum(weight * weight)
        loss.backward()
        return float(loss.detach())

    return run
