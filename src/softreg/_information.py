"""Entropy, cross-entropy and Kullback-Leibler divergence of probability vectors.

Conventions: ``p`` is the true distribution and ``q`` the predicted one, each holding one
probability vector along ``axis`` (default -1); any other axes are a batch. ``0 · log 0 = 0``
(the limit as the probability goes to 0). Results are in nats unless ``base`` says otherwise;
``base=2`` gives bits, and 1 nat = 1/ln 2 ≈ 1.44 bits.

Inputs are validated, never renormalised (unlike ``scipy.stats.entropy``): see
``softreg._checks.check_probability`` for the tolerance on the sums.
"""

import math
import numbers

import numpy as np
from scipy import special

from softreg._checks import check_axis, check_probability

__all__ = ["cross_entropy", "entropy", "kl_divergence"]


def _pair(p, q, axis):
    """Validate the probability arrays `p` and `q` and return them in their common dtype."""
    p = check_probability(p, "p", axis=axis)
    q = check_probability(q, "q", axis=axis)
    if p.shape != q.shape:
        raise ValueError(f"`q` must have the shape of `p`, {p.shape}; got shape {q.shape}.")
    dtype = np.result_type(p, q)
    return p.astype(dtype, copy=False), q.astype(dtype, copy=False)


def _unit(base):
    """Size in nats of one unit of information in `base`: ln(base), and 1 for None (nats)."""
    if base is None or base == math.e:  # exactly: NumPy 1.x's log(e) is 1 - 2⁻⁵³
        return 1.0
    if (
        isinstance(base, bool)
        or not isinstance(base, numbers.Real)
        or not (np.isfinite(base) and base > 0 and base != 1)
    ):
        raise ValueError(
            "`base` must be a finite positive number other than 1 (2 for bits, None or e for "
            f"nats); got {base!r}."
        )
    return float(np.log(base))


def _in_units(nats, unit):
    """Convert `nats` to units of `unit` nats, keeping the dtype of `nats`."""
    return nats / nats.dtype.type(unit)


def entropy(p, *, base=None, axis=-1):
    r"""Shannon entropy of the probability vectors in `p`.

    .. math:: H(p) = -\sum_k p_k \log p_k, \qquad 0 \log 0 = 0

    Parameters
    ----------
    p : array_like, any shape with at least one dimension
        Probability vectors along `axis`: finite, non-negative, summing to 1 within √ε of the
        dtype (1.49e-8 for float64, 3.45e-4 for float32). float32 stays float32.
    base : float, optional
        Base of the logarithm: None (default) or ``math.e`` for nats, 2 for bits.
    axis : int, default -1
        The axis holding each distribution.

    Returns
    -------
    ndarray or scalar
        The shape of `p` without `axis`; non-negative, at most ``log(n_classes)``.

    Raises
    ------
    TypeError
        If `p` is not a real array, or `axis` is not an integer.
    ValueError
        If `p` is not a probability array along `axis` (the message says where), `base` is
        not a finite positive number other than 1, or `axis` is out of range.

    Notes
    -----
    The uniform distribution has the largest entropy, ``log(n_classes)``; a one-hot vector has
    none.

    Examples
    --------
    >>> entropy([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0]], base=2)
    array([2., 0.])
    >>> print(entropy([0.5, 0.5]))  # ln 2 nats = 1 bit
    0.6931471805599453
    """
    unit = _unit(base)
    p = check_probability(p, "p", axis=axis)
    axis = check_axis(axis, p.ndim, "p")
    # entr(p) = -p log p, and 0 where p = 0 (the limit), so no 0 · -inf = NaN.
    return _in_units(np.sum(special.entr(p), axis=axis), unit)


def cross_entropy(p, q, *, base=None, axis=-1):
    r"""Cross-entropy of the predicted distributions `q` relative to the true distributions `p`.

    .. math:: H(p, q) = -\sum_k p_k \log q_k = H(p) + \mathrm{KL}(p \,\|\, q)

    Parameters
    ----------
    p : array_like, any shape with at least one dimension
        True probability vectors along `axis` (validated as in `entropy`).
    q : array_like, the shape of `p`
        Predicted probability vectors along `axis` (validated as in `entropy`).
    base : float, optional
        Base of the logarithm: None (default) or ``math.e`` for nats, 2 for bits.
    axis : int, default -1
        The axis holding each distribution.

    Returns
    -------
    ndarray or scalar
        The shape of `p` without `axis`, in the common dtype of `p` and `q`; +inf where
        ``p_k > 0 = q_k`` for some k.

    Raises
    ------
    TypeError
        If `p` or `q` is not a real array, or `axis` is not an integer.
    ValueError
        If `p` or `q` is not a probability array along `axis`, their shapes differ, `base` is
        not a finite positive number other than 1, or `axis` is out of range.

    Notes
    -----
    A class with ``p_k = 0`` contributes nothing, even where ``q_k = 0``. With a one-hot `p`
    (a hard label a) this is ``-log q_a``, the loss of the worked example in the notes.
    To start from logits, use `cross_entropy_from_logits`, which never takes the log of a
    rounded probability.

    Examples
    --------
    >>> import numpy as np
    >>> y, y_hat = [1.0, 0.0, 0.0], [0.7, 0.2, 0.1]
    >>> print(cross_entropy(y, y_hat), -np.log(0.7))  # -ln ŷ_1, with ŷ_1 = 0.7
    0.356675 0.356675
    >>> cross_entropy([[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [1.0, 0.0]], base=2)
    array([ 1., inf])
    """
    unit = _unit(base)
    p, q = _pair(p, q, axis)
    axis = check_axis(axis, p.ndim, "p")
    # xlogy(p, q) = p log q, and 0 where p = 0 even if q = 0: a class p never draws costs
    # nothing. (0 - s rather than -s, so that a zero cross-entropy is +0.0, not -0.0.)
    # (A zero of p's dtype: NumPy 1.x promotes a Python 0 minus a float32 scalar to float64.)
    return _in_units(np.subtract(p.dtype.type(0), np.sum(special.xlogy(p, q), axis=axis)), unit)


def kl_divergence(p, q, *, base=None, axis=-1):
    r"""Kullback-Leibler divergence (relative entropy) of `q` from `p`.

    .. math:: \mathrm{KL}(p \,\|\, q) = \sum_k p_k \log \frac{p_k}{q_k} = H(p, q) - H(p)

    Parameters
    ----------
    p : array_like, any shape with at least one dimension
        True probability vectors along `axis` (validated as in `entropy`).
    q : array_like, the shape of `p`
        Predicted probability vectors along `axis` (validated as in `entropy`).
    base : float, optional
        Base of the logarithm: None (default) or ``math.e`` for nats, 2 for bits.
    axis : int, default -1
        The axis holding each distribution.

    Returns
    -------
    ndarray or scalar
        The shape of `p` without `axis`, in the common dtype of `p` and `q`; 0 where ``q = p``,
        +inf where ``p_k > 0 = q_k`` for some k.

    Raises
    ------
    TypeError
        If `p` or `q` is not a real array, or `axis` is not an integer.
    ValueError
        If `p` or `q` is not a probability array along `axis`, their shapes differ, `base` is
        not a finite positive number other than 1, or `axis` is out of range.

    Notes
    -----
    The extra information needed to encode draws from `p` with a code built for `q`; not
    symmetric in its arguments. Mathematically non-negative; in floating point the sum of its
    mixed-sign terms can come out negative by a few roundings when ``q ≈ p`` (nothing is
    clipped).

    Examples
    --------
    >>> p, q = [0.7, 0.2, 0.1], [0.5, 0.3, 0.2]
    >>> print(kl_divergence(p, q))
    0.085122825957
    >>> print(cross_entropy(p, q) - entropy(p))  # the identity, as a difference
    0.085122825957
    >>> print(kl_divergence(p, p), kl_divergence([0.5, 0.5], [1.0, 0.0]))
    0.0 inf
    """
    unit = _unit(base)
    p, q = _pair(p, q, axis)
    axis = check_axis(axis, p.ndim, "p")
    # rel_entr(p, q) = p log(p / q): 0 where p = 0, +inf where p > 0 = q. Summed directly, not
    # as H(p, q) - H(p), which loses every digit to cancellation when q ≈ p.
    # (SciPy before 1.15 rounded p / q first: an ulp-sized absolute error in log(p / q), and
    # inf for subnormal q; hence the minimum version in pyproject.toml.)
    return _in_units(np.sum(special.rel_entr(p, q), axis=axis), unit)
