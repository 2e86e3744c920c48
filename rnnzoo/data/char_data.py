"""A corpus as character ids: the splits, the training vocabulary, the encoded streams."""

from __future__ import annotations

import dataclasses

import numpy as np

from rnnzoo.data import corpora
from rnnzoo.data.tokenize import char_tokens
from rnnzoo.data.vocab import Vocabulary


@dataclasses.dataclass
class CharData:
    """Character ids of a corpus' training and validation splits, int32 `[num_chars]`."""

    vocab: Vocabulary
    train_ids: np.ndarray
    val_ids: np.ndarray


def load_char_data(corpus: str, *, vocab: Vocabulary | None = None, max_size: int = 0,
                   min_count: int = 1, source_dir=None, tfds_dir=None) -> CharData:
    """Loads `corpus` ("name/config") and encodes its train and validation splits.

    The vocabulary is built from the training split alone (unless `vocab` is given), with
    `<unk>` at id 0; validation characters outside it map to `<unk>`, as every unknown
    character does (the project's unknown-token policy).
    """
    train_text = corpora.load_text(corpus, "train", source_dir=source_dir, tfds_dir=tfds_dir)
    val_text = corpora.load_text(corpus, "validation", source_dir=source_dir, tfds_dir=tfds_dir)
    train_tokens = char_tokens(train_text)
    if vocab is None:
        vocab = Vocabulary.build(train_tokens, max_size=max_size or None, min_count=min_count)
    return CharData(vocab=vocab, train_ids=vocab.encode(train_tokens),
                    val_ids=vocab.encode(char_tokens(val_text)))
