"""Mutations of valid files: byte-level damage and structure-aware edits.

Byte-level mutations (bit flips, interesting integers, tokens, insertions, deletions,
truncations, splices, random bytes) find what breaks a parser; on their own they rarely get
past a zip archive's CRC-32 or a model file's SHA-256 checks. The structure-aware mutations
reach further: they decompress, edit and recompress (gzip, bzip2), unzip, edit a member and
re-zip with a valid CRC (``.npz``, model files), rewrite a ``.npy`` header's dtype, shape or
order, put hostile values into a model's ``header.json``, and for model files re-sign the
edited array with its SHA-256, as an attacker would.

Every function takes a :class:`random.Random`, so a seed reproduces a case.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import random
import re
import struct
import warnings
import zipfile
import zlib

# Bytes that mean something to one of the parsers.
TOKENS = (
    b",", b"\n", b"\r\n", b'"', b"'", b"\x00", b"\xef\xbb\xbf", b"\xff\xfe", b"nan", b"NaN",
    b"inf", b"-inf", b"1e309", b"-1e309", b"1e-400", b"-0", b"99999999999999999999999", b":",
    b" ", b"\t", b"#", b"qid:", b"\xff", b"\xc3", b"true", b"NA", b"null", b"0x1p3", b"1_000",
    b"-", b"+", b".", b"e", b"E", b"\\", b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06",
    b"\x93NUMPY", b"PAR1", b"{", b"}", b"[", b"]", b"'shape': (", b"'descr': '",
    b"2147483648", b"4294967296", b"18446744073709551616", b"-2147483649",
)  # fmt: skip
INTERESTING_INTS = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63 - 1)
# dtype descriptions a hostile .npy header or model header may claim.
HOSTILE_DTYPES = (
    "|O", "<c16", "<M8[ns]", "<m8[s]", "|V8", "|S8", "<U0", "|b1", "<i8", ">f8", "<f2",
    "<U2147483647", "[('a', '<f8')]", "<f8,<f8", "(3,)<f8", "|V0", "<f16", "x", "",
)  # fmt: skip
HOSTILE_SHAPES = (
    "()", "(0,)", "(0, 3)", "(1000000000000,)", "(1000000, 1000000)", "(-1, 3)", "(3, -3)",
    "(9223372036854775808, 2)", "(1, 1, 1, 1)", "(3,)", "(12, 3)", "(3, 12)", "None", "'a'",
    "(1.5, 2)", "(0, 1000000000000)",
)  # fmt: skip
# Values a hostile header.json may hold in place of any field.
HOSTILE_JSON = (
    None, True, False, 0, -1, 10**12, 2**64, 1.5, 1e308, float("nan"), float("inf"), "",
    "inf", "nan", "x" * 300, "\ud800", "SoftmaxRegression", "LinearRegression", [], {},
    [10**12, 10**12], [-1], [[[[[[[[[[[]]]]]]]]]]], {"mapping": [[1]]}, {"mapping": "x"},
    {"mapping": [[[], 1]]}, {"dtype": "<f8", "shape": [10**12], "sha256": ""}, "<U2147483647",
    "|O", "float64,float64", "(1000000000000,)f8",
)  # fmt: skip


def mutate_bytes(data, rng, others=()):
    """Apply one to four byte-level mutations; ``others`` are files to splice from."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        data = _BYTE_MUTATIONS[rng.randrange(len(_BYTE_MUTATIONS))](data, rng, others)
    return bytes(data)


def _position(data, rng):
    return rng.randrange(len(data) + 1)


def _flip_bit(data, rng, others):
    if data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return data


def _set_byte(data, rng, others):
    if data:
        data[rng.randrange(len(data))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    return data


def _set_integer(data, rng, others):
    size, code = rng.choice(((1, "B"), (2, "H"), (4, "I"), (8, "Q")))
    value = rng.choice(INTERESTING_INTS) % (1 << (8 * size))
    if rng.random() < 0.5 and value:
        value = (1 << (8 * size)) - value  # the negative one, in two's complement
    packed = struct.pack(rng.choice("<>") + code, value % (1 << (8 * size)))
    at = rng.randrange(max(len(data) - size, 0) + 1)
    data[at : at + size] = packed
    return data


def _insert_token(data, rng, others):
    at = _position(data, rng)
    data[at:at] = rng.choice(TOKENS) * rng.choice((1, 1, 1, 2, 64))
    return data


def _insert_random(data, rng, others):
    at = _position(data, rng)
    data[at:at] = rng.randbytes(rng.choice((1, 2, 4, 16, 256)))
    return data


def _delete_span(data, rng, others):
    start = _position(data, rng)
    del data[start : start + rng.choice((1, 2, 8, 64, 1024))]
    return data


def _duplicate_span(data, rng, others):
    start = _position(data, rng)
    span = data[start : start + rng.choice((1, 8, 64, 512))]
    at = _position(data, rng)
    data[at:at] = span * rng.choice((1, 2, 16))
    return data


def _truncate(data, rng, others):
    return data[: _position(data, rng)]


def _splice(data, rng, others):
    if not others:
        return _truncate(data, rng, others)
    other = rng.choice(others)
    return data[: _position(data, rng)] + other[rng.randrange(len(other) + 1) :]


def _random_file(data, rng, others):
    return bytearray(rng.randbytes(rng.choice((0, 1, 8, 100, 1000))))


_BYTE_MUTATIONS = (
    _flip_bit, _flip_bit, _set_byte, _set_integer, _insert_token, _insert_token,
    _insert_random, _delete_span, _duplicate_span, _truncate, _splice, _random_file,
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Compressed text


# Decompressed text longer than this is cut before it is mutated (a bomb in the pool would
# otherwise cost seconds per case to inflate and recompress).
_MAX_TEXT = 1 << 16


def mutate_compressed(data, rng, codec, others=()):
    """Decompress, mutate the text, recompress; or damage the compressed bytes themselves."""
    compress = {"gz": lambda text: gzip.compress(text, mtime=0), "bz2": bz2.compress}[codec]
    text = _decompressed(data, codec)
    if text is None or rng.random() < 0.3:
        return mutate_bytes(data, rng, others)
    other = _decompressed(rng.choice(others), codec) if others else None
    return compress(mutate_bytes(text, rng, () if other is None else (other,)))


def _decompressed(data, codec):
    """The first :data:`_MAX_TEXT` bytes of decompressed ``data``, or None if it is damaged."""
    opener = {"gz": gzip.open, "bz2": bz2.open}[codec]
    try:
        with opener(io.BytesIO(data)) as stream:
            return stream.read(_MAX_TEXT)
    except (OSError, EOFError, ValueError, zlib.error):
        return None


# --------------------------------------------------------------------------------------------
# Zip archives of .npy arrays


def npy_header(descr, fortran_order, shape):
    """The bytes of a version 1.0 ``.npy`` header, from the header's texts as written."""
    text = f"{{'descr': {descr}, 'fortran_order': {fortran_order}, 'shape': {shape}, }}"
    length = len(text) + 11  # magic (6) + version (2) + length (2) + newline (1)
    text += " " * ((-length) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


_NPY_HEADER = re.compile(rb"^\x93NUMPY\x01\x00(..)", re.DOTALL)


def mutate_npy(data, rng):
    """Rewrite a ``.npy`` header's dtype, order or shape with hostile values; keep the data."""
    match = _NPY_HEADER.match(data)
    if not match:
        return mutate_bytes(data, rng)
    end = 10 + struct.unpack("<H", match.group(1))[0]
    header = data[10:end].decode("latin1")
    fields = dict(
        descr=_field(header, r"'descr': ('[^']*'|\[.*?\])", "'<f8'"),
        fortran_order=_field(header, r"'fortran_order': (\w+)", "False"),
        shape=_field(header, r"'shape': (\([^)]*\))", "()"),
    )
    key = rng.choice(list(fields))
    if key == "descr":
        fields[key] = repr(rng.choice(HOSTILE_DTYPES))
    elif key == "fortran_order":
        fields[key] = rng.choice(("True", "False", "1", "None"))
    else:
        fields[key] = rng.choice(HOSTILE_SHAPES)
    body = data[end:]
    if rng.random() < 0.3:
        body = body[: rng.randrange(len(body) + 1)]
    return npy_header(**fields) + body


def _field(header, pattern, default):
    found = re.search(pattern, header)
    return found.group(1) if found else default


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info, archive.read(info)) for info in archive.infolist()]


def _zip(members, method=zipfile.ZIP_DEFLATED):
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # "Duplicate name": wanted here
        for name, content in members:
            archive.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), content, method)
    return buffer.getvalue()


def mutate_zip(data, rng, others=(), sign=False):
    """Edit one member of a zip of ``.npy`` arrays and re-zip it with valid CRCs.

    With ``sign``, the archive is a model file: an edited array's SHA-256 is updated in
    ``header.json`` (most of the time), and the header itself may be edited.
    """
    try:
        members = [(info.filename, content) for info, content in _members(data)]
    except Exception:  # any damage: fall back to bytes (this is the harness, not a reader)
        return mutate_bytes(data, rng, others)
    if not members or rng.random() < 0.25:
        return mutate_bytes(data, rng, others)
    index = rng.randrange(len(members))
    name, content = members[index]
    choice = rng.random()
    if sign and name == "header.json" and choice < 0.7:
        content = mutate_header(content, rng)
    elif choice < 0.45:
        content = mutate_npy(content, rng)
    elif choice < 0.8:
        content = mutate_bytes(content, rng)
    elif choice < 0.87:
        name = rng.choice(("../" + name, "/abs/" + name, name + "/", "", name, "a\\b.npy"))
    elif choice < 0.94:
        members.append((name, content))  # a duplicate member
    else:
        members.pop(index)
        return _zip(members)
    members[index] = (name, content)
    if sign and rng.random() < 0.8:
        members = _sign(members)
    method = rng.choice((zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED, zipfile.ZIP_BZIP2))
    return _zip(members, method)


def _sign(members):
    """Recompute the SHA-256 of every array listed in a model header."""
    contents = dict(members)
    try:
        header = json.loads(contents["header.json"])
        for name, info in header["arrays"].items():
            if f"{name}.npy" in contents:
                info["sha256"] = hashlib.sha256(contents[f"{name}.npy"]).hexdigest()
        signed = json.dumps(header).encode()
    except Exception:  # the header is already broken: leave it so
        return members
    return [(name, signed if name == "header.json" else content) for name, content in members]


def mutate_header(content, rng):
    """Put a hostile value somewhere in a model's ``header.json``, or break its text."""
    try:
        header = json.loads(content)
    except (ValueError, RecursionError):
        return mutate_bytes(content, rng)
    if rng.random() < 0.2 or not isinstance(header, dict):
        return mutate_bytes(content, rng)
    paths = list(_json_paths(header))
    path = rng.choice(paths)
    parent = header
    for key in path[:-1]:
        parent = parent[key]
    if rng.random() < 0.15 and isinstance(parent, dict):
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = rng.choice(HOSTILE_JSON)
    return json.dumps(header, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")


def _json_paths(value, prefix=()):
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        yield (*prefix, key)
        if isinstance(child, (dict, list)):
            yield from _json_paths(child, (*prefix, key))


# --------------------------------------------------------------------------------------------


def mutate(target, data, rng, others=()):
    """One mutant of ``data`` (a file of ``target``), chosen by ``rng``."""
    if target in ("csv.gz", "csv.bz2"):
        return mutate_compressed(data, rng, target.split(".")[1], others)
    if target in ("npz", "model"):
        return mutate_zip(data, rng, others, sign=target == "model")
    return mutate_bytes(data, rng, others)


def new_rng(seed):
    """A generator for case ``seed`` (an int or a string)."""
    return random.Random(seed)
