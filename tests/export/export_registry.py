"""Every model the zoo exports, built tiny, trained a few steps, checkpointed as training does.

A new model joins every export test (parity, contract, bad inputs, quantization) with one line in
`EXPORT_MODELS`: its name and the `TrainConfig` fields that differ from `TINY`.
"""

from __future__ import annotations

import dataclasses
import pathlib

import keras
import numpy as np
import tensorflow as tf

from rnnzoo.config import TrainConfig
from rnnzoo.data.vocab import Vocabulary
from rnnzoo.export.exporter import restore_model
from rnnzoo.models import char_lm_from_config
from rnnzoo.run_dir import RunDir

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

EXPORT_MODELS = {
    "rnn": dict(model="rnn"),
    "gru": dict(model="gru"),
    "gru_reset_before": dict(model="gru", reset_after=False),
    "lstm": dict(model="lstm"),
    "lstm_2layer": dict(model="lstm", num_layers=2),
    "keras_lstm": dict(model="lstm", impl="keras"),
    "keras_gru": dict(model="gru", impl="keras"),
}

# Small enough for CI, large enough that greedy choices are not near-ties. init="keras" gives
# logits of order 1 after a few steps (d2l's N(0, 0.01) weights give ~1e-3 and ties).
TINY = dict(num_hiddens=24, init="keras", seed=7, corpus="tiny/test", num_steps=16,
            batch_size=4)

# ~30 characters, with the space, the newline and Chinese characters a vocabulary must carry.
TEXT = ("分开 不分开\n我想就这样牵着你的手不放开\n"
        "the time traveller, for so it will be convenient to speak of him\n") * 4
EPOCH = 5
VAL_PERPLEXITY = 17.25


def make_run(path, **fields) -> RunDir:
    """A run directory like training's: config, vocabulary, metrics, one checkpoint."""
    return make_trained_run(path, **fields)[0]


def make_trained_run(path, **fields):
    """`(run, model)`: `make_run`'s directory and the trained model it checkpointed."""
    run = RunDir(pathlib.Path(path))
    config = TrainConfig(**{**TINY, **fields}).validate()
    vocab = Vocabulary.build(list(TEXT))
    run.start(config, vocab, resume=False)
    model = char_lm_from_config(config, len(vocab))
    optimizer = keras.optimizers.SGD(learning_rate=1.0)
    _train_a_little(model, optimizer, vocab.encode(TEXT), config)
    epoch = tf.Variable(EPOCH, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = run.checkpoint(model, optimizer=optimizer, epoch=epoch)
    tf.train.CheckpointManager(checkpoint, str(run.checkpoint_dir), max_to_keep=3,
                               checkpoint_name="ckpt").save(checkpoint_number=EPOCH)
    run.append_metrics({"epoch": EPOCH - 1, "train_perplexity": 20.0})
    run.append_metrics({"epoch": EPOCH, "train_perplexity": 18.0,
                        "val_perplexity": VAL_PERPLEXITY})
    return run, model


def _train_a_little(model, optimizer, ids, config, steps=8):
    window = config.num_steps
    starts = np.arange(config.batch_size) * window
    x = tf.constant(np.stack([ids[s:s + window] for s in starts]))
    y = tf.constant(np.stack([ids[s + 1:s + window + 1] for s in starts]))
    for _ in range(steps):
        with tf.GradientTape() as tape:
            logits, _ = model(x)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))


def load_model(run: RunDir):
    """The model of `run`, rebuilt from the run directory alone (as export does)."""
    config = run.read_config()
    vocab = run.read_vocab()
    model = char_lm_from_config(config, len(vocab))
    restore_model(run, model, run.latest_checkpoint())
    return model, vocab


@dataclasses.dataclass
class Exported:
    name: str
    run: RunDir
    path: pathlib.Path  # the export directory
    model: object  # the Keras model as training left it (in memory, never reloaded)
    restored: object  # the same model rebuilt from the run directory alone
    vocab: Vocabulary
    saved_model: object = None  # loaded on first use

    @property
    def saved_model_dir(self) -> pathlib.Path:
        return self.path / "saved_model"

    @property
    def tflite_path(self) -> pathlib.Path:
        return self.path / "model.tflite"

    def loaded(self):
        if self.saved_model is None:
            self.saved_model = tf.saved_model.load(str(self.saved_model_dir))
        return self.saved_model
