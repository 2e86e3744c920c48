"""Trainer: one step against a NumPy SGD update with global-norm clipping; loss averaging."""

import keras
import numpy as np
import tensorflow as tf

from rnnzoo.models import CharLM
from rnnzoo.training.trainer import Trainer, sequence_nll, sum_repeated_rows

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


def test_bad_clip_norm():
    import pytest

    with pytest.raises(ValueError, match="`clip_norm` must be positive"):
        Trainer(_model(), keras.optimizers.SGD(1.0), clip_norm=0.0)


def test_embedding_gradients_stay_sparse_with_repeated_rows_summed():
    """A 500-row embedding read by 24 ids: the update touches only those rows, exactly as the
    dense gradient would, and the clip sees the norm of the summed rows."""
    model = CharLM(500, cell="lstm", units=H, embedding_dim=6, init="keras", seed=0)
    x = tf.constant(np.tile([[3, 3, 7, 3, 9, 7]], (B, 1)), tf.int32)  # repeated ids
    y = tf.constant(np.full((B, T), 5), tf.int32)
    states = model.initial_state(B)
    with tf.GradientTape() as tape:
        loss_sum, count, _ = sequence_nll(model, (x, y), states, True)
        loss = loss_sum / count
    table = model.embedding.embeddings
    raw = tape.gradient(loss, model.trainable_variables)
    assert isinstance(raw[0], tf.IndexedSlices) and raw[0].indices.shape[0] == B * T
    dense = [tf.convert_to_tensor(g).numpy() for g in raw]
    summed = sum_repeated_rows(raw[0], table)
    assert isinstance(summed, tf.IndexedSlices)
    assert sorted(summed.indices.numpy().tolist()) == [3, 7, 9]
    np.testing.assert_allclose(tf.convert_to_tensor(summed).numpy(), dense[0], atol=1e-7)
    norm = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in dense))
    before = [v.numpy() for v in model.trainable_variables]
    trainer = Trainer(model, keras.optimizers.SGD(0.5), clip_norm=norm / 2)
    _, _, grad_norm, _ = trainer.train_step((x, y), states)
    np.testing.assert_allclose(grad_norm.numpy(), norm, rtol=1e-5)
    after = [v.numpy() for v in model.trainable_variables]
    for a, b, g in zip(after, before, dense):
        np.testing.assert_allclose(a, b - 0.5 * g / 2, atol=1e-6)
    untouched = np.setdiff1d(np.arange(500), [3, 7, 9])
    np.testing.assert_array_equal(after[0][untouched], before[0][untouched])


def test_a_small_table_read_by_many_ids_is_summed_densely():
    table = tf.Variable(tf.zeros([4, 3]))
    grad = tf.IndexedSlices(tf.ones([6, 3]), tf.constant([0, 1, 1, 2, 3, 3]), tf.constant([4, 3]))
    summed = sum_repeated_rows(grad, table)
    assert isinstance(summed, tf.Tensor)
    np.testing.assert_array_equal(summed.numpy()[:, 0], [1, 2, 1, 2])


def test_the_loss_is_the_mean_over_the_global_count():
    """A loss function that counts fewer predictions (a mask) is averaged over that count."""

    def masked_nll(model, batch, states, training):
        x, y = batch
        logits, new_states = model(x, states, training=training)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        mask = tf.cast(tf.sequence_mask([2, 6, 1, 3], T), tf.float32)
        return tf.reduce_sum(nll * mask), tf.reduce_sum(mask), new_states

    model = _model()
    batch = _batch(2)
    states = model.initial_state(B)
    with tf.GradientTape() as tape:
        loss_sum, count, _ = masked_nll(model, batch, states, True)
        mean = loss_sum / count
    grads = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(mean,
                                                                      model.trainable_variables)]
    before = [v.numpy() for v in model.trainable_variables]
    trainer = Trainer(model, keras.optimizers.SGD(0.1), loss_fn=masked_nll)
    _, count, _, _ = trainer.train_step(batch, states)
    assert float(count) == 12
    for a, b, g in zip(model.trainable_variables, before, grads):
        np.testing.assert_allclose(a.numpy(), b - 0.1 * g, atol=1e-7)
