"""Solvers for a smooth convex objective, sharing one monitor that records and stops.

Every solver sees the objective only through ``loss_gradient(θ) -> Evaluation`` and, for
Newton-CG, ``hessp(θ) -> (v ↦ ∇²R(θ) v)``. The :class:`Monitor` records per iteration the
objective, ``‖∇R‖``, the certified gap bound and the wall time, and decides when to stop:

* ``alpha > 0``: stop when the bound on ``R(θ) - R*`` is at most ``tol · |R(θ)|``;
* ``alpha = 0``: no bound exists; stop when ``max_j |∂R/∂θ_j| ≤ tol``.

With a :class:`~softreg._checkpoint.Checkpoint`, the monitor also saves the solver's state
after every recorded iterate, and :func:`minimize` resumes from a saved state (gradient
descent and Newton-CG exactly, L-BFGS from the iterate with its memory lost; see
:mod:`softreg._checkpoint`). The iterations before the interruption count towards
``max_iter`` and stay in the history.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize

from ._checkpoint import SolverState
from ._sources import CountingSource
from ._threads import scipy_blas_single_thread

# Armijo sufficient-decrease constant: accept a step when R drops by at least this fraction of
# what the linear model predicts (Nocedal & Wright, 2nd ed., eq. 3.4).
_ARMIJO = 1e-4
_MAX_BACKTRACKS = 60
_STALLED = (
    "the objective stopped changing beyond rounding error: the limit of floating-point "
    "precision was reached"
)


@dataclass
class IterationInfo:
    """What a callback sees after each iteration.

    ``passes`` counts the passes over the data since the run started, a subsampled pass
    (Newton-CG's Hessian) counting as the fraction of blocks it visited, and ``rows`` the rows
    they read; both are None when the run does not count them (no callback).
    """

    iteration: int
    objective: float
    gradient_norm: float
    gap_bound: float
    time: float
    passes: float | None = None
    rows: float | None = None


@dataclass
class Monitor:
    """Records the history of a run and applies the stopping rule."""

    tol: float
    strongly_convex: bool
    callback: object = None
    polish_below: float = math.inf  # retry an intercept polish only below this coef_bound
    start: float = field(default_factory=time.perf_counter)
    objective: list = field(default_factory=list)
    gradient_norm: list = field(default_factory=list)
    gap_bound: list = field(default_factory=list)
    time: list = field(default_factory=list)
    counter: CountingSource | None = None
    checkpoint: object = None
    solver: str = ""
    # Solver scalars saved with each checkpoint (e.g. gradient descent's next trial step).
    extra: dict = field(default_factory=dict)
    resumed: SolverState | None = None  # the checkpoint this run continues, if any

    def record(self, evaluation, theta) -> bool:
        """Append the iterate ``theta``; return True when it satisfies the stopping rule."""
        elapsed = time.perf_counter() - self.start
        self.objective.append(evaluation.objective)
        self.gradient_norm.append(evaluation.gradient_norm)
        self.gap_bound.append(evaluation.gap_bound)
        self.time.append(elapsed)
        if self.callback is not None:
            counted = self.counter is not None
            self.callback(
                IterationInfo(
                    len(self.objective) - 1,
                    evaluation.objective,
                    evaluation.gradient_norm,
                    evaluation.gap_bound,
                    elapsed,
                    self.counter.passes if counted else None,
                    self.counter.rows if counted else None,
                )
            )
        if self.checkpoint is not None:
            self.checkpoint.save(
                SolverState(
                    self.solver,
                    len(self.objective) - 1,
                    theta,
                    evaluation.objective,
                    self.history(),
                    {"polish_below": self.polish_below, **self.extra},
                )
            )
        return self.converged(evaluation)

    def restore(self, state: SolverState) -> None:
        """Continue the history (and clock) of a run saved in ``state``."""
        for name in ("objective", "gradient_norm", "gap_bound", "time"):
            getattr(self, name)[:] = np.asarray(state.history[name]).tolist()
        self.start = time.perf_counter() - (self.time[-1] if self.time else 0.0)
        self.polish_below = state.extra.get("polish_below", math.inf)
        self.extra.update({k: v for k, v in state.extra.items() if k != "polish_below"})

    @property
    def iteration(self) -> int:
        """The number of the last recorded iterate (0 is the starting point)."""
        return len(self.objective) - 1

    def converged(self, evaluation) -> bool:
        if self.strongly_convex:
            return evaluation.gap_bound <= self.tol * abs(evaluation.objective)
        return float(np.max(np.abs(evaluation.gradient), initial=0.0)) <= self.tol

    def stalled(self, window: int) -> bool:
        """True when the last ``window`` iterations improved neither R nor the certificate.

        R counts as unchanged when it moved by less than a few rounding errors of float64
        (where the block sums are accumulated); the certificate (the gap bound, or the
        largest gradient entry when ``alpha = 0``) counts as unchanged when its best value
        did not drop by 0.1 %. Past that point the iterates wander in rounding noise.
        """
        if len(self.objective) <= window:
            return False
        new, old = self.objective[-1], self.objective[-1 - window]
        if abs(old - new) > 8 * np.finfo(np.float64).eps * abs(new):
            return False
        measure = self.gap_bound if self.strongly_convex else self.gradient_norm
        return min(measure[-window:]) >= 0.999 * min(measure[:-window])

    def history(self) -> dict:
        return {
            "objective": np.asarray(self.objective),
            "gradient_norm": np.asarray(self.gradient_norm),
            "gap_bound": np.asarray(self.gap_bound),
            "time": np.asarray(self.time),
        }


@dataclass
class Result:
    """The outcome of a run: final point, its evaluation and why the run stopped."""

    theta: np.ndarray
    evaluation: object
    n_iter: int
    converged: bool
    message: str
    history: dict


def _armijo(objective, theta, evaluation, direction, step):
    """Backtrack from ``step`` until R(θ + s d) ≤ R(θ) + c s ∇Rᵀd; None if no decrease exists."""
    slope = float(evaluation.gradient @ direction)
    if not slope < 0:
        return None, None, None
    for _ in range(_MAX_BACKTRACKS):
        candidate = theta + step * direction
        if np.array_equal(candidate, theta):  # the step fell below one ulp of every entry
            break
        trial = objective.loss_gradient(candidate)
        if trial.objective <= evaluation.objective + _ARMIJO * step * slope:
            return candidate, trial, step
        step *= 0.5
    return None, None, None


def _polish(objective, theta, evaluation, monitor, *, force=False):
    """Try :meth:`Objective.polish_intercept`; return ``(θ, evaluation)`` if it pays.

    During a run it is tried when the part of the bound that only ``W`` can reduce,
    ``‖∇_W R‖²/(2α)``, is already below a quarter of the target, and kept only if it
    certifies; at the end of a run that did not converge (``force``), it is kept whenever
    it lowers the bound.
    """
    if not (monitor.strongly_convex and objective.can_polish_intercept()):
        return None
    target = monitor.tol * abs(evaluation.objective)
    if not force and not evaluation.coef_bound <= min(target / 4, monitor.polish_below):
        return None
    monitor.polish_below = evaluation.coef_bound / 10
    polished = objective.polish_intercept(theta)
    # No test on R itself: the bound at the polished point certifies it whatever R did, and
    # near the optimum R moves by less than the rounding of its own sum.
    trial = objective.loss_gradient(polished)
    if monitor.converged(trial) or (force and trial.gap_bound < evaluation.gap_bound):
        return polished, trial
    return None


def _finish_with_polish(objective, theta, evaluation, monitor, iteration):
    """Polish a converging run's iterate; a :class:`Result` if that certifies, else None."""
    polished = _polish(objective, theta, evaluation, monitor)
    if polished is None:
        return None
    theta, evaluation = polished
    monitor.record(evaluation, theta)
    return Result(theta, evaluation, iteration + 1, True, "converged", monitor.history())


def _begin(objective, theta, monitor):
    """Evaluate the starting point: ``(evaluation, converged)``.

    A fresh run records it as iterate 0; a resumed run has recorded it before the
    interruption, so it is checked against the checkpoint instead (same data, same ``R``).
    """
    evaluation = objective.loss_gradient(theta)
    if monitor.resumed is None:
        return evaluation, monitor.record(evaluation, theta)
    monitor.checkpoint.check_resumed(monitor.resumed, evaluation.objective)
    return evaluation, monitor.converged(evaluation)


_NO_DECREASE = (
    "the line search found no decrease: the objective is at the limit of floating-point precision"
)


def _drive(objective, theta, monitor, *, max_iter, step, stall_window):
    """The loop shared by gradient descent and Newton-CG.

    ``step(θ, evaluation)`` returns the next ``(θ, evaluation)``, or a message saying why no
    step can be taken. After every step the monitor records the iterate and may stop the
    run; the intercept polish may finish it; a run stuck in rounding noise stops.
    """
    evaluation, converged = _begin(objective, theta, monitor)
    if converged:
        return Result(theta, evaluation, monitor.iteration, True, "converged", monitor.history())
    for iteration in range(monitor.iteration + 1, max_iter + 1):
        outcome = step(theta, evaluation)
        if isinstance(outcome, str):
            return Result(theta, evaluation, iteration - 1, False, outcome, monitor.history())
        theta, evaluation = outcome
        if monitor.record(evaluation, theta):
            return Result(theta, evaluation, iteration, True, "converged", monitor.history())
        if iteration < max_iter:  # a polish counts as an iteration
            finished = _finish_with_polish(objective, theta, evaluation, monitor, iteration)
            if finished is not None:
                return finished
        if monitor.stalled(window=stall_window):
            return Result(theta, evaluation, iteration, False, _STALLED, monitor.history())
    n_iter = max(max_iter, monitor.iteration)  # a resumed run may have passed a lower max_iter
    return Result(theta, evaluation, n_iter, False, "max_iter reached", monitor.history())


def gradient_descent(objective, theta, monitor, *, max_iter, learning_rate=None):
    """The notes' update ``θ := θ - η ∇R(θ)``.

    With a float ``learning_rate`` the step is fixed. With ``learning_rate=None`` each step
    is chosen by Armijo backtracking, starting from the Barzilai–Borwein step
    ``η = ‖Δθ‖² / Δθᵀ Δ∇R`` (the inverse of the curvature along the last move), so the
    update stays plain gradient descent while the step adapts to the local curvature.
    """
    # The next trial step lives in the monitor, so that a checkpoint saves it with the iterate.
    monitor.extra.setdefault("trial_step", 1.0)

    def fixed(theta, evaluation):
        new_theta = theta - learning_rate * evaluation.gradient
        new_evaluation = objective.loss_gradient(new_theta)
        # A rise beyond rounding noise (float32 sums included) means the step is too long.
        if not new_evaluation.objective <= evaluation.objective * (1 + 1e-6):
            return (
                f"the objective rose from {evaluation.objective:.6g} to "
                f"{new_evaluation.objective:.6g} with learning_rate={learning_rate}: a step "
                "above 2/L diverges: lower it, or use learning_rate=None (Armijo)"
            )
        return new_theta, new_evaluation

    def armijo(theta, evaluation):
        new_theta, new_evaluation, _ = _armijo(
            objective, theta, evaluation, -evaluation.gradient, monitor.extra["trial_step"]
        )
        if new_theta is None:
            return _NO_DECREASE
        moved = new_theta - theta
        curvature = float(moved @ (new_evaluation.gradient - evaluation.gradient))
        monitor.extra["trial_step"] = (
            float(moved @ moved) / curvature if curvature > 0 else 2 * monitor.extra["trial_step"]
        )
        return new_theta, new_evaluation

    return _drive(
        objective,
        theta,
        monitor,
        max_iter=max_iter,
        step=armijo if learning_rate is None else fixed,
        stall_window=20,
    )


def _conjugate_gradient(hessp, gradient, forcing, max_cg, precondition=None):
    """Approximately solve ``H d = -g`` by CG, stopping at ``‖H d + g‖ ≤ forcing ‖g‖``.

    Truncated Newton (Nocedal & Wright, Algorithm 7.1): a direction of non-positive
    curvature ends the iteration, returning the last descent direction found.
    ``precondition`` (``r ↦ M⁻¹ r``, M symmetric positive definite) makes it preconditioned
    CG (Algorithm 5.3); the stopping test stays on the unpreconditioned residual.
    """
    d = np.zeros_like(gradient)
    residual = -gradient
    search = residual if precondition is None else precondition(residual)
    rz = float(residual @ search)
    threshold = (forcing**2) * float(residual @ residual)
    for _ in range(max_cg):
        Hs = hessp(search)
        curvature = float(search @ Hs)
        if curvature <= 0:
            break
        step = rz / curvature
        d += step * search
        residual = residual - step * Hs
        rr = float(residual @ residual)
        if rr <= threshold:
            break
        z = residual if precondition is None else precondition(residual)
        rz_new = float(residual @ z)
        search = z + (rz_new / rz) * search
        rz = rz_new
    return d if d.any() else -gradient


def _forcing(evaluation, monitor, power=0.5):
    """The relative CG residual a Newton step solves to.

    ``min(0.5, ‖g‖^power)`` tightens as ``‖g‖`` falls, which keeps the convergence
    superlinear (of order 1 + power; Eisenstat & Walker, 1996, allow any forcing that tends
    to zero). Their usual power is 1/2; Newton-CG takes 1/4 where each Hessian-vector
    product costs a full pass (see :func:`newton_cg`). And a step need only bring the
    certificate to the stopping target: a step solved to relative residual η leaves a
    gradient about η times the current one, and the bound scales with ‖g‖², so
    η = sqrt(target / bound) suffices (halved for the model's error): the last CG solves are
    not tightened past what the certificate asks.
    """
    forcing = min(0.5, evaluation.gradient_norm**power)
    if monitor.strongly_convex and 0 < evaluation.gap_bound < math.inf:
        target = monitor.tol * abs(evaluation.objective)
        forcing = max(forcing, 0.5 * math.sqrt(target / evaluation.gap_bound))
    return min(0.5, forcing)


# The forcing's power (see _forcing) when every Hessian-vector product reads every row: the
# slower tightening costs an extra Newton step now and then, but on ill-conditioned data the
# tight late CG solves cost far more products than it. Measured, Hessian-vector products until
# R is within 1e-6 of R* (power 1/2 against 1/4): standardised digits α = 1e-4 243 against
# 131, digits α = 1e-4 108 against 56, letter α = 1e-4 61 against 45; 9-20 either way at
# α = 1e-2. Where the products read a strided subset (500000 × 54 × 7: 1/16 of a pass each),
# the extra Newton step's passes cost more than the products saved (6 Newton steps against
# 5 to 1e-6 there), so the power stays 1/2.
_FULL_PASS_FORCING_POWER = 0.25


def newton_cg(objective, theta, monitor, *, max_iter, precondition=True):
    """Truncated Newton with exact Hessian-vector products and an Armijo line search.

    The forcing term (:func:`_forcing`) makes the inner CG loose far from the optimum and
    tighter near it, giving superlinear convergence (Eisenstat & Walker, 1996), but no tighter
    than the certificate needs. Where the features are ill-conditioned, CG is preconditioned
    by the Kronecker factorisation of the Hessian (:mod:`softreg._preconditioner`). On data
    with far more rows than parameters the Hessian is that of a strided subset of the rows
    (:meth:`Objective.hessian_subsample`; Byrd, Chin, Neveitt & Nocedal, 2011): the steps are
    still Newton steps to a few percent, the gradient, the line search and the certificate
    use every row, and each inner CG iteration costs a fraction of a pass.
    """
    every = objective.hessian_subsample()
    # Without a penalty there is no certificate and the fit stops on ‖g‖ alone, which the
    # looser 1/4 can leave stalled a little above tol at rounding level (seen with numpy 1.26):
    # there the power stays 1/2.
    power = _FULL_PASS_FORCING_POWER if every == 1 and monitor.strongly_convex else 0.5

    def newton(theta, evaluation):
        hessp = objective.hessp(theta, every=every)
        direction = _conjugate_gradient(
            hessp,
            evaluation.gradient,
            _forcing(evaluation, monitor, power),
            max_cg=200,
            precondition=hessp.preconditioner() if precondition else None,
        )
        new_theta, new_evaluation, _ = _armijo(objective, theta, evaluation, direction, 1.0)
        return _NO_DECREASE if new_theta is None else (new_theta, new_evaluation)

    return _drive(objective, theta, monitor, max_iter=max_iter, step=newton, stall_window=5)


def _lbfgsb(fun, theta, callback, max_iter, memory):
    """scipy's L-BFGS-B without bounds, with its own stopping tests switched off."""
    return scipy.optimize.minimize(
        fun,
        theta,
        jac=True,
        method="L-BFGS-B",
        callback=callback,
        options={
            "maxiter": max_iter,
            "maxfun": 20 * max_iter + 20,
            "maxcor": memory,
            "ftol": 0.0,
            "gtol": 0.0,
        },
    )


def lbfgs(objective, theta, monitor, *, max_iter, memory=20):
    """L-BFGS (scipy's L-BFGS-B without bounds), stopped by the shared monitor.

    scipy's own tolerances are set to zero so that only the certificate decides; a line
    search failure at the limit of precision ends the run.
    """
    cache = {}

    def fun(x):
        evaluation = objective.loss_gradient(x)
        cache["x"], cache["evaluation"] = x.copy(), evaluation
        return evaluation.objective, evaluation.gradient

    state = {"converged": False}

    def callback(intermediate_result):
        x = intermediate_result.x
        if "x" in cache and np.array_equal(cache["x"], x):
            evaluation = cache["evaluation"]
        else:
            evaluation = objective.loss_gradient(x)
            cache["x"], cache["evaluation"] = x.copy(), evaluation
        state["theta"], state["evaluation"] = x.copy(), evaluation
        if monitor.record(evaluation, state["theta"]):
            state["converged"] = True
            raise StopIteration
        if monitor.iteration >= max_iter:  # a polish counts as an iteration
            return
        polished = _polish(objective, x, evaluation, monitor)
        if polished is not None:
            state["theta"], state["evaluation"] = polished
            monitor.record(polished[1], polished[0])
            state["converged"] = True
            raise StopIteration

    start, converged = _begin(objective, theta, monitor)
    state["theta"], state["evaluation"] = theta, start
    if converged:
        return Result(theta, start, monitor.iteration, True, "converged", monitor.history())
    remaining = max_iter - monitor.iteration
    if remaining > 0:
        cache["x"], cache["evaluation"] = theta.copy(), start
        with scipy_blas_single_thread():
            result = _lbfgsb(fun, theta, callback, remaining, memory)
    if state["converged"]:
        message = "converged"
    elif monitor.iteration >= max_iter:
        message = "max_iter reached"
    else:
        message = f"L-BFGS stopped early: {result.message}"
    return Result(
        state["theta"],
        state["evaluation"],
        monitor.iteration,
        state["converged"],
        message,
        monitor.history(),
    )


SOLVERS = {"gd": gradient_descent, "lbfgs": lbfgs, "newton-cg": newton_cg}


def minimize(
    objective,
    theta,
    *,
    solver,
    tol,
    max_iter,
    callback=None,
    learning_rate=None,
    checkpoint=None,
):
    """Minimise ``objective`` from ``θ`` with the named solver; returns a :class:`Result`.

    With a ``callback``, the passes over the data are counted for it (``IterationInfo.passes``
    and ``rows``). With a :class:`~softreg._checkpoint.Checkpoint`, the state is saved after
    every iterate, and a saved state (same fingerprint) is resumed from instead of ``θ``.
    """
    monitor = Monitor(
        tol=tol,
        strongly_convex=objective.alpha > 0,
        callback=callback,
        checkpoint=checkpoint,
        solver=solver,
    )
    monitor.resumed = checkpoint.load() if checkpoint is not None else None
    if monitor.resumed is not None:
        monitor.restore(monitor.resumed)
        theta = monitor.resumed.theta
    source = objective.source
    if callback is not None:
        monitor.counter = objective.source = CountingSource(source)
    try:
        return _minimize(objective, theta, monitor, solver, max_iter, learning_rate)
    finally:
        objective.source = source


def _minimize(objective, theta, monitor, solver, max_iter, learning_rate):
    if solver == "gd":
        result = gradient_descent(
            objective, theta, monitor, max_iter=max_iter, learning_rate=learning_rate
        )
    else:
        result = SOLVERS[solver](objective, theta, monitor, max_iter=max_iter)
    if result.converged or result.n_iter >= max_iter:  # a polish counts as an iteration
        return result
    polished = _polish(objective, result.theta, result.evaluation, monitor, force=True)
    if polished is None:
        return result
    theta, evaluation = polished
    converged = monitor.record(evaluation, theta)
    message = "converged" if converged else result.message
    return Result(theta, evaluation, result.n_iter + 1, converged, message, monitor.history())
