"""The shared shape of rnnzoo's text corpora as TFDS datasets.

Each corpus is one original file, read to a `str`, optionally cleaned, and cut into
contiguous splits. Each split is ONE example, `{'text': tfds.features.Text()}`, as
in TFDS's own `tiny_shakespeare`. A `CorpusConfig` holds the steps as data:
`source` (which file), `fetch` (where from), `read` (file -> str), `clean` (str -> str)
and `split` (a splitter from `rnnzoo_datasets.splits`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import tensorflow_datasets as tfds
from etils import epath

from rnnzoo_datasets import sources, splits, text_files

logger = logging.getLogger(__name__)


def identity(text: str) -> str:
    """Leaves the text as it is."""
    return text


@dataclasses.dataclass
class CorpusConfig(tfds.core.BuilderConfig):
    """One named way to build a corpus.

    Attributes:
      source: the original file (name, size, sha256, URL).
      fetch: `(dl_manager, source) -> path` of the verified file to read;
        `sources.fetch` unless the config can also be read from another original
        (text8's prefix configs: from text8.zip).
      read: turns the verified file into text; raises CorpusError if it cannot.
      clean: applied to the whole text before splitting.
      split: a splitter (`names`, `bounds(length)`) from `rnnzoo_datasets.splits`.
      download: the file `fetch` downloads when no local source directory is set,
        if not `source` (text8's prefix configs: text8.zip); see `download_source`.
    """

    source: sources.Source | None = None
    download: sources.Source | None = None
    fetch: Callable[[Any, sources.Source], epath.Path] = sources.fetch
    read: Callable[[epath.Path], str] = text_files.read_text
    clean: Callable[[str], str] = identity
    split: splits.Splitter = dataclasses.field(default_factory=splits.NinetyFiveFive)


def download_source(config: CorpusConfig) -> sources.Source | None:
    """The file a config downloads when no local source directory is set (None: none)."""
    source = config.download or config.source
    return source if source is not None and source.url is not None else None


def offline_instructions(*filenames: str) -> str:
    """`MANUAL_DOWNLOAD_INSTRUCTIONS` text: how to build without a network."""
    return (
        "Optional. To build offline, put the original file(s) "
        f"{', '.join(filenames)} in one directory and pass it as "
        f"`download_config.manual_dir`, or set ${sources.SOURCE_DIR_ENV}. Their size "
        "and sha256 are checked before use."
    )


class TextCorpusBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base class: one text file -> one example per split.

    Subclasses set `BUILDER_CONFIGS` (of `CorpusConfig`), `DESCRIPTION`, `HOMEPAGE`,
    `CITATION` and `MANUAL_DOWNLOAD_INSTRUCTIONS`.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    DESCRIPTION = ""
    HOMEPAGE = ""
    CITATION = ""

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        return self.dataset_info_from_configs(
            description=f"{self.DESCRIPTION}\n\nConfig `{config.name}`: {config.description}",
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
            supervised_keys=None,
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
        )

    def _split_generators(self, dl_manager):
        config = self.builder_config
        path = config.fetch(dl_manager, config.source)
        logger.info("Building %s/%s from %s: %s", self.name, config.name, path, config.description)
        text = config.clean(config.read(path))
        pieces = splits.split_text(text, config.split)
        return {name: self._generate_examples(name, piece) for name, piece in pieces.items()}

    def _generate_examples(self, split: str, text: str):
        yield split, {"text": text}
