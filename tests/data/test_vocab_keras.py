"""`Vocabulary.to_string_lookup` gives exactly the ids of `Vocabulary.encode`."""

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.data.tokenize import char_tokens
from rnnzoo.data.vocab import Vocabulary


def _lookup_ids(layer, tokens) -> np.ndarray:
    return layer(tf.constant(tokens, dtype=tf.string)).numpy()


def test_same_ids_with_unk_on_real_text(timemachine_text, time_machine_vocab):
    layer = time_machine_vocab.to_string_lookup()
    chars = char_tokens(timemachine_text[:20000])  # raw text: capitals, digits, "\n" are OOV
    expected = time_machine_vocab.encode(chars)
    assert (expected == 0).any()
    np.testing.assert_array_equal(_lookup_ids(layer, chars), expected)
    assert layer.vocabulary_size() == len(time_machine_vocab)
    assert layer.get_vocabulary() == time_machine_vocab.tokens


def test_same_ids_without_unk_on_real_text(jaychou_text, jaychou_vocab):
    layer = jaychou_vocab.to_string_lookup()
    chars = char_tokens(jaychou_text.replace("\n", " ").replace("\r", " ")[:10000])
    np.testing.assert_array_equal(_lookup_ids(layer, chars), jaychou_vocab.encode(chars))
    assert layer.vocabulary_size() == 1027
    unseen = next(c for c in jaychou_text[10000:] if c not in jaychou_vocab)
    with pytest.raises(ValueError):
        jaychou_vocab.encode([unseen])
    with pytest.raises(tf.errors.InvalidArgumentError, match="OOV"):
        layer(tf.constant([unseen]))


@pytest.mark.parametrize("unk_token", ["<unk>", None])
def test_same_ids_with_reserved_and_tricky_tokens(tmp_path, unk_token):
    text = "a\n\n \t\r\r\n中中中😀e\u0301"
    vocab = Vocabulary.build(char_tokens(text) + ["", "[UNK]", "a\x00b"], unk_token=unk_token,
                             reserved_tokens=["<pad>", "<eos>"])
    vocab.save(tmp_path / "v.json")
    vocab = Vocabulary.load(tmp_path / "v.json")
    tokens = vocab.tokens + (["never seen", "b"] if unk_token else [])
    np.testing.assert_array_equal(_lookup_ids(vocab.to_string_lookup(), tokens),
                                  vocab.encode(tokens))
    ids = np.arange(len(vocab))
    inverse = vocab.to_string_lookup(invert=True)(tf.constant(ids)).numpy()
    assert [t.decode("utf-8") for t in inverse] == vocab.decode(ids)


def test_same_ids_in_a_graph(timemachine_text, time_machine_vocab):
    layer = time_machine_vocab.to_string_lookup()
    chars = char_tokens(timemachine_text[:5000])
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(chars)).batch(64).map(layer)
    np.testing.assert_array_equal(np.concatenate(list(ds.as_numpy_iterator())),
                                  time_machine_vocab.encode(chars))
    as_function = tf.function(lambda x: tf.cast(layer(x), tf.int32))
    np.testing.assert_array_equal(as_function(tf.constant(chars)).numpy(),
                                  time_machine_vocab.encode(chars))


def test_unk_only_vocabulary_cannot_make_a_lookup():
    with pytest.raises(ValueError, match="at least one token"):
        Vocabulary.build("").to_string_lookup()


def test_tokens_ending_in_nul_are_refused():
    with pytest.raises(ValueError, match=r"ending in '\\x00', got 'a\\x00'"):
        Vocabulary.build(["a\x00", "b"]).to_string_lookup()
