"""The simple (Elman) RNN cell: one tanh layer over the input and the previous state."""

import keras
import tensorflow as tf

from rnnzoo.cells.base import RecurrentCell, unpack_states


def _simple_rnn_step(projected, h, recurrent_kernel):
    """`H_t = tanh(projected + H_{t-1} W_hh)`; `projected = X_t W_xh + b_h`.

    Args:
      projected: `[batch, units]`, the projected input.
      h: `[batch, units]`, the previous hidden state.
      recurrent_kernel: `[units, units]`.

    Returns:
      `[batch, units]`, the new hidden state.
    """
    return tf.tanh(projected + tf.matmul(h, recurrent_kernel))


@keras.saving.register_keras_serializable(package="rnnzoo")
class SimpleRNNCell(RecurrentCell):
    """One step of a simple RNN (d2l's `rnn`, Keras' `SimpleRNNCell` with tanh).

        H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h)

    Weights: `kernel` is `W_xh`, `[input_dim, units]`; `recurrent_kernel` is `W_hh`,
    `[units, units]`; `bias` is `b_h`, `[units]`. The output is `H_t`.

    Args:
      units: Positive integer, the size of the hidden state.
      kernel_initializer, recurrent_initializer, bias_initializer, seed, **kwargs: See
        `RecurrentCell`. Weights start as d2l's: `normal(0, 0.01)`, zero bias.

    Call arguments:
      inputs: `[batch, input_dim]`, `X_t`.
      states: `[H_{t-1}]` (or the tensor alone), `H` being `[batch, units]`.
      training: Unused.

    Returns `(H_t, [H_t])` (`(H_t, H_t)` when `states` was a bare tensor).

    Example:

    ```python
    cell = SimpleRNNCell(32)
    y = keras.layers.RNN(cell, return_sequences=True)(x)  # x: [batch, time, features]
    h, state = cell(x[:, 0], cell.get_initial_state(batch_size))  # one step
    ```
    """

    num_gates = 1

    @property
    def state_size(self):
        return self.units

    def step(self, projected_t, states):
        """`(H_t, new_states)` from `projected_t = project_inputs(X_t)`, `[batch, units]`."""
        (h,), nested = unpack_states(states)
        h = _simple_rnn_step(projected_t, h, self._read(self.recurrent_kernel))
        return h, [h] if nested else h
