"""CharLM: shapes, one-step == sequence, rnnzoo cells == keras.layers, NumPy reference, errors."""

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.models import CharLM

V, B, T, H = 23, 3, 9, 12
CELLS = ("rnn", "gru", "lstm")


def _ids(seed=0, shape=(B, T)):
    return tf.constant(np.random.default_rng(seed).integers(0, V, shape), tf.int32)


def _copy_weights(src: CharLM, dst: CharLM):
    """Copies rnnzoo-impl weights into a keras-impl model of the same shape (same layouts)."""
    for s, d in zip(src.cells, dst.cells):
        d.kernel.assign(s.kernel)
        d.recurrent_kernel.assign(s.recurrent_kernel)
        bias = s.bias.numpy()
        if src.cell_type == "gru" and src.reset_after:  # Keras keeps both biases in one [2, 3H].
            bias = np.stack([bias, s.recurrent_bias.numpy()])
        d.bias.assign(bias)
    dst.head.set_weights(src.head.get_weights())


@pytest.mark.parametrize("impl", ["rnnzoo", "keras"])
@pytest.mark.parametrize("cell", CELLS)
def test_step_by_step_equals_sequence(cell, impl):
    model = CharLM(V, cell=cell, num_layers=2, units=H, impl=impl, init="keras", seed=3)
    x = _ids()
    logits, states = model(x)
    assert logits.shape == (B, T, V)
    assert [s.shape for s in states] == [(B, H)] * len(model.state_sizes)
    s = model.initial_state(B)
    steps = []
    for t in range(T):
        out, s = model.step(x[:, t], s)
        steps.append(out.numpy())
    np.testing.assert_allclose(np.stack(steps, 1), logits.numpy(), atol=1e-5)
    for a, b in zip(s, states):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


@pytest.mark.parametrize("cell, reset_after", [
    ("rnn", True), ("gru", True), ("gru", False), ("lstm", True)])
def test_rnnzoo_cells_match_keras_layers(cell, reset_after):
    kw = dict(cell=cell, num_layers=2, units=H, init="keras", reset_after=reset_after)
    ours = CharLM(V, impl="rnnzoo", seed=1, **kw)
    theirs = CharLM(V, impl="keras", seed=2, **kw)
    _copy_weights(ours, theirs)
    x = _ids(1)
    states = [tf.random.normal([B, H], seed=i) for i in range(len(ours.state_sizes))]
    a, sa = ours(x, states)
    b, sb = theirs(x, states)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    for u, v in zip(sa, sb):
        np.testing.assert_allclose(u.numpy(), v.numpy(), atol=1e-5)


def test_lstm_matches_numpy_reference_with_one_hot_input():
    """d2l's LSTM equations over one-hot inputs, written in NumPy."""
    model = CharLM(V, cell="lstm", units=H, init="keras", seed=5)
    x = _ids(2).numpy()
    cell = model.cells[0]
    w, u, b = cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy()
    wq, bq = model.head.get_weights()
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    h = np.zeros((B, H))
    c = np.zeros((B, H))
    expected = []
    for t in range(T):
        z = np.eye(V)[x[:, t]] @ w + h @ u + b
        i, f, g, o = np.split(z, 4, axis=-1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        expected.append(h @ wq + bq)
    logits, _ = model(tf.constant(x))
    np.testing.assert_allclose(logits.numpy(), np.stack(expected, 1), atol=1e-5)


def test_embedding_input_and_unknown_length_sequences():
    model = CharLM(V, cell="gru", units=H, embedding_dim=7, seed=0)
    x = _ids(3)
    full, _ = model(x)
    run = tf.function(lambda ids: model(ids)[0],
                      input_signature=[tf.TensorSpec([None, None], tf.int32)])
    np.testing.assert_allclose(run(x).numpy(), full.numpy(), atol=1e-5)


def test_d2l_init_is_small_normal_with_zero_biases():
    model = CharLM(1000, cell="lstm", units=256, init="d2l", seed=0)
    kernel = model.cells[0].kernel.numpy()
    assert abs(kernel.std() - 0.01) < 0.001
    assert not model.cells[0].bias.numpy().any()
    assert not model.head.get_weights()[1].any()


def test_config_round_trip():
    model = CharLM(V, cell="gru", num_layers=2, units=H, impl="keras", seed=4)
    clone = CharLM.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


@pytest.mark.parametrize("kwargs, message", [
    (dict(cell="transformer"), "`cell` must be one of"),
    (dict(units=0), "`units` must be a positive integer, got 0"),
    (dict(num_layers=-1), "`num_layers` must be a positive integer"),
    (dict(impl="torch"), "`impl` must be one of"),
    (dict(embedding_dim=-3), "`embedding_dim` must be an integer >= 0"),
])
def test_bad_arguments_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CharLM(V, **kwargs)


@pytest.mark.parametrize("impl", ["rnnzoo", "keras"])
def test_a_checkpoint_of_the_model_alone_holds_every_weight(tmp_path, impl):
    """Keras 3 hides list-held layers from tf.train.Checkpoint; CharLM must not."""
    model = CharLM(V, cell="lstm", num_layers=2, units=H, impl=impl, seed=1)
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    saved = [n for n, _ in tf.train.list_variables(path) if n.startswith("model/")]
    assert len(saved) == len(model.weights) == 8, saved  # 2 layers x 3 weights + the head's 2.
    clone = CharLM(V, cell="lstm", num_layers=2, units=H, impl=impl, seed=2)
    tf.train.Checkpoint(model=clone).read(path).assert_existing_objects_matched()
    assert len(clone.weights) == len(model.weights) == 8
    for a, b in zip(model.weights, clone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("impl, init", [("rnnzoo", "d2l"), ("rnnzoo", "keras"), ("keras", "keras")])
def test_the_seed_alone_fixes_every_initial_weight(impl, init):
    def build(seed):
        return CharLM(V, cell="gru", num_layers=2, units=H, embedding_dim=5, impl=impl,
                      init=init, seed=seed)

    a, b, c = build(7), build(7), build(8)
    for u, v in zip(a.weights, b.weights):
        np.testing.assert_array_equal(u.numpy(), v.numpy())
    assert all(not np.array_equal(u.numpy(), w.numpy())
               for u, w in zip(a.weights, c.weights) if u.numpy().any())


def test_course_init_is_the_courses_truncated_normal():
    """tf.truncated_normal(shape, -0.1, 0.1): mean -0.1, std 0.1, cut at two deviations."""
    model = CharLM(27, cell="lstm", units=256, init="course", seed=0)
    for w in (model.cells[0].kernel, model.cells[0].recurrent_kernel, model.head.kernel):
        w = w.numpy()
        assert -0.3 <= w.min() and w.max() <= 0.1
        assert abs(w.mean() + 0.1) < 0.005
        assert 0.07 < w.std() < 0.1  # a normal of std 0.1 cut at 2 std has std 0.088
    assert not model.cells[0].bias.numpy().any()


@pytest.mark.parametrize("impl", ["rnnzoo", "keras"])
def test_bigram_inputs_pair_each_character_with_the_previous_one(impl):
    """Input t is the embedding row `x[t-1] * V + x[t]`; the first position pairs with the
    carried character (0 from a zero state), so a text cut in two gives the same logits."""
    model = CharLM(V, cell="lstm", units=H, inputs="bigrams", embedding_dim=6, impl=impl,
                   init="keras", seed=3)
    assert model.embedding.input_dim == V * V
    assert model.state_sizes == [H, H, 1]
    x = _ids(4, (B, 2 * T))
    full, states = model(x)
    np.testing.assert_array_equal(states[-1].numpy()[:, 0], x.numpy()[:, -1])
    first, carried = model(x[:, :T])
    second, _ = model(x[:, T:], carried)
    np.testing.assert_allclose(np.concatenate([first, second], 1), full.numpy(), atol=1e-5)
    # The ids the embedding reads, by hand.
    prev = np.concatenate([np.zeros((B, 1), np.int32), x.numpy()[:, :-1]], axis=1)
    ids, slot = model._input_ids(x, model.initial_state(B))
    np.testing.assert_array_equal(ids.numpy(), prev * V + x.numpy())
    np.testing.assert_array_equal(slot[0].numpy()[:, 0], x.numpy()[:, -1])
    # Step by step, one character at a time, as generation and export run it.
    step_states = model.initial_state(B)
    steps = []
    for t in range(2 * T):
        logits, step_states = model.step(x[:, t], step_states)
        steps.append(logits.numpy())
    np.testing.assert_allclose(np.stack(steps, 1), full.numpy(), atol=1e-5)


def test_dropout_acts_in_training_only_and_follows_the_seed():
    def build():
        return CharLM(V, cell="lstm", num_layers=2, units=H, inputs="bigrams",
                      embedding_dim=6, dropout=0.5, init="keras", seed=1)

    model, twin = build(), build()
    x = _ids(5)
    plain = CharLM(V, cell="lstm", num_layers=2, units=H, inputs="bigrams", embedding_dim=6,
                   init="keras", seed=1)
    inference, _ = model(x, training=False)
    np.testing.assert_allclose(inference.numpy(), plain(x)[0].numpy(), atol=1e-6)
    dropped, _ = model(x, training=True)
    assert np.abs(dropped.numpy() - inference.numpy()).max() > 1e-3
    np.testing.assert_allclose(twin(x, training=True)[0].numpy(), dropped.numpy(), atol=1e-6)
    again, _ = model(x, training=True)  # the next masks differ
    assert np.abs(again.numpy() - dropped.numpy()).max() > 1e-3
