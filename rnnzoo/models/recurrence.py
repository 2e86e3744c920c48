"""The time loop of the recurrent layers, with hand-written backpropagation through time.

`run_layer(cell, projected, states)` runs a cell over a whole time-major sequence:

    projected: [time, batch, G*units]   (the cell's `project_inputs` / `project_ids`)
    outputs:   [time, batch, units]     H_1 ... H_T
    states:    the cell's final states  (an LSTM: [H_T, C_T])

The forward pass runs the cells' own update maths (`_lstm_update`, `_gru_update`,
`_simple_rnn_step` in `rnnzoo.cells`, which `cell.step` runs for generation and export), so
there is one implementation of each cell. What differs from `tf.GradientTape` on a plain loop:

- The backward pass is a `tf.custom_gradient` over the whole sequence. The forward loop keeps,
  per step, the products of gates the backward pass needs (they do not depend on the incoming
  gradient, and computing them beside the next step's matmul costs the critical path nothing);
  the backward loop then does per step the recurrent matmul `dZ_t @ W_h^T` and three to six
  small elementwise ops. Autodiff of the plain loop builds about twice as many ops per step,
  each with its own executor cost, which at batch 32, hidden 256 is a large part of a step on
  a CPU.
- The recurrent matmul is computed gate by gate on CPUs (`split_gates_default` says why): the
  weight stays the cell's fused `[H, G*H]` (Keras' layout, one matmul in `cell.step`), and the
  loop multiplies by its `G` column blocks, which the executor runs in parallel.
- `W_h^T` is transposed once per sequence, not per step: a `MatMul` with `transpose_b=True`
  on `[32, 4H] x [H, 4H]^T` ran at about a third of the speed of the same product against a
  pre-transposed copy here (oneDNN on two cores).
- The recurrent weight gradient is one large matmul after the loop,
  `dW_h = [H_0 .. H_{T-1}]^T @ [dZ_1 .. dZ_T]` (`[H, T*batch] x [T*batch, G*H]`), instead of a
  small one accumulated per step (accumulating it in chunks during the loop, to overlap it with
  the loop, measured no faster); the input projection's gradient is `dZ` itself, handed back to
  `project_ids` / `project_inputs` outside this function.

With a static number of steps (training's `num_steps`) both loops are unrolled in the graph;
with an unknown number of steps they are `tf.while_loop`s over `TensorArray`s. The gradients
are checked against `tf.GradientTape` on the plain loop in `tests/models/test_recurrence.py`.

Training on a CPU runs faster still through rnnzoo's C++ sequence ops, where they build
(`rnnzoo.ops.load_recurrent_ops`; `fused=True`, which the models pass in training only): an
LSTM or reset-after GRU layer in float32 of at most `FUSED_MAX_UNITS` units is then two ops,
one forward and one backward (`rnnzoo/ops/recurrent_kernels.cc`: the same maths, each time step
one GEMM against the recurrent weight packed once per sequence and the gate maths, in chunks of
hidden units that TensorFlow's intra-op threads share), and a stack runs layer after layer;
`fused_project_ids` gives the one-hot input's projection a one-op gradient. The weight
gradients stay single matmuls after the loop. The graph above stays what runs on a GPU, under
XLA, for other dtypes and wider layers, in every exported function (an export must not need
rnnzoo's library), and where no C++ compiler exists. `tests/models/test_recurrent_ops.py`
checks the ops against NumPy and autodiff.

Cells without a hand-written backward pass (a GRU with `reset_after=False`, any other Keras
cell) fall back to the plain loop over `cell.step` and autodiff.
"""

from __future__ import annotations

import functools
import os

import tensorflow as tf

from rnnzoo.cells.gru import GRUCell, _gru_update
from rnnzoo.cells.lstm import LSTMCell, _lstm_update
from rnnzoo.cells.simple_rnn import SimpleRNNCell, _simple_rnn_step


def run_layer(cell, projected, states, fast=True, split_gates=None, fused=False):
    """Runs `cell` over `projected`, time-major; returns `(outputs, final_states)`.

    Args:
      cell: an rnnzoo cell (or anything with `step(projected_t, states)`).
      projected: `[time, batch, G*units]`, the input half of the gates of every step.
      states: the cell's initial states, a list (an LSTM: `[H_0, C_0]`).
      fast: use the hand-written backward pass where the cell has one; `False` runs the plain
        loop over `cell.step`, differentiated by autodiff (the reference the tests compare to).
      split_gates: compute the recurrent matmul gate by gate (see `split_gates_default`, the
        default) or as one fused matmul; the same maths either way.
      fused: run an LSTM or a reset-after GRU through the C++ sequence ops where they load
        (`fused_available()`; float32 only, else the graph below). Never for a function that
        is exported: the SavedModel would need rnnzoo's op library.

    Returns:
      `(outputs [time, batch, units], final states as a list)`.
    """
    states = list(states)
    if split_gates is None:
        split_gates = split_gates_default()
    fused = fused and _fusable([cell], projected)
    if fast:
        kernel = getattr(cell, "recurrent_kernel", None)
        if fused and isinstance(cell, LSTMCell):
            h, c = states
            outputs, h, c = _fused_lstm_sequence()(projected, h, c, cell._read(kernel))
            return outputs, [h, c]
        if fused and isinstance(cell, GRUCell) and cell.reset_after:
            (h,) = states
            outputs, h = _fused_gru_sequence()(
                projected, h, cell._read(kernel), cell._read(cell.recurrent_bias))
            return outputs, [h]
        if isinstance(cell, LSTMCell):
            h, c = states
            outputs, h, c = _lstm_sequence(split_gates)(projected, h, c, cell._read(kernel))
            return outputs, [h, c]
        if isinstance(cell, GRUCell) and cell.reset_after:
            (h,) = states
            outputs, h = _gru_sequence(split_gates)(
                projected, h, cell._read(kernel), cell._read(cell.recurrent_bias))
            return outputs, [h]
        if isinstance(cell, SimpleRNNCell):
            (h,) = states
            outputs, h = simple_rnn_sequence(projected, h, cell._read(kernel))
            return outputs, [h]
    return plain_loop(cell.step, projected, states)


def run_layers(cells, projected, layer_states, fast=True, split_gates=None, fused=False):
    """Runs a stack of cells over `projected` (the first cell's projected inputs), time-major.

    A stack of LSTMs on the fast path runs as one pipelined function
    (`_lstm_sequence`), unless the C++ sequence ops run it (`fused`, see `run_layer`);
    anything else runs layer after layer, each projecting the outputs of the one below with
    `cell.project_inputs`.

    Returns:
      `(top layer's outputs [time, batch, units], final states of every layer, a flat list)`.
    """
    if split_gates is None:
        split_gates = split_gates_default()
    fused = fused and _fusable(cells, projected)
    if fast and not fused and len(cells) > 1 and all(type(c) is LSTMCell for c in cells):
        args = []
        for n, (cell, states) in enumerate(zip(cells, layer_states, strict=True)):
            args += [*states, cell._read(cell.recurrent_kernel)]
            if n > 0:
                args += [cell._read(cell.kernel), cell._read(cell.bias)]
        outputs, *final = _lstm_sequence(split_gates, len(cells))(projected, *args)
        return outputs, list(final)
    new_states = []
    x = None
    for n, (cell, states) in enumerate(zip(cells, layer_states, strict=True)):
        x, s = run_layer(cell, projected if n == 0 else cell.project_inputs(x), states,
                         fast=fast, split_gates=split_gates, fused=fused)
        new_states.extend(s)
    return x, new_states


def plain_loop(step, projected, states):
    """`step` over time-major `projected`, differentiated by autodiff."""

    def body(xs, carry):
        h, new_states = step(xs[0], carry)
        return [h], list(new_states)

    (outputs,), states = scan(body, [projected], list(states), [projected.dtype])
    return outputs, states


# ------------------------------------------------------------------------------------- LSTM


@functools.cache
def _lstm_sequence(split_gates, num_layers=1):
    """One LSTM, or a stack of `num_layers` of them, over a sequence as one function. A stack
    pipelines: layer `l` runs step `t` while layer `l-1` runs step `t+1` (forward) or `t-1`
    (backward). Two separate layers cannot: a layer's outputs only exist once its whole sequence
    has run (`tf.custom_gradient` joins them), and the next layer's input projection is one
    matmul over all of them.

    `fn(projected, *layer_args)`, `projected` `[T, B, 4H]` (layer 0's projected inputs), then per
    layer `h0, c0, recurrent_kernel` and, for layers above the first, `kernel, bias`, -> `(H_1..T
    of the top layer, then H_T, C_T of every layer)`.

    Backward, per layer, with `dH_t` the total gradient reaching `H_t` (from the layer above or
    the outputs, and from step `t+1`) and, kept from the forward pass, `F_t`,
    `D_t = O_t (1 - tanh(C_t)^2)` and `Q_t = [G I(1-I), C_{t-1} F(1-F), I (1-G^2),
    tanh(C_t) O(1-O)]`:

        dC_t = dC_{t+1} * F_{t+1} + dH_t * D_t
        dZ_t = [dC_t, dC_t, dC_t, dH_t] * Q_t
        dH_{t-1} += dZ_t @ W_h^T

    Layer `l > 0` projects its input `H^{l-1}_t` one step at a time, together with its own
    `H^l_{t-1}`: gate `k`'s pre-activation is `[H^{l-1}_t, H^l_{t-1}] @ [W_x; W_h]_k + b_k`,
    one `[B, 2H] x [2H, H]` matmul, and `dZ_t @ [W_x; W_h]^T` splits into the gradient reaching
    `H^{l-1}_t` and the one reaching `H^l_{t-1}`.
    """
    per_layer = lambda n: 3 if n == 0 else 5  # noqa: E731

    @tf.custom_gradient
    def lstm_sequence(projected, *args):
        dtype = projected.dtype
        layers, k = [], 0
        for n in range(num_layers):
            layers.append(args[k:k + per_layer(n)])
            k += per_layer(n)
        # Layer 0: x + H W_h; layer l > 0: [H^{l-1}, H^l] @ [W_x; W_h] + b, both per gate.
        kernels = [layers[0][2]] + [tf.concat([a[3], a[2]], 0) for a in layers[1:]]
        biases = [None] + [tf.split(a[4], 4) for a in layers[1:]]
        matmuls = [_recurrent_matmul(w, 4, split_gates) for w in kernels]

        def forward(x, carry):
            ys, new_carry, below = [], [], None
            for n in range(num_layers):
                h_prev, c_prev = carry[2 * n:2 * n + 2]
                if n == 0:
                    z = [a + b for a, b in zip(x, matmuls[0](h_prev), strict=True)]
                else:
                    z = [tf.nn.bias_add(a, b) for a, b in zip(
                        matmuls[n](tf.concat([below, h_prev], -1)), biases[n], strict=True)]
                h, c, (i, f, g, o, tanh_c) = _lstm_update(*z, c_prev)
                q = [_sigmoid_grad(i, g), _sigmoid_grad(f, c_prev), _tanh_grad(g, i),
                     _sigmoid_grad(o, tanh_c)]
                ys += [h, f, _tanh_grad(tanh_c, o), *q]
                new_carry += [h, c]
                below = h
            return ys, new_carry

        initial = [s for a in layers for s in a[:2]]
        ys, final = scan(forward, tf.split(projected, 4, axis=-1), initial,
                         [dtype] * (7 * num_layers))
        saved = [ys[7 * n:7 * n + 7] for n in range(num_layers)]
        hs = [a[0] for a in saved]

        def grad(d_top, *d_final):
            backprops = [_recurrent_matmul_transposed(w, 4, split_gates) for w in kernels]
            units = hs[0].shape[-1]

            def backward(xs, carry):
                d_out, rest = xs[0], xs[1:]
                d_zs, new_carry, from_above = [], [None] * (2 * num_layers), None
                for n in reversed(range(num_layers)):
                    f_t, d_tanh_c_t, *q_t = rest[6 * n:6 * n + 6]
                    d_h_rec, d_c = carry[2 * n:2 * n + 2]
                    d_h = (d_out if n == num_layers - 1 else from_above) + d_h_rec
                    d_c = d_c + d_h * d_tanh_c_t
                    d_z = [d_c * q_t[0], d_c * q_t[1], d_c * q_t[2], d_h * q_t[3]]
                    back = backprops[n](d_z)
                    if n > 0:
                        from_above, back = tf.split(back, [units, units], axis=-1)
                    new_carry[2 * n:2 * n + 2] = [back, d_c * f_t]
                    d_zs = d_z + d_zs
                return d_zs, new_carry

            xs = [_zeros_if_none(d_top, hs[-1])] + [a for s in saved for a in s[1:]]
            carry = [_zeros_if_none(d, s) for d, s in zip(d_final, initial, strict=True)]
            d_zs, d_initial = scan(backward, xs, carry, [dtype] * (4 * num_layers),
                                   reverse=True)
            grads = []
            for n in range(num_layers):
                d_z = tf.concat(d_zs[4 * n:4 * n + 4], -1)
                h_prev = _previous(initial[2 * n], hs[n])
                d_h0, d_c0 = d_initial[2 * n:2 * n + 2]
                if n == 0:
                    grads = [d_z, d_h0, d_c0, _sum_outer(h_prev, d_z)]
                    continue
                d_w = _sum_outer(tf.concat([hs[n - 1], h_prev], -1), d_z)
                d_w_x, d_w_h = tf.split(d_w, 2, axis=0)
                grads += [d_h0, d_c0, d_w_h, d_w_x, tf.reduce_sum(d_z, [0, 1])]
            return grads

        return (hs[-1], *final), grad

    return lstm_sequence


# ---------------------------------------------------------------------- the C++ sequence ops


FUSED_SWITCH = "RNNZOO_FUSED_RNN"  # "off": train on the TensorFlow graph, never the C++ ops
# The largest layer the ops run: at 512 units (`--preset=course_bigram_lstm_large`) they
# measured 0.90x the graph's step (`benchmarks/throughput.py`): the packed recurrent weight (4
# MB) outgrows the two cores' L2 caches, and 10 steps a sequence do not pay for packing it.
FUSED_MAX_UNITS = 256


def fused_available() -> bool:
    """Whether `fused=True` can run the C++ sequence ops here: on a machine without a GPU,
    where `rnnzoo.ops.load_recurrent_ops()` builds and loads them (it compiles them once on
    first use), unless `$RNNZOO_FUSED_RNN` is `off` (or `$RNNZOO_OPS`, for all of rnnzoo's
    ops)."""
    if os.environ.get(FUSED_SWITCH, "").lower() == "off":
        return False
    return _fused_library() is not None


def _fusable(cells, projected) -> bool:
    """Whether the ops can run `cells` over `projected`: where they load, float32, at least
    one time step, at most `FUSED_MAX_UNITS` units a layer."""
    steps = projected.shape[0]
    return (projected.dtype == tf.float32 and (steps is None or steps > 0)
            and all(getattr(c, "units", FUSED_MAX_UNITS + 1) <= FUSED_MAX_UNITS for c in cells)
            and fused_available())


@functools.cache
def _fused_library():
    """The loaded op library; None where it does not load or a GPU is present."""
    if tf.config.list_logical_devices("GPU"):
        return None
    from rnnzoo import ops

    return ops.load_recurrent_ops()


@functools.cache
def _fused_lstm_sequence():
    """`fn(projected, h0, c0, recurrent_kernel) -> (H_1..T, H_T, C_T)` through the C++ ops,
    with the weight gradient `sum_t H_{t-1}^T dZ_t` as one matmul after the backward op."""
    library = _fused_library()

    @tf.custom_gradient
    def lstm_sequence(projected, h0, c0, recurrent_kernel):
        hs, cs, gates = library.rnnzoo_lstm_sequence(projected, h0, c0, recurrent_kernel)

        def grad(d_hs, d_h_last, d_c_last):
            d_z, d_h0, d_c0 = library.rnnzoo_lstm_sequence_grad(
                recurrent_kernel, c0, cs, gates, _zeros_if_none(d_hs, hs),
                _zeros_if_none(d_h_last, h0), _zeros_if_none(d_c_last, c0))
            return d_z, d_h0, d_c0, _sum_outer(_previous(h0, hs), d_z)

        return (hs, hs[-1], cs[-1]), grad

    return lstm_sequence


def fused_project_ids(cell, ids):
    """`cell.project_ids(ids)` (`[...]` ids -> `[..., G*units]`, the one-hot input's
    projection as a row gather) whose gradient is one C++ op where they load
    (`RnnzooRowsGrad`: the kernel's rows and the bias summed in one pass over the incoming
    gradient, where TensorFlow runs an UnsortedSegmentSum and a BiasAddGrad), the kernel's
    gradient dense. For training only, as `run_layer`'s `fused`."""
    if cell.compute_dtype != "float32" or not fused_available():
        return cell.project_ids(ids)
    return _projected_ids(cell._read(cell.kernel), cell._read(cell.bias), ids)


@tf.custom_gradient
def _projected_ids(kernel, bias, ids):
    projected = tf.nn.bias_add(tf.gather(kernel, ids), bias)

    def grad(d_projected):
        d_flat = tf.reshape(d_projected, [-1, d_projected.shape[-1]])
        d_kernel, d_bias = _fused_library().rnnzoo_rows_grad(
            tf.cast(tf.reshape(ids, [-1]), tf.int32), d_flat, tf.shape(kernel)[0])
        return d_kernel, d_bias, None

    return projected, grad


@functools.cache
def _fused_gru_sequence():
    """`fn(projected, h0, recurrent_kernel, recurrent_bias) -> (H_1..T, H_T)` through the C++
    ops; the recurrent weight's and bias's gradients (`sum_t H_{t-1}^T d rec_t`, `sum_t d
    rec_t`) as one matmul and one sum after the backward op."""
    library = _fused_library()

    @tf.custom_gradient
    def gru_sequence(projected, h0, recurrent_kernel, recurrent_bias):
        hs, saved = library.rnnzoo_gru_sequence(projected, h0, recurrent_kernel,
                                                recurrent_bias)

        def grad(d_hs, d_h_last):
            d_projected, d_rec, d_h0 = library.rnnzoo_gru_sequence_grad(
                recurrent_kernel, h0, hs, saved, _zeros_if_none(d_hs, hs),
                _zeros_if_none(d_h_last, h0))
            return (d_projected, d_h0, _sum_outer(_previous(h0, hs), d_rec),
                    tf.reduce_sum(d_rec, [0, 1]))

        return (hs, hs[-1]), grad

    return gru_sequence


# -------------------------------------------------------------------------------------- GRU


@functools.cache
def _gru_sequence(split_gates):
    """A `reset_after` GRU's sequence function (recurrent matmul per gate or fused).

    `fn(projected, h0, recurrent_kernel, recurrent_bias)`: `[T, B, 3H]`, `[B, H]`, `[H, 3H]`,
    `[3H]` -> `(H_1..T, H_T)`.

    Backward, with `dH_t` the total gradient reaching `H_t` and, kept from the forward pass
    (`H_t = Z H_{t-1} + (1 - Z) N`, `N = tanh(x_h + R rec_h)`), `Z_t` and

        K_t = [(H_{t-1} - N) Z(1-Z),  (1-Z)(1-N^2) rec_h R(1-R),  (1-Z)(1-N^2),  (1-Z)(1-N^2) R]:

        [d x_z, d x_r, d x_h, d rec_h]_t = dH_t * K_t
        d rec_t = [d x_z, d x_r, d rec_h]_t                  (the gradient of H W_h + b_hh)
        dH_{t-1} += d rec_t @ W_h^T + dH_t * Z_t
    """

    @tf.custom_gradient
    def gru_sequence(projected, h0, recurrent_kernel, recurrent_bias):
        dtype = projected.dtype
        recurrent = _recurrent_matmul(recurrent_kernel, 3, split_gates)
        b_z, b_r, b_h = tf.split(recurrent_bias, 3)
        x_z, x_r, x_h = tf.split(projected, 3, axis=-1)

        def forward(x, carry):
            (h_prev,) = carry
            rec_z, rec_r, rec_h = recurrent(h_prev)
            rec_h += b_h  # b_hz, b_hr were added to x, all steps at once; b_hh is inside R * (.)
            h, (z, r, n) = _gru_update(*x, rec_z, rec_r, rec_h, h_prev)
            k_n = _tanh_grad(n, 1.0 - z)
            k = [_sigmoid_grad(z, h_prev - n), _sigmoid_grad(r, k_n * rec_h), k_n, k_n * r]
            return [h, z, *k], [h]

        (hs, z, *k), (h_last,) = scan(forward, [x_z + b_z, x_r + b_r, x_h], [h0],
                                      [dtype] * 6)

        def grad(d_outputs, d_h_last):
            backprop = _recurrent_matmul_transposed(recurrent_kernel, 3, split_gates)

            def backward(xs, carry):
                d_out, z_t, *k_t = xs
                d_h = d_out + carry[0]
                d_x_z, d_x_r, d_x_h, d_rec_h = (d_h * k for k in k_t)
                return ([d_x_z, d_x_r, d_x_h, d_rec_h],
                        [backprop([d_x_z, d_x_r, d_rec_h]) + d_h * z_t])

            (d_x_z, d_x_r, d_x_h, d_rec_h), (d_h0,) = scan(
                backward, [_zeros_if_none(d_outputs, hs), z, *k],
                [_zeros_if_none(d_h_last, h0)], [dtype] * 4, reverse=True)
            d_rec = tf.concat([d_x_z, d_x_r, d_rec_h], -1)
            d_projected = tf.concat([d_x_z, d_x_r, d_x_h], -1)
            return (d_projected, d_h0, _sum_outer(_previous(h0, hs), d_rec),
                    tf.reduce_sum(d_rec, [0, 1]))

        return (hs, h_last), grad

    return gru_sequence


# ------------------------------------------------------------------------- the recurrent matmul


def split_gates_default():
    """Whether the training loop computes the recurrent matmul per gate: on CPUs, yes.

    `H W_h` with `W_h = [W_1 | ... | W_G]` (`[H, G*H]`, the cell's fused weight) is the same
    product as `[H W_1 | ... | H W_G]`. At batch 32, hidden 256 one `[32, 256] x [256, 4*256]`
    matmul does not use two CPU cores well (oneDNN's threads synchronise for a few
    microseconds of work each), while TensorFlow's executor runs G independent `[H, H]`
    matmuls, and the gate activations after them, side by side: an LSTM trained about 1.3x
    faster this way on two cores (`benchmarks/throughput.py`); the same products batched into
    one `BatchMatMul` over the gates did not gain (0.97x), two `[H, 2H]` halves gained less.
    On a GPU one fused matmul is the faster kernel, so there the product stays fused.
    """
    return not tf.config.list_logical_devices("GPU")


def _recurrent_matmul(kernel, num_gates, split_gates):
    """`h -> [h W_1, ..., h W_G]`, the recurrent matmul's gate blocks, `[batch, H]` each."""
    if split_gates:
        blocks = tf.split(kernel, num_gates, axis=1)
        return lambda h: [tf.matmul(h, w) for w in blocks]
    return lambda h: tf.split(tf.matmul(h, kernel), num_gates, axis=-1)


def _recurrent_matmul_transposed(kernel, num_gates, split_gates):
    """`[d_1, ..., d_G] -> [d_1 | ... | d_G] @ W_h^T`, the gradient reaching `h`.

    The transposed weights are made once per sequence (see `_transposed`).
    """
    if split_gates:
        blocks = [_transposed(w) for w in tf.split(kernel, num_gates, axis=1)]
        return lambda d: tf.add_n([tf.matmul(d_k, w) for d_k, w in zip(d, blocks, strict=True)])
    kernel_t = _transposed(kernel)
    return lambda d: tf.matmul(tf.concat(d, -1), kernel_t)


def _sigmoid_grad(y, dy):
    """`dy * y * (1 - y)`, the derivative through `y = sigmoid(x)`, as one op."""
    return tf.raw_ops.SigmoidGrad(y=y, dy=dy)


def _tanh_grad(y, dy):
    """`dy * (1 - y^2)`, the derivative through `y = tanh(x)`, as one op."""
    return tf.raw_ops.TanhGrad(y=y, dy=dy)


def _previous(h0, hs):
    """`[H_0, ..., H_{T-1}]` from `H_0` and `H_1..T`."""
    return tf.concat([h0[None], hs[:-1]], 0)


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
        h_prev = _previous(h0, hs)
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
