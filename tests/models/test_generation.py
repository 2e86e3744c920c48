"""Text generation: d2l's greedy predict_rnn, the unknown-token policy, seeded sampling, top-k."""

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.data.vocab import Vocabulary
from rnnzoo.models import CharLM
from rnnzoo.models.generation import TextGenerator, choose_next

VOCAB = Vocabulary(["<unk>", *"abcdefgh 分开"], unk_token="<unk>")


def _model(seed=0):
    return CharLM(len(VOCAB), cell="lstm", units=16, init="keras", seed=seed)


def _greedy_reference(model, prefix_ids, num_chars):
    """d2l-zh's predict_rnn, step by step in eager mode, never choosing <unk> (id 0)."""
    states = model.initial_state(1)
    output = [prefix_ids[0]]
    for t in range(num_chars + len(prefix_ids) - 1):
        logits, states = model.step(tf.constant([output[-1]]), states)
        output.append(prefix_ids[t + 1] if t < len(prefix_ids) - 1
                      else int(np.argmax(logits.numpy()[0, 1:])) + 1)
    return output


def test_greedy_generation_matches_d2l_predict_rnn():
    model = _model()
    text = TextGenerator(model, VOCAB)("分开", 30)
    ids = _greedy_reference(model, list(VOCAB.encode(list("分开"))), 30)
    assert text == "".join(VOCAB.decode(np.array(ids)))
    assert len(text) == 32


def test_prefix_characters_outside_the_vocabulary_become_unk():
    model = _model()
    text = TextGenerator(model, VOCAB)("分x开", 10)
    assert text.startswith("分x开") and len(text) == 13  # The prefix is returned as given.
    ids = _greedy_reference(model, [VOCAB.token_to_id("分"), 0, VOCAB.token_to_id("开")], 10)
    assert text[3:] == "".join(VOCAB.decode(np.array(ids[3:])))


def test_sampling_is_reproducible_by_seed_and_top_1_is_greedy():
    gen = TextGenerator(_model(), VOCAB)
    a = gen("ab", 40, temperature=1.0, seed=7)
    assert a == gen("ab", 40, temperature=1.0, seed=7)
    assert a != gen("ab", 40, temperature=1.0, seed=8)
    assert gen("ab", 40, temperature=1.0, top_k=1, seed=3) == gen("ab", 40)


def test_unk_is_never_generated():
    model = _model()
    head_bias = model.head.bias.numpy()
    head_bias[0] = 100.0  # The model now prefers <unk> above everything.
    model.head.bias.assign(head_bias)
    gen = TextGenerator(model, VOCAB)
    for text in (gen("ab", 20), gen("ab", 20, temperature=1.0, seed=1)):
        assert "<unk>" not in text and len(text) == 22


def test_top_k_never_picks_outside_the_k_likeliest():
    logits = tf.constant(np.random.default_rng(0).normal(size=(64, 50)), tf.float32)
    top3 = np.argsort(-logits.numpy(), axis=-1)[:, :3]
    for step in range(20):
        picked = choose_next(logits, 2.0, 3, tf.constant([1, step])).numpy()
        assert all(p in row for p, row in zip(picked, top3))
    greedy = choose_next(logits, 0.0, 0, tf.constant([0, 0])).numpy()
    np.testing.assert_array_equal(greedy, np.argmax(logits.numpy(), -1))


def test_empty_prefix_is_an_error():
    with pytest.raises(ValueError, match="prefix"):
        TextGenerator(_model(), VOCAB)("", 5)
