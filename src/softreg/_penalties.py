"""Elastic-net penalties on ``coef``, and the Fenchel duality gap that certifies their fits.

Conventions
-----------
* ``coef`` ``W`` has shape ``(n_classes, n_features)``; a *group* is one feature's column
  ``W[:, j]`` (all classes at once). The intercept is never penalised.
* ``h(W) = α ((1 - ρ)/2 ‖W‖²_F + ρ Ω(W))`` with ``ρ = l1_ratio`` and ``Ω`` either the
  elementwise norm ``Σ_kj |W_kj|`` or the grouped norm ``Σ_j ‖W[:, j]‖₂``. We write
  ``λ₂ = α (1 - ρ)`` and ``λ₁ = α ρ``.

The training objective is ``F(W, b) = (1/S) Σ_i s_i CE(y_i, softmax(W x_i + b)) + h(W)``. Its
smooth part is :class:`~softreg._objective.Objective` with ``alpha = λ₂``; this module adds
``λ₁ Ω``, its proximal operator, and the certificate :func:`duality_gap` (derived in
docs/derivation.md, section 11).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import entr

from ._fused import _jit
from ._params import L1_NORMS

__all__ = ["L1_NORMS", "ElasticNet", "GapCertificate", "duality_gap", "mean_target_entropy"]


@dataclass(frozen=True)
class ElasticNet:
    """``h(W) = λ₂/2 ‖W‖² + λ₁ Ω(W)`` with ``λ₂ = α(1 - ρ)``, ``λ₁ = αρ``.

    Examples
    --------
    >>> import numpy as np
    >>> W = np.array([[3.0, 0.0], [-4.0, 1.0]])
    >>> ElasticNet(alpha=2.0, l1_ratio=0.5).value(W)  # 0.5 * 26 + 1 * 8
    21.0
    >>> ElasticNet(alpha=2.0, l1_ratio=0.5, l1_norm="grouped").value(W)  # 13 + (5 + 1)
    19.0
    """

    alpha: float
    l1_ratio: float
    l1_norm: str = "elementwise"

    @property
    def l1(self) -> float:
        return self.alpha * self.l1_ratio

    @property
    def l2(self) -> float:
        return self.alpha * (1.0 - self.l1_ratio)

    @property
    def grouped(self) -> bool:
        return self.l1_norm == "grouped"

    def group_norms(self, coef) -> np.ndarray:
        """``|W_kj|`` (elementwise, shape of ``coef``) or ``‖W[:, j]‖₂`` (grouped, ``(D,)``)."""
        if self.grouped:
            return np.sqrt(np.einsum("kj,kj->j", coef, coef))
        return np.abs(coef)

    def l1_value(self, coef) -> float:
        """``λ₁ Ω(W)``."""
        return self.l1 * _norm_sums(coef, self.grouped)[1]

    def value(self, coef) -> float:
        """``h(W)``."""
        squares, norms = _norm_sums(coef, self.grouped)
        return 0.5 * self.l2 * squares + self.l1 * norms

    def prox(self, coef, step):
        """``argmin_V ‖V - coef‖²/(2 step) + h(V)``: shrink, then scale.

        Soft-thresholding ``sign(w) max(|w| - step λ₁, 0)`` per entry, or per column
        ``w max(1 - step λ₁/‖w‖, 0)``, then division by ``1 + step λ₂``.
        """
        norms = self.group_norms(coef)
        with np.errstate(divide="ignore", invalid="ignore"):
            shrink = np.where(norms > 0, np.maximum(1 - step * self.l1 / norms, 0.0), 0.0)
        return coef * shrink / (1 + step * self.l2)

    def min_norm_subgradient(self, coef, grad):
        """The element of ``∇f + ∂(λ₁Ω)`` of least norm, ``grad`` being ``∇_W`` of the smooth part.

        Zero exactly at the optimum; its norm is the ``gradient_norm`` a sparse fit records.
        Away from zero it is ``grad + λ₁ ∂Ω``; at zero, ``grad`` shrunk by ``λ₁``.
        """
        out = np.empty_like(coef, dtype=np.float64)
        _min_norm_subgradient(coef, grad, self.l1, self.grouped, out)
        return out

    def dual_norms(self, V) -> np.ndarray:
        """The dual norm of ``Ω`` per group: ``|V_kj|`` or ``‖V[:, j]‖₂``."""
        return self.group_norms(V)

    def fenchel_young(self, coef, a) -> float:
        """``h(W) + h*(A) - ⟨A, W⟩ ≥ 0``, as a sum of non-negative terms (no cancellation).

        Per group with ``n = ‖w‖``, ``m = ‖a‖`` the gap splits into ``n m - aᵀw ≥ 0`` (the
        misalignment, ``½ n m ‖w/n - a/m‖²``) and the scalar gap of ``λ₂/2 n² + λ₁ n``:
        ``(λ₂ n - (m - λ₁))² / (2λ₂)`` when ``m ≥ λ₁``, else ``λ₂/2 n² + (λ₁ - m) n``.
        With ``λ₂ = 0``, ``h*`` is the indicator of ``m ≤ λ₁``: ``inf`` beyond it.

        >>> import numpy as np
        >>> pen = ElasticNet(alpha=1.0, l1_ratio=0.3)
        >>> rng = np.random.default_rng(1)
        >>> W, A = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
        >>> conj = np.sum(np.maximum(np.abs(A) - pen.l1, 0) ** 2) / (2 * pen.l2)
        >>> bool(np.isclose(pen.fenchel_young(W, A), pen.value(W) + conj - np.sum(A * W)))
        True
        """
        l1, l2 = self.l1, self.l2
        n, m = self.group_norms(coef), self.dual_norms(a)
        if self.grouped:
            with np.errstate(divide="ignore", invalid="ignore"):
                difference = np.where(n > 0, coef / n, 0.0) - np.where(m > 0, a / m, 0.0)
            misalignment = 0.5 * n * m * np.einsum("kj,kj->j", difference, difference)
        else:
            misalignment = np.where(coef * a < 0, 2 * n * m, 0.0)
        if l2 > 0:
            scalar = np.where(
                m >= l1, (l2 * n - (m - l1)) ** 2 / (2 * l2), 0.5 * l2 * n * n + (l1 - m) * n
            )
        else:
            if np.any(m > l1):
                return math.inf
            scalar = (l1 - m) * n
        return float(np.sum(scalar) + np.sum(misalignment))


def mean_target_entropy(objective) -> float:
    """``(1/S) Σ_i s_i H(y_i)`` of the (smoothed) targets, over one pass of the source."""
    total, weight = objective.source.reduce(_target_entropy_sums, objective.loss)
    return total / weight


def _target_entropy_sums(index, block, loss):
    """``(Σ s_i H(y_i), Σ s_i)`` of one block."""
    Y = loss.targets(block.target, np.float64)
    s = np.ones(Y.shape[0]) if block.sample_weight is None else block.sample_weight
    s = np.asarray(s, dtype=np.float64)
    return float(s @ entr(Y).sum(axis=1)), float(s.sum())


class GapCertificate(NamedTuple):
    """The duality gap at ``(W, b)`` and the dual point's correlations."""

    gap: float  # upper bound on F(W, b) - F*
    dual_norms: np.ndarray  # ‖G(r)_g‖ per group at the dual point r (see ElasticNet.dual_norms)


def duality_gap(penalty, coef, intercept, sums, objective, target_entropy) -> GapCertificate:
    """Upper bound on ``F(W, b) - F*`` from a feasible dual point (docs/derivation.md §11).

    Parameters
    ----------
    penalty : ElasticNet
    coef, intercept : the point, ``(K, D)`` and ``(K,)`` or None
    sums : BlockSums at that point, with the entropy (``Objective.sums(θ, True)``)
    objective : Objective
        Supplies the fixed statistics ``Σ s y``, ``Σ s x``, ``Σ s y xᵀ``.
    target_entropy : float
        ``(1/S) Σ s_i H(y_i)``, see :func:`mean_target_entropy` (used only when ``λ₂ = 0``).

    Notes
    -----
    The dual point is ``r_i = q_i - y_i`` with ``q_i = (1 - c) y_i + c p̃_i``, where
    ``p̃_i = (1 - t) p_i + t u`` repairs the intercept's feasibility as for the L2 certificate
    and ``c = min(1, λ₁ / max_g ‖G̃_g‖)`` scales it into the domain of ``h*`` when
    ``λ₂ = 0`` (``c = 1`` otherwise). With ``d = G - u x̄ᵀ + C`` and ``G̃ = G - t d``,

        gap = (1 - c)(H̄ - H̄_y + ⟨G̃, W⟩) + c t (H̄ - H(u)) + t ⟨d, W⟩ + g_bᵀb
              + FY(W, -c G̃)

    where ``FY`` is :meth:`ElasticNet.fenchel_young`; every term vanishes at the optimum.
    The parameter-sized work (``G̃`` is never formed) is two compiled passes over ``W``.
    """
    S = sums.weight
    G = sums.grad_coef  # S times the data part of ∇_W; the kernels divide by S
    mean_entropy = sums.entropy / S
    K, D = G.shape
    t, u_entropy, bias_term = 0.0, 0.0, 0.0
    u, mean_x, cross = np.zeros(K), np.zeros(D), G
    if intercept is not None:
        stats = objective.statistics()
        g_b = sums.grad_intercept / S
        g_b = g_b - g_b.mean()  # Σ_k g_b = 0 exactly; remove its rounding
        bias_term = float(g_b @ intercept)
        mean_y = stats.target / S
        mean_p = mean_y + g_b
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(mean_p > 0, g_b / mean_p, -np.inf)
        t = float(min(1.0, max(0.0, ratios.max())))
        if t > 0:
            u = np.clip(mean_p - g_b / t, 0.0, None)
            if not u.sum() > 0:
                return GapCertificate(math.inf, np.full(D, math.inf))
            u /= u.sum()
            u_entropy = float(entr(u).sum())
            mean_x, cross = stats.features / S, stats.cross
    grouped = penalty.grouped
    norms = np.empty((1, D) if grouped else (K, D), order="F")
    _repaired_norms(G, cross, 1 / S, u, mean_x, t, grouped, norms)
    norms = norms[0] if grouped else norms
    c = 1.0
    if penalty.l2 <= 0:
        largest = float(np.max(norms, initial=0.0))
        # Scaled a few ulps inside the ball, so that rounding in the norms cannot leave it.
        c = min(1.0, penalty.l1 / largest * (1 - 1e-14)) if largest > 0 else 1.0
    fenchel_young, along_d, along_repaired = _gap_terms(
        G, cross, 1 / S, u, mean_x, t, c, coef, penalty.l1, penalty.l2, grouped
    )
    gap = fenchel_young + bias_term
    if t > 0:
        gap += c * t * (mean_entropy - u_entropy) + t * along_d
    if c < 1:
        gap += (1 - c) * (mean_entropy - target_entropy + along_repaired)
    return GapCertificate(max(gap, 0.0), c * norms)


# Compiled passes over (K, D) arrays: on sector (105 × 55197) NumPy's version of the
# certificate made ~25 parameter-sized temporaries per call.


@_jit
def _norm_sums(coef, grouped):  # pragma: no cover - compiled
    """``(‖W‖², Ω(W))``."""
    K, D = coef.shape
    squares = 0.0
    norms = 0.0
    for j in range(D):
        column = 0.0
        for k in range(K):
            w = coef[k, j]
            column += w * w
            if not grouped:
                norms += abs(w)
        squares += column
        if grouped:
            norms += math.sqrt(column)
    return squares, norms


@_jit
def _min_norm_subgradient(coef, grad, l1, grouped, out):  # pragma: no cover - compiled
    K, D = coef.shape
    for j in range(D):
        if grouped:
            n2 = 0.0
            g2 = 0.0
            for k in range(K):
                n2 += coef[k, j] * coef[k, j]
                g2 += grad[k, j] * grad[k, j]
            n = math.sqrt(n2)
            g = math.sqrt(g2)
            for k in range(K):
                if n > 0.0:
                    out[k, j] = grad[k, j] + l1 * coef[k, j] / n
                else:
                    out[k, j] = grad[k, j] * (1.0 - l1 / g) if g > l1 else 0.0
        else:
            for k in range(K):
                w = coef[k, j]
                g = grad[k, j]
                if w > 0.0:
                    out[k, j] = g + l1
                elif w < 0.0:
                    out[k, j] = g - l1
                else:
                    out[k, j] = math.copysign(max(abs(g) - l1, 0.0), g)


@_jit
def _repaired_norms(G, cross, scale, u, mean_x, t, grouped, out):  # pragma: no cover
    """The dual norms of ``G̃ = (1 - t) G + t (u x̄ᵀ - C)`` per group, into ``out``.

    ``G`` and ``C`` arrive as sums over the rows, multiplied here by ``scale = 1/S``.
    """
    K, D = G.shape
    for j in range(D):
        column = 0.0
        for k in range(K):
            v = (1.0 - t) * scale * G[k, j] + t * (u[k] * mean_x[j] - scale * cross[k, j])
            if grouped:
                column += v * v
            else:
                out[k, j] = abs(v)
        if grouped:
            out[0, j] = math.sqrt(column)


@_jit
def _scalar_gap(n, m, l1, l2):  # pragma: no cover - compiled
    """The Fenchel–Young gap of ``λ₂/2 n² + λ₁ n`` at norms ``n`` (primal), ``m`` (dual)."""
    if l2 > 0.0:
        if m >= l1:
            r = l2 * n - (m - l1)
            return r * r / (2.0 * l2)
        return 0.5 * l2 * n * n + (l1 - m) * n
    if m > l1:
        return math.inf
    return (l1 - m) * n


@_jit
def _gap_terms(G, cross, scale, u, mean_x, t, c, coef, l1, l2, grouped):  # pragma: no cover
    """``(FY(W, -c G̃), ⟨d, W⟩, ⟨G̃, W⟩)`` with ``d = G - u x̄ᵀ + C``, ``G̃ = G - t d``."""
    K, D = G.shape
    fenchel_young = 0.0
    along_d = 0.0
    along_repaired = 0.0
    for j in range(D):
        n2 = 0.0
        m2 = 0.0
        for k in range(K):
            g = scale * G[k, j]
            d = g - u[k] * mean_x[j] + scale * cross[k, j]
            a = -c * (g - t * d)
            w = coef[k, j]
            if w != 0.0:
                along_d += d * w
                along_repaired += (g - t * d) * w
            if grouped:
                n2 += w * w
                m2 += a * a
            else:
                n = abs(w)
                m = abs(a)
                fenchel_young += _scalar_gap(n, m, l1, l2)
                if w * a < 0.0:
                    fenchel_young += 2.0 * n * m  # misalignment n m - a w
        if grouped:
            n = math.sqrt(n2)
            m = math.sqrt(m2)
            fenchel_young += _scalar_gap(n, m, l1, l2)
            if n > 0.0 and m > 0.0:
                # Misalignment n m - aᵀw = ½ n m ‖w/n - a/m‖², never a difference of two.
                spread = 0.0
                for k in range(K):
                    g = scale * G[k, j]
                    d = g - u[k] * mean_x[j] + scale * cross[k, j]
                    a = -c * (g - t * d)
                    e = coef[k, j] / n - a / m
                    spread += e * e
                fenchel_young += 0.5 * n * m * spread
    return fenchel_young, along_d, along_repaired
