"""Fused per-block kernels for the softmax objective, compiled with numba.

The matrix products stay with BLAS and ``exp`` with NumPy (its SIMD ``exp`` is ~5× faster
than the scalar libm ``exp`` a numba loop calls); everything between them, which NumPy
does in about ten passes over the block's logits (row max, shift, row sums, log, normalise,
the target's logit, entropy, residual, weights, column sums), is done here in one pass per
row while the row is in cache, accumulating the sums in float64.

Each kernel has a NumPy twin in :mod:`softreg._objective` (the reference the tests compare
against, and the path taken when numba is missing or ``SOFTREG_DISABLE_NUMBA=1`` is set).
"""

from __future__ import annotations

import math
import os

import numpy as np

try:  # pragma: no cover - exercised by the import itself
    if os.environ.get("SOFTREG_DISABLE_NUMBA", "") not in ("", "0"):
        raise ImportError("disabled by SOFTREG_DISABLE_NUMBA")
    from numba import njit
except ImportError:  # pragma: no cover - the NumPy path is tested with ENABLED = False
    njit = None

ENABLED = njit is not None


def _jit(function):
    if njit is None:
        return function
    # cache=True writes the machine code beside this file, so only the first use compiles.
    # "reassoc" lets sums over a row be vectorised (their order, hence their last bit, may
    # differ from NumPy's) and "contract" allows fused multiply-adds; no flag assumes finite
    # values, so inf and NaN propagate as in NumPy. Measured on letter's blocks (5041 × 26):
    # 340 µs per block in IEEE order, 124 µs with these flags and a local accumulator.
    return njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})(function)


# The arguments of exp are floored so that no probability is subnormal: NumPy's float64 exp
# leaves its SIMD path for arguments below about -708 (6-20× slower per element), and
# subnormal probabilities then slow every product they enter (the kernels', BLAS's). Line
# searches visit such logits. exp(-600) = 2.6e-261 (float64) and exp(-80) = 1.8e-35
# (float32) stand in for anything smaller: next to the row's largest term, 1, no sum of
# probabilities or residuals can see the difference, and products with them stay normal.
# The loss and the entropy use the shifted logits themselves, never floored. Measured on
# 500000 × 54 × 7 at logits thousands apart: 72 ms per pass unfloored, 84 ms floored at
# -708 (subnormal products), 51 ms floored at -600, as at ordinary logits.
EXP_FLOOR = {np.dtype(np.float64): -600.0, np.dtype(np.float32): -80.0}


@_jit
def shift_rows(logits, intercept, floor, exp_arguments):  # pragma: no cover - compiled
    """Shift each row of ``logits + b`` by its max, in place; ``b`` may be empty.

    ``exp_arguments`` receives the shifted logits floored at ``floor`` (it may be ``logits``
    itself when the shifted logits are not needed afterwards).
    """
    n, K = logits.shape
    add = intercept.shape[0] > 0
    for i in range(n):
        top = -np.inf
        for k in range(K):
            value = logits[i, k]
            if add:
                value += intercept[k]
                logits[i, k] = value
            top = max(top, value)
        for k in range(K):
            value = logits[i, k] - top
            logits[i, k] = value
            exp_arguments[i, k] = max(value, floor)


@_jit
def _row_log_norm(proba, i):  # pragma: no cover - compiled
    """``log Σ_k e^{z_ik}`` of a shifted row (``proba`` holds its exponentials) and ``1/Σ``."""
    norm = 0.0
    for k in range(proba.shape[1]):
        norm += proba[i, k]
    return math.log(norm), 1.0 / norm


@_jit
def hard_label_sums(
    shifted, proba, codes, weight, smoothing, want_entropy, grad_intercept
):  # pragma: no cover - compiled
    """Loss, entropy and weight sums of a block of hard labels; the residual into ``proba``.

    On entry ``proba`` holds ``exp(shifted)``; on exit ``s_i (p_i - y_i)``, ``y_i`` the
    one-hot target of ``codes[i]`` smoothed to ``(1 - ε) y + ε / K``. ``grad_intercept``
    (float64, K) receives ``Σ_i s_i (p_i - y_i)``. Returns ``(Σ s_i CE_i, Σ s_i H(p_i), Σ s_i)``
    with ``CE_i = logsumexp(z_i) - y_iᵀ z_i`` (for ε = 0 the notes' ``logsumexp(z) - z_a``)
    and ``H(p_i) = logsumexp(z_i) - p_iᵀ z_i``: no log of a probability is ever taken.
    """
    n, K = shifted.shape
    weighted = weight.shape[0] > 0
    off = smoothing / K
    on = 1.0 - smoothing
    column_sums = np.zeros(K)  # local, so the compiler knows it aliases nothing
    loss = 0.0
    entropy = 0.0
    total = 0.0
    for i in range(n):
        s = weight[i] if weighted else 1.0
        log_norm, inverse = _row_log_norm(proba, i)
        # Branch-free inner loop (it vectorises); the label's entry is corrected after it.
        p_dot_z = 0.0
        z_sum = 0.0
        for k in range(K):
            p = proba[i, k] * inverse
            z = shifted[i, k]
            z_sum += z
            p_dot_z += p * z
            residual = s * (p - off)
            proba[i, k] = residual
            column_sums[k] += residual
        a = codes[i]
        proba[i, a] -= s * on
        column_sums[a] -= s * on
        loss += s * (log_norm - on * shifted[i, a] - off * z_sum)
        if want_entropy:
            entropy += s * (log_norm - p_dot_z)
        total += s
    grad_intercept += column_sums
    return loss, entropy, total


@_jit
def soft_label_sums(
    shifted, proba, targets, weight, smoothing, want_entropy, grad_intercept
):  # pragma: no cover - compiled
    """As :func:`hard_label_sums` for a matrix of probability targets ``(n, K)``."""
    n, K = shifted.shape
    weighted = weight.shape[0] > 0
    off = smoothing / K
    on = 1.0 - smoothing
    column_sums = np.zeros(K)
    loss = 0.0
    entropy = 0.0
    total = 0.0
    for i in range(n):
        s = weight[i] if weighted else 1.0
        log_norm, inverse = _row_log_norm(proba, i)
        y_dot_z = 0.0
        p_dot_z = 0.0
        for k in range(K):
            p = proba[i, k] * inverse
            z = shifted[i, k]
            y = on * targets[i, k] + off
            y_dot_z += y * z
            p_dot_z += p * z
            residual = s * (p - y)
            proba[i, k] = residual
            column_sums[k] += residual
        loss += s * (log_norm - y_dot_z)
        if want_entropy:
            entropy += s * (log_norm - p_dot_z)
        total += s
    grad_intercept += column_sums
    return loss, entropy, total


@_jit
def normalise_rows(proba):  # pragma: no cover - compiled
    """Divide each row by its sum (in place): ``exp(shifted)`` becomes ``softmax``."""
    n, K = proba.shape
    for i in range(n):
        norm = 0.0
        for k in range(K):
            norm += proba[i, k]
        inverse = 1.0 / norm
        for k in range(K):
            proba[i, k] *= inverse


@_jit
def jacobian_rows(d_logits, proba, intercept, weight, column_sums):  # pragma: no cover
    """``d_i := s_i (diag(p_i) - p_i p_iᵀ)(d_i + c)`` per row, in place; column sums added.

    ``intercept`` (the direction's intercept part ``c``) and ``weight`` may be empty.
    """
    n, K = d_logits.shape
    add = intercept.shape[0] > 0
    weighted = weight.shape[0] > 0
    sums = np.zeros(K)
    for i in range(n):
        s = weight[i] if weighted else 1.0
        p_dot_d = 0.0
        for k in range(K):
            value = d_logits[i, k]
            if add:
                value += intercept[k]
                d_logits[i, k] = value
            p_dot_d += proba[i, k] * value
        for k in range(K):
            value = s * proba[i, k] * (d_logits[i, k] - p_dot_d)
            d_logits[i, k] = value
            sums[k] += value
    column_sums += sums
