"""How many BLAS threads a fit should use.

Small matrix products lose badly to thread start-up and synchronisation: on a 2-core machine a
1797 × 64 × 10 product (digits) ran 20× slower with two OpenBLAS threads than with one while
the other core was busy. Work per pass below the threshold runs single-threaded; larger
problems keep the library's default. `make bench` measures both sides of the threshold.

Above it, a second thread gains at most 2× on 2 cores, but loses far more when it has to wait
for a core another process holds: OpenBLAS's threads meet at a barrier in every call, and the
blocks' calls are short. Measured at load average 9-10 on 2 cores, passes of 20-94 M
multiply-adds (32000 × 64 × 10 to 12000 × 784 × 10) took 3-108× longer, and Hessian-vector
products 4-28× longer, on two threads than on one. So the library's default is kept only while
the machine has a core to spare (:func:`_cores_taken`); the threshold itself was measured on a
quiet machine (letter, 6 M, 2.35× faster on one thread; 100000 × 784 × 10, 784 M, 1.4× faster
on two).

threadpoolctl finds the thread pools by scanning every loaded shared library, 2–25 ms per
scan (more on a busy machine), so the scan is done once per process (:func:`_controller`):
the BLAS libraries that matter (NumPy's and scipy's) are loaded with softreg itself.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

from threadpoolctl import ThreadpoolController

# Multiply-adds per pass (n_samples × n_features × n_outputs) below which one thread is faster.
SINGLE_THREAD_BELOW = 20_000_000


@functools.cache
def _controller() -> ThreadpoolController:
    """The thread pools of the libraries loaded in this process, scanned once."""
    return ThreadpoolController()


@functools.cache
def _scipy_blas():
    """The controllers of the BLAS libraries that scipy bundles (not NumPy's)."""
    import scipy

    scipy_root = str(Path(scipy.__file__).resolve().parent)
    return [
        library
        for library in _controller().lib_controllers
        if library.user_api == "blas"
        and str(Path(library.filepath).resolve()).startswith(scipy_root)  # scipy/, scipy.libs/
    ]


def _cores_taken() -> bool:
    """Whether other work already holds the cores: the 1-minute load average, which counts
    this process's own threads too, at least one more than the cores (False where the system
    reports no load average)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        return False
    return load >= (os.cpu_count() or 1) + 1


def one_blas_thread():
    """Context manager running BLAS on one thread (the previous setting restored after)."""
    return _controller().limit(limits=1, user_api="blas")


def blas_threads(n_samples: int, n_features: int, n_outputs: int):
    """Context manager limiting BLAS to one thread for small problems, or while the cores are
    taken by other work; a no-op otherwise."""
    if n_samples * n_features * n_outputs < SINGLE_THREAD_BELOW or _cores_taken():
        return one_blas_thread()
    return contextlib.nullcontext()


@contextlib.contextmanager
def scipy_blas_single_thread():
    """Run with the BLAS that scipy bundles (not NumPy's) limited to one thread.

    scipy's and NumPy's wheels each ship their own OpenBLAS, with a thread pool each. L-BFGS-B
    does its small vector algebra through scipy's; that pool's threads then spin, waiting for
    more work, on the cores NumPy's pool needs for the next pass over the data. Measured on
    500000 × 54 × 7 (2 cores): a pass took 100–150 ms between L-BFGS-B iterations against
    47–56 ms in a plain loop, and 55 ms with scipy's pool limited to one thread. Where scipy
    and NumPy share one BLAS (system or conda builds) there is one pool and nothing changes.
    """
    libraries = _scipy_blas()
    before = [library.num_threads for library in libraries]
    try:
        for library in libraries:
            library.set_num_threads(1)
        yield
    finally:
        for library, threads in zip(libraries, before, strict=True):
            library.set_num_threads(threads)
