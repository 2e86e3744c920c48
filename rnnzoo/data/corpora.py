"""rnnzoo's corpora as Python strings, prepared through TFDS.

    from rnnzoo.data.corpora import load_text
    train = load_text("time_machine/d2l")               # d2l's first 10,000 characters
    valid = load_text("text8/prefix", "validation")

A name is TFDS's `corpus/config` (`CORPORA` lists them; a bare corpus name means its
first config). The first call for a name prepares the TFDS dataset in `tfds_dir`;
later calls read it back. Preparing takes the original file from a local source
directory when one is given (`source_dir`, else `$RNNZOO_DATA_DIR`), after checking
its size and sha256, and otherwise downloads it from upstream, where TFDS checks it.
TFDS is kept off its GCS bucket (`try_gcs=False`, `try_download_gcs=False`). Before a
download, the upstream host is probed with a short timeout (`sources.check_reachable`):
offline, preparing fails in seconds with a CorpusError naming `$RNNZOO_DATA_DIR`, and
TFDS has written nothing yet.

Importing this module registers the corpus builders with TFDS.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import tempfile

import tensorflow_datasets as tfds
from etils import epath

# Imported to register the builders with TFDS (plain imports: safe in import cycles).
import rnnzoo_datasets.jaychou_lyrics
import rnnzoo_datasets.text8
import rnnzoo_datasets.time_machine  # noqa: F401
from rnnzoo.data.errors import CorpusError
from rnnzoo_datasets import sources, tiny_shakespeare_offline
from rnnzoo_datasets.sources import SOURCE_DIR_ENV
from rnnzoo_datasets.text_corpus_builder import CorpusConfig, download_source

TFDS_DIR_ENV = "RNNZOO_TFDS_DIR"

# Corpus -> its TFDS configs, the first being the default. tiny_shakespeare is TFDS's
# own builder, which has no configs.
CORPORA: dict[str, tuple[str, ...]] = {
    "jaychou_lyrics": ("d2l_zh", "full"),
    "time_machine": ("d2l", "d2l_full", "raw"),
    "text8": ("full", "course", "prefix", "prefix_course"),
    "tiny_shakespeare": (),
}


def load_text(
    name: str,
    split: str = "train",
    *,
    source_dir: str | os.PathLike | None = None,
    tfds_dir: str | os.PathLike | None = None,
) -> str:
    """Returns one split of a corpus as a `str`, preparing the dataset if needed.

    Args:
      name: `corpus/config` as in `CORPORA`, e.g. "time_machine/d2l",
        "jaychou_lyrics/d2l_zh", "text8/prefix", or "tiny_shakespeare".
      split: "train", "validation" or "test" (text8's course configs have no test).
      source_dir: local directory holding the original files; defaults to
        `$RNNZOO_DATA_DIR`; if neither is set, files are downloaded.
      tfds_dir: TFDS data directory; defaults to `$RNNZOO_TFDS_DIR`, else TFDS's own.

    Raises:
      CorpusError: an unknown corpus, config or split (the message lists the valid
        ones); a missing or empty source directory; a missing, wrong, truncated or
        non-UTF-8 source file; no local source and an upstream host that does not
        answer. A failed preparation leaves no dataset behind.
    """
    corpus, config = _parse_name(name)
    with _quiet_unprepared(), _no_stray_temp_dirs():
        builder = tfds.builder(
            f"{corpus}/{config}" if config else corpus,
            data_dir=_tfds_dir(tfds_dir),
            try_gcs=False,
        )
        prepared = builder.is_prepared()
    splits = _split_names(builder)
    if split not in splits:
        raise CorpusError(f"unknown split {split!r} of {name!r}; choose one of {list(splits)}")
    if not prepared:
        download_config = _download_config(corpus, source_dir)
        if download_config.manual_dir is None:  # No local source: it will be downloaded.
            for source in _downloads(builder):
                sources.check_reachable(source, builder.data_dir_root / "downloads")
        builder.download_and_prepare(download_config=download_config)
    (example,) = builder.as_dataset(split=split).take(1)
    return example["text"].numpy().decode("utf-8")


def corpus_names() -> list[str]:
    """Every valid `name` for `load_text`, e.g. ["jaychou_lyrics/d2l_zh", ...]."""
    return [
        f"{corpus}/{config}" if config else corpus
        for corpus, configs in CORPORA.items()
        for config in (configs or (None,))
    ]


def _parse_name(name: str) -> tuple[str, str | None]:
    """Splits "corpus/config" and checks both parts against CORPORA."""
    corpus, _, config = name.partition("/")
    if corpus not in CORPORA:
        raise CorpusError(f"unknown corpus {name!r}; choose one of {corpus_names()}")
    configs = CORPORA[corpus]
    if not config:
        return corpus, configs[0] if configs else None
    if config not in configs:
        choices = list(configs) or f"none: use {corpus!r}"
        raise CorpusError(f"unknown config {config!r} of corpus {corpus!r}; configs: {choices}")
    return corpus, config


def _split_names(builder) -> tuple[str, ...]:
    """The splits a builder makes, known before it is prepared."""
    config = builder.builder_config
    if isinstance(config, CorpusConfig):
        return config.split.names
    return tiny_shakespeare_offline.SPLITS


def _downloads(builder) -> list[sources.Source]:
    """The files a builder downloads when it has no local source directory."""
    config = builder.builder_config
    if isinstance(config, CorpusConfig):
        source = download_source(config)
        return [source] if source is not None else []
    return [tiny_shakespeare_offline.source()]


class _NotPreparedYet(logging.Filter):
    """Drops TFDS's warning that a dataset's version folder has no dataset_info.json: that is
    what a dataset not prepared yet looks like, and the line would come before the one that
    matters (the preparation, or its error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Variant folder %s has no %s"


@contextlib.contextmanager
def _quiet_unprepared():
    """`_NotPreparedYet` on absl's logger (TFDS logs through it), for the block only."""
    logger, quiet = logging.getLogger("absl"), _NotPreparedYet()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


@contextlib.contextmanager
def _no_stray_temp_dirs():
    """Removes the empty `tmp*tfds` directory TFDS leaves in the temporary directory.

    A builder of a dataset not prepared yet looks for its DatasetInfo on TFDS's GCS bucket
    (`DatasetInfo.initialize_from_bucket`): it makes `tempfile.mkdtemp("tfds")` first, and
    with GCS off (TFDS's default) returns at once, leaving the directory behind, empty, on
    every run. Only empty directories of that name that appeared during the block go.
    """
    tmp = pathlib.Path(tempfile.gettempdir())
    before = set(tmp.glob("tmp*tfds"))
    try:
        yield
    finally:
        for path in set(tmp.glob("tmp*tfds")) - before:
            with contextlib.suppress(OSError):  # not empty, or gone: not ours to remove
                path.rmdir()


def _tfds_dir(tfds_dir) -> str | None:
    tfds_dir = tfds_dir if tfds_dir is not None else os.environ.get(TFDS_DIR_ENV)
    return os.fspath(tfds_dir) if tfds_dir else None


def _download_config(corpus: str, source_dir) -> tfds.download.DownloadConfig:
    """TFDS download settings: the local source directory as manual_dir, no GCS."""
    if source_dir is None:
        source_dir = os.environ.get(SOURCE_DIR_ENV) or None
    manual_dir = None
    if source_dir is not None:
        path = epath.Path(source_dir)
        if not path.is_dir():
            raise CorpusError(
                f"{path}: source directory not found (source_dir / ${SOURCE_DIR_ENV})"
            )
        if not any(path.iterdir()):
            raise CorpusError(f"{path}: source directory is empty; it should hold the corpus files")
        if corpus == tiny_shakespeare_offline.NAME:
            manual_dir = tiny_shakespeare_offline.manual_dir(path)
        else:
            manual_dir = path
    return tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
