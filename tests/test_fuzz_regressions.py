"""One regression test per bug the fuzzing found (docs/fuzzing.md lists them, with their finder).

Each test is named after the bug: what escaped (or was silently wrong) before the fix.
"""

import base64
import bz2
import gzip
import io
import json
import struct
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from fuzz.cases import DECODED_LIMIT
from fuzz.hostile import hostile_cases
from fuzz.mutate import npy_header
from fuzz.seeds import seeds
from softreg import _archive, cli
from softreg._data_io import DataError, column_names, read_table
from softreg._model_io import ModelFileError, load_model


def hostile(target, name, tmp_path, suffix):
    (case,) = [c for c in hostile_cases() if c.target == target and c.name == name]
    path = tmp_path / f"case{suffix}"
    path.write_bytes(case.data)
    return path


def npz_bytes(**members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, data in members.items():
            archive.writestr(f"{key}.npy", data)
    return buffer.getvalue()


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------
# .npz data files


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.99])
def test_truncated_npz_raised_bad_zip_file(tmp_path, keep):
    whole = seeds("npz")[1]
    path = tmp_path / "cut.npz"
    path.write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(DataError, match=r"cut\.npz: cannot read as a NumPy \.npz file"):
        read_table(path)


def test_corrupted_npz_member_raised_bad_zip_file(tmp_path):
    data = bytearray(seeds("npz")[0])
    data[60] ^= 0xFF  # inside X.npy's stored bytes: the CRC-32 check fails
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"flipped\.npz: cannot read as a NumPy \.npz file: Bad "):
        read_table(path)


def test_npz_member_that_is_not_npy_raised_attribute_error(tmp_path):
    # np.load hands back the raw bytes of a member without the .npy magic string.
    path = tmp_path / "raw.npz"
    path.write_bytes(npz_bytes(X=b"just bytes"))
    with pytest.raises(DataError, match=r"array 'X' is not a readable \.npy array"):
        read_table(path)


def shifted_directory(data):
    """A zip whose end record puts the central directory 1000 bytes past where it is."""
    data = bytearray(data)
    fields = list(struct.unpack("<4s4H2LH", data[-22:]))
    fields[6] += 1000  # offset of the central directory: members' offsets go negative
    data[-22:] = struct.pack("<4s4H2LH", *fields)
    return bytes(data)


def test_zip_directory_offset_past_the_start_raised_os_error(tmp_path):
    """zipfile seeks to a negative offset: OSError EINVAL, from the .npz and model readers."""
    data_path = tmp_path / "shifted.npz"
    data_path.write_bytes(shifted_directory(seeds("npz")[0]))
    with pytest.raises(DataError, match=r"cannot read as a NumPy \.npz file: \[Errno 22\]"):
        read_table(data_path)
    model_path = tmp_path / "shifted.softreg"
    model_path.write_bytes(shifted_directory(seeds("model")[0]))
    with pytest.raises(ModelFileError, match=r"is truncated or corrupted .*\[Errno 22\]"):
        load_model(model_path)


def test_npz_shape_of_1e12_elements_raised_memory_error(tmp_path):
    path = hostile("npz", "shape-1e12", tmp_path, ".npz")
    with pytest.raises(DataError, match=r"array 'X' of shape \(1000000000000, 1\) would take"):
        read_table(path)


def test_npy_header_the_tokenizer_rejects_raised_token_error(tmp_path):
    # An unterminated triple-quoted string: numpy's header parser lets TokenError out.
    header = npy_header("'<f8'", "False", "(1,)")
    header = header.replace(b"'shape': (1,)", b"'shape': '''(")
    path = tmp_path / "token.npz"
    path.write_bytes(npz_bytes(X=header + b"\0" * 8))
    with pytest.raises(DataError, match=r"array 'X' is not a readable \.npy array"):
        read_table(path)


def test_npz_text_past_u10ffff_made_an_invalid_python_string(tmp_path):
    # numpy turned code point 0x110000 into a str no Python string may hold: printing or
    # comparing it fails later (SystemError in a model file's classes_, see below).
    path = hostile("npz", "bad-code-point", tmp_path, ".npz")
    with pytest.raises(DataError, match=r"not valid Unicode \(code point 0x110000\)"):
        column_names(path)


# ------------------------------------------------------------------------------------------
# CSV and svmlight


def test_csv_column_name_not_utf8_raised_unicode_decode_error(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"caf\xe9,label\n1,a\n")
    for read in (column_names, lambda p: read_table(p, target="label")):
        with pytest.raises(DataError, match=r"latin1\.csv: cannot read as a CSV file: 'utf-8'"):
            read(path)


def test_csv_nul_in_label_was_silently_dropped(tmp_path):
    path = tmp_path / "nul.csv"
    path.write_bytes(b"x,label\n1,a\x00\n2,a\n")
    with pytest.raises(DataError, match=r"'label' has a NUL character in the label in row 1"):
        read_table(path, target="label")


def test_csv_one_long_label_multiplied_the_memory_of_all(tmp_path, monkeypatch):
    # 3000 labels as fixed-width text as wide as one 50000-character label: 600 MB from 200 kB.
    monkeypatch.setattr(_archive, "MAX_DECODED_BYTES", DECODED_LIMIT)
    path = tmp_path / "wide-label.csv"
    path.write_text("x,label\n" + "0,a\n" * 3000 + "1," + "b" * 50_000 + "\n")
    with pytest.raises(
        DataError,
        match=r"target column 'label' \(3001 labels as wide as the longest, 50000 characters\) "
        r"would take 572\.4 MiB in memory",
    ):
        read_table(path, target="label")


def test_csv_wide_header_took_a_gigabyte_in_pyarrow(tmp_path, monkeypatch):
    # pyarrow's parser takes ~10 KiB per column: a 60 kB header of 30000 columns took 370 MB.
    monkeypatch.setattr(_archive, "MAX_DECODED_BYTES", DECODED_LIMIT)
    path = tmp_path / "wide.csv.gz"
    path.write_bytes(gzip.compress((",".join("x" * 30_000) + "\n").encode()))
    with pytest.raises(
        DataError, match=r"a CSV header of 30000 columns \(pyarrow's parser takes some 16 KiB"
    ):
        read_table(path)


def test_csv_with_a_million_columns_was_called_empty(tmp_path):
    path = hostile("csv", "million-columns", tmp_path, ".csv")
    with pytest.raises(DataError, match=r"has a header line longer than 1 MiB"):
        read_table(path, target="label")


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_compressed_csv_bomb_was_inflated_without_bound(tmp_path, monkeypatch, compress):
    monkeypatch.setattr(_archive, "MAX_DECODED_BYTES", DECODED_LIMIT)
    path = tmp_path / f"bomb.csv.{'gz' if compress is gzip.compress else 'bz2'}"
    path.write_bytes(compress(b"x,label\n" + b"0,a\n" * (DECODED_LIMIT // 2)))
    with pytest.raises(DataError, match=r"the decompressed file would take .* more than the 4\.0"):
        read_table(path, target="label")


def test_svmlight_feature_index_past_int32_raised_overflow_error(tmp_path):
    path = tmp_path / "wide.svm"
    path.write_bytes(b"1 1:1\n0 3000000000:1\n")
    with pytest.raises(DataError, match=r"wide\.svm: .* a feature index is too large"):
        read_table(path)


def test_svmlight_label_past_int64_wrapped_around(tmp_path):
    path = tmp_path / "big.svm"
    path.write_bytes(b"1e20 1:1\n0 2:1\n")
    table = read_table(path)
    assert table.y.dtype == np.float64
    assert table.y.tolist() == [1e20, 0.0]


def test_parquet_label_not_utf8_raised_unicode_decode_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Parquet does not validate text: a string column may hold any bytes.
    offsets = pa.py_buffer(np.array([0, 1, 2], dtype=np.int32).tobytes())
    labels = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"\x80a")])
    path = tmp_path / "latin1.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0], "label": labels}), path)
    with pytest.raises(DataError, match=r"column 'label' holds text that is not UTF-8"):
        read_table(path, target="label")


# A 1226-byte Parquet file from the atheris campaign whose footer declares a Thrift string far
# longer than the file: pyarrow allocated it (180 MB) before finding the data missing.
_THRIFT_BOMB = base64.b64decode(
    "Qf3mHNu678kBaanFvPGdpLLgvWoWt6+XW6JKdu2hiHceuOWKxJIAQgaN5WtkUhPog//dwH3RlL9mGHJc57g/7Gwq"
    "su4MrO0JHUMaVrhI/jurwdkgvBPs5beVOO+Ag6X26t3+LJGPjg3JWwOTjIr+15LyW+mvFcNQVrwgn7vxvBy5ET9k"
    "UVXPV+yIoBphw/RDjmawqj4DqQw7y1+vjvpbISSqcWSM3WELrYBvwVgaoiNzXuSnJ+cqMCXNmCdNumyl/0mW/mIy"
    "7mAP0uOuNbq2XaTVRr6DBZ+j9loBmwtop8wy1+h61fYBMcO+hju0r7tpm7dswvikVjI8PBo3y4pJXgCfYaBaswhZ"
    "mPh5saZgtCCK1KIqLxwOP5npqu+bPP+IhRIbwPRgN+7iNn3PulrY5ebKCP9kujBX7xLzMLF4Wsl4lakKsT+JQNFS"
    "j4JQZX7MKzbO6HBquVxqC2dBANKwAEe2mgUidF7FsCVZKcMYmIKtnfl5GbOZD5hGiKfj003jCLJNMeVDl3gOwuuZ"
    "PDSxb9D8ikme7RpIHRlzzAkhy077NjFyICa8uJzpvS9M+DQzwKiJPrrj456sIPBYvXEweZFlua0i+inWSBbYSVXs"
    "qm0q5ywyfl4ZPZe5WdXP9Qz8rntC69O4lTmFF6RNVlkgFdI2WPFHCxyRFEo71MKC4pQkEC5w3KsOeN7xmRP3B9j0"
    "2tBqQZePuVg4b53PX719horw8OJ50TMIYDhpjTxTzaNNMhRjseDUzEE1Xms5FWMTA6CJJ5GRJzbd6Cnx2ZM4MOBe"
    "E7/hneiXUCeD2P7Ek+8F5sfyZtRtxk8YdUmbfI6Y7v51qUaOMBQY2BbBtKNHh7dFkpAXOCYcMIq3fkLCH9jYeUgW"
    "BBkcGSwmABwVChk1AAYQGTgBeARsaXN0B2VsZW1lbnQVAhYEFtgBFuABJkgmCBwYCAAAAAAAAABAGAgAAAAAAADw"
    "PxYAKAgAAAAAAAAAQBgIAAAAAAAA8D8REQAZLBUEFQAVAgAVABUQFQIAPCkmBAAZRgAAAAQAAAAmABwVDBk1AAYQ"
    "GRgFbGFiZWwqAhYEFnwWhAEmnAIm6AEcNgAoAWIYAWEREQAZLBUEFQAVAgAVABUQFQIAPBYEGQYZJgAEAAAAFtQC"
    "FgQmCBbkAgAZHBgMQVJST1c6c2NoZW1hGKACLy8vLy85QUFBQUFRQUFBQUFBQUtBQXdBQmdBRkFBZ0FDZ0FBQUFB"
    "QkJBQU1BQUFBQ0FBSUFBQUFCQUFJQUFBQUJBQUFBQUlBQUFBd0FBQUFCQUFBQUt64C8vLzhBQUFFRkVBQUFBQmdB"
    "QUFBRUFBQUFBQUFBQUFVQUFBQnNZV0psYkFBQUFOai8vLy9VLy8vL0FBQUJEQlFBQUFBY0FBQUFCQUFBQUFFQUFB"
    "QWtBQUFBQVFBQUFIZ0FBQUFFQUFRQUJBQUFBQkFBRkFBSUFBWUFCd0FNQUFBQUVBQVFBQUFBQUFBQkF4QUFBQUFj"
    "QUFBQUJBQUFBQUFBQUFBRUFBQUFhWFJsYlFBQUJnQUlBQVlBQmdBQUFBQUFBZ0FBQUFBQQAYIHBhcnF1ZXQtY3Bw"
    "LWFycm93IHZlcnNpb24gMjYuMC4xGSwcAAAcAAAAeAIAAFBBUjE="
)


def test_parquet_footer_declaring_a_huge_string_took_180_mb(tmp_path):
    path = tmp_path / "bomb.parquet"
    path.write_bytes(_THRIFT_BOMB)
    # "Exceeded size limit": the decoder stopped at the file's size, before allocating.
    for read in (column_names, read_table):
        with pytest.raises(DataError, match=r"Couldn't deserialize thrift: .*Exceeded size limit"):
            read(path)


# ------------------------------------------------------------------------------------------
# Model files


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("npy-shape-1e12", r"array 'coef_' of shape \(1000000, 1000000\) would take"),
        ("deeply-nested-header", r"has a corrupted header\.json \(maximum recursion depth"),
        ("huge-integer", r"has a corrupted header\.json \(Exceeds the limit"),
        ("absurd-dtype", r"lists array 'coef_' with (invalid )?dtype"),
        ("bad-mapping", r"has an invalid hyper-parameter: a mapping must be"),
        ("bad-code-point-class", r"array 'classes_' holds text that is not valid Unicode"),
    ],
)
def test_model_file_raised_other_than_model_file_error(tmp_path, name, message):
    """MemoryError, RecursionError, ValueError, TypeError and SystemError escaped the loader."""
    with pytest.raises(ModelFileError, match=message):
        load_model(hostile("model", name, tmp_path, ".softreg"))


def test_model_surrogate_in_header_raised_unicode_encode_error_in_inspect(tmp_path):
    path = hostile("model", "surrogate-name", tmp_path, ".softreg")
    result = CliRunner().invoke(cli.main, ["inspect", str(path)])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"Error: {path}: has text that is not valid Unicode (surrogates not allowed).\n"
    )


def test_model_missing_training_summary_crashed_inspect(tmp_path):
    path = tmp_path / "model.softreg"
    path.write_bytes(seeds("model")[0])
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header = json.loads(members["header.json"])
    del header["training"]["solver"]
    members["header.json"] = json.dumps(header).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    result = CliRunner().invoke(cli.main, ["inspect", str(path)])
    assert result.exit_code == 1, result.output
    assert result.stderr == (
        f"Error: {path}: has a training field 'solver' of None; expected a string.\n"
    )


# ------------------------------------------------------------------------------------------
# The command line


def test_parquet_error_with_a_newline_printed_two_lines(tmp_path):
    data = bytearray(seeds("parquet")[0])
    footer = struct.unpack("<I", data[-8:-4])[0]
    start = len(data) - 8 - footer
    data[start : start + 8] = b"\xff" * 8  # pyarrow: "Couldn't deserialize thrift: ...\n"
    path = tmp_path / "bad.parquet"
    path.write_bytes(bytes(data))
    output = str(tmp_path / "m.softreg")
    result = CliRunner().invoke(cli.main, ["fit", str(path), "-t", "label", "-o", output])
    assert result.exit_code == 1, result.output
    # Streamed: the Parquet dataset's own message, pyarrow's line breaks joined into one line.
    assert result.stderr.startswith(f"Error: {path}: cannot read as Parquet: ")
    assert "Couldn't deserialize thrift" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_truncated_npz_printed_a_traceback_from_fit(tmp_path):
    whole = seeds("npz")[0]
    path = tmp_path / "cut.npz"
    path.write_bytes(whole[: len(whole) // 2])
    result = CliRunner().invoke(cli.main, ["fit", str(path), "-o", str(tmp_path / "m.softreg")])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"Error: {path}: cannot read as a NumPy .npz file: ")
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "m.softreg").exists()


# ------------------------------------------------------------------------------------------
# open_dataset: the streaming readers (_file_cache.py, _parquet.py) behind the command line


def stream(path, tmp_path, **columns):
    """Open, scan and stream ``path`` as ``softreg fit`` does; return the scan's summary."""
    from softreg import open_dataset

    dataset = open_dataset(path, cache_dir=tmp_path / "cache", **columns)
    summary = dataset.scan()
    for _ in dataset.batches():
        pass
    return summary


def test_open_dataset_csv_names_not_utf8_raised_unicode_decode_error(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"x\xff,label\n1,a\n2,b\n")
    with pytest.raises(
        DataError, match=r"latin1\.csv: is not UTF-8 text \(invalid start byte: b'\\xff'\); save "
    ):
        stream(path, tmp_path)


def test_open_dataset_parquet_names_not_utf8_raised_unicode_decode_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "latin1.parquet"
    pq.write_table(pa.table({"xQ": [1.0, 2.0], "label": ["a", "b"]}), path)
    # Parquet does not check its footer: the name's bytes are edited in place.
    path.write_bytes(path.read_bytes().replace(b"xQ", b"x\xff"))
    with pytest.raises(
        DataError, match=r"latin1\.parquet: is not UTF-8 text \(invalid start byte: b'\\xff'\)"
    ):
        stream(path, tmp_path, target="label")


def test_open_dataset_parquet_row_group_of_no_rows_raised_value_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    empty = pa.table({"x": pa.array([], pa.float64()), "label": pa.array([], pa.string())})
    path = tmp_path / "none.parquet"
    pq.write_table(empty, path)
    assert pq.ParquetFile(path).metadata.num_row_groups == 1
    with pytest.raises(DataError, match=r"none\.parquet: has no data rows"):
        stream(path, tmp_path, target="label")
    # An empty row group before rows is skipped: the rows load.
    both = tmp_path / "both.parquet"
    with pq.ParquetWriter(both, empty.schema) as writer:
        writer.write_table(empty)
        writer.write_table(pa.table({"x": [1.0, 2.0], "label": ["a", "b"]}))
    assert pq.ParquetFile(both).metadata.num_row_groups == 2
    summary = stream(both, tmp_path, target="label")
    assert (summary.n_samples, summary.classes.tolist()) == (2, ["a", "b"])


def test_open_dataset_svmlight_index_past_int32_raised_overflow_error(tmp_path):
    path = tmp_path / "wide.svm"
    path.write_bytes(b"1 1:1\n0 91999999999999999999:1\n")
    with pytest.raises(
        DataError, match=r"wide\.svm: row 2 cannot be read as svmlight/LIBSVM: a feature index "
    ):
        stream(path, tmp_path)


def test_open_dataset_svmlight_label_past_int64_wrapped_around(tmp_path):
    path = tmp_path / "big.svm"
    path.write_bytes(b"1e20 1:1\n0 2:1\n")
    summary = stream(path, tmp_path)
    assert summary.classes.dtype == np.float64
    assert summary.classes.tolist() == [0.0, 1e20]


def test_open_dataset_svmlight_index_of_1e9_took_7_gib(tmp_path, monkeypatch):
    # 14 bytes: the scan's column scales (float64, one per feature) took 7.5 GiB.
    path = tmp_path / "far.svm"
    path.write_bytes(b"1 1000000000:1")
    monkeypatch.setattr(_archive, "MAX_DECODED_BYTES", DECODED_LIMIT)
    with pytest.raises(
        DataError, match=r"far\.svm: feature index 1000000000 \(one dense row\) would take 7\.5 "
    ):
        stream(path, tmp_path)
