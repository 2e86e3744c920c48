"""Building TFDS's own `tiny_shakespeare` from a local copy of char-rnn's `input.txt`.

TFDS's DownloadManager takes a file from `download_config.manual_dir` instead of
downloading it when the builder's `checksums.tsv` names the file (here `input.txt`),
and then checks that file's size and sha256 against the same row. So a local source
directory holding `tinyshakespeare/input.txt` is used by passing its `tinyshakespeare/`
folder as `manual_dir`. `manual_dir` checks the file first, so that a bad one fails
with a CorpusError rather than TFDS's NonMatchingChecksumError; TFDS is not patched.
"""

from __future__ import annotations

import tensorflow_datasets as tfds
from etils import epath

from rnnzoo_datasets import sources

NAME = "tiny_shakespeare"
SUBDIR = "tinyshakespeare"
SPLITS = ("train", "validation", "test")


def source() -> sources.Source:
    """`input.txt` as TFDS's tiny_shakespeare `checksums.tsv` lists it."""
    ((url, info),) = tfds.builder_cls(NAME).url_infos.items()
    return sources.Source(
        filename=info.filename, size=int(info.size), sha256=info.checksum, url=url
    )


def manual_dir(source_dir: epath.PathLike) -> epath.Path:
    """Verifies `source_dir/tinyshakespeare/input.txt`; returns the folder for manual_dir.

    Raises:
      CorpusError: the file is missing or its size or sha256 is wrong.
    """
    folder = epath.Path(source_dir) / SUBDIR
    wanted = source()
    sources.verify_file(folder / wanted.filename, wanted)
    return folder
