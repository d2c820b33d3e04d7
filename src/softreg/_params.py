"""Hyper-parameter validation from one declarative table per estimator.

Each entry maps a parameter name to a predicate and the words that describe what is
expected; :func:`validate_params` checks them all and raises one clear message.
"""

from __future__ import annotations

import numbers

# The norms Ω of the elastic-net penalty (softreg._penalties): elementwise |W_kj|, or grouped
# ‖W[:, j]‖₂ per feature.
L1_NORMS = ("elementwise", "grouped")


def real(low=None, high=None, *, low_open=False):
    """A finite real number in ``[low, high]`` (``(low, high]`` when ``low_open``)."""

    def check(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if value != value or value in (float("inf"), float("-inf")):
            return False
        if low is not None and (value <= low if low_open else value < low):
            return False
        return high is None or value <= high

    bracket = "(" if low_open else "["
    lower = "-inf" if low is None else low
    upper = "inf" if high is None else high
    return check, f"a real number in {bracket}{lower}, {upper}" + ("]" if high is not None else ")")


def integer(low):
    def check(value):
        return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= low

    return check, f"an integer >= {low}"


def boolean():
    return (lambda value: isinstance(value, bool)), "True or False"


def options(*names):
    return (lambda value: isinstance(value, str) and value in names), "one of " + ", ".join(
        repr(name) for name in names
    )


def either(*rules):
    def check(value):
        return any(rule(value) for rule, _ in rules)

    return check, " or ".join(words for _, words in rules)


def anything(words):
    return (lambda value: True), words


def none():
    return (lambda value: value is None), "None"


def validate_params(estimator, table):
    """Raise ``ValueError`` for the first parameter that breaks its rule in ``table``."""
    for name, (check, words) in table.items():
        value = getattr(estimator, name)
        if not check(value):
            raise ValueError(
                f"The '{name}' parameter of {type(estimator).__name__} must be {words}; "
                f"got {value!r}."
            )
