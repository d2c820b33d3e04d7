"""softreg: softmax regression trained to a certified optimum.

The public API is exactly what this module re-exports (see ``__all__``). Each name is imported
from its private module on first use (PEP 562), so that ``import softreg`` and the command
line's ``--help`` do not pay for scikit-learn, SciPy and numba until something needs them.
"""

import importlib

__version__ = "0.1.0"

# Public name -> "module" or "module:attribute" (when the module calls it something else).
_EXPORTS = {
    "DataError": "_data_io",
    "LinearRegression": "_estimator",
    "ModelFileError": "_model_io",
    "RegularizationPath": "_path",
    "SeparableDataWarning": "_estimator",
    "SoftmaxRegression": "_estimator",
    "SoftmaxRegressionCV": "_cv",
    "alpha_max": "_path",
    "check_gradient": "_gradcheck",
    "cross_entropy": "_information",
    "cross_entropy_from_logits": "_losses",
    "cross_entropy_gradient": "_losses",
    "entropy": "_information",
    "kl_divergence": "_information",
    "load": "_model_io:load_model",
    "log_sigmoid": "_kernels",
    "log_softmax": "_kernels",
    "logsumexp": "_kernels",
    "open_dataset": "_files",
    "read_table": "_data_io",
    "regularization_path": "_path",
    "sigmoid": "_kernels",
    "sigmoid_derivative": "_kernels",
    "softmax": "_kernels",
    "softmax_jacobian": "_kernels",
}

__all__ = sorted(["__version__", *_EXPORTS])


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'softreg' has no attribute {name!r}")
    module, _, attribute = _EXPORTS[name].partition(":")
    value = getattr(importlib.import_module(f"softreg.{module}"), attribute or name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
