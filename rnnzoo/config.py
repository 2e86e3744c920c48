"""Run configuration: the fields every task shares, as data, and the JSON round trip.

Each task (`rnnzoo.tasks`) owns a dataclass that extends `TrainConfig` with its own fields and
defaults. A field is declared with `field(default, help, choices=..., resumable=...)`: its help
becomes the flag's help (`train.py --helpfull`), its choices are checked by `validate()` and
become an enum flag, and `resumable` fields may change when a run is resumed (they do not change
what is being trained). `config.json` in a run directory is `to_json()` of the run's config, with
`task` and `model` (the zoo entry) recorded, so `export.py` rebuilds the model from it alone.

This module is pure Python (no TensorFlow): choice lists are passed in by the modules that own
them (cells, models, data, training) through the task configs.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, ClassVar

# Optimizers and learning-rate schedules of the shared training loop (`rnnzoo.training.optim`).
OPTIMIZERS = ("sgd", "adagrad", "adam")
LR_SCHEDULES = ("constant", "exponential", "linear")
# x lr_decay_rate whenever a report's validation loss is no better than the best before it:
# offered by tasks that report a validation loss (seq2seq), applied by the task's report.
PLATEAU = "plateau"
# Where training runs (`rnnzoo.training.distribute`).
DISTRIBUTES = ("auto", "one_device", "mirrored", "multi_worker")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the value."""


def field(default, help: str, *, choices=None, resumable: bool = False, minimum=None):
    """A config field: its default, its help text, the allowed values, whether resume may
    change it, and the smallest allowed value (ints and floats)."""
    metadata = {"help": help, "choices": tuple(choices) if choices else None,
                "resumable": resumable, "minimum": minimum}
    if isinstance(default, (list, tuple)):
        value = tuple(default)
        return dataclasses.field(default_factory=lambda: value, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class TrainConfig:
    """The fields every task shares: what is trained on, how long, how it is optimised.

    Training runs for `num_epochs` passes over the data, or for `train_steps` optimizer steps
    when that is positive; `pred_period` and `checkpoint_every` count epochs or steps to match.
    The learning rate at global step `s` (the optimizer's iteration count, which checkpoints
    keep, so a resumed run continues the schedule):

        constant:     lr
        exponential:  lr * lr_decay_rate ** floor(s / lr_decay_steps)    (staircase)
        linear:       e + (lr - e) * (1 - min(s, S) / S)    (e = lr * lr_min_fraction,
                      S = lr_decay_steps or all steps; word2vec.c's lr * max(1e-4, 1 - s / S)
                      to within e)
    """

    TASK: ClassVar[str] = ""

    task: str = field("", "The task of the zoo entry (set by --model / --preset).")
    model: str = field("", "The zoo entry (`rnnzoo.zoo.MODELS`).")
    corpus: str = field("", "TFDS name/config of the corpus.")
    seed: int = field(0, "Seeds weights, data order and sampling: same seed, same run.",
                      minimum=0)
    batch_size: int = field(32, "Examples per (global) batch.", minimum=1)
    optimizer: str = field("sgd", "Optimizer: sgd, adagrad or adam.", choices=OPTIMIZERS)
    lr: float = field(1.0, "Initial learning rate.")
    lr_schedule: str = field("constant", "Learning-rate schedule: constant, exponential "
                             "(staircase, x lr_decay_rate every lr_decay_steps) or linear "
                             "(to lr * lr_min_fraction).", choices=LR_SCHEDULES)
    lr_decay_steps: int = field(0, "exponential: steps between decays; linear: steps to reach "
                                "the final rate (0: the whole run).", minimum=0)
    lr_decay_rate: float = field(0.1, "exponential: factor applied every lr_decay_steps.")
    lr_min_fraction: float = field(1e-4, "linear: the final rate as a fraction of lr "
                                   "(word2vec.c: 1e-4).")
    clip_norm: float = field(0.0, "Global gradient-norm clip (0: no clipping).", minimum=0.0)
    num_epochs: int = field(1, "Passes over the training data (when train_steps is 0).",
                            resumable=True, minimum=1)
    train_steps: int = field(0, "Train for this many optimizer steps instead of num_epochs "
                             "(0: train by epochs).", resumable=True, minimum=0)
    pred_period: int = field(1, "Evaluate, report and checkpoint every this many epochs (or "
                             "steps, with train_steps).", resumable=True, minimum=1)
    checkpoint_every: int = field(10, "Also checkpoint every this many epochs (or steps).",
                                  resumable=True, minimum=1)
    keep_checkpoints: int = field(3, "Checkpoints kept on disk (oldest deleted first).",
                                  resumable=True, minimum=1)
    jit_compile: bool = field(False, "XLA-compile the training step.", resumable=True)
    distribute: str = field("auto", "Where training runs: one_device; mirrored (the local GPUs, "
                            "else the logical CPU devices); multi_worker (one process per worker, "
                            "the cluster from TF_CONFIG; only the chief writes the run "
                            "directory); auto: mirrored with several GPUs, else one_device. "
                            "batch_size is the global batch.", choices=DISTRIBUTES,
                            resumable=True)
    worker_timeout: float = field(0.0, "multi_worker: seconds a collective may wait for the "
                                  "other workers before the job stops (0: no limit; a dead "
                                  "worker is detected by TF's heartbeat anyway).",
                                  resumable=True, minimum=0.0)

    def __post_init__(self):
        if not self.task:
            self.task = self.TASK

    # ------------------------------------------------------------------------ checking

    def validate(self) -> TrainConfig:
        """Raises `ConfigError` naming the first invalid field; returns self."""
        if self.task != self.TASK:
            raise ConfigError(f"`task` must be {self.TASK!r} for {type(self).__name__}, "
                              f"got {self.task!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            _check_type(f, value)
            choices, minimum = f.metadata.get("choices"), f.metadata.get("minimum")
            if choices and value not in choices:
                raise ConfigError(f"`{f.name}` must be one of {list(choices)}, got {value!r}")
            if minimum is not None and not value >= minimum:
                raise ConfigError(f"`{f.name}` must be >= {minimum}, got {value!r}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError(f"`lr` must be a positive finite number, got {self.lr}")
        if not math.isfinite(self.clip_norm):
            raise ConfigError(f"`clip_norm` must be finite, got {self.clip_norm}")
        if self.lr_schedule == "exponential":
            if self.lr_decay_steps < 1:
                raise ConfigError("`lr_decay_steps` must be >= 1 with lr_schedule=exponential, "
                                  f"got {self.lr_decay_steps}")
            if not 0 < self.lr_decay_rate <= 1:
                raise ConfigError(f"`lr_decay_rate` must be in (0, 1], got {self.lr_decay_rate}")
        if not 0 <= self.lr_min_fraction <= 1:
            raise ConfigError(f"`lr_min_fraction` must be in [0, 1], got {self.lr_min_fraction}")
        return self

    @property
    def by_steps(self) -> bool:
        """True when the run is measured in optimizer steps (`train_steps > 0`), not epochs."""
        return self.train_steps > 0

    @classmethod
    def resumable_fields(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable"))

    # --------------------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """The config a dict describes; fields it lacks take their defaults (older files)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ConfigError(f"unknown config fields {unknown} for task {cls.TASK!r}; known "
                              f"fields: {sorted(fields)}")
        d = {k: tuple(v) if isinstance(v, list) and isinstance(_default(fields[k]), tuple) else v
             for k, v in d.items()}
        return cls(**d)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))


def upgrade_legacy(d: dict[str, Any]) -> dict[str, Any]:
    """A `config.json` written before the zoo had tasks is a character LM whose `model` field
    named the cell (`rnn`, `gru` or `lstm`, also the names of their zoo entries)."""
    if "task" in d:
        return d
    return {**d, "task": "char_lm", "cell": d.get("model", "lstm")}


def _default(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def _check_type(f: dataclasses.Field, value) -> None:
    expected = type(_default(f))
    ok = (isinstance(value, bool) if expected is bool
          else isinstance(value, int) and not isinstance(value, bool) if expected is int
          else isinstance(value, (int, float)) and not isinstance(value, bool)
          if expected is float else isinstance(value, expected))
    if not ok:
        raise ConfigError(f"`{f.name}` must be of type {expected.__name__}, got {value!r}")


__all__ = ["ConfigError", "DISTRIBUTES", "LR_SCHEDULES", "OPTIMIZERS", "PLATEAU", "TrainConfig",
           "field", "upgrade_legacy"]
