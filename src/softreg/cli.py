"""The ``softreg`` command line: fit, update, predict, evaluate, report, inspect, demo.

A thin shell over the library. ``fit`` (but for sparse models, ``--l1-ratio`` above 0 and
``--cv``, whose solver reads the rows by columns: :mod:`softreg._gather`), ``predict``,
``evaluate`` and ``report`` never load a whole data file: they open it with
:func:`softreg.open_dataset` and stream it block by block (the estimator's ``fit(dataset)``,
predictions written with :class:`softreg._writers.TableWriter` as they are computed, metrics
added up by :class:`softreg._metrics.MetricsAccumulator`), with ``--memory-limit`` bounding
what they hold (:mod:`softreg._memory`). Models are read with
:func:`softreg._model_io.read_model_file` and written with :func:`softreg._model_io.save_model`;
``fit --checkpoint`` saves the solver's state after every iteration (:mod:`softreg._checkpoint`).

Exit codes: 0 success; 1 bad data or model file (one line ``Error: FILE: ...`` on standard
error, naming the column and row where known); 2 usage errors (click's own messages); 3 a fit
that did not converge (:data:`EXIT_NOT_CONVERGED`: the model file is written, and a line
``Not converged: ...`` on standard error says what to change). No
traceback for user errors unless ``--debug`` is given. Warnings (e.g. not converging) are
printed as ``Warning: ...`` lines on standard error. Results go to standard output; progress
and summaries go to standard error, so pipes carry only the result.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import math
import os
import sys
import warnings

import click

from softreg import __version__

__all__ = ["EXIT_NOT_CONVERGED", "main"]

#: Exit code of ``softreg fit`` when the fit stopped before certifying its optimum.
EXIT_NOT_CONVERGED = 3

# Each command imports what it needs (NumPy, the readers, the estimator and with it
# scikit-learn, SciPy and numba) when it runs, so that `softreg --help` imports click and
# nothing heavy (tests/test_startup.py; timings in BENCHMARKS.md). The data formats and the
# estimator's defaults that --help shows are therefore written out here; tests/test_cli.py
# checks them against their sources.
_FORMATS = ("npy", "parquet", "csv", "svmlight", "npz")
_TABLE_FORMATS = ("csv", "parquet", "svmlight", "npz")  # `update` reads DATA whole
_DEFAULTS = {
    "alpha": 1e-4,
    "l1_ratio": 0.0,
    "l1_norm": "elementwise",
    "solver": "auto",
    "tol": None,
    "max_iter": 1000,
}
_SOLVERS = ("auto", "gd", "lbfgs", "newton-cg", "newton-cd")
_L1_NORMS = ("elementwise", "grouped")
_KIND = {"csv": "CSV", "parquet": "Parquet"}
_MODEL_PATH = click.Path(exists=True, dir_okay=False)


def _user_errors():
    """The exceptions a command reports as ``Error: ...`` with exit code 1.

    Anything else is a bug and keeps its traceback.
    """
    from softreg._checkpoint import CheckpointError
    from softreg._data_io import DataError, MissingDependencyError
    from softreg._memory import MemoryLimitError
    from softreg._model_io import ModelFileError

    return (
        DataError,
        ModelFileError,
        MissingDependencyError,
        OSError,
        CheckpointError,
        MemoryLimitError,
    )


class _DataPath(click.ParamType):
    """A data file, a directory of Parquet files, or a glob of files (checked to exist)."""

    name = "DATA"

    def convert(self, value, param, ctx):
        value = os.fspath(value)
        if not glob.has_magic(value) and not os.path.exists(value):
            self.fail(f"File {value!r} does not exist.", param, ctx)
        return value


class _Size(click.ParamType):
    """A byte count such as 512M or 2G."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        from softreg._memory import parse_size

        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


_DATA_PATH = _DataPath()
_STREAM_OPTIONS = [
    click.option(
        "--memory-limit",
        type=_Size(),
        metavar="SIZE",
        help="Memory the command may hold for data, e.g. 2G (default: half the machine's or "
        "the container's memory). Sets the rows per block and is checked after "
        "every iteration and block.",
    ),
    click.option(
        "--cache-dir",
        type=click.Path(file_okay=False),
        help="Where CSV and LIBSVM files are converted once into memory-mappable arrays "
        "(default: $SOFTREG_CACHE_DIR, else ~/.cache/softreg).",
    ),
]


def _stream_options(func):
    for option in reversed(_STREAM_OPTIONS):
        func = option(func)
    return func


def _error_message(exc):
    from softreg._data_io import MissingDependencyError

    if isinstance(exc, OSError) and not isinstance(exc, MissingDependencyError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    # One line: readers' own messages (pyarrow's) may hold line breaks.
    return " ".join(line.strip() for line in str(exc).strip().splitlines())


def _show_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"Warning: {message}", err=True)


def _command(func):
    """Add ``--debug``; print warnings as ``Warning:`` lines and user errors as ``Error:``."""

    @click.option("--debug", is_flag=True, help="On error, show the full traceback.")
    @functools.wraps(func)
    def wrapper(*args, debug, **kwargs):
        with warnings.catch_warnings():
            # Warnings meant for users (ConvergenceWarning, SeparableDataWarning, ...) every
            # time; deprecation noise stays hidden as by default.
            warnings.simplefilter("always", UserWarning)
            # One line per warning, when it happens, instead of Python's file:line format.
            warnings.showwarning = _show_warning
            try:
                return func(*args, **kwargs)
            except _user_errors() as exc:
                if debug:
                    raise
                raise click.ClickException(_error_message(exc)) from None

    return wrapper


def _names(values):
    """Column names from repeated and/or comma-separated option values."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _data_format(path, given):
    from softreg._data_io import DataError, guess_format

    if given is not None:
        return given
    if os.path.isdir(path) or glob.has_magic(path):
        return "parquet"
    if path.lower().endswith(".npy"):
        return "npy"
    try:
        return guess_format(path)
    except DataError as exc:
        raise click.BadParameter(str(exc), param_hint="DATA") from None


def _open(data, data_format, guard, **options):
    """``open_dataset`` with the rows per block that ``--memory-limit`` allows."""
    from softreg._data_io import DataError
    from softreg._files import open_dataset

    try:
        dataset = open_dataset(data, format=data_format, **options)
    except UnicodeDecodeError as exc:  # a text file that is not UTF-8
        raise DataError(
            data,
            f"is not UTF-8 text ({exc.reason}: {exc.object[exc.start : exc.end]!r}); "
            "save it as UTF-8.",
        ) from exc
    dataset.rows = guard.rows_for(dataset)
    return dataset


def _memory_guard(memory_limit):
    from softreg._memory import MemoryGuard, default_memory_limit

    return MemoryGuard(default_memory_limit() if memory_limit is None else memory_limit)


def _n_samples(dataset):
    n_samples = getattr(dataset, "n_samples", None)
    return n_samples if n_samples is not None else dataset.X.shape[0]


def _no_labels(data, data_format):
    from softreg._data_io import DataError

    if data_format == "npy":
        return DataError(
            data, "has no labels: give --target LABELS.npy, a file of one label per row."
        )
    return DataError(data, "has no labels: expected an array 'y' or give --target ARRAY.")


def _stderr_is_tty():
    return sys.stderr.isatty()


def _as_model_input(X, feature_names):
    """A DataFrame when the features have names, so the estimator matches them by name."""
    import numpy as np

    from softreg._data_io import import_optional

    if feature_names is None or not isinstance(X, np.ndarray):
        return X
    feature_names = list(feature_names)
    pandas = import_optional("pandas", "io", "named features")
    return pandas.DataFrame(X, columns=feature_names, copy=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="softreg")
def main():
    """Softmax (multinomial logistic) regression, trained to a certified optimum.

    Data files, streamed block by block: CSV, Parquet (a file, a directory or a glob),
    LIBSVM/svmlight (.svm, .svmlight, .libsvm, also .gz/.bz2), NumPy .npy (memory-mapped)
    and .npz. Model files hold no pickle and load without running code.
    """


# --------------------------------------------------------------------------------------------
# fit


def _parse_class_weight(text, dataset):
    """``--class-weight`` as the estimator takes it; LABEL=W pairs cost a pass to learn labels."""
    if text is None or text == "balanced":
        return text
    labels = dataset.scan().classes
    weights = {}
    for item in text.split(","):
        label_text, sep, weight_text = item.partition("=")
        try:
            if not sep:
                raise ValueError
            weight = float(weight_text)
        except ValueError:
            raise click.BadParameter(
                f"expected 'balanced' or LABEL=WEIGHT pairs separated by commas; got {item!r}.",
                param_hint="--class-weight",
            ) from None
        matches = [label for label in labels.tolist() if str(label) == label_text.strip()]
        if not matches:
            shown = ", ".join(str(label) for label in labels.tolist()[:12])
            raise click.BadParameter(
                f"{label_text.strip()!r} is not a label of the target column (labels: {shown}).",
                param_hint="--class-weight",
            )
        weights[matches[0]] = weight
    return weights


class _Progress:
    """One line per iteration: one updating line on a terminal, else lines.

    The iteration, the passes over the data so far (a strided Hessian pass counts as its
    share of the blocks), the rows read per second since the previous line, the objective and
    the certified gap bound.
    """

    def __init__(self, in_place):
        self.in_place = in_place
        self.printed = False
        self.rows = self.time = 0.0

    def __call__(self, info):
        elapsed = info.time - self.time
        speed = (info.rows - self.rows) / elapsed if elapsed > 0 else math.inf
        self.rows, self.time = info.rows, info.time
        line = (
            f"iteration {info.iteration:>5}  pass {info.passes:>7.2f}  {speed:9.3g} rows/s  "
            f"objective {info.objective:.12g}  gap bound {info.gap_bound:.3e}"
        )
        if self.in_place:
            click.echo(f"\r{line}\033[K", err=True, nl=False)
        else:
            click.echo(line, err=True)
        self.printed = True

    def close(self):
        if self.in_place and self.printed:
            click.echo("", err=True)


# --------------------------------------------------------------------------------------------
# Fitting on a Dask cluster (docs/distributed.md): the options and the client, in one place.

_DASK_OPTIONS = (
    click.option(
        "--dask-scheduler",
        metavar="ADDRESS",
        help="Fit on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://host:8786); "
        "DATA (CSV or Parquet files, a glob) is read by its workers.",
    ),
    click.option(
        "--dask-workers",
        type=click.IntRange(min=1),
        metavar="N",
        help="Fit on a Dask LocalCluster of N single-threaded worker processes on this machine.",
    ),
)


def _dask_options(command):
    for option in reversed(_DASK_OPTIONS):
        command = option(command)
    return command


@contextlib.contextmanager
def _dask_client(scheduler, workers):
    """The ``distributed.Client`` that --dask-scheduler/--dask-workers ask for, else None."""
    if scheduler is None and workers is None:
        yield None
        return
    if scheduler is not None and workers is not None:
        raise click.UsageError("--dask-scheduler and --dask-workers exclude each other.")
    from softreg._data_io import import_optional

    distributed = import_optional("distributed", "dask", "--dask-scheduler and --dask-workers")
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            from softreg._dask import local_cluster

            scheduler = stack.enter_context(local_cluster(workers))
        try:
            client = stack.enter_context(distributed.Client(scheduler, timeout="10s"))
        except OSError as exc:  # unreachable address, timeout
            raise click.ClickException(
                f"cannot reach the Dask scheduler at {scheduler!r}: {exc}"
            ) from None
        yield client


@main.command(short_help="Train a model on a data file.")
@click.argument("data", type=_DATA_PATH)
@click.option(
    "-t",
    "--target",
    metavar="COLUMN",
    help="The label column (needed for CSV and Parquet; for .npz the label array, default y; "
    "for .npy the .npy file of labels).",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="MODEL",
    help="The model file to write, e.g. model.softreg.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(min=0),
    metavar="FLOAT",
    default=_DEFAULTS["alpha"],
    show_default=True,
    help="Penalty strength: minimise mean cross-entropy + alpha/2 ||W||² (see --l1-ratio).",
)
@click.option(
    "--l1-ratio",
    type=click.FloatRange(0, 1),
    metavar="FLOAT",
    default=_DEFAULTS["l1_ratio"],
    show_default=True,
    help="Elastic net: the penalty becomes alpha((1 - ρ)/2 ||W||² + ρ Ω(W)) with ρ = "
    "--l1-ratio, and coefficients are exactly zero where the optimum has zeros. Above 0 the "
    "fit (solver newton-cd) holds the rows in memory, within --memory-limit.",
)
@click.option(
    "--l1-norm",
    type=click.Choice(_L1_NORMS),
    default=_DEFAULTS["l1_norm"],
    show_default=True,
    help="Ω: the L1 norm of every coefficient, or 'grouped', the sum over features of the "
    "Euclidean norm of their coefficients for all classes (a feature is kept or dropped "
    "for every class at once).",
)
@click.option(
    "--cv",
    type=click.IntRange(min=2),
    metavar="N",
    help="Choose alpha (and the l1-ratio among --l1-ratios) by N-fold stratified "
    "cross-validated log-loss over a regularisation path, then refit on all of DATA. The "
    "model file keeps the folds' scores and the path, which inspect and report show.",
)
@click.option(
    "--alphas",
    metavar="A,B,...",
    help="With --cv: the values of alpha to try (default: --n-alphas values from the "
    "smallest alpha at which every coefficient is zero).",
)
@click.option(
    "--n-alphas",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --cv: the number of values of alpha, log-spaced down to 1e-3 times the "
    "largest.  [default: 30]",
)
@click.option(
    "--l1-ratios",
    metavar="R,S,...",
    help="With --cv: the values of --l1-ratio to try, each in [0, 1].  [default: 1]",
)
@click.option(
    "--solver", type=click.Choice(_SOLVERS), default=_DEFAULTS["solver"], show_default=True
)
@click.option(
    "--tol",
    type=click.FloatRange(min=0, min_open=True),
    metavar="FLOAT",
    default=_DEFAULTS["tol"],
    show_default=True,
    help="Stop once the certified gap bound is at most tol × objective (with alpha = 0: "
    "once every gradient entry is at most tol).",
)
@click.option(
    "--max-iter",
    type=click.IntRange(min=1),
    metavar="N",
    default=_DEFAULTS["max_iter"],
    show_default=True,
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="FLOAT",
    help="Step size for --solver gd (default: from the curvature bound).",
)
@click.option("--no-intercept", is_flag=True, help="Fit without intercepts.")
@click.option(
    "--class-weight",
    metavar="balanced|LABEL=W,...",
    help="Weigh classes: 'balanced' or per-label weights such as 'spam=5,ham=1'.",
)
@click.option("--sample-weight", metavar="COLUMN", help="Column of non-negative row weights.")
@click.option(
    "--features",
    metavar="COLUMNS",
    multiple=True,
    help="Feature columns, comma-separated or repeated (default: all other columns).",
)
@click.option(
    "--ignore", metavar="COLUMNS", multiple=True, help="Columns that are not features (e.g. ids)."
)
@click.option("--format", "data_format", type=click.Choice(_FORMATS), help="Data file format.")
@click.option(
    "--standardize",
    is_flag=True,
    help="Train on standardised features (means and deviations from a first pass), folded "
    "back so that the model takes raw features.",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Save the solver's state to FILE after every iteration; run the same command again "
    "to resume from it. Deleted once the model is written.",
)
@_stream_options
@_dask_options
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors and warnings.")
@click.option("-v", "--verbose", is_flag=True, help="Print every iteration, even in a pipe.")
@_command
def fit(
    data,
    target,
    output,
    alpha,
    l1_ratio,
    l1_norm,
    cv,
    alphas,
    n_alphas,
    l1_ratios,
    solver,
    tol,
    max_iter,
    learning_rate,
    no_intercept,
    class_weight,
    sample_weight,
    features,
    ignore,
    data_format,
    standardize,
    checkpoint,
    memory_limit,
    cache_dir,
    dask_scheduler,
    dask_workers,
    quiet,
    verbose,
):
    """Train a softmax regression on DATA and write it to a model file.

    DATA is streamed, never loaded whole (sparse fits aside, below): a CSV, Parquet,
    LIBSVM/svmlight, .npy or .npz file, or for Parquet a directory or a glob of files. Shows the
    iteration, the passes over the data, rows per second, the objective and the certified gap
    bound while training when standard error is a terminal (or with --verbose); a pipe gets
    nothing but errors and warnings. With --checkpoint, a killed run loses at most one
    iteration: run the same command again to resume. A fit that stops before converging still
    writes the model, says what to change, keeps its checkpoint (a rerun with a higher
    --max-iter resumes) and exits with code 3. With --dask-scheduler or --dask-workers, DATA
    (CSV or Parquet files, or a glob of them) is read and the fit's passes run on a Dask
    cluster. With --l1-ratio above 0 or --cv the solver, newton-cd, reads the rows by columns:
    DATA is then read once into memory, within --memory-limit.
    """
    from softreg._data_io import DataError
    from softreg._estimator import SoftmaxRegression
    from softreg._model_io import save_model

    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose exclude each other.")
    grid = _grid_options(cv, alphas, n_alphas, l1_ratios)
    _check_penalty_options(
        alpha, l1_ratio, solver, cv, checkpoint=checkpoint, standardize=standardize
    )
    data_format = _data_format(data, data_format)
    if target is None and data_format in ("csv", "parquet"):
        raise click.UsageError(
            f"Missing option '--target': {_KIND[data_format]} data needs a label column."
        )
    guard = _memory_guard(memory_limit)
    columns = {
        "target": target,
        "features": _names(features) or None,
        "exclude": _names(ignore),
        "sample_weight": sample_weight,
    }
    # The Dask cluster (if any) lives until the command ends.
    client = click.get_current_context().with_resource(_dask_client(dask_scheduler, dask_workers))
    if client is not None:
        from softreg._files import open_dataset

        dataset = open_dataset(data, format=data_format, engine="dask", **columns)
    else:
        dataset = _open(data, data_format, guard, cache_dir=cache_dir, **columns)
    if dataset.target_ndim == 0:
        raise _no_labels(data, data_format)
    dataset.memory_limit = guard.limit  # what an L1 fit may gather into memory
    metadata = {
        "training_data": os.path.basename(data),
        "target_column": target if data_format in ("csv", "parquet") else None,
        "sample_weight_column": sample_weight if data_format in ("csv", "parquet") else None,
    }
    if cv is not None:
        params = {
            "l1_norm": l1_norm,
            "fit_intercept": not no_intercept,
            "tol": tol,
            "max_iter": max_iter,
            "class_weight": _parse_class_weight(class_weight, dataset),
        }
        _fit_cv(dataset, data, output, guard, cv, grid, params, metadata, quiet)
        return
    show_progress = verbose or (not quiet and _stderr_is_tty())
    progress = _Progress(in_place=_stderr_is_tty()) if show_progress else None

    def callback(info):
        if progress is not None:
            progress(info)
        guard.check()

    options = [target, _names(features), _names(ignore), sample_weight, class_weight]
    estimator = SoftmaxRegression(
        alpha=alpha,
        l1_ratio=l1_ratio,
        l1_norm=l1_norm,
        fit_intercept=not no_intercept,
        solver=solver,
        tol=tol,
        max_iter=max_iter,
        learning_rate=learning_rate,
        class_weight=_parse_class_weight(class_weight, dataset),
        standardize=standardize,
        callback=callback,
        checkpoint=None if checkpoint is None else _checkpoint(checkpoint, dataset, data, options),
    )
    try:
        estimator.fit(dataset)
    except _user_errors():
        raise
    except ValueError as exc:
        raise DataError(data, str(exc)) from exc
    finally:
        if progress is not None:
            progress.close()
    estimator.set_params(callback=None, checkpoint=None)
    metadata = {**metadata, "n_samples": _n_samples(dataset)}
    save_model(estimator, output, metadata=metadata)
    if checkpoint is not None and estimator.converged_:
        os.unlink(checkpoint)  # the model holds the result; a rerun starts afresh
    _finish_fit(estimator, output, quiet)


def _finish_fit(estimator, output, quiet, cross_validation=None):
    """The summary on standard error; exit code 3 when the fit did not converge."""
    if not quiet:
        click.echo(_fit_summary(estimator, output), err=True)
        if cross_validation is not None:
            click.echo(_cv_summary_line(cross_validation), err=True)
    if not estimator.converged_:
        click.echo(f"Not converged: {_not_converged_advice(estimator, output)}", err=True)
        click.get_current_context().exit(EXIT_NOT_CONVERGED)


def _numbers(text, option, low, high, low_open):
    """Comma-separated numbers in [low, high] (``(low, high]`` when ``low_open``)."""
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
    try:
        values = [float(item) for item in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(
        math.isfinite(v) and (v > low if low_open else v >= low) and v <= high for v in values
    ):
        raise click.BadParameter(
            f"expected numbers in {interval} separated by commas; got {text!r}.",
            param_hint=option,
        )
    return values


def _grid_options(cv, alphas, n_alphas, l1_ratios):
    """``(alphas or n_alphas, l1_ratios)`` for ``--cv``; refuses them without it."""
    options = (("--alphas", alphas), ("--n-alphas", n_alphas), ("--l1-ratios", l1_ratios))
    given = [name for name, value in options if value is not None]
    if cv is None:
        if given:
            raise click.UsageError(f"{given[0]} applies only with --cv N.")
        return None
    if alphas is not None and n_alphas is not None:
        raise click.UsageError("--alphas and --n-alphas exclude each other.")
    grid = 30 if n_alphas is None else n_alphas
    if alphas is not None:
        grid = _numbers(alphas, "--alphas", 0, math.inf, low_open=True)
    ratios = [1.0] if l1_ratios is None else _numbers(l1_ratios, "--l1-ratios", 0, 1, False)
    return grid, ratios


def _check_penalty_options(alpha, l1_ratio, solver, cv, *, checkpoint, standardize):
    """Usage errors (exit code 2) for options that an L1 or cross-validated fit cannot take."""
    ctx = click.get_current_context()

    def given(name):
        return ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT

    if cv is not None:
        for name, option, instead in (
            ("alpha", "--alpha", "give the values to try with --alphas or --n-alphas"),
            ("l1_ratio", "--l1-ratio", "give the values to try with --l1-ratios"),
        ):
            if given(name):
                raise click.UsageError(f"{option} and --cv exclude each other: {instead}.")
        for name, option in (
            ("checkpoint", "--checkpoint"),
            ("standardize", "--standardize"),
            ("learning_rate", "--learning-rate"),
        ):
            if given(name):
                raise click.UsageError(f"{option} does not apply with --cv.")
        if solver not in ("auto", "newton-cd"):
            raise click.BadParameter(
                f"--cv fits with newton-cd; got {solver!r}.", param_hint="--solver"
            )
        return
    uses_cd = solver == "newton-cd" or (solver == "auto" and l1_ratio > 0)
    if l1_ratio > 0 and not uses_cd:
        raise click.BadParameter(
            f"{solver!r} handles only the L2 penalty; --l1-ratio {l1_ratio:g} needs "
            "newton-cd (or auto).",
            param_hint="--solver",
        )
    if uses_cd and not alpha > 0:
        raise click.BadParameter(
            f"newton-cd (used for --l1-ratio > 0) needs alpha > 0; got {alpha:g}.",
            param_hint="--alpha",
        )
    if uses_cd and checkpoint is not None:
        raise click.UsageError(
            "--checkpoint does not apply to newton-cd (used for --l1-ratio > 0), which writes "
            "no checkpoints."
        )


def _fit_cv(dataset, data, output, guard, cv, grid, params, metadata, quiet):
    """``fit --cv``: SoftmaxRegressionCV on the rows gathered into memory, then the path."""
    import numpy as np

    from softreg._cv import SoftmaxRegressionCV, cv_summary
    from softreg._data_io import DataError
    from softreg._gather import gathered_arrays
    from softreg._model_io import save_model

    X, y, weight, names = gathered_arrays(dataset, None, None, "softreg fit --cv", copies=1)
    guard.check()
    alphas, l1_ratios = grid
    model = SoftmaxRegressionCV(alphas=alphas, l1_ratios=l1_ratios, cv=cv, **params)
    try:
        model.fit(X, y, weight)
        guard.check()
        section = cv_summary(model, X, y, weight)
    except _user_errors():
        raise
    except ValueError as exc:
        raise DataError(data, str(exc)) from exc
    estimator = model.estimator_
    if names is not None:
        estimator.feature_names_in_ = np.asarray(names, dtype=object)
    metadata = {**metadata, "n_samples": int(X.shape[0])}
    save_model(estimator, output, metadata=metadata, cross_validation=section)
    _finish_fit(estimator, output, quiet, section)


def _cv_summary_line(section):
    """The chosen alpha and l1-ratio and their cross-validated log-loss."""
    from softreg._report_sparse import chosen_score

    mean, std = chosen_score(section)
    return (
        f"Cross-validation ({section['n_folds']} folds): alpha {section['alpha']:.6g}, "
        f"l1-ratio {section['l1_ratio']:g}, log-loss {mean:.6g} ± {std:.2g}."
    )


def _not_converged_advice(estimator, output):
    """Why a fit stopped uncertified, and the options that would change that."""
    if estimator.alpha > 0:
        short = (
            f"its certified gap bound {estimator.optimality_gap_bound_:.3g} is above --tol × "
            f"objective = {estimator.tol_ * abs(estimator.objective_):.3g}"
        )
    else:
        short = f"a gradient entry is above --tol = {estimator.tol_:g}"
    if estimator.n_iter_ >= estimator.max_iter:
        change = f"raise --max-iter (this fit used all {estimator.max_iter} iterations)"
    else:
        change = f"raise --tol ({estimator.tol_:g} is finer than the arithmetic could certify here)"
    return (
        f"{output} was written, but {short}. To converge: {change}, standardise the "
        f"features (mean 0, variance 1), or try another --solver. Exit code "
        f"{EXIT_NOT_CONVERGED}."
    )


def _checkpoint(path, dataset, data, options):
    """The checkpoint of a fit: its fingerprint names the data files (size, modification
    time, hash of the first and last MiB) and the column options."""
    from softreg._checkpoint import Checkpoint
    from softreg._file_cache import source_signature

    files = getattr(dataset, "paths", None) or (data,)
    fingerprint = {
        "data_files": [[os.path.abspath(f), *source_signature(f)] for f in files],
        "column_options": options,
    }
    return Checkpoint(path, fingerprint)


def _fit_summary(estimator, output):
    status = "converged" if estimator.converged_ else "did NOT converge"
    return (
        f"Wrote {output}: {len(estimator.classes_)} classes, {estimator.n_features_in_} "
        f"features; {estimator.solver_} {status} in {estimator.n_iter_} iterations, objective "
        f"{estimator.objective_:.10g}, certified gap bound {estimator.optimality_gap_bound_:.2e}."
    )


# --------------------------------------------------------------------------------------------
# predict, evaluate, report


def _data_columns(data, data_format):
    """The named columns of DATA, read without parsing rows (None where there are none)."""
    from softreg._data_io import column_names, import_optional
    from softreg._files import open_dataset

    if data_format == "npy":
        return None
    if data_format == "parquet" and (os.path.isdir(data) or glob.has_magic(data)):
        pa_dataset = import_optional("pyarrow.dataset", "io", "reading Parquet files")
        return pa_dataset.dataset(open_dataset(data, format="parquet").paths).schema.names
    return column_names(data, format=data_format)


def _training_columns(header, present, target, sample_weight, exclude):
    """The training target and weight columns still in a file with columns ``present``:
    they are not features (unless the model was trained on them, or they are asked for)."""
    names = header["feature_names"]
    recorded = (
        header["metadata"].get("target_column"),
        header["metadata"].get("sample_weight_column"),
    )
    return [
        column
        for column in recorded
        if column in (present or ())
        and column not in (target, sample_weight, *exclude)
        and (names is None or column not in names)
    ]


def _check_feature_count(data, n_features, header):
    """Refuse DATA whose feature count differs from the model's (features matched by position)."""
    from softreg._data_io import DataError

    if n_features != header["n_features"]:
        unnamed = "the model" if header["feature_names"] is None else "the data"
        raise DataError(
            data,
            f"has {n_features} feature columns; the model was trained on "
            f"{header['n_features']} (matched by position, as {unnamed} has no feature names).",
        )


def _open_for_model(
    loaded, data, data_format, ignore, guard, cache_dir, target=None, sample_weight=None
):
    """Open DATA for a loaded model: features matched by name, the training target ignored."""
    from softreg._data_io import DataError, _select_features

    header = loaded.header
    names = header["feature_names"]
    data_format = _data_format(data, data_format)
    exclude = _names(ignore)
    if data_format == "svmlight":
        # open_dataset refuses column options for svmlight files, with a message saying why.
        for value, option in ((target, "target"), (sample_weight, "sample_weight")):
            if value is not None:
                raise DataError(
                    data,
                    "svmlight files hold the label first on each line and have no column names, "
                    f"so `{option}` does not apply; got {value!r}.",
                )
        dataset = _open(data, data_format, guard, cache_dir=cache_dir)
        if dataset.n_features > header["n_features"]:
            raise DataError(
                data,
                f"has feature indices up to {dataset.n_features - 1}; the model was trained on "
                f"{header['n_features']} features.",
            )
        return dataset
    present = _data_columns(data, data_format)
    exclude += _training_columns(header, present, target, sample_weight, exclude)
    by_name = names is not None and present is not None
    if by_name:  # names a missing column, or one the model was not trained on
        _select_features(data, present, target, names, exclude, sample_weight, strict=True)
    dataset = _open(
        data,
        data_format,
        guard,
        target=target,
        sample_weight=sample_weight,
        features=names if by_name else None,
        exclude=exclude,
        cache_dir=cache_dir,
    )
    _check_feature_count(data, dataset.n_features, header)
    return dataset


def _model_batches(loaded, dataset, guard):
    """``(block, X)`` per batch of DATA: ``X`` as the model takes it (named, full width)."""
    import scipy.sparse as sp

    names = loaded.header["feature_names"]
    n_features = loaded.header["n_features"]
    for block in dataset.batches():
        X = block.X
        if sp.issparse(X) and X.shape[1] < n_features:  # svmlight: trailing zero columns
            X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], n_features))
        yield block, _as_model_input(X, names)
        guard.check()


def _classifier(loaded, model, command):
    from softreg._model_io import ModelFileError

    if loaded.header["estimator"] != "SoftmaxRegression":
        raise ModelFileError(
            model,
            f"holds a {loaded.header['estimator']}; `softreg {command}` needs a "
            "SoftmaxRegression classifier.",
        )
    return loaded.estimator


@main.command(short_help="Predict labels or class probabilities.")
@click.argument("model", type=_MODEL_PATH)
@click.argument("data", type=_DATA_PATH)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="CSV or Parquet file to write (default: CSV on standard output).",
)
@click.option("--proba", is_flag=True, help="Add a column proba_LABEL per class.")
@click.option("--log-proba", is_flag=True, help="Add a column log_proba_LABEL per class.")
@click.option("--ignore", metavar="COLUMNS", multiple=True, help="Columns that are not features.")
@click.option("--format", "data_format", type=click.Choice(_FORMATS), help="Data file format.")
@_stream_options
@_command
def predict(model, data, output, proba, log_proba, ignore, data_format, memory_limit, cache_dir):
    """Predict labels (and optionally class probabilities) for the rows of DATA.

    Writes a column 'prediction', plus proba_LABEL / log_proba_LABEL columns when asked,
    one row per input row, in input order. Features are matched by name; a column the model
    was not trained on is an error (leave it out with --ignore), except the training target
    and sample-weight columns, which are skipped. DATA is streamed: the output is written
    block by block as the rows are predicted, to a temporary file renamed onto --output
    when complete (no partial file is left on error).
    """
    import numpy as np

    from softreg._data_io import DataError, guess_format
    from softreg._model_io import read_model_file
    from softreg._writers import TableWriter, csv_lines

    if output is not None:
        try:
            output_format = guess_format(output)
        except DataError as exc:
            raise click.BadParameter(str(exc), param_hint="--output") from None
        if output_format not in ("csv", "parquet"):
            raise click.BadParameter(
                f"{output}: predictions are written as CSV or Parquet.", param_hint="--output"
            )
    loaded = read_model_file(model)
    if (proba or log_proba) and loaded.header["estimator"] != "SoftmaxRegression":
        raise click.UsageError("--proba and --log-proba need a SoftmaxRegression model.")
    guard = _memory_guard(memory_limit)
    dataset = _open_for_model(loaded, data, data_format, ignore, guard, cache_dir)
    estimator = loaded.estimator
    labels = [str(label) for label in getattr(estimator, "classes_", np.array([])).tolist()]

    def columns(X):
        result = {"prediction": estimator.predict(X)}
        # Each from its own method, so the numbers are the Python API's to the last bit.
        if proba:
            P = estimator.predict_proba(X)
            result.update({f"proba_{c}": P[:, k] for k, c in enumerate(labels)})
        if log_proba:
            log_P = estimator.predict_log_proba(X)
            result.update({f"log_proba_{c}": log_P[:, k] for k, c in enumerate(labels)})
        return result

    batches = _model_batches(loaded, dataset, guard)
    if output is None:
        for index, (_, X) in enumerate(batches):
            click.echo(csv_lines(columns(X), header=index == 0), nl=False)
        return
    with TableWriter(output) as writer:
        for _, X in batches:
            writer.write(columns(X))
        if writer.n_rows == 0:
            raise DataError(data, "has no rows to predict.")


def _evaluation(model, data, target, sample_weight, ignore, data_format, command, guard, cache_dir):
    """Stream DATA through MODEL: ``(loaded model, metrics accumulator)``."""
    from softreg._data_io import DataError
    from softreg._metrics import MetricsAccumulator
    from softreg._model_io import read_model_file

    loaded = read_model_file(model)
    estimator = _classifier(loaded, model, command)
    data_format = _data_format(data, data_format)
    if data_format in ("csv", "parquet"):
        target = target or loaded.header["metadata"].get("target_column")
        if target is None:
            raise click.UsageError(
                f"Missing option '--target': {_KIND[data_format]} data needs a label column."
            )
    dataset = _open_for_model(
        loaded, data, data_format, ignore, guard, cache_dir, target, sample_weight
    )
    if dataset.target_ndim != 1:
        raise _no_labels(data, data_format)
    metrics = MetricsAccumulator(estimator.classes_, weighted=sample_weight is not None)
    for block, X in _model_batches(loaded, dataset, guard):
        try:
            metrics.add(block.target, estimator.predict_log_proba(X), block.sample_weight)
        except DataError:
            raise
        except ValueError as exc:
            raise DataError(data, str(exc)) from exc
    if metrics.n_samples == 0:
        raise DataError(data, "has no rows to evaluate.")
    return loaded, metrics


_TARGET_OPTION = click.option(
    "-t",
    "--target",
    metavar="COLUMN",
    help="The label column (default: the one the model was trained with).",
)
_WEIGHT_OPTION = click.option(
    "--sample-weight", metavar="COLUMN", help="Column of row weights for every metric."
)


@main.command(short_help="Evaluate a model on labelled data.")
@click.argument("model", type=_MODEL_PATH)
@click.argument("data", type=_DATA_PATH)
@_TARGET_OPTION
@_WEIGHT_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--ignore", metavar="COLUMNS", multiple=True, help="Columns that are not features.")
@click.option("--format", "data_format", type=click.Choice(_FORMATS), help="Data file format.")
@_stream_options
@_command
def evaluate(
    model, data, target, sample_weight, as_json, ignore, data_format, memory_limit, cache_dir
):
    """Evaluate MODEL on labelled DATA.

    Accuracy, log-loss in nats and bits, perplexity, mean predictive entropy, expected
    calibration error (top label, 15 equal-width bins), per-class precision, recall and F1,
    the confusion matrix and the ten likeliest mislabelled rows (highest surprisal). JSON
    writes non-finite numbers as the strings "inf" and "nan". DATA is streamed: the metrics
    are sums over blocks of rows.
    """
    from softreg._report import format_metrics, json_ready

    guard = _memory_guard(memory_limit)
    _, accumulated = _evaluation(
        model, data, target, sample_weight, ignore, data_format, "evaluate", guard, cache_dir
    )
    metrics = accumulated.result()
    if as_json:
        click.echo(json.dumps(json_ready(metrics), indent=2, allow_nan=False))
    else:
        click.echo(format_metrics(metrics, model_path=model, data_path=data), nl=False)


@main.command(short_help="Write a self-contained HTML report.")
@click.argument("model", type=_MODEL_PATH)
@click.argument("data", type=_DATA_PATH)
@_TARGET_OPTION
@_WEIGHT_OPTION
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write, e.g. report.html.",
)
@click.option("--ignore", metavar="COLUMNS", multiple=True, help="Columns that are not features.")
@click.option("--format", "data_format", type=click.Choice(_FORMATS), help="Data file format.")
@_stream_options
@click.option("-q", "--quiet", is_flag=True, help="Do not print the name of the written file.")
@_command
def report(
    model,
    data,
    target,
    sample_weight,
    output,
    ignore,
    data_format,
    memory_limit,
    cache_dir,
    quiet,
):
    """Write a self-contained HTML evaluation report of MODEL on labelled DATA.

    One file, no network: training curves (objective, certified gap bound), reliability
    diagram, confusion matrix, surprisal distribution with the likeliest mislabelled rows, and
    the tables of `softreg evaluate`. DATA is streamed, as for `softreg evaluate`.
    """
    from softreg._model_io import atomic_write
    from softreg._report import render_html

    guard = _memory_guard(memory_limit)
    loaded, accumulated = _evaluation(
        model, data, target, sample_weight, ignore, data_format, "report", guard, cache_dir
    )
    page = render_html(
        accumulated.result(),
        surprisal=accumulated.surprisal_histogram(),
        history=loaded.estimator.history_,
        model=loaded.header,
        model_path=model,
        data_path=data,
        coef=loaded.estimator.coef_,
    )
    with atomic_write(output) as handle:
        handle.write(page.encode())
    if not quiet:
        click.echo(f"Wrote {output}", err=True)


# --------------------------------------------------------------------------------------------
# update


# `update` reads DATA whole (its passes shuffle every row), unlike the streamed commands.


def _read_for_model(loaded, data, data_format, ignore, target=None, sample_weight=None):
    """Read DATA for a loaded model: features matched by name, the training target ignored."""
    from softreg._data_io import column_names, read_table

    header = loaded.header
    names = header["feature_names"]
    data_format = _data_format(data, data_format)
    exclude = _names(ignore)
    if data_format == "svmlight":
        # read_table refuses column options for svmlight files, with a message saying why.
        return read_table(
            data,
            target=target,
            sample_weight=sample_weight,
            exclude=exclude,
            format=data_format,
            n_features=header["n_features"],
        )
    present = column_names(data, format=data_format)
    exclude += _training_columns(header, present, target, sample_weight, exclude)
    by_name = names is not None and present is not None
    table = read_table(
        data,
        target=target,
        sample_weight=sample_weight,
        features=names if by_name else None,
        exclude=exclude,
        format=data_format,
        strict_features=by_name,
    )
    _check_feature_count(data, table.n_features, header)
    return table


def _model_input(loaded, table):
    names = loaded.header["feature_names"]
    return _as_model_input(table.X, names)


def _labelled_table(loaded, data, target, sample_weight, ignore, data_format):
    """Read labelled DATA for a loaded model; the target defaults to the training one."""
    from softreg._data_io import DataError

    data_format = _data_format(data, data_format)
    if data_format in ("csv", "parquet"):
        target = target or loaded.header["metadata"].get("target_column")
        if target is None:
            raise click.UsageError(
                f"Missing option '--target': {_KIND[data_format]} data needs a label column."
            )
    table = _read_for_model(loaded, data, data_format, ignore, target, sample_weight)
    if table.y is None:
        raise DataError(data, "has no labels: expected an array 'y' or give --target ARRAY.")
    return table


def _take_rows(X, order):
    return X.iloc[order] if hasattr(X, "iloc") else X[order]


@main.command(short_help="Update a saved model with new rows (online learning).")
@click.argument("model", type=_MODEL_PATH)
@click.argument("data", type=_DATA_PATH)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="NEW_MODEL",
    help="The model file to write (may be MODEL itself: it is replaced atomically).",
)
@click.option(
    "--passes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    metavar="N",
    help="Passes over DATA, each in a new random row order.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the passes' row orders."
)
@_TARGET_OPTION
@_WEIGHT_OPTION
@click.option("--ignore", metavar="COLUMNS", multiple=True, help="Columns that are not features.")
@click.option(
    "--format", "data_format", type=click.Choice(_TABLE_FORMATS), help="Data file format."
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors and warnings.")
@_command
def update(model, data, output, passes, seed, target, sample_weight, ignore, data_format, quiet):
    """Update MODEL with the labelled rows of DATA and write NEW_MODEL.

    Online learning (SoftmaxRegression.partial_fit): each pass takes one stochastic step
    per mini-batch of 256 rows, starting from MODEL's coefficients; labels must be among
    MODEL's classes and features match by name as for predict. The new file records the
    rows seen in all (training.n_samples_seen), the steps taken (training.n_iter, solver
    "online-adam") and, in metadata.updates, one [data file, rows, passes] entry per update.
    Nothing is written if DATA does not fit the model.
    """
    import numpy as np

    from softreg._data_io import DataError
    from softreg._model_io import read_model_file, save_model

    loaded = read_model_file(model)
    estimator = _classifier(loaded, model, "update")
    table = _labelled_table(loaded, data, target, sample_weight, ignore, data_format)
    X = _model_input(loaded, table)
    rng = np.random.default_rng(seed)
    try:
        for _ in range(passes):
            order = rng.permutation(table.n_samples)
            weight = None if table.sample_weight is None else table.sample_weight[order]
            estimator.partial_fit(_take_rows(X, order), table.y[order], sample_weight=weight)
    except ValueError as exc:
        raise DataError(data, str(exc)) from exc
    metadata = dict(loaded.header["metadata"])
    record = [os.path.basename(data), table.n_samples, passes]
    metadata["updates"] = [*metadata.get("updates", []), record]
    save_model(estimator, output, metadata=metadata)
    if not quiet:
        click.echo(
            f"Wrote {output}: {table.n_samples} rows × {passes} passes from {data}; "
            f"{estimator.n_samples_seen_} rows seen in all, {estimator.n_iter_} online steps.",
            err=True,
        )


# --------------------------------------------------------------------------------------------
# inspect, demo


@main.command(name="inspect", short_help="Show what a model file holds.")
@click.argument("model", type=_MODEL_PATH)
@click.option("--json", "as_json", is_flag=True, help="Print the file header as JSON.")
@_command
def inspect_model(model, as_json):
    """Show what a model file holds: classes, features, hyper-parameters, training summary.

    A sparse model (--l1-ratio above 0, or --cv) also shows its non-zero coefficients per
    class and the features it keeps; a cross-validated one the grid, the chosen alpha and
    l1-ratio and their cross-validated log-loss.

    The file is fully checked (format version, checksums, shapes) before anything is shown.
    """
    from softreg._model_io import read_model_file
    from softreg._report import format_model

    loaded = read_model_file(model)
    if as_json:
        click.echo(json.dumps(loaded.header, indent=2, ensure_ascii=False))
    else:
        click.echo(format_model(loaded.header, loaded.estimator.coef_), nl=False)


@main.command(short_help="Fit, evaluate and report on the bundled digits.")
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    default="softreg-demo",
    show_default=True,
    help="Directory for the data, model and report files.",
)
@click.option("--kernels", is_flag=True, help="Also print the notes' worked kernel examples.")
@_command
def demo(out_dir, kernels):
    """Fit, evaluate and report on scikit-learn's bundled digits (about 5 seconds).

    Writes digits-train.csv, digits-test.csv, digits.softreg and digits-report.html into
    --out-dir, so that the other commands can be tried on them.
    """
    from softreg._demo import run_demo

    run_demo(out_dir, echo=click.echo, kernels=kernels)
