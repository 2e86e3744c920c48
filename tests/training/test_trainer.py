"""Trainer: one step against a NumPy SGD update with global-norm clipping; loss averaging."""

import keras
import numpy as np
import tensorflow as tf

from rnnzoo.models import CharLM
from rnnzoo.training.trainer import Trainer, sequence_nll

V, B, T, H = 17, 4, 6, 8


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, V, (B, T)).astype(np.int32)
    y = rng.integers(0, V, (B, T)).astype(np.int32)
    return tf.constant(x), tf.constant(y)


def _model():
    return CharLM(V, cell="lstm", units=H, init="keras", seed=0)


def test_step_is_sgd_on_the_globally_clipped_mean_loss():
    lr, clip = 0.5, 0.05
    model = _model()
    before = [v.numpy() for v in model.trainable_variables]
    batch = _batch()
    states = model.initial_state(B)
    with tf.GradientTape() as tape:
        logits, _ = model(batch[0], states)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(batch[1], logits))
    grads = [tf.convert_to_tensor(g).numpy()
             for g in tape.gradient(loss, model.trainable_variables)]

    # NumPy reference: d2l's grad_clipping then sgd.
    norm = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    assert norm > clip  # The test is only meaningful if clipping kicks in.
    expected = [w - lr * g * (clip / norm) for w, g in zip(before, grads)]
    # What per-variable clipping (Keras' `clipnorm`) would give instead: must differ.
    per_variable = [w - lr * g * min(1, clip / np.linalg.norm(g)) for w, g in zip(before, grads)]

    trainer = Trainer(model, keras.optimizers.SGD(lr), clip_norm=clip)
    loss_sum, count, grad_norm, _ = trainer.train_step(batch, states)
    assert count.numpy() == B * T
    np.testing.assert_allclose(loss_sum.numpy() / (B * T), loss.numpy(), rtol=1e-5)
    np.testing.assert_allclose(grad_norm.numpy(), norm, rtol=1e-4)
    after = [v.numpy() for v in model.trainable_variables]
    for a, e in zip(after, expected):
        np.testing.assert_allclose(a, e, atol=1e-6)
    assert max(np.abs(a - p).max() for a, p in zip(after, per_variable)) > 1e-5


def test_small_gradients_are_not_rescaled():
    model = _model()
    before = [v.numpy() for v in model.trainable_variables]
    batch = _batch(1)
    states = model.initial_state(B)
    with tf.GradientTape() as tape:
        loss_sum, count, _ = sequence_nll(model, batch, states, True)
        loss = loss_sum / count
    grads = tape.gradient(loss, model.trainable_variables)
    trainer = Trainer(model, keras.optimizers.SGD(0.1), clip_norm=1e6)
    trainer.train_step(batch, states)
    for v, w, g in zip(model.trainable_variables, before, grads):
        np.testing.assert_allclose(v.numpy(), w - 0.1 * tf.convert_to_tensor(g).numpy(),
                                   atol=1e-6)


def test_eval_step_leaves_weights_alone_and_returns_states():
    model = _model()
    before = [v.numpy() for v in model.trainable_variables]
    trainer = Trainer(model, keras.optimizers.SGD(1.0), clip_norm=1.0)
    loss_sum, count, states = trainer.eval_step(_batch(), model.initial_state(B))
    assert np.isfinite(loss_sum.numpy()) and count.numpy() == B * T
    assert len(states) == 2 and states[0].shape == (B, H)
    for v, w in zip(model.trainable_variables, before):
        np.testing.assert_array_equal(v.numpy(), w)


def test_bad_clip_norm():
    import pytest

    with pytest.raises(ValueError, match="`clip_norm` must be positive"):
        Trainer(_model(), keras.optimizers.SGD(1.0), clip_norm=0.0)
