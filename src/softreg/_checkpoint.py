"""Solver checkpoints: the state of a run saved after every iteration, and resumed from.

A long fit (tens of passes over a file larger than memory) should survive being killed. With a
:class:`Checkpoint`, :func:`softreg._solvers.minimize` writes the solver's state after every
recorded iteration and, when the file already exists, starts from it instead of from ``θ₀``.

Conventions
-----------
* The file is a NumPy ``.npz`` archive (read with ``allow_pickle=False``): the iterate
  ``theta``, the history arrays, and a JSON header holding the format version, the solver, the
  iteration number, ``R(θ)``, solver-specific scalars and the *fingerprint*.
* Every save goes through :func:`softreg._model_io.atomic_write` (temporary file in the same
  directory, flush, fsync, rename, fsync of the directory): a ``kill -9`` at any moment leaves
  either the previous checkpoint or the new one, never a mix, so at most one iteration is lost.
  A kill during a save may leave a ``.NAME.*.tmp`` file next to it; it is never read.
* The fingerprint is a flat dict of JSON values describing the problem: the hyper-parameters
  that change the optimum (not ``tol`` or ``max_iter``, so a resumed run may ask for more),
  the data's shape and classes, and whatever the caller adds (the command line adds the data
  file's size, modification time and a hash of its first and last MiB, and the column
  choices). A checkpoint whose fingerprint differs is refused, naming the first difference.
  On resume the solver also re-evaluates ``R`` at the saved iterate and refuses the checkpoint
  when it differs from the saved value beyond rounding: the data changed.
* What resumes exactly: gradient descent (the iterate and its Barzilai–Borwein step) and
  Newton-CG (stateless beyond the iterate) continue as if never interrupted. L-BFGS restarts
  from the saved iterate with an empty memory (SciPy does not expose its curvature pairs): the
  same optimum, reached in a few more iterations.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Checkpoint", "CheckpointError", "SolverState"]

_FORMAT = "softreg-checkpoint"
_VERSION = 1
_HISTORY = ("objective", "gradient_norm", "gap_bound", "time")
# R re-evaluated at the saved iterate must match the saved value to this relative tolerance:
# the same data give the same sums up to the order of BLAS's partial sums (a few ulps).
_RESUME_RTOL = 1e-10


class CheckpointError(ValueError):
    """A checkpoint file cannot be resumed from; the message names the file and why."""

    def __init__(self, path, message):
        super().__init__(f"{path}: {message}")
        self.path = str(path)


@dataclass
class SolverState:
    """What a solver needs to continue: the iterate, the history so far, solver scalars."""

    solver: str
    iteration: int
    theta: np.ndarray
    objective: float
    history: dict
    extra: dict = field(default_factory=dict)


class Checkpoint:
    """A checkpoint file: :meth:`load` the saved state (if any), :meth:`save` a new one.

    Parameters
    ----------
    path : str or path-like
        The checkpoint file; created on the first save.
    fingerprint : dict, optional
        JSON values identifying the problem (see the module's conventions); the estimator
        adds its hyper-parameters and the data's shape with :meth:`with_fingerprint`.

    Examples
    --------
    >>> import tempfile
    >>> checkpoint = Checkpoint(Path(tempfile.mkdtemp()) / "fit.ckpt", {"alpha": 0.1})
    >>> checkpoint.load() is None
    True
    >>> history = {name: np.array([1.0]) for name in _HISTORY}
    >>> checkpoint.save(SolverState("gd", 0, np.zeros(3), 1.0, history, {"step": 0.5}))
    >>> checkpoint.load().extra
    {'step': 0.5}
    >>> Checkpoint(checkpoint.path, {"alpha": 0.2}).load()
    Traceback (most recent call last):
    ...
    softreg._checkpoint.CheckpointError: ...fit.ckpt: was written for a different problem:
    alpha is 0.1 there and 0.2 here. Delete the file to start afresh, or give another
    checkpoint file.
    """

    def __init__(self, path, fingerprint=None):
        self.path = Path(path)
        self.fingerprint = dict(fingerprint or {})

    def with_fingerprint(self, **values) -> Checkpoint:
        """A checkpoint on the same file whose fingerprint also holds ``values``."""
        return Checkpoint(self.path, {**_json_values(values), **self.fingerprint})

    def save(self, state: SolverState) -> None:
        """Write ``state`` atomically (temporary file, fsync, rename)."""
        from softreg._model_io import atomic_write

        header = {
            "format": _FORMAT,
            "version": _VERSION,
            "solver": state.solver,
            "iteration": int(state.iteration),
            "objective": float(state.objective),
            "extra": _json_values(state.extra),
            "fingerprint": self.fingerprint,
        }
        arrays = {f"history_{name}": np.asarray(state.history[name]) for name in _HISTORY}
        with atomic_write(self.path) as handle:
            np.savez(handle, header=np.array(json.dumps(header)), theta=state.theta, **arrays)

    def load(self) -> SolverState | None:
        """The saved state, or None when the file does not exist.

        Raises
        ------
        CheckpointError
            When the file is not a readable softreg checkpoint, or was written for another
            problem (its fingerprint differs).
        """
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                header = json.loads(str(archive["header"]))
                if not isinstance(header, dict) or header.get("format") != _FORMAT:
                    raise CheckpointError(
                        self.path,
                        "is not a softreg checkpoint; delete it or give another checkpoint file.",
                    )
                if header.get("version") != _VERSION:
                    raise CheckpointError(
                        self.path,
                        f"has checkpoint format version {header.get('version')!r}; this softreg "
                        f"writes version {_VERSION}. Delete it to start afresh.",
                    )
                theta = np.array(archive["theta"], dtype=np.float64)
                history = {name: np.array(archive[f"history_{name}"]) for name in _HISTORY}
        except CheckpointError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise CheckpointError(
                self.path,
                f"is not a readable softreg checkpoint ({exc}); delete it to start afresh.",
            ) from None
        difference = _first_difference(header["fingerprint"], self.fingerprint)
        if difference is not None:
            raise CheckpointError(
                self.path,
                f"was written for a different problem: {difference}. Delete the "
                "file to start afresh, or give another checkpoint file.",
            )
        return SolverState(
            header["solver"],
            header["iteration"],
            theta,
            header["objective"],
            history,
            header["extra"],
        )

    def check_resumed(self, state: SolverState, objective: float) -> None:
        """Refuse a resume whose ``R(θ)`` differs from the saved one: the data changed."""
        if not abs(objective - state.objective) <= _RESUME_RTOL * abs(state.objective):
            raise CheckpointError(
                self.path,
                f"the objective at its saved coefficients was {state.objective!r} "
                f"and is {objective!r} on this data: the data changed since the checkpoint was "
                "written. Delete the file to start afresh.",
            )


def _json_values(values: dict) -> dict:
    """``values`` as JSON data (NumPy scalars and arrays to Python), keys in a fixed order."""
    return json.loads(json.dumps(values, sort_keys=True, default=_to_json))


def _to_json(value):
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in a checkpoint header")


def _first_difference(saved: dict, current: dict) -> str | None:
    for key in sorted(set(saved) | set(current)):
        if saved.get(key) != current.get(key):
            there = "absent" if key not in saved else f"{saved[key]!r}"
            here = "absent" if key not in current else f"{current[key]!r}"
            return f"{key} is {there} there and {here} here"
    return None
