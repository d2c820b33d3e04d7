"""Proximal Newton with coordinate descent for elastic-net softmax regression (``newton-cd``).

Minimises ``F(W, b) = f(W, b) + λ₁ Ω(W)`` where ``f`` is the smooth objective
(cross-entropy plus ``λ₂/2 ‖W‖²``, an :class:`~softreg._objective.Objective` with
``alpha = λ₂``) and ``λ₁ Ω`` the non-smooth part of :class:`~softreg._penalties.ElasticNet`.

Each outer iteration (Lee, Sun & Saunders, 2014; glmnet's approach, Friedman, Hastie &
Tibshirani, 2010) builds the quadratic model of ``f`` at ``θ`` with the exact softmax
Hessian ``(1/S) Σ_i s_i (x_i x_iᵀ) ⊗ (diag(p_i) - p_i p_iᵀ) + λ₂ I`` and minimises
``model + λ₁ Ω`` by coordinate descent, one coefficient at a time (elementwise ``Ω``: exact
soft-thresholded coordinate minimisation) or one feature's column at a time (grouped ``Ω``:
a block step majorised by ``diag(p) - ppᵀ ⪯ diag(p)`` and ``⪯ ½ I``). The coordinate
descent keeps the change of the logits ``ΔZ = X ΔWᵀ + Δb`` and ``p_iᵀ ΔZ_i``, so the model's
gradient in one coordinate costs one pass over that feature's column. Where the rows are many
per coordinate (letter: 15 000 rows, 17 × 26 coordinates) that pass is what a fit spends its
time on, and the model's Hessian is built instead, once per model or kept while the
probabilities barely move (:mod:`softreg._explicit_hessian`), from a sample of the rows that
doubles in each outer iteration up to all of them: its sweeps read no data, and an
exact solve on the model's support with the signs held replaces the slow tail of coordinate
descent (elementwise ``Ω``). A backtracking line search on ``F`` (sufficient decrease relative
to the model's predicted decrease) follows.

The certificate is :func:`~softreg._penalties.duality_gap`, evaluated at every iterate in
the same pass as ``f`` and ``∇f``; the shared :class:`~softreg._solvers.Monitor` stops the
run at ``gap ≤ tol · |F|``. The gap also drives gap-safe screening (Fercoq, Gramfort &
Salmon, 2015; Ndiaye, Fercoq, Gramfort & Salmon, 2017): a feature whose dual correlation
``‖G(r)_j‖ + ‖x_j‖_s √gap`` is below ``λ₁`` is zero at the optimum and is dropped
(docs/derivation.md §11.3).
"""

from __future__ import annotations

import math
import warnings
import weakref

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from ._explicit_hessian import group_curvatures, model_hessian
from ._explicit_hessian import sweep as explicit_sweep
from ._fused import _jit
from ._objective import Evaluation
from ._penalties import duality_gap, mean_target_entropy
from ._solvers import _NO_DECREASE, _STALLED, Result
from ._sources import Block

# Sufficient decrease for the line search on F (Lee, Sun & Saunders, 2014, eq. 2.20).
_SUFFICIENT_DECREASE = 1e-4
_MAX_BACKTRACKS = 40
# F's sum is accurate to a few float64 ulps of |F|: changes below this are rounding.
_ROUNDING = 64 * np.finfo(np.float64).eps
# Coordinate-descent sweeps per outer iteration at most, and how tightly each quadratic model
# is minimised: until a full sweep moves no coordinate by more than η ‖s‖_∞ / h (h its
# curvature), s being the least-norm subgradient of F at θ and η = min(_FORCING, ‖s‖_∞) the
# forcing term of inexact Newton methods (loose far from the optimum, superlinear near it).
# Fewer sweeps make each iteration cheaper but iterations more numerous on ill-conditioned
# data: iris, L1 at 1e-3 alpha_max, 387 iterations with 200 sweeps, 787 with 100, no
# certificate in 1000 with 25 (grouped L1 at alpha 1e-2: 188 with 200, none with 25); letter
# (L1, 0.1 alpha_max) 9.9 s with 200, 5.2 s with 20 (load 12).
_MAX_SWEEPS = 200
_FORCING = 0.1
# The Levenberg–Marquardt damping μ of the model (relative to each feature's ‖x_j‖²_s): its
# start, the floor a failed line search raises it to before retrying, and the retries.
_DAMPING_START = 1e-4
_DAMPING_RETRY = 1e-2
_MAX_RETRIES = 3
# After a full step μ is divided by this: μ adds μ‖x_j‖² to the curvatures and slows
# convergence to linear where the Hessian is nearly singular (letter, L1 path: 30 alphas down
# to 1e-3 alpha_max took 196 Newton iterations with 2, 125 with 10).
_DAMPING_DROP = 10
# The explicit model Hessian (see _explicit_pays): at most this many coordinates (8 MiB),
# and only when building it costs less than this many sweeps over the columns (in the units
# of _explicit_pays; BLAS does those multiply-adds ~10× faster than a sweep reads columns).
_EXPLICIT_MAX_SIZE = 1024
_EXPLICIT_SWEEPS = 200
# Fixed-sign solves (see _ExplicitModel.polish) per round of the schedule at most: each one
# that stops at a sign change drops a coordinate from the support and is followed by another.
_MAX_POLISHES = 20
# The explicit Hessian is kept while no log-probability moved more than this since it was
# built (see _model_hessian).
_STALE_LOG_PROBA = 0.1
# The explicit Hessian of outer iteration t is built from the first min(n, m₀ 2^(t-1)) rows of
# a fixed random permutation (see _hessian_sample): m₀ = _SAMPLE_START, doubling.
# Letter (15 000 rows, L1 at 0.1 alpha_max, tol 1e-6, load 3.3): all rows in every build,
# 9 iterations, 8 builds, 0.58 s (builds 0.46 s); from 512 rows doubling, 8 iterations, 0.29 s
# (elastic net 0.5: 0.30 s to 0.14 s). A fixed 500-row sample took 22 to 55 iterations, and
# a fresh one per build once 608: the exact Hessian at the end is what keeps the tail short.
_SAMPLE_START = 512
_SAMPLE_SEED = 0
# A start whose log-probabilities are within this of the last Hessian's on the same rows (a
# regularisation path's next alpha) builds from at least as many rows as that one did. Letter
# 30-alpha path (load 3.8): L1 5.05 s with all rows, 5.4 s sampling from 512 every alpha,
# 5.5 s with 1.0 here, 4.7 s with 3.0 and 4.8 s with 5.0; elastic net 4.05, 4.1, 3.95, 3.15
# and 3.15 s. A cold start is farther than this (uniform against fitted probabilities).
_NEAR_LOG_PROBA = 3.0
# Features whose gradient is within this fraction of λ₁ join the working set.
_WORKING_MARGIN = 0.9
# A screened coordinate needs its dual correlation below λ₁ by this relative margin, so that
# rounding in G(r) (float64 sums) can never screen a coefficient that is non-zero.
_SCREEN_MARGIN = 1e-9


# --------------------------------------------------------------------------------------------
# Kernels. A column j of X is rows[0:len] (sparse: X's row indices; dense: 0..n-1) and
# vals = data[indptr[j]:indptr[j+1]]; ``weight`` holds s_i / S.
# --------------------------------------------------------------------------------------------


@_jit
def _diagonal_curvature(
    features, indptr, indices, data, dense, weight, proba, ridge, grouped, out
):  # pragma: no cover - compiled
    """The coordinate descent's curvatures, into ``out``.

    Elementwise: the model's exact diagonal ``Σ_i w_i x_ij² p_ik (1 - p_ik) + λ₂`` per
    coordinate. Grouped: one bound ``L_j ≥ λ_max`` of feature ``j``'s K × K Hessian block,
    from ``diag(p) - p pᵀ ⪯ diag(p)`` and ``⪯ ½ I`` (Böhning):
    ``L_j = min(max_k Σ_i w_i x_ij² p_ik, ½ Σ_i w_i x_ij²) + λ₂`` in ``out[0, j]``.
    """
    K = proba.shape[1]
    for j in features:
        a, b = indptr[j], indptr[j + 1]
        rows = indices[0 : b - a] if dense else indices[a:b]
        vals = data[a:b]
        squares = 0.0
        for t in range(rows.shape[0]):
            squares += weight[rows[t]] * vals[t] * vals[t]
        largest = 0.0
        for k in range(K):  # k outer: proba and dz are Fortran-ordered (n, K)
            acc = 0.0
            for t in range(rows.shape[0]):
                i = rows[t]
                p = proba[i, k]
                wx2 = weight[i] * vals[t] * vals[t]
                acc += wx2 * p if grouped else wx2 * p * (1.0 - p)
            if grouped:
                largest = max(largest, acc)
            else:
                out[k, j] = acc + ridge[j]
        if grouped:
            out[0, j] = min(largest, 0.5 * squares) + ridge[j]


@_jit
def _sweep_columns(
    features,
    indptr,
    indices,
    data,
    dense,
    weight,
    proba,
    grad,
    coef,
    new_coef,
    curvature,
    screened,
    l1,
    ridge,
    dz,
    pdz,
    grouped,
):  # pragma: no cover - compiled
    """One cyclic pass of the coordinate descent on ``model + λ₁ Ω`` over ``features``.

    The model's gradient in ``W_kj`` at ``V = new_coef`` is
    ``∇_kj f + λ₂ (V - W)_kj + Σ_i w_i x_ij p_ik (ΔZ_ik - p_iᵀ ΔZ_i)`` (the softmax Hessian
    ``diag(p) - p pᵀ`` applied to ``ΔZ_i``). Elementwise: the minimiser along each
    coordinate, the soft-thresholded Newton step. Grouped: for feature ``j`` with model
    gradient ``γ`` and curvature bound ``L_j``, the group soft-thresholding of
    ``V_j - γ/L_j`` at ``λ₁/L_j``. Returns the largest ``h |δ|`` (``L ‖δ‖``) of the pass.
    """
    K = proba.shape[1]
    gamma = np.zeros(K)
    largest = 0.0
    for j in features:
        a, b = indptr[j], indptr[j + 1]
        rows = indices[0 : b - a] if dense else indices[a:b]
        vals = data[a:b]
        if grouped:
            largest = max(
                largest,
                _group_step(
                    j, rows, vals, weight, proba, grad, coef, new_coef, curvature[0, j],
                    screened[0, j], l1, ridge[j], dz, pdz, gamma,
                ),
            )  # fmt: skip
            continue
        for k in range(K):
            w_old = new_coef[k, j]
            h = curvature[k, j]
            if screened[k, j] or h <= 0.0:
                v = 0.0
            else:
                gamma_k = grad[k, j] + ridge[j] * (w_old - coef[k, j])
                gamma_k += _data_gradient(rows, vals, weight, proba, dz, pdz, k)
                z = w_old - gamma_k / h
                v = math.copysign(max(abs(z) - l1 / h, 0.0), z)
            step = v - w_old
            if step != 0.0:
                new_coef[k, j] = v
                _move(rows, vals, proba, k, step, dz, pdz)
                largest = max(largest, h * abs(step))
    return largest


@_jit
def _group_step(
    j, rows, vals, weight, proba, grad, coef, new_coef, L, screened, l1, ridge, dz, pdz, gamma
):  # pragma: no cover - compiled
    """The majorised block step on feature ``j``'s column; returns ``L ‖δ‖``."""
    K = proba.shape[1]
    scale = 0.0
    if not screened and L > 0.0:
        norm = 0.0
        for k in range(K):  # k outer: proba and dz are Fortran-ordered (n, K)
            total = grad[k, j] + ridge * (new_coef[k, j] - coef[k, j])
            total += _data_gradient(rows, vals, weight, proba, dz, pdz, k)
            gamma[k] = new_coef[k, j] - total / L
            norm += gamma[k] * gamma[k]
        norm = math.sqrt(norm)
        scale = max(0.0, 1.0 - l1 / (L * norm)) if norm > 0.0 else 0.0
    moved = 0.0
    for k in range(K):
        v = scale * gamma[k] if scale > 0.0 else 0.0
        step = v - new_coef[k, j]
        new_coef[k, j] = v
        moved += step * step
        if step != 0.0:
            _move(rows, vals, proba, k, step, dz, pdz)
    return L * math.sqrt(moved)


@_jit
def _data_gradient(rows, vals, weight, proba, dz, pdz, k):  # pragma: no cover - compiled
    """``Σ_i w_i x_ij p_ik (ΔZ_ik - p_iᵀ ΔZ_i)`` over one column's rows."""
    total = 0.0
    for t in range(rows.shape[0]):
        i = rows[t]
        total += weight[i] * vals[t] * proba[i, k] * (dz[i, k] - pdz[i])
    return total


@_jit
def _move(rows, vals, proba, k, step, dz, pdz):  # pragma: no cover - compiled
    """``ΔZ[:, k] += step x_j`` and ``p_iᵀ ΔZ_i`` with it, over one column's rows."""
    for t in range(rows.shape[0]):
        i = rows[t]
        d = step * vals[t]
        dz[i, k] += d
        pdz[i] += proba[i, k] * d


@_jit
def _sweep_intercept(
    weight, proba, grad_intercept, intercept, new_intercept, ridge, dz, pdz
):  # pragma: no cover - compiled
    """Exact coordinate minimisation of the model in each intercept (never penalised)."""
    n, K = proba.shape
    largest = 0.0
    for k in range(K):
        h = ridge
        gamma = grad_intercept[k] + ridge * (new_intercept[k] - intercept[k])
        for i in range(n):
            p = proba[i, k]
            h += weight[i] * p * (1.0 - p)
            gamma += weight[i] * p * (dz[i, k] - pdz[i])
        if h <= 0.0:
            continue
        step = -gamma / h
        new_intercept[k] += step
        for i in range(n):
            dz[i, k] += step
            pdz[i] += step * proba[i, k]
        largest = max(largest, h * abs(step))
    return largest


# --------------------------------------------------------------------------------------------
# The solver.
# --------------------------------------------------------------------------------------------


class _Columns:
    """``X`` by columns (CSC, or a Fortran-ordered dense copy) and ``s_i / S``."""

    def __init__(self, X, sample_weight):
        n, D = X.shape
        self.X = X
        if sp.issparse(X):
            csc = X.tocsc()
            csc.sort_indices()
            self.indptr = csc.indptr.astype(np.int64)
            self.indices = csc.indices.astype(np.int64)
            self.data = csc.data
            self.dense = False
        else:
            self.data = np.asfortranarray(X).ravel(order="F")
            self.indptr = np.arange(D + 1, dtype=np.int64) * n
            self.indices = np.arange(n, dtype=np.int64)
            self.dense = True
        s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        self.weight = s / s.sum()
        # ‖x_j‖_s = sqrt(Σ_i (s_i/S) x_ij²), the screening rule's Lipschitz constant of G(r)_j.
        squares = self.data.astype(np.float64) ** 2
        if self.dense:
            per_column = squares.reshape(D, n) @ self.weight
        else:
            per_column = np.add.reduceat(
                np.concatenate([squares * self.weight[self.indices], [0.0]]), self.indptr[:-1]
            )
            per_column[np.diff(self.indptr) == 0] = 0.0
        self.norms = np.sqrt(per_column)
        self.n_features = D
        self.sample_weight = sample_weight

    def args(self):
        return self.indptr, self.indices, self.data, self.dense, self.weight


class _Screen:
    """Gap-safe screening state: the coordinates certified zero at the optimum."""

    def __init__(self, penalty, n_classes, n_features, norms, enabled):
        self.penalty = penalty
        self.norms = norms
        self.enabled = enabled and penalty.l1 > 0
        shape = (n_features,) if penalty.grouped else (n_classes, n_features)
        self.mask = np.zeros(shape, dtype=np.bool_)

    def update(self, gap, correlation):
        """Screen every coordinate with ``‖G(r)_g‖ + ‖x_j‖_s √gap < λ₁`` (never unscreens)."""
        if not self.enabled or not math.isfinite(gap):
            return
        bound = correlation + self.norms * math.sqrt(gap)
        self.mask |= bound < self.penalty.l1 * (1 - _SCREEN_MARGIN)

    def features(self) -> np.ndarray:
        """The mask of the features screened for every class, shape ``(n_features,)``."""
        return self.mask.copy() if self.mask.ndim == 1 else self.mask.all(axis=0)


def proximal_newton(objective, penalty, theta, monitor, *, max_iter, screening):
    """Minimise ``objective + λ₁ Ω`` from ``θ``.

    Returns a :class:`~softreg._solvers.Result` and the boolean mask of the features that
    gap-safe screening proved zero (for every class) at the optimum.

    Parameters
    ----------
    objective : Objective
        The smooth part, softmax loss with ``alpha = penalty.l2``, over rows held in memory
        (a source with ``X`` and ``sample_weight``: the coordinate descent reads columns).
    penalty : ElasticNet
    theta : ndarray, the start (``objective.pack`` layout)
    monitor : Monitor, strongly convex (stops at ``gap ≤ tol · |F|``)
    max_iter : int, outer iterations
    screening : bool, drop features certified zero by the gap-safe rule

    The result's history has, beside the monitor's entries, ``"screened"``: the number of
    features screened for every class at each iterate, and ``"sweeps"``: coordinate-descent
    sweeps per iterate.
    """
    source = objective.source
    if not hasattr(source, "X"):
        raise TypeError(
            "solver='newton-cd' reads the training rows by columns, so they must be in memory "
            f"(an ArraySource); got a {type(source).__name__}."
        )
    columns = _Columns(source.X, source.sample_weight)
    K, D = objective.n_outputs, objective.n_features
    screen = _Screen(penalty, K, D, columns.norms, screening)
    target_entropy = mean_target_entropy(objective) if penalty.l2 <= 0 else 0.0
    screened, sweeps = [], []

    def evaluate(theta, sums):
        coef, intercept = objective.unpack(theta)
        S = sums.weight
        value = sums.loss / S + penalty.value(coef)
        certificate = duality_gap(penalty, coef, intercept, sums, objective, target_entropy)
        grad_coef = sums.grad_coef / S + penalty.l2 * coef
        grad_intercept = None if intercept is None else sums.grad_intercept / S
        subgradient = objective.pack(penalty.min_norm_subgradient(coef, grad_coef), grad_intercept)
        evaluation = Evaluation(
            value, subgradient, float(np.linalg.norm(subgradient)), certificate.gap
        )
        return evaluation, certificate, grad_coef, grad_intercept

    def record(evaluation, theta, n_sweeps):
        screened.append(int(screen.features().sum()))
        sweeps.append(n_sweeps)
        return monitor.record(evaluation, theta)

    def result(theta, evaluation, n_iter, converged, message):
        history = monitor.history()
        history["screened"] = np.asarray(screened)
        history["sweeps"] = np.asarray(sweeps)
        return Result(theta, evaluation, n_iter, converged, message, history), screen.features()

    with np.errstate(over="ignore", invalid="ignore"):
        sums = objective.sums(theta, want_entropy=True)
    evaluation, certificate, grad_coef, grad_intercept = evaluate(theta, sums)
    screen.update(certificate.gap, certificate.dual_norms)
    if record(evaluation, theta, 0):
        return result(theta, evaluation, 0, True, "converged")
    damping = _DAMPING_START
    for iteration in range(1, max_iter + 1):
        coef, intercept = objective.unpack(theta)
        coef = np.asfortranarray(coef, dtype=np.float64)
        working = _working_set(penalty, screen, coef, grad_coef)
        n_sweeps, accepted = 0, None
        for _ in range(_MAX_RETRIES):
            new_coef, new_intercept, spent = _minimise_model(
                objective,
                columns,
                penalty,
                screen,
                working,
                (coef, intercept, grad_coef, grad_intercept),
                damping=damping,
                inner_tol=_forcing(evaluation.gradient),
                hessian_rows=_SAMPLE_START << min(iteration - 1, 62),
            )
            n_sweeps += spent
            step = objective.pack(new_coef, new_intercept) - theta
            grad_flat = objective.pack(grad_coef, grad_intercept)
            decrease = float(grad_flat @ step) + penalty.l1_value(new_coef) - penalty.l1_value(coef)
            accepted = _line_search(
                objective, penalty, theta, step, evaluation, decrease, certify=evaluate
            )
            if accepted is not None:
                break
            damping = max(100 * damping, _DAMPING_RETRY)
        if accepted is None:
            return result(theta, evaluation, iteration - 1, False, _NO_DECREASE)
        theta, sums, size = accepted
        # Levenberg–Marquardt: trust the model more after a full step, and after a cut one
        # as much less as the step was cut.
        damping = damping / _DAMPING_DROP if size == 1.0 else damping / size
        evaluation, certificate, grad_coef, grad_intercept = evaluate(theta, sums)
        screen.update(certificate.gap, certificate.dual_norms)
        if record(evaluation, theta, n_sweeps):
            return result(theta, evaluation, iteration, True, "converged")
        if monitor.stalled(window=5):
            return result(theta, evaluation, iteration, False, _STALLED)
    return result(theta, evaluation, max_iter, False, "max_iter reached")


def _working_set(penalty, screen, coef, grad_coef):
    """The features the coordinate descent visits in this iteration.

    Those with a non-zero coefficient, and those not screened whose gradient is within
    ``_WORKING_MARGIN`` of violating the optimality condition ``‖∇_j f‖ ≤ λ₁`` at zero;
    the others stay at zero until a later iteration's gradient calls them in. At the fixed
    point every feature outside the set satisfies that condition: the point is optimal.
    """
    nonzero = np.any(coef != 0, axis=0)
    correlation = penalty.dual_norms(grad_coef)
    if correlation.ndim == 2:
        correlation = correlation.max(axis=0)
    open_ = ~screen.mask if screen.mask.ndim == 1 else ~screen.mask.all(axis=0)
    candidates = open_ & (correlation >= _WORKING_MARGIN * penalty.l1)
    return np.flatnonzero(nonzero | candidates).astype(np.int64)


def _forcing(subgradient):
    """The inner tolerance ``min(_FORCING, ‖s‖_∞) ‖s‖_∞`` on ``h |δ|``."""
    largest = float(np.max(np.abs(subgradient), initial=0.0))
    return min(_FORCING, largest) * largest


def _line_search(objective, penalty, theta, step, evaluation, decrease, certify):
    """Backtrack along ``step`` until ``F`` drops by a fraction of the model's ``decrease``.

    Returns ``(θ, sums, step size)`` at the accepted point, or None when no step lowers ``F``. The
    full step lands on the coordinate descent's point exactly (its zeros stay exact zeros).
    Near the optimum the decrease falls below the rounding of ``F``'s sum; a full step
    whose ``F`` is equal to rounding is then kept if its certificate, from
    ``certify(θ, sums)``, is lower: that proves progress whatever the rounding of ``F`` did.
    """
    value = evaluation.objective
    rounding = _ROUNDING * abs(value)
    size = 1.0
    for _ in range(_MAX_BACKTRACKS if decrease < 0 else 1):
        candidate = theta + step if size == 1.0 else theta + size * step
        if np.array_equal(candidate, theta):
            return None
        with np.errstate(over="ignore", invalid="ignore"):
            sums = objective.sums(candidate, want_entropy=True)
        coef, _ = objective.unpack(candidate)
        trial = sums.loss / sums.weight + penalty.value(coef)
        if trial <= value + _SUFFICIENT_DECREASE * size * decrease:
            return candidate, sums, size
        if (
            size == 1.0
            and trial <= value + rounding
            and certify(candidate, sums)[0].gap_bound < evaluation.gap_bound
        ):
            return candidate, sums, size
        size *= 0.5
    return None


def _minimise_model(
    objective, columns, penalty, screen, working, point, *, damping, inner_tol, hessian_rows=None
):
    """Coordinate descent on the quadratic model of ``f`` at ``θ`` plus ``λ₁ Ω``.

    ``point`` is ``(coef, intercept, ∇_W f, ∇_b f)`` at ``θ``. The model carries the
    Levenberg–Marquardt term ``(μ/2) Σ_j ‖x_j‖²_s ‖ΔW_j‖² + (μ/2)‖Δb‖²`` (``μ = damping``),
    which keeps steps finite along directions of almost no curvature (a class nearly
    absent where a feature is non-zero). glmnet's schedule: a sweep over the working set,
    then sweeps over its non-zero features until they settle, then the working set again;
    done when a full sweep moves no coordinate by more than ``inner_tol`` (in ``h |δ|``).
    The sweeps read the data's columns, or, where rows are many per coordinate of the
    working set (:func:`_explicit_pays`), the model's Hessian built once
    (:mod:`softreg._explicit_hessian`), from ``hessian_rows`` of the rows (None: all; see
    :func:`_hessian_sample`).
    Returns the model's minimiser ``(coef, intercept)`` and the number of sweeps.
    """
    coef, intercept = point[:2]
    proba = _probabilities(objective, columns.X, coef, intercept)
    ridge = penalty.l2 + damping * columns.norms**2
    model = _ExplicitModel if _explicit_pays(columns, working, proba.shape[1]) else _ColumnModel
    model = model(columns, penalty, screen, working, point, proba, ridge, damping, hessian_rows)
    n_sweeps = 1
    change = model.sweep(model.groups)
    while change > inner_tol and n_sweeps < _MAX_SWEEPS:
        for _ in range(_MAX_POLISHES):
            if model.polish():
                break
        active = model.active()
        while n_sweeps < _MAX_SWEEPS:
            n_sweeps += 1
            if model.sweep(active) <= inner_tol:
                break
        n_sweeps += 1
        change = model.sweep(model.groups)
    new_coef, new_intercept = model.minimiser()
    return new_coef, new_intercept, n_sweeps


def _explicit_pays(columns, working, n_classes):
    """Whether building the model's Hessian costs less than ``_EXPLICIT_SWEEPS`` sweeps.

    A sweep over the columns costs ``nnz K`` (the working columns' entries times the
    classes); the Hessian costs ``n f̃(f̃+1)/2 (K(K+3)/2)`` multiply-adds in BLAS.
    """
    f = len(working) + 1
    size = f * n_classes
    if size > _EXPLICIT_MAX_SIZE:
        return False
    entries = int(np.sum(columns.indptr[working + 1] - columns.indptr[working]))
    build = columns.X.shape[0] * f * (f + 1) / 2 * n_classes * (n_classes + 3) / 2
    return build <= _EXPLICIT_SWEEPS * entries * n_classes


def _model_hessian(columns, proba, working, fit_intercept, n_rows=None):
    """The explicit model Hessian at ``proba``, or the last one if it is close enough.

    Built from :func:`_hessian_sample` of ``n_rows`` rows (None: all of them).

    Proximal Newton converges with any positive definite model, linearly at a rate set by
    the model's relative error where the Hessian is not exact (Lee, Sun & Saunders, 2014,
    §3.3): where no log-probability moved by more than ``_STALE_LOG_PROBA`` since the last
    build, each ``p_ik`` and ``p_ik p_im`` in it is off by a factor within ``e^{±2τ}``,
    and it is kept. Near the optimum the steps are small, so late iterations (and the
    retries of a failed line search, at the same point) cost no rebuild; so do the first
    iterations of a warm-started fit on the same rows (a regularisation path's next
    ``alpha``): the last Hessian is remembered with the rows it was built from (by identity,
    held weakly). Rows changed in place since then can only leave it kept while their
    probabilities agree with it: it stays a positive semi-definite model, the line search
    and the certificate use the rows as they are. A kept Hessian must also come from at least
    as many rows as asked for (a sample grows toward the exact Hessian, never shrinks back),
    and a new one is built from at least as many rows as the last when the probabilities are
    within ``_NEAR_LOG_PROBA`` of its own (a warm start: its sample had already grown).
    """
    n = columns.X.shape[0]
    n_rows = n if n_rows is None else min(n, n_rows)
    key = (columns.X.shape, working.tobytes(), fit_intercept)
    # Probabilities that underflowed count as the smallest normal number (their terms in H
    # vanish either way).
    log_proba = np.log(np.maximum(proba, np.finfo(np.float64).tiny))
    previous = _LAST_HESSIAN.get(id(columns.X))
    if (
        previous is not None
        and previous[0]() is columns.X
        and previous[1] is columns.sample_weight
        and previous[2][0] == key[0]
    ):
        moved = np.max(np.abs(log_proba - previous[3]))
        if previous[2] == key and previous[5] >= n_rows and moved <= _STALE_LOG_PROBA:
            return previous[4]
        if moved <= _NEAR_LOG_PROBA:  # a warm start near the last model: as many rows
            n_rows = max(n_rows, previous[5])
    rows, weight = _hessian_sample(columns.weight, n_rows)
    if rows is None:
        hessian = model_hessian(columns.X, weight, proba, working, fit_intercept)
    else:
        hessian = model_hessian(columns.X[rows], weight, proba[rows], working, fit_intercept)
    _LAST_HESSIAN.clear()  # one entry: the rows of the fit under way
    reference = weakref.ref(columns.X)
    entry = (reference, columns.sample_weight, key, log_proba, hessian, n_rows)
    _LAST_HESSIAN[id(columns.X)] = entry
    return hessian


def _hessian_sample(weight, n_rows):
    """The rows a subsampled model Hessian sums over and their weights: ``(rows, weight)``.

    The first ``n_rows`` of a fixed random permutation (so that a larger sample holds the
    smaller ones), sorted, with their weights ``s_i`` rescaled to sum to one as all of them
    do: the subsampled Hessian estimates the exact one, and is positive semi-definite as it
    is. Proximal Newton with such a model still converges to the exact optimum (the line
    search is on ``F`` and the certificate on all rows; Lee, Sun & Saunders, 2014, §3.3),
    faster the more rows; a sample doubling in each outer iteration reaches all rows (the
    exact Hessian and its superlinear convergence) in ``log₂(n / m₀)`` iterations
    (Bollapragada, Byrd & Nocedal, 2019). ``rows`` is None for all rows (``n_rows ≥ n``, or a
    sample whose weights are all zero).
    """
    n = weight.shape[0]
    if n_rows >= n:
        return None, weight
    rng = np.random.default_rng(_SAMPLE_SEED)
    rows = np.sort(rng.permutation(n)[:n_rows])
    total = weight[rows].sum()
    if not total > 0:
        return None, weight
    return rows, weight[rows] / total


# The last explicit Hessian (see _model_hessian), by the id of the rows it was built from.
_LAST_HESSIAN: dict = {}


class _ColumnModel:
    """The model's coordinate descent reading ``X``'s columns (``ΔZ`` and ``p_iᵀ ΔZ_i`` kept)."""

    def __init__(self, columns, penalty, screen, working, point, proba, ridge, damping, _rows):
        coef, intercept, grad_coef, grad_intercept = point
        K, D = coef.shape
        n = proba.shape[0]
        self.groups = working
        self.new_coef = coef.copy(order="F")
        self.new_intercept = None if intercept is None else np.array(intercept, dtype=np.float64)
        # Fortran order: the kernels walk one class's column of these for each feature.
        dz = np.zeros((n, K), order="F")
        pdz = np.zeros(n)
        indptr, indices, data, dense, weight = columns.args()
        grouped = penalty.grouped
        curvature = np.zeros((1, D) if grouped else (K, D), order="F")
        _diagonal_curvature(
            working, indptr, indices, data, dense, weight, proba, ridge, grouped, curvature
        )
        self._columns = (indptr, indices, data, dense, weight, proba, grad_coef, coef)
        # The grouped mask, (D,), as a (1, D) view: the kernel indexes both kinds [k, j].
        screened = screen.mask.reshape(1, -1) if grouped else screen.mask
        self._model = (curvature, screened, penalty.l1, ridge, dz, pdz, grouped)
        self._intercept = (weight, proba, grad_intercept, intercept, damping, dz, pdz)

    def sweep(self, features):
        change = _sweep_columns(features, *self._columns, self.new_coef, *self._model)
        if self.new_intercept is not None:
            weight, proba, grad, intercept, damping, dz, pdz = self._intercept
            moved = _sweep_intercept(
                weight, proba, grad, intercept, self.new_intercept, damping, dz, pdz
            )
            change = max(change, moved)
        return change

    def polish(self):
        """Nothing: the columns' model is never formed (see :meth:`_ExplicitModel.polish`)."""
        return True

    def active(self):
        return self.groups[np.any(self.new_coef[:, self.groups] != 0, axis=0)]

    def minimiser(self):
        return self.new_coef, self.new_intercept


class _ExplicitModel:
    """The model's coordinate descent over its Hessian, built once (or kept).

    The Hessian covers every feature where that still pays (:func:`_explicit_pays`), so that
    it can be kept while the working set changes (a path's next ``alpha``); the coordinate
    descent visits the working set only.
    """

    def __init__(self, columns, penalty, screen, working, point, proba, ridge, damping, n_rows):
        coef, intercept, grad_coef, grad_intercept = point
        K = coef.shape[0]
        fit_intercept = intercept is not None
        everything = np.arange(columns.n_features, dtype=np.int64)
        features = everything if _explicit_pays(columns, everything, K) else working
        self.hessian = _model_hessian(columns, proba, features, fit_intercept, n_rows)
        f = len(features) + int(fit_intercept)
        self.features, self.coef, self.intercept = features, coef, intercept
        # Feature-major flat vectors: coordinate g K + k is class k of group g.
        parts = [coef[:, features].T.ravel()]
        grads = [grad_coef[:, features].T.ravel()]
        ridges = [np.repeat(ridge[features], K)]
        mask = screen.mask[features] if penalty.grouped else screen.mask[:, features].T
        screened = [np.repeat(mask, K) if penalty.grouped else mask.ravel()]
        if fit_intercept:
            parts.append(np.asarray(intercept, dtype=np.float64))
            grads.append(grad_intercept)
            ridges.append(np.full(K, damping))
            screened.append(np.zeros(K, dtype=np.bool_))
        self.centre = np.concatenate(parts)
        self.values = self.centre.copy()
        self.grad = np.concatenate(grads).astype(np.float64)
        self.ridge = np.concatenate(ridges)
        self.screened = np.concatenate(screened)
        self.curvature = group_curvatures(self.hessian, self.ridge, K, penalty.grouped)
        self.moved = np.zeros_like(self.values)
        # The working features' groups (both sorted), then the intercept's.
        self.groups = np.searchsorted(features, working).astype(np.int64)
        self.free = f - 1 if fit_intercept else -1
        if fit_intercept:
            self.groups = np.append(self.groups, self.free)
        self._penalty = (penalty.l1, penalty.grouped)
        self.n_classes = K

    def sweep(self, groups):
        l1, grouped = self._penalty
        return explicit_sweep(
            groups, self.n_classes, self.hessian, self.grad, self.centre, self.values,
            self.ridge, self.curvature, self.screened, l1, grouped, self.free, self.moved,
        )  # fmt: skip

    def polish(self):
        """Minimise the model exactly on the current support, signs held (elementwise ``Ω``).

        With the signs ``σ`` of the non-zero coordinates fixed, the model plus ``λ₁ σᵀv``
        is a quadratic on the support ``A`` (and the intercept), minimised by one linear
        solve with ``H_AA + diag(ridge_A)``. The step goes from ``V`` toward that minimiser
        as far as no coordinate changes sign (one that reaches zero is set to zero): along
        it the model decreases, being convex and equal to the fixed-sign quadratic there.
        Coordinate descent alone converges linearly, slowly where features are correlated
        (letter at 1e-3 alpha_max: 200 sweeps per model, far from settled). Returns whether
        the full step was taken (False: a coordinate was stopped at zero).
        """
        l1, grouped = self._penalty
        if grouped:
            return True
        support = np.flatnonzero(self.values != 0)
        if self.free >= 0:
            free = np.arange(self.free * self.n_classes, (self.free + 1) * self.n_classes)
            support = np.union1d(support, free)
        if support.size == 0:
            return True
        signs = np.sign(self.values[support])
        if self.free >= 0:
            signs[np.isin(support, free)] = 0.0
        system = self.hessian[np.ix_(support, support)]
        system[np.diag_indices_from(system)] += self.ridge[support]
        residual = (
            self.grad[support]
            + self.moved[support]
            + self.ridge[support] * (self.values[support] - self.centre[support])
            + l1 * signs
        )
        # The system is singular along b + c·1 (and, without λ₂, along W[:, j] + c·1) but
        # for the damping: the solve may be inaccurate there; the model's decrease, checked
        # below, decides, and the coordinate descent that follows settles what is left.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
                step = -scipy.linalg.solve(system, residual, assume_a="pos", check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return True  # not positive definite in floating point: coordinate descent alone
        if not np.all(np.isfinite(step)):
            return True
        current = self.values[support]
        # The largest t ≤ 1 with sign(v + t step) = σ on the penalised coordinates.
        crossing = (signs != 0) & (signs * step < 0)
        size, blocked = 1.0, None
        if np.any(crossing):
            ratios = -current[crossing] / step[crossing]
            first = int(np.argmin(ratios))
            if ratios[first] < 1.0:
                size, blocked = float(ratios[first]), np.flatnonzero(crossing)[first]
        new = current + size * step
        if blocked is not None:
            new[blocked] = 0.0
        moved = new - current
        if residual @ moved + 0.5 * moved @ (system @ moved) >= 0:
            return True  # no decrease of the model: rounding won
        self.values[support] = new
        self.moved += self.hessian[:, support] @ moved
        return blocked is None

    def active(self):
        nonzero = np.any(self.values.reshape(-1, self.n_classes) != 0, axis=1)
        nonzero[self.free] |= self.free >= 0
        # The working set holds every non-zero feature: these are among its groups.
        return np.flatnonzero(nonzero).astype(np.int64)

    def minimiser(self):
        K = self.n_classes
        values = self.values.reshape(-1, K)
        new_coef = self.coef.copy(order="F")
        new_coef[:, self.features] = values[: len(self.features)].T
        new_intercept = None if self.intercept is None else values[-1].copy()
        return new_coef, new_intercept


def _probabilities(objective, X, coef, intercept):
    """``softmax(X Wᵀ + b)`` in float64, Fortran-ordered ``(n, K)``."""
    coef = np.asfortranarray(coef, dtype=objective.dtype)  # coef.T C-ordered: no copy in X @ coef.T
    intercept = None if intercept is None else np.asarray(intercept, dtype=objective.dtype)
    proba = objective.loss.block_curvature(Block(X, None, None), coef, intercept)
    return np.asfortranarray(proba, dtype=np.float64)
