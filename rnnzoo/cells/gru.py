"""The gated recurrent unit (Cho et al. 2014), in both of its reset-gate placements."""

import keras
import tensorflow as tf

from rnnzoo.cells.base import RecurrentCell, offset_seed, seeded_initializer, unpack_states


def _gru_step(projected, h, recurrent_kernel, recurrent_bias, reset_after):
    """One GRU step; the gate blocks are in Keras' order `z, r, h`.

    With `x_z, x_r, x_h = split(projected, 3)` (`projected = X_t W_x + b`):

        z = sigmoid(x_z + H W_hz [+ b_hz])
        r = sigmoid(x_r + H W_hr [+ b_hr])
        h~ = tanh(x_h + r * (H W_hh + b_hh))     if reset_after   (Keras, cuDNN)
        h~ = tanh(x_h + (r * H) W_hh)            otherwise        (Cho et al., d2l)
        H_t = z * H + (1 - z) * h~

    With `reset_after` the recurrent part is one matmul `H @ recurrent_kernel` (`[units,
    3*units]`) plus `recurrent_bias`; without, one matmul for `z, r` and one for `h~`, since
    `r` must be known first.

    Args:
      projected: `[batch, 3*units]`.
      h: `[batch, units]`, `H_{t-1}`.
      recurrent_kernel: `[units, 3*units]`, `[W_hz | W_hr | W_hh]`.
      recurrent_bias: `[3*units]`, or `None` when not `reset_after`.
      reset_after: Where the reset gate applies (see above).

    Returns:
      `[batch, units]`, `H_t`.
    """
    units = h.shape[-1]
    if reset_after:
        h, _ = _gru_gates(projected, h, recurrent_kernel, recurrent_bias)
        return h
    x_zr, x_h = tf.split(projected, [2 * units, units], axis=-1)
    kernel_zr, kernel_h = tf.split(recurrent_kernel, [2 * units, units], axis=-1)
    z, r = tf.split(tf.sigmoid(x_zr + tf.matmul(h, kernel_zr)), 2, axis=-1)
    candidate = tf.tanh(x_h + tf.matmul(r * h, kernel_h))
    return z * h + (1.0 - z) * candidate


def _gru_gates(projected, h, recurrent_kernel, recurrent_bias):
    """One `reset_after` GRU step, also returning what backpropagation needs.

        x_z, x_r, x_h = split(projected, 3)
        rec_z, rec_r, rec_h = split(H W_h + b_hh, 3)     # one fused recurrent matmul
        (then `_gru_update`)

    Returns:
      `(H_t, (Z, R, N))`, each `[batch, units]`.
    """
    recurrent = tf.nn.bias_add(tf.matmul(h, recurrent_kernel), recurrent_bias)
    return _gru_update(*tf.split(projected, 3, axis=-1), *tf.split(recurrent, 3, axis=-1), h)


def _gru_update(x_z, x_r, x_h, rec_z, rec_r, rec_h, h):
    """A `reset_after` GRU's gates and new state from the input and recurrent halves of its
    pre-activations, each `[batch, units]`:

        Z = sigmoid(x_z + rec_z),  R = sigmoid(x_r + rec_r)
        N = tanh(x_h + R * rec_h)
        H_t = Z * H + (1 - Z) * N

    Returns:
      `(H_t, (Z, R, N))`.
    """
    z = tf.sigmoid(x_z + rec_z)
    r = tf.sigmoid(x_r + rec_r)
    candidate = tf.tanh(x_h + r * rec_h)
    return z * h + (1.0 - z) * candidate, (z, r, candidate)


@keras.saving.register_keras_serializable(package="rnnzoo")
class GRUCell(RecurrentCell):
    """One step of a GRU. Gate order `z, r, h` (update, reset, candidate), as in Keras.

        z = sigmoid(X_t W_xz + b_z + H_{t-1} W_hz [+ b_hz])
        r = sigmoid(X_t W_xr + b_r + H_{t-1} W_hr [+ b_hr])
        h~ = tanh(X_t W_xh + b_h + r * (H_{t-1} W_hh + b_hh))   reset_after=True
        h~ = tanh(X_t W_xh + b_h + (r * H_{t-1}) W_hh)          reset_after=False
        H_t = z * H_{t-1} + (1 - z) * h~

    Weights (each gate's block side by side, in the order `z, r, h`):

    - `kernel`: `[input_dim, 3*units]`, `[W_xz | W_xr | W_xh]`;
    - `recurrent_kernel`: `[units, 3*units]`, `[W_hz | W_hr | W_hh]`;
    - `bias`: `[3*units]`, `[b_z | b_r | b_h]`;
    - `recurrent_bias`: `[3*units]`, `[b_hz | b_hr | b_hh]`, only when `reset_after`.

    Keras' `GRUCell(reset_after=True)` stores `bias` and `recurrent_bias` stacked as one
    `[2, 3*units]` weight; `reset_after=False` layouts are identical.

    Args:
      units: Positive integer, the size of the hidden state.
      reset_after: `True` (default): the reset gate multiplies the recurrent candidate after
        its matmul, one fused recurrent matmul per step, a separate recurrent bias (d2l-zh
        1st ed.'s, Keras' default and cuDNN's). `False`: it multiplies `H` before the matmul,
        the original GRU of Cho et al. and d2l 2nd ed.'s; two recurrent matmuls per step.
      kernel_initializer, recurrent_initializer, bias_initializer, seed, **kwargs: See
        `RecurrentCell`. Weights start as d2l's: `normal(0, 0.01)`, zero biases.

    Call arguments:
      inputs: `[batch, input_dim]`, `X_t`.
      states: `[H_{t-1}]` (or the tensor alone), `H` being `[batch, units]`.
      training: Unused.

    Returns `(H_t, [H_t])` (`(H_t, H_t)` when `states` was a bare tensor).

    Example:

    ```python
    cell = GRUCell(32, reset_after=False)
    y = keras.layers.RNN(cell, return_sequences=True)(x)  # x: [batch, time, features]
    ```
    """

    num_gates = 3

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)

    @property
    def state_size(self):
        return self.units

    def build(self, input_shape):
        super().build(input_shape)
        if self.reset_after:
            self.recurrent_bias = self.add_weight(
                shape=(3 * self.units,),
                name="recurrent_bias",
                initializer=self._recurrent_bias_initializer(),
            )
        else:
            self.recurrent_bias = None

    def _recurrent_bias_initializer(self):
        # A fresh copy (or seed + 3), so a random bias initializer gives two different biases.
        if self.seed is None:
            return self.bias_initializer.__class__.from_config(self.bias_initializer.get_config())
        return seeded_initializer(self.bias_initializer, offset_seed(self.seed, 3))

    def step(self, projected_t, states):
        """`(H_t, new_states)` from `projected_t = project_inputs(X_t)`, `[batch, 3*units]`."""
        (h,), nested = unpack_states(states)
        recurrent_bias = self._read(self.recurrent_bias) if self.reset_after else None
        h = _gru_step(
            projected_t, h, self._read(self.recurrent_kernel), recurrent_bias, self.reset_after
        )
        return h, [h] if nested else h

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}
