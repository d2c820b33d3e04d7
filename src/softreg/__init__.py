"""softreg: softmax regression trained to a certified optimum.

The public API is exactly what this module re-exports (see ``__all__``).
"""

from softreg._data_io import DataError, read_table
from softreg._estimator import LinearRegression, SeparableDataWarning, SoftmaxRegression
from softreg._files import open_dataset
from softreg._gradcheck import check_gradient
from softreg._information import cross_entropy, entropy, kl_divergence
from softreg._kernels import (
    log_sigmoid,
    log_softmax,
    logsumexp,
    sigmoid,
    sigmoid_derivative,
    softmax,
    softmax_jacobian,
)
from softreg._losses import cross_entropy_from_logits, cross_entropy_gradient
from softreg._model_io import ModelFileError
from softreg._model_io import load_model as load

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "LinearRegression",
    "ModelFileError",
    "SeparableDataWarning",
    "SoftmaxRegression",
    "__version__",
    "check_gradient",
    "cross_entropy",
    "cross_entropy_from_logits",
    "cross_entropy_gradient",
    "entropy",
    "kl_divergence",
    "load",
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "open_dataset",
    "read_table",
    "sigmoid",
    "sigmoid_derivative",
    "softmax",
    "softmax_jacobian",
]
