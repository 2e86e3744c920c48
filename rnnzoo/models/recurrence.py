"""The time loop of the recurrent layers, with hand-written backpropagation through time.

`run_layer(cell, projected, states)` runs a cell over a whole time-major sequence:

    projected: [time, batch, G*units]   (the cell's `project_inputs` / `project_ids`)
    outputs:   [time, batch, units]     H_1 ... H_T
    states:    the cell's final states  (an LSTM: [H_T, C_T])

The forward pass is the cell's own step maths (`_lstm_gates`, `_gru_gates`, `_simple_rnn_step`
in `rnnzoo.cells`, the functions `cell.step` runs for generation and export), so there is one
implementation of each cell. What differs from `tf.GradientTape` on a plain loop is the
backward pass, which is a `tf.custom_gradient` over the whole sequence:

- The forward loop keeps the gate activations of every step. Everything in the backward pass
  that does not depend on the incoming gradient (the derivatives of the activations, the
  products of gates) is computed for all time steps at once, as a few large elementwise ops.
- The backward loop then does, per step, one matmul `dZ_t @ W_h^T` and three to six small
  elementwise ops. Autodiff of the plain loop builds about twice as many ops per step (an LSTM
  forward + backward over 35 steps: 986 graph ops against 720 here), each with its own
  executor cost, which at batch 32, hidden 256 is a large part of a step on a CPU.
- `W_h^T` is transposed once per sequence, not per step: a `MatMul` with `transpose_b=True`
  on `[32, 4H] x [H, 4H]^T` ran at about a third of the speed of the same product against a
  pre-transposed copy here (oneDNN on two cores). This keeps the gates fused (one `[H, 4H]`
  recurrent matmul per step, Keras' weight layout) without paying for the transposed product.
- The recurrent weight gradient is one large matmul after the loop,
  `dW_h = [H_0 .. H_{T-1}]^T @ [dZ_1 .. dZ_T]` (`[H, T*batch] x [T*batch, G*H]`), instead of a
  small one accumulated per step; the input projection's gradient is `dZ` itself, handed back
  to `project_ids` / `project_inputs` outside this function.

With a static number of steps (training's `num_steps`) both loops are unrolled in the graph, so
the executor can overlap independent work (layer 2 at step t with layer 1 at step t+1); with an
unknown number of steps they are `tf.while_loop`s over `TensorArray`s. The gradients are checked
against `tf.GradientTape` on the plain loop in `tests/models/test_recurrence.py`.

Cells without a hand-written backward pass (a GRU with `reset_after=False`, any other Keras
cell) fall back to the plain loop over `cell.step` and autodiff.
"""

from __future__ import annotations

import tensorflow as tf

from rnnzoo.cells.gru import GRUCell, _gru_gates
from rnnzoo.cells.lstm import LSTMCell, _lstm_gates
from rnnzoo.cells.simple_rnn import SimpleRNNCell, _simple_rnn_step


def run_layer(cell, projected, states, fast=True):
    """Runs `cell` over `projected`, time-major; returns `(outputs, final_states)`.

    Args:
      cell: an rnnzoo cell (or anything with `step(projected_t, states)`).
      projected: `[time, batch, G*units]`, the input half of the gates of every step.
      states: the cell's initial states, a list (an LSTM: `[H_0, C_0]`).
      fast: use the hand-written backward pass where the cell has one; `False` runs the plain
        loop over `cell.step`, differentiated by autodiff (the reference the tests compare to).

    Returns:
      `(outputs [time, batch, units], final states as a list)`.
    """
    states = list(states)
    if fast:
        kernel = getattr(cell, "recurrent_kernel", None)
        if isinstance(cell, LSTMCell):
            h, c = states
            outputs, h, c = lstm_sequence(projected, h, c, cell._read(kernel))
            return outputs, [h, c]
        if isinstance(cell, GRUCell) and cell.reset_after:
            (h,) = states
            outputs, h = gru_sequence(projected, h, cell._read(kernel),
                                      cell._read(cell.recurrent_bias))
            return outputs, [h]
        if isinstance(cell, SimpleRNNCell):
            (h,) = states
            outputs, h = simple_rnn_sequence(projected, h, cell._read(kernel))
            return outputs, [h]
    return plain_loop(cell.step, projected, states)


def plain_loop(step, projected, states):
    """`step` over time-major `projected`, differentiated by autodiff."""

    def body(xs, carry):
        h, new_states = step(xs[0], carry)
        return [h], list(new_states)

    (outputs,), states = scan(body, [projected], list(states), [projected.dtype])
    return outputs, states


# ------------------------------------------------------------------------------------- LSTM


@tf.custom_gradient
def lstm_sequence(projected, h0, c0, recurrent_kernel):
    """An LSTM over a sequence: `[T, B, 4H]`, `[B, H]`, `[B, H]`, `[H, 4H]` -> `(H_1..T, H_T, C_T)`.

    Backward, with `dH_t` the total gradient reaching `H_t` (from the outputs and from step
    `t+1`) and the activations `I, F, G, O, tanh(C_t)` kept from the forward pass:

        dC_t = dC_{t+1} * F_{t+1} + dH_t * O_t * (1 - tanh(C_t)^2)
        dZ_t = [dC_t, dC_t, dC_t, dH_t] * Q_t,
            Q_t = [G I(1-I), C_{t-1} F(1-F), I (1-G^2), tanh(C_t) O(1-O)]   (all t at once)
        dH_{t-1} += dZ_t @ W_h^T
    """
    dtype = projected.dtype

    def forward(xs, carry):
        h, c, (i, f, g, o, tanh_c) = _lstm_gates(xs[0], *carry, recurrent_kernel)
        return [h, c, i, f, g, o, tanh_c], [h, c]

    (hs, cs, i, f, g, o, tanh_c), (h_last, c_last) = scan(
        forward, [projected], [h0, c0], [dtype] * 7)

    def grad(d_outputs, d_h_last, d_c_last):
        h_prev = tf.concat([h0[None], hs[:-1]], 0)
        c_prev = tf.concat([c0[None], cs[:-1]], 0)
        # Everything that does not depend on the incoming gradient, for all steps at once.
        d_tanh_c = o * (1.0 - tanh_c * tanh_c)
        q = tf.concat([g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g),
                       tanh_c * o * (1.0 - o)], -1)
        kernel_t = _transposed(recurrent_kernel)

        def backward(xs, carry):
            d_out, d_tanh_c_t, q_t, f_t = xs
            d_h_rec, d_c = carry
            d_h = d_out + d_h_rec
            d_c = d_c + d_h * d_tanh_c_t
            d_z = tf.concat([d_c, d_c, d_c, d_h], -1) * q_t
            return [d_z], [tf.matmul(d_z, kernel_t), d_c * f_t]

        # dC_t flows into step t-1 through F_t; the carry holds dC_t * F_t.
        d_outputs = _zeros_if_none(d_outputs, hs)
        (d_z,), (d_h0, d_c0) = scan(
            backward, [d_outputs, d_tanh_c, q, f],
            [_zeros_if_none(d_h_last, h0), _zeros_if_none(d_c_last, c0)], [dtype],
            reverse=True)
        d_kernel = _sum_outer(h_prev, d_z)
        return d_z, d_h0, d_c0, d_kernel

    return (hs, h_last, c_last), grad


# -------------------------------------------------------------------------------------- GRU


@tf.custom_gradient
def gru_sequence(projected, h0, recurrent_kernel, recurrent_bias):
    """A `reset_after` GRU over a sequence: `[T, B, 3H]`, `[B, H]`, `[H, 3H]`, `[3H]` ->
    `(H_1..T, H_T)`.

    Backward, with `dH_t` the total gradient reaching `H_t` and `Z, R, N, rec_h` kept from the
    forward pass (`H_t = Z H_{t-1} + (1 - Z) N`, `N = tanh(x_h + R rec_h)`):

        K^x_t = [(H_{t-1} - N) Z(1-Z),  (1-Z)(1-N^2) rec_h R(1-R),  (1-Z)(1-N^2)]
        K^h_t = K^x_t with its last block times R                           (all t at once)
        d(projected_t) = [dH_t, dH_t, dH_t] * K^x_t
        d(H W_h + b_hh)_t = [dH_t, dH_t, dH_t] * K^h_t
        dH_{t-1} += d(H W_h + b_hh)_t @ W_h^T + dH_t * Z
    """
    dtype = projected.dtype

    def forward(xs, carry):
        h, (z, r, n, rec_h) = _gru_gates(xs[0], carry[0], recurrent_kernel, recurrent_bias)
        return [h, z, r, n, rec_h], [h]

    (hs, z, r, n, rec_h), (h_last,) = scan(forward, [projected], [h0], [dtype] * 5)

    def grad(d_outputs, d_h_last):
        h_prev = tf.concat([h0[None], hs[:-1]], 0)
        k_z = (h_prev - n) * z * (1.0 - z)
        k_n = (1.0 - z) * (1.0 - n * n)
        k_r = k_n * rec_h * r * (1.0 - r)
        k_rec = tf.concat([k_z, k_r, k_n * r], -1)
        kernel_t = _transposed(recurrent_kernel)

        def backward(xs, carry):
            d_out, k_rec_t, z_t = xs
            d_h = d_out + carry[0]
            d_rec = tf.tile(d_h, [1, 3]) * k_rec_t
            return [d_h], [tf.matmul(d_rec, kernel_t) + d_h * z_t]

        d_outputs = _zeros_if_none(d_outputs, hs)
        (d_h,), (d_h0,) = scan(backward, [d_outputs, k_rec, z],
                               [_zeros_if_none(d_h_last, h0)], [dtype], reverse=True)
        d_h3 = tf.tile(d_h, [1, 1, 3])
        d_rec = d_h3 * k_rec
        d_projected = d_h3 * tf.concat([k_z, k_r, k_n], -1)
        d_kernel = _sum_outer(h_prev, d_rec)
        d_bias = tf.reduce_sum(d_rec, [0, 1])
        return d_projected, d_h0, d_kernel, d_bias

    return (hs, h_last), grad


# ------------------------------------------------------------------------------- simple RNN


@tf.custom_gradient
def simple_rnn_sequence(projected, h0, recurrent_kernel):
    """A simple RNN over a sequence: `[T, B, H]`, `[B, H]`, `[H, H]` -> `(H_1..T, H_T)`.

    Backward: `dP_t = dH_t * (1 - H_t^2)`, `dH_{t-1} += dP_t @ W_h^T`.
    """
    dtype = projected.dtype

    def forward(xs, carry):
        h = _simple_rnn_step(xs[0], carry[0], recurrent_kernel)
        return [h], [h]

    (hs,), (h_last,) = scan(forward, [projected], [h0], [dtype])

    def grad(d_outputs, d_h_last):
        h_prev = tf.concat([h0[None], hs[:-1]], 0)
        d_tanh = 1.0 - hs * hs
        kernel_t = _transposed(recurrent_kernel)

        def backward(xs, carry):
            d_out, d_tanh_t = xs
            d_p = (d_out + carry[0]) * d_tanh_t
            return [d_p], [tf.matmul(d_p, kernel_t)]

        d_outputs = _zeros_if_none(d_outputs, hs)
        (d_p,), (d_h0,) = scan(backward, [d_outputs, d_tanh],
                               [_zeros_if_none(d_h_last, h0)], [dtype], reverse=True)
        return d_p, d_h0, _sum_outer(h_prev, d_p)

    return (hs, h_last), grad


# ---------------------------------------------------------------------------------- helpers


def scan(fn, xs, carry, y_dtypes, reverse=False):
    """`fn(x_t list, carry) -> (y_t list, carry)` over time-major `xs`; returns `(ys, carry)`.

    Unrolled in the graph when the number of steps is static, else a `tf.while_loop`.
    """
    steps = xs[0].shape[0]
    order = range(steps - 1, -1, -1) if reverse and steps is not None else range(steps or 0)
    if steps is not None:
        slices = [tf.unstack(x, num=steps) for x in xs]
        ys = [None] * steps
        for t in order:
            ys[t], carry = fn([s[t] for s in slices], carry)
        return [tf.stack(list(column)) for column in zip(*ys, strict=True)], list(carry)

    n = tf.shape(xs[0])[0]
    arrays = [tf.TensorArray(d, size=n) for d in y_dtypes]

    def body(k, arrays, carry):
        t = n - 1 - k if reverse else k
        y, carry = fn([x[t] for x in xs], carry)
        return k + 1, [a.write(t, v) for a, v in zip(arrays, y, strict=True)], list(carry)

    _, arrays, carry = tf.while_loop(lambda k, *_: k < n, body, (0, arrays, list(carry)))
    return [a.stack() for a in arrays], list(carry)


def _transposed(kernel):
    """`kernel^T` as its own tensor, for the backward loop's `dZ_t @ W_h^T`.

    Grappler's arithmetic optimizer folds a `Transpose` feeding a `MatMul` into the matmul's
    `transpose_b`, which oneDNN runs at a third of the speed for these shapes (`[32, 4H] x
    [4H, H]`, measured here: 35 chained products 9 ms pre-transposed, 33 ms folded).
    `Snapshot` (a copy) sits between the two, so the fold does not apply.
    """
    return tf.raw_ops.Snapshot(input=tf.transpose(kernel))


def _sum_outer(a, b):
    """`sum_t a_t^T b_t` as one matmul: `[T, B, m]`, `[T, B, n]` -> `[m, n]`."""
    return tf.matmul(tf.reshape(a, [-1, a.shape[-1]]), tf.reshape(b, [-1, b.shape[-1]]),
                     transpose_a=True)


def _zeros_if_none(grad, like):
    return tf.zeros_like(like) if grad is None else grad
