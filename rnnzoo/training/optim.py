"""Optimizers and learning-rate schedules of the shared training loop, from a config.

The schedules run on the optimizer's iteration count, the global step, which every checkpoint
keeps; a resumed run therefore continues its schedule where it stopped.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from rnnzoo.config import LR_SCHEDULES, OPTIMIZERS, PLATEAU


def learning_rate(config, total_steps: int):
    """The learning rate (a float, or a `keras.optimizers.schedules` schedule).

    constant:     `lr` (a plain float, so the step is exactly the SGD of d2l);
    exponential:  `lr * lr_decay_rate ** floor(step / lr_decay_steps)`, staircase, as the
                  TensorFlow course's `tf.train.exponential_decay(..., staircase=True)`;
    plateau:      `lr`, lowered by `PlateauDecay` as validation goes;
    linear:       from `lr` down to `e = lr * lr_min_fraction` over `S = lr_decay_steps` steps
                  (default: `total_steps`), `e + (lr - e) * (1 - s / S)`, then flat: word2vec.c's
                  `alpha = lr * max(1e-4, 1 - s / S)` to within `e`.
    """
    if config.lr_schedule == PLATEAU:
        return config.lr  # a variable of the optimizer, which `PlateauDecay` lowers
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"`lr_schedule` must be one of {list(LR_SCHEDULES)}, "
                         f"got {config.lr_schedule!r}")
    if config.lr_schedule == "constant":
        return config.lr
    if config.lr_schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            config.lr, config.lr_decay_steps, config.lr_decay_rate, staircase=True)
    steps = config.lr_decay_steps or total_steps
    if steps < 1:
        raise ValueError(f"linear decay needs a number of steps >= 1, got {steps}")
    return keras.optimizers.schedules.PolynomialDecay(
        config.lr, steps, end_learning_rate=config.lr * config.lr_min_fraction, power=1.0)


def make_optimizer(config, total_steps: int) -> keras.optimizers.Optimizer:
    """`config.optimizer` with `learning_rate(config, total_steps)`.

    sgd: plain SGD (no momentum), as d2l, the course and word2vec.c; adagrad: Adagrad with TF 1's
    initial accumulator 0.1 (the course's `tf.train.AdagradOptimizer(1.0)`); adam: Keras' Adam.
    Gradient clipping is not the optimizer's (Keras' `clipnorm` clips each variable alone): the
    trainer clips the global norm.
    """
    lr = learning_rate(config, total_steps)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr)
    if config.optimizer == "adagrad":
        return SparseAdagrad(learning_rate=lr, initial_accumulator_value=0.1)
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    raise ValueError(f"`optimizer` must be one of {list(OPTIMIZERS)}, got {config.optimizer!r}")


@keras.saving.register_keras_serializable(package="rnnzoo")
class SparseAdagrad(keras.optimizers.Adagrad):
    """Keras' Adagrad, with row updates for `tf.IndexedSlices` gradients.

    Keras 3's Adagrad squares a sparse gradient into a dense `[V, D]` tensor (30 ms a step for
    the course's 50,000 x 128 embedding here, against 0.6 ms for SGD). Adagrad leaves the rows
    without gradient unchanged, so updating only the gradient's rows `r` is the same step:

        acc[r] += g[r] ** 2;    w[r] -= lr * g[r] / sqrt(acc[r] + epsilon)

    (TensorFlow 1's `SparseApplyAdagrad`, which the course ran). The rows must be unique: the
    trainer sums repeated rows first (`rnnzoo.training.trainer.sum_repeated_rows`).
    """

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        lr = tf.cast(learning_rate, variable.dtype)
        values = tf.cast(gradient.values, variable.dtype)
        rows = gradient.indices
        accumulator = self._accumulators[self._get_variable_index(variable)]
        self.assign_add(accumulator, tf.IndexedSlices(tf.square(values), rows,
                                                      gradient.dense_shape))
        # Gather from the tf.Variable: a Keras variable would be read (copied) whole first.
        scale = tf.sqrt(tf.gather(getattr(accumulator, "value", accumulator), rows)
                        + self.epsilon)
        self.assign_sub(variable, tf.IndexedSlices(lr * values / scale, rows,
                                                   gradient.dense_shape))


def current_learning_rate(optimizer) -> float:
    """The rate the optimizer applies at its next step."""
    lr = optimizer.learning_rate
    # Through a tensor: float() of a Keras variable over a MirroredVariable fails.
    return float(tf.convert_to_tensor(lr(optimizer.iterations) if callable(lr) else lr))


class PlateauDecay:
    """Lowers the learning rate when validation stops improving (the legacy translate model's
    `learning_rate_decay_op`, on the validation loss):

        after report k, if  val_loss_k >= min(val_loss_1 .. val_loss_{k-1}):  lr <- lr * factor

    The rate is the optimizer's own variable, so checkpoints keep it; the history comes from
    the run's metrics (which a resumed run keeps up to its checkpoint), so a resumed run decays
    as the uninterrupted one would.

    Args:
        optimizer: a Keras optimizer built with a constant (variable) learning rate.
        factor: the decay factor, in (0, 1].
    """

    def __init__(self, optimizer, factor: float):
        if not 0 < factor <= 1:
            raise ValueError(f"`factor` must be in (0, 1], got {factor}")
        if callable(optimizer.learning_rate):
            raise ValueError("PlateauDecay needs an optimizer with a constant learning rate, "
                             "not a schedule")
        self.optimizer, self.factor = optimizer, factor

    def update(self, val_losses) -> bool:
        """`val_losses`: every report's validation loss so far, the newest last. Decays the
        rate (and returns True) if the newest is no better than the best before it."""
        val_losses = [float(v) for v in val_losses]
        if len(val_losses) < 2 or val_losses[-1] < min(val_losses[:-1]):
            return False
        lr = self.optimizer.learning_rate
        lr.assign(lr * self.factor)
        return True
