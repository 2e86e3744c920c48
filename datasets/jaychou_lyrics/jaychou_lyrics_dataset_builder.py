"""Jay Chou lyrics, the Chinese character corpus of d2l-zh (1st edition)'s RNN chapters."""

from __future__ import annotations

import functools

from etils import epath

from rnnzoo_datasets import sources, splits, text_files
from rnnzoo_datasets.text_corpus_builder import (
    CorpusConfig,
    TextCorpusBuilder,
    offline_instructions,
)

SOURCE = sources.read_checksums(epath.Path(__file__).parent / "checksums.tsv")[
    "jaychou_lyrics.txt.zip"
]
MEMBER = "jaychou_lyrics.txt"

_read = functools.partial(text_files.read_zip_text, member=MEMBER)


def newlines_to_spaces(text: str) -> str:
    """d2l-zh's preprocessing: '\\n' and '\\r' each become a space."""
    return text.replace("\n", " ").replace("\r", " ")


class Builder(TextCorpusBuilder):
    """Jay Chou lyrics, newlines turned into spaces."""

    DESCRIPTION = (
        "Jay Chou lyrics as shipped with d2l-zh (1st ed.), data/jaychou_lyrics.txt.zip, "
        "member jaychou_lyrics.txt (UTF-8, 63,282 characters). Third-party copyrighted "
        "text published for teaching: use it for research and tests only. One example "
        "per split: {'text': the split's characters}."
    )
    HOMEPAGE = "https://github.com/d2l-ai/d2l-zh/tree/v1"
    MANUAL_DOWNLOAD_INSTRUCTIONS = offline_instructions(SOURCE.filename)
    BUILDER_CONFIGS = [
        CorpusConfig(
            name="d2l_zh",
            description=(
                "As d2l-zh 1st ed.: newlines -> spaces; train = the first 10,000 "
                "characters (1,027 distinct), validation = [10000, 15000), "
                "test = [15000, 20000)."
            ),
            source=SOURCE,
            read=_read,
            clean=newlines_to_spaces,
            split=splits.Leading((("train", 10_000), ("validation", 5_000), ("test", 5_000))),
        ),
        CorpusConfig(
            name="full",
            description="Newlines -> spaces, the whole text split 90/5/5 by characters.",
            source=SOURCE,
            read=_read,
            clean=newlines_to_spaces,
        ),
    ]
