"""The zoo: every model and seed run by name, and the task that trains and exports it.

    python train.py --model=NAME      # an entry of MODELS
    python train.py --preset=NAME     # a seed run of PRESETS (it names its model)

An entry names its task and two sets of config values: `fixed` (what makes it that model, e.g.
the cell; a preset or flag that contradicts them is an error) and `defaults` (a starting point).
A config is built with this precedence, highest first:

    a flag given on the command line > the preset > the entry's defaults > the task's defaults

and `config.json` records `task` and `model`, so `export.py` and `--resume` find the task again
(a `config.json` without `task`, written before the zoo, is a character LM).

A new model joins the zoo with one line in MODELS (and its task, if new, one line in TASKS);
the conformance tests (`tests/zoo/`) then build, train, checkpoint, resume and export it.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any

from rnnzoo.config import ConfigError, TrainConfig
from rnnzoo.tasks import char_lm, seq2seq, word2vec

TASKS: dict[str, types.ModuleType] = {char_lm.TASK: char_lm, word2vec.TASK: word2vec,
                                      seq2seq.TASK: seq2seq}


@dataclasses.dataclass(frozen=True)
class Entry:
    task: str
    description: str
    fixed: dict[str, Any] = dataclasses.field(default_factory=dict)
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)


# The TensorFlow deep learning course's LSTM assignment (6_lstm.ipynb) on text8: its batch
# generator (64 cursors, 10 unrollings, state carried), 64 units, weights truncated_normal(-0.1,
# 0.1), SGD lr 10 x0.1 every 5,000 steps, global-norm clip 1.25, 7,001 steps, validation on the
# first 1,000 characters one at a time from a reset state every 100 steps, 80-character samples.
# Its "step 7000" is the 7,001st update, our final report.
_COURSE = dict(
    corpus="text8/prefix_course", sampler="course", batch_size=64, num_steps=10,
    num_hiddens=64, init="course", lr=10.0, lr_schedule="exponential", lr_decay_steps=5000,
    lr_decay_rate=0.1, clip_norm=1.25, train_steps=7001, pred_period=100,
    checkpoint_every=1000, val_scoring="sequence", pred_len=80,
    prefixes=("the ", "anarchism "))

MODELS: dict[str, Entry] = {
    "rnn": Entry("char_lm", "d2l's vanilla RNN, one-hot characters", fixed=dict(cell="rnn")),
    "gru": Entry("char_lm", "d2l's GRU, one-hot characters", fixed=dict(cell="gru")),
    "lstm": Entry("char_lm", "d2l's LSTM, one-hot characters", fixed=dict(cell="lstm")),
    "bigram_lstm": Entry(
        "char_lm", "the course's LSTM problem 2: embedded character bigrams, dropout",
        fixed=dict(cell="lstm", inputs="bigrams"),
        defaults=dict(_COURSE, embedding_dim=128, dropout=0.0)),
    "skipgram": Entry("word2vec", "word2vec skip-gram (the course's: sampled softmax, Adagrad)",
                      fixed=dict(architecture="skipgram")),
    "cbow": Entry("word2vec", "word2vec CBOW (the course's: summed context, sampled softmax)",
                  fixed=dict(architecture="cbow")),
    "seq2seq": Entry("seq2seq", "the course's word mirror: LSTM encoder-decoder, attention, "
                     "length buckets"),
}

# gensim's Word2Vec defaults on the same text: dimension 100, window 5, 5 negatives, sample
# 1e-3, min_count 5 (rarer words dropped), 5 epochs, alpha 0.025 (gensim 4 uses it for CBOW
# too; word2vec.c's CBOW default is 0.05) decayed linearly to min_alpha 0.0001. The fused
# update (rnnzoo.training.fused_word2vec) steps each example by lr / batch_size = alpha, as
# gensim does; a batch only sets how often the rate decays.
_GENSIM = dict(pairs="word2vec", embedding_dim=100, window=5, loss="negative", num_sampled=5,
               sampler="unigram", sample=1e-3, vocab_min_count=5, vocab_max_size=0,
               drop_unknown=True, init="gensim", max_logit=6.0, optimizer="sgd",
               lr_schedule="linear",
               lr_min_fraction=0.0001 / 0.025, train_steps=0, num_epochs=5, pred_period=1,
               checkpoint_every=1, batch_size=16384, lr=0.025 * 16384)

_TIME_MACHINE = dict(corpus="time_machine/d2l", sampler_edition=2,
                     prefixes=("time traveller", "traveller"))

# The seed runs: (model, overrides). `python train.py --model=lstm` alone is "d2l_zh_lstm".
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    # d2l-zh 6.4 / 6.5: the RNN from scratch on Jay Chou (250 epochs, a report every 50).
    "d2l_zh_rnn": ("rnn", dict(num_epochs=250, pred_period=50)),
    # d2l-zh 6.7: the GRU from scratch on Jay Chou. Its candidate is reset-after,
    # tanh(X W_xh + R * (H W_hh) + b_h) (`R * nd.dot(H, W_hh)` in d2l-zh's code); d2l's 2nd
    # edition uses the reset-before form, `reset_after=False`.
    "d2l_zh_gru": ("gru", {}),
    # d2l-zh 6.8: the LSTM from scratch on Jay Chou (the task's defaults).
    "d2l_zh_lstm": ("lstm", {}),
    # d2l 9.3: the 2-layer LSTM on The Time Machine (first 10,000 characters), lr 2, clip 1.
    "d2l_time_machine_lstm2": ("lstm", dict(
        num_layers=2, lr=2.0, clip_norm=1.0, num_epochs=500, pred_period=100, init="keras",
        **_TIME_MACHINE)),
    # The TensorFlow course's character LSTM on text8 (validation: its first 1,000 characters).
    "course_lstm": ("lstm", _COURSE),
    # The course's problem 2 at the course's size: bigrams embedded in 128, 64 units.
    "course_bigram_lstm": ("bigram_lstm", {}),
    # ... and larger: 512 units, dropout 0.4 on the LSTM's input and output, trained with Adam
    # (lr 0.002, x0.1 at step 5,000): with the course's SGD (lr 10, clip 1.25) a 512-unit LSTM
    # learns too slowly for the 7,001-step budget (validation perplexity 4.13, no better than
    # the 64-unit character LSTM).
    "course_bigram_lstm_large": ("bigram_lstm", dict(
        num_hiddens=512, dropout=0.4, optimizer="adam", lr=0.002)),
    # The course's word2vec (assignment 5): batch 128, vectors of 128, skip_window 1, num_skips
    # 2, sampled softmax with 64 samples, Adagrad 1.0, 100,001 steps, 50,000 words.
    "course_skipgram": ("skipgram", {}),
    "course_cbow": ("cbow", {}),
    "gensim_skipgram": ("skipgram", _GENSIM),
    "gensim_cbow": ("cbow", dict(_GENSIM, combine="mean")),
    # The course's seq2seq (6_lstm.ipynb, problem 3) as its public solutions built it with
    # TensorFlow's translate model: 4 layers of 256, one bucket (20, 21), SGD lr 1.0, clip 5,
    # x0.9 when the validation loss stops improving (the legacy translate schedule).
    "course_seq2seq": ("seq2seq", dict(
        num_layers=4, num_hiddens=256, embedding_dim=256, optimizer="sgd", lr=1.0,
        clip_norm=5.0, lr_schedule="plateau", lr_decay_rate=0.9, reverse_source=True,
        train_steps=20_000, pred_period=1000)),
}


def entry_of(model: str | None, preset: str | None) -> tuple[str, Entry]:
    """`(model name, entry)` chosen by `--model` and/or `--preset` (default: "lstm").

    With both, `--model` replaces the preset's model, which must then be of the same task.
    """
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"`preset` must be one of {sorted(PRESETS)}, got {preset!r}")
    if model is not None and model not in MODELS:
        raise ConfigError(f"`model` must be one of {sorted(MODELS)}, got {model!r}")
    name = model or (PRESETS[preset][0] if preset else "lstm")
    if preset is not None and MODELS[name].task != MODELS[PRESETS[preset][0]].task:
        raise ConfigError(f"--model={name} (task {MODELS[name].task}) cannot run --preset="
                          f"{preset}, a {MODELS[PRESETS[preset][0]].task} preset")
    return name, MODELS[name]


def task_of(name: str) -> types.ModuleType:
    if name not in TASKS:
        raise ConfigError(f"`task` must be one of {sorted(TASKS)}, got {name!r}")
    return TASKS[name]


def config_class(model: str | None = None, preset: str | None = None) -> type[TrainConfig]:
    return task_of(entry_of(model, preset)[1].task).Config


def base_values(model: str | None = None, preset: str | None = None) -> dict[str, Any]:
    """The config values before any flag: the entry's defaults, the preset, the fixed values."""
    name, entry = entry_of(model, preset)
    values = {**entry.defaults, **(PRESETS[preset][1] if preset else {})}
    _check_fixed(name, entry, values, "--preset=" + str(preset))
    return {**values, **entry.fixed, "model": name, "task": entry.task}


def make_config(model: str | None = None, preset: str | None = None, **flags) -> TrainConfig:
    """The validated config of `--model` / `--preset` with `flags` (explicit values) on top."""
    name, entry = entry_of(model, preset)
    _check_fixed(name, entry, flags, "the flags")
    values = {**base_values(model, preset), **flags}
    return task_of(entry.task).Config(**values).validate()


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    """A run's config from its `config.json` content (see `RunDir.read_config_dict`)."""
    return task_of(d.get("task", "")).Config.from_dict(d)


def export_run(workdir, *args, **kwargs):
    """Exports a run directory with its task's exporter (`rnnzoo.tasks.<task>.export_run`)."""
    from rnnzoo.run_dir import RunDir

    task = RunDir(workdir).read_config_dict().get("task", "")
    return task_of(task).export_run(workdir, *args, **kwargs)


def _check_fixed(name: str, entry: Entry, values: dict[str, Any], where: str) -> None:
    for key, fixed in entry.fixed.items():
        if key in values and values[key] != fixed:
            raise ConfigError(f"`{key}` is {fixed!r} for --model={name}, but {where} set it to "
                              f"{values[key]!r}; choose the model that has it instead")
