"""The zoo's conformance registry: every entry built tiny and trained by the real task code.

Each run goes through `rnnzoo.zoo.make_config` and the task's own `train` (the real `Trainer`,
`Checkpoints` and training loop), on a small text passed as data. A new model joins every
conformance and export test (training, checkpoint, resume, export, parity, contract, bad
inputs, quantization) with one line in `ZOO_ENTRIES`: a name, its zoo model, and the config
fields that differ from `TINY`.
"""

from __future__ import annotations

import dataclasses
import pathlib

import tensorflow as tf

from rnnzoo import zoo
from rnnzoo.data.char_data import CharData
from rnnzoo.data.vocab import Vocabulary
from rnnzoo.run_dir import RunDir
from rnnzoo.tasks import char_lm

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

ZOO_ENTRIES = {
    "rnn": ("rnn", {}),
    "gru": ("gru", {}),
    "gru_reset_before": ("gru", dict(reset_after=False)),
    "lstm": ("lstm", {}),
    "lstm_2layer": ("lstm", dict(num_layers=2)),
    "keras_lstm": ("lstm", dict(impl="keras")),
    "keras_gru": ("gru", dict(impl="keras")),
    "bigram_lstm": ("bigram_lstm", dict(embedding_dim=8, dropout=0.2)),
    # The course's path: an endless batch stream measured in steps, an lr schedule, Adam.
    "lstm_course_steps": ("lstm", dict(
        sampler="course", train_steps=20, pred_period=10,
        checkpoint_every=5, val_scoring="sequence", lr_schedule="exponential",
        lr_decay_steps=8, lr_decay_rate=0.5, init="course")),
}
EXPORT_MODELS = ZOO_ENTRIES  # the export tests' name for it

# ~30 characters, with the space, the newline and Chinese characters a vocabulary must carry.
TEXT = ("分开 不分开\n我想就这样牵着你的手不放开\n"
        "the time traveller, for so it will be convenient to speak of him\n") * 4
VAL_TEXT = "the time traveller 分开 of him\n" * 3
EPOCHS = 5

# Small enough for CI, large enough that greedy choices are not near-ties. init="keras" gives
# logits of order 1 after a few steps (d2l's N(0, 0.01) weights give ~1e-3 and ties).
TINY = dict(num_hiddens=24, init="keras", seed=7, corpus="tiny/test", num_steps=16,
            batch_size=4, lr=1.0, clip_norm=1.0, sampler="consecutive", train_steps=0,
            num_epochs=EPOCHS, pred_period=EPOCHS, checkpoint_every=1, pred_len=5,
            prefixes=("分开",), val_scoring="windows", lr_schedule="constant")


def tiny_config(name: str, **fields):
    """The config of registry entry `name`, with `fields` on top."""
    model, overrides = ZOO_ENTRIES[name]
    return zoo.make_config(model, **{**TINY, **overrides, **fields})


def tiny_data() -> CharData:
    vocab = Vocabulary.build(list(TEXT))
    return CharData(vocab=vocab, train_ids=vocab.encode(list(TEXT)),
                    val_ids=vocab.encode(list(VAL_TEXT)))


def train_tiny(path, name: str, *, resume: bool = False, **fields) -> char_lm.TrainResult:
    """Trains entry `name` into `path` with the task's own `train`; returns its result."""
    return char_lm.train(tiny_config(name, **fields), path, resume=resume, data=tiny_data(),
                         log=lambda *_: None)


def make_trained_run(path, name: str = "lstm", **fields):
    """`(run, model)`: a finished run directory and the model as training left it."""
    result = train_tiny(path, name, **fields)
    return result.run, result.model


def make_run(path, name: str = "lstm", **fields) -> RunDir:
    return make_trained_run(path, name, **fields)[0]


def last_report(run: RunDir) -> dict:
    """The last metrics record with a validation perplexity (what export records)."""
    return [r for r in run.read_metrics() if "val_perplexity" in r][-1]


def load_model(run: RunDir):
    """The model of `run`, rebuilt from the run directory alone (as export does)."""
    trained = char_lm.load_trained(run.path)
    return trained.model, trained.vocab


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
