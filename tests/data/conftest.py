"""Real corpora for the data tests, read straight from the source files (no TFDS)."""

import re
import zipfile

import pytest

from rnnzoo.data.tokenize import char_tokens
from rnnzoo.data.vocab import Vocabulary


def read_jaychou(path) -> str:
    """The Jay Chou lyrics, decoded from the zip exactly as d2l-zh does."""
    with zipfile.ZipFile(path) as archive:
        return archive.read("jaychou_lyrics.txt").decode("utf-8")


def d2l_jaychou_chars(text: str) -> str:
    """d2l-zh 1st ed.: newlines -> spaces, first 10,000 characters."""
    return text.replace("\n", " ").replace("\r", " ")[:10000]


def d2l_time_machine_chars(text: str) -> str:
    """d2l 2nd ed.: every run of non-letters -> one space, lower case."""
    return re.sub("[^A-Za-z]+", " ", text).lower()


@pytest.fixture(scope="session")
def jaychou_zip(source_dir):
    return source_dir / "jaychou_lyrics.txt.zip"


@pytest.fixture(scope="session")
def jaychou_text(jaychou_zip) -> str:
    return read_jaychou(jaychou_zip)


@pytest.fixture(scope="session")
def timemachine_text(source_dir) -> str:
    return (source_dir / "timemachine.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def jaychou_vocab(jaychou_text) -> Vocabulary:
    """d2l-zh's closed character vocabulary (no unknown token)."""
    return Vocabulary.build(char_tokens(d2l_jaychou_chars(jaychou_text)), unk_token=None)


@pytest.fixture(scope="session")
def time_machine_vocab(timemachine_text) -> Vocabulary:
    return Vocabulary.build(char_tokens(d2l_time_machine_chars(timemachine_text)))


@pytest.fixture(scope="session")
def corpora(jaychou_text, timemachine_text, jaychou_vocab, time_machine_vocab) -> dict:
    """name -> int32 token ids of the real character corpora, as d2l trains on them."""
    return {
        "jaychou": jaychou_vocab.encode(char_tokens(d2l_jaychou_chars(jaychou_text))),
        "time_machine": time_machine_vocab.encode(
            char_tokens(d2l_time_machine_chars(timemachine_text))),
    }
