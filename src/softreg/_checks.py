"""Argument validation shared by the public functions: dtypes, axes, probabilities, weights, labels.

Each helper validates one argument and returns it in the form the numerical code expects, or
raises with a message that names the argument, what was expected and what arrived.

dtype policy: float32 and float64 arrays keep their dtype; integer and bool arrays are promoted to
float64 (exact for integers up to 2**53: promotion, not coercion); anything else (float16,
long double, complex, object, strings) raises ``TypeError``, since converting it would lose or
invent information.
"""

import math
import numbers

import numpy as np

__all__ = [
    "as_float_array",
    "check_axis",
    "check_labels",
    "check_probability",
    "check_sample_weight",
    "probability_tolerance",
]


def _first_index(mask):
    """Index (a tuple of ints) of the first True entry of the boolean array `mask`."""
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _at(index):
    """`` at index (2, 1)``, or nothing for the single entry of a 0-dimensional array."""
    return f" at index {index}" if index else ""


def as_float_array(x, name):
    """Return `x` as a float32 or float64 ndarray, following the dtype policy of this module."""
    array = np.asarray(x)
    if array.dtype in (np.float32, np.float64):
        return array
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float64)
    raise TypeError(
        f"`{name}` must be a real array of dtype float32 or float64 (integer and bool arrays "
        f"are promoted to float64); got dtype {array.dtype}."
    )


def check_axis(axis, ndim, name):
    """Return `axis` as a non-negative int, for the `ndim`-dimensional array called `name`."""
    if ndim == 0:
        raise ValueError(
            f"`{name}` must have at least one dimension to work along `axis`; "
            "got a 0-dimensional array."
        )
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"`axis` must be an integer; got {axis!r}.")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"`axis` must be in [{-ndim}, {ndim}) for the {ndim}-dimensional `{name}`; got {axis}."
        )
    return int(axis) % ndim


def probability_tolerance(dtype):
    """How far from 1 a probability vector of `dtype` may sum: √ε, half the digits of `dtype`.

    1.49e-8 for float64 and 3.45e-4 for float32: loose enough for vectors that were normalised
    in that dtype, tight enough that an unnormalised vector is never taken for a distribution.
    """
    return math.sqrt(np.finfo(dtype).eps)


def check_probability(p, name, *, axis=-1):
    """Return `p` as a float array after checking that it holds probability vectors along `axis`.

    Every entry must be finite and non-negative and every vector along `axis` must sum to 1
    within ``probability_tolerance(p.dtype)``. Nothing is renormalised.
    """
    proba = as_float_array(p, name)
    check_axis(axis, proba.ndim, name)
    tolerance = probability_tolerance(proba.dtype)
    expected = (
        f"`{name}` must hold probability vectors along axis {axis} (finite, non-negative, "
        f"summing to 1 within {tolerance:.3g})"
    )
    not_finite = ~np.isfinite(proba)
    if not_finite.any():
        index = _first_index(not_finite)
        raise ValueError(f"{expected}; got {proba[index]}{_at(index)}.")
    negative = proba < 0
    if negative.any():
        index = _first_index(negative)
        raise ValueError(f"{expected}; got a negative entry {proba[index]:.9g}{_at(index)}.")
    sums = np.sum(proba, axis=axis)
    off = np.abs(sums - 1) > tolerance
    if off.any():
        index = _first_index(off)
        raise ValueError(
            f"{expected}; got a vector summing to {sums[index]:.9g}{_at(index)}. "
            "Nothing is renormalised: divide by the sums first if that is what you mean."
        )
    return proba


def check_sample_weight(sample_weight, shape, dtype):
    """Return one finite non-negative weight per sample, an array of `shape` and `dtype`.

    ``None`` means unit weights. Weights are cast to `dtype`, the dtype of the computation they
    weight (as scikit-learn does), so float32 data with float64 weights stays float32.
    """
    if sample_weight is None:
        return np.ones(shape, dtype=dtype)
    weight = as_float_array(sample_weight, "sample_weight")
    if weight.shape != shape:
        raise ValueError(
            f"`sample_weight` must have shape {shape}, one weight per sample; "
            f"got shape {weight.shape}."
        )
    bad = ~(np.isfinite(weight) & (weight >= 0))
    if bad.any():
        index = _first_index(bad)
        raise ValueError(
            f"`sample_weight` must be finite and non-negative; got {weight[index]}{_at(index)}."
        )
    return weight.astype(dtype, copy=False)


def check_labels(labels, n_classes, name):
    """Return integer class labels in ``[0, n_classes)`` as an intp array."""
    array = np.asarray(labels)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"`{name}` holds class labels, which must have an integer dtype; got dtype "
            f"{array.dtype}. If the values are whole numbers, convert with `.astype(int)`."
        )
    out_of_range = (array < 0) | (array >= n_classes)
    if out_of_range.any():
        index = _first_index(out_of_range)
        raise ValueError(
            f"`{name}` class labels must be in [0, {n_classes}) for {n_classes} classes; "
            f"got {array[index]}{_at(index)}."
        )
    return array.astype(np.intp, copy=False)


def column_magnitude(values):
    """The largest ``|value|`` of each column of a dense or CSR matrix (0 for no rows).

    >>> column_magnitude(np.array([[1.0, -3.0], [-2.0, 0.5]])).tolist()
    [2.0, 3.0]
    """
    import scipy.sparse as sp  # here: the kernels import this module, and need only NumPy

    if sp.issparse(values):
        return abs(values).max(axis=0).toarray().ravel()
    values = values.reshape(values.shape[0], -1)
    return np.maximum(values.max(axis=0, initial=0), -values.min(axis=0, initial=0))
