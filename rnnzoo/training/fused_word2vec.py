"""word2vec.c's training step as one C++ op: a drop-in for the `Trainer` of negative-sampling
word2vec with plain SGD.

`Trainer` takes the gradient of the batch's mean loss and one optimizer update. word2vec.c and
gensim instead update after every example (pair, or CBOW window), each seeing its predecessors'
updates. `FusedWord2VecTrainer` runs that loop (`rnnzoo/ops/word2vec_kernels.cc`): per
example, with `lr_t` the schedule's rate at step `t` over the batch size `B` (the same step
size per example as the trainer's mean-loss gradient),

    h = combine(E[inputs])                       e = 0
    for (t, l) in (label, 1), (n_1, 0) .. (n_K, 0):   (a negative equal to the label skipped)
        g = (l - sigmoid(W[t] . h)) * lr_t / B;   e += g W[t];   W[t] += g h
    E[input] += e   for each input word

It draws the negatives itself from the model's `counts ** 0.75` CDF, seeded by
`[seed, global step]` (so a resumed run draws what the uninterrupted one did), and returns
`(summed loss, B, NaN grad norm, carry)` like `Trainer.train_step`. With `workers > 1` the
batch is split among threads that update the tables concurrently (word2vec.c's and gensim's
"Hogwild" workers): faster, not bitwise reproducible. The optimizer only keeps the step count
and the learning-rate schedule (checkpointed as usual).
"""

from __future__ import annotations

import tensorflow as tf

from rnnzoo.models.word2vec import Word2Vec


def supports(model: Word2Vec, optimizer_name: str, replicas: int) -> str | None:
    """None if the fused step can train this setup, else why not."""
    if model.loss_name != "negative":
        return f"the {model.loss_name} loss (the fused step is negative sampling)"
    if model.sampler != "unigram":
        return f"the {model.sampler} sampler (the fused step draws from counts ** 0.75)"
    if optimizer_name != "sgd":
        return f"the {optimizer_name} optimizer (the fused step is plain SGD)"
    if replicas > 1:
        return f"{replicas} replicas (the fused step updates one copy of the tables)"
    return None


class FusedWord2VecTrainer:
    """`train_step(batch, carry)` of word2vec.c's per-example SGD (module docstring).

    Args:
        model: a `Word2Vec` with `loss="negative"` and `sampler="unigram"`.
        optimizer: a Keras SGD optimizer: its schedule gives the rate, its `iterations` the step.
        ops: the loaded op library (`rnnzoo.ops.load_word2vec_ops()`).
        seed: the run's seed (the negatives' seed is `[seed, step]`).
        workers: threads per step (1: deterministic).
        predict_center: skip-gram: the context word's vector predicts the center (word2vec.c and
            gensim), instead of the center predicting the context (the course).

    Batches: skip-gram `(centers [B], contexts [B, 1])`; CBOW `(contexts [B, C], mask [B, C],
    targets [B])`, as `rnnzoo.data.skipgram` makes them.
    """

    def __init__(self, model: Word2Vec, optimizer, ops, *, seed: int, workers: int = 1,
                 predict_center: bool = False):
        self.model, self.optimizer, self.ops = model, optimizer, ops
        self.seed, self.workers = int(seed), int(workers)
        self.predict_center = predict_center
        optimizer.build(model.trainable_variables)
        self._cdf = model._cdf
        self.train_step = tf.function(self._train_step, reduce_retracing=True)

    def _learning_rate(self):
        lr = self.optimizer.learning_rate
        return lr(self.optimizer.iterations) if callable(lr) else lr

    def _train_step(self, batch, carry):
        if self.model.architecture == "skipgram":
            centers, contexts = batch
            if self.predict_center:
                centers, contexts = contexts, centers
            inputs = tf.reshape(tf.cast(centers, tf.int32), [-1, 1])
            mask = tf.ones_like(inputs, dtype=tf.bool)
            labels = tf.reshape(tf.cast(contexts, tf.int32), [-1])
        else:
            inputs, mask, labels = batch
            inputs = tf.cast(inputs, tf.int32)
            labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
        size = tf.shape(labels)[0]
        lr = tf.cast(self._learning_rate(), tf.float32) / tf.cast(size, tf.float32)
        seed = tf.stack([tf.constant(self.seed, tf.int64),
                         tf.cast(self.optimizer.iterations, tf.int64)])
        loss, _ = self.ops.rnnzoo_word2vec_negative_sgd(
            self.model.embeddings.handle, self.model.output_weights.handle, inputs, mask,
            labels, self._cdf, seed, lr, num_negatives=self.model.num_sampled,
            mean=self.model.combine == "mean", num_threads=self.workers,
            max_logit=self.model.max_logit)
        with tf.control_dependencies([loss]):
            self.optimizer.iterations.assign_add(1)
        return loss, tf.cast(size, tf.float32), tf.constant(float("nan")), carry
