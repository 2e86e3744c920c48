"""Tiny training jobs for the tf.distribute tests, run in this process or as a worker process.

    python distribute_job.py '<spec JSON>'

spec: `logical_cpus` (split the CPU into that many devices before TensorFlow starts, for
MirroredStrategy), `tf_config` (set as TF_CONFIG), `jobs`: a list of `{"task", "workdir",
"fields", "resume", "weights"}`, each trained in turn by the task's real `train()` and its final
trainable weights saved to `weights` (an .npz outside the run directory). Prints `error: ...`
and exits 3 on `WorkerLost`.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

# A character LM whose text has structure, and a word2vec text whose words come in pairs.
CHAR_TEXT = "the time traveller smiled. we sat and watched him. " * 8
_RNG = np.random.default_rng(0)
_PAIRS = [("red", "apple"), ("blue", "sky"), ("green", "grass"), ("black", "night")]
WORD_TEXT = " ".join(" ".join(_PAIRS[i]) for i in _RNG.integers(0, len(_PAIRS), 150))

# Clipping active (the global norm is above clip_norm), state carried across batches.
CHAR_LM = dict(model="lstm", corpus="synthetic", cell="lstm", num_hiddens=16, init="keras",
               batch_size=4, num_steps=6, sampler="consecutive", lr=2.0, clip_norm=0.5,
               num_epochs=2, pred_period=1, checkpoint_every=1, pred_len=5,
               prefixes=("the",))
# word2vec.c's pairs with negative sampling, through the tape trainer.
WORD2VEC = dict(model="skipgram", corpus="synthetic", pairs="word2vec", train_steps=0,
                num_epochs=2, pred_period=1, checkpoint_every=1, loss="negative",
                sampler="unigram", optimizer="sgd", lr=0.5, window=2, sample=0.0,
                init="gensim", sentence_length=0, update="tape", embedding_dim=8,
                vocab_max_size=0, num_sampled=3, batch_size=16, nearest=("red",))

# The word mirror on the word text: clipping active, a constant rate (no plateau decisions).
SEQ2SEQ = dict(model="seq2seq", corpus="synthetic", max_length=8, buckets="8:9",
               embedding_dim=8, num_hiddens=16, num_layers=1, batch_size=8, train_steps=4,
               pred_period=4, checkpoint_every=2, val_pairs=10, samples=("red sky",),
               optimizer="sgd", lr=1.0, lr_schedule="constant", clip_norm=0.5)


def pair_data(config):
    from rnnzoo.tasks import seq2seq

    return seq2seq.make_data(config, WORD_TEXT, WORD_TEXT[:300])


def char_data():
    from rnnzoo.data.char_data import CharData
    from rnnzoo.data.vocab import Vocabulary

    vocab = Vocabulary.build(list(CHAR_TEXT))
    ids = vocab.encode(list(CHAR_TEXT))
    return CharData(vocab=vocab, train_ids=ids[:260], val_ids=ids[260:])


def word_data():
    from rnnzoo.data.tokenize import word_tokens
    from rnnzoo.data.vocab import WordVocabulary
    from rnnzoo.tasks import word2vec

    words = word_tokens(WORD_TEXT)
    vocab = WordVocabulary.build(words)
    return word2vec.WordData(vocab=vocab, ids=vocab.encode(words).astype(np.int32),
                             questions=None)


def train(task: str, workdir, fields: dict, *, resume: bool = False, log=lambda line: None):
    """Trains the tiny `task` ("char_lm", "word2vec" or "seq2seq") with `fields` over its
    defaults."""
    from rnnzoo import zoo
    from rnnzoo.tasks import char_lm, seq2seq, word2vec

    base, module, data = {"char_lm": (CHAR_LM, char_lm, lambda c: char_data()),
                          "word2vec": (WORD2VEC, word2vec, lambda c: word_data()),
                          "seq2seq": (SEQ2SEQ, seq2seq, pair_data)}[task]
    config = zoo.make_config(**{**base, **fields})
    return module.train(config, workdir, resume=resume, data=data(config), log=log)


def weights(model) -> list[np.ndarray]:
    return [np.asarray(v.numpy()) for v in model.trainable_variables]


def main(spec: dict) -> None:
    if spec.get("tf_config"):
        os.environ["TF_CONFIG"] = json.dumps(spec["tf_config"])
    if spec.get("logical_cpus"):
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * spec["logical_cpus"])
    from rnnzoo.training.distribute import WorkerLost

    for job in spec["jobs"]:
        try:
            result = train(job["task"], job["workdir"], job.get("fields", {}),
                           resume=job.get("resume", False), log=print)
        except WorkerLost as e:
            print(f"error: {e}", flush=True)
            sys.exit(3)
        np.savez(job["weights"], *weights(result.model))
        print(f"trained {job['task']}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    main(json.loads(sys.argv[1]))
