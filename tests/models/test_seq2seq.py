"""Seq2Seq: padding-free encoding, masked attention, teacher forcing == stepping, loss, greedy."""

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.models.seq2seq import ATTENTIONS, Seq2Seq, masked_softmax, sequence_loss

V, E, H = 11, 6, 8
BOS, EOS = 1, 2


def _model(attention="luong", num_layers=2, seed=7):
    return Seq2Seq(V, embedding_dim=E, num_hiddens=H, num_layers=num_layers,
                   attention=attention, seed=seed)


def _source():
    """Three rows, lengths 5, 3, 1, padded with 0 at the end."""
    return tf.constant([[4, 5, 6, 7, 8], [9, 4, 10, 0, 0], [6, 0, 0, 0, 0]], tf.int32)


def _decoder_inputs():
    return tf.constant([[1, 5, 6, 9], [1, 7, 3, 0], [1, 10, 0, 0]], tf.int32)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_shapes_and_config(attention):
    model = _model(attention)
    logits = model((_source(), _decoder_inputs()))
    assert logits.shape == (3, 4, V)
    clone = Seq2Seq.from_config(model.get_config())
    assert clone.attention == attention and clone.num_layers == 2


def test_padding_does_not_leak_into_encoder():
    model = _model()
    source = _source()
    memory, mask, states = model.encode(source)
    lengths = [5, 3, 1]
    for b, n in enumerate(lengths):
        m1, k1, s1 = model.encode(source[b:b + 1, :n])
        np.testing.assert_allclose(memory[b, :n], m1[0], atol=1e-6)
        assert np.all(memory[b, n:].numpy() == 0)
        assert mask[b].numpy().tolist() == [True] * n + [False] * (5 - n)
        for s, s_alone in zip(states, s1, strict=True):
            np.testing.assert_allclose(s[b], s_alone[0], atol=1e-6)


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_attention_masks_padding(attention):
    model = _model(attention)
    memory, mask, states = model.encode(_source())
    query = tf.random.stateless_normal([3, H], seed=[1, 2])
    alpha = model.attention_weights(query, memory, mask).numpy()
    assert np.all(alpha[~mask.numpy()] == 0)
    np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-6)
    # Garbage at padded positions of the memory changes nothing.
    noisy = tf.where(mask[:, :, None], memory, 1e3 * tf.ones_like(memory))
    tokens = tf.constant([1, 1, 1])
    a, sa = model.decode_step(tokens, states, memory, mask)
    b, sb = model.decode_step(tokens, states, noisy, mask)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    for x, y in zip(sa, sb, strict=True):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_masked_softmax_against_numpy():
    scores = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    expected = np.where(mask, np.exp(scores), 0)
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(masked_softmax(scores, mask), expected, rtol=1e-6)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_teacher_forcing_equals_stepping(attention):
    model = _model(attention)
    source, inputs = _source(), _decoder_inputs()
    logits = model((source, inputs))
    memory, mask, states = model.encode(source)
    steps = []
    for t in range(inputs.shape[1]):
        out, states = model.decode_step(inputs[:, t], states, memory, mask)
        steps.append(out)
    np.testing.assert_allclose(logits, tf.stack(steps, 1), atol=1e-5)
    # Same under tf.function (a while_loop when the target length is not static).
    graph = tf.function(model.call, input_signature=[(
        tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32))])
    np.testing.assert_allclose(graph((source, inputs)), logits, atol=1e-5)


def test_sequence_loss_against_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 4, V)).astype(np.float32)
    targets = np.array([[5, 6, 9, 2], [7, 3, 2, 0], [10, 2, 0, 0]], np.int32)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    mask = targets != 0
    expected = -sum(log_probs[b, t, targets[b, t]] for b, t in zip(*np.nonzero(mask)))
    loss, count = sequence_loss(logits, targets)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert count.numpy() == 9


def test_greedy_decode_untrained_and_stopping():
    model = _model("bahdanau")
    ids = model.greedy_decode(_source(), max_length=6, bos_id=BOS, eos_id=EOS).numpy()
    assert ids.shape[0] == 3 and 1 <= ids.shape[1] <= 6
    assert ids.min() >= 0 and ids.max() < V
    # An untrained model's head never picks <eos> if its bias says so: runs to max_length.
    model.head.bias.assign(tf.tensor_scatter_nd_update(tf.zeros([V]), [[EOS]], [-1e4]))
    ids = model.greedy_decode(_source(), max_length=6, bos_id=BOS, eos_id=EOS).numpy()
    assert ids.shape == (3, 6) and not np.any(ids == EOS)
    # A head that always says <eos>: one step, then stop.
    model.head.bias.assign(tf.tensor_scatter_nd_update(tf.zeros([V]), [[EOS]], [1e4]))
    ids = model.greedy_decode(_source(), max_length=6, bos_id=BOS, eos_id=EOS).numpy()
    assert ids.tolist() == [[EOS]] * 3


def test_greedy_decode_in_graph_matches_eager():
    model = _model("luong")
    eager = model.greedy_decode(_source(), max_length=5, bos_id=BOS, eos_id=EOS)
    graph = tf.function(lambda s: model.greedy_decode(s, max_length=5, bos_id=BOS, eos_id=EOS),
                        input_signature=[tf.TensorSpec([None, None], tf.int32)])
    np.testing.assert_array_equal(graph(_source()), eager)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_every_weight_gets_a_gradient(attention):
    model = _model(attention)
    with tf.GradientTape() as tape:
        loss, _ = sequence_loss(model((_source(), _decoder_inputs())), _decoder_inputs())
    grads = tape.gradient(loss, model.trainable_variables)
    names = [v.path for v, g in zip(model.trainable_variables, grads, strict=True) if g is None]
    assert not names
    assert len(model.trainable_variables) == 2 + 3 * 2 * 2 + 2 + {
        "luong": 2, "bahdanau": 3, "none": 0}[attention]


def test_rows_after_eos_emit_pad():
    model = _model("none", num_layers=1)
    # Row 0's first step says <eos>, others never do: row 0 pads afterwards.
    calls = {"n": 0}
    decode_step = model.decode_step

    def rigged(tokens, states, memory, mask):
        logits, states = decode_step(tokens, states, memory, mask)
        bonus = np.zeros((3, V), np.float32)
        bonus[:, EOS] = -1e4
        if calls["n"] == 0:
            bonus[0, EOS] = 1e4
        calls["n"] += 1
        return logits + bonus, states

    model.decode_step = rigged
    ids = model.greedy_decode(_source(), max_length=4, bos_id=BOS, eos_id=EOS).numpy()
    assert ids.shape == (3, 4)
    assert ids[0].tolist() == [EOS, 0, 0, 0]
    assert not np.any(ids[1:] == EOS)


def test_argument_errors():
    with pytest.raises(ValueError, match="`attention` must be one of .* got 'dot'"):
        Seq2Seq(V, attention="dot")
    with pytest.raises(ValueError, match="`num_layers` must be a positive integer, got 0"):
        Seq2Seq(V, num_layers=0)
    with pytest.raises(ValueError, match="`max_length` must be a positive integer, got 0"):
        _model().greedy_decode(_source(), max_length=0, bos_id=BOS, eos_id=EOS)


# --- beam search ------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_beam_width_one_is_greedy(attention):
    model = _model(attention)
    greedy = model.greedy_decode(_source(), 9, 1, 2).numpy()
    ids, _ = model.beam_search_decode(_source(), 9, 1, 2, 1)
    np.testing.assert_array_equal(ids.numpy(), greedy)


def _sequence_logp(model, source, ids):
    """Teacher-forced sum of log-probabilities of `ids` (up to and with its <eos>)."""
    ids = [int(i) for i in ids]
    if 2 in ids:
        ids = ids[:ids.index(2) + 1]
    memory, mask, states = model.encode(source)
    token, total = 1, 0.0
    for y in ids:
        logits, states = model.decode_step(tf.constant([token]), states, memory, mask)
        total += float(tf.nn.log_softmax(logits)[0, y])
        token = y
    return total


def test_full_beam_finds_the_exact_best_sequence():
    """A beam as wide as every sequence of the vocabulary is exhaustive search: its answer
    is the best over all sequences of at most 3 tokens (finished at <eos>, or cut at 3),
    enumerated by brute force with one teacher-forced call; its score is that sequence's
    log-probability."""
    vocab_size = 6
    model = Seq2Seq(vocab_size, embedding_dim=4, num_hiddens=8, attention="luong", seed=3)
    source = np.array([[4, 5, 4]], np.int32)
    ids, score = model.beam_search_decode(source, 3, BOS, EOS, vocab_size ** 3)
    every = np.array([[a, b, c] for a in range(vocab_size) for b in range(vocab_size)
                      for c in range(vocab_size)], np.int32)
    decoder_inputs = np.concatenate([np.full((len(every), 1), BOS), every[:, :2]], 1)
    logits = model((np.repeat(source, len(every), 0), decoder_inputs)).numpy()
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    token_logp = np.take_along_axis(logp, every[..., None], -1)[..., 0]   # [216, 3]
    best, best_score = None, -np.inf
    for seq, lp in zip(every.tolist(), token_logp):
        n = seq.index(EOS) + 1 if EOS in seq else 3
        if lp[:n].sum() > best_score + 1e-9:
            best, best_score = seq[:n], lp[:n].sum()
    got = [int(i) for i in ids.numpy()[0] if i != 0]
    assert got == best
    assert float(score[0]) == pytest.approx(best_score, abs=1e-4)


def test_beam_scores_are_the_outputs_log_probabilities():
    """Each row's score is its output's teacher-forced log-probability, and on these rows a
    beam of 4 finds outputs at least as likely as greedy search's."""
    model = _model("bahdanau")
    _, narrow = model.beam_search_decode(_source(), 9, BOS, EOS, 1)
    ids, wide = model.beam_search_decode(_source(), 9, BOS, EOS, 4)
    assert (wide.numpy() >= narrow.numpy() - 1e-5).all()
    for r in range(3):
        row = [int(i) for i in ids.numpy()[r] if i != 0]
        assert _sequence_logp(model, _source()[r:r + 1], row) == pytest.approx(
            float(wide[r]), abs=1e-4)


def test_beam_search_argument_errors():
    model = _model()
    with pytest.raises(ValueError, match="`beam_width` must be a positive integer, got 0"):
        model.beam_search_decode(_source(), 5, BOS, EOS, 0)
    with pytest.raises(ValueError, match="`max_length` must be a positive integer"):
        model.beam_search_decode(_source(), 0, BOS, EOS, 2)
