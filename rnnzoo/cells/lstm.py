"""The long short-term memory cell (Hochreiter & Schmidhuber 1997, with a forget gate)."""

import keras
import tensorflow as tf

from rnnzoo.cells.base import RecurrentCell, unpack_states


def _lstm_gates(projected, h, c, recurrent_kernel):
    """One LSTM step through the fused recurrent matmul, returning its activations too.

    The gate blocks are in Keras' order `i, f, g, o`:

        i, f, g, o = split(projected + H W_h, 4)      # one fused recurrent matmul
        (then `_lstm_update`)

    Args:
      projected: `[batch, 4*units]`, `X_t W_x + b`.
      h: `[batch, units]`, `H_{t-1}`.
      c: `[batch, units]`, `C_{t-1}`.
      recurrent_kernel: `[units, 4*units]`, `[W_hi | W_hf | W_hc | W_ho]`.

    Returns:
      `(H_t, C_t, (I, F, G, O, tanh(C_t)))`, each `[batch, units]`.
    """
    gates = projected + tf.matmul(h, recurrent_kernel)
    return _lstm_update(*tf.split(gates, 4, axis=-1), c)


def _lstm_update(i, f, g, o, c):
    """The LSTM's gates and state update from the four gate pre-activations, `[batch, units]`:

        I, F, G, O = sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
        C_t = F * C + I * G
        H_t = O * tanh(C_t)

    Returns:
      `(H_t, C_t, (I, F, G, O, tanh(C_t)))`.
    """
    i, f, g, o = tf.sigmoid(i), tf.sigmoid(f), tf.tanh(g), tf.sigmoid(o)
    c = f * c + i * g
    tanh_c = tf.tanh(c)
    return o * tanh_c, c, (i, f, g, o, tanh_c)


def _lstm_step(projected, h, c, recurrent_kernel):
    """One LSTM step (`_lstm_gates` without the activations): returns `(H_t, C_t)`."""
    h, c, _ = _lstm_gates(projected, h, c, recurrent_kernel)
    return h, c


@keras.saving.register_keras_serializable(package="rnnzoo")
class LSTMCell(RecurrentCell):
    """One step of an LSTM. Gate order `i, f, c, o` (input, forget, candidate, output), as Keras.

        I = sigmoid(X_t W_xi + H_{t-1} W_hi + b_i)
        F = sigmoid(X_t W_xf + H_{t-1} W_hf + b_f)
        C~ = tanh(X_t W_xc + H_{t-1} W_hc + b_c)
        O = sigmoid(X_t W_xo + H_{t-1} W_ho + b_o)
        C_t = F * C_{t-1} + I * C~
        H_t = O * tanh(C_t)

    Weights (each gate's block side by side, in the order `i, f, c, o`), one fused input
    matmul and one fused recurrent matmul into `4*units`, then one split:

    - `kernel`: `[input_dim, 4*units]`, `[W_xi | W_xf | W_xc | W_xo]`;
    - `recurrent_kernel`: `[units, 4*units]`, `[W_hi | W_hf | W_hc | W_ho]`;
    - `bias`: `[4*units]`, `[b_i | b_f | b_c | b_o]`.

    The layout is Keras' `LSTMCell`'s, so weights copy across unchanged.

    Args:
      units: Positive integer, the size of `H` and of `C`.
      forget_bias: Added to the initial value of the forget-gate slice of `bias` (`b_f`), so
        with the default zeros `bias_initializer`, `b_f` starts at exactly `forget_bias`.
        Defaults to 0.0, as in d2l. Keras' `unit_forget_bias=True` is `forget_bias=1.0`
        (Jozefowicz et al. 2015), which helps long-range memory early in training.
      kernel_initializer, recurrent_initializer, bias_initializer, seed, **kwargs: See
        `RecurrentCell`. Weights start as d2l's: `normal(0, 0.01)`, zero biases.

    Call arguments:
      inputs: `[batch, input_dim]`, `X_t`.
      states: `[H_{t-1}, C_{t-1}]`: the hidden state (also the output) and the memory cell,
        each `[batch, units]`.
      training: Unused.

    Returns `(H_t, [H_t, C_t])`.

    Example:

    ```python
    cell = LSTMCell(32, forget_bias=1.0)
    y = keras.layers.RNN(cell, return_sequences=True)(x)  # x: [batch, time, features]
    ```
    """

    num_gates = 4

    def __init__(self, units, forget_bias=0.0, **kwargs):
        super().__init__(units, **kwargs)
        self.forget_bias = float(forget_bias)

    @property
    def state_size(self):
        return [self.units, self.units]

    def _bias_initializer(self):
        units, forget_bias, initializer = self.units, self.forget_bias, self.bias_initializer

        def bias_initializer(shape, dtype=None):
            offset = tf.concat(
                [tf.zeros([units]), tf.fill([units], forget_bias), tf.zeros([2 * units])], 0
            )
            return initializer(shape, dtype=dtype) + tf.cast(offset, dtype)

        return bias_initializer

    def step(self, projected_t, states):
        """`(H_t, [H_t, C_t])` from `projected_t = project_inputs(X_t)`, `[batch, 4*units]`."""
        (h, c), _ = unpack_states(states)
        h, c = _lstm_step(projected_t, h, c, self._read(self.recurrent_kernel))
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "forget_bias": self.forget_bias}
