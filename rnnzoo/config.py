"""Training configuration: one dataclass, named presets for the seed runs, JSON round trip.

`train.py` defines one absl flag per field (same name), so the config is the single source of
truth for what a run was: it is written to `<workdir>/config.json`, and `export.py` rebuilds the
model from that file alone.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

MODELS = ("rnn", "gru", "lstm")
IMPLS = ("rnnzoo", "keras")
INITS = ("d2l", "keras")
SAMPLERS = ("consecutive", "random")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the value."""


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a character-language-model training run.

    The defaults reproduce d2l-zh (1st ed.) section 6.8, the LSTM from scratch on the Jay Chou
    lyrics: hidden 256, 35 steps, batch 32, SGD with lr 100 and global-norm clipping at 0.01,
    consecutive sampling, 160 epochs, a report every 40 epochs.
    """

    # Model.
    model: str = "lstm"  # Recurrent cell: rnn, gru or lstm.
    impl: str = "rnnzoo"  # rnnzoo (cells written from scratch) or keras (keras.layers.*).
    num_layers: int = 1  # Stacked recurrent layers (a deep RNN when > 1).
    num_hiddens: int = 256  # Units per recurrent layer.
    embedding_dim: int = 0  # 0: one-hot input (as d2l); > 0: a learned embedding of that size.
    init: str = "d2l"  # d2l: N(0, 0.01) weights and zero biases; keras: Keras' initialisers.
    forget_bias: float = 0.0  # Initial LSTM forget-gate bias (d2l 0; Keras unit_forget_bias 1).
    reset_after: bool = True  # GRU: reset gate after the recurrent matmul (d2l-zh); False: before.
    # Data.
    corpus: str = "jaychou_lyrics/d2l_zh"  # TFDS name/config of the corpus.
    vocab_max_size: int = 0  # 0: keep every training character.
    vocab_min_count: int = 1  # Rarer characters map to <unk>.
    sampler: str = "consecutive"  # consecutive (state carries over) or random (state reset).
    sampler_edition: int = 1  # d2l-zh 1st edition (1) or d2l 2nd edition (2) samplers.
    batch_size: int = 32  # Sequences per batch.
    num_steps: int = 35  # Time steps per sequence (truncated backpropagation length).
    # Optimisation.
    lr: float = 100.0  # SGD learning rate on the mean per-token loss.
    clip_norm: float = 0.01  # Global gradient-norm clip (d2l's clipping_theta).
    num_epochs: int = 160  # Passes over the training text.
    jit_compile: bool = False  # XLA-compile the training step.
    # Reporting.
    pred_period: int = 40  # Report, sample and checkpoint every this many epochs.
    pred_len: int = 50  # Characters generated after each prefix.
    prefixes: tuple[str, ...] = ("分开", "不分开")  # Text to continue at each report (comma list).
    temperature: float = 0.0  # 0: greedy (as d2l); > 0: sample from softmax(logits / T).
    top_k: int = 0  # With temperature > 0, sample among the k likeliest characters (0: all).
    checkpoint_every: int = 10  # Also checkpoint every this many epochs.
    keep_checkpoints: int = 3  # Checkpoints kept on disk (oldest deleted first).
    seed: int = 0  # Seeds weights, sampling order and generation: same seed, same run.

    def validate(self) -> TrainConfig:
        """Raises `ConfigError` naming the first invalid field; returns self."""
        _one_of("model", self.model, MODELS)
        _one_of("impl", self.impl, IMPLS)
        _one_of("sampler", self.sampler, SAMPLERS)
        _one_of("init", self.init, INITS)
        _one_of("sampler_edition", self.sampler_edition, (1, 2))
        for name in ("num_layers", "num_hiddens", "batch_size", "num_steps", "num_epochs",
                     "pred_period", "checkpoint_every", "keep_checkpoints", "vocab_min_count"):
            _positive(name, getattr(self, name))
        for name in ("embedding_dim", "vocab_max_size", "pred_len", "top_k"):
            if getattr(self, name) < 0:
                raise ConfigError(f"`{name}` must be >= 0, got {getattr(self, name)}")
        if self.vocab_max_size == 1:
            raise ConfigError("`vocab_max_size` must be 0 (no limit) or >= 2, got 1")
        if not self.lr > 0:
            raise ConfigError(f"`lr` must be positive, got {self.lr}")
        if not self.clip_norm > 0:
            raise ConfigError(f"`clip_norm` must be positive, got {self.clip_norm}")
        if not self.temperature >= 0:
            raise ConfigError(
                f"`temperature` must be >= 0 (0 means greedy), got {self.temperature}")
        if any(not p for p in self.prefixes):
            raise ConfigError(f"`prefixes` must be non-empty strings, got {list(self.prefixes)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["prefixes"] = list(self.prefixes)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config fields {unknown}; known fields: {sorted(known)}")
        d = dict(d)
        if "prefixes" in d:
            d["prefixes"] = tuple(d["prefixes"])
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))


# Fields that may change when a run is resumed: they do not change what is being trained.
RESUMABLE_FIELDS = frozenset({
    "num_epochs", "pred_period", "pred_len", "prefixes", "temperature", "top_k",
    "checkpoint_every", "keep_checkpoints", "jit_compile",
})

_TIME_MACHINE = dict(corpus="time_machine/d2l", sampler_edition=2,
                     prefixes=("time traveller", "traveller"))

# The seed runs. `python train.py --model=lstm` alone is PRESETS["d2l_zh_lstm"].
PRESETS: dict[str, dict[str, Any]] = {
    # d2l-zh 6.4 / 6.5: the RNN from scratch on Jay Chou (250 epochs, a report every 50).
    "d2l_zh_rnn": dict(model="rnn", num_epochs=250, pred_period=50),
    # d2l-zh 6.7: the GRU from scratch on Jay Chou. Its candidate is reset-after,
    # tanh(X W_xh + R * (H W_hh) + b_h) (`R * nd.dot(H, W_hh)` in d2l-zh's code); d2l's 2nd
    # edition uses the reset-before form, `reset_after=False`.
    "d2l_zh_gru": dict(model="gru"),
    # d2l-zh 6.8: the LSTM from scratch on Jay Chou (the defaults).
    "d2l_zh_lstm": dict(model="lstm"),
    # d2l 9.3: the 2-layer LSTM on The Time Machine (first 10,000 characters), lr 2, clip 1.
    "d2l_time_machine_lstm2": dict(
        model="lstm", num_layers=2, lr=2.0, clip_norm=1.0, num_epochs=500, pred_period=100,
        init="keras", **_TIME_MACHINE),
}


def _one_of(name, value, choices):
    if value not in choices:
        raise ConfigError(f"`{name}` must be one of {list(choices)}, got {value!r}")


def _positive(name, value):
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"`{name}` must be a positive integer, got {value!r}")
