"""Structurally valid but hostile files (fuzz/hostile.py): each is refused with its message, or
loads correctly, within the memory bound fixed before reading."""

import io
import tracemalloc
import zipfile

import numpy as np
import pytest

from fuzz.cases import DECODED_LIMIT
from fuzz.hostile import hostile_cases
from fuzz.seeds import seeds
from fuzz.targets import TARGETS
from softreg import _archive
from softreg._model_io import load_model


@pytest.fixture(autouse=True)
def decode_bound(monkeypatch):
    monkeypatch.setattr(_archive, "MAX_DECODED_BYTES", DECODED_LIMIT)


def by_name(target, name):
    (case,) = [c for c in hostile_cases() if c.target == target and c.name == name]
    return case


def write(tmp_path, case):
    path = tmp_path / ("case" + TARGETS[case.target].suffix)
    path.write_bytes(case.data)
    return str(path)


@pytest.mark.parametrize("case", hostile_cases(), ids=repr)
def test_hostile_file_is_refused_or_loads_within_the_bound(case, tmp_path):
    path = write(tmp_path, case)
    target = TARGETS[case.target]
    tracemalloc.start()
    try:
        if case.match is None:
            target.read(path)
        else:
            with pytest.raises(target.error, match=case.match):
                target.read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Python and NumPy allocations (pyarrow's own are not traced): a bomb or a declared shape
    # of 10^12 is refused before its memory is allocated. What may be traced is the bound
    # itself (pyarrow holds the Python bytes it read from a decompressing stream) plus the
    # streams' buffers: 1 MiB blocks of pyarrow, BufferedReader, gzip and bz2.
    assert peak < DECODED_LIMIT + (8 << 20), f"{peak >> 20} MiB traced"


def test_csv_with_a_byte_order_mark_reads_the_first_column_name(tmp_path):
    table = TARGETS["csv"].read(write(tmp_path, by_name("csv", "bom")))
    assert table.feature_names == ["x"]
    np.testing.assert_array_equal(table.X, [[1.0], [2.0]])
    assert table.y.tolist() == ["a", "b"]


def test_compressed_csv_with_a_byte_order_mark(tmp_path):
    table = TARGETS["csv.gz"].read(write(tmp_path, by_name("csv.gz", "bom")))
    assert table.feature_names == ["x"] and table.y.tolist() == ["a"]


@pytest.mark.parametrize("name", ["fortran-X", "stored"])
def test_fortran_order_and_stored_npz_read_the_same_values(tmp_path, name):
    table = TARGETS["npz"].read(write(tmp_path, by_name("npz", name)))
    np.testing.assert_array_equal(table.X, np.arange(6.0).reshape(3, 2))
    assert table.X.flags.c_contiguous
    assert table.y.tolist() == ["a", "b", "a"]


def test_fortran_order_coef_predicts_as_the_original(tmp_path):
    original = tmp_path / "original.softreg"
    original.write_bytes(seeds("model")[0])
    fortran = load_model(write(tmp_path, by_name("model", "fortran-coef")))
    reference = load_model(original)
    X = np.random.default_rng(0).normal(size=(20, reference.n_features_in_))
    np.testing.assert_array_equal(fortran.predict_proba(X), reference.predict_proba(X))


def test_bombs_declare_more_than_they_hold(tmp_path):
    """The bombs are real: small files whose declared contents exceed the bound."""
    for target, name in [("npz", "zip-bomb"), ("model", "zip-bomb")]:
        case = by_name(target, name)
        with zipfile.ZipFile(io.BytesIO(case.data)) as archive:
            declared = sum(info.file_size for info in archive.infolist())
        assert len(case.data) < DECODED_LIMIT // 64 < DECODED_LIMIT < declared
    for target in ("csv.gz", "csv.bz2"):
        assert len(by_name(target, "bomb").data) < DECODED_LIMIT // 64
