"""Mutated files through the command line: an error is one ``Error:`` line, never a traceback.

A smaller fixed-seed corpus than tests/test_fuzz_corpus.py (each case here may fit a model):
``softreg fit`` on mutated data files, ``softreg inspect`` and ``softreg predict`` on mutated
model files. Whatever the exit code (a fit may also succeed, or stop unconverged), no
exception may escape the command, and a failing command prints exactly one ``Error:`` line.
"""

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.campaign import mutant, pool_for
from fuzz.cases import DECODED_LIMIT
from fuzz.targets import TARGETS
from softreg import _archive, cli

CASES_PER_COMMAND = 20
SETTINGS = settings(
    max_examples=CASES_PER_COMMAND,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
# How `softreg fit` finds the labels of each target's seed files.
FIT_OPTIONS = {
    "csv": ["-t", "label"],
    "csv.gz": ["-t", "label"],
    "csv.bz2": ["-t", "label"],
    "svmlight": [],
    "parquet": ["-t", "label"],
    "npz": [],
}


@pytest.fixture(scope="module", autouse=True)
def decode_bound():
    saved = _archive.MAX_DECODED_BYTES
    _archive.MAX_DECODED_BYTES = DECODED_LIMIT
    yield
    _archive.MAX_DECODED_BYTES = saved


def check_command(args, seed):
    result = CliRunner().invoke(cli.main, [str(arg) for arg in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"seed {seed}: {result.exception!r}\n{result.output}"
    )
    errors = [line for line in result.stderr.splitlines() if not line.startswith("Warning: ")]
    if result.exit_code == 0:
        assert not [line for line in errors if line.startswith("Error")], (seed, result.stderr)
    else:
        assert len(errors) == 1 and errors[0].startswith("Error: "), (seed, result.stderr)
    return result


@pytest.mark.parametrize("target", list(FIT_OPTIONS))
def test_fit_on_mutated_data(target, tmp_path):
    pool = pool_for(target)
    data = tmp_path / ("data" + TARGETS[target].suffix)
    output = tmp_path / "model.softreg"

    @SETTINGS
    @given(seed=st.integers(0, 2**32 - 1))
    def case(seed):
        data.write_bytes(mutant(target, 0, seed, pool))
        output.unlink(missing_ok=True)
        result = check_command(["fit", data, *FIT_OPTIONS[target], "-o", output, "-q"], seed)
        if result.exit_code == 1:
            assert not output.exists()

    case()


def test_inspect_and_predict_mutated_models(tmp_path):
    pool = pool_for("model")
    model = tmp_path / "model.softreg"
    data = tmp_path / "data.csv"
    data.write_text("a,b,c\n0.5,1,2\n-1,0,3\n")

    @SETTINGS
    @given(seed=st.integers(0, 2**32 - 1))
    def case(seed):
        model.write_bytes(mutant("model", 0, seed, pool))
        check_command(["inspect", model], seed)
        check_command(["inspect", "--json", model], seed)
        check_command(["predict", model, data], seed)

    case()
