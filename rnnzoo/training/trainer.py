"""Compiled training and evaluation steps, shared by every model in the zoo.

A model family plugs in through a *loss function*

    loss_fn(model, batch, carry, training) -> (loss_sum, count, new_carry)

that returns the summed loss over the batch, how many predictions it covers, and whatever must
be carried to the next batch (the recurrent state of a language model; `()` for word2vec). The
trainer owns everything else: the `tf.GradientTape`, averaging over the *global* batch, the
global-norm clip, the optimizer update and the `tf.function` compilation.

The loss is normalised by the *global* count of predictions: under a `tf.distribute` strategy
(build the model and optimizer inside `strategy.scope()` and pass the strategy) each replica's
summed loss is divided by the count all-reduced over the replicas, so replicas (or masked
batches) with different counts still give the gradient of the global mean; the replicas'
gradients are summed into it, and that is what gets clipped. Two replicas take exactly the step
one device takes on the whole batch (tested).

Gradients of a row gather (an embedding, a one-hot input) are `tf.IndexedSlices` whose repeated
rows are not summed yet. The trainer sums them: into a dense tensor when the batch gathers at
least as many rows as the table has (d2l's one-hot input: dense is cheaper), else into
`IndexedSlices` with unique rows, which the global norm, the clip and the optimizer's sparse
update use as they are, so a 50,000-row table is never materialised per step.
"""

from __future__ import annotations

import tensorflow as tf


def sequence_nll(model, batch, states, training):
    """Language-model loss: summed next-token NLL over `[batch, time]` targets.

    `batch` is `(x, y)`, int32 `[batch, time]` each; `states` the model's flat state list.
    """
    x, y = batch
    logits, new_states = model(x, states, training=training)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
    return tf.reduce_sum(nll), tf.cast(tf.size(y), tf.float32), new_states


def sum_repeated_rows(grad, variable):
    """`grad` with repeated rows summed: dense, or `IndexedSlices` with unique indices.

    Dense when the slices hold at least as many rows as `variable` has (the dense sum is then
    no larger than the slices), else unique rows (`tf.unique` + `unsorted_segment_sum`).
    """
    if not isinstance(grad, tf.IndexedSlices):
        return grad
    num_slices, num_rows = grad.indices.shape[0], variable.shape[0]
    if num_slices is not None and num_slices >= num_rows:
        return tf.convert_to_tensor(grad)
    unique, positions = tf.unique(grad.indices)
    values = tf.math.unsorted_segment_sum(grad.values, positions, tf.shape(unique)[0])
    return tf.IndexedSlices(values, unique, grad.dense_shape)


class Trainer:
    """GradientTape steps with SGD-style updates and global-norm gradient clipping.

    One training step, with `g` the gradient of the mean loss over the global batch:

        g <- g * min(1, clip_norm / ||g||_2)      (tf.clip_by_global_norm, d2l's theta)
        optimizer.apply(g)                         (SGD: w <- w - lr * g)

    Args:
        model: a Keras model (already built).
        optimizer: a Keras optimizer, e.g. `keras.optimizers.SGD(lr)`.
        clip_norm: the global-norm threshold; `None` disables clipping.
        loss_fn: see the module docstring; defaults to `sequence_nll`.
        jit_compile: XLA-compile the steps.
        strategy: a `tf.distribute.Strategy`; defaults to the current one.
    """

    def __init__(self, model, optimizer, *, clip_norm=None, loss_fn=sequence_nll,
                 jit_compile=False, strategy=None):
        if clip_norm is not None and not clip_norm > 0:
            raise ValueError(f"`clip_norm` must be positive or None, got {clip_norm}")
        self.model = model
        self.optimizer = optimizer
        self.clip_norm = clip_norm
        self.loss_fn = loss_fn
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():
            optimizer.build(model.trainable_variables)
        self.train_step = tf.function(self._train_step, jit_compile=jit_compile,
                                      reduce_retracing=True)

    def _replica_train_step(self, batch, carry):
        variables = self.model.trainable_variables
        replicas = self.strategy.num_replicas_in_sync
        with tf.GradientTape() as tape:
            loss_sum, count, new_carry = self.loss_fn(self.model, batch, carry, True)
            global_count = count
            if replicas > 1:
                global_count = tf.distribute.get_replica_context().all_reduce("SUM", count)
            loss = loss_sum / global_count  # This replica's share of the global mean.
        grads = tape.gradient(loss, variables)
        # A variable the loss does not read (word2vec's biases under negative sampling) has no
        # gradient: leave it out rather than have the optimizer warn at every step.
        used = [(g, v) for g, v in zip(grads, variables) if g is not None]
        grads, variables = [g for g, _ in used], [v for _, v in used]
        if replicas > 1:  # All-reducing IndexedSlices would repeat rows again: go dense.
            grads = [tf.convert_to_tensor(g) for g in grads]
        else:
            grads = [sum_repeated_rows(g, v) for g, v in zip(grads, variables)]
        if replicas > 1:
            # Clip the gradient of the global batch, not each replica's share of it.
            grads = tf.distribute.get_replica_context().all_reduce("SUM", grads)
        grad_norm = tf.linalg.global_norm(grads)
        if self.clip_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, self.clip_norm, use_norm=grad_norm)
        if replicas > 1:
            # Keras' optimizer sums gradients over the replicas again; hand it equal shares.
            grads = [g / replicas for g in grads]
        self.optimizer.apply_gradients(zip(grads, variables))
        return loss_sum, count, grad_norm, new_carry

    def _train_step(self, batch, carry):
        """-> (loss_sum, count, grad_norm, new_carry); sums are over the whole global batch."""
        if self.strategy.num_replicas_in_sync == 1:
            return self._replica_train_step(batch, carry)
        loss_sum, count, grad_norm, new_carry = self.strategy.run(
            self._replica_train_step, args=(batch, carry))
        total = lambda v: self.strategy.reduce("SUM", v, axis=None)  # noqa: E731
        # Every replica computed the same global norm.
        grad_norm = self.strategy.reduce("MEAN", grad_norm, axis=None)
        return total(loss_sum), total(count), grad_norm, new_carry
