"""Text from a trained language model: next-token choice and prefix continuation.

`choose_next` is shared by in-training samples and the exported `generate` signature, so both
pick characters the same way: greedy (`temperature == 0`, as d2l) or sampling from
`softmax(logits / temperature)`, optionally among the `top_k` likeliest tokens only. Sampling is
stateless: the same `seed` and step give the same character.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def forbid_token(logits, token_id):
    """Sets one column of `logits` `[batch, vocab]` to the lowest float: it is never chosen.

    Generation forbids `<unk>`: it stands for characters the model cannot name, so emitting it
    would put the 5 characters "<unk>" into the text.
    """
    if token_id is None:
        return logits
    mask = tf.one_hot(token_id, tf.shape(logits)[-1], on_value=True, off_value=False)
    return tf.where(mask, tf.constant(logits.dtype.min, logits.dtype), logits)


def choose_next(logits, temperature, top_k, seed):
    """Picks one token per row.

    Args:
        logits: float32 `[batch, vocab]`.
        temperature: float32 scalar; 0 means greedy argmax.
        top_k: int32 scalar; > 0 keeps only the k likeliest tokens before sampling.
        seed: int32 `[2]` stateless-random seed.

    Returns int32 `[batch]`.
    """
    temperature = tf.convert_to_tensor(temperature, tf.float32)
    top_k = tf.convert_to_tensor(top_k, tf.int32)

    def sample():
        scaled = logits / tf.maximum(temperature, 1e-6)
        k = tf.minimum(top_k, tf.shape(logits)[-1])
        kth = tf.cond(
            k > 0,
            lambda: tf.math.top_k(scaled, k=tf.maximum(k, 1)).values[:, -1:],
            lambda: tf.fill([tf.shape(scaled)[0], 1], scaled.dtype.min))
        masked = tf.where(scaled < kth, tf.fill(tf.shape(scaled), scaled.dtype.min), scaled)
        return tf.cast(tf.random.stateless_categorical(masked, 1, seed)[:, 0], tf.int32)

    greedy = lambda: tf.argmax(logits, axis=-1, output_type=tf.int32)  # noqa: E731
    return tf.cond(temperature > 0, sample, greedy)


class TextGenerator:
    """Continues prefixes with a model's `step`, compiled once per model.

    d2l's `predict_rnn`: feed the prefix one character at a time (teacher forcing), then feed
    back each chosen character for `num_chars` steps. Prefix characters outside the vocabulary
    are fed as `<unk>` (and returned as given); `<unk>` itself is never generated.
    """

    def __init__(self, model, vocab):
        self.model = model
        self.vocab = vocab
        self._step = tf.function(self._step_impl, reduce_retracing=True)

    def _step_impl(self, token_ids, states, temperature, top_k, seed):
        logits, states = self.model.step(token_ids, states)
        logits = forbid_token(logits, self.vocab.unk_id)
        return choose_next(logits, temperature, top_k, seed), states

    def __call__(self, prefix: str, num_chars: int, *, temperature=0.0, top_k=0, seed=0) -> str:
        if not prefix:
            raise ValueError("`prefix` must be a non-empty string, got ''")
        ids = self.vocab.encode(list(prefix))  # Unknown characters follow the vocabulary's policy.
        states = self.model.initial_state(1)
        out = []
        next_id = None
        for t in range(len(ids) - 1 + num_chars):
            token = ids[t] if t < len(ids) else next_id
            step_seed = tf.constant([seed, t], tf.int32)
            chosen, states = self._step(tf.constant([token], tf.int32), states,
                                        tf.constant(temperature, tf.float32),
                                        tf.constant(top_k, tf.int32), step_seed)
            next_id = int(chosen.numpy()[0])
            if t >= len(ids) - 1:
                out.append(next_id)
        return prefix + "".join(self.vocab.decode(np.asarray(out, np.int32)))
