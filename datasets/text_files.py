"""Reading corpus text out of plain files and zip archives, strictly as UTF-8."""

from __future__ import annotations

import zipfile
import zlib

from etils import epath

from rnnzoo_datasets.errors import CorpusError


def decode_utf8(data: bytes, where: str) -> str:
    """Decodes `data` as UTF-8, or raises CorpusError naming `where` and the bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(
            f"{where}: not UTF-8 text: byte {data[err.start]:#04x} at offset "
            f"{err.start:,} ({err.reason}); the corpus must be UTF-8 encoded"
        ) from None


def read_text(path: epath.PathLike) -> str:
    """Returns the whole of a UTF-8 text file, byte for byte (no newline translation)."""
    path = epath.Path(path)
    return decode_utf8(path.read_bytes(), str(path))


def read_zip_member(
    path: epath.PathLike,
    member: str,
    *,
    size: int | None = None,
    crc32: int | None = None,
) -> bytes:
    """Returns the bytes of one member of a zip archive, checked.

    `zipfile` checks the inflated bytes against the CRC-32 in the archive; `size` and
    `crc32`, when given, pin that header to the expected member, so a well-formed zip
    of other content is refused too.

    Raises:
      CorpusError: the archive is truncated or corrupt (no central directory, a bad
        deflate stream, a CRC-32 mismatch), lacks `member`, or the member's size or
        CRC-32 is not the expected one.
    """
    path = epath.Path(path)
    where = f"{path}[{member}]"
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise CorpusError(
                    f"{path}: zip archive has no member {member!r}; it holds {archive.namelist()}"
                ) from None
            if size is not None and info.file_size != size:
                raise CorpusError(
                    f"{where}: wrong uncompressed size: expected {size:,} bytes, "
                    f"got {info.file_size:,}"
                )
            if crc32 is not None and info.CRC != crc32:
                raise CorpusError(
                    f"{where}: wrong CRC-32: expected {crc32:#010x}, got {info.CRC:#010x}"
                )
            return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
        raise CorpusError(f"{path}: truncated or corrupt zip archive: {err}") from err


def read_zip_text(path: epath.PathLike, member: str, **checks: int) -> str:
    """Returns one zip member decoded as UTF-8; `checks` are `read_zip_member`'s size/crc32."""
    data = read_zip_member(path, member, **checks)
    return decode_utf8(data, f"{epath.Path(path)}[{member}]")
