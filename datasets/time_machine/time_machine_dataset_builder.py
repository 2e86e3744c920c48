"""H. G. Wells' *The Time Machine*, the character corpus of d2l's RNN chapters."""

from __future__ import annotations

import re

from etils import epath

from rnnzoo_datasets import sources, splits
from rnnzoo_datasets.text_corpus_builder import (
    CorpusConfig,
    TextCorpusBuilder,
    offline_instructions,
)

SOURCE = sources.read_checksums(epath.Path(__file__).parent / "checksums.tsv")["timemachine.txt"]

_D2L_CITATION = """\
@book{zhang2023dive,
  title={Dive into Deep Learning},
  author={Zhang, Aston and Lipton, Zachary C. and Li, Mu and Smola, Alexander J.},
  publisher={Cambridge University Press},
  year={2023},
  url={https://D2L.ai}
}"""


def d2l_clean(text: str) -> str:
    """d2l's preprocessing: every run of non-letters becomes one space, then lower case."""
    return re.sub("[^A-Za-z]+", " ", text).lower()


class Builder(TextCorpusBuilder):
    """The Time Machine, raw or cleaned as d2l does."""

    DESCRIPTION = (
        "H. G. Wells, The Time Machine (1898), the file d2l uses "
        "(d2l DATA_HUB['time_machine'], 178,979 bytes of ASCII). One example per split: "
        "{'text': the split's characters}."
    )
    HOMEPAGE = "https://d2l.ai/chapter_recurrent-neural-networks/text-sequence.html"
    CITATION = _D2L_CITATION
    MANUAL_DOWNLOAD_INSTRUCTIONS = offline_instructions(SOURCE.filename)
    BUILDER_CONFIGS = [
        CorpusConfig(
            name="d2l",
            description=(
                "d2l-cleaned ([^A-Za-z]+ -> ' ', lower case); train = the first 10,000 "
                "characters (d2l's load_data_time_machine max_tokens=10000), validation = "
                "[10000, 15000), test = [15000, 20000)."
            ),
            source=SOURCE,
            clean=d2l_clean,
            split=splits.Leading((("train", 10_000), ("validation", 5_000), ("test", 5_000))),
        ),
        CorpusConfig(
            name="d2l_full",
            description="d2l-cleaned whole text, split 90/5/5 by characters.",
            source=SOURCE,
            clean=d2l_clean,
        ),
        CorpusConfig(
            name="raw",
            description="The file's text as it is (case, punctuation, newlines), 90/5/5.",
            source=SOURCE,
        ),
    ]
