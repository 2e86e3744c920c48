"""word2vec: skip-gram and CBOW (Mikolov et al., 2013), with three output losses.

Both models own two tables of `V` rows (the vocabulary):

    embeddings  E  [V, D]   the input vectors (word2vec.c's syn0): the word vectors exported
    weights     W  [V, D]   the output vectors (syn1neg), and biases b [V] (sampled softmax, NCE)

and map an example to one hidden vector `h [batch, D]`:

    skip-gram:  h = E[center]                                    (predicts one context word)
    CBOW:       h = sum_j m_j E[context_j]            (the course: `combine="sum"`)
                h = sum_j m_j E[context_j] / sum_j m_j (word2vec.c: `combine="mean"`)

with `m` the mask of real context words (a window cut short is padded). The loss of predicting
the word `o` from `h`, summed over the batch:

    sampled_softmax  tf.nn.sampled_softmax_loss(W, b, o, h, num_sampled) (the course)
    nce              tf.nn.nce_loss(W, b, o, h, num_sampled)
    negative         -log sigmoid(W[o] . h) - sum_{k: n_k != o} log sigmoid(-W[n_k] . h), with
                     K = num_sampled negatives n_k per example drawn from counts ** 0.75, one
                     equal to `o` skipped (word2vec.c, gensim's SGNS)

CBOW with `combine="mean"` takes word2vec.c's update: the mean forward, but every context word
receives the whole gradient of `h` (as if `h` were the sum), as word2vec.c and gensim do.

Negatives (and the sampled classes of the first two) are drawn with replacement from the
vocabulary's counts raised to 0.75 (what `tf.random.fixed_unigram_candidate_sampler(distortion=
0.75)` draws; the course's sampled softmax used TF's log-uniform sampler, `sampler="log_uniform"`),
statelessly from `[seed, global step]`, so a resumed run draws the same negatives. Every table is
read by row gathers, so the gradients are `IndexedSlices` that the trainer keeps sparse.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

ARCHITECTURES = ("skipgram", "cbow")
LOSSES = ("sampled_softmax", "nce", "negative")
COMBINES = ("sum", "mean")
SAMPLERS = ("unigram", "log_uniform")
INITS = ("course", "word2vec", "gensim")


@keras.saving.register_keras_serializable(package="rnnzoo")
class Word2Vec(keras.Model):
    """Skip-gram or CBOW word vectors.

    Args:
        vocab_size: `V`, the number of words (ids `0 .. V-1`, `<unk>` included).
        embedding_dim: `D`.
        architecture: "skipgram" or "cbow".
        loss: "sampled_softmax", "nce" or "negative" (see the module docstring).
        num_sampled: sampled classes per batch (sampled softmax, NCE) or negatives per example
            (negative sampling).
        combine: CBOW only: "sum" (the course) or "mean" (word2vec.c) of the context vectors.
        counts: the word counts in id order (`[V]`), for the unigram**0.75 sampler.
        sampler: "unigram" (counts ** 0.75) or "log_uniform" (TF's default, Zipfian by id).
        init: "course" (E uniform(-1, 1), W truncated normal with std 1/sqrt(D), b zero),
            "word2vec" (E uniform(-0.5/D, 0.5/D), W and b zero, as word2vec.c) or "gensim"
            (E uniform(-1/D, 1/D), W and b zero, as gensim 4).
        max_logit: negative sampling: a target whose logit `|W[t] . h|` reaches it gives no
            gradient (gensim's `MAX_EXP`, 6); 0 (default) never skips.
        seed: seeds the initial weights; `loss` takes the sampler's per-step seed.

    Call arguments:
        inputs: skip-gram: centers int `[batch]`; CBOW: `(contexts [batch, C], mask [batch, C])`.

    Returns the hidden vectors `h [batch, D]`; `sampled_loss(h, labels, seed)` gives the summed
    loss.

    Example:
        model = Word2Vec(50000, 128, counts=counts)
        h = model(centers)                                  # [128, 128]
        loss = model.sampled_loss(h, contexts, seed=tf.constant([0, step]))
    """

    def __init__(self, vocab_size, embedding_dim=128, architecture="skipgram",
                 loss="sampled_softmax", num_sampled=64, combine="sum", counts=None,
                 sampler="unigram", init="course", seed=None, max_logit=0.0, **kwargs):
        super().__init__(**kwargs)
        for name, value, choices in (("architecture", architecture, ARCHITECTURES),
                                     ("loss", loss, LOSSES), ("combine", combine, COMBINES),
                                     ("sampler", sampler, SAMPLERS), ("init", init, INITS)):
            if value not in choices:
                raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}")
        for name, value in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim),
                            ("num_sampled", num_sampled)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if not max_logit >= 0:
            raise ValueError(f"`max_logit` must be >= 0 (0: none), got {max_logit!r}")
        if loss != "negative" and num_sampled >= vocab_size:
            raise ValueError(f"`num_sampled` ({num_sampled}) must be smaller than the "
                             f"vocabulary ({vocab_size} words) for the {loss} loss")
        if sampler == "unigram":
            if counts is None or len(counts) != vocab_size:
                raise ValueError(f"`counts` must give the {vocab_size} word counts for the "
                                 f"unigram sampler, got {None if counts is None else len(counts)}")
            if min(counts) < 0 or sum(counts) <= 0:
                raise ValueError("`counts` must be >= 0 with a positive total")
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.architecture = architecture
        self.loss_name = loss
        self.num_sampled = num_sampled
        self.combine = combine
        self.counts = None if counts is None else [int(c) for c in counts]
        self.sampler = sampler
        self.init = init
        self.seed = seed
        self.max_logit = float(max_logit)
        if init == "course":
            e_init = keras.initializers.RandomUniform(-1.0, 1.0, seed=seed)
            w_init = keras.initializers.TruncatedNormal(stddev=1.0 / np.sqrt(embedding_dim),
                                                        seed=None if seed is None else seed + 1)
        else:
            scale = (0.5 if init == "word2vec" else 1.0) / embedding_dim
            e_init = keras.initializers.RandomUniform(-scale, scale, seed=seed)
            w_init = "zeros"
        self.embeddings = self.add_weight(shape=(vocab_size, embedding_dim), name="embeddings",
                                          initializer=e_init)
        self.output_weights = self.add_weight(shape=(vocab_size, embedding_dim),
                                              name="output_weights", initializer=w_init)
        self.output_biases = self.add_weight(shape=(vocab_size,), name="output_biases",
                                             initializer="zeros")
        probs = sampling_probabilities(vocab_size, sampler, counts)
        cdf = np.cumsum(probs)
        cdf[-1] = 1.0
        self._probs, self._cdf = tf.constant(probs), tf.constant(cdf)
        self.built = True

    def call(self, inputs, training=False):
        if self.architecture == "skipgram":
            return tf.gather(_rows(self.embeddings), inputs)
        contexts, mask = inputs
        mask = tf.cast(mask, self.embeddings.dtype)[..., None]  # [batch, C, 1]
        total = tf.reduce_sum(tf.gather(_rows(self.embeddings), contexts) * mask, axis=1)
        if self.combine == "sum":
            return total
        # The mean forward, the sum's gradient backward: word2vec.c and gensim (cbow_mean=1)
        # add the whole error to every context word, not the error over their number.
        mean = total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
        return total + tf.stop_gradient(mean - total)

    def _candidates(self, num_sampled: int, seed):
        """`num_sampled` ids drawn with replacement from the sampler's distribution.

        Stateless (`seed`: int32 `[2]`, e.g. `[run seed, global step]`), so a resumed run draws
        what the uninterrupted run would: uniform numbers mapped through the inverse CDF
        (`tf.searchsorted`), O(num_sampled log V) per step.
        """
        u = tf.random.stateless_uniform([num_sampled], seed=seed, dtype=tf.float64)
        ids = tf.searchsorted(self._cdf, u, side="right")
        return tf.minimum(ids, self.vocab_size - 1)

    def sampled_loss(self, hidden, labels, seed):
        """Summed loss of predicting `labels` (int `[batch]` or `[batch, 1]`) from `hidden`.

        `hidden`: `[batch, D]` with a static batch size; `seed`: int32 `[2]` for the sampler.
        Negative sampling draws `[global batch, num_sampled]` negatives; under a `tf.distribute`
        strategy replica `r` of `R` keeps rows `[r batch, (r + 1) batch)` of them (the rows of
        the global batch it trains on), so the replicas draw what one device draws.
        """
        labels = tf.reshape(tf.cast(labels, tf.int64), [-1, 1])
        batch = hidden.shape[0]
        if batch is None:
            raise ValueError("word2vec batches need a static batch size (drop_remainder=True)")
        if self.loss_name == "negative":
            replica = tf.distribute.get_replica_context()
            replicas = replica.num_replicas_in_sync if replica is not None else 1
            negatives = tf.reshape(self._candidates(replicas * batch * self.num_sampled, seed),
                                   [replicas * batch, self.num_sampled])
            if replicas > 1:
                first = replica.replica_id_in_sync_group * batch
                negatives = negatives[first:first + batch]
            weights = _rows(self.output_weights)
            true_logit = tf.reduce_sum(tf.gather(weights, labels[:, 0]) * hidden, -1)
            neg_logits = tf.einsum("bkd,bd->bk", tf.gather(weights, negatives),
                                   hidden)
            # word2vec.c skips a negative that is the word to predict.
            real = tf.cast(tf.not_equal(tf.cast(negatives, tf.int64), labels), hidden.dtype)
            true_loss = _saturating(tf.nn.softplus(-true_logit), true_logit, self.max_logit)
            neg_loss = _saturating(tf.nn.softplus(neg_logits), neg_logits, self.max_logit)
            per_example = true_loss + tf.reduce_sum(neg_loss * real, axis=-1)
            return tf.reduce_sum(per_example)
        sampled = self._candidates(self.num_sampled, seed)
        n = float(self.num_sampled)  # expected counts of a draw with replacement: n * p
        sampled_values = (sampled, tf.cast(n * tf.gather(self._probs, labels), tf.float32),
                          tf.cast(n * tf.gather(self._probs, sampled), tf.float32))
        loss_fn = (tf.nn.sampled_softmax_loss if self.loss_name == "sampled_softmax"
                   else tf.nn.nce_loss)
        per_example = loss_fn(weights=_rows(self.output_weights),
                              biases=_rows(self.output_biases),
                              labels=labels, inputs=hidden, num_sampled=self.num_sampled,
                              num_classes=self.vocab_size, sampled_values=sampled_values)
        return tf.reduce_sum(per_example)

    def unit_vectors(self) -> tf.Tensor:
        """The word vectors `E`, each row scaled to unit length (zero rows stay zero)."""
        return tf.math.l2_normalize(self.embeddings, axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, embedding_dim=self.embedding_dim,
                      architecture=self.architecture, loss=self.loss_name,
                      num_sampled=self.num_sampled, combine=self.combine, counts=self.counts,
                      sampler=self.sampler, init=self.init, seed=self.seed,
                      max_logit=self.max_logit)
        return config


def _saturating(loss, logit, max_logit: float):
    """`loss` with no gradient where `|logit| >= max_logit > 0` (gensim's MAX_EXP skip)."""
    if not max_logit:
        return loss
    active = tf.cast(tf.abs(tf.stop_gradient(logit)) < max_logit, loss.dtype)
    return loss * active + tf.stop_gradient(loss * (1 - active))


def _rows(variable):
    """The `tf.Variable` under a Keras variable, for row gathers (`ResourceGather`).

    `tf.gather` of the Keras variable itself reads the whole table first (and a table that has
    had sparse updates is copied on every read): 7 ms a step for 50,000 x 128 here.
    """
    return getattr(variable, "value", variable)


def sampling_probabilities(vocab_size: int, sampler: str, counts=None) -> np.ndarray:
    """float64 `[V]`: `counts ** 0.75` normalised ("unigram"), or TF's log-uniform (Zipfian)
    `log((k + 2) / (k + 1)) / log(V + 1)` ("log_uniform")."""
    if sampler == "unigram":
        weights = np.asarray(counts, np.float64) ** 0.75
    else:
        k = np.arange(vocab_size, dtype=np.float64)
        weights = np.log((k + 2) / (k + 1))
    return weights / weights.sum()
