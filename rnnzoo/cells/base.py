"""What every rnnzoo cell shares: the weights, the input projection, the config.

A cell's step is split in two, so that a time loop can do the input half of the work for all
time steps at once, before the loop, with one large matmul:

    projected_t = x_t @ kernel + bias                  # `project_inputs`, [batch, G*units]
    output_t, states_t = step(projected_t, states_t-1)  # `step`, the recurrent part only

`G` is the number of gate blocks (1 for a simple RNN, 3 for a GRU, 4 for an LSTM). When the
input is one-hot over a vocabulary, `project_ids` replaces the matmul by a row gather, which is
the same maths: `one_hot(ids) @ kernel == tf.gather(kernel, ids)`.
"""

import keras
import tensorflow as tf


def default_initializer(seed=None):
    """d2l's weight initializer: normal with mean 0 and standard deviation 0.01."""
    return keras.initializers.RandomNormal(stddev=0.01, seed=seed)


def seeded_initializer(initializer, seed):
    """`initializer` (anything `keras.initializers.get` takes) seeded with `seed`.

    `None` means `default_initializer`. A `seed` of `None` leaves the initializer's own seed
    alone, as does an initializer that takes no seed (`zeros`).
    """
    if initializer is None:
        return default_initializer(seed)
    initializer = keras.initializers.get(initializer)
    if seed is None:
        return initializer
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    return initializer.__class__.from_config({**config, "seed": seed})


def offset_seed(seed, offset):
    return None if seed is None else seed + offset


def linear(x, kernel, bias):
    """`x @ kernel + bias` over the last axis of `x`, any rank.

    Args:
      x: `[..., input_dim]`.
      kernel: `[input_dim, n]`.
      bias: `[n]`.

    Returns:
      `[..., n]`. Rank 2 is one `MatMul`; higher ranks are folded to rank 2 (`tensordot`), which
      is one large matmul rather than a batch of small ones.
    """
    if x.shape.rank == 2:
        y = tf.matmul(x, kernel)
    else:
        y = tf.tensordot(x, kernel, axes=1)
    return tf.nn.bias_add(y, bias)


class RecurrentCell(keras.layers.Layer):
    """Base class of the rnnzoo cells: a Keras RNN cell with its input projection split out.

    A subclass sets `num_gates` (`G`) and writes `state_size` and `step`. The base class owns

    - `kernel`: `[input_dim, G*units]`, the input weights of all gates side by side;
    - `recurrent_kernel`: `[units, G*units]`, the recurrent weights in the same gate order;
    - `bias`: `[G*units]`, the input bias;

    and the methods that use only those: `project_inputs`, `project_ids`, `call`,
    `get_initial_state`, `get_config`.

    Args:
      units: Positive integer, the size of the hidden state `H`.
      kernel_initializer: Initializer of `kernel`. Defaults to `RandomNormal(stddev=0.01)`
        (d2l's `normal(0, 0.01)`).
      recurrent_initializer: Initializer of `recurrent_kernel`. Same default.
      bias_initializer: Initializer of the biases. Defaults to `"zeros"`.
      seed: Optional integer. Seeds the initializers: `kernel` with `seed`, `recurrent_kernel`
        with `seed + 1`, the biases with `seed + 2`, so the two kernels differ.
      **kwargs: Passed to `keras.layers.Layer` (`name`, `dtype`, ...).

    Call arguments:
      inputs: `[batch, input_dim]`, the input at one time step.
      states: The previous states, as `get_initial_state` returns them.
      training: Unused; there for the Keras cell contract.
    """

    num_gates = 1

    def __init__(
        self,
        units,
        kernel_initializer=None,
        recurrent_initializer=None,
        bias_initializer="zeros",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"`units` must be a positive integer, got {units!r}")
        self.units = units
        self.seed = seed
        self.kernel_initializer = seeded_initializer(kernel_initializer, seed)
        self.recurrent_initializer = seeded_initializer(recurrent_initializer, offset_seed(seed, 1))
        self.bias_initializer = seeded_initializer(bias_initializer, offset_seed(seed, 2))

    @property
    def state_size(self):
        raise NotImplementedError

    @property
    def output_size(self):
        return self.units

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"The last axis of the inputs of {self.name} must be known, got {input_shape}"
            )
        width = self.num_gates * self.units
        self.kernel = self.add_weight(
            shape=(input_dim, width), name="kernel", initializer=self.kernel_initializer
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
        )
        self.bias = self.add_weight(
            shape=(width,), name="bias", initializer=self._bias_initializer()
        )

    def _bias_initializer(self):
        return self.bias_initializer

    def _read(self, variable):
        """The value of `variable` in the compute dtype (a no-op unless mixed precision)."""
        return tf.cast(variable, self.compute_dtype)

    def project_inputs(self, x):
        """The input half of the gates: `x @ kernel + bias`, `[..., input_dim] -> [..., G*units]`.

        Applies to a whole sequence (`[batch, time, input_dim]`) at once.
        """
        x = tf.cast(x, self.compute_dtype)
        return linear(x, self._read(self.kernel), self._read(self.bias))

    def project_ids(self, ids):
        """`project_inputs(one_hot(ids, input_dim))` as a row gather: `[...] -> [..., G*units]`.

        Args:
          ids: Integer tensor of any shape, each in `[0, input_dim)`.
        """
        rows = tf.gather(self.kernel, ids)
        return tf.nn.bias_add(self._read(rows), self._read(self.bias))

    def step(self, projected_t, states):
        """One recurrent step on projected inputs; returns `(output, new_states)`."""
        raise NotImplementedError

    def call(self, inputs, states, training=False):
        return self.step(self.project_inputs(inputs), states)

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [tf.zeros((batch_size, size), dtype=self.compute_dtype) for size in sizes]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "seed": self.seed,
        }


def unpack_states(states):
    """`(list_of_state_tensors, was_nested)`: Keras passes a cell's states as a list or a tensor."""
    if tf.nest.is_nested(states):
        return list(states), True
    return [states], False
