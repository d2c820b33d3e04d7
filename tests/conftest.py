"""Shared test configuration: a deterministic, quick Hypothesis profile."""

import os

import pytest
from hypothesis import settings

# derandomize: the same examples on every run and every machine, so a failure reproduces;
# no example database, so nothing is written next to the sources. deadline=None because
# timings on shared CI machines are noise, not a property of the code.
settings.register_profile(
    "softreg", derandomize=True, database=None, max_examples=60, deadline=None
)
settings.load_profile("softreg")


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """CSV and LIBSVM caches of every test in a temporary folder, never in ~/.cache/softreg.

    Session-scoped, so that module-scoped fixtures that fit a CSV file are covered too.
    """
    with pytest.MonkeyPatch.context() as patch:
        if "SOFTREG_CACHE_DIR" not in os.environ:
            patch.setenv("SOFTREG_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield
