"""The fused word2vec op (rnnzoo/ops/word2vec_kernels.cc) against a NumPy word2vec.c loop, its
sampler, its errors, its build and cache, and the trainer that wraps it."""

import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo import ops, zoo
from rnnzoo.config import ConfigError
from rnnzoo.models.word2vec import Word2Vec
from rnnzoo.tasks import word2vec as w2v_task
from rnnzoo.training import fused_word2vec

V, D, K = 40, 16, 5
RNG = np.random.default_rng(0)
COUNTS = RNG.integers(1, 1000, V)


@pytest.fixture(scope="module")
def library():
    if os.environ.get(ops.ENV_SWITCH, "").lower() == "off":
        pytest.skip("the C++ ops are switched off ($RNNZOO_OPS=off)")
    if ops._compiler() is None:
        pytest.skip("no C++ compiler: word2vec trains on its pure-TensorFlow path here")
    return ops.load_word2vec_ops(required=True)  # with a compiler, a failed build fails


def _cdf():
    probs = COUNTS ** 0.75 / (COUNTS ** 0.75).sum()
    cdf = np.cumsum(probs)
    cdf[-1] = 1.0
    return probs, cdf


def _word2vec_c(e, w, inputs, mask, labels, negatives, lr, mean, max_logit=0.0):
    """word2vec.c's negative-sampling loop in float64 NumPy (with gensim's skip of saturated
    targets when `max_logit` > 0): -> (E, W, summed loss)."""
    e, w = e.astype(np.float64), w.astype(np.float64)
    loss = 0.0
    for i in range(len(labels)):
        words = inputs[i][mask[i]]
        if not len(words):
            continue
        h = e[words].sum(0) / (len(words) if mean else 1)
        err = np.zeros_like(h)
        for k, t in enumerate([labels[i], *negatives[i]]):
            if k and t == labels[i]:
                continue
            f = w[t] @ h
            loss += np.logaddexp(0, -f if k == 0 else f)
            if max_logit and abs(f) >= max_logit:
                continue
            g = ((k == 0) - 1 / (1 + np.exp(-f))) * lr
            err += g * w[t]
            w[t] += g * h
        for word in words:
            e[word] += err
    return e, w, loss


def _run(library, e, w, inputs, mask, labels, *, lr=0.1, mean=False, seed=(3, 7), threads=1,
         max_logit=0.0):
    E, W = tf.Variable(e), tf.Variable(w)
    loss, negatives = library.rnnzoo_word2vec_negative_sgd(
        E.handle, W.handle, inputs, mask, labels, _cdf()[1], list(seed), lr, num_negatives=K,
        mean=mean, num_threads=threads, max_logit=max_logit)
    return E.numpy(), W.numpy(), float(loss), negatives.numpy()


@pytest.mark.parametrize("mean, max_logit", [(False, 0.0), (True, 0.0), (False, 1.0)])
def test_the_op_is_word2vecs_per_example_loop(library, mean, max_logit):
    B, C = 60, 4
    e = RNG.uniform(-0.5, 0.5, (V, D)).astype(np.float32)
    w = RNG.normal(0, 0.3, (V, D)).astype(np.float32)
    inputs = RNG.integers(0, V, (B, C)).astype(np.int32)  # words repeat across and within rows
    mask = RNG.random((B, C)) < 0.7
    mask[0] = False  # a row without context is skipped
    labels = RNG.integers(0, V, B).astype(np.int32)
    got_e, got_w, got_loss, negatives = _run(library, e, w, inputs, mask, labels, mean=mean,
                                             max_logit=max_logit)
    assert (negatives == labels[:, None]).any()  # the skip of a negative equal to the label
    want_e, want_w, want_loss = _word2vec_c(e, w, inputs, mask, labels, negatives, 0.1, mean,
                                            max_logit)
    np.testing.assert_allclose(got_e, want_e, atol=2e-5)
    np.testing.assert_allclose(got_w, want_w, atol=2e-5)
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5)
    assert not np.allclose(got_e, e) and not np.allclose(got_w, w)


def test_negatives_follow_counts_to_the_three_quarters_and_the_seed(library):
    B = 4000
    e, w = np.zeros((V, D), np.float32), np.zeros((V, D), np.float32)
    inputs, mask = np.zeros((B, 1), np.int32), np.ones((B, 1), bool)
    labels = np.zeros(B, np.int32)
    *_, a = _run(library, e, w, inputs, mask, labels, seed=(1, 2))
    *_, b = _run(library, e, w, inputs, mask, labels, seed=(1, 2))
    *_, c = _run(library, e, w, inputs, mask, labels, seed=(1, 3))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    probs, _ = _cdf()
    freq = np.bincount(a.ravel(), minlength=V) / a.size
    np.testing.assert_allclose(freq, probs, atol=5 * np.sqrt(probs.max() / a.size))


def test_threads_split_the_batch_and_still_learn(library):
    B = 512
    e = RNG.uniform(-0.5, 0.5, (V, D)).astype(np.float32)
    w = np.zeros((V, D), np.float32)
    inputs = RNG.integers(0, V, (B, 1)).astype(np.int32)
    labels = (inputs[:, 0] + 1) % V  # each word predicts the next id
    mask = np.ones((B, 1), bool)
    E, W = tf.Variable(e), tf.Variable(w)
    losses = [float(library.rnnzoo_word2vec_negative_sgd(
        E.handle, W.handle, inputs, mask, labels, _cdf()[1], [0, step], 0.05, num_negatives=K,
        num_threads=2)[0]) for step in range(30)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_a_value_read_before_the_update_keeps_its_value(library):
    E, W = tf.Variable(np.ones((V, D), np.float32)), tf.Variable(np.ones((V, D), np.float32))
    before = E.read_value()
    library.rnnzoo_word2vec_negative_sgd(E.handle, W.handle, [[1]], [[True]], [2], _cdf()[1],
                                         [0, 0], 0.5, num_negatives=K)
    assert np.all(before.numpy() == 1.0) and not np.all(E.numpy() == 1.0)


def test_bad_ids_and_shapes_are_clear_errors_and_change_nothing(library):
    E, W = tf.Variable(np.ones((V, D), np.float32)), tf.Variable(np.ones((V, D), np.float32))
    call = library.rnnzoo_word2vec_negative_sgd
    with pytest.raises(tf.errors.InvalidArgumentError, match="inputs holds id 40, outside"):
        call(E.handle, W.handle, [[40]], [[True]], [2], _cdf()[1], [0, 0], 0.1, num_negatives=K)
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels holds id -1, outside"):
        call(E.handle, W.handle, [[1]], [[True]], [-1], _cdf()[1], [0, 0], 0.1, num_negatives=K)
    with pytest.raises(tf.errors.InvalidArgumentError, match="cdf must be \\[40\\]"):
        call(E.handle, W.handle, [[1]], [[True]], [2], [1.0], [0, 0], 0.1, num_negatives=K)
    with pytest.raises(tf.errors.InvalidArgumentError, match="two variables"):
        call(E.handle, E.handle, [[1]], [[True]], [2], _cdf()[1], [0, 0], 0.1, num_negatives=K)
    assert np.all(E.numpy() == 1.0) and np.all(W.numpy() == 1.0)


def _model(**kwargs):
    return Word2Vec(V, D, loss="negative", num_sampled=K, counts=COUNTS, sampler="unigram",
                    init="course", seed=1, **kwargs)


def test_the_trainer_steps_each_example_by_lr_over_batch_and_counts_steps(library):
    import keras
    model = _model()
    e0, w0 = model.embeddings.numpy(), model.output_weights.numpy()
    optimizer = keras.optimizers.SGD(learning_rate=0.8)
    trainer = fused_word2vec.FusedWord2VecTrainer(model, optimizer, library, seed=5)
    centers = RNG.integers(0, V, 8).astype(np.int32)
    contexts = RNG.integers(0, V, (8, 1)).astype(np.int32)
    loss, count, _, carry = trainer.train_step((centers, contexts), ())
    assert int(optimizer.iterations.numpy()) == 1 and float(count) == 8 and carry == ()
    # The same call on the op directly, with seed [5, 0] and lr 0.8 / 8.
    want_e, want_w, want_loss, _ = _run(library, e0, w0, centers[:, None],
                                        np.ones((8, 1), bool), contexts[:, 0], lr=0.1,
                                        seed=(5, 0))
    np.testing.assert_allclose(model.embeddings.numpy(), want_e, atol=1e-6)
    np.testing.assert_allclose(model.output_weights.numpy(), want_w, atol=1e-6)
    np.testing.assert_allclose(float(loss), want_loss, rtol=1e-6)


def test_update_choice_falls_back_or_fails_clearly(library, monkeypatch):
    import keras
    logs = []
    config = zoo.make_config(preset="gensim_skipgram", batch_size=16, lr=0.4)
    model = w2v_task.Word2Vec(V, D, loss="negative", num_sampled=K, counts=COUNTS,
                              sampler="unigram")
    trainer = w2v_task.make_trainer(config, model, keras.optimizers.SGD(0.1), log=logs.append)
    assert isinstance(trainer, fused_word2vec.FusedWord2VecTrainer), logs
    nce = zoo.make_config(preset="gensim_skipgram", loss="nce", update="fused")
    with pytest.raises(ConfigError, match="`update=fused` does not support the nce loss"):
        w2v_task.make_trainer(nce, Word2Vec(V, D, loss="nce", num_sampled=K, counts=COUNTS),
                              keras.optimizers.SGD(0.1), log=logs.append)
    monkeypatch.setenv(ops.ENV_SWITCH, "off")
    trainer = w2v_task.make_trainer(config, _model(), keras.optimizers.SGD(0.1),
                                    log=logs.append)
    assert not isinstance(trainer, fused_word2vec.FusedWord2VecTrainer)
    assert "not fused: this machine: the C++ op is unavailable ($RNNZOO_OPS is 'off')" in logs[-1]
    fused = zoo.make_config(preset="gensim_skipgram", update="fused")
    with pytest.raises(ConfigError, match="C\\+\\+ op is unavailable"):
        w2v_task.make_trainer(fused, _model(), keras.optimizers.SGD(0.1), log=logs.append)


def test_the_build_is_cached_and_a_failed_build_says_why(library, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNZOO_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "src").mkdir()
    good = tmp_path / "src" / "tiny.cc"
    good.write_text('#include "tensorflow/core/framework/op.h"\n'
                    'REGISTER_OP("RnnzooTestTiny").Output("x: float");\n')
    monkeypatch.setattr(ops, "SOURCE_DIR", tmp_path / "src")
    path = ops.build("tiny.cc")
    assert path.is_file() and path.parent == tmp_path / "cache" / "ops"
    stamp = path.stat().st_mtime_ns
    assert ops.build("tiny.cc") == path and path.stat().st_mtime_ns == stamp  # not rebuilt
    (tmp_path / "src" / "broken.cc").write_text("this is not C++\n")
    with pytest.raises(ops.OpsUnavailable, match="compiling broken.cc failed"):
        ops.build("broken.cc")
    assert sorted(p.name for p in (tmp_path / "cache" / "ops").iterdir()) == [path.name]
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(ops.shutil, "which", lambda name: None)
    with pytest.raises(ops.OpsUnavailable, match="no C\\+\\+ compiler found"):
        ops.build("broken.cc")
    assert pathlib.Path(path).is_file()
