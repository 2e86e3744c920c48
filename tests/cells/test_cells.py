"""The cell contract, checked for every cell in `cells_reference.CASES`."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from cells_reference import CASES, build_random, unroll

from rnnzoo import cells

BATCH, TIME, INPUT_DIM, UNITS = 3, 4, 5, 6

case_params = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])


def random_states(case, rng, batch=BATCH, units=UNITS, dtype="float32"):
    return [rng.normal(0.0, 0.5, (batch, units)).astype(dtype) for _ in range(case.num_states)]


def cell_unroll(cell, xs, states):
    """The cell's `call` over `xs` in a Python loop; returns `([batch, time, units], states)`."""
    outputs = []
    for t in range(xs.shape[1]):
        y, states = cell(xs[:, t], states)
        outputs.append(y)
    return tf.stack(outputs, axis=1), states


@case_params
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
def test_matches_numpy(case, compiled):
    rng = np.random.default_rng(0)
    cell, weights = build_random(case, UNITS, INPUT_DIM, rng)
    xs = rng.normal(size=(BATCH, TIME, INPUT_DIM)).astype("float32")
    states = random_states(case, rng)

    run = tf.function(cell_unroll, autograph=False) if compiled else cell_unroll
    outputs, final = run(cell, tf.constant(xs), [tf.constant(s) for s in states])

    want_outputs, want_final = unroll(case.numpy_step, xs, states, weights)
    np.testing.assert_allclose(outputs, want_outputs, atol=1e-5)
    for got, want in zip(final, want_final, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


@case_params
def test_matches_keras_cell(case):
    rng = np.random.default_rng(1)
    cell, weights = build_random(case, UNITS, INPUT_DIM, rng)
    keras_cell = case.make_keras(UNITS)
    keras_cell.build((None, INPUT_DIM))
    keras_cell.set_weights(case.to_keras(weights))
    xs = rng.normal(size=(BATCH, TIME, INPUT_DIM)).astype("float32")
    states = random_states(case, rng)

    got, got_states = cell(xs[:, 0], states)
    want, want_states = keras_cell(xs[:, 0], states)
    np.testing.assert_allclose(got, want, atol=1e-5)
    for g, w in zip(got_states, want_states, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5)

    def layer(c):
        return keras.layers.RNN(c, return_sequences=True, return_state=True)

    got = layer(cell)(xs, initial_state=states)
    want = layer(keras_cell)(xs, initial_state=states)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5)


@case_params
def test_inside_keras_rnn_matches_numpy(case):
    rng = np.random.default_rng(2)
    cell, weights = build_random(case, UNITS, INPUT_DIM, rng)
    xs = rng.normal(size=(BATCH, TIME, INPUT_DIM)).astype("float32")
    layer = keras.layers.RNN(cell, return_sequences=True, return_state=True)

    outputs, *final = layer(xs)

    zeros = [np.zeros((BATCH, UNITS), "float32")] * case.num_states
    want_outputs, want_final = unroll(case.numpy_step, xs, zeros, weights)
    np.testing.assert_allclose(outputs, want_outputs, atol=1e-5)
    for g, w in zip(final, want_final, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5)


@case_params
def test_project_ids_is_one_hot_matmul(case):
    vocab = 11
    rng = np.random.default_rng(3)
    cell, weights = build_random(case, UNITS, vocab, rng)
    ids = rng.integers(0, vocab, size=(BATCH, TIME))

    want = np.eye(vocab, dtype="float32")[ids] @ weights["kernel"] + weights["bias"]
    np.testing.assert_allclose(cell.project_ids(ids), want, atol=1e-5)
    np.testing.assert_allclose(cell.project_inputs(tf.one_hot(ids, vocab)), want, atol=1e-5)
    np.testing.assert_allclose(tf.function(cell.project_ids)(ids), want, atol=1e-5)

    # The same gradients too (the gather's are sparse rows).
    seed = tf.constant(rng.normal(size=want.shape).astype("float32"))
    grads = []
    for project in (cell.project_ids, lambda i: cell.project_inputs(tf.one_hot(i, vocab))):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(project(ids) * seed)
        grads.append(
            [tf.convert_to_tensor(g) for g in tape.gradient(loss, [cell.kernel, cell.bias])]
        )
    for g_ids, g_one_hot in zip(*grads, strict=True):
        np.testing.assert_allclose(g_ids, g_one_hot, atol=1e-5)


@case_params
def test_call_is_step_of_projected_inputs(case):
    rng = np.random.default_rng(4)
    cell, _ = build_random(case, UNITS, INPUT_DIM, rng)
    xs = rng.normal(size=(BATCH, TIME, INPUT_DIM)).astype("float32")
    states = random_states(case, rng)

    projected = cell.project_inputs(xs)  # all time steps at once
    assert projected.shape == (BATCH, TIME, cell.num_gates * UNITS)
    for t in range(TIME):
        want, want_states = cell(xs[:, t], states)
        got, states = cell.step(projected[:, t], states)
        np.testing.assert_allclose(got, want, atol=1e-6)
        for g, w in zip(states, want_states, strict=True):
            np.testing.assert_allclose(g, w, atol=1e-6)


@case_params
def test_state_structure(case):
    cell = case.make(UNITS)
    states = cell.get_initial_state(BATCH)
    assert len(states) == case.num_states
    assert all(s.shape == (BATCH, UNITS) for s in states)
    assert cell.output_size == UNITS
    sizes = cell.state_size if isinstance(cell.state_size, list) else [cell.state_size]
    assert sizes == [UNITS] * case.num_states
    x = tf.zeros((BATCH, INPUT_DIM))
    y, new_states = cell(x, states)
    assert y.shape == (BATCH, UNITS) and len(new_states) == case.num_states
    if case.num_states == 1:  # a bare state tensor gives a bare state tensor back, as in Keras
        _, bare = cell(x, states[0])
        assert tf.is_tensor(bare) and bare.shape == (BATCH, UNITS)


@case_params
def test_gradients(case):
    """Theoretical against numerical gradients, in float64, through three steps."""
    rng = np.random.default_rng(5)
    cell, _ = build_random(case, 4, 3, rng, dtype="float64")
    xs = tf.constant(rng.normal(size=(2, 3, 3)))
    states = [tf.constant(s) for s in random_states(case, rng, 2, 4, "float64")]

    def loss(xs, *states):
        outputs, final = cell_unroll(cell, xs, list(states))
        return tf.reduce_sum(outputs * tf.sin(outputs)) + sum(tf.reduce_sum(s) for s in final)

    theoretical, numerical = tf.test.compute_gradient(loss, [xs, *states])
    for t, n in zip(theoretical, numerical, strict=True):
        np.testing.assert_allclose(t, n, atol=1e-6)

    # The weights: the directional derivative along a random direction, against the tape.
    with tf.GradientTape() as tape:
        value = loss(xs, *states)
    grads = tape.gradient(value, cell.trainable_variables)
    directions = [rng.normal(size=v.shape) for v in cell.trainable_variables]
    originals = [v.numpy() for v in cell.trainable_variables]
    eps = 1e-6
    shifted = []
    for sign in (1.0, -1.0):
        for v, o, d in zip(cell.trainable_variables, originals, directions, strict=True):
            v.assign(o + sign * eps * d)
        shifted.append(float(loss(xs, *states)))
    numeric = (shifted[0] - shifted[1]) / (2 * eps)
    analytic = sum(float(tf.reduce_sum(g * d)) for g, d in zip(grads, directions, strict=True))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


@case_params
def test_config_round_trip(case):
    cell = case.make(UNITS, seed=7, name="c")
    config = cell.get_config()
    clone = type(cell).from_config(config)
    assert clone.get_config() == config

    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cell))
    assert type(restored) is type(cell) and restored.get_config() == config

    # Same seed, same weights; and the two kernels drawn from different streams.
    for c in (cell, clone):
        c.build((None, INPUT_DIM))
    for a, b in zip(cell.weights, clone.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    k, r = cell.kernel.numpy(), cell.recurrent_kernel.numpy()[:INPUT_DIM]
    assert not np.allclose(k, r)
    assert np.std(k) == pytest.approx(0.01, rel=0.5)  # d2l's normal(0, 0.01)


@case_params
@pytest.mark.parametrize("units", [0, -3, 2.5, "4", True, None])
def test_bad_units(case, units):
    with pytest.raises(ValueError, match=r"`units` must be a positive integer, got"):
        case.make(units)


def test_bad_units_message():
    with pytest.raises(ValueError) as info:
        cells.LSTMCell(0)
    assert str(info.value) == "`units` must be a positive integer, got 0"


@pytest.mark.parametrize("forget_bias", [0.0, 1.0])
def test_lstm_forget_bias(forget_bias):
    cell = cells.LSTMCell(UNITS, forget_bias=forget_bias)
    cell.build((None, INPUT_DIM))
    want = np.zeros(4 * UNITS, "float32")
    want[UNITS : 2 * UNITS] = forget_bias
    np.testing.assert_array_equal(cell.bias, want)
    assert cells.LSTMCell(UNITS).forget_bias == 0.0


def test_weight_names_and_shapes():
    shapes = {}
    for case in CASES:
        cell = case.make(UNITS)
        cell.build((None, INPUT_DIM))
        shapes[case.name] = {v.name: tuple(v.shape) for v in cell.weights}
    g = {"rnn": 1, "gru": 3, "gru_reset_before": 3, "lstm": 4}
    for name, got in shapes.items():
        want = {
            "kernel": (INPUT_DIM, g[name] * UNITS),
            "recurrent_kernel": (UNITS, g[name] * UNITS),
            "bias": (g[name] * UNITS,),
        }
        if name == "gru":
            want["recurrent_bias"] = (3 * UNITS,)
        assert got == want, name


@case_params
def test_mixed_precision_step(case):
    cell = case.make(UNITS, dtype="mixed_float16")
    cell.build((None, INPUT_DIM))
    projected = cell.project_inputs(tf.ones((BATCH, INPUT_DIM)))
    assert projected.dtype == tf.float16
    y, _ = cell.step(projected, cell.get_initial_state(BATCH))
    assert y.dtype == tf.float16 and cell.kernel.dtype == "float32"
