"""Softmax, log-sum-exp and sigmoid kernels, and their analytic derivatives.

Conventions: ``logits`` may have any shape; the softmax family works along one ``axis``
(default -1, the classes); sigmoids work elementwise. float32 and float64 keep their dtype,
integer and bool inputs are promoted to float64 (see ``softreg._checks``). No function
overflows or warns for finite logits, up to the largest finite float of the dtype.
"""

import numpy as np

from softreg._checks import as_float_array, check_axis

__all__ = [
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "sigmoid",
    "sigmoid_derivative",
    "softmax",
    "softmax_jacobian",
]


def _shift(logits, axis):
    """Return ``(top, shifted)``: the maximum along `axis` (kept) and ``logits - top``.

    Subtracting the maximum leaves softmax unchanged and makes the largest term ``exp(0) = 1``,
    so the sum of exponentials can neither overflow nor underflow to 0 (for a finite row).
    ``inf - inf`` is NaN, so the rows where that would happen are defined by their limits:
    a row whose maximum is +inf shares all its mass among its +inf entries (0 there, -inf
    elsewhere), and a row of only -inf entries (or no entries) is shifted by 0 and stays -inf.
    """
    top = np.max(logits, axis=axis, keepdims=True, initial=-np.inf)
    if np.isfinite(top).all():  # the usual case, in one pass: no row needs its limit
        with np.errstate(over="ignore"):  # -largest - largest -> -inf, whose exp is 0
            return top, logits - top
    # -largest - largest overflows to -inf, whose exp is the correct 0. A NaN maximum makes
    # the whole row NaN, which is what a row containing NaN becomes anyway.
    with np.errstate(over="ignore"):
        shifted = logits - np.where(np.isinf(top), 0, top)
    infinite_rows = np.broadcast_to(np.isposinf(top), logits.shape)
    shifted[infinite_rows] = np.where(np.isposinf(logits[infinite_rows]), 0, -np.inf)
    return top, shifted


def _log_sum_exp(top, shifted, axis):
    """``log(sum(exp(shifted)))`` along `axis` (kept), for the output of `_shift`.

    The largest term is exp(0) = 1, so the sum is 1 + rest, and ``log1p(rest)`` keeps the digits
    of a small rest that ``log(1 + rest)`` rounds away: logsumexp([0, -50]) is 1.9e-22, not 0.
    """
    if shifted.shape[axis] == 0:
        return np.full_like(top, -np.inf)  # log of the empty sum, 0
    terms = np.exp(shifted)
    np.put_along_axis(terms, np.argmax(shifted, axis=axis, keepdims=True), 0, axis=axis)
    # A row of only -inf entries has no term equal to 1: its sum is 0, and log 0 = -inf.
    return np.where(top == -np.inf, -np.inf, np.log1p(np.sum(terms, axis=axis, keepdims=True)))


def _log_softmax(logits, axis):
    """log_softmax for a validated float array and a non-negative axis."""
    top, shifted = _shift(logits, axis)
    # -inf - -inf = NaN in a row of only -inf entries, on purpose (see softmax).
    with np.errstate(invalid="ignore"):
        return shifted - _log_sum_exp(top, shifted, axis)


def _softmax(logits, axis):
    """softmax for a validated float array and a non-negative axis."""
    _, shifted = _shift(logits, axis)
    unnormalized = np.exp(shifted, out=shifted)  # a new array: overwritten in place
    # The row sum is >= 1 unless every entry is -inf: then 0 / 0 = NaN, on purpose.
    with np.errstate(invalid="ignore"):
        unnormalized /= np.sum(unnormalized, axis=axis, keepdims=True)
    return unnormalized


def _sigmoid(logits):
    """sigmoid for a validated float array."""
    # e^-|x| <= 1 cannot overflow: σ(x) = 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) for x < 0.
    decay = np.exp(-np.abs(logits))
    # A 1 of the logits' dtype: NumPy 1.x promotes a Python 1 and a float32 scalar to float64.
    one = logits.dtype.type(1)
    return np.where(logits >= 0, one, decay) / (one + decay)


def logsumexp(logits, axis=-1, *, keepdims=False):
    r"""Logarithm of the sum of the exponentials of `logits` along `axis`.

    .. math:: \operatorname{logsumexp}(z) = \log \sum_k e^{z_k}
              = m + \log \sum_k e^{z_k - m}, \qquad m = \max_k z_k

    Parameters
    ----------
    logits : array_like, any shape with at least one dimension
        Real numbers; float32 stays float32.
    axis : int, default -1
        The axis to sum over.
    keepdims : bool, default False
        Keep the reduced axis with length 1, so the result broadcasts against `logits`.

    Returns
    -------
    ndarray or scalar
        The shape of `logits` without `axis` (a NumPy scalar for 1-dimensional `logits`).

    Raises
    ------
    TypeError
        If `logits` is not a real array, or `axis` is not an integer.
    ValueError
        If `axis` is out of range or `logits` is 0-dimensional.

    Notes
    -----
    Never overflows for finite logits: the shift by the maximum bounds the sum by the number of
    terms, and ``m + log(n)`` rounds to ``m`` near the largest float, so ``logsumexp`` of two
    copies of the largest float is that float, the correctly rounded value. When the largest
    term dominates, the result keeps its relative accuracy: ``logsumexp([0, -50])`` is 1.9e-22,
    where ``log(1 + e^-50)`` rounds to 0. A row containing
    +inf gives +inf; a row of only -inf entries gives -inf (``log 0``), as does an empty row;
    NaN propagates.

    Examples
    --------
    >>> import numpy as np
    >>> print(logsumexp([1000.0, 1000.0]))  # 1000 + log 2; exp(1000) alone overflows
    1000.6931471805599
    >>> logsumexp([[0.0, 0.0], [-np.inf, -np.inf], [1.0, np.inf]])
    array([0.69314718,       -inf,        inf])
    """
    logits = as_float_array(logits, "logits")
    axis = check_axis(axis, logits.ndim, "logits")
    top, shifted = _shift(logits, axis)
    result = top + _log_sum_exp(top, shifted, axis)
    # [()] turns a 0-dimensional result into a NumPy scalar, as NumPy's own reductions do.
    return result if keepdims else np.squeeze(result, axis=axis)[()]


def softmax(logits, axis=-1):
    r"""Normalised exponentials of `logits` along `axis`: a probability vector per row.

    .. math:: \operatorname{softmax}(z)_j = \frac{e^{z_j}}{\sum_k e^{z_k}}
              = \frac{e^{z_j - m}}{\sum_k e^{z_k - m}}, \qquad m = \max_k z_k

    Parameters
    ----------
    logits : array_like, any shape with at least one dimension
        Real numbers; float32 stays float32.
    axis : int, default -1
        The axis along which the result sums to 1.

    Returns
    -------
    proba : ndarray, the shape of `logits`

    Raises
    ------
    TypeError
        If `logits` is not a real array, or `axis` is not an integer.
    ValueError
        If `axis` is out of range or `logits` is 0-dimensional.

    Notes
    -----
    Finite logits of any size give a finite result (the shift by the maximum). A row containing
    +inf gives its limit, ``1/count`` on the +inf entries and 0 elsewhere (SciPy and PyTorch
    return NaN there: scipy/scipy#23225). A row of only -inf entries gives NaN: every
    exponential is 0, the ratio is 0/0 and no distribution is defined, so none is invented.
    NaN propagates to its row; an empty axis gives an empty result.

    Examples
    --------
    >>> import numpy as np
    >>> softmax([1.0, 2.0, 3.0])
    array([0.09003057, 0.24472847, 0.66524096])
    >>> softmax([[1.0, 1.0, np.inf], [1000.0, 0.0, -1000.0]])
    array([[0., 0., 1.],
           [1., 0., 0.]])
    """
    logits = as_float_array(logits, "logits")
    return _softmax(logits, check_axis(axis, logits.ndim, "logits"))


def log_softmax(logits, axis=-1):
    r"""Logarithm of the softmax of `logits` along `axis`, computed without forming the softmax.

    .. math:: \log \operatorname{softmax}(z)_j = z_j - \operatorname{logsumexp}(z)
              = (z_j - m) - \log \sum_k e^{z_k - m}, \qquad m = \max_k z_k

    Parameters
    ----------
    logits : array_like, any shape with at least one dimension
        Real numbers; float32 stays float32.
    axis : int, default -1
        The axis along which ``exp`` of the result sums to 1.

    Returns
    -------
    log_proba : ndarray, the shape of `logits`

    Raises
    ------
    TypeError
        If `logits` is not a real array, or `axis` is not an integer.
    ValueError
        If `axis` is out of range or `logits` is 0-dimensional.

    Notes
    -----
    Both terms are formed after the shift by the maximum, so they stay small and their
    difference is exact where it matters: ``log_softmax([1000, 1]) = [0, -999]`` up to
    ``log(1 + e^-999)``, where ``log(softmax(z))`` gives ``-inf`` for the second entry, and
    ``log_softmax([0, -50])[0]`` is ``-1.9e-22``, not 0 (see `logsumexp`).
    A row containing +inf gives ``-log(count)`` on the +inf entries and -inf elsewhere;
    a row of only -inf entries gives NaN (see `softmax`); NaN propagates to its row.

    Examples
    --------
    >>> log_softmax([1000.0, 1.0])
    array([   0., -999.])
    >>> log_softmax([0.0, 0.0, 0.0, 0.0])  # log(1/4)
    array([-1.38629436, -1.38629436, -1.38629436, -1.38629436])
    """
    logits = as_float_array(logits, "logits")
    return _log_softmax(logits, check_axis(axis, logits.ndim, "logits"))


def sigmoid(logits):
    r"""The logistic sigmoid, elementwise: the probability whose log-odds is `logits`.

    .. math:: \sigma(x) = \frac{1}{1 + e^{-x}}

    Parameters
    ----------
    logits : array_like, any shape
        Real numbers; float32 stays float32.

    Returns
    -------
    proba : ndarray or scalar, the shape of `logits`

    Raises
    ------
    TypeError
        If `logits` is not a real array.

    Notes
    -----
    ``sigmoid(-inf) = 0``, ``sigmoid(inf) = 1``, NaN propagates. Accurate to a few ulps for
    every x; for very negative x the result follows ``e^x`` into the subnormal range
    (``sigmoid(-710) = 4.5e-309``) before it underflows to 0 (SciPy's ``expit`` stops at
    x = -709.8, where ``e^-x`` overflows).

    Examples
    --------
    >>> import numpy as np
    >>> sigmoid([-np.inf, -1000.0, 0.0, 2.0, np.inf])
    array([0.        , 0.        , 0.5       , 0.88079708, 1.        ])
    """
    return _sigmoid(as_float_array(logits, "logits"))


def log_sigmoid(logits):
    r"""Logarithm of the logistic sigmoid, elementwise.

    .. math:: \log \sigma(x) = -\log\left(1 + e^{-x}\right)

    Parameters
    ----------
    logits : array_like, any shape
        Real numbers; float32 stays float32.

    Returns
    -------
    log_proba : ndarray or scalar, the shape of `logits`

    Raises
    ------
    TypeError
        If `logits` is not a real array.

    Notes
    -----
    Finite for every finite `x`: ``log_sigmoid(-1000) = -1000`` where ``log(sigmoid(-1000))``
    is ``-inf``. ``log_sigmoid(-inf) = -inf``, ``log_sigmoid(inf) = 0``, NaN propagates.

    Examples
    --------
    >>> print(log_sigmoid(-1000.0))  # log(sigmoid(-1000.0)) is -inf
    -1000.0
    >>> log_sigmoid([0.0, 2.0])
    array([-0.69314718, -0.12692801])
    """
    logits = as_float_array(logits, "logits")
    # logaddexp(0, -x) = log(e^0 + e^-x) without forming e^-x, which overflows for x < -709.
    # (It flags NaN input as invalid; NaN in, NaN out is the documented behaviour.)
    with np.errstate(invalid="ignore"):
        return -np.logaddexp(logits.dtype.type(0), -logits)  # (a typed 0: see _sigmoid)


def sigmoid_derivative(logits):
    r"""Derivative of the logistic sigmoid, elementwise.

    .. math:: \sigma'(x) = \sigma(x)\,\bigl(1 - \sigma(x)\bigr) = \sigma(x)\,\sigma(-x)

    Parameters
    ----------
    logits : array_like, any shape
        Real numbers; float32 stays float32.

    Returns
    -------
    ndarray or scalar, the shape of `logits`

    Raises
    ------
    TypeError
        If `logits` is not a real array.

    Notes
    -----
    ``σ(-x)`` replaces ``1 - σ(x)``, which cancels to 0 once ``σ(x)`` rounds to 1 (x > 37 in
    float64), so the derivative keeps its relative accuracy in the tails. It is 0 at ±inf;
    NaN propagates.

    Examples
    --------
    >>> sigmoid_derivative([0.0, 40.0])  # 1/4, and e^-40 where σ(1 - σ) gives 0
    array([2.50000000e-01, 4.24835426e-18])
    """
    logits = as_float_array(logits, "logits")
    return _sigmoid(logits) * _sigmoid(-logits)


def softmax_jacobian(logits, axis=-1):
    r"""Jacobian of the softmax with respect to the logits, one matrix per row.

    .. math:: \frac{\partial\, p_i}{\partial z_j} = p_i (\delta_{ij} - p_j),
              \qquad J = \operatorname{diag}(p) - p\,p^\top, \qquad p = \operatorname{softmax}(z)

    Parameters
    ----------
    logits : array_like, any shape with at least one dimension
        Real numbers; float32 stays float32.
    axis : int, default -1
        The axis of the classes, as in `softmax`.

    Returns
    -------
    ndarray of shape ``batch_shape + (n_classes, n_classes)``
        ``batch_shape`` is the shape of `logits` without `axis`; entry ``[..., i, j]`` is
        ``∂p_i/∂z_j``. The matrix is symmetric, and its rows sum to 0 (softmax is unchanged
        when the same number is added to every logit).

    Raises
    ------
    TypeError
        If `logits` is not a real array, or `axis` is not an integer.
    ValueError
        If `axis` is out of range or `logits` is 0-dimensional.

    Notes
    -----
    Inherits the behaviour of `softmax` at ±inf and NaN; a row containing +inf has a zero
    Jacobian (its softmax is constant under small changes).

    Examples
    --------
    >>> softmax_jacobian([0.0, 0.0])
    array([[ 0.25, -0.25],
           [-0.25,  0.25]])
    """
    logits = as_float_array(logits, "logits")
    axis = check_axis(axis, logits.ndim, "logits")
    proba = np.moveaxis(_softmax(logits, axis), axis, -1)
    identity = np.eye(proba.shape[-1], dtype=bool)
    off_diagonal = np.where(identity, 0, proba[..., :, None] * proba[..., None, :])
    # The diagonal p_i - p_i² = p_i Σ_{j≠i} p_j is formed as that sum of positive terms (the
    # rows of J sum to 0): p_i - p_i² cancels to a few digits when p_i ≈ 1.
    return np.where(identity, np.sum(off_diagonal, axis=-1, keepdims=True), -off_diagonal)
