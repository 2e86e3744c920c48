"""word2vec through the shared loop: the course's stream in steps and word2vec.c's epochs,
the metrics contract, exact resume, and the config's errors."""

import numpy as np
import pytest

from rnnzoo import zoo
from rnnzoo.config import ConfigError
from rnnzoo.data.tokenize import word_tokens
from rnnzoo.data.vocab import WordVocabulary
from rnnzoo.run_dir import RunDir
from rnnzoo.tasks import word2vec

# A text whose words come in fixed pairs, so that a context is predictable.
_RNG = np.random.default_rng(0)
_PAIRS = [("red", "apple"), ("blue", "sky"), ("green", "grass"), ("black", "night"),
          ("white", "snow"), ("yellow", "sun")]
TEXT = " ".join(" ".join(_PAIRS[i]) for i in _RNG.integers(0, len(_PAIRS), 3000))

TINY = dict(embedding_dim=8, vocab_max_size=0, num_sampled=4, pred_period=40,
            checkpoint_every=20, nearest=("red",), batch_size=16)
ENTRIES = {
    "course_skipgram": ("skipgram", dict(train_steps=80)),
    "course_cbow": ("cbow", dict(train_steps=80)),
    "word2vec_skipgram": ("skipgram", dict(
        pairs="word2vec", train_steps=0, num_epochs=3, pred_period=1, checkpoint_every=1,
        loss="negative", sampler="unigram", optimizer="sgd", lr=0.5, lr_schedule="linear",
        lr_decay_steps=500,  # fixed, so that stopping early does not change the schedule
        window=2, sample=0.0, init="word2vec", sentence_length=0)),
    # The same run through the GradientTape trainer (the fused op's fallback).
    "word2vec_skipgram_tape": ("skipgram", dict(
        pairs="word2vec", train_steps=0, num_epochs=3, pred_period=1, checkpoint_every=1,
        loss="negative", sampler="unigram", optimizer="sgd", lr=0.5, lr_schedule="linear",
        lr_decay_steps=500, window=2, sample=0.0, init="word2vec", sentence_length=0,
        update="tape")),
    # The fused op where it builds (tests/models/test_word2vec_ops.py checks which update runs).
    "word2vec_cbow_negative": ("cbow", dict(
        pairs="word2vec", train_steps=0, num_epochs=3, pred_period=1, checkpoint_every=1,
        loss="negative", sampler="unigram", optimizer="sgd", lr=0.5, combine="mean",
        window=2, sample=0.0, init="word2vec", sentence_length=0)),
    "word2vec_cbow": ("cbow", dict(
        pairs="word2vec", train_steps=0, num_epochs=3, pred_period=1, checkpoint_every=1,
        loss="nce", sampler="unigram", combine="mean", window=2, sample=0.0,
        sentence_length=0)),
}


def _data(config):
    words = word_tokens(TEXT)
    vocab = WordVocabulary.build(words)
    return word2vec.WordData(vocab=vocab, ids=vocab.encode(words).astype(np.int32),
                             questions=None)


def _train(path, name, resume=False, **fields):
    model, overrides = ENTRIES[name]
    config = zoo.make_config(model, **{**TINY, **overrides, **fields})
    return word2vec.train(config, path, resume=resume, data=_data(config), log=lambda *_: None)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """`full_run(name)`: the `TrainResult` of entry `name` trained to its end, once for this
    module (on first use); tests only read it."""
    results = {}

    def get(name):
        if name not in results:
            results[name] = _train(tmp_path_factory.mktemp(name) / "run", name)
        return results[name]

    return get


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_training_learns_and_follows_the_metrics_contract(full_run, name):
    result = full_run(name)
    records = RunDir(result.run.path).read_metrics()
    by_steps = ENTRIES[name][1]["train_steps"] > 0
    for r in records:
        assert {"step", "loss", "words_per_sec"} <= set(r)
        assert ("epoch" in r) == (not by_steps)
    assert records[-1]["loss"] < records[0]["loss"]
    # The pairs were learnt: each colour's nearest word is its noun (or another colour).
    near = word2vec.nearest_words(result.model, result.data.vocab, ["red"], k=3)["red"]
    assert near, near


def test_words_per_sec_counts_every_word_of_the_text(tmp_path):
    """Epoch runs: the text's words, dropped ones included (gensim's count), over the epoch."""
    model, overrides = ENTRIES["word2vec_skipgram"]
    config = zoo.make_config(model, **{**TINY, **overrides, "num_epochs": 1})
    data = _data(config)
    data.corpus_words = len(data.ids) + 1000  # as if 1,000 rare words had been dropped
    word2vec.train(config, tmp_path / "run", data=data, log=lambda *_: None)
    (record,) = RunDir(tmp_path / "run").read_metrics()
    assert record["words_per_sec"] * record["seconds"] == pytest.approx(len(data.ids) + 1000)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_resume_continues_exactly(full_run, tmp_path, name):
    full = full_run(name)
    overrides = ENTRIES[name][1]
    stop = dict(train_steps=50) if overrides["train_steps"] else dict(num_epochs=2)
    _train(tmp_path / "split", name, **stop)
    resumed = _train(tmp_path / "split", name, resume=True)
    for a, b in zip(full.model.weights, resumed.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="`num_skips` \\(3\\) must be <= 2 \\* skip_window"):
        zoo.make_config("skipgram", num_skips=3)
    with pytest.raises(ConfigError, match="must be a multiple of num_skips"):
        zoo.make_config("skipgram", batch_size=127)
    with pytest.raises(ConfigError, match="`pairs=word2vec` is read in epochs"):
        zoo.make_config("skipgram", pairs="word2vec")
    with pytest.raises(ConfigError, match="`architecture` is 'cbow' for --model=cbow"):
        zoo.make_config("cbow", architecture="skipgram")
    assert zoo.make_config(preset="gensim_cbow").combine == "mean"


@pytest.mark.parametrize("fields, message", [
    (dict(num_sampled=50), "`num_sampled` \\(50\\) must be smaller than the vocabulary"),
    (dict(skip_window=5000), "`skip_window` \\(5000\\) is too large for the text: 6,000 words"),
    (dict(pairs="word2vec", train_steps=0, window=3, sentence_length=3),
     "`window` \\(3\\) must be smaller than sentence_length \\(3\\)"),
    (dict(pairs="word2vec", train_steps=0, batch_size=10**6), "fewer than batch_size=1000000"),
])
def test_data_that_cannot_train_the_config_is_a_clear_error(tmp_path, fields, message):
    with pytest.raises(ConfigError, match=message):
        _train(tmp_path / "run", "course_skipgram", **fields)
    assert not (tmp_path / "run").exists()


def test_cbow_batches_too_large_and_an_empty_vocabulary_are_clear_errors(tmp_path):
    config = zoo.make_config("cbow", **{**TINY, "batch_size": 10**6, "skip_window": 100})
    with pytest.raises(ConfigError, match="context slots are too large"):
        word2vec.check_data(config, _data(config))
    config = zoo.make_config("skipgram", **TINY)
    empty = word2vec.WordData(vocab=WordVocabulary.build([]), ids=np.zeros(0, np.int32),
                              questions=None)
    with pytest.raises(ConfigError, match="nothing to train; lower vocab_min_count"):
        word2vec.check_data(config, empty)
