"""NumPy references of the cell equations, and one table of the cells under test."""

import dataclasses
from collections.abc import Callable

import keras
import numpy as np

from rnnzoo import cells


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def simple_rnn_step(x, states, w):
    (h,) = states
    h = np.tanh(x @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"])
    return h, [h]


def _gru_step(x, states, w, reset_after):
    (h,) = states
    u = h.shape[-1]
    wx, wh, b = w["kernel"], w["recurrent_kernel"], w["bias"]
    bh = w["recurrent_bias"] if reset_after else np.zeros_like(b)
    z = sigmoid(x @ wx[:, :u] + b[:u] + h @ wh[:, :u] + bh[:u])
    r = sigmoid(x @ wx[:, u : 2 * u] + b[u : 2 * u] + h @ wh[:, u : 2 * u] + bh[u : 2 * u])
    if reset_after:
        cand = np.tanh(x @ wx[:, 2 * u :] + b[2 * u :] + r * (h @ wh[:, 2 * u :] + bh[2 * u :]))
    else:
        cand = np.tanh(x @ wx[:, 2 * u :] + b[2 * u :] + (r * h) @ wh[:, 2 * u :])
    h = z * h + (1.0 - z) * cand
    return h, [h]


def gru_step(x, states, w):
    return _gru_step(x, states, w, reset_after=True)


def gru_reset_before_step(x, states, w):
    return _gru_step(x, states, w, reset_after=False)


def lstm_step(x, states, w):
    h, c = states
    u = h.shape[-1]
    gates = x @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
    i, f, g, o = (gates[:, k * u : (k + 1) * u] for k in range(4))
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    return h, [h, c]


def unroll(step, xs, states, w):
    """Runs `step` over `xs` `[batch, time, features]`; returns `([batch, time, units], states)`."""
    outputs = []
    for t in range(xs.shape[1]):
        y, states = step(xs[:, t], states, w)
        outputs.append(y)
    return np.stack(outputs, axis=1), states


@dataclasses.dataclass(frozen=True)
class Case:
    """One cell under test: how to make it, its NumPy step, and its Keras twin."""

    name: str
    make: Callable  # (units, **kwargs) -> rnnzoo cell
    numpy_step: Callable  # (x, states, weights) -> (output, states)
    make_keras: Callable  # units -> keras cell
    to_keras: Callable  # {name: array} -> keras cell's weight list
    num_states: int


def _gru_to_keras(w):
    return [w["kernel"], w["recurrent_kernel"], np.stack([w["bias"], w["recurrent_bias"]])]


def _plain_to_keras(w):
    return [w["kernel"], w["recurrent_kernel"], w["bias"]]


CASES = [
    Case("rnn", cells.SimpleRNNCell, simple_rnn_step, keras.layers.SimpleRNNCell,
         _plain_to_keras, 1),
    Case("gru", cells.GRUCell, gru_step, keras.layers.GRUCell, _gru_to_keras, 1),
    Case("gru_reset_before", lambda units, **kw: cells.GRUCell(units, reset_after=False, **kw),
         gru_reset_before_step, lambda units: keras.layers.GRUCell(units, reset_after=False),
         _plain_to_keras, 1),
    Case("lstm", cells.LSTMCell, lstm_step, keras.layers.LSTMCell, _plain_to_keras, 2),
]  # fmt: skip

NUMPY_STEPS = {case.name: case.numpy_step for case in CASES}


def randomize(cell, rng, scale=0.5):
    """Gives a built cell random weights (large enough to leave the linear regime)."""
    weights = {}
    for variable in cell.weights:
        value = rng.normal(0.0, scale, variable.shape).astype(variable.dtype)
        variable.assign(value)
        weights[variable.name] = value
    return weights


def build_random(case, units, input_dim, rng, **kwargs):
    """A built `case` cell with random weights, and the weights by name."""
    cell = case.make(units, **kwargs)
    cell.build((None, input_dim))
    return cell, randomize(cell, rng)
