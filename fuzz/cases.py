"""Run one fuzz case: write the bytes to a file, read it with a target, classify the outcome.

Outcomes:

``loaded``
    The reader returned (and, for a model, predicted and was formatted).
``refused``
    The reader raised its documented error.
``failure``
    Anything else: another exception, a time-out, or memory beyond the bound.

The memory bound of a campaign is fixed before reading: :data:`DECODED_LIMIT` bytes for what
the readers may decode from one file (``softreg._archive.MAX_DECODED_BYTES`` is lowered to it),
and no case may raise the process's peak resident memory (``getrusage``'s high-water mark) by
more than :data:`RSS_STEP`. The peak is compared case by case, not against the start of the
campaign: pyarrow's allocator keeps freed memory in per-thread heaps, so the resident size
drifts up by a few hundred MiB over thousands of cases with no live allocation left behind
(``pyarrow.total_allocated_bytes()`` and ``tracemalloc`` stay at zero between cases), while a
bomb or a declared shape that got through would raise it at once by far more.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass

from fuzz.targets import TARGETS
from softreg import _archive

#: What a reader may decode from one fuzz case: small, so a zip or gzip bomb is cheap to make.
DECODED_LIMIT = 4 << 20
#: How far one case may raise the process's peak resident memory (bytes): the decoded bytes,
#: their float64 copies, and pyarrow's first blocks and thread heaps.
RSS_STEP = 128 << 20
#: Seconds one case may take.
TIME_LIMIT = 10.0


class CaseTimeoutError(Exception):
    """A case ran past :data:`TIME_LIMIT`."""


@dataclass(frozen=True)
class Outcome:
    kind: str  # "loaded", "refused" or "failure"
    detail: str = ""  # the refusal's message; for a failure, the exception and where


def bound_memory():
    """Lower softreg's decode bound for this process; return the peak RSS so far (bytes)."""
    _archive.MAX_DECODED_BYTES = DECODED_LIMIT
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def scratch_directory():
    """A directory for case files, in memory where the system has one."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return tempfile.mkdtemp(prefix="softreg-fuzz-", dir=base)


def _on_alarm(signum, frame):
    raise CaseTimeoutError(f"the case ran longer than {TIME_LIMIT} s")


def run_case(target_name, data, directory, time_limit=TIME_LIMIT):
    """Read ``data`` as a file of ``target_name``; return an :class:`Outcome`."""
    target = TARGETS[target_name]
    path = os.path.join(directory, "case" + target.suffix)
    with open(path, "wb") as handle:
        handle.write(data)
    peak_before = peak_rss()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        with warnings.catch_warnings():
            # Warnings are not failures (a loaded model may warn about feature names), but a
            # RuntimeWarning from softreg is (overflow, invalid value): as in the test suite.
            warnings.simplefilter("ignore")
            warnings.filterwarnings("error", category=RuntimeWarning, module="softreg")
            target.read(path)
        outcome = Outcome("loaded")
    except target.error as exc:
        outcome = Outcome("refused", str(exc).split(": ", 1)[-1])
    except Exception as exc:  # the point of the harness: anything else is a finding
        outcome = Outcome("failure", describe(exc))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        os.unlink(path)
    step = peak_rss() - peak_before
    if step > RSS_STEP and outcome.kind != "failure":
        outcome = Outcome("failure", f"MemoryBound: peak RSS rose by {step >> 20} MiB at {path}")
    return outcome


def warm_up(target_name, directory):
    """Read every seed once, so pyarrow's thread pools and heaps exist before cases count."""
    from fuzz.seeds import seeds

    for data in seeds(TARGETS[target_name].files):
        run_case(target_name, data, directory)


def describe(exc):
    """``Type: message`` and the innermost frame, which identifies a bug across inputs."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message[:200]} at {where}"


def signature(detail):
    """What identifies one bug: the exception type and where it was raised."""
    kind = detail.split(":", 1)[0]
    return f"{kind} at {detail.rsplit(' at ', 1)[-1]}"


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def log(*parts):
    print(*parts, file=sys.stderr, flush=True)
