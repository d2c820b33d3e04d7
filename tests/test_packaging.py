"""The package's declared requirements: what `make test-oldest` installs is what pyproject says."""

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

ROOT = Path(__file__).resolve().parent.parent
# Dev tools whose newest release is wanted everywhere: a linter is not a runtime minimum.
UNPINNED = {"ruff"}
# Pinned for the oldest environment although softreg does not require them (see the file).
TRANSITIVE = {"pyparsing"}


def declared_minimums():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra, entries in project["optional-dependencies"].items():
        if extra != "bench":  # the benchmarks pin their own peers
            requirements += entries
    minimums = {}
    for text in requirements:
        requirement = Requirement(text)
        if requirement.name == "softreg":
            continue
        (lower,) = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        minimums[requirement.name] = Version(lower)
    return minimums


def oldest_pins():
    pins = {}
    for line in (ROOT / ".ci" / "oldest-constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = re.fullmatch(r"([\w.-]+)==([\w.]+)", line).groups()
            pins[name] = Version(version)
    return pins


def test_oldest_constraints_pin_exactly_the_declared_minimums():
    minimums = declared_minimums()
    assert {"numpy", "scipy", "scikit-learn", "pyarrow", "pandas", "click", "numba"} <= set(
        minimums
    )
    assert {"matplotlib", "dask", "threadpoolctl", "pytest", "hypothesis"} <= set(minimums)
    expected = {name: version for name, version in minimums.items() if name not in UNPINNED}
    pins = oldest_pins()
    assert {name: pins[name] for name in pins.keys() - TRANSITIVE} == expected


def test_license_is_an_spdx_expression_with_its_file():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("BSD 3-Clause License")
