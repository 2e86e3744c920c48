"""`StackedCells` and `make_cell`."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from cells_reference import NUMPY_STEPS, randomize

from rnnzoo import cells

BATCH, TIME, INPUT_DIM = 3, 4, 5

# (family, units, extra arguments) for the bottom and the top layer.
STACKS = {
    "lstm_gru": [("lstm", 6, {}), ("gru", 4, {})],
    "gru_before_rnn": [("gru", 4, {"reset_after": False}), ("rnn", 6, {})],
    "lstm_lstm": [("lstm", 4, {}), ("lstm", 4, {})],
}


def reference_name(kind, kwargs):
    return "gru_reset_before" if kwargs.get("reset_after") is False else kind


def make_stack(layers, rng):
    """A built random stack, and a NumPy step for it: `(x, [states per layer]) -> ...`."""
    stack = cells.StackedCells([cells.make_cell(k, u, **kw) for k, u, kw in layers])
    stack.build((None, INPUT_DIM))
    weights = [randomize(cell, rng) for cell in stack.cells]
    steps = [NUMPY_STEPS[reference_name(k, kw)] for k, _, kw in layers]

    def numpy_step(x, states):
        new_states = []
        for step, w, s in zip(steps, weights, states, strict=True):
            x, s = step(x, s, w)
            new_states.append(s)
        return x, new_states

    return stack, numpy_step


def numpy_unroll(numpy_step, xs, states):
    outputs = []
    for t in range(xs.shape[1]):
        y, states = numpy_step(xs[:, t], states)
        outputs.append(y)
    return np.stack(outputs, axis=1), states


def assert_states_close(got, want):
    for g_layer, w_layer in zip(got, want, strict=True):
        for g, w in zip(g_layer, w_layer, strict=True):
            np.testing.assert_allclose(g, w, atol=1e-5)


def random_initial_states(stack, rng):
    return [
        [rng.normal(0.0, 0.5, s.shape).astype("float32") for s in layer_states]
        for layer_states in stack.get_initial_state(BATCH)
    ]


@pytest.mark.parametrize("name", list(STACKS))
def test_inside_keras_rnn_matches_numpy(name):
    rng = np.random.default_rng(0)
    stack, numpy_step = make_stack(STACKS[name], rng)
    xs = rng.normal(size=(BATCH, TIME, INPUT_DIM)).astype("float32")
    layer = keras.layers.RNN(stack, return_sequences=True, return_state=True)

    outputs, *final = layer(xs)  # from zeros
    zeros = [[np.zeros_like(s) for s in layer_states] for layer_states in final]
    want_outputs, want_final = numpy_unroll(numpy_step, xs, zeros)
    np.testing.assert_allclose(outputs, want_outputs, atol=1e-5)
    assert_states_close(final, want_final)  # one entry per layer, each with its own states

    initial = random_initial_states(stack, rng)
    outputs, *final = layer(xs, initial_state=initial)
    want_outputs, want_final = numpy_unroll(numpy_step, xs, initial)
    np.testing.assert_allclose(outputs, want_outputs, atol=1e-5)
    assert_states_close(final, want_final)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "tf_function"])
def test_one_step_at_a_time(compiled):
    rng = np.random.default_rng(1)
    stack, numpy_step = make_stack(STACKS["lstm_gru"], rng)
    xs = rng.normal(size=(BATCH, TIME, INPUT_DIM)).astype("float32")
    initial = random_initial_states(stack, rng)

    def run(xs, states):
        by_call, by_step = [], []
        call_states = step_states = states
        projected = stack.project_inputs(xs)
        for t in range(TIME):
            y, call_states = stack(xs[:, t], call_states)
            by_call.append(y)
            y, step_states = stack.step(projected[:, t], step_states)
            by_step.append(y)
        return tf.stack(by_call, 1), call_states, tf.stack(by_step, 1), step_states

    if compiled:
        run = tf.function(run, autograph=False)
    by_call, call_states, by_step, step_states = run(tf.constant(xs), initial)
    want, want_states = numpy_unroll(numpy_step, xs, initial)
    np.testing.assert_allclose(by_call, want, atol=1e-5)
    np.testing.assert_allclose(by_step, want, atol=1e-5)
    assert_states_close(call_states, want_states)
    assert_states_close(step_states, want_states)


def test_project_ids_is_the_first_layers():
    vocab = 7
    stack = cells.StackedCells([cells.LSTMCell(4), cells.GRUCell(3)])
    stack.build((None, vocab))
    ids = np.array([[0, 3, 6], [2, 2, 5]])
    np.testing.assert_allclose(
        stack.project_ids(ids), stack.project_inputs(tf.one_hot(ids, vocab)), atol=1e-6
    )
    assert stack.project_ids(ids).shape == (2, 3, 16)
    assert stack.output_size == 3
    assert stack.state_size == [[4, 4], 3]


def test_saved_model_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    stack, _ = make_stack(STACKS["lstm_gru"], rng)
    model = keras.Sequential(
        [keras.Input((TIME, INPUT_DIM)), keras.layers.RNN(stack, return_sequences=True)]
    )
    xs = rng.normal(size=(BATCH, TIME, INPUT_DIM)).astype("float32")
    path = tmp_path / "stack.keras"
    model.save(path)
    restored = keras.saving.load_model(path)

    restored_stack = restored.layers[0].cell
    assert isinstance(restored_stack, cells.StackedCells)
    assert [type(c) for c in restored_stack.cells] == [cells.LSTMCell, cells.GRUCell]
    np.testing.assert_allclose(restored(xs), model(xs), atol=1e-6)
    # Through JSON, where a saved shape's tuple comes back as a list.
    assert json.dumps(restored_stack.get_config()) == json.dumps(stack.get_config())


@pytest.mark.parametrize(
    ("kind", "cls"),
    [("rnn", cells.SimpleRNNCell), ("gru", cells.GRUCell), ("lstm", cells.LSTMCell)],
)
def test_make_cell(kind, cls):
    cell = cells.make_cell(kind, 5, seed=3)
    assert type(cell) is cls and cell.units == 5 and cell.seed == 3


def test_make_cell_passes_family_arguments():
    assert cells.make_cell("gru", 2, reset_after=False).reset_after is False
    assert cells.make_cell("lstm", 2, forget_bias=1.0).forget_bias == 1.0


@pytest.mark.parametrize("kind", ["LSTM", "transformer", ""])
def test_make_cell_rejects_unknown_kinds(kind):
    with pytest.raises(ValueError, match=r"`kind` must be one of 'rnn', 'gru', 'lstm'; got"):
        cells.make_cell(kind, 4)
