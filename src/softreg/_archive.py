"""Read untrusted files within a memory bound: NumPy arrays in zip archives, compressed text.

``.npz`` data files and softreg model files are zip archives of ``.npy`` arrays; CSV and
svmlight files may be gzip- or bzip2-compressed. Every such file says how large its contents
are (a zip member's uncompressed size, a ``.npy`` header's dtype and shape), and a hostile file
can say anything: a shape of 10^12 elements, a member that inflates to terabytes (a zip bomb).
The functions here check each declared size against the file's other declarations and against
:data:`MAX_DECODED_BYTES` *before* allocating memory for it, and stop decompressing at that
bound, so reading one file never takes more memory than the bound fixed before reading
(plus the bytes of the archive's own directory, which the file on disk holds).

Every problem raises :class:`UnreadableFileError`, whose message does not name the file: each
reader adds the file name and re-raises its documented error (``DataError`` for data files,
``ModelFileError`` for model files). :data:`ARCHIVE_ERRORS` and :data:`DECOMPRESSION_ERRORS`
list what the standard library raises on damaged archives and streams, for the readers to
catch in the same way.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import math
import os
import struct
import tokenize
import zipfile
import zlib
from collections import Counter

import numpy as np

__all__ = [
    "ARCHIVE_ERRORS",
    "DECOMPRESSION_ERRORS",
    "MAX_DECODED_BYTES",
    "UnreadableFileError",
    "ZipArrays",
    "check_decoded_size",
    "compression",
    "npy_from_bytes",
    "one_line",
    "open_binary",
]


class UnreadableFileError(ValueError):
    """A file cannot be read safely; the message says why, without the file name."""


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX: assume a small machine
        return 8 << 30


#: The most bytes softreg decodes from one file (decompressed text, zip members, arrays): half
#: of this machine's memory. A file that declares more is refused before anything is
#: allocated; the readers look this up at each call, so it can be lowered for a process.
MAX_DECODED_BYTES = _physical_memory() // 2

#: What :mod:`zipfile` raises on a damaged archive besides :class:`zipfile.BadZipFile`:
#: unsupported compression methods and encryption (NotImplementedError, RuntimeError), member
#: names that are not UTF-8 (UnicodeDecodeError), damaged compressed data (zlib, lzma, bz2's
#: OSError), data that ends early (EOFError) and size fields that overflow (struct.error,
#: OverflowError).
ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    RuntimeError,
    UnicodeDecodeError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    struct.error,
    OverflowError,
)
#: What gzip and bz2 streams raise on damaged or truncated data (BadGzipFile is an OSError).
DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error)

_NPY_VERSIONS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
# numpy's own default: a .npy header longer than this is refused unparsed.
_MAX_NPY_HEADER = 10_000
_CHUNK = 1 << 20


def one_line(text):
    r"""``text`` on one line: a library's message (pyarrow's end in newlines) inside ours.

    Examples
    --------
    >>> one_line("Couldn't deserialize thrift: TProtocolException: Invalid data\n")
    "Couldn't deserialize thrift: TProtocolException: Invalid data"
    >>> one_line("Multiple matches for x in x: double\nx: double")
    'Multiple matches for x in x: double; x: double'
    """
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _size(n_bytes):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n_bytes < 1024 or unit == "TiB":
            return f"{n_bytes:.0f} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def check_decoded_size(n_bytes, what):
    """Refuse ``n_bytes`` of decoded data when it exceeds :data:`MAX_DECODED_BYTES`.

    Parameters
    ----------
    n_bytes : int
        The size the file declares (or has reached while decoding).
    what : str
        What would take the memory, e.g. ``"array 'X'"``.

    Raises
    ------
    UnreadableFileError
        If ``n_bytes`` is larger than the bound.

    Examples
    --------
    >>> check_decoded_size(10**15, "array 'X'")
    Traceback (most recent call last):
    ...
    softreg._archive.UnreadableFileError: array 'X' would take 909.5 TiB in memory, more than ...
    """
    if n_bytes > MAX_DECODED_BYTES:
        raise UnreadableFileError(
            f"{what} would take {_size(n_bytes)} in memory, more than the "
            f"{_size(MAX_DECODED_BYTES)} softreg decodes from one file (half this machine's "
            "memory)"
        )


# --------------------------------------------------------------------------------------------
# .npy arrays


def _npy_header(stream, what):
    """Read a ``.npy`` header: the dtype, the shape and the number of header bytes."""
    try:
        version = np.lib.format.read_magic(stream)
        if version not in _NPY_VERSIONS:
            raise UnreadableFileError(
                f"{what} has .npy format version {version}; expected 1.0 or 2.0"
            )
        shape, fortran_order, dtype = _NPY_VERSIONS[version](
            stream, max_header_size=_MAX_NPY_HEADER
        )
    except UnreadableFileError:
        raise
    except (ValueError, TypeError, OverflowError, SyntaxError, tokenize.TokenError) as exc:
        # numpy raises ValueError for a bad magic string, header or dtype description, and
        # lets the tokenizer's TokenError out of headers from before Python 3; an absurd dtype
        # (U of 2^63 characters) can raise TypeError or OverflowError.
        raise UnreadableFileError(f"{what} is not a readable .npy array ({exc})") from exc
    if dtype.hasobject:
        raise UnreadableFileError(
            f"{what} cannot be read without pickle (it holds Python objects, dtype {dtype}); "
            "softreg never unpickles, because that can run code from the file"
        )
    if dtype.itemsize == 0:
        raise UnreadableFileError(f"{what} has items of size zero (dtype {dtype})")
    n_items = math.prod(shape)
    check_decoded_size(n_items * dtype.itemsize, f"{what} of shape {shape}")
    return dtype, shape, fortran_order, n_items * dtype.itemsize


def npy_from_bytes(data, what):
    """An array from the bytes of a ``.npy`` file, checked against its declared size first.

    Parameters
    ----------
    data : bytes-like
        The whole ``.npy`` file.
    what : str
        The array's name in messages, e.g. ``"array 'coef_'"``.

    Returns
    -------
    ndarray
        A view of ``data`` (writable when ``data`` is a bytearray).

    Raises
    ------
    UnreadableFileError
        If the header is damaged, the dtype holds Python objects, or the declared shape and
        dtype do not match the number of data bytes.

    Examples
    --------
    >>> buffer = io.BytesIO()
    >>> np.save(buffer, np.arange(3.0))
    >>> npy_from_bytes(buffer.getvalue(), "array 'a'")
    array([0., 1., 2.])
    >>> npy_from_bytes(buffer.getvalue()[:-1], "array 'a'")
    Traceback (most recent call last):
    ...
    softreg._archive.UnreadableFileError: array 'a' declares shape (3,) of dtype float64 ...
    """
    stream = io.BytesIO(data)
    dtype, shape, fortran_order, n_bytes = _npy_header(stream, what)
    offset = stream.tell()
    if len(data) - offset != n_bytes:
        raise UnreadableFileError(
            f"{what} declares shape {shape} of dtype {dtype} ({n_bytes} bytes) but holds "
            f"{len(data) - offset} bytes of data"
        )
    if dtype.kind == "U" and n_bytes:
        # numpy stores text as UCS-4 code points and turns any 32-bit value into a str until
        # .tolist() meets one past U+10FFFF; surrogates cannot be printed or encoded.
        codes = np.frombuffer(
            data,
            dtype=np.dtype("u4").newbyteorder(dtype.byteorder),
            count=n_bytes // 4,
            offset=offset,
        )
        invalid = (codes > 0x10FFFF) | ((codes >= 0xD800) & (codes <= 0xDFFF))
        if invalid.any():
            raise UnreadableFileError(
                f"{what} holds text that is not valid Unicode (code point "
                f"{int(codes[invalid][0]):#x})"
            )
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset)
    return array.reshape(shape, order="F" if fortran_order else "C")


class ZipArrays:
    """A zip archive of ``.npy`` members, read within :data:`MAX_DECODED_BYTES`.

    Opening checks the archive as a whole: no member name twice, no name with a directory
    part (``../``, ``/``), and the members' declared uncompressed sizes together within the
    bound. Reading a member never decodes more than its declared size (zipfile stops there and
    checks the CRC-32).

    Parameters
    ----------
    handle : binary file object
        The open archive.

    Raises
    ------
    UnreadableFileError
        If the archive breaks one of the rules above.
    zipfile.BadZipFile, and the rest of :data:`ARCHIVE_ERRORS`
        If the archive is damaged.
    """

    def __init__(self, handle):
        self._zip = zipfile.ZipFile(handle)
        infos = self._zip.infolist()
        repeated = [name for name, count in Counter(i.filename for i in infos).items() if count > 1]
        if repeated:
            raise UnreadableFileError(f"has the member {repeated[0]!r} more than once")
        for info in infos:
            if not _plain_name(info.filename):
                raise UnreadableFileError(
                    f"has a member named {info.filename!r}; expected plain file names without "
                    "directories"
                )
        check_decoded_size(sum(info.file_size for info in infos), "the archive's members")
        self.names = [info.filename for info in infos]

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._zip.close()

    def member_size(self, name):
        """The uncompressed size the archive declares for member ``name``."""
        return self._zip.getinfo(name).file_size

    def read_bytes(self, name):
        """The bytes of member ``name``, at most its declared size, CRC-checked."""
        data = bytearray()
        with self._zip.open(name) as member:
            while chunk := member.read(_CHUNK):
                data += chunk
        return data

    def read_array(self, name, what):
        """Member ``name`` as an array; see :func:`npy_from_bytes`."""
        with self._zip.open(name) as member:
            # The header alone first, so a shape too large is refused before the data is read.
            _npy_header(member, what)
        return npy_from_bytes(self.read_bytes(name), what)


def _plain_name(name):
    return bool(name) and not any(mark in name for mark in ("/", "\\", "\0")) and name != ".."


# --------------------------------------------------------------------------------------------
# Compressed text


class _BoundedReader(io.RawIOBase):
    """A decompressing stream that refuses to produce more than MAX_DECODED_BYTES."""

    def __init__(self, stream, what):
        self._stream = stream
        self._what = what
        self._count = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n_read = self._stream.readinto(buffer)
        self._count += n_read
        check_decoded_size(self._count, self._what)
        return n_read

    def close(self):
        self._stream.close()
        super().close()


_DECOMPRESSORS = {".gz": gzip.open, ".bz2": bz2.open}


def compression(path):
    """``".gz"``, ``".bz2"`` or None, from the file name."""
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    return suffix if suffix in _DECOMPRESSORS else None


@contextlib.contextmanager
def open_binary(path):
    """Open a possibly compressed file for binary reading, within :data:`MAX_DECODED_BYTES`.

    Parameters
    ----------
    path : str or path-like
        A ``.gz`` or ``.bz2`` name is decompressed while read.

    Yields
    ------
    binary file object
        Raises :class:`UnreadableFileError` when the decompressed bytes exceed the bound, and
        :data:`DECOMPRESSION_ERRORS` when the compressed data is damaged.

    Raises
    ------
    UnreadableFileError
        If an uncompressed file is larger than the bound.
    FileNotFoundError
        If there is no such file.
    """
    suffix = compression(path)
    if suffix is None:
        check_decoded_size(os.path.getsize(path), "the file")
        with open(path, "rb") as handle:
            yield handle
        return
    with (
        _DECOMPRESSORS[suffix](path, "rb") as stream,
        io.BufferedReader(_BoundedReader(stream, "the decompressed file"), _CHUNK) as reader,
    ):
        yield reader
