"""A Kronecker-factored preconditioner for the Newton systems of softmax regression.

With ``x̃_i = [x_i, 1]`` (the 1 only when the model fits an intercept) and the parameters laid
out as ``Θ = [W | b]`` (K × D̃), the Hessian of ``R`` is

    ∇²R = (1/S) Σ_i s_i (diag(p_i) - p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ + α I

(the intercept carries no ``α``; the preconditioner below gives it one, which keeps it
positive definite along the flat direction ``b + c 1``). Replacing the per-row curvature by
its mean ``A = (1/S) Σ s_i (diag(p_i) - p_i p_iᵀ)`` gives

    M = A ⊗ C + α I,    C = (1/S) Σ s_i x̃_i x̃_iᵀ,

exact when the class curvature does not vary with ``x`` (Martens & Grosse 2015, K-FAC, for
one layer). With ``A = V diag(a) Vᵀ`` and ``C = U diag(c) Uᵀ``,
``M⁻¹ vec(R) = vec(V [(Vᵀ R U) / (a cᵀ + α)] Uᵀ)``: two small products each way, no
factorisation per Newton step beyond the K × K ``A``. ``C`` is decomposed once per fit.

It pays where the features are badly scaled or strongly correlated (pixels, counts): there
``C`` carries the conditioning and CG needs a fraction of the products. Where the features
are already whitened (standardised, Gaussian) ``C`` is near a multiple of ``I`` and nothing
is gained; :func:`worth_it` decides from the spectrum of ``C``. ``C`` costs one pass over
at most ``MOMENT_ROWS`` rows (D̃² each) and one D̃ × D̃ eigendecomposition, once per fit.
"""

from __future__ import annotations

import numpy as np

# Features (with the intercept column) beyond which C is not formed: its eigendecomposition
# costs ~D̃³ (0.1 s at 785 on one core) and its products D̃² per CG iteration.
MAX_FEATURES = 1024
# Rows of X used to estimate C (a strided subset): C need only be right to tens of percent.
MOMENT_ROWS = 8192
# C's eigenvalue spread (largest over median) from which the preconditioner is used: letter
# (54) and digits' pixels (728) need half the products with it; standardised digits (18) only
# ~10 % fewer, within what the extra work per product and the noise eat; Gaussian features
# (1.4) nothing (see :func:`worth_it`).
MIN_SPREAD = 30.0


class FeatureMoments:
    """``C`` and its eigendecomposition ``C = U diag(c) Uᵀ``, each computed when first asked.

    Deciding whether the preconditioner pays needs only the eigenvalues (``eigvalsh``, about
    2.4× cheaper than ``eigh`` at 785 columns), so a fit that goes on with L-BFGS never pays
    for the eigenvectors.
    """

    def __init__(self, moments):
        self.moments = moments
        self._values = self._vectors = None

    @property
    def values(self):
        if self._values is None:
            # Rounding can leave tiny negative eigenvalues of a positive semi-definite C.
            self._values = np.maximum(np.linalg.eigvalsh(self.moments), 0.0)
        return self._values

    @property
    def vectors(self):
        if self._vectors is None:
            values, self._vectors = np.linalg.eigh(self.moments)
            self._values = np.maximum(values, 0.0)
        return self._vectors


def worth_it(moments: FeatureMoments, alpha: float) -> bool:
    """Whether C is uneven enough for the Kronecker preconditioner to pay.

    Its spread ``c_max / median(c)`` measures how much of the Hessian's conditioning comes
    from the features (scales, correlations, offsets) rather than from the classes. Measured
    Hessian-vector products of Newton-CG to a 1e-6 certificate at alpha 1e-4, without and
    with: digits' pixels (spread 728) 193 and 103, letter (54) 131 and 61, standardised
    digits (18) 219 and 198 (left unpreconditioned); Gaussian features (1.4) would only pay
    for the preconditioner's products. Never with ``α = 0``: ``A`` is singular along ``1``
    (adding a vector to every class's coefficients changes nothing), so ``M⁻¹`` would
    amplify rounding along directions where R is flat.
    """
    if not alpha > 0:
        return False
    c = moments.values
    return float(c.max()) >= MIN_SPREAD * float(np.median(c))


class KroneckerPreconditioner:
    """``r ↦ (A ⊗ C + α I)⁻¹ r`` on flat parameter vectors of an :class:`Objective`.

    Parameters
    ----------
    class_curvature : ndarray of shape (K, K)
        ``A``, the weighted mean of ``diag(p_i) - p_i p_iᵀ`` at the current point.
    moments : FeatureMoments
        ``C`` decomposed, of size D̃ = n_features (+ 1 with an intercept).
    alpha : float
    unpack, pack : callables
        The objective's own, mapping θ to ``(coef (K, D), intercept or None)`` and back.
    """

    def __init__(self, class_curvature, moments: FeatureMoments, alpha, unpack, pack):
        a, self._class_vectors = np.linalg.eigh(class_curvature)
        a = np.maximum(a, 0.0)
        self._feature_vectors = moments.vectors  # first: eigh also refreshes the values
        self._inverse = 1.0 / (np.outer(a, moments.values) + alpha)
        self._unpack, self._pack = unpack, pack

    def __call__(self, residual):
        coef, intercept = self._unpack(residual)
        n_features = coef.shape[1]
        R = coef if intercept is None else np.column_stack([coef, intercept])
        V, U = self._class_vectors, self._feature_vectors
        rotated = V.T @ R @ U
        rotated *= self._inverse
        Z = V @ rotated @ U.T
        return self._pack(Z[:, :n_features], None if intercept is None else Z[:, n_features])


def class_curvature(proba, weight):
    """``Σ_i s_i (diag(p_i) - p_i p_iᵀ)`` over a block's probabilities (K × K, float64)."""
    proba = proba.astype(np.float64, copy=False)
    weighted = proba if weight is None else proba * weight[:, None]
    out = -(weighted.T @ proba)
    out[np.diag_indices_from(out)] += weighted.sum(axis=0)
    return out


def feature_moment_sums(index, block, fit_intercept):
    """``(Σ_block s x̃ x̃ᵀ, Σ_block s)`` with ``x̃ = [x, 1]`` when fitting an intercept."""
    X, _, weight = block
    X = X.astype(np.float64, copy=False)
    if fit_intercept:
        X = np.column_stack([X, np.ones(X.shape[0])])
    s = np.ones(X.shape[0]) if weight is None else weight.astype(np.float64)
    return (X * s[:, None]).T @ X, float(s.sum())
