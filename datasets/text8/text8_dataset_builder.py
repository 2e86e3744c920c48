"""text8: the first 10^8 bytes of cleaned English Wikipedia (Matt Mahoney), by characters.

Two sources, and the configs say which they use:

* FULL text8: `text8.zip` from http://mattmahoney.net/dc/text8.zip (31,344,016 bytes),
  member `text8`, 100,000,000 characters. No trustworthy sha256 of text8.zip was found,
  so it is checked by its size and by the member's size (100,000,000) and CRC-32
  (0x7d6be66f), which `zipfile` verifies against the inflated bytes.
* a text8 PREFIX: `text8_prefix_12549840.txt`, the first 12,549,840 bytes of text8
  (2,139,749 words, ending mid-word), derived from a truncated download. It has no
  upstream URL and is only taken from a local source directory, checked by its sha256.
"""

from __future__ import annotations

import functools

from rnnzoo_datasets import sources, splits, text_files
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
    url=None,  # derived: local source directory only
)

_read_full = functools.partial(
    text_files.read_zip_text, member=TEXT8_MEMBER, size=TEXT8_SIZE, crc32=TEXT8_CRC32
)
_FULL = "the FULL text8 (100,000,000 characters, from text8.zip)"
_PREFIX = (
    "a text8 PREFIX (the first 12,549,840 characters of text8 only, NOT the full "
    "100,000,000; from text8_prefix_12549840.txt)"
)
_COURSE = (
    "the TensorFlow deep learning course split: validation = the first 1,000 "
    "characters, train = all the rest; there is NO test split"
)


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
        ),
        CorpusConfig(
            name="prefix_course",
            description=f"Built from {_PREFIX}; {_COURSE}.",
            source=PREFIX,
            split=splits.ValidationFirst(1000),
        ),
    ]
