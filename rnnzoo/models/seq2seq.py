"""A sequence-to-sequence model: stacked rnnzoo LSTMs, encoder and decoder, with attention.

The course's word-mirroring model (`the quick brown fox` -> `eht kciuq nworb xof`), built like
TensorFlow's classic translation model (stacked LSTMs, attention), written with rnnzoo's own
`LSTMCell`s. Shapes (`B` batch, `S` source length, `T` target length, `E` embedding width,
`H = num_hiddens`, `V = vocab_size`):

    source_ids      int `[B, S]`, padded at the end with `<pad>` = 0
    decoder_inputs  int `[B, T]`, `<bos> t_1 .. t_m` (teacher forcing)
    logits          float32 `[B, T, V]`

Encoder (`encode`)
    `x_s = E_src[source_ids[:, s]]`, then `num_layers` stacked LSTM cells, layer `l`'s output
    feeding layer `l + 1`. Padding does not leak into the state: where `source_ids[b, s]` is
    `<pad>`, every layer keeps its previous state,

        states_s = m_s * stack(x_s, states_{s-1}) + (1 - m_s) * states_{s-1},  m_s = ids != 0

    so a row's final state is its state at its own last real token, whatever the batch's
    padding; its outputs at padded positions are 0. `memory = [a_1 .. a_S]` `[B, S, H]` (the
    top layer's outputs), `memory_mask = source_ids != 0` `[B, S]`.

States
    A flat list of `2 * num_layers` tensors `[B, H]`, layer by layer, `h` then `c`
    (`[h_0, c_0, h_1, c_1, ...]`), as `CharLM`'s. The decoder starts from the encoder's final
    states (same layers, same widths).

Attention (`attention=`), weights masked to exactly 0 at padded source positions:

    "luong"     multiplicative ("general", Luong et al. 2015), after the decoder step:
                    h_t, states_t = stack(E_tgt[y_{t-1}], states_{t-1})
                    score_ts = h_t^T W_a a_s                          W_a [H, H]
                    alpha_t = masked_softmax(score_t)                  [B, S]
                    c_t = sum_s alpha_ts a_s                           [B, H]
                    h~_t = tanh(W_c [c_t; h_t])                        W_c [2H, H]
                    logits_t = h~_t W_o + b_o                          W_o [H, V]
                (no input feeding: the recurrence does not read `c_t`, so training runs the
                decoder over all `T` steps first, then attends for all steps at once.)
    "bahdanau"  additive (Bahdanau et al. 2015), before the decoder step, from the previous
                top hidden state `h_{t-1}` (the encoder's last at `t = 1`):
                    score_ts = v^T tanh(W_1 h_{t-1} + W_2 a_s)          W_1, W_2 [H, H], v [H]
                    alpha_t = masked_softmax(score_t), c_t = sum_s alpha_ts a_s
                    h_t, states_t = stack([E_tgt[y_{t-1}]; c_t], states_{t-1})
                    logits_t = h_t W_o + b_o
    "none"      `h_t, states_t = stack(E_tgt[y_{t-1}], states_{t-1})`, `logits_t = h_t W_o + b_o`.

    `masked_softmax`: scores at padded positions are replaced by a large negative number
    before the softmax and the weights there set to exactly 0 after it; a row of real positions
    sums to 1 (a source of only padding attends to nothing: `c_t = 0`).

`sequence_loss` (the summed negative log-likelihood over non-`<pad>` targets, and their count)
sits here with the model because its meaning is tied to the model's padding convention; the
training loop owns the averaging.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from rnnzoo.cells import LSTMCell
from rnnzoo.data.seq2seq import PAD_ID
from rnnzoo.models.recurrence import run_layer, run_layers, scan

ATTENTIONS = ("luong", "bahdanau", "none")
_NEG = -1e9


def masked_softmax(scores, mask):
    """Softmax over the last axis of `scores` `[..., S]` with `mask` bool `[..., S]`: exactly 0
    where `mask` is False; each row with a real position sums to 1."""
    scores = tf.where(mask, scores, _NEG)
    weights = tf.nn.softmax(scores, axis=-1)
    return tf.where(mask, weights, tf.zeros_like(weights))


def sequence_loss(logits, targets):
    """`(summed NLL over non-<pad> targets, count of non-<pad> targets)`.

    Args:
      logits: float `[B, T, V]`.
      targets: int `[B, T]`, padded with `<pad>` = 0.

    Returns:
      `(loss, count)`: float32 scalar `sum_{b,t: y_bt != 0} -log softmax(logits_bt)[y_bt]`, and
      float32 scalar, the number of non-`<pad>` targets. Per-token loss is `loss / count`.
    """
    targets = tf.convert_to_tensor(targets)
    mask = tf.cast(tf.not_equal(targets, PAD_ID), tf.float32)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(targets, tf.int32), logits=tf.cast(logits, tf.float32))
    return tf.reduce_sum(nll * mask), tf.reduce_sum(mask)


@keras.saving.register_keras_serializable(package="rnnzoo")
class Seq2Seq(keras.Model):
    """An LSTM encoder-decoder with optional attention (see the module docstring's equations).

    Args:
      vocab_size: Positive integer, `V`: ids of source and target (one shared vocabulary).
      embedding_dim: Positive integer, `E`: width of the source and target embeddings.
      num_hiddens: Positive integer, `H`: units of every LSTM layer.
      num_layers: Positive integer: stacked LSTM layers in the encoder and in the decoder.
      attention: "luong" (multiplicative), "bahdanau" (additive) or "none".
      seed: Optional integer; seeds every initializer.
      **kwargs: Passed to `keras.Model`.

    Call arguments:
      inputs: `(source_ids [B, S], decoder_inputs [B, T])`, int, padded with 0.
      training: Unused (no dropout).

    Returns `logits [B, T, V]` (teacher forcing).

    Example:

    ```python
    model = Seq2Seq(vocab_size=31, embedding_dim=32, num_hiddens=64, num_layers=2)
    logits = model((source_ids, decoder_inputs))
    loss, count = sequence_loss(logits, targets)
    ids = model.greedy_decode(source_ids, max_length=21, bos_id=1, eos_id=2)
    ```
    """

    def __init__(self, vocab_size, embedding_dim=32, num_hiddens=64, num_layers=1,
                 attention="luong", seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim),
                            ("num_hiddens", num_hiddens), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if attention not in ATTENTIONS:
            raise ValueError(f"`attention` must be one of {list(ATTENTIONS)}, got {attention!r}")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.num_hiddens = num_hiddens
        self.num_layers = num_layers
        self.attention = attention
        self.seed = seed
        # Training runs the LSTMs through rnnzoo's C++ sequence ops where they build
        # (`recurrence.run_layer`'s `fused`); False keeps the TensorFlow graph (XLA needs it).
        # Inference (`encode` called by itself, decoding, every export) never uses them.
        self.fused_recurrence = True
        H = num_hiddens

        def init(k):
            return keras.initializers.GlorotUniform(seed=_offset(seed, k))

        def embedding(name, k):
            layer = keras.layers.Embedding(
                vocab_size, embedding_dim, name=name,
                embeddings_initializer=keras.initializers.RandomUniform(
                    -0.05, 0.05, seed=_offset(seed, k)))
            layer.build((None,))
            return layer

        def cells(prefix, first_input_dim, k):
            out = []
            for i in range(num_layers):
                cell = LSTMCell(H, forget_bias=1.0, name=f"{prefix}_lstm_{i}",
                                kernel_initializer=keras.initializers.GlorotUniform(),
                                recurrent_initializer=keras.initializers.Orthogonal(),
                                seed=_offset(seed, k + 10 * i))
                cell.build((None, first_input_dim if i == 0 else H))
                out.append(cell)
            return out

        def dense(units, input_dim, name, k, use_bias=False):
            layer = keras.layers.Dense(units, use_bias=use_bias, name=name,
                                       kernel_initializer=init(k))
            layer.build((None, input_dim))
            return layer

        self.source_embedding = embedding("source_embedding", 1)
        self.target_embedding = embedding("target_embedding", 2)
        decoder_input_dim = embedding_dim + (H if attention == "bahdanau" else 0)
        self.encoder_cells = cells("encoder", embedding_dim, 100)
        self.decoder_cells = cells("decoder", decoder_input_dim, 200)
        # Keras 3 hides list-held layers from tf.train.Checkpoint: one attribute per cell.
        for i, (e, d) in enumerate(zip(self.encoder_cells, self.decoder_cells, strict=True)):
            setattr(self, f"encoder_lstm_{i}", e)
            setattr(self, f"decoder_lstm_{i}", d)
        if attention == "luong":
            self.attention_w = dense(H, H, "luong_w_a", 3)           # W_a
            self.attention_combine = dense(H, 2 * H, "luong_w_c", 4)  # W_c
        elif attention == "bahdanau":
            self.attention_query = dense(H, H, "bahdanau_w_1", 3)    # W_1
            self.attention_key = dense(H, H, "bahdanau_w_2", 4)      # W_2
            self.attention_v = dense(1, H, "bahdanau_v", 5)          # v
        self.head = dense(vocab_size, H, "head", 6, use_bias=True)
        self.built = True

    # ----------------------------------------------------------------------------- states

    def _per_layer(self, states):
        return [[states[2 * i], states[2 * i + 1]] for i in range(self.num_layers)]

    @staticmethod
    def _flat(layer_states):
        return [s for pair in layer_states for s in pair]

    def _stack_step(self, cells, projected_t, states):
        """One step of a stack: `projected_t` `[B, 4H]` (layer 0's projected input), flat
        `states` -> `(top output [B, H], flat new states)`."""
        layer_states = self._per_layer(states)
        x, s = cells[0].step(projected_t, layer_states[0])
        new = [s]
        for cell, s in zip(cells[1:], layer_states[1:], strict=True):
            x, s = cell.call(x, s)
            new.append(s)
        return x, self._flat(new)

    # ---------------------------------------------------------------------------- encoder

    def encode(self, source_ids, training=False):
        """`source_ids` int `[B, S]` -> `(memory [B, S, H], memory_mask bool [B, S], states)`.

        `states` is the flat list of the encoder's final states, each row's at its own last
        real token (see the module docstring).

        How, fast: each row is right-aligned (its padding moved to the front, by a gather),
        and at a padding step every layer's gate pre-activations are set to `i = -1e4, f =
        +1e4, g = 0, o = 0`, so `sigmoid` gives exactly `i = 0, f = 1`: from the zero state,
        `c = f c + i g = 0` and `h = o tanh(c) = 0` stay exactly zero until the row's first
        real token. Each layer then runs on the shared fast time loop (`recurrence.run_layer`,
        hand-written backpropagation) with no mask in the recurrence, its final state is its
        state at the row's last real token, and the outputs are moved back into place (0 at
        padding). The same maths as masking each step
        (`states_s = m_s * stack(x_s, states_{s-1}) + (1 - m_s) * states_{s-1}`).
        """
        source_ids = tf.convert_to_tensor(source_ids)
        mask = tf.not_equal(source_ids, PAD_ID)
        lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        batch = tf.shape(source_ids)[0]

        # Row b moves right by shift_b = S - length_b (gathers: TFLite has no ReverseSequence).
        positions = tf.range(tf.shape(source_ids)[1])[None, :]              # [1, S]
        shift = tf.shape(source_ids)[1] - lengths[:, None]                  # [B, 1]
        real = positions >= shift                                           # aligned mask

        def align(x):  # [B, S, ...] padded at the end -> padded at the front
            return tf.gather(x, tf.maximum(positions - shift, 0), batch_dims=1)

        def unalign(x):
            return tf.gather(x, tf.minimum(positions + shift, tf.shape(x)[1] - 1),
                             batch_dims=1) * tf.cast(mask, x.dtype)[:, :, None]

        real = real[:, :, None]                                             # [B, S, 1]
        H = self.num_hiddens
        pad_gates = tf.concat([tf.fill([H], -1e4), tf.fill([H], 1e4), tf.zeros([2 * H])], 0)
        x = align(self.source_embedding(source_ids))
        zeros = tf.zeros([batch, H])
        states = []
        for cell in self.encoder_cells:
            projected = tf.where(real, cell.project_inputs(x), pad_gates)
            outputs, final = run_layer(cell, tf.transpose(projected, [1, 0, 2]), [zeros, zeros],
                                       fused=training and self.fused_recurrence)
            x = tf.transpose(outputs, [1, 0, 2])
            states += final
        return unalign(x), mask, states

    # ---------------------------------------------------------------------------- decoder

    def _luong_output(self, h, memory, memory_mask):
        """`h` `[..., B?, H]` query(ies): `[B, H]` or `[B, T, H]` -> `(h~, alpha)`."""
        query = self.attention_w(h)
        if h.shape.rank == 2:
            scores = tf.einsum("bh,bsh->bs", query, memory)
            alpha = masked_softmax(scores, memory_mask)
            context = tf.einsum("bs,bsh->bh", alpha, memory)
        else:
            scores = tf.einsum("bth,bsh->bts", query, memory)
            alpha = masked_softmax(scores, memory_mask[:, None, :])
            context = tf.einsum("bts,bsh->bth", alpha, memory)
        return tf.tanh(self.attention_combine(tf.concat([context, h], -1))), alpha

    def _bahdanau_context(self, h_prev, memory, memory_mask):
        """`h_prev` `[B, H]` -> `(context [B, H], alpha [B, S])`."""
        keys = self.attention_key(memory)                                   # [B, S, H]
        energy = tf.tanh(self.attention_query(h_prev)[:, None, :] + keys)
        scores = tf.squeeze(self.attention_v(energy), -1)                   # [B, S]
        alpha = masked_softmax(scores, memory_mask)
        return tf.einsum("bs,bsh->bh", alpha, memory), alpha

    def attention_weights(self, query, memory, memory_mask):
        """The attention weights `alpha` `[B, S]` for a query `[B, H]` (`h_t` for Luong,
        `h_{t-1}` for Bahdanau). Raises for `attention="none"`."""
        if self.attention == "luong":
            return self._luong_output(query, memory, memory_mask)[1]
        if self.attention == "bahdanau":
            return self._bahdanau_context(query, memory, memory_mask)[1]
        raise ValueError("`attention_weights` needs attention, got `attention='none'`")

    def decode_step(self, token_ids, states, memory, memory_mask):
        """One decoder step: `token_ids` int `[B]` (`y_{t-1}`), flat `states`, the encoder's
        `memory` `[B, S, H]` and `memory_mask` `[B, S]` -> `(logits [B, V], new_states)`."""
        states = list(states)
        x = self.target_embedding(tf.convert_to_tensor(token_ids))
        if self.attention == "bahdanau":
            context, _ = self._bahdanau_context(states[-2], memory, memory_mask)
            x = tf.concat([x, context], -1)
        h, states = self._stack_step(
            self.decoder_cells, self.decoder_cells[0].project_inputs(x), states)
        if self.attention == "luong":
            h, _ = self._luong_output(h, memory, memory_mask)
        return self.head(h), states

    def call(self, inputs, training=False):
        source_ids, decoder_inputs = inputs
        decoder_inputs = tf.convert_to_tensor(decoder_inputs)
        memory, memory_mask, states = self.encode(source_ids, training=training)
        if self.attention == "bahdanau":
            # The context enters the recurrence: one `decode_step` per target position.
            def step(xs, carry):
                logits, carry = self.decode_step(xs[0], carry, memory, memory_mask)
                return [logits], carry

            (logits,), _ = scan(step, [tf.transpose(decoder_inputs)], states, [tf.float32])
            return tf.transpose(logits, [1, 0, 2])
        # "luong" / "none": run the decoder's recurrence over all steps (the shared fast time
        # loop), then attend and project for all steps at once.
        projected = self.decoder_cells[0].project_inputs(self.target_embedding(decoder_inputs))
        hs, _ = run_layers(self.decoder_cells, tf.transpose(projected, [1, 0, 2]),
                           self._per_layer(states), fused=training and self.fused_recurrence)
        hs = tf.transpose(hs, [1, 0, 2])                                   # [B, T, H]
        if self.attention == "luong":
            hs, _ = self._luong_output(hs, memory, memory_mask)
        return self.head(hs)

    def greedy_decode(self, source_ids, max_length, bos_id, eos_id):
        """Greedy search: int `[B, S]` -> ids int32 `[B, L]`, `L <= max_length`.

        Each row emits the argmax token, then `<pad>` after its `<eos>` (the `<eos>` itself is
        emitted); the loop stops once every row has emitted `<eos>` or after `max_length`
        tokens.
        """
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"`max_length` must be a positive integer, got {max_length!r}")
        memory, memory_mask, states = self.encode(source_ids)
        batch = tf.shape(memory)[0]
        tokens = tf.fill([batch], tf.constant(bos_id, tf.int32))
        finished = tf.zeros([batch], tf.bool)
        out = tf.TensorArray(tf.int32, size=0, dynamic_size=True)

        def cond(t, tokens, finished, states, out):
            return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

        def body(t, tokens, finished, states, out):
            logits, states = self.decode_step(tokens, states, memory, memory_mask)
            next_ids = tf.argmax(logits, -1, output_type=tf.int32)
            next_ids = tf.where(finished, tf.constant(PAD_ID, tf.int32), next_ids)
            finished = tf.logical_or(finished, tf.equal(next_ids, eos_id))
            return t + 1, next_ids, finished, states, out.write(t, next_ids)

        _, _, _, _, out = tf.while_loop(cond, body, (0, tokens, finished, list(states), out))
        return tf.transpose(tf.reshape(out.stack(), [-1, batch]))

    def beam_search_decode(self, source_ids, max_length, bos_id, eos_id, beam_width):
        """Beam search: int `[B, S]` -> `(ids int32 [B, L], scores float32 [B])`, `L <=
        max_length`: per row the finished hypothesis of highest total log-probability.

        `K = beam_width` (a Python int or an int32 scalar tensor, >= 1) hypotheses per row,
        `B * K` decoder rows. With `logp_t = log_softmax(logits_t)` and a hypothesis' score
        `sum_t logp_t[y_t]`, each step keeps the `K` best one-token extensions of the row's
        live hypotheses (`top_k` over `[K * V]`, ties to the lower index, as `argmax`); a
        hypothesis that emitted `<eos>` is finished: it extends only by `<pad>`, at no cost,
        so it keeps its score and its place. At the first step only one hypothesis exists
        (the others start at `-inf`). The loop stops when every hypothesis has finished or
        after `max_length` tokens; the row's best hypothesis is returned, `<eos>` included,
        `<pad>` after it. No length normalisation. `beam_width = 1` is greedy search exactly.
        """
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"`max_length` must be a positive integer, got {max_length!r}")
        if isinstance(beam_width, bool) or (isinstance(beam_width, int) and beam_width < 1):
            raise ValueError(f"`beam_width` must be a positive integer, got {beam_width!r}")
        k = tf.convert_to_tensor(beam_width, tf.int32)
        memory, memory_mask, states = self.encode(source_ids)
        batch = tf.shape(memory)[0]
        rows = batch * k
        memory = tf.repeat(memory, k, axis=0)                        # [B*K, S, H]
        memory_mask = tf.repeat(memory_mask, k, axis=0)
        states = [tf.repeat(s, k, axis=0) for s in states]
        first = tf.one_hot(tf.zeros([batch], tf.int32), k, on_value=0.0, off_value=-np.inf)
        scores = tf.reshape(first, [rows])                            # [B*K]
        tokens = tf.fill([rows], tf.constant(bos_id, tf.int32))
        finished = tf.zeros([rows], tf.bool)
        history = tf.zeros([rows, 0], tf.int32)
        V = self.vocab_size
        pad_only = tf.where(tf.range(V) == PAD_ID, 0.0, -np.inf)      # [V]

        def cond(t, tokens, finished, scores, history, states):
            return tf.logical_and(t < max_length, tf.logical_not(tf.reduce_all(finished)))

        def body(t, tokens, finished, scores, history, states):
            logits, states = self.decode_step(tokens, states, memory, memory_mask)
            logp = tf.nn.log_softmax(logits)                          # [B*K, V]
            logp = tf.where(finished[:, None], pad_only[None, :], logp)
            total = tf.reshape(scores[:, None] + logp, [batch, k * V])
            best, index = tf.math.top_k(total, k)                     # [B, K]
            parent = tf.reshape(index // V + tf.range(batch)[:, None] * k, [rows])
            token = tf.reshape(index % V, [rows])
            history = tf.concat([tf.gather(history, parent), token[:, None]], 1)
            states = [tf.gather(s, parent) for s in states]
            finished = tf.logical_or(tf.gather(finished, parent), tf.equal(token, eos_id))
            return t + 1, token, finished, tf.reshape(best, [rows]), history, states

        _, _, _, scores, history, _ = tf.while_loop(
            cond, body, (0, tokens, finished, scores, history, list(states)),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None]),
                              tf.TensorShape([None]), tf.TensorShape([None]),
                              tf.TensorShape([None, None]),
                              [tf.TensorShape([None, self.num_hiddens])] * len(states)))
        # top_k keeps each row's hypotheses sorted: the first is the best.
        best = tf.range(batch) * k
        return tf.gather(history, best), tf.gather(scores, best)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, embedding_dim=self.embedding_dim,
                      num_hiddens=self.num_hiddens, num_layers=self.num_layers,
                      attention=self.attention, seed=self.seed)
        return config


def _offset(seed, k):
    return None if seed is None else seed + k
