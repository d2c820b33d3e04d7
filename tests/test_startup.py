"""Start-up cost: `import softreg` and `softreg --help` import no heavy dependency.

Timed in BENCHMARKS.md ("Start-up"); guarded here without timing, by the modules each
command leaves in ``sys.modules`` of a fresh interpreter.
"""

import json
import subprocess
import sys

import pytest

import softreg

HEAVY = ("sklearn", "scipy", "pandas", "pyarrow", "matplotlib", "numba", "dask")


def imported_after(code):
    """The top-level packages of HEAVY (and numpy) that ``code`` imports in a new interpreter."""
    probe = (
        f"{code}\nimport json, sys\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    return sorted(loaded & {*HEAVY, "numpy"})


def run_cli(*args):
    return (
        "import sys\nfrom softreg import cli\n"
        f"sys.argv = ['softreg', *{list(args)!r}]\n"
        "try:\n    cli.main()\nexcept SystemExit as exit:\n    assert exit.code in (0, None)\n"
    )


def test_import_softreg_loads_nothing_heavy():
    assert imported_after("import softreg") == []


@pytest.mark.parametrize(
    "args", [("--help",), ("--version",), ("fit", "--help"), ("report", "--help")]
)
def test_help_loads_neither_numpy_nor_any_heavy_module(args):
    assert imported_after(run_cli(*args)) == []


def test_inspect_and_predict_load_neither_numba_nor_plotting_nor_dask(tmp_path):
    """They need the estimator, so scikit-learn (which itself imports SciPy, and pandas and
    pyarrow when they are installed); never numba (the fits' compiled kernels), matplotlib
    or dask."""
    model = softreg.SoftmaxRegression(alpha=0.1).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    model.save(tmp_path / "m.softreg")
    (tmp_path / "x.csv").write_text("x0\n0.5\n2.5\n")
    model, data = str(tmp_path / "m.softreg"), str(tmp_path / "x.csv")
    # Both in one interpreter (each pays for importing scikit-learn).
    loaded = imported_after(run_cli("inspect", model) + run_cli("predict", model, data))
    assert "sklearn" in loaded and not {"numba", "matplotlib", "dask"} & set(loaded)


def test_first_use_of_a_name_imports_its_module():
    code = "import softreg\nsoftreg.softmax([0.0, 1.0])"
    assert imported_after(code) == ["numpy"]  # the kernels need NumPy and nothing else


def test_all_and_dir_list_exactly_the_public_names():
    names = set(softreg.__all__)
    assert names == {"__version__", *softreg._EXPORTS}
    assert len(softreg.__all__) == len(names)
    for name in softreg.__all__:
        assert getattr(softreg, name) is not None
    assert names <= set(dir(softreg))
    assert softreg.load is softreg._model_io.load_model
    with pytest.raises(AttributeError, match=r"^module 'softreg' has no attribute 'fit'$"):
        softreg.fit  # noqa: B018
