"""The fixed-seed fuzz corpus: a few hundred mutated files per reader, in seconds.

Each case is a mutant of a valid or hostile file (``fuzz/``); every reader must either load it
or raise its documented error (DataError, ModelFileError), never anything else. Hypothesis
draws the case seeds, derandomized, so the corpus is the same on every run; a failing case
prints its seed, and ``fuzz.campaign.mutant(target, seed, 0, pool_for(target))`` rebuilds it.
``make fuzz`` runs the same harness for 10^5 cases per reader (docs/fuzzing.md).
"""

import shutil
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.campaign import mutant, pool_for
from fuzz.cases import DECODED_LIMIT, run_case, scratch_directory
from fuzz.targets import TARGETS
from softreg import _archive

CASES_PER_TARGET = 300


@pytest.fixture(scope="module")
def scratch():
    directory = scratch_directory()
    yield directory
    shutil.rmtree(directory)


@pytest.fixture(scope="module", autouse=True)
def decode_bound():
    """The campaign's bound on what a reader decodes, so the bombs in the pool stay cheap."""
    saved = _archive.MAX_DECODED_BYTES
    _archive.MAX_DECODED_BYTES = DECODED_LIMIT
    yield
    _archive.MAX_DECODED_BYTES = saved


@pytest.mark.parametrize("target", list(TARGETS))
def test_mutants_load_or_raise_the_documented_error(target, scratch):
    pool = pool_for(target)
    outcomes = Counter()
    reasons = set()

    @settings(
        max_examples=CASES_PER_TARGET,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(seed=st.integers(0, 2**32 - 1))
    def case(seed):
        outcome = run_case(target, mutant(target, 0, seed, pool), scratch)
        outcomes[outcome.kind] += 1
        assert outcome.kind != "failure", f"seed {seed}: {outcome.detail}"
        if outcome.kind == "refused":
            reasons.add(outcome.detail[:25])

    case()
    assert sum(outcomes.values()) >= CASES_PER_TARGET
    # The mutants reach more than one of the reader's checks (svmlight has few of its own:
    # scikit-learn's parser refuses most damage in one message).
    assert len(reasons) >= 2, sorted(reasons)
