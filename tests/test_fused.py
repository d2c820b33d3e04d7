"""The compiled per-block kernels (softreg._fused) against their NumPy twins.

Every other test runs the compiled path (the default); here each block computation is run
both ways on the same block and the results must agree to rounding: the two paths add the
same terms in a different order, so float64 agrees to ~1e-15 relative and float32 to a few
float32 ulps of the sums.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose

from softreg import _fused
from softreg._objective import Block, SoftmaxLoss

pytestmark = pytest.mark.skipif(not _fused.ENABLED, reason="numba is not installed")

N_SAMPLES, N_FEATURES, N_CLASSES = 300, 7, 5
# Differences measured: float64 ≤ 7e-16 relative, float32 ≤ 3e-8 relative to the largest
# entry; the bounds allow a few more roundings of the sums.
RTOL = {np.float64: 1e-13, np.float32: 5e-6}


def make_block(kind, dtype, weighted, sparse, rng):
    X = rng.standard_normal((N_SAMPLES, N_FEATURES)) + 0.3
    if sparse:
        X[rng.random(X.shape) < 0.6] = 0.0
        X = sp.csr_matrix(X.astype(dtype))
    else:
        X = X.astype(dtype)
    if kind == "soft":
        # Dirichlet rows with some exact zeros, so that 0·log 0 terms occur.
        target = rng.dirichlet(np.full(N_CLASSES, 0.3), size=N_SAMPLES)
        target[rng.random(target.shape) < 0.2] = 0.0
        target /= target.sum(axis=1, keepdims=True)
        target = target.astype(dtype)
    else:
        target = rng.integers(0, N_CLASSES, N_SAMPLES)
    weight = 10.0 ** rng.uniform(-1.5, 1.5, N_SAMPLES) if weighted else None
    return Block(X, target, weight)


def both_paths(monkeypatch, compute):
    """``compute()`` with the compiled kernels, then with the NumPy twins."""
    fused = compute()
    monkeypatch.setattr(_fused, "ENABLED", False)
    reference = compute()
    monkeypatch.setattr(_fused, "ENABLED", True)
    return fused, reference


def assert_close(actual, desired, dtype, floor=1e-300):
    """Agreement relative to the largest entry (or ``floor``, the size of the summed terms)."""
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    scale = max(float(np.max(np.abs(desired), initial=0.0)), floor)
    assert_allclose(actual, desired, rtol=0, atol=RTOL[dtype] * scale)


CASES = [
    pytest.param(
        kind, dtype, weighted, sparse, intercept, id=f"{kind}-{dtype.__name__}-{w}-{s}-{i}"
    )
    for kind in ["hard", "smoothed", "soft"]
    for dtype in [np.float64, np.float32]
    for weighted, w in [(False, "unweighted"), (True, "weighted")]
    for sparse, s in [(False, "dense"), (True, "csr")]
    for intercept, i in [(True, "intercept"), (False, "no-intercept")]
]


@pytest.mark.parametrize("scale", [0.5, 300.0], ids=["moderate", "saturated"])
@pytest.mark.parametrize(("kind", "dtype", "weighted", "sparse", "intercept"), CASES)
def test_block_sums_match_numpy(monkeypatch, kind, dtype, weighted, sparse, intercept, scale):
    rng = np.random.default_rng(0)
    block = make_block(kind, dtype, weighted, sparse, rng)
    loss = SoftmaxLoss(N_CLASSES, 0.15 if kind == "smoothed" else 0.0)
    # "saturated": logits hundreds apart, so that most probabilities are exactly 0 or 1.
    coef = (scale * rng.standard_normal((N_CLASSES, N_FEATURES))).astype(dtype)
    bias = (scale * rng.standard_normal(N_CLASSES)).astype(dtype) if intercept else None
    fused, reference = both_paths(
        monkeypatch, lambda: loss.block_sums(block, coef, bias, want_entropy=True)
    )
    # The entropy sums per-row values 0 ≤ H ≤ log K that, saturated, are differences of nearly
    # equal numbers: float32 rounding there is relative to Σ s log K, not to the small sum.
    floor = {"entropy": reference.weight * np.log(N_CLASSES)}
    for name, a, b in zip(fused._fields, fused, reference, strict=True):
        assert np.all(np.isfinite(a)), name
        assert_close(a, b, dtype, floor.get(name, 1e-300))
    assert fused.weight == pytest.approx(reference.weight, rel=1e-15)


@pytest.mark.parametrize(("kind", "dtype", "weighted", "sparse", "intercept"), CASES)
def test_curvature_and_hessp_match_numpy(monkeypatch, kind, dtype, weighted, sparse, intercept):
    rng = np.random.default_rng(1)
    block = make_block(kind, dtype, weighted, sparse, rng)
    loss = SoftmaxLoss(N_CLASSES)
    coef = rng.standard_normal((N_CLASSES, N_FEATURES)).astype(dtype)
    bias = rng.standard_normal(N_CLASSES).astype(dtype) if intercept else None
    direction = rng.standard_normal((N_CLASSES, N_FEATURES)).astype(dtype)
    direction_b = rng.standard_normal(N_CLASSES).astype(dtype) if intercept else None

    def compute():
        proba = loss.block_curvature(block, coef, bias)
        return proba, *loss.block_hessp(block, proba, direction, direction_b)

    fused, reference = both_paths(monkeypatch, compute)
    assert fused[0].dtype == dtype
    assert_allclose(fused[0].sum(axis=1), 1.0, rtol=0, atol=10 * np.finfo(dtype).eps)
    for a, b in zip(fused, reference, strict=True):
        assert_close(a, b, dtype)


def test_hard_label_residual_and_sums_by_hand():
    """One row worked by hand: z = (1, 2, 3) (shifted: -2, -1, 0), label 0, weight 2."""
    shifted = np.array([[-2.0, -1.0, 0.0]])
    proba = np.exp(shifted)
    grad_b = np.zeros(3)
    loss, entropy, total = _fused.hard_label_sums(
        shifted, proba, np.array([0]), np.array([2.0]), 0.0, True, grad_b
    )
    log_norm = np.log(np.exp(-2.0) + np.exp(-1.0) + 1.0)
    p = np.exp(shifted[0] - log_norm)
    assert loss == pytest.approx(2 * (log_norm + 2.0), rel=1e-15)  # 2 (logsumexp(z) - z_0)
    assert entropy == pytest.approx(-2 * np.sum(p * np.log(p)), rel=1e-14)
    assert total == 2.0
    expected = 2 * (p - np.array([1.0, 0.0, 0.0]))
    assert_allclose(proba[0], expected, rtol=1e-15)
    assert_allclose(grad_b, expected, rtol=1e-15)


def test_disabled_by_environment_variable():
    """SOFTREG_DISABLE_NUMBA=1 selects the NumPy path (the fallback without numba)."""
    env = dict(os.environ, SOFTREG_DISABLE_NUMBA="1")
    out = subprocess.run(
        [sys.executable, "-c", "import softreg._fused as f; print(f.ENABLED)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"
