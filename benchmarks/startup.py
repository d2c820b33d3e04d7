"""Start-up time of ``import softreg`` and of the ``softreg`` command (median of 5 each).

``python -m benchmarks.startup [--repeats 5] [--baseline SRC]`` prints a Markdown table for
BENCHMARKS.md's "Start-up" section. Each command runs in a fresh interpreter, as a user's
shell starts it; ``--baseline`` also times the same commands with another checkout's
``src`` first on ``sys.path`` (e.g. the main branch), in the same run, for a ratio that
machine load does not move as much as the times themselves.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "python -c 'import softreg'": ["-c", "import softreg"],
    "softreg --help": ["-c", "from softreg.cli import main; main()", "--help"],
    "softreg inspect MODEL": ["-c", "from softreg.cli import main; main()", "inspect", "{model}"],
    "softreg predict MODEL small.csv": [
        "-c",
        "from softreg.cli import main; main()",
        "predict",
        "{model}",
        "{data}",
    ],
}


def median_seconds(args, env, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout's src directory")
    options = parser.parse_args(argv)
    import softreg

    with tempfile.TemporaryDirectory() as folder:
        model, data = Path(folder) / "m.softreg", Path(folder) / "small.csv"
        fitted = softreg.SoftmaxRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        fitted.save(model)
        data.write_text("x0\n0.5\n2.5\n")
        runs = {"this checkout": dict(os.environ)}
        if options.baseline:
            runs["baseline"] = {**os.environ, "PYTHONPATH": str(options.baseline.resolve())}
        print(f"load before: {os.getloadavg()[0]:.2f} (1-minute average)")
        header = "| command | " + " | ".join(f"{name} (s)" for name in runs) + " |"
        print(header)
        print("|---" * (len(runs) + 1) + "|")
        for label, args in COMMANDS.items():
            args = [a.format(model=model, data=data) for a in args]
            cells = [f"{median_seconds(args, env, options.repeats):.3f}" for env in runs.values()]
            print(f"| `{label}` | " + " | ".join(cells) + " |")
        print(f"load after: {os.getloadavg()[0]:.2f} (1-minute average)")


if __name__ == "__main__":
    main()
