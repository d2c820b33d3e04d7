"""Structurally valid but hostile files, each with what the reader must do with it.

These are the files a byte mutator is unlikely to write: declared shapes of 10^12 elements,
zip and gzip bombs, zip members named ``../``, duplicate members, deeply nested or enormous
``header.json``, object/complex/datetime/structured dtypes, Fortran order, NaN and inf where
counts are expected, CSV with a byte-order mark, NUL bytes, ragged rows, 10^6 columns. Each
case names the error message the reader must raise (a regular expression), or None when the
file must load. They run as tests (``tests/test_fuzz_hostile.py``) and seed the campaign.

The bombs are sized against :data:`fuzz.cases.DECODED_LIMIT`, the decode bound under which
both the tests and the campaign run.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import hashlib
import io
import json
import warnings
import zipfile
from dataclasses import dataclass

import numpy as np

from fuzz.cases import DECODED_LIMIT
from fuzz.mutate import npy_header
from fuzz.seeds import seeds

# A bomb decodes to twice the bound.
_BOMB_BYTES = 2 * DECODED_LIMIT


@dataclass(frozen=True)
class HostileCase:
    target: str
    name: str
    data: bytes
    match: str | None  # the DataError / ModelFileError message, or None: must load

    def __repr__(self):
        return f"{self.target}:{self.name}"


def _npy(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _zip(members, method=zipfile.ZIP_DEFLATED):
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # "Duplicate name": wanted here
        for name, content in members:
            archive.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), content, method)
    return buffer.getvalue()


def _npz(method=zipfile.ZIP_DEFLATED, **members):
    return _zip([(f"{key}.npy", value) for key, value in members.items()], method)


_X = np.arange(6.0).reshape(3, 2)
_Y = np.array(["a", "b", "a"])
_TOO_WIDE = r"would take .* in memory, more than the 4\.0 MiB softreg decodes from one file"


def csv_cases():
    # Short names keep the file (4 MB) within the decode bound: the width is what is hostile.
    wide = "0," * 10**6 + "label\n" + "1," * 10**6 + "a\n"
    bomb = b"x,label\n" + b"0,a\n" * (_BOMB_BYTES // 4)
    cases = [
        ("bom", b"\xef\xbb\xbfx,label\n1,a\n2,b\n", None),
        ("nul-in-number", b"x,label\n1\x00,a\n2,b\n", r"column 'x' must be numeric; got '1\\x00'"),
        (
            "nul-in-label",
            b"x,label\n1,a\x00\n2,a\n",
            r"'label' has a NUL character in the label in row 1",
        ),
        ("ragged-row", b"x,y,label\n1,2,a\n3,b\n", r"Expected 3 columns, got 2"),
        ("million-columns", wide.encode(), r"has a header line longer than 1 MiB"),
        ("nan-weight", b"x,label,w\n1,a,nan\n2,b,1\n", r"column 'w' has a missing value"),
        ("inf-weight", b"x,label,w\n1,a,inf\n2,b,1\n", r"column 'w' has a non-finite value"),
        ("negative-weight", b"x,label,w\n1,a,-1\n2,b,1\n", r"'w' must be non-negative"),
        ("huge-number", b"x,label\n1e999,a\n2,b\n", r"column 'x' has a non-finite value"),
        ("not-utf8", b"x,label\n1,\xff\xfe\n2,b\n", r"target column 'label' must hold strings"),
        ("only-newlines", b"\n\n\n", r"is empty"),
        ("datetime-feature", b"t,label\n2024-01-01,a\n2024-01-02,b\n", r"'t' must be numeric"),
        ("bomb", bomb, r"the file would take 8\.0 MiB in memory, more than the 4\.0 MiB"),
    ]
    return [("csv", name, data, match) for name, data, match in cases], bomb


def compressed_cases():
    _, bomb = csv_cases()
    gz, bz = gzip.compress(bomb, mtime=0), bz2.compress(bomb)
    plain = seeds("csv")[0]
    return [
        (
            "csv.gz",
            "bomb",
            gz,
            r"the decompressed file would take .* in memory, more than the 4\.0 MiB",
        ),
        (
            "csv.bz2",
            "bomb",
            bz,
            r"the decompressed file would take .* in memory, more than the 4\.0 MiB",
        ),
        ("csv.gz", "truncated", gzip.compress(plain, mtime=0)[:-9], r"cannot read as a CSV file"),
        ("csv.bz2", "truncated", bz2.compress(plain)[:-9], r"cannot read as a CSV file"),
        ("csv.gz", "not-gzip", plain, r"cannot read as a CSV file: Not a gzipped file"),
        ("csv.bz2", "not-bzip2", plain, r"cannot read as a CSV file: Invalid data stream"),
        ("csv.gz", "bom", gzip.compress(b"\xef\xbb\xbfx,label\n1,a\n", mtime=0), None),
    ]


def svmlight_cases():
    return [
        ("svmlight", name, data, match)
        for name, data, match in (
            ("index-1e6", b"1 1000000:1\n", r"feature index 1000000 \(one dense row\) would take"),
            ("index-1e12", b"1 1000000000000:1\n", r"a feature index is too large"),
            ("index-overflow", b"1 99999999999999999999:1\n", r"a feature index is too large"),
            ("negative-index", b"1 -3:1\n", r"cannot read as an svmlight"),
            ("nan-label", b"nan 1:1\n", r"has a non-finite label \(nan\) in row 1"),
            ("inf-value", b"1 1:inf\n", r"non-finite value \(inf\) at feature index 1 in row 1"),
            ("nul", b"1 1:1\x00\n0 2:1\n", r"cannot read as an svmlight"),
            ("empty", b"", r"has no data rows"),
            ("bom", b"\xef\xbb\xbf1 1:1\n", r"cannot read as an svmlight"),
        )
    ]


def parquet_cases():
    import pyarrow as pa
    import pyarrow.parquet as pq

    def parquet(table, **options):
        buffer = io.BytesIO()
        pq.write_table(table, buffer, **options)
        return buffer.getvalue()

    label = pa.array(["a", "b"])
    many_rows = pa.table({"x": pa.array(np.zeros(DECODED_LIMIT // 4, dtype=np.int8))})
    return [
        ("parquet", name, data, match)
        for name, data, match in (
            ("declared-rows", parquet(many_rows), r"the table of 1048576 rows .*" + _TOO_WIDE),
            (
                "list-feature",
                parquet(pa.table({"x": pa.array([[1.0], [2.0]]), "label": label})),
                r"column 'x' must be numeric; got values of type list",
            ),
            (
                "timestamp-feature",
                parquet(pa.table({"x": pa.array([0, 1], type=pa.timestamp("s")), "label": label})),
                r"column 'x' must be numeric; got values of type timestamp",
            ),
            (
                "struct-label",
                parquet(pa.table({"x": [1.0, 2.0], "label": pa.array([{"a": 1}, {"a": 2}])})),
                r"target column 'label' must hold strings, integers, floats or booleans",
            ),
            (
                "nan-weight",
                parquet(pa.table({"x": [1.0, 2.0], "label": label, "w": [1.0, float("nan")]})),
                r"column 'w' has a non-finite value \(nan\) in row 2",
            ),
            (
                "no-rows",
                parquet(
                    pa.table({"x": pa.array([], pa.float64()), "label": pa.array([], pa.string())})
                ),
                r"has no data rows",
            ),
            (
                "duplicate-columns",
                parquet(pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0])], ["x", "x"])),
                r"column name 'x' appears more than once",
            ),
        )
    ]


def npz_cases():
    signed_bomb = _npy(np.zeros(_BOMB_BYTES // 8))
    cases = [
        ("shape-1e12", _npz(X=npy_header("'<f8'", "False", "(1000000000000, 1)") + b"\0" * 8)),
        ("shape-lie", _npz(X=npy_header("'<f8'", "False", "(1000, 2)") + b"\0" * 16)),
        (
            "zero-size-items",
            _npz(X=_npy(_X), y=npy_header("'<U0'", "False", "(1000000000000000,)")),
        ),
        ("zip-bomb", _npz(X=signed_bomb)),
        ("dot-dot-member", _zip([("../X.npy", _npy(_X))])),
        ("absolute-member", _zip([("/X.npy", _npy(_X))])),
        ("duplicate-member", _zip([("X.npy", _npy(_X)), ("X.npy", _npy(_X + 1))])),
        ("same-key-twice", _zip([("X.npy", _npy(_X)), ("X", _npy(_X + 1))])),
        ("object-y", _npz(X=_npy(_X), y=npy_header("'|O'", "False", "(3,)") + b"\0" * 24)),
        ("complex-X", _npz(X=_npy(_X.astype(complex)))),
        ("datetime-X", _npz(X=_npy(_X.astype("M8[s]")))),
        ("structured-X", _npz(X=_npy(np.zeros((3, 2), dtype=[("a", "<f8")])))),
        ("nan-y", _npz(X=_npy(_X), y=_npy(np.array([1.0, np.nan, 0.0])))),
        ("inf-weight", _npz(X=_npy(_X), y=_npy(_Y), w=_npy(np.array([1.0, np.inf, 1.0])))),
        (
            "bad-code-point",
            _npz(
                X=_npy(_X),
                y=_npy(_Y),
                feature_names=_npy(np.array(["ab", "cd"]))[:-4] + b"\0\0\x11\0",
            ),
        ),
        (
            "surrogate",
            _npz(
                X=_npy(_X),
                y=_npy(_Y),
                feature_names=_npy(np.array(["ab", "cd"]))[:-4] + b"\0\xd8\0\0",
            ),
        ),
        ("npy-version-3", _npz(X=b"\x93NUMPY\x03\x00" + _npy(_X)[8:])),
        ("huge-npy-header", _npz(X=b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{")),
        ("fortran-X", _npz(X=_npy(np.asfortranarray(_X)), y=_npy(_Y), w=_npy(np.ones(3)))),
        ("stored", _npz(zipfile.ZIP_STORED, X=_npy(_X), y=_npy(_Y), w=_npy(np.ones(3)))),
    ]
    messages = {
        "shape-1e12": r"array 'X' of shape \(1000000000000, 1\) would take 7\.3 TiB",
        "shape-lie": r"array 'X' declares shape \(1000, 2\) of dtype float64 \(16000 bytes\) but "
        r"holds 16 bytes",
        "zero-size-items": r"array 'y' has items of size zero \(dtype <U0\)",
        "zip-bomb": r"the archive's members would take 8\.0 MiB in memory, more than the 4\.0 MiB",
        "dot-dot-member": r"has a member named '\.\./X\.npy'; expected plain file names",
        "absolute-member": r"has a member named '/X\.npy'",
        "duplicate-member": r"has the member 'X\.npy' more than once",
        "same-key-twice": r"has two members for the same array",
        "object-y": r"array 'y' cannot be read without pickle",
        "complex-X": r"array 'X' must be a 2-D numeric array; got 2-D complex128",
        "datetime-X": r"array 'X' must be a 2-D numeric array; got 2-D datetime64\[s\]",
        "structured-X": r"array 'X' must be a 2-D numeric array; got 2-D \[\('a', '<f8'\)\]",
        "nan-y": r"array 'y' has a NaN label at index \(1,\)",
        "inf-weight": r"array 'w' must be finite numbers",
        "bad-code-point": r"'feature_names' holds text that is not valid Unicode \(code point "
        r"0x110000\)",
        "surrogate": r"'feature_names' holds text that is not valid Unicode \(code point 0xd800\)",
        "npy-version-3": r"array 'X' has \.npy format version \(3, 0\)",
        "huge-npy-header": r"array 'X' is not a readable \.npy array",
        "fortran-X": None,
        "stored": None,
    }
    return [("npz", name, data, messages[name]) for name, data in cases]


def _model_members():
    with zipfile.ZipFile(io.BytesIO(seeds("model")[0])) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _model(members=None, changes=None, sign=True):
    """The first model seed with members replaced and header fields changed, re-signed.

    ``changes`` maps a path of keys into the header (a tuple) to the new value.
    """
    content = dict(_model_members(), **(members or {}))
    header = json.loads(content["header.json"])
    for path, value in (changes or {}).items():
        parent = header
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
    if sign:
        for name, info in header["arrays"].items():
            if f"{name}.npy" in content:
                info["sha256"] = hashlib.sha256(content[f"{name}.npy"]).hexdigest()
    content["header.json"] = json.dumps(header).encode()
    return _zip(list(content.items()))


def _with_header(members, header_bytes):
    return _zip(
        [*((n, c) for n, c in members.items() if n != "header.json"), ("header.json", header_bytes)]
    )


def _nested(depth):
    return json.loads("[" * depth + "]" * depth)


def model_cases():
    members = _model_members()
    coef = np.load(io.BytesIO(members["coef_.npy"]))
    shape = coef.shape
    bomb_shape = (shape[0], _BOMB_BYTES // 8 // shape[0])
    bomb = _npy(np.zeros(bomb_shape))
    huge_header = json.dumps(
        dict(json.loads(members["header.json"]), metadata={"pad": " " * (2 << 20)})
    ).encode()
    deep = "[" * 100_000 + "]" * 100_000
    cases = [
        (
            "coef-shape-1e12",
            _model(changes={("arrays", "coef_", "shape"): [10**6, 10**6]}),
            r"array 'coef_' would take 7\.3 TiB",
        ),
        (
            "npy-shape-1e12",
            _model({"coef_.npy": npy_header("'<f8'", "False", "(1000000, 1000000)") + b"\0" * 8}),
            r"array 'coef_' of shape \(1000000, 1000000\) would take 7\.3 TiB",
        ),
        (
            "zip-bomb",
            _model({"coef_.npy": bomb}, {("arrays", "coef_", "shape"): list(bomb_shape)}),
            r"the archive's members would take 8\.0 MiB",
        ),
        (
            "enormous-header",
            _with_header(members, huge_header),
            r"has a header\.json of \d+ bytes, too large for a model",
        ),
        (
            "nested-header",
            _model(changes={("metadata", "deep"): _nested(40)}),
            r"has a header\.json nested deeper than 32 levels",
        ),
        (
            "deeply-nested-header",
            _with_header(members, deep.encode()),
            r"has a corrupted header\.json \(maximum recursion depth",
        ),
        (
            "huge-integer",
            _with_header(members, b'{"format": ' + b"9" * 5000 + b"}"),
            r"has a corrupted header\.json \(Exceeds the limit",
        ),
        (
            "dot-dot-member",
            _zip([*members.items(), ("../evil.npy", b"x")]),
            r"has a member named '\.\./evil\.npy'",
        ),
        (
            "duplicate-member",
            _zip([*members.items(), ("coef_.npy", members["coef_.npy"])]),
            r"has the member 'coef_\.npy' more than once",
        ),
        (
            "object-dtype",
            _model(changes={("arrays", "classes_", "dtype"): "|O"}),
            r"lists array 'classes_' with dtype object",
        ),
        (
            "complex-dtype",
            _model(
                {"coef_.npy": _npy(coef.reshape(shape).astype(complex))},
                {("arrays", "coef_", "dtype"): "<c16"},
            ),
            r"lists array 'coef_' with dtype complex128",
        ),
        (
            "datetime-dtype",
            _model(changes={("arrays", "coef_", "dtype"): "<M8[s]"}),
            r"lists array 'coef_' with dtype datetime64\[s\]",
        ),
        (
            "structured-dtype",
            _model(changes={("arrays", "coef_", "dtype"): "<f8,<f8"}),
            r"lists array 'coef_' with dtype \[\('f0', '<f8'\)",
        ),
        (
            "absurd-dtype",
            _model(changes={("arrays", "coef_", "dtype"): "(1000000000000,)f8"}),
            r"lists array 'coef_' with (invalid )?dtype",
        ),
        ("fortran-coef", _model({"coef_.npy": _npy(np.asfortranarray(coef.reshape(shape)))}), None),
        (
            "nan-n-iter",
            _model(changes={("training", "n_iter"): float("nan")}),
            r"has a training field 'n_iter' of nan; expected a non-negative integer",
        ),
        (
            "inf-n-features",
            _model(changes={("n_features",): float("inf")}),
            r"has a header field 'n_features' of type float",
        ),
        (
            "bool-n-features",
            _model(changes={("n_features",): True}),
            r"has n_features True; expected a non-negative integer",
        ),
        (
            "nan-coef",
            _model({"coef_.npy": _npy(np.full(shape, np.nan))}),
            r"coef_ and intercept_ must be finite",
        ),
        (
            "missing-solver",
            _model(changes={("training", "solver"): None}),
            r"has a training field 'solver' of None",
        ),
        (
            "list-target-column",
            _model(changes={("metadata", "target_column"): ["label"]}),
            r"has a metadata field 'target_column' of \['label'\]",
        ),
        (
            "bad-mapping",
            _model(changes={("params", "class_weight"): {"mapping": [[[], 1]]}}),
            r"has an invalid hyper-parameter: a mapping must be a list of \[label, value\] pairs",
        ),
        (
            "bad-alpha",
            _model(changes={("params", "alpha"): "inf"}),
            r"has an invalid hyper-parameter: The 'alpha' parameter",
        ),
        (
            "surrogate-name",
            _model(changes={("feature_names",): ["\ud800", "b", "c"]}),
            r"has text that is not valid Unicode",
        ),
        (
            "bad-code-point-class",
            _model({"classes_.npy": _npy(np.array(["a", "b", "c"]))[:-4] + b"\0\0\x11\0"}),
            r"array 'classes_' holds text that is not valid Unicode",
        ),
    ]
    return [("model", name, data, match) for name, data, match in cases]


@functools.cache
def hostile_cases():
    """Every hostile case, as :class:`HostileCase`."""
    rows = csv_cases()[0] + compressed_cases() + svmlight_cases() + parquet_cases()
    rows += npz_cases() + model_cases()
    return tuple(HostileCase(*row) for row in rows)


def hostile_seeds(target):
    """The hostile cases of one target that are small enough to seed mutation."""
    return [case for case in hostile_cases() if case.target == target and len(case.data) < 1 << 16]
