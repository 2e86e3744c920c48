"""Word2Vec: the hidden vectors, the three losses against NumPy, the stateless sampler."""

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.models.word2vec import Word2Vec, sampling_probabilities

V, D, B = 50, 8, 16
COUNTS = np.random.default_rng(0).integers(1, 1000, V)


def _model(**kwargs):
    defaults = dict(vocab_size=V, embedding_dim=D, counts=COUNTS, num_sampled=5, seed=1)
    return Word2Vec(**{**defaults, **kwargs})


def _softplus(x):
    return np.logaddexp(0, x)


def test_skipgram_hidden_is_the_center_row_and_cbow_combines_the_masked_context():
    sg = _model()
    centers = tf.constant([3, 7, 3])
    np.testing.assert_array_equal(sg(centers).numpy(), sg.embeddings.numpy()[[3, 7, 3]])
    contexts = np.array([[1, 2, 4, 0], [5, 6, 0, 0]])
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])
    table = sg.embeddings.numpy()
    want_sum = np.stack([table[[1, 2, 4]].sum(0), table[[5, 6]].sum(0)])
    for combine, want in (("sum", want_sum), ("mean", want_sum / [[3], [2]])):
        cbow = _model(architecture="cbow", combine=combine)
        cbow.embeddings.assign(table)
        with tf.GradientTape() as tape:
            got = cbow((tf.constant(contexts), tf.constant(mask)))
            total = tf.reduce_sum(got)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
        # Either way each context word receives the whole gradient of h (word2vec.c).
        grad = tf.convert_to_tensor(tape.gradient(total, cbow.embeddings))
        np.testing.assert_allclose(grad.numpy()[[1, 2, 4, 5, 6, 0]].sum(1), [D] * 5 + [0])


def test_the_sampler_draws_counts_to_the_three_quarters_and_is_stateless():
    model = _model()
    probs = sampling_probabilities(V, "unigram", COUNTS)
    np.testing.assert_allclose(probs, COUNTS ** 0.75 / (COUNTS ** 0.75).sum())
    seed = tf.constant([4, 2])
    draws = model._candidates(200_000, seed).numpy()
    np.testing.assert_array_equal(draws, model._candidates(200_000, seed).numpy())
    assert not np.array_equal(draws[:100], model._candidates(100, tf.constant([4, 3])).numpy())
    freq = np.bincount(draws, minlength=V) / len(draws)
    np.testing.assert_allclose(freq, probs, atol=4 * np.sqrt(probs / len(draws)).max())
    zipf = sampling_probabilities(V, "log_uniform")
    np.testing.assert_allclose(zipf[:3] * np.log(V + 1), np.log([2, 1.5, 4 / 3]))


def test_negative_sampling_loss_is_word2vec_cs():
    model = _model(loss="negative", init="course")
    hidden = tf.constant(np.random.default_rng(1).normal(size=(B, D)), tf.float32)
    seed = tf.constant([0, 9])
    negatives = model._candidates(B * 5, seed).numpy().reshape(B, 5)
    labels = np.arange(B) % V
    labels[:2] = negatives[:2, 1]  # a negative equal to the label is skipped
    w, h = model.output_weights.numpy(), hidden.numpy()
    want = sum(_softplus(-w[labels[i]] @ h[i])
               + sum(_softplus(w[n] @ h[i]) for n in negatives[i] if n != labels[i])
               for i in range(B))
    labels = tf.constant(labels)
    np.testing.assert_allclose(model.sampled_loss(hidden, labels, seed).numpy(), want, rtol=1e-5)


@pytest.mark.parametrize("loss", ["sampled_softmax", "nce"])
def test_sampled_losses_use_the_drawn_classes_and_their_expected_counts(loss):
    model = _model(loss=loss, num_sampled=V - 1)
    hidden = tf.constant(np.random.default_rng(2).normal(size=(B, D)), tf.float32)
    labels = tf.constant(np.arange(B) % V)
    seed = tf.constant([1, 1])
    sampled = model._candidates(V - 1, seed)
    probs = model._probs
    fn = tf.nn.sampled_softmax_loss if loss == "sampled_softmax" else tf.nn.nce_loss
    want = fn(weights=model.output_weights, biases=model.output_biases,
              labels=tf.reshape(tf.cast(labels, tf.int64), [-1, 1]), inputs=hidden,
              num_sampled=V - 1, num_classes=V,
              sampled_values=(sampled, tf.cast((V - 1) * tf.gather(probs, labels)[:, None],
                                                tf.float32),
                              tf.cast((V - 1) * tf.gather(probs, sampled), tf.float32)))
    np.testing.assert_allclose(model.sampled_loss(hidden, labels, seed).numpy(),
                               tf.reduce_sum(want).numpy(), rtol=1e-5)


@pytest.mark.parametrize("loss", ["sampled_softmax", "nce", "negative"])
def test_gradients_are_sparse_rows(loss):
    model = _model(loss=loss)
    with tf.GradientTape() as tape:
        value = model.sampled_loss(model(tf.constant([1, 2, 2, 3])), tf.constant([4, 5, 6, 7]),
                           tf.constant([0, 0]))
    grads = tape.gradient(value, model.trainable_variables)
    assert isinstance(grads[0], tf.IndexedSlices)  # the word vectors: rows 1, 2, 3 only
    assert sorted(set(grads[0].indices.numpy().tolist())) == [1, 2, 3]


def test_word2vec_init_and_bad_arguments():
    model = _model(init="word2vec", embedding_dim=100)
    e = model.embeddings.numpy()
    assert e.max() <= 0.005 and e.min() >= -0.005 and not model.output_weights.numpy().any()
    with pytest.raises(ValueError, match="`loss` must be one of"):
        _model(loss="hinge")
    with pytest.raises(ValueError, match="`num_sampled` \\(50\\) must be smaller"):
        _model(loss="nce", num_sampled=50)
    with pytest.raises(ValueError, match="`counts` must give the 50 word counts"):
        _model(counts=[1, 2])
    with pytest.raises(ValueError, match="static batch size"):
        model = _model()
        tf.function(lambda h: model.sampled_loss(h, tf.zeros([1], tf.int64), tf.constant([0, 0])),
                    input_signature=[tf.TensorSpec([None, D])]).get_concrete_function()


def test_max_logit_stops_the_gradient_of_saturated_targets_but_not_the_loss():
    model = _model(loss="negative", init="course", max_logit=1.0)
    plain = _model(loss="negative", init="course")
    hidden = tf.constant(np.random.default_rng(3).normal(size=(B, D)) * 2, tf.float32)
    labels, seed = tf.constant(np.arange(B) % V), tf.constant([0, 4])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(hidden)
        capped, full = (m.sampled_loss(hidden, labels, seed) for m in (model, plain))
    np.testing.assert_allclose(capped.numpy(), full.numpy(), rtol=1e-6)
    w = model.output_weights.numpy()
    true_logits = np.sum(w[labels.numpy()] * hidden.numpy(), axis=1)
    grad = tape.gradient(capped, hidden).numpy()
    negatives = model._candidates(B * 5, seed).numpy().reshape(B, 5)
    for i in range(B):  # what gensim's loop adds to h's error, by hand
        want = np.zeros(D)
        for k, t in enumerate([labels.numpy()[i], *negatives[i]]):
            f = w[t] @ hidden.numpy()[i]
            if (k and t == labels.numpy()[i]) or abs(f) >= 1.0:
                continue
            want += (1 / (1 + np.exp(-f)) - (k == 0)) * w[t]
        np.testing.assert_allclose(grad[i], want, rtol=1e-4, atol=1e-5)
    assert (np.abs(true_logits) >= 1.0).any()  # some targets were skipped
