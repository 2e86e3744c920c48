"""A character language model: one-hot (or embedding) -> recurrent layers -> dense head.

Shapes: `token_ids` int32 `[batch, time]` -> `logits` float32 `[batch, time, vocab_size]`.
The recurrent state is a flat list of `[batch, units]` tensors, layer by layer (an LSTM layer
contributes `h` then `c`), so it can be carried across batches, packed for export, and handed to
`step` one character at a time. A bigram model adds one `[batch, 1]` slot at the end: the id of
the previous character (as a float), so that callers still feed one character at a time.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from rnnzoo import cells as cells_lib
from rnnzoo.models import recurrence

CELLS = tuple(cells_lib.CELLS)  # "rnn", "gru", "lstm"
# rnnzoo: cells written from scratch (rnnzoo.cells); keras: keras.layers.SimpleRNN/GRU/LSTM.
IMPLS = ("rnnzoo", "keras")
# d2l: N(0, 0.01) weights; keras: Glorot / orthogonal; course: the TensorFlow course's
# truncated_normal(shape, -0.1, 0.1), i.e. mean -0.1, standard deviation 0.1. Biases are zero.
INITS = ("d2l", "keras", "course")
# chars: each character alone (one-hot or embedded); bigrams: the pair (previous, current)
# character, embedded (the TensorFlow course's LSTM problem 2).
INPUTS = ("chars", "bigrams")

_KERAS_LAYERS = {"rnn": keras.layers.SimpleRNN, "gru": keras.layers.GRU, "lstm": keras.layers.LSTM}


def _d2l_normal(seed):
    return keras.initializers.RandomNormal(stddev=0.01, seed=seed)


def _course_normal(seed):
    return keras.initializers.TruncatedNormal(mean=-0.1, stddev=0.1, seed=seed)


def _weight_init(init, seed, *, recurrent=False):
    if init == "d2l":
        return _d2l_normal(seed)
    if init == "course":
        return _course_normal(seed)
    if recurrent:
        return keras.initializers.Orthogonal(seed=seed)
    return keras.initializers.GlorotUniform(seed)


@keras.saving.register_keras_serializable(package="rnnzoo")
class CharLM(keras.Model):
    """Character-level recurrent language model.

    The first layer sees the characters one-hot, as in d2l: `one_hot(x) @ W_xh` is computed as
    the row gather `W_xh[x]` (same maths, no `[batch, time, vocab]` tensor). With
    `embedding_dim > 0` a learned `keras.layers.Embedding` feeds the first layer instead.

    With `inputs="bigrams"` the input at time `t` is the pair of characters `(x_{t-1}, x_t)`,
    id `x_{t-1} * vocab_size + x_t`, looked up in an embedding of `vocab_size ** 2` rows; the
    output still predicts the next character `x_{t+1}`, so perplexity stays per character. The
    previous character of the first position comes from the state (the last character of the
    previous call); a zero state reads it as id 0 (`<unk>`), the start of a text.

    `dropout > 0` drops units of each recurrent layer's input and of its output (Zaremba et al.,
    2014: never the recurrent connections), in training only.

    With `impl="rnnzoo"`, the input projection of every time step is one matmul (or gather) done
    before the time loop; the loop itself only runs each cell's recurrent half, and its gradient
    is the hand-written backpropagation through time of `rnnzoo.models.recurrence` (the fast
    path, the default; setting the attribute `fast_recurrence = False` differentiates the plain
    loop over `cell.step` instead). In training on a CPU, LSTM and GRU layers run through
    rnnzoo's C++ sequence ops where they build (`recurrence.run_layer`'s `fused`; the attribute
    `fused_recurrence = False` keeps the TensorFlow graph, as XLA needs). `step` runs the
    cells' own `step`, as export does. With `impl="keras"`, the layers are
    `keras.layers.SimpleRNN/GRU/LSTM` (d2l's "concise implementation"), and one-step
    generation runs their `.cell`.

    Args:
        vocab_size: number of characters (output classes and one-hot input width).
        cell: "rnn", "gru" or "lstm".
        num_layers: stacked recurrent layers.
        units: hidden units per layer.
        embedding_dim: 0 for one-hot input, else the embedding width.
        impl: "rnnzoo" (cells from `rnnzoo.cells`) or "keras" (`keras.layers`).
        init: "d2l" (weights N(0, 0.01), zero biases), "keras" (Keras' initialisers) or
            "course" (truncated normal, mean -0.1, standard deviation 0.1, zero biases).
        forget_bias: initial LSTM forget-gate bias (rnnzoo cells only).
        reset_after: GRU only. True: the reset gate scales the recurrent candidate after its
            matmul (d2l-zh 1st ed., Keras, cuDNN; trains through the hand-written backward
            pass). False: it scales the state before (d2l 2nd ed., Cho et al.; trains through
            autodiff).
        inputs: "chars" or "bigrams" (needs `embedding_dim > 0`).
        dropout: the rate of the input and output dropout of every recurrent layer.
        seed: seed for the weight initialisers and the dropout masks.

    Call arguments:
        token_ids: int `[batch, time]`.
        states: optional flat list of state tensors (see `initial_state`).
        training: applies dropout when True.

    Returns `(logits [batch, time, vocab_size], new_states)`.

    Example:
        model = CharLM(vocab_size=28, cell="lstm", units=256)
        logits, states = model(tf.zeros([32, 35], tf.int32))
    """

    def __init__(self, vocab_size, cell="lstm", num_layers=1, units=256, embedding_dim=0,
                 impl="rnnzoo", init="d2l", forget_bias=0.0, reset_after=True, inputs="chars",
                 dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        _check_choice("cell", cell, CELLS)
        _check_choice("impl", impl, IMPLS)
        _check_choice("init", init, INITS)
        _check_choice("inputs", inputs, INPUTS)
        for name, value in (("vocab_size", vocab_size), ("num_layers", num_layers),
                            ("units", units)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if not isinstance(embedding_dim, int) or embedding_dim < 0:
            raise ValueError(f"`embedding_dim` must be an integer >= 0, got {embedding_dim!r}")
        if inputs == "bigrams" and not embedding_dim:
            raise ValueError("`inputs='bigrams'` needs an embedding: `embedding_dim` must be "
                             f"positive, got {embedding_dim}")
        if not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be in [0, 1), got {dropout!r}")
        self.vocab_size = vocab_size
        self.cell_type = cell
        self.num_layers = num_layers
        self.units = units
        self.embedding_dim = embedding_dim
        self.impl = impl
        self.init = init
        self.forget_bias = forget_bias
        self.reset_after = bool(reset_after)
        self.inputs = inputs
        self.dropout = float(dropout)
        self.seed = seed
        # Not part of the config: the plain autodiff loop is for tests and benchmarks only.
        self.fast_recurrence = True
        self.fused_recurrence = True

        input_dim = embedding_dim or vocab_size
        num_input_ids = vocab_size ** 2 if inputs == "bigrams" else vocab_size
        self.embedding = (keras.layers.Embedding(
            num_input_ids, embedding_dim, name="embedding",
            embeddings_initializer=keras.initializers.RandomUniform(
                -0.05, 0.05, seed=_offset(seed, 2000))) if embedding_dim else None)
        if impl == "rnnzoo":
            self.cells = [self._make_rnnzoo_cell(i) for i in range(num_layers)]
            for i, c in enumerate(self.cells):
                c.build((None, input_dim if i == 0 else units))
            self.rnn_layers = []
        else:
            self.rnn_layers = [self._make_keras_layer(i) for i in range(num_layers)]
            for i, layer in enumerate(self.rnn_layers):
                layer.build((None, None, input_dim if i == 0 else units))
            self.cells = [layer.cell for layer in self.rnn_layers]
        # Keras 3 hides list-held layers from tf.train.Checkpoint; one attribute per layer makes
        # a checkpoint of the model alone hold every weight.
        for i, layer in enumerate(self.rnn_layers or self.cells):
            setattr(self, f"recurrent_{i}", layer)
        # Every initialiser is seeded from `seed`, so the seed alone fixes the initial weights.
        head_init = _weight_init(init, _offset(seed, 1000))
        # One dropout layer per place (input of layer i, output of the last layer).
        self.dropouts = ([keras.layers.Dropout(dropout, seed=_offset(seed, 3000 + i))
                          for i in range(num_layers + 1)] if dropout else [])
        self.head = keras.layers.Dense(vocab_size, name="head", kernel_initializer=head_init,
                                       bias_initializer="zeros")
        self.head.build((None, units))
        if self.embedding is not None:
            self.embedding.build((None,))
        self.built = True

    def _init_kwargs(self, i):
        return dict(kernel_initializer=_weight_init(self.init, _offset(self.seed, 2 * i)),
                    recurrent_initializer=_weight_init(self.init, _offset(self.seed, 2 * i + 1),
                                                       recurrent=True),
                    bias_initializer="zeros")

    def _make_rnnzoo_cell(self, i):
        kwargs = self._init_kwargs(i)
        if self.cell_type == "lstm":
            kwargs["forget_bias"] = self.forget_bias
        if self.cell_type == "gru":
            kwargs["reset_after"] = self.reset_after
        return cells_lib.make_cell(self.cell_type, self.units, name=f"{self.cell_type}_{i}",
                                   **kwargs)

    def _make_keras_layer(self, i):
        kwargs = self._init_kwargs(i)
        if self.cell_type == "lstm":
            kwargs["unit_forget_bias"] = self.init == "keras"
        if self.cell_type == "gru":
            kwargs["reset_after"] = self.reset_after
        return _KERAS_LAYERS[self.cell_type](
            self.units, return_sequences=True, return_state=True, name=f"{self.cell_type}_{i}",
            **kwargs)

    # ----------------------------------------------------------------------------- state

    @property
    def state_sizes(self) -> list[int]:
        """Widths of the flat state list: `units` per recurrent state tensor, layer by layer,
        then 1 for the previous character of a bigram model."""
        sizes = [self.units] * (self.num_layers * self._states_per_layer)
        return sizes + [1] if self.inputs == "bigrams" else sizes

    @property
    def _states_per_layer(self) -> int:
        return 2 if self.cell_type == "lstm" else 1

    def initial_state(self, batch_size):
        """Zero states: a flat list of `[batch_size, size]` float32 tensors (`state_sizes`)."""
        return [tf.zeros([batch_size, size]) for size in self.state_sizes]

    def _per_layer(self, states):
        k = self._states_per_layer
        return [list(states[i * k:(i + 1) * k]) for i in range(self.num_layers)]

    def _input_ids(self, token_ids, states):
        """The ids the first layer reads, and the state slot that carries the last character.

        `token_ids` int `[batch, time]` (or `[batch]` for one step). For characters: the ids
        themselves and no slot. For bigrams: `prev * vocab_size + token_ids`, where `prev` is
        the previous character of each position (the carried one for the first), and the slot
        `[batch, 1]` holding the last character of `token_ids`.
        """
        if self.inputs == "chars":
            return token_ids, []
        carried = tf.cast(states[-1][:, 0], token_ids.dtype)  # [batch]
        if token_ids.shape.rank == 1:
            prev, last = carried, token_ids
        else:
            prev = tf.concat([carried[:, None], token_ids[:, :-1]], axis=1)
            last = token_ids[:, -1]
        return prev * self.vocab_size + token_ids, [tf.cast(last, tf.float32)[:, None]]

    def _drop(self, i, x, training):
        return self.dropouts[i](x, training=training) if self.dropouts and training else x

    # --------------------------------------------------------------------------- forward

    def call(self, token_ids, states=None, training=False):
        token_ids = tf.convert_to_tensor(token_ids)
        if states is None:
            states = self.initial_state(tf.shape(token_ids)[0])
        input_ids, carried = self._input_ids(token_ids, states)
        layer_states = self._per_layer(states)
        new_states = []
        if self.impl == "rnnzoo":
            x, new_states = self._unroll(input_ids, layer_states, training)
        else:
            x = self._first_layer_inputs(input_ids)
            for i, (layer, s) in enumerate(zip(self.rnn_layers, layer_states)):
                x, *s = layer(self._drop(i, x, training), initial_state=s)
                new_states.extend(s)
        x = self._drop(self.num_layers, x, training)
        return self.head(x), new_states + carried

    def step(self, token_ids, states):
        """One character: `token_ids` int `[batch]` -> `(logits [batch, vocab], new_states)`."""
        token_ids = tf.convert_to_tensor(token_ids)
        input_ids, carried = self._input_ids(token_ids, states)
        layer_states = self._per_layer(states)
        new_states = []
        x = None
        for i, cell in enumerate(self.cells):
            s = layer_states[i]
            if self.impl == "rnnzoo":
                x, s = cell.step(self._project(i, input_ids, x), s)
            else:
                inputs = self._first_layer_inputs(input_ids) if i == 0 else x
                x, s = cell(inputs, s, training=False)
            new_states.extend(s if isinstance(s, (list, tuple)) else [s])
        return self.head(x), new_states + carried

    def _unroll(self, token_ids, layer_states, training=False):
        """The recurrent layers over a sequence: `[batch, time]` ids -> `[batch, time, units]`.

        Runs time-major (`[time, batch, ...]`, so a time step is a contiguous slice) through
        `recurrence.run_layers`: the first layer's input projection of all time steps is one
        gather or matmul, then the loop runs only the recurrent half of the cell (a stack of
        LSTMs as one pipelined loop, other stacks layer after layer), and its gradient is the
        hand-written backpropagation through time of `rnnzoo.models.recurrence`
        (`self.fast_recurrence = False` differentiates the plain loop instead).
        """
        if self.dropouts and training:
            # Dropout between layers: each layer runs alone (no pipelined stack).
            x, new_states = None, []
            for i, (cell, s) in enumerate(zip(self.cells, layer_states)):
                inputs = (self._first_layer_inputs(tf.transpose(token_ids)) if i == 0 else x)
                projected = cell.project_inputs(self._drop(i, inputs, training))
                x, s = recurrence.run_layer(cell, projected, s, fast=self.fast_recurrence,
                                            fused=self.fused_recurrence)
                new_states.extend(s)
            return tf.transpose(x, [1, 0, 2]), new_states
        fused = training and self.fused_recurrence
        projected = self._project(0, tf.transpose(token_ids), None, fused=fused)
        x, new_states = recurrence.run_layers(self.cells, projected, layer_states,
                                              fast=self.fast_recurrence, fused=fused)
        return tf.transpose(x, [1, 0, 2]), new_states

    def _project(self, i, token_ids, x, fused=False):
        """Input projection of layer i for all time steps: `[..., G * units]` (`fused`: in
        training, with `recurrence.fused_project_ids`'s faster gradient)."""
        cell = self.cells[i]
        if i > 0:
            return cell.project_inputs(x)
        if self.embedding is None:
            if fused:
                return recurrence.fused_project_ids(cell, token_ids)
            return cell.project_ids(token_ids)
        return cell.project_inputs(self.embedding(token_ids))

    def _first_layer_inputs(self, token_ids):
        if self.embedding is None:
            return tf.one_hot(token_ids, self.vocab_size)
        return self.embedding(token_ids)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, cell=self.cell_type,
                      num_layers=self.num_layers, units=self.units,
                      embedding_dim=self.embedding_dim, impl=self.impl, init=self.init,
                      forget_bias=self.forget_bias, reset_after=self.reset_after,
                      inputs=self.inputs, dropout=self.dropout, seed=self.seed)
        return config


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}")


def _offset(seed, k):
    return None if seed is None else seed + k
