"""The training objective, written once as sums over row blocks.

Conventions
-----------
* ``coef`` has shape ``(n_outputs, n_features)`` (``n_outputs`` is ``n_classes`` for softmax
  regression), ``intercept`` has shape ``(n_outputs,)``.
* ``theta``, the flat vector the solvers see, is ``coef.ravel()`` (C order) followed by
  ``intercept`` when the model fits one.
* The rows come from a *source* (:mod:`softreg._sources`): ``Objective`` calls only its
  ``reduce`` (per-block sums added up) and ``shape``, never asks where the rows live.
* A *block* is ``(X, target, sample_weight)``: ``X`` is a dense array or CSR matrix of rows,
  ``target`` holds integer class codes ``(n,)`` or a float matrix ``(n, n_outputs)`` (soft
  labels, or regression targets), ``sample_weight`` is ``(n,)`` or ``None`` for unit weights.
* A block function returns *sums* over its rows and the block's weight total; the objective
  adds the blocks up and divides by the global weight total once. Blocks are never averaged
  on their own, so the in-memory, out-of-core and distributed paths agree to rounding.

For softmax regression, with ``s_i`` the sample weights, ``S = Σ s_i`` and ``α = alpha``::

    R(W, b) = (1/S) Σ_i s_i CE(y_i, softmax(W x_i + b)) + (α/2) ‖W‖²_F
    ∇_W R   = (1/S) (P - Y)ᵀ diag(s) X + α W
    ∇_b R   = (1/S) (P - Y)ᵀ s

and for squared-loss regression the same with ``½‖W x_i + b - y_i‖²`` and ``P`` replaced by
the predictions ``W x_i + b``.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.special import entr

from softreg import _fused, _preconditioner
from softreg._sources import ArraySource, Block, block_rows

__all__ = ["Block", "Evaluation", "Objective", "SoftmaxLoss", "SquaredLoss", "block_rows"]

# Memory that Newton-CG may spend keeping block probabilities between Hessian-vector products
# (beyond it they are recomputed): a fixed budget, so extra memory stays O(block × K).
_CURVATURE_CACHE_BYTES = 64 * 2**20
# Subsampled Hessian for Newton-CG (Objective.hessian_subsample): at least this many rows per
# parameter and this many blocks, and at most every this-many-th block.
_HESSIAN_ROWS_PER_PARAM = 64
_HESSIAN_MIN_BLOCKS = 8
_HESSIAN_MAX_STRIDE = 16


class BlockSums(NamedTuple):
    """Weighted sums over the rows of one block (or of many, once added)."""

    loss: float
    grad_coef: np.ndarray  # Σ s_i (p_i - y_i) x_iᵀ, shape (n_outputs, n_features)
    grad_intercept: np.ndarray  # Σ s_i (p_i - y_i), shape (n_outputs,)
    entropy: float  # Σ s_i H(p_i) (softmax only; 0 for squared loss)
    weight: float  # Σ s_i


class BlockStatistics(NamedTuple):
    """Sums that do not depend on the parameters, needed by the optimality certificate."""

    target: np.ndarray  # Σ s_i y_i, shape (n_outputs,)
    features: np.ndarray  # Σ s_i x_i, shape (n_features,)
    cross: np.ndarray  # Σ s_i y_i x_iᵀ, shape (n_outputs, n_features)
    weight: float


def loss_outputs(loss) -> int:
    """Outputs per row of a loss: ``n_classes`` for softmax, ``n_outputs`` for squared loss."""
    return loss.n_classes if isinstance(loss, SoftmaxLoss) else loss.n_outputs


def _matmul_t(X, M):
    """``X @ M.T`` for dense or sparse ``X``, returning a dense C-ordered array."""
    out = X @ M.T
    return np.ascontiguousarray(out)


def _rows_t_x(R, X):
    """``Rᵀ X`` for dense ``R`` (n, K) and dense or sparse ``X`` (n, D) -> dense (K, D).

    Computed as ``(Xᵀ R)ᵀ`` (a Fortran-ordered result): scipy's sparse product wants that
    form, and OpenBLAS runs the dense one faster with ``R`` untransposed when K is small
    (1 thread, 1347 × 64 × 10: 54 against 67 µs; 256 × 784 × 10: 130 against 231 µs; equal
    within 2 % at K = 26, 100, 1000; ``benchmarks.levers`` measures it). Block sums stay in
    that layout and are put in θ's layout once per pass.
    """
    return np.asarray((X.T @ R).T)


def _weighted_sum(values, weight):
    """Σ s_i v_i in float64 (unit weights when ``weight`` is None)."""
    if weight is None:
        return float(np.sum(values, dtype=np.float64))
    return float(np.dot(values.astype(np.float64, copy=False), weight))


def _inner(a, b) -> float:
    """``Σ a_ij b_ij`` of two arrays in the same memory layout, without copying either.

    ``np.vdot`` flattens in C order, which copies a Fortran-ordered array (a transposed
    ``coef``): 46 MB per call on sector.
    """
    if a.flags.f_contiguous != b.flags.f_contiguous and a.ndim > 1:
        b = np.asarray(b, order="F" if a.flags.f_contiguous else "C")
    return float(np.dot(a.ravel(order="K"), b.ravel(order="K")))


def _shifted_exp(logits, intercept, out):
    """``logits + b`` shifted by each row's max (in place), and its floored ``exp`` in ``out``.

    ``out`` may be ``logits`` itself when the shifted logits are not needed afterwards.
    """
    floor = _fused.EXP_FLOOR[logits.dtype]
    _fused.shift_rows(logits, _empty_if_none(intercept, logits.dtype), floor, out)
    return np.exp(out, out=out)


def _empty_if_none(array, dtype):
    """``array``, or an empty one standing for "none" in the compiled kernels."""
    return np.empty(0, dtype) if array is None else array


def _one_hot(codes, n_classes, dtype):
    onehot = np.zeros((codes.shape[0], n_classes), dtype=dtype)
    onehot[np.arange(codes.shape[0]), codes] = 1
    return onehot


# --------------------------------------------------------------------------------------------
# Losses. Each one knows how to turn one block into sums; everything else is shared.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoftmaxLoss:
    """Cross-entropy of (optionally smoothed) targets against ``softmax(W x + b)``.

    ``label_smoothing = ε`` replaces each target ``y`` by ``(1 - ε) y + ε / K``.
    """

    n_classes: int
    label_smoothing: float = 0.0

    def targets(self, target, dtype):
        """Dense smoothed target matrix of a block (only used off the hot path)."""
        Y = _one_hot(target, self.n_classes, dtype) if target.ndim == 1 else target.astype(dtype)
        if self.label_smoothing:
            Y = (1 - self.label_smoothing) * Y + self.label_smoothing / self.n_classes
        return Y

    def block_sums(self, block: Block, coef, intercept, want_entropy: bool) -> BlockSums:
        if _fused.ENABLED:
            return self._block_sums_fused(block, coef, intercept, want_entropy)
        return self._block_sums_numpy(block, coef, intercept, want_entropy)

    def _block_sums_fused(self, block: Block, coef, intercept, want_entropy: bool) -> BlockSums:
        """:meth:`_block_sums_numpy` with the passes over the logits fused (see _fused.py)."""
        X, target, weight = block
        logits = _matmul_t(X, coef)
        proba = _shifted_exp(logits, intercept, out=np.empty_like(logits))
        grad_intercept = np.zeros(self.n_classes)
        sums = _fused.hard_label_sums if target.ndim == 1 else _fused.soft_label_sums
        loss, entropy, total = sums(
            logits,
            proba,
            target,
            _empty_if_none(weight, np.float64),
            float(self.label_smoothing),
            bool(want_entropy),
            grad_intercept,
        )
        grad_coef = _rows_t_x(proba, X).astype(np.float64, copy=False)
        return BlockSums(loss, grad_coef, grad_intercept, entropy, total)

    def _block_sums_numpy(self, block: Block, coef, intercept, want_entropy: bool) -> BlockSums:
        X, target, weight = block
        eps, K = self.label_smoothing, self.n_classes
        logits = _matmul_t(X, coef)
        if intercept is not None:
            logits += intercept
        # Shift each row by its max so exp cannot overflow; CE, softmax and H are shift-invariant
        # because every target row sums to one.
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        norm = proba.sum(axis=1)
        proba /= norm[:, None]
        log_norm = np.log(norm)  # logsumexp of the shifted logits, in [0, log K]
        entropy = 0.0
        if want_entropy:
            # H(p) = logsumexp(z) - pᵀz: no log of a tiny probability is ever taken.
            entropy = _weighted_sum(log_norm - np.einsum("ij,ij->i", proba, logits), weight)
        residual = proba  # becomes P - Y in place
        if target.ndim == 1:
            rows = np.arange(target.shape[0])
            # CE for a hard label a is logsumexp(z) - z_a (never log of softmax).
            per_sample = log_norm - (1 - eps) * logits[rows, target]
            if eps:
                per_sample -= eps * logits.mean(axis=1)
                residual -= eps / K
            residual[rows, target] -= 1 - eps
        else:
            Y = target if not eps else (1 - eps) * target + eps / K
            per_sample = log_norm - np.einsum("ij,ij->i", Y, logits)
            residual -= Y
        loss = _weighted_sum(per_sample, weight)
        if weight is not None:
            residual *= weight[:, None].astype(residual.dtype, copy=False)
        grad_coef = _rows_t_x(residual, X)
        grad_intercept = residual.sum(axis=0, dtype=np.float64)
        total = float(target.shape[0]) if weight is None else float(weight.sum(dtype=np.float64))
        grad_coef = grad_coef.astype(np.float64, copy=False)
        return BlockSums(loss, grad_coef, grad_intercept, entropy, total)

    def block_curvature(self, block: Block, coef, intercept):
        """The probabilities of a block at ``θ``: all a Hessian-vector product needs."""
        logits = _matmul_t(block.X, coef)
        if _fused.ENABLED:
            proba = _shifted_exp(logits, intercept, out=logits)
            _fused.normalise_rows(proba)
            return proba
        if intercept is not None:
            logits += intercept
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits, out=logits)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def block_hessp(self, block: Block, proba, direction_coef, direction_intercept):
        X, _, weight = block
        d_logits = _matmul_t(X, direction_coef)
        if _fused.ENABLED:
            column_sums = np.zeros(self.n_classes)
            _fused.jacobian_rows(
                d_logits,
                proba,
                _empty_if_none(direction_intercept, d_logits.dtype),
                _empty_if_none(weight, np.float64),
                column_sums,
            )
            return _rows_t_x(d_logits, X).astype(np.float64, copy=False), column_sums
        if direction_intercept is not None:
            d_logits += direction_intercept
        # The softmax Jacobian is diag(p) - p pᵀ (the notes' ∂ŷ_i/∂z_m = ŷ_i(δ_im - ŷ_m)), so
        # per row J dz = p ⊙ dz - p (pᵀ dz): O(K) work, the K × K matrix is never formed.
        d_logits *= proba
        d_logits -= proba * d_logits.sum(axis=1, keepdims=True)
        if weight is not None:
            d_logits *= weight[:, None].astype(d_logits.dtype, copy=False)
        product = _rows_t_x(d_logits, X).astype(np.float64, copy=False)
        return product, d_logits.sum(axis=0, dtype=np.float64)


@dataclass(frozen=True)
class SquaredLoss:
    """Half squared error ``½‖W x + b - y‖²`` (identity link): ∇ in the outputs is ``ŷ - y``."""

    n_outputs: int

    def targets(self, target, dtype):
        return target.astype(dtype).reshape(target.shape[0], -1)

    def block_sums(self, block: Block, coef, intercept, want_entropy: bool) -> BlockSums:
        X, target, weight = block
        residual = _matmul_t(X, coef)
        if intercept is not None:
            residual += intercept
        residual -= target.reshape(residual.shape)
        loss = 0.5 * _weighted_sum(np.einsum("ij,ij->i", residual, residual), weight)
        if weight is not None:
            residual *= weight[:, None].astype(residual.dtype, copy=False)
        grad_coef = _rows_t_x(residual, X).astype(np.float64, copy=False)
        grad_intercept = residual.sum(axis=0, dtype=np.float64)
        total = float(target.shape[0]) if weight is None else float(weight.sum(dtype=np.float64))
        return BlockSums(loss, grad_coef, grad_intercept, 0.0, total)

    def block_curvature(self, block: Block, coef, intercept):
        """Squared loss has constant curvature: nothing depends on ``θ``."""
        return None

    def block_hessp(self, block: Block, state, direction_coef, direction_intercept):
        X, _, weight = block
        d_out = _matmul_t(X, direction_coef)
        if direction_intercept is not None:
            d_out += direction_intercept
        if weight is not None:
            d_out *= weight[:, None].astype(d_out.dtype, copy=False)
        product = _rows_t_x(d_out, X).astype(np.float64, copy=False)
        return product, d_out.sum(axis=0, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Per-block functions for Source.reduce: module-level (picklable), parameters as arguments,
# each returning new arrays that the source adds up.
# --------------------------------------------------------------------------------------------


def _block_sums(index, block, loss, coef, intercept, want_entropy) -> BlockSums:
    return loss.block_sums(block, coef, intercept, want_entropy)


def _block_statistics(index, block, loss) -> BlockStatistics:
    X, target, weight = block
    # In the data's dtype, so float32 blocks are never copied to float64.
    Y = loss.targets(target, X.dtype)
    s = np.ones(X.shape[0], X.dtype) if weight is None else weight.astype(X.dtype)
    sY = Y * s[:, None]
    return BlockStatistics(
        sY.sum(axis=0, dtype=np.float64),
        np.asarray(X.T @ s, dtype=np.float64).ravel(),
        _rows_t_x(sY, X).astype(np.float64, copy=False),
        float(s.sum(dtype=np.float64)),
    )


def _intercept_newton_sums(index, block, loss, coef, intercept):
    """Σ s (p - y), Σ s (diag(p) - p pᵀ) and Σ s over a block, in float64 (W fixed)."""
    logits = _matmul_t(block.X, coef).astype(np.float64) + intercept
    logits -= logits.max(axis=1, keepdims=True)
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    Y = loss.targets(block.target, np.float64)
    w = block.sample_weight
    s = np.ones(proba.shape[0]) if w is None else w.astype(np.float64)
    weighted = proba * s[:, None]
    hessian = np.diag(weighted.sum(axis=0)) - weighted.T @ proba
    return s @ (proba - Y), hessian, float(s.sum())


class CurvatureCache:
    """Per-block curvature (probabilities at θ) kept between Hessian-vector products.

    Blocks are kept while they fit in a fixed byte budget and recomputed beyond it, so memory
    stays bounded whatever the number of rows. Each cache (one per θ) has a token; copies
    sent to another process (a Dask worker) become that process's one cache for the token,
    empty at first, so a worker keeps the curvature of its own blocks between products (with
    its own budget) and never sees another θ's.
    """

    def __init__(self, budget, token=None):
        self.limit = self.budget = budget
        self.token = uuid.uuid4().hex if token is None else token
        self.states: dict = {}

    def __reduce__(self):
        return _received_cache, (self.limit, self.token)

    def get(self, index, block, loss, coef, intercept):
        if index in self.states:
            return self.states[index]
        state = loss.block_curvature(block, coef, intercept)
        size = 0 if state is None else state.nbytes
        if size <= self.budget:
            self.states[index] = state
            self.budget -= size
        return state


# The caches this process received from another (a Dask worker's), by token; only the most
# recent are kept, since a fit moves on to a new θ (and token) with each Newton step.
_RECEIVED: OrderedDict = OrderedDict()
_RECEIVED_KEPT = 2
_RECEIVED_LOCK = threading.Lock()


def _received_cache(limit, token):
    """This process's cache for ``token``: the same object for every copy received."""
    with _RECEIVED_LOCK:
        cache = _RECEIVED.get(token)
        if cache is None:
            cache = _RECEIVED[token] = CurvatureCache(limit, token)
            while len(_RECEIVED) > _RECEIVED_KEPT:
                _RECEIVED.popitem(last=False)
        return cache


def _hessp_sums(index, block, loss, coef, intercept, direction_coef, direction_intercept, cache):
    """``(Σ_block ∇²(s CE) v`` in coef and intercept, and the block's weight total)."""
    curvature = cache.get(index, block, loss, coef, intercept)
    part_c, part_b = loss.block_hessp(block, curvature, direction_coef, direction_intercept)
    w = block.sample_weight
    return part_c, part_b, float(block.X.shape[0] if w is None else w.sum(dtype=np.float64))


def _class_curvature_sums(index, block, loss, coef, intercept, cache):
    """``(Σ_block s (diag(p) - p pᵀ)``, the block's weight total) at θ, for the preconditioner."""
    proba = cache.get(index, block, loss, coef, intercept)
    w = block.sample_weight
    total = float(block.X.shape[0] if w is None else w.sum(dtype=np.float64))
    return _preconditioner.class_curvature(proba, w), total


# --------------------------------------------------------------------------------------------
# The objective: blocks reduced, normalised once, penalty added, certificate computed.
# --------------------------------------------------------------------------------------------


class Evaluation(NamedTuple):
    """The objective and its gradient at one point, with the certificate."""

    objective: float
    gradient: np.ndarray  # flat, float64
    gradient_norm: float  # Euclidean norm of the gradient
    gap_bound: float  # certified upper bound on R(θ) - R*, inf when none is available
    coef_bound: float = math.inf  # ‖∇_W R‖² / (2α): the part of the bound the intercept can't cut


class Objective:
    """``R(θ)`` over a re-iterable source of row blocks.

    Parameters
    ----------
    loss : SoftmaxLoss or SquaredLoss
    source : :class:`~softreg._sources.Source`
        The rows, as blocks. Every pass goes through ``source.reduce``, so the in-memory,
        out-of-core and distributed paths differ only in the source. ``source.n_features``
        and ``source.dtype`` (the dtype the block computations run in: float32 stays
        float32) are taken from it.
    alpha : float
        L2 penalty on ``coef`` (the intercept is not penalised).
    fit_intercept : bool
    transposed_coef : bool, default=None
        Lay ``coef`` out in ``θ`` as its transpose ``(D, K)`` (C order). Sparse blocks want
        that layout: ``X Wᵀ`` reads ``Wᵀ`` row by row and ``Xᵀ R`` writes ``(D, K)``, so on
        wide sparse data (sector: 55197 × 105 parameters, 46 MB) the usual layout costs two
        parameter-sized transposes per pass. ``unpack`` returns ``coef`` as a ``(K, D)`` view
        either way. None (the default) means: when the source's blocks are sparse.
    """

    def __init__(self, loss, source, *, alpha, fit_intercept, transposed_coef=None):
        self.loss = loss
        self.source = source
        self.n_features = n_features = int(source.n_features)
        self.n_outputs = loss_outputs(loss)
        self.alpha = float(alpha)
        self.fit_intercept = fit_intercept
        self.dtype = np.dtype(source.dtype)
        self.n_coef = self.n_outputs * n_features
        self.n_params = self.n_coef + (self.n_outputs if fit_intercept else 0)
        self._statistics = None
        if transposed_coef is None:
            transposed_coef = source.sparse
        self.transposed_coef = bool(transposed_coef)
        self._shape = None  # (rows, blocks), counted when first needed
        self._mean_cross = None
        self._moments = None  # feature_moments(), once: False where it does not apply

    # -- parameters ----------------------------------------------------------------------
    def unpack(self, theta):
        """Split ``θ`` into ``coef (K, D)`` and ``intercept (K,)`` or None (views)."""
        if self.transposed_coef:
            coef = theta[: self.n_coef].reshape(self.n_features, self.n_outputs).T
        else:
            coef = theta[: self.n_coef].reshape(self.n_outputs, self.n_features)
        intercept = theta[self.n_coef :] if self.fit_intercept else None
        return coef, intercept

    def pack(self, coef, intercept=None):
        coef = np.asarray(coef, dtype=np.float64)
        parts = [coef.T.ravel() if self.transposed_coef else coef.ravel()]
        if self.fit_intercept:
            parts.append(np.asarray(intercept, dtype=np.float64).ravel())
        return np.concatenate(parts)

    def _in_layout(self, coef):
        """A ``(K, D)`` array in the memory layout of ``coef`` in ``θ`` (a copy only if not)."""
        return np.asfortranarray(coef) if self.transposed_coef else np.ascontiguousarray(coef)

    def _cast(self, theta):
        """``coef`` and ``intercept`` in the blocks' dtype, for the block computations.

        ``coef`` is returned as the transpose of a C-contiguous ``(D, K)`` array, so that
        ``X @ coef.T`` never copies it: scipy's sparse product would make a C-contiguous
        copy of ``coef.T`` for every block (46 MB per block on sector), and dense BLAS is as
        fast or faster with this layout.
        """
        coef, intercept = self.unpack(theta)
        coef = np.ascontiguousarray(coef.T, dtype=self.dtype).T
        return coef, None if intercept is None else intercept.astype(self.dtype, copy=False)

    # -- passes over the data ---------------------------------------------------------------
    def sums(self, theta, want_entropy=False) -> BlockSums:
        """One pass: the block sums at ``θ`` added over all blocks."""
        coef, intercept = self._cast(theta)
        total = self.source.reduce(_block_sums, self.loss, coef, intercept, want_entropy)
        if total is None or not total.weight > 0:
            raise ValueError("The training data have no rows with positive sample_weight.")
        # Sparse blocks give Fortran-ordered (K, D) sums (the transpose of Xᵀ R); they are
        # added in that layout and put in θ's layout once here, never mixed with the other
        # layout in element-wise arithmetic (slow on parameter-sized arrays).
        return total._replace(grad_coef=self._in_layout(total.grad_coef))

    def statistics(self) -> BlockStatistics:
        """Σ s y, Σ s x, Σ s y xᵀ and Σ s, computed once (they do not depend on θ)."""
        if self._statistics is None:
            total = self.source.reduce(_block_statistics, self.loss)
            if total is not None:
                total = total._replace(cross=self._in_layout(total.cross))
            self._statistics = total
        return self._statistics

    def loss_gradient(self, theta, *, certify=True) -> Evaluation:
        """``R(θ)``, ``∇R(θ)`` and the optimality-gap bound, in one pass over the data.

        ``certify=False`` skips the bound (``gap_bound`` and ``coef_bound`` are inf), and with
        it the entropies and the one-off statistics pass: what a stochastic step on a
        mini-batch needs (:mod:`softreg._online`).
        """
        want_entropy = (
            certify and isinstance(self.loss, SoftmaxLoss) and self.fit_intercept and self.alpha > 0
        )
        # A solver's trial step may be absurdly long; R is then inf or NaN, which the line
        # searches reject, so overflow there is an answer, not an error.
        with np.errstate(over="ignore", invalid="ignore"):
            sums = self.sums(theta, want_entropy)
            coef, intercept = self.unpack(theta)
            penalty = 0.5 * self.alpha * _inner(coef, coef)
        S, alpha = sums.weight, self.alpha
        objective = sums.loss / S + penalty
        # ∇R written straight into the flat gradient (views in θ's layout): no
        # parameter-sized temporaries beyond the one α W.
        gradient = np.empty(self.n_params)
        grad_coef, grad_intercept = self.unpack(gradient)
        np.divide(sums.grad_coef, S, out=grad_coef)
        if alpha:
            grad_coef += alpha * coef
        if grad_intercept is not None:
            np.divide(sums.grad_intercept, S, out=grad_intercept)
        else:
            grad_intercept = sums.grad_intercept / S
        if not certify:  # (a diverging online step may overflow ‖∇R‖²: inf is the answer)
            with np.errstate(over="ignore"):
                return Evaluation(objective, gradient, float(np.linalg.norm(gradient)), math.inf)
        bound = self._gap_bound(coef, intercept, grad_coef, grad_intercept, sums.entropy / S)
        coef_bound = _inner(grad_coef, grad_coef) / (2 * alpha) if alpha > 0 else math.inf
        return Evaluation(objective, gradient, float(np.linalg.norm(gradient)), bound, coef_bound)

    def can_polish_intercept(self) -> bool:
        """Whether :meth:`polish_intercept` applies: softmax with an intercept and ``α > 0``."""
        return isinstance(self.loss, SoftmaxLoss) and self.fit_intercept and self.alpha > 0

    def polish_intercept(self, theta, steps=2):
        """Newton steps on the intercept alone, ``W`` fixed; returns the new ``θ``.

        With an intercept the certificate carries terms of first order in ``∇_b R`` (see
        :meth:`_gap_bound`), while the solvers drive ``∇_W R`` down as fast. Minimising over
        ``b`` exactly is cheap: ``∇²_b R = (1/S) Σ s_i (diag(p_i) - p_i p_iᵀ)`` is only
        K × K. Probabilities are taken in float64 so float32 data gain the digits their
        own arithmetic cannot give ``∇_b R``. ``∇²_b R`` is singular along ``1`` (adding a
        constant to every intercept changes nothing) and ``∇_b R ⊥ 1``, so solving with
        ``∇²_b R + 1 1ᵀ`` gives the Newton step in ``1⊥``.
        """
        coef, intercept = self._cast(theta)
        intercept = self.unpack(theta)[1].copy()
        for _ in range(steps):
            gradient, hessian, total = self.source.reduce(
                _intercept_newton_sums, self.loss, coef, intercept
            )
            gradient /= total
            hessian /= total
            step = np.linalg.lstsq(hessian + 1.0, -gradient, rcond=None)[0]
            intercept += step - step.mean()
        polished = theta.copy()
        polished[self.n_coef :] = intercept
        return polished

    def hessp(self, theta, every=1) -> HessianProduct:
        """Return ``v ↦ ∇²R(θ) v`` (exact; one pass over the data per product).

        ``every > 1`` gives the Hessian of the rows of every ``every``-th block instead (each
        block's rows weighted as in R, the sum divided by their own weight total): a
        *subsampled* Hessian, for Newton-CG on data with many more rows than parameters
        (see :meth:`hessian_subsample`). The gradient and the certificate never subsample.

        The per-block curvature (the probabilities at ``θ``) is kept between products while
        it fits in ``_CURVATURE_CACHE_BYTES``, a fixed budget, and recomputed otherwise, so
        memory stays bounded whatever the number of rows. The returned product also builds
        its preconditioner (:meth:`HessianProduct.preconditioner`).
        """
        return HessianProduct(self, theta, every)

    def feature_moments(self):
        """``C = (1/S) Σ s_i x̃_i x̃_iᵀ`` decomposed, for the Kronecker preconditioner, or None.

        None where it does not apply: squared loss, sparse ``X``, or more than
        ``_preconditioner.MAX_FEATURES`` columns (with the intercept's). Estimated once, from
        a strided subset of about ``_preconditioner.MOMENT_ROWS`` rows: a preconditioner need
        not be exact.
        """
        if self._moments is None:
            self._moments = False  # computed, and not applicable
            D = self.n_features + (1 if self.fit_intercept else 0)
            applies = isinstance(self.loss, SoftmaxLoss) and not self.source.sparse
            if applies and D <= _preconditioner.MAX_FEATURES:
                rows, blocks = self._source_shape()
                stride = max(1, min(blocks, rows // _preconditioner.MOMENT_ROWS))
                total = self.source.reduce(
                    _preconditioner.feature_moment_sums, self.fit_intercept, every=stride
                )
                if total is not None and total[1] > 0:
                    self._moments = _preconditioner.FeatureMoments(total[0] / total[1])
        return self._moments or None

    def preconditioner_pays(self) -> bool:
        """Whether Newton-CG's products get the Kronecker preconditioner on these data."""
        moments = self.feature_moments()
        return moments is not None and _preconditioner.worth_it(moments, self.alpha)

    def _source_shape(self):
        """``(n_samples, n_blocks)`` of the source, counted once."""
        if self._shape is None:
            self._shape = self.source.shape()
        return self._shape

    def hessian_subsample(self) -> int:
        """The block stride ``every`` for :meth:`hessp` that Newton-CG uses.

        1 (every row) unless the data have many more rows than the Hessian has parameters:
        the stride is the largest power of two up to ``_HESSIAN_MAX_STRIDE`` that keeps at
        least ``_HESSIAN_ROWS_PER_PARAM`` rows per parameter and ``_HESSIAN_MIN_BLOCKS``
        blocks, spread over the whole data (a strided subset, so data sorted by class are
        still sampled evenly). A mean of that many rows' curvature differs from the full
        Hessian by roughly ``sqrt(n_params / rows)``, a few percent: Newton's steps stay
        good while each Hessian-vector product reads a fraction of the data.
        """
        rows, blocks = self._source_shape()
        every = 1
        while (
            2 * every <= _HESSIAN_MAX_STRIDE
            and rows // (2 * every) >= _HESSIAN_ROWS_PER_PARAM * self.n_params
            and blocks // (2 * every) >= _HESSIAN_MIN_BLOCKS
        ):
            every *= 2
        return every

    # -- the certificate ----------------------------------------------------------------------
    def _gap_bound(self, coef, intercept, grad_coef, grad_intercept, mean_entropy):
        """Upper bound on ``R(θ) - R*`` from a feasible point of the dual problem.

        With ``α > 0`` and no intercept, R is α-strongly convex and the bound is the notes'
        ``‖∇R‖² / (2α)`` (it is also exactly the duality gap at the dual point ``q_i = p_i``).
        The unpenalised intercept makes R flat along some directions, so there the dual
        point must be repaired to satisfy ``Σ s_i (q_i - y_i) = 0``; docs/derivation.md derives
        the formulas below, written so that no two large numbers are subtracted.
        """
        alpha = self.alpha
        if alpha <= 0:
            return math.inf
        if intercept is None:
            return _inner(grad_coef, grad_coef) / (2 * alpha)
        stats = self.statistics()
        S = stats.weight
        mean_x = stats.features / S
        g_b = grad_intercept
        if isinstance(self.loss, SquaredLoss):
            # Dual point q_i = r_i - r̄ (residuals centred): gap = ‖∇_W R - r̄ x̄ᵀ‖²/(2α) + ½‖r̄‖².
            repaired = grad_coef - np.outer(g_b, mean_x)
            return _inner(repaired, repaired) / (2 * alpha) + 0.5 * float(g_b @ g_b)
        # Softmax: q_i = (1-t) p_i + t u with u ∈ simplex chosen so that the weighted mean of q
        # equals the target mean ȳ; t = max_k g_b[k] / p̄_k is the smallest mixing that works.
        # Σ_k ∇_b R = 0 exactly (each p_i - y_i sums to 0); remove the rounding that breaks it,
        # or u below may not sum to one (float32 sums at the log-prior start do).
        g_b = g_b - g_b.mean()
        mean_y = stats.target / S
        mean_p = mean_y + g_b
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(mean_p > 0, g_b / mean_p, -np.inf)
        t = float(min(1.0, max(0.0, ratios.max())))
        bound = 0.5 * _inner(grad_coef, grad_coef) / alpha + float(g_b @ intercept)
        if t > 0:
            u = np.clip(mean_p - g_b / t, 0.0, None)
            if not u.sum() > 0:
                return math.inf
            u /= u.sum()
            # direction = (∇_W R - αW) - u x̄ᵀ + Σ s y xᵀ / S and repaired = ∇_W R - t direction,
            # built in one K × D buffer (these are parameter-sized: 46 MB each on sector).
            buffer = np.multiply(coef, -alpha)
            buffer += grad_coef
            buffer -= np.outer(mean_x, u).T if self.transposed_coef else np.outer(u, mean_x)
            if self._mean_cross is None:  # Σ s y xᵀ / S, fixed: divided once
                self._mean_cross = stats.cross / S
            buffer += self._mean_cross
            along_coef = _inner(buffer, coef)
            buffer *= -t
            buffer += grad_coef
            bound = (
                0.5 * _inner(buffer, buffer) / alpha
                + float(g_b @ intercept)
                + t * (mean_entropy - float(entr(u).sum()) + along_coef)
            )
        return max(bound, 0.0)


class HessianProduct:
    """``v ↦ ∇²R(θ) v`` at one ``θ`` (see :meth:`Objective.hessp`), and its preconditioner."""

    def __init__(self, objective: Objective, theta, every=1):
        self.objective, self.theta, self.every = objective, theta, every
        self.coef, self.intercept = objective._cast(theta)
        self.cache = CurvatureCache(_CURVATURE_CACHE_BYTES)

    def __call__(self, v):
        objective = self.objective
        direction_coef, direction_intercept = objective._cast(v)
        args = (objective.loss, self.coef, self.intercept, direction_coef, direction_intercept)
        hc, hb, S = objective.source.reduce(_hessp_sums, *args, self.cache, every=self.every)
        if self.every > 1 and not S > 0:  # the subsample has no weight: use every row
            return objective.hessp(self.theta)(v)
        v_coef, _ = objective.unpack(v)
        return objective.pack(objective._in_layout(hc) / S + objective.alpha * v_coef, hb / S)

    def preconditioner(self):
        """``r ↦ M⁻¹ r`` for CG (see :mod:`softreg._preconditioner`), or None where it won't pay.

        The class curvature ``A`` is summed from the probabilities the products use, computed
        here through the same cache, so it costs no extra pass while the cache holds them.
        """
        objective = self.objective
        if not objective.preconditioner_pays():
            return None
        args = (objective.loss, self.coef, self.intercept, self.cache)
        total = objective.source.reduce(_class_curvature_sums, *args, every=self.every)
        if total is None or not total[1] > 0:
            return None
        return _preconditioner.KroneckerPreconditioner(
            total[0] / total[1],
            objective.feature_moments(),
            objective.alpha,
            objective.unpack,
            objective.pack,
        )


def in_memory(X, target, sample_weight=None, *, n_outputs=None, rows=None):
    """An :class:`~softreg._sources.ArraySource` over arrays held in memory (no copies)."""
    return ArraySource(X, target, sample_weight, n_outputs=n_outputs, rows=rows)


def objective_value(X, target, coef, intercept=None, alpha=0.0, sample_weight=None):
    """Softmax-regression objective ``R(W, b)`` evaluated in float64.

    The shared evaluator for comparisons across tools: every input is converted to float64
    and ``target`` holds integer class codes ``0..K-1`` (or a probability matrix).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> coef = np.zeros((3, 2))
    >>> bool(np.isclose(objective_value(X, np.array([0, 2]), coef), np.log(3), rtol=1e-15))
    True
    """
    coef = np.asarray(coef, dtype=np.float64)
    X = X.astype(np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    target = np.asarray(target)
    if target.ndim == 2:
        target = target.astype(np.float64)
    weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    fit_intercept = intercept is not None
    objective = Objective(
        SoftmaxLoss(coef.shape[0]),
        in_memory(X, target, weight, n_outputs=coef.shape[0]),
        alpha=alpha,
        fit_intercept=fit_intercept,
    )
    sums = objective.sums(objective.pack(coef, intercept))
    return sums.loss / sums.weight + 0.5 * float(alpha) * _inner(coef, coef)
