"""seq2seq through the shared loop: the metrics contract, exact resume, the plateau schedule, the
accuracy metrics against a hand count, and the config's errors."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from rnnzoo import zoo
from rnnzoo.config import ConfigError
from rnnzoo.data.seq2seq import COURSE_BUCKETS, LEGACY_BUCKETS
from rnnzoo.evaluation import decoding_accuracy
from rnnzoo.run_dir import RunDir
from rnnzoo.tasks import seq2seq
from rnnzoo.training.optim import PlateauDecay

_RNG = np.random.default_rng(0)
_WORDS = "the quick brown fox jumps over a lazy dog while seven bold kings ride home".split()
TRAIN_TEXT = " ".join(_RNG.choice(_WORDS, 3000))
VAL_TEXT = " ".join(_RNG.choice(_WORDS, 200))
TINY = dict(max_length=8, buckets="8:9", embedding_dim=8, num_hiddens=16, num_layers=1,
            batch_size=16, train_steps=12, pred_period=4, checkpoint_every=4, val_pairs=20,
            samples=("the fox",),
            lr_decay_steps=12)  # fixed, so that stopping early does not change the schedule


def _config(**fields):
    return zoo.make_config("seq2seq", **{**TINY, **fields})


def _train(path, resume=False, **fields):
    config = _config(**fields)
    data = seq2seq.make_data(config, TRAIN_TEXT, VAL_TEXT)
    lines = []
    result = seq2seq.train(config, path, resume=resume, data=data, log=lines.append)
    return result, lines


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One 12-step run with a report every 4 steps."""
    path = tmp_path_factory.mktemp("s2s") / "run"
    result, lines = _train(path)
    return path, result, lines


def test_records_follow_the_metrics_contract(finished):
    path, result, lines = finished
    records = RunDir(path).read_metrics()
    assert [r["step"] for r in records] == [4, 8, 12]
    for r in records:
        assert {"step", "loss", "train_perplexity", "val_perplexity", "val_char_accuracy",
                "val_sequence_accuracy", "tokens_per_sec", "lr"} <= set(r)
        assert r["train_perplexity"] == pytest.approx(math.exp(r["loss"]))
        assert 0 <= r["val_char_accuracy"] <= 1 and 0 <= r["val_sequence_accuracy"] <= 1
    assert records[-1]["loss"] < records[0]["loss"]
    # Decoded samples in the log and samples.txt: three validation pairs and config.samples.
    samples = (path / "samples.txt").read_text()
    assert "the fox -> " in samples
    assert sum(" -> " in line for line in lines) == 3 * 4


def test_validation_metrics_match_a_recount(finished):
    """val_perplexity = exp(total NLL / real target tokens) recomputed pair by pair in NumPy;
    the accuracies recounted from the decoded outputs."""
    path, result, _ = finished
    model, data = result.model, result.data
    config = RunDir(path).read_config(seq2seq.Seq2SeqConfig)
    metrics = seq2seq.evaluate_pairs(model, data.vocab, data.val_pairs, config)
    total = count = 0.0
    for source, target in data.val_pairs[:20]:
        src = data.vocab.encode(source)[None]
        tgt = data.vocab.encode(target)
        dec = np.concatenate([[1], tgt])[None].astype(np.int32)
        logits = model((tf.constant(src), tf.constant(dec))).numpy()[0]
        labels = np.concatenate([tgt, [2]])
        logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(
            1, keepdims=True)) - logits.max(1, keepdims=True)
        total -= logp[np.arange(len(labels)), labels].sum()
        count += len(labels)
    assert metrics["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-4)
    assert RunDir(path).read_metrics()[-1]["val_perplexity"] == pytest.approx(
        metrics["perplexity"], rel=1e-5)
    targets = [t for _, t in data.val_pairs]
    right = sum(o[i] == t[i] for o, t in zip(metrics["outputs"], targets)
                for i in range(min(len(o), len(t))))
    assert metrics["char_accuracy"] == pytest.approx(right / sum(map(len, targets)))
    assert metrics["sequence_accuracy"] == pytest.approx(
        np.mean([o == t for o, t in zip(metrics["outputs"], targets)]))


def test_decoding_accuracy_by_hand():
    result = decoding_accuracy(["eht", "xo", "godx"], ["eht", "xof", "god"])
    assert result["char_accuracy"] == pytest.approx((3 + 2 + 3) / 9)
    assert result["sequence_accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="2 outputs for 1 targets"):
        decoding_accuracy(["a", "b"], ["a"])


def test_resume_continues_exactly(tmp_path, finished):
    """Stopped at step 8 and resumed to 12: the weights of the uninterrupted run."""
    _train(tmp_path / "run", train_steps=8)
    resumed, _ = _train(tmp_path / "run", resume=True)
    for a, b in zip(resumed.model.weights, finished[1].model.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert [r["step"] for r in RunDir(tmp_path / "run").read_metrics()] == [4, 8, 12]


def test_plateau_decay_rule():
    v = tf.Variable([1.0])
    optimizer = keras.optimizers.SGD(1.0)
    optimizer.build([v])
    plateau = PlateauDecay(optimizer, 0.5)
    assert not plateau.update([3.0])          # one report: nothing to compare
    assert not plateau.update([3.0, 2.0])     # improved
    assert plateau.update([3.0, 2.0, 2.0])    # no better than the best: decay
    assert float(optimizer.learning_rate) == pytest.approx(0.5)
    assert plateau.update([3.0, 2.0, 2.0, 2.5])
    assert float(optimizer.learning_rate) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="`factor` must be in"):
        PlateauDecay(optimizer, 0.0)


def test_plateau_schedule_in_a_run_matches_the_records(tmp_path):
    """With lr_schedule=plateau the recorded rate falls by lr_decay_rate exactly after each
    report whose validation loss is no better than the best before it."""
    _train(tmp_path / "run", optimizer="sgd", lr=5.0, lr_schedule="plateau",
           lr_decay_rate=0.5, train_steps=16)
    records = RunDir(tmp_path / "run").read_metrics()
    lr, decays = 5.0, 0
    for k, r in enumerate(records):
        assert r["lr"] == pytest.approx(lr)
        previous = [q["val_perplexity"] for q in records[:k]]
        if previous and r["val_perplexity"] >= min(previous):
            lr, decays = lr * 0.5, decays + 1
    assert decays >= 1, [r["val_perplexity"] for r in records]  # the rule was exercised


@pytest.mark.parametrize("fields, message", [
    (dict(buckets="10:5,3:4"), "`buckets` must be 'course', 'legacy'"),
    (dict(buckets="abc"), "`buckets` must be 'course', 'legacy'"),
    (dict(max_length=30, buckets="course"), "`max_length` \\(30\\) does not fit"),
    (dict(attention="dot"), "`attention` must be one of"),
    (dict(lr_schedule="plateau", lr_decay_rate=1.5), "`lr_decay_rate` must be in"),
    (dict(samples=(" ",)), "`samples` must be non-blank"),
])
def test_bad_configs_are_config_errors(fields, message):
    with pytest.raises(ConfigError, match=message):
        _config(**fields)


def test_bucket_presets():
    assert seq2seq.parse_buckets("course") == COURSE_BUCKETS
    assert seq2seq.parse_buckets("legacy") == LEGACY_BUCKETS
    assert seq2seq.parse_buckets("5:6,10:11") == ((5, 6), (10, 11))


def test_text_without_a_fitting_span_is_a_config_error():
    config = _config()
    with pytest.raises(ConfigError, match="validation split .* no span"):
        seq2seq.make_data(config, TRAIN_TEXT, "extraordinarily longwordsonly")


def test_validation_pairs_come_from_the_validation_text_only():
    config = _config()
    data = seq2seq.make_data(config, "alpha beta gamma " * 50, VAL_TEXT)
    assert all(set(s.split()) <= set(_WORDS) for s, _ in data.val_pairs)
    assert len(data.val_pairs) == 20
