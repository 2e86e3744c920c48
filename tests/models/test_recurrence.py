"""The hand-written backpropagation through time against autodiff of the plain loop.

`recurrence.run_layer(cell, ..., fast=True)` (a `tf.custom_gradient` over the whole sequence)
must give the outputs, final states and gradients of `fast=False` (the loop over `cell.step`,
differentiated by `tf.GradientTape`): with respect to the projected inputs, the initial states
carried in, and every weight, eagerly and under `tf.function` (static length: the unrolled
loop; unknown length: the `tf.while_loop`), including a gradient arriving at the final states.
"""

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo import cells
from rnnzoo.models import CharLM, recurrence

T, B, D, H = 5, 3, 4, 6

CELLS = {
    "rnn": lambda: cells.SimpleRNNCell(H, seed=0),
    "gru": lambda: cells.GRUCell(H, seed=0),
    "gru_reset_before": lambda: cells.GRUCell(H, reset_after=False, seed=0),  # autodiff fallback
    "lstm": lambda: cells.LSTMCell(H, seed=0),
}


def _cell(name):
    cell = CELLS[name]()
    cell.build((None, D))
    rng = np.random.default_rng(1)
    for w in cell.weights:  # Larger than d2l's 0.01 so that the gates saturate differently.
        w.assign(rng.normal(0.0, 0.5, w.shape).astype("float32"))
    return cell


def _loss_and_grads(cell, xs, states, fast, split_gates=None):
    """A loss that reads every output and every final state, and its gradients."""
    with tf.GradientTape() as tape:
        tape.watch([xs, *states])
        projected = cell.project_inputs(xs)
        outputs, final = recurrence.run_layer(cell, projected, states, fast=fast,
                                              split_gates=split_gates)
        loss = tf.reduce_sum(outputs * tf.sin(outputs))
        loss += sum(tf.reduce_sum(s * tf.cos(s)) for s in final)
    grads = tape.gradient(loss, [xs, *states, *cell.trainable_variables])
    return [outputs, *final], [tf.convert_to_tensor(g) for g in grads]


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("mode", ["eager", "tf_function", "unknown_length"])
@pytest.mark.parametrize("split_gates", [True, False], ids=["per_gate", "fused"])
def test_fast_path_matches_autodiff(name, mode, split_gates):
    cell = _cell(name)
    rng = np.random.default_rng(2)
    xs = tf.constant(rng.normal(size=(T, B, D)).astype("float32"))
    num_states = 2 if name == "lstm" else 1
    states = [tf.constant(rng.normal(0.0, 0.5, (B, H)).astype("float32"))
              for _ in range(num_states)]
    if mode == "unknown_length":  # The tf.while_loop versions of both loops.
        signature = [tf.TensorSpec([None, B, D]), [tf.TensorSpec([B, H])] * num_states]
        fast_values, fast_grads = tf.function(
            lambda x, s: _loss_and_grads(cell, x, s, True, split_gates),
            input_signature=signature)(xs, states)
        plain_values, plain_grads = tf.function(
            lambda x, s: _loss_and_grads(cell, x, s, False), input_signature=signature)(xs, states)
    else:
        run = tf.function(_loss_and_grads) if mode == "tf_function" else _loss_and_grads
        fast_values, fast_grads = run(cell, xs, states, True, split_gates)
        plain_values, plain_grads = run(cell, xs, states, False)
    for got, want in zip(fast_values, plain_values, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert len(fast_grads) == 1 + num_states + len(cell.trainable_variables)
    for got, want in zip(fast_grads, plain_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("split_gates", [True, False], ids=["per_gate", "fused"])
def test_gradients_against_numerical_float64(name, split_gates):
    """The custom gradient against finite differences, through the inputs and initial states."""
    cell = CELLS[name]()
    cell = type(cell).from_config({**cell.get_config(), "dtype": "float64"})
    cell.build((None, D))
    rng = np.random.default_rng(3)
    for w in cell.weights:
        w.assign(rng.normal(0.0, 0.5, w.shape))
    projected = tf.constant(rng.normal(size=(T, B, cell.num_gates * H)))
    states = [tf.constant(rng.normal(0.0, 0.5, (B, H)))
              for _ in range(2 if name == "lstm" else 1)]

    def loss(p, *s):
        outputs, final = recurrence.run_layer(cell, p, list(s), split_gates=split_gates)
        return tf.reduce_sum(outputs * tf.sin(outputs)) + sum(tf.reduce_sum(x * x) for x in final)

    theoretical, numerical = tf.test.compute_gradient(loss, [projected, *states], delta=1e-6)
    for t, n in zip(theoretical, numerical, strict=True):
        np.testing.assert_allclose(t, n, atol=1e-6)


def test_untouched_final_states_get_zero_gradients():
    """Training drops the final states (they go to the next batch): `None` upstream grads."""
    cell = _cell("lstm")
    xs = tf.random.normal([T, B, D], seed=4)
    states = cell.get_initial_state(B)
    with tf.GradientTape() as tape:
        tape.watch(states)
        outputs, _ = recurrence.run_layer(cell, cell.project_inputs(xs), states)
        loss = tf.reduce_sum(outputs)
    grads = tape.gradient(loss, [*states, cell.recurrent_kernel])
    assert all(g is not None for g in grads)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_char_lm_gradients_match_plain_loop(cell, num_layers):
    """The whole model: weights (the row-gather input projection included) and initial states."""
    model = CharLM(11, cell=cell, num_layers=num_layers, units=H, init="keras", seed=5)
    ids = tf.constant(np.random.default_rng(6).integers(0, 11, (B, T)), tf.int32)
    states = [tf.random.normal([B, H], seed=i) for i in range(len(model.state_sizes))]

    def grads(fast):
        model.fast_recurrence = fast
        with tf.GradientTape() as tape:
            tape.watch(states)
            logits, final = model(ids, states)
            loss = tf.reduce_sum(logits * tf.sin(logits))
            loss += sum(tf.reduce_sum(s * s) for s in final)
        return [tf.convert_to_tensor(g)
                for g in tape.gradient(loss, [*model.trainable_variables, *states])]

    for got, want in zip(grads(True), grads(False), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    model.fast_recurrence = True


@pytest.mark.parametrize("num_layers", [2, 3])
@pytest.mark.parametrize("mode", ["eager", "tf_function", "unknown_length"])
@pytest.mark.parametrize("split_gates", [True, False], ids=["per_gate", "fused"])
def test_pipelined_lstm_stack_matches_layer_by_layer_autodiff(num_layers, mode, split_gates):
    """`run_layers` on LSTMs (one pipelined function) against the plain loops, layer by layer."""
    stack = []
    for n in range(num_layers):
        cell = cells.LSTMCell(H, seed=n)
        cell.build((None, D if n == 0 else H))
        rng = np.random.default_rng(10 + n)
        for w in cell.weights:
            w.assign(rng.normal(0.0, 0.5, w.shape).astype("float32"))
        stack.append(cell)
    rng = np.random.default_rng(7)
    xs = tf.constant(rng.normal(size=(T, B, D)).astype("float32"))
    states = [[tf.constant(rng.normal(0.0, 0.5, (B, H)).astype("float32")) for _ in range(2)]
              for _ in range(num_layers)]
    variables = [v for c in stack for v in c.trainable_variables]

    def run(x, layer_states, fast):
        with tf.GradientTape() as tape:
            tape.watch([x, *tf.nest.flatten(layer_states)])
            outputs, final = recurrence.run_layers(
                stack, stack[0].project_inputs(x), layer_states, fast=fast,
                split_gates=split_gates)
            loss = tf.reduce_sum(outputs * tf.sin(outputs))
            loss += sum(tf.reduce_sum(s * tf.cos(s)) for s in final)
        grads = tape.gradient(loss, [x, *tf.nest.flatten(layer_states), *variables])
        return [outputs, *final], [tf.convert_to_tensor(g) for g in grads]

    if mode == "unknown_length":
        signature = [tf.TensorSpec([None, B, D]), [[tf.TensorSpec([B, H])] * 2] * num_layers]
        fast = tf.function(lambda x, s: run(x, s, True), input_signature=signature)(xs, states)
        plain = tf.function(lambda x, s: run(x, s, False), input_signature=signature)(xs, states)
    else:
        runner = tf.function(run) if mode == "tf_function" else run
        fast, plain = runner(xs, states, True), runner(xs, states, False)
    assert len(fast[0]) == 1 + 2 * num_layers
    for got, want in zip(fast[0] + fast[1], plain[0] + plain[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
