"""benchmarks/seq2seq.py: its batches are word mirrors, and its Keras-layers model is the same
model as rnnzoo's (same parameter shapes)."""

import numpy as np
import pytest

seq2seq_bench = pytest.importorskip("seq2seq")  # benchmarks/seq2seq.py, on the path


def test_batches_are_mirrors_with_bos_and_eos():
    for src, dec, tgt in seq2seq_bench.batches(count=2):
        assert src.shape == (64, 20) and dec.shape == tgt.shape == (64, 21)
        for s, d, t in zip(src, dec, tgt):
            n = int((s != 0).sum())
            assert (s[:n] != 0).all() and (s[n:] == 0).all()
            np.testing.assert_array_equal(t[:n], s[:n][::-1])
            assert t[n] == 2 and d[0] == 1
            np.testing.assert_array_equal(d[1:n + 1], t[:n])


def test_keras_layers_model_has_rnnzoo_models_parameters():
    from rnnzoo.models.seq2seq import Seq2Seq

    b = seq2seq_bench
    ours = Seq2Seq(b.VOCAB, b.EMBED, b.HIDDEN, b.LAYERS, attention="luong", seed=0)
    keras_model = b.keras_layers_model()
    src, dec, _ = b.batches(count=1)[0]
    assert keras_model((src, dec)).shape == (64, 21, b.VOCAB)
    assert sorted(tuple(v.shape) for v in ours.trainable_variables) == sorted(
        tuple(v.shape) for v in keras_model.trainable_variables)
