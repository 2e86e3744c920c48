"""text8: the first 10^8 bytes of cleaned English Wikipedia (Matt Mahoney), by characters.

Two sources, and the configs say which they use:

* FULL text8: `text8.zip` from http://mattmahoney.net/dc/text8.zip (31,344,016 bytes),
  member `text8`, 100,000,000 characters. No trustworthy sha256 of text8.zip was found,
  so it is checked by its size and by the member's size (100,000,000) and CRC-32
  (0x7d6be66f), which `zipfile` verifies against the inflated bytes.
* a text8 PREFIX: the first 12,549,840 bytes of text8 (2,139,749 words, ending
  mid-word), checked by its sha256 (PREFIX). `fetch_prefix` says where it comes from:
  with a local source directory (authoritative: nothing is downloaded), the file
  `text8_prefix_12549840.txt` there, or, if that is missing, the `text8.zip` there;
  without one, `text8.zip` downloaded from upstream. From a text8.zip (checked as for
  FULL text8) `read_prefix` cuts the first 12,549,840 bytes of its member and checks
  their sha256. The build log names the file used ("Building text8/prefix from ...").
"""

from __future__ import annotations

import functools
import logging

from etils import epath

from rnnzoo_datasets import sources, splits, text_files
from rnnzoo_datasets.errors import CorpusError
from rnnzoo_datasets.text_corpus_builder import (
    CorpusConfig,
    TextCorpusBuilder,
    offline_instructions,
)

TEXT8_ZIP = sources.Source(
    filename="text8.zip",
    size=31_344_016,
    sha256=None,  # unknown: see the module docstring and checksums.tsv
    url="http://mattmahoney.net/dc/text8.zip",
)
TEXT8_MEMBER = "text8"
TEXT8_SIZE = 100_000_000
TEXT8_CRC32 = 0x7D6BE66F

PREFIX = sources.Source(
    filename="text8_prefix_12549840.txt",
    size=12_549_840,
    sha256="1b40ab68e13d520469aa90315b92b1466810394246571fadf742c971c3b65a25",
    url=None,  # derived: a local file, else cut from text8.zip (see fetch_prefix)
)

logger = logging.getLogger(__name__)

_read_full = functools.partial(
    text_files.read_zip_text, member=TEXT8_MEMBER, size=TEXT8_SIZE, crc32=TEXT8_CRC32
)
_FULL = "the FULL text8 (100,000,000 characters, from text8.zip)"
_PREFIX = (
    "a text8 PREFIX (the first 12,549,840 characters of text8 only, NOT the full "
    "100,000,000; from text8_prefix_12549840.txt in a local source directory, else cut "
    "from text8.zip)"
)
_COURSE = (
    "the TensorFlow deep learning course split: validation = the first 1,000 "
    "characters, train = all the rest; there is NO test split"
)


def fetch_prefix(
    dl_manager, prefix: sources.Source, text8_zip: sources.Source = TEXT8_ZIP
) -> epath.Path:
    """Returns the verified file to read `prefix` from: the prefix file, or a text8.zip.

    A local source directory, when set, is authoritative and nothing is downloaded: its
    prefix file if it has one, else its text8.zip if it has one (chosen over refusing,
    since the prefix cut from it gets the same sha256 check), else a CorpusError naming
    both. Without a local directory, text8.zip is downloaded. `sources.fetch` checks
    whichever file is used; `read_prefix` reads either.
    """
    local_dir = sources.local_source_dir(dl_manager)
    if local_dir is not None and (local_dir / prefix.filename).exists():
        return sources.fetch(dl_manager, prefix)
    if local_dir is not None and not (local_dir / text8_zip.filename).exists():
        raise CorpusError(
            f"{local_dir / prefix.filename}: file not found; expected {prefix.filename} "
            f"({prefix.size:,} bytes), or {text8_zip.filename} in the same directory to cut "
            f"it from (upstream: {text8_zip.url})"
        )
    path = sources.fetch(dl_manager, text8_zip)
    logger.info(
        "Cutting %s (the first %s bytes of text8) from %s",
        prefix.filename,
        f"{prefix.size:,}",
        path,
    )
    return path


def read_prefix(
    path: epath.Path,
    prefix: sources.Source = PREFIX,
    *,
    size: int = TEXT8_SIZE,
    crc32: int = TEXT8_CRC32,
) -> str:
    """Returns `prefix`'s text from `fetch_prefix`'s file.

    The prefix file itself (already verified) is read as it is. From a text8.zip, the
    member `text8` is inflated, its `size` and `crc32` checked, and its first
    `prefix.size` bytes must have `prefix.sha256`.

    Raises:
      CorpusError: a bad zip or member (see `text_files.read_zip_member`), or cut bytes
        of the wrong size or sha256 (naming the zip, the member and the expected value).
    """
    if path.name == prefix.filename:
        return text_files.read_text(path)
    data = text_files.read_zip_member(path, TEXT8_MEMBER, size=size, crc32=crc32)
    where = f"{path}[{TEXT8_MEMBER}][:{prefix.size}]"
    return text_files.decode_utf8(sources.verify_bytes(data[: prefix.size], prefix, where), where)


class Builder(TextCorpusBuilder):
    """text8 by characters, full or a prefix, split 90/5/5 or the course's way."""

    DESCRIPTION = (
        "text8 (Matt Mahoney): cleaned English Wikipedia, one line of a-z and spaces. "
        "Each config says whether it is built from the FULL text8 or from a PREFIX of "
        "it. One example per split: {'text': the split's characters}."
    )
    HOMEPAGE = "http://mattmahoney.net/dc/textdata.html"
    MANUAL_DOWNLOAD_INSTRUCTIONS = offline_instructions(TEXT8_ZIP.filename, PREFIX.filename)
    BUILDER_CONFIGS = [
        CorpusConfig(
            name="full",
            description=f"Built from {_FULL}; split 90M / 5M / 5M characters.",
            source=TEXT8_ZIP,
            read=_read_full,
        ),
        CorpusConfig(
            name="course",
            description=f"Built from {_FULL}; {_COURSE}.",
            source=TEXT8_ZIP,
            read=_read_full,
            split=splits.ValidationFirst(1000),
        ),
        CorpusConfig(
            name="prefix",
            description=f"Built from {_PREFIX}; split 90/5/5 by characters.",
            source=PREFIX,
            download=TEXT8_ZIP,
            fetch=fetch_prefix,
            read=read_prefix,
        ),
        CorpusConfig(
            name="prefix_course",
            description=f"Built from {_PREFIX}; {_COURSE}.",
            source=PREFIX,
            download=TEXT8_ZIP,
            fetch=fetch_prefix,
            read=read_prefix,
            split=splits.ValidationFirst(1000),
        ),
    ]
