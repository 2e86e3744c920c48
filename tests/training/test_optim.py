"""Optimizers and learning-rate schedules from a config, against the formulas they implement."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.tasks.char_lm import CharLMConfig
from rnnzoo.training.optim import current_learning_rate, learning_rate, make_optimizer


def _rate_at(schedule, step):
    return float(schedule(tf.constant(step, tf.int64))) if callable(schedule) else schedule


def test_constant_is_a_plain_float():
    assert learning_rate(CharLMConfig(lr=100.0), 10) == 100.0


def test_exponential_is_the_course_staircase():
    """tf.train.exponential_decay(10.0, step, 5000, 0.1, staircase=True)."""
    config = CharLMConfig(lr=10.0, lr_schedule="exponential", lr_decay_steps=5000,
                          lr_decay_rate=0.1)
    schedule = learning_rate(config, 7001)
    for step in (0, 1, 4999, 5000, 7000, 10000, 12345):
        want = 10.0 * 0.1 ** math.floor(step / 5000)
        assert _rate_at(schedule, step) == pytest.approx(want, rel=1e-6), step


def test_linear_decays_to_the_floor_like_word2vec_c():
    config = CharLMConfig(lr=0.025, lr_schedule="linear", lr_min_fraction=1e-4)
    schedule = learning_rate(config, 1000)
    for step in (0, 250, 999, 1000, 5000):
        end = 0.025 * 1e-4  # word2vec.c: 0.025 * max(1e-4, 1 - s/S), within `end` of this
        want = end + (0.025 - end) * (1 - min(step, 1000) / 1000)
        assert _rate_at(schedule, step) == pytest.approx(want, rel=1e-5, abs=1e-9), step


@pytest.mark.parametrize("name, cls", [("sgd", keras.optimizers.SGD),
                                       ("adagrad", keras.optimizers.Adagrad),
                                       ("adam", keras.optimizers.Adam)])
def test_optimizers(name, cls):
    optimizer = make_optimizer(CharLMConfig(optimizer=name, lr=0.5), 10)
    assert isinstance(optimizer, cls)
    assert current_learning_rate(optimizer) == pytest.approx(0.5)


def test_adagrad_is_tf1s_with_accumulator_0_1():
    """One Adagrad step from TF 1's AdagradOptimizer: acc = 0.1 + g^2; w -= lr g / sqrt(acc)."""
    w = tf.Variable([1.0, -2.0])
    optimizer = make_optimizer(CharLMConfig(optimizer="adagrad", lr=1.0), 10)
    g = np.array([0.5, -0.25], np.float32)
    optimizer.apply_gradients([(tf.constant(g), w)])
    want = np.array([1.0, -2.0]) - g / np.sqrt(0.1 + g ** 2)
    np.testing.assert_allclose(w.numpy(), want, rtol=1e-5)


def test_the_schedule_follows_the_restored_global_step(tmp_path):
    config = CharLMConfig(lr=10.0, lr_schedule="exponential", lr_decay_steps=3,
                          lr_decay_rate=0.5)
    w = tf.Variable([1.0])
    optimizer = make_optimizer(config, 10)
    for _ in range(4):
        optimizer.apply_gradients([(tf.constant([0.0]), w)])
    assert current_learning_rate(optimizer) == pytest.approx(5.0)
    path = tf.train.Checkpoint(optimizer=optimizer, w=w).write(str(tmp_path / "ckpt"))
    again = make_optimizer(config, 10)
    again.build([w])
    tf.train.Checkpoint(optimizer=again, w=w).read(path).assert_consumed()
    assert int(again.iterations.numpy()) == 4
    assert current_learning_rate(again) == pytest.approx(5.0)


def test_sparse_adagrad_steps_only_the_gradients_rows_as_the_dense_step():
    """Row updates of an IndexedSlices gradient equal Keras' dense Adagrad step (two steps)."""
    table = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    sparse_w, dense_w = tf.Variable(table), tf.Variable(table)
    sparse = make_optimizer(CharLMConfig(optimizer="adagrad", lr=0.7), 10)
    dense = keras.optimizers.Adagrad(learning_rate=0.7, initial_accumulator_value=0.1)
    for rows in ([1, 4], [4, 0]):
        values = np.random.default_rng(len(rows)).normal(size=(2, 3)).astype(np.float32)
        grad = tf.IndexedSlices(tf.constant(values), tf.constant(rows), tf.constant([6, 3]))
        sparse.apply_gradients([(grad, sparse_w)])
        dense.apply_gradients([(tf.convert_to_tensor(grad), dense_w)])
    np.testing.assert_allclose(sparse_w.numpy(), dense_w.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(sparse_w.numpy()[[2, 3, 5]], table[[2, 3, 5]])
