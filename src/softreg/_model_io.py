"""Model files: save and load fitted estimators as plain data, never as pickle.

A softreg model file is a zip archive holding ``header.json`` and one NumPy ``.npy`` member
per array (``coef_.npy``, ``intercept_.npy``, ``classes_.npy``, ``history_objective.npy``, ...).
Loading reads JSON and ``.npy`` arrays (through :mod:`softreg._archive`, which checks every
declared size before allocating), checks every array against the SHA-256 recorded in the
header, checks the shapes agree with each other, and builds the estimator from
:data:`ESTIMATORS`, the table softreg's estimator classes register into: nothing in the file
can name code to import or run, and this module never imports the estimator module (which
imports it to save). ``docs/model-format.md`` documents the format; :data:`FORMAT_VERSION`
is its version.

Writes are atomic (:func:`atomic_write`): an interrupted save leaves either the old file or
none under the target name, never half a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from softreg import _archive
from softreg._archive import (
    ARCHIVE_ERRORS,
    UnreadableFileError,
    ZipArrays,
    npy_from_bytes,
    one_line,
)
from softreg._params import validate_params

__all__ = [
    "ESTIMATORS",
    "ESTIMATOR_NAMES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ModelFile",
    "ModelFileError",
    "atomic_write",
    "load_model",
    "read_model_file",
    "register_estimator",
    "save_model",
]

FORMAT_NAME = "softreg-model"
#: Version of the file layout. Readers refuse files with a larger version.
FORMAT_VERSION = 1
#: The estimator classes a model file may name. Any other name is refused; a name read from a
#: file is only looked up in :data:`ESTIMATORS`, never imported.
ESTIMATOR_NAMES = ("SoftmaxRegression", "LinearRegression")
#: The classes themselves, by name: filled by :func:`register_estimator` as softreg's estimator
#: module defines them.
ESTIMATORS: dict[str, type] = {}

_HEADER_MEMBER = "header.json"
# A header is a few kilobytes plus the feature names, so its size is bounded before it is
# parsed (JSON takes up to ~60 times its size as Python objects): 1 MiB, plus 64 bytes per
# byte of coef_ (at least 256 bytes per feature name).
_HEADER_BASE_BYTES = 1 << 20
_HEADER_BYTES_PER_COEF_BYTE = 64
# Nesting deeper than this is no model header (metadata is a flat mapping of plain values).
_MAX_HEADER_DEPTH = 32
# An .npy header is at most a few hundred bytes; allow generous slack over the data size.
_NPY_HEADER_SLACK = 1 << 16
# Zip entries carry a fixed date so that saving the same model twice gives identical bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ARRAY_NAME = re.compile(r"^(coef_|intercept_|classes_|history_[a-z][a-z0-9_]*)$")
# dtype kinds an array may have: bool, signed and unsigned integers, floats, unicode text.
_ARRAY_KINDS = "biufU"
# Fitted scalar attributes kept in the header's "training" section, by header key.
_TRAINING_ATTRIBUTES = {
    "n_iter": "n_iter_",
    "objective": "objective_",
    "optimality_gap_bound": "optimality_gap_bound_",
    "converged": "converged_",
    "solver": "solver_",
    # Rows trained on (fit, then every partial_fit / `softreg update`); absent in older files.
    "n_samples_seen": "n_samples_seen_",
}
_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def register_estimator(estimator_class):
    """Let model files name ``estimator_class``: a class decorator for softreg's estimators.

    The model format looks classes up here, so it never imports the estimator module (which
    imports this one to save).

    Parameters
    ----------
    estimator_class : type
        A scikit-learn style estimator with a ``_parameter_table`` of hyper-parameter rules.

    Returns
    -------
    type
        ``estimator_class``, unchanged.
    """
    if estimator_class.__name__ not in ESTIMATOR_NAMES:
        raise ValueError(
            f"model files name only {', '.join(ESTIMATOR_NAMES)}; got {estimator_class.__name__}."
        )
    ESTIMATORS[estimator_class.__name__] = estimator_class
    return estimator_class


def _estimator_class(name):
    """The registered class named ``name``, one of :data:`ESTIMATOR_NAMES`.

    The estimator module registers its classes when it is imported, and ``softreg`` imports it
    on first use of a public estimator name (PEP 562): a model loaded before any estimator was
    used asks the package for the class by its fixed public name, never for a module.
    """
    if name not in ESTIMATORS:
        import softreg

        getattr(softreg, name)
    return ESTIMATORS[name]


class ModelFileError(ValueError):
    """A file cannot be loaded as a softreg model; the message names the file and the reason."""

    def __init__(self, path, message):
        # One line: the command line prints it as one "Error:" line.
        super().__init__(f"{path}: {one_line(message)}")
        self.path = str(path)


@dataclass(frozen=True)
class ModelFile:
    """A loaded model file: the fitted estimator and the file's header.

    Attributes
    ----------
    estimator : SoftmaxRegression or LinearRegression
        Fitted, ready to predict.
    header : dict
        The parsed ``header.json`` (see ``docs/model-format.md``).
    """

    estimator: object
    header: dict


@contextlib.contextmanager
def atomic_write(path):
    """Write a file through a temporary file in the same directory, renamed onto ``path``.

    The temporary file lives in the target's directory (so the final :func:`os.replace` is a
    rename within one file system, atomic on POSIX and Windows) and is flushed and fsynced
    before the rename. If the block raises, the temporary file is removed and ``path`` is left
    as it was: a reader never sees a half-written file under the target name.

    Parameters
    ----------
    path : str or path-like
        The final file name.

    Yields
    ------
    file object
        Open for binary writing.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "out.bin"
    >>> with atomic_write(path) as handle:
    ...     _ = handle.write(b"complete")
    >>> path.read_bytes()
    b'complete'
    """
    path = Path(path)
    try:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed and renamed below)
            mode="wb", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        )
    except OSError as exc:
        # Name the file the caller asked for, not the temporary one.
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, _file_mode(path))
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)
        raise
    _fsync_directory(path.parent)


def _file_mode(path):
    """The mode ``open(path, "w")`` would give: the old file's, or 0o666 less the umask.

    Temporary files are created 0o600; without this the renamed file would stay private.
    """
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory):
    # Makes the rename itself durable on POSIX; directories cannot be opened on Windows.
    if hasattr(os, "O_DIRECTORY"):
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


# --------------------------------------------------------------------------------------------
# Saving


def _json_value(value, what):
    """A hyper-parameter or summary value as JSON data (non-finite floats as strings)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.ndarray):
        return [_json_value(item, what) for item in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_json_value(item, what) for item in value]
    if isinstance(value, dict):
        # JSON object keys must be strings, class labels may be numbers: keep pairs.
        return {"mapping": [[_json_value(k, what), _json_value(v, what)] for k, v in value.items()]}
    raise ValueError(
        f"cannot save {what}: a model file holds numbers, strings, lists and mappings; "
        f"got {type(value).__name__}."
    )


def _json_object(value):
    """Nested dicts (str keys), lists and numbers as JSON data, non-finite floats as strings."""
    if isinstance(value, dict):
        return {str(key): _json_object(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_json_object(item) for item in value]
    return _json_value(value, "cross_validation")


def _labels_array(classes):
    """``classes_`` as a bool, number or fixed-width unicode array, never object dtype."""
    classes = np.asarray(classes)
    if classes.dtype.kind == "O":
        if not all(isinstance(label, str) for label in classes.tolist()):
            kinds = sorted({type(label).__name__ for label in classes.tolist()})
            raise ValueError(
                f"cannot save `classes_` holding object labels of types {', '.join(kinds)}; "
                "a model file holds bool, integer, float or string labels."
            )
        classes = classes.astype(str)
    return classes


def _model_header_and_arrays(estimator, metadata):
    from softreg import __version__

    name = type(estimator).__name__
    if name not in ESTIMATOR_NAMES or _estimator_class(name) is not type(estimator):
        raise ValueError(f"`estimator` must be one of {', '.join(ESTIMATOR_NAMES)}; got {name}.")
    if not hasattr(estimator, "coef_"):
        raise ValueError(f"`estimator` must be fitted before saving; this {name} has no `coef_`.")
    arrays = {
        "coef_": np.asarray(estimator.coef_),
        "intercept_": np.asarray(estimator.intercept_),
    }
    if hasattr(estimator, "classes_"):
        arrays["classes_"] = _labels_array(estimator.classes_)
    for key, values in getattr(estimator, "history_", {}).items():
        arrays[f"history_{key}"] = np.asarray(values)
    params = estimator.get_params(deep=False)
    # A callback is code: it is never saved, and a loaded model has none.
    if "callback" in params:
        params["callback"] = None
    feature_names = getattr(estimator, "feature_names_in_", None)
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "softreg_version": __version__,
        "estimator": name,
        "params": {
            key: _json_value(value, f"hyper-parameter `{key}`") for key, value in params.items()
        },
        "n_features": int(arrays["coef_"].shape[-1]),
        "feature_names": None if feature_names is None else [str(n) for n in feature_names],
        "classes": _json_value(arrays["classes_"], "classes_") if "classes_" in arrays else None,
        "training": {
            key: _json_value(getattr(estimator, attribute), key)
            for key, attribute in _TRAINING_ATTRIBUTES.items()
            if hasattr(estimator, attribute)
        },
        "metadata": {
            str(key): _json_value(value, f"metadata {key!r}")
            for key, value in (metadata or {}).items()
        },
    }
    return header, arrays


def _npy_bytes(name, array):
    if array.dtype.kind not in _ARRAY_KINDS:
        raise ValueError(
            f"cannot save array `{name}` of dtype {array.dtype}; a model file holds bool, "
            "integer, float and unicode arrays."
        )
    buffer = io.BytesIO()
    # asarray, not ascontiguousarray, which would turn a 0-d intercept into shape (1,).
    np.lib.format.write_array(buffer, np.asarray(array, order="C"), allow_pickle=False)
    return buffer.getvalue()


def _write_member(archive, name, data):
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def save_model(estimator, path, *, metadata=None, cross_validation=None):
    """Save a fitted estimator to a softreg model file, atomically.

    Parameters
    ----------
    estimator : SoftmaxRegression or LinearRegression
        Fitted.
    path : str or path-like
        The model file to write (conventionally ``*.softreg``); replaced if it exists.
    metadata : mapping of str to JSON-like values, optional
        Extra facts to keep in the header, e.g. the training data's target column.
    cross_validation : dict, optional
        How the model's ``alpha`` was chosen (:func:`softreg._cv.cv_summary`), kept as the
        header's ``cross_validation`` section; readers that predate it ignore it.

    Raises
    ------
    ValueError
        If the estimator is not a softreg estimator, is not fitted, or holds a value a model
        file cannot represent (an object array, a hyper-parameter that is code).

    Notes
    -----
    The file is a zip archive of ``header.json`` and ``.npy`` arrays; see
    ``docs/model-format.md``. Saving the same model twice gives byte-identical files.
    A ``callback`` hyper-parameter is not saved.

    Examples
    --------
    >>> import os, tempfile
    >>> from softreg import SoftmaxRegression
    >>> model = SoftmaxRegression(alpha=0.1).fit([[0.0], [1.0], [2.0], [3.0]], ["a", "a", "b", "b"])
    >>> path = os.path.join(tempfile.mkdtemp(), "model.softreg")
    >>> save_model(model, path)
    >>> load_model(path).predict([[0.2], [2.9]])
    array(['a', 'b'], dtype='<U1')
    """
    header, arrays = _model_header_and_arrays(estimator, metadata)
    if cross_validation is not None:
        section = _json_object(cross_validation)
        problem = _cross_validation_problem(section, header)
        if problem:
            raise ValueError(f"cannot save `cross_validation`: {problem}.")
        header["cross_validation"] = section
    members = {f"{name}.npy": _npy_bytes(name, array) for name, array in arrays.items()}
    header["arrays"] = {
        name: {
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "sha256": hashlib.sha256(members[f"{name}.npy"]).hexdigest(),
        }
        for name, array in arrays.items()
    }
    header_bytes = json.dumps(header, indent=2, ensure_ascii=False, allow_nan=False).encode()
    with atomic_write(path) as handle, zipfile.ZipFile(handle, "w") as archive:
        _write_member(archive, _HEADER_MEMBER, header_bytes)
        for name, data in members.items():
            _write_member(archive, name, data)


# --------------------------------------------------------------------------------------------
# Loading


def load_model(path):
    """Load a fitted estimator from a softreg model file, without executing anything in it.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save_model`, ``SoftmaxRegression.save`` or ``softreg fit``.

    Returns
    -------
    SoftmaxRegression or LinearRegression
        Fitted, ready to predict.

    Raises
    ------
    ModelFileError
        If the file is not a softreg model (a pickle, another zip, any other file), is
        truncated or corrupted, fails a checksum, is internally inconsistent, or was written in
        a newer format version. The message says which.
    FileNotFoundError
        If there is no such file.

    See Also
    --------
    read_model_file : the estimator together with the file header.
    """
    return read_model_file(path).estimator


def read_model_file(path):
    """Load a model file's estimator and header; see :func:`load_model`.

    Returns
    -------
    ModelFile
    """
    path = os.fspath(path)
    with open(path, "rb") as handle:
        start = handle.read(8)
        if not start.startswith(b"PK"):
            raise ModelFileError(path, _foreign_file_message(start))
        handle.seek(0)
        try:
            with ZipArrays(handle) as archive:
                header = _read_header(path, archive)
                arrays = _read_arrays(path, archive, header)
        except UnreadableFileError as exc:
            raise ModelFileError(path, f"{exc}.") from exc
        except ARCHIVE_ERRORS as exc:
            raise ModelFileError(
                path, f"is truncated or corrupted (not a readable zip archive: {exc})."
            ) from exc
    _check_consistency(path, header, arrays)
    return ModelFile(_build_estimator(path, header, arrays), header)


def _foreign_file_message(start):
    if start[:1] == b"\x80" or start[:1] in (b"(", b"]", b"}"):
        return (
            "looks like a pickle file, not a softreg model file; softreg never unpickles, because "
            "loading a pickle can run arbitrary code. Re-fit and save the model with softreg."
        )
    if start.startswith(b"\x93NUMPY"):
        return "is a single NumPy .npy array, not a softreg model file."
    return (
        "is not a softreg model file (a softreg model file is a zip archive, starting with "
        f"b'PK'; this file starts with {start[:4]!r})."
    )


def _read_header(path, archive):
    names = archive.names
    if _HEADER_MEMBER not in names:
        raise ModelFileError(
            path, "is a zip archive but not a softreg model file (it has no header.json)."
        )
    coef_bytes = archive.member_size("coef_.npy") if "coef_.npy" in names else 0
    limit = _HEADER_BASE_BYTES + _HEADER_BYTES_PER_COEF_BYTE * coef_bytes
    size = archive.member_size(_HEADER_MEMBER)
    if size > limit:
        raise ModelFileError(
            path,
            f"has a header.json of {size} bytes, too large for a model whose coef_ takes "
            f"{coef_bytes} bytes (at most {limit}).",
        )
    try:
        header = json.loads(archive.read_bytes(_HEADER_MEMBER).decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        # ValueError: not UTF-8, not JSON, or an integer of more than 4300 digits;
        # RecursionError: arrays or objects nested too deep for the parser.
        raise ModelFileError(path, f"has a corrupted header.json ({exc}).") from exc
    if _nesting_depth(header) > _MAX_HEADER_DEPTH:
        raise ModelFileError(
            path, f"has a header.json nested deeper than {_MAX_HEADER_DEPTH} levels."
        )
    try:
        # JSON escapes can spell lone surrogates, which no output can print or encode.
        json.dumps(header, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ModelFileError(path, f"has text that is not valid Unicode ({exc.reason}).") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        found = header.get("format") if isinstance(header, dict) else None
        raise ModelFileError(
            path,
            f"is not a softreg model file (its header.json names the format {found!r}, "
            f"not {FORMAT_NAME!r}).",
        )
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(path, f"has an invalid format_version {version!r}.")
    if version > FORMAT_VERSION:
        from softreg import __version__

        raise ModelFileError(
            path,
            f"was written by softreg {header.get('softreg_version', '?')} in model format "
            f"{version}; this softreg ({__version__}) reads format {FORMAT_VERSION} and older. "
            "Upgrade softreg: pip install --upgrade softreg",
        )
    _check_header_fields(path, header)
    expected = {_HEADER_MEMBER} | {f"{name}.npy" for name in header["arrays"]}
    for name in names:
        if name not in expected:
            raise ModelFileError(path, f"has an unexpected member {name!r}.")
    for name in sorted(expected - set(names)):
        raise ModelFileError(path, f"lacks the member {name!r} that its header lists.")
    return header


def _nesting_depth(value):
    """How deeply JSON lists and objects nest in ``value``, counted without recursion."""
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [
            child
            for item in level
            if isinstance(item, (dict, list))
            for child in (item.values() if isinstance(item, dict) else item)
        ]
    return depth


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_real(value):
    """A finite number, or a non-finite one as save_model writes it ("inf", "-inf", "nan")."""
    if isinstance(value, str):
        return value in _NON_FINITE
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_HEADER_FIELDS = {
    "softreg_version": str,
    "estimator": str,
    "params": dict,
    "n_features": int,
    "feature_names": (list, type(None)),
    "classes": (list, type(None)),
    "training": dict,
    "metadata": dict,
    "arrays": dict,
}
# The training summary `softreg inspect` shows, by header key: a rule and what it expects.
_TRAINING_FIELDS = {
    "n_iter": (_is_count, "a non-negative integer"),
    "objective": (_is_real, "a number"),
    "optimality_gap_bound": (_is_real, "a number"),
    "converged": (lambda value: isinstance(value, bool), "true or false"),
    "solver": (lambda value: isinstance(value, str), "a string"),
}
# Metadata that the command line reads back: the training data's column names.
_METADATA_COLUMNS = ("target_column", "sample_weight_column")


def _check_header_fields(path, header):
    for key, kind in _HEADER_FIELDS.items():
        if key not in header:
            raise ModelFileError(path, f"has a header without the field {key!r}.")
        if not isinstance(header[key], kind):
            raise ModelFileError(
                path, f"has a header field {key!r} of type {type(header[key]).__name__}."
            )
    if header["estimator"] not in ESTIMATOR_NAMES:
        raise ModelFileError(
            path,
            f"names the estimator {header['estimator']!r}; softreg loads only "
            f"{', '.join(ESTIMATOR_NAMES)}.",
        )
    if not _is_count(header["n_features"]):
        raise ModelFileError(
            path, f"has n_features {header['n_features']!r}; expected a non-negative integer."
        )
    for key, (rule, words) in _TRAINING_FIELDS.items():
        value = header["training"].get(key)
        if not rule(value):
            raise ModelFileError(
                path, f"has a training field {key!r} of {value!r}; expected {words}."
            )
    for key in _METADATA_COLUMNS:
        value = header["metadata"].get(key)
        if not (value is None or isinstance(value, str)):
            raise ModelFileError(
                path, f"has a metadata field {key!r} of {value!r}; expected a column name."
            )
    for name, info in header["arrays"].items():
        if not _ARRAY_NAME.match(name):
            raise ModelFileError(path, f"lists an array with the invalid name {name!r}.")
        if not (
            isinstance(info, dict)
            and isinstance(info.get("dtype"), str)
            and isinstance(info.get("shape"), list)
            and all(_is_count(n) for n in info["shape"])
            and isinstance(info.get("sha256"), str)
        ):
            raise ModelFileError(path, f"has an invalid header entry for array {name!r}.")
    names = header["feature_names"]
    if names is not None and not all(isinstance(n, str) for n in names):
        raise ModelFileError(path, "has feature names that are not all strings.")
    if "cross_validation" in header:  # absent in files of models fitted without --cv
        problem = _cross_validation_problem(header["cross_validation"], header)
        if problem:
            raise ModelFileError(path, f"has an invalid cross_validation section: {problem}.")


def _shape(value, depth):
    """The shape of ``depth`` nested JSON lists of equal lengths, or None if ragged."""
    if depth == 0:
        return ()
    if not isinstance(value, list):
        return None
    inner = {_shape(item, depth - 1) for item in value}
    if None in inner or len(inner) > 1:
        return None
    return (len(value), *(inner.pop() if inner else (0,) * (depth - 1)))


def _reals(value, shape):
    """Whether ``value`` is nested lists of real numbers of ``shape``."""
    if _shape(value, len(shape)) != shape:
        return False
    flat = [value]
    for _ in shape:
        flat = [item for items in flat for item in items]
    return all(_is_real(item) for item in flat)


def _cross_validation_problem(section, header):
    """What is wrong with a ``cross_validation`` header section, or None (docs/model-format.md)."""
    if not isinstance(section, dict) or not isinstance(section.get("path"), dict):
        return "expected a mapping with a mapping 'path'"
    path = section["path"]
    ratios = section.get("l1_ratios")
    folds, features = section.get("n_folds"), path.get("features")
    n_alphas = len(path.get("alphas") or [])
    n_classes = len(header["classes"] or [])
    if not (_is_count(folds) and folds >= 2):
        return f"'n_folds' must be an integer >= 2; got {folds!r}"
    if section.get("l1_norm") not in ("elementwise", "grouped"):
        return f"'l1_norm' must be 'elementwise' or 'grouped'; got {section.get('l1_norm')!r}"
    if not (isinstance(ratios, list) and ratios and _reals(ratios, (len(ratios),))):
        return "'l1_ratios' must be a non-empty list of numbers"
    if not (n_alphas and _reals(path["alphas"], (n_alphas,))):
        return "'path.alphas' must be a non-empty list of numbers"
    if not (isinstance(features, list) and all(_is_count(j) for j in features)):
        return "'path.features' must be a list of feature indices"
    if any(j >= header["n_features"] for j in features):
        return f"'path.features' names features beyond the {header['n_features']} of the model"
    expected = {
        "alphas": (section, (len(ratios), n_alphas)),
        "scores": (section, (len(ratios), folds, n_alphas)),
        "alpha": (section, ()),
        "l1_ratio": (section, ()),
        "n_nonzero": (path, (n_alphas, n_classes)),
        "objectives": (path, (n_alphas,)),
        "gap_bounds": (path, (n_alphas,)),
        "coef_norms": (path, (n_alphas, len(features))),
    }
    for key, (where, shape) in expected.items():
        value = where.get(key)
        if not (_is_real(value) if shape == () else _reals(value, shape)):
            return f"{key!r} must hold numbers of shape {shape}"
    return None


def _read_arrays(path, archive, header):
    arrays = {}
    for name, info in header["arrays"].items():
        try:
            dtype = np.dtype(info["dtype"])
        except (TypeError, ValueError, OverflowError, SyntaxError) as exc:
            # numpy parses dtype strings, and absurd ones ("(1000000000000,)f8") overflow.
            raise ModelFileError(
                path, f"lists array {name!r} with invalid dtype {info['dtype']!r}."
            ) from exc
        if dtype.kind not in _ARRAY_KINDS:
            raise ModelFileError(
                path,
                f"lists array {name!r} with dtype {dtype}; softreg model arrays are bool, "
                "integer, float or unicode (object arrays would need pickle, which softreg "
                "never loads).",
            )
        member = f"{name}.npy"
        n_items = math.prod(info["shape"])
        # Before anything is read: the declared size must fit the bound (max: U0 has size 0).
        _archive.check_decoded_size(n_items * max(dtype.itemsize, 1), f"array {name!r}")
        if archive.member_size(member) > dtype.itemsize * n_items + _NPY_HEADER_SLACK:
            raise ModelFileError(path, f"has a member {member!r} larger than its header says.")
        data = archive.read_bytes(member)
        if hashlib.sha256(data).hexdigest() != info["sha256"]:
            raise ModelFileError(
                path,
                f"fails the SHA-256 check of array {name!r}: the file was corrupted or "
                "modified after it was written.",
            )
        array = npy_from_bytes(data, f"array {name!r}")
        if array.dtype != dtype or list(array.shape) != info["shape"]:
            raise ModelFileError(
                path,
                f"has array {name!r} of dtype {array.dtype} and shape {array.shape}, but its "
                f"header says {dtype} and {tuple(info['shape'])}.",
            )
        arrays[name] = array
    return arrays


def _check_consistency(path, header, arrays):
    def fail(message):
        raise ModelFileError(path, f"is inconsistent: {message}.")

    for name in ("coef_", "intercept_"):
        if name not in arrays:
            fail(f"it has no {name} array")
    coef, intercept = arrays["coef_"], arrays["intercept_"]
    if coef.dtype.kind != "f" or intercept.dtype.kind != "f":
        fail("coef_ and intercept_ must be float arrays")
    if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
        fail("coef_ and intercept_ must be finite (a model with inf or NaN cannot predict)")
    if coef.ndim not in (1, 2) or coef.shape[-1] != header["n_features"]:
        fail(f"coef_ has shape {coef.shape} for {header['n_features']} features")
    if intercept.shape != coef.shape[:-1]:
        fail(f"intercept_ has shape {intercept.shape} for coef_ of shape {coef.shape}")
    names = header["feature_names"]
    if names is not None and (len(names) != header["n_features"] or len(set(names)) != len(names)):
        fail(f"{len(names)} feature names (some repeated?) for {header['n_features']} features")
    if header["estimator"] == "SoftmaxRegression":
        classes = arrays.get("classes_")
        if classes is None or coef.ndim != 2 or classes.shape != coef.shape[:1]:
            fail(f"SoftmaxRegression needs classes_ with one label per row of coef_ {coef.shape}")
        if classes.size > 1 and not (classes[1:] > classes[:-1]).all():
            fail("classes_ are not sorted and unique")
        if header["classes"] != classes.tolist():
            fail("the header's classes differ from the classes_ array")
    history = [array for name, array in arrays.items() if name.startswith("history_")]
    if len({array.shape for array in history}) > 1 or any(a.ndim != 1 for a in history):
        fail("the history arrays differ in length")


def _decode(value):
    """A JSON value from the header as save_model's ``_json_value`` encoded it."""
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, dict) and set(value) == {"mapping"}:
        pairs = value["mapping"]
        if not (
            isinstance(pairs, list)
            and all(isinstance(pair, list) and len(pair) == 2 for pair in pairs)
            and all(isinstance(key, (str, int, float, bool, type(None))) for key, _ in pairs)
        ):
            raise ValueError(f"a mapping must be a list of [label, value] pairs; got {pairs!r}")
        return {_decode(key): _decode(item) for key, item in pairs}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value


def _build_estimator(path, header, arrays):
    name = header["estimator"]
    # The class comes from softreg's own registry, never from a name in the file.
    estimator_class = _estimator_class(name)
    known = set(estimator_class().get_params(deep=False))
    unknown = sorted(set(header["params"]) - known)
    if unknown:
        raise ModelFileError(
            path,
            f"has hyper-parameters this softreg's {name} does not know: {', '.join(unknown)}.",
        )
    try:
        estimator = estimator_class(**{key: _decode(v) for key, v in header["params"].items()})
        validate_params(estimator, estimator_class._parameter_table)
    except ValueError as exc:
        raise ModelFileError(path, f"has an invalid hyper-parameter: {exc}") from exc
    estimator.coef_ = arrays["coef_"]
    # LinearRegression with one output keeps a scalar intercept and a 1-D coef_.
    estimator.intercept_ = arrays["intercept_"][()]
    if "classes_" in arrays:
        estimator.classes_ = arrays["classes_"]
    if name == "LinearRegression":
        estimator._single_output = estimator.coef_.ndim == 1
    estimator.n_features_in_ = header["n_features"]
    if header["feature_names"] is not None:
        # scikit-learn's convention: an object array of str.
        estimator.feature_names_in_ = np.asarray(header["feature_names"], dtype=object)
    for key, attribute in _TRAINING_ATTRIBUTES.items():
        if key in header["training"]:
            setattr(estimator, attribute, _decode(header["training"][key]))
    estimator.history_ = {
        name[len("history_") :]: array
        for name, array in arrays.items()
        if name.startswith("history_")
    }
    return estimator
