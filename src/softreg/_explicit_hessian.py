"""The quadratic model of ``newton-cd`` with its Hessian built explicitly, for many rows.

When the rows are many per coefficient of the working set (letter: 15 000 rows, 17 × 26
coefficients), each coordinate-descent sweep of :mod:`softreg._proximal` reads an n-long
column per coefficient, and a Newton model takes tens to hundreds of sweeps. Here the data
part of the model's Hessian on the working set's ``a = f̃ K`` coordinates (``f̃`` working
features, plus the intercept as a feature of ones),

    H[(j, k), (l, m)] = Σ_i w_i x_ij x_il (p_ik δ_km - p_ik p_im),

is built once per model with one matrix product per block of rows, ``Vᵀ [P, M]``: ``V``
holds the row-weighted products ``w_i x_ij x_il`` (``j ≤ l``) and ``M`` the products
``p_ik p_im`` (``k ≤ m``), so only the distinct entries are summed. A sweep then costs
``O(a²)`` and reads no data: the coordinate descent keeps ``H δ`` (``δ`` the step from the
model's centre) and updates it by one row of ``H`` per coordinate moved.

Coordinates are feature-major (coordinate ``g K + k`` is class ``k`` of the ``g``-th working
feature; the intercept is the last group), so a group of the grouped norm is ``K``
consecutive coordinates.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from ._fused import _jit

# Entries of one block of rows' product matrices (V and [P, M]): 16 MiB of float64 each.
_BLOCK_ENTRIES = 1 << 21


def model_hessian(X, weight, proba, features, fit_intercept):
    """The data part of the model Hessian on ``features`` (and the intercept), ``(a, a)``.

    Parameters
    ----------
    X : ndarray or sparse matrix, shape (n_samples, n_features)
    weight : ndarray, shape (n_samples,), ``s_i / S``
    proba : ndarray, shape (n_samples, n_classes), the probabilities at the model's centre
    features : ndarray of int, the working features
    fit_intercept : bool, whether the intercept is the last group of coordinates

    Returns
    -------
    ndarray, shape (a, a) with ``a = (len(features) + fit_intercept) n_classes``, C-ordered.
    """
    n, K = proba.shape
    f = len(features) + int(fit_intercept)
    upper_j, upper_l = np.triu_indices(f)
    upper_k, upper_m = np.triu_indices(K)
    sums = np.zeros((len(upper_j), K + len(upper_k)))
    rows_per_block = max(1, _BLOCK_ENTRIES // (len(upper_j) + K + len(upper_k)))
    for start in range(0, n, rows_per_block):
        rows = slice(start, min(n, start + rows_per_block))
        block = X[rows][:, features]
        block = block.toarray() if sp.issparse(block) else block
        columns = np.empty((block.shape[0], f))
        columns[:, : len(features)] = block
        if fit_intercept:
            columns[:, -1] = 1.0
        products = columns[:, upper_j] * columns[:, upper_l]
        products *= weight[rows, None]
        P = proba[rows]
        curvatures = np.empty((P.shape[0], K + len(upper_k)))
        curvatures[:, :K] = P
        np.multiply(P[:, upper_k], P[:, upper_m], out=curvatures[:, K:])
        sums += products.T @ curvatures
    # Block (j, l) of H is diag(Σ w x_j x_l p) - Σ w x_j x_l p pᵀ, symmetric in (k, m).
    pair = np.empty((K, K), dtype=np.intp)
    pair[upper_k, upper_m] = pair[upper_m, upper_k] = np.arange(len(upper_k))
    blocks = -sums[:, K:][:, pair]
    blocks[:, np.arange(K), np.arange(K)] += sums[:, :K]
    hessian = np.empty((f, K, f, K))
    hessian[upper_j, :, upper_l, :] = blocks
    hessian[upper_l, :, upper_j, :] = blocks
    return hessian.reshape(f * K, f * K)


def group_curvatures(hessian, ridge, n_classes, grouped):
    """Each coordinate's curvature for the coordinate descent, shape ``(a,)``.

    Elementwise: the model's diagonal ``H_cc + ridge_c``. Grouped: for each group of
    ``K`` coordinates, the largest eigenvalue of its ``K × K`` block plus its ridge (the
    exact bound of the block step's majoriser), repeated over the group.
    """
    diagonal = np.diagonal(hessian) + ridge
    if not grouped:
        return diagonal.copy()
    a = hessian.shape[0]
    groups = a // n_classes
    blocks = hessian.reshape(groups, n_classes, groups, n_classes)
    blocks = blocks[np.arange(groups), :, np.arange(groups), :]
    largest = np.linalg.eigvalsh(blocks)[:, -1]
    return np.repeat(largest, n_classes) + ridge


@_jit
def sweep(
    groups,
    n_classes,
    hessian,
    grad,
    centre,
    values,
    ridge,
    curvature,
    screened,
    l1,
    grouped,
    free,
    moved,
):  # pragma: no cover - compiled
    """One cyclic pass of the coordinate descent over ``groups`` of the explicit model.

    The model's gradient in coordinate ``c`` at ``V = values`` is
    ``grad_c + (H δ)_c + ridge_c δ_c`` with ``δ = V - centre`` and ``H δ`` kept in
    ``moved``. Elementwise (and in the unpenalised group ``free``, the intercept): the exact
    soft-thresholded Newton step per coordinate. Grouped: the group soft-thresholding of
    ``V_g - γ/L_g`` at ``λ₁/L_g``. Returns the largest ``h |step|`` (``L ‖step‖``).
    """  # fmt: skip
    K = n_classes
    steps = np.zeros(K)
    largest = 0.0
    for g in groups:
        base = g * K
        if grouped and g != free:
            L = curvature[base]
            scale = 0.0
            if not screened[base] and L > 0.0:
                norm = 0.0
                for k in range(K):
                    c = base + k
                    gamma = grad[c] + moved[c] + ridge[c] * (values[c] - centre[c])
                    steps[k] = values[c] - gamma / L
                    norm += steps[k] * steps[k]
                norm = math.sqrt(norm)
                scale = max(0.0, 1.0 - l1 / (L * norm)) if norm > 0.0 else 0.0
            total = 0.0
            for k in range(K):
                c = base + k
                step = scale * steps[k] - values[c] if scale > 0.0 else -values[c]
                values[c] += step
                steps[k] = step
                total += step * step
            if total > 0.0:
                for k in range(K):
                    if steps[k] != 0.0:
                        _add_row(hessian, base + k, steps[k], moved)
                largest = max(largest, L * math.sqrt(total))
            continue
        for c in range(base, base + K):
            h = curvature[c]
            if g != free and (screened[c] or h <= 0.0):
                v = 0.0
            elif h <= 0.0:
                continue
            else:
                z = values[c] - (grad[c] + moved[c] + ridge[c] * (values[c] - centre[c])) / h
                v = z if g == free else math.copysign(max(abs(z) - l1 / h, 0.0), z)
            step = v - values[c]
            if step != 0.0:
                values[c] = v
                _add_row(hessian, c, step, moved)
                largest = max(largest, h * abs(step))
    return largest


@_jit
def _add_row(hessian, c, step, moved):  # pragma: no cover - compiled
    """``moved += step H[c]`` (``H`` symmetric: its row is its column)."""
    for d in range(hessian.shape[1]):
        moved[d] += step * hessian[c, d]
