"""The zoo's configs and train.py's flags: entries, presets, precedence, --helpfull, bad flags."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from absl import flags

from rnnzoo import flags_util, zoo
from rnnzoo.config import ConfigError
from rnnzoo.tasks.char_lm import CharLMConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _train_py(*args, timeout=120):
    return subprocess.run([sys.executable, os.path.join(REPO, "train.py"), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def test_defaults_are_the_d2l_zh_lstm_seed_run():
    config = zoo.make_config("lstm")
    assert config == CharLMConfig() == zoo.make_config(preset="d2l_zh_lstm")
    assert (config.task, config.model, config.cell) == ("char_lm", "lstm", "lstm")
    assert (config.num_hiddens, config.num_steps, config.batch_size) == (256, 35, 32)
    assert (config.lr, config.clip_norm, config.sampler, config.num_epochs) == (
        100.0, 0.01, "consecutive", 160)
    assert (config.optimizer, config.lr_schedule, config.train_steps) == ("sgd", "constant", 0)
    assert config.prefixes == ("分开", "不分开") and config.pred_period == 40
    assert config.corpus == "jaychou_lyrics/d2l_zh"


def test_preset_then_explicit_flags_override():
    config = zoo.make_config(preset="d2l_time_machine_lstm2", num_epochs=7,
                             prefixes=("time", "machine"))
    assert config.num_layers == 2 and config.lr == 2.0 and config.clip_norm == 1.0
    assert config.corpus == "time_machine/d2l"
    assert config.num_epochs == 7 and config.prefixes == ("time", "machine")
    # --model replaces the preset's model (same task): the preset's settings stay.
    gru = zoo.make_config("gru", "d2l_time_machine_lstm2")
    assert (gru.model, gru.cell, gru.num_layers, gru.lr) == ("gru", "gru", 2, 2.0)


def test_the_course_presets_are_the_course_assignment():
    lstm = zoo.make_config(preset="course_lstm")
    assert (lstm.corpus, lstm.sampler, lstm.batch_size, lstm.num_steps) == (
        "text8/prefix_course", "course", 64, 10)
    assert (lstm.num_hiddens, lstm.init, lstm.cell, lstm.inputs) == (64, "course", "lstm",
                                                                       "chars")
    assert (lstm.lr, lstm.lr_schedule, lstm.lr_decay_steps, lstm.lr_decay_rate) == (
        10.0, "exponential", 5000, 0.1)
    assert (lstm.clip_norm, lstm.train_steps, lstm.pred_period, lstm.val_scoring) == (
        1.25, 7001, 100, "sequence")
    bigram = zoo.make_config(preset="course_bigram_lstm")
    assert (bigram.model, bigram.inputs, bigram.num_hiddens, bigram.dropout) == (
        "bigram_lstm", "bigrams", 64, 0.0)
    assert bigram.embedding_dim > 0 and bigram.train_steps == 7001
    large = zoo.make_config(preset="course_bigram_lstm_large")
    assert (large.num_hiddens, large.embedding_dim, large.dropout) == (512, 128, 0.4)
    assert zoo.make_config("bigram_lstm") == bigram


def test_every_model_and_preset_is_valid():
    for name in zoo.MODELS:
        assert zoo.make_config(name).model == name
    for name, (model, overrides) in zoo.PRESETS.items():
        config = zoo.make_config(preset=name)
        assert config.model == model
        fields = {f.name for f in dataclasses.fields(type(config))}
        assert set(overrides) <= fields, name


def test_an_entry_fixes_what_makes_it_that_model():
    with pytest.raises(ConfigError, match="`cell` is 'lstm' for --model=lstm, but the flags "
                                          "set it to 'gru'"):
        zoo.make_config("lstm", cell="gru")
    with pytest.raises(ConfigError, match="`inputs` is 'bigrams' for --model=bigram_lstm"):
        zoo.make_config("bigram_lstm", inputs="chars")
    with pytest.raises(ConfigError, match="`model` must be one of"):
        zoo.make_config("transformer")
    with pytest.raises(ConfigError, match="`preset` must be one of"):
        zoo.make_config(preset="nope")


def test_config_json_round_trip_unknown_fields_and_older_files():
    config = zoo.make_config("gru", prefixes=("a\nb", " "))
    assert CharLMConfig.from_json(config.to_json()) == config
    assert zoo.config_from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ConfigError, match="unknown config fields \\['colour'\\]"):
        CharLMConfig.from_dict({**config.to_dict(), "colour": "red"})
    # A config.json written before the zoo: no task, `model` named the cell.
    from rnnzoo.config import upgrade_legacy
    old = {k: v for k, v in config.to_dict().items()
           if k not in ("task", "cell", "inputs", "dropout", "optimizer", "lr_schedule",
                        "lr_decay_steps", "lr_decay_rate", "lr_min_fraction", "train_steps",
                        "val_scoring")}
    assert zoo.config_from_dict(upgrade_legacy(old)) == config


def test_config_rejects_wrong_types_and_values():
    with pytest.raises(ConfigError, match="`num_hiddens` must be of type int, got '8'"):
        CharLMConfig(num_hiddens="8").validate()
    with pytest.raises(ConfigError, match="`optimizer` must be one of"):
        CharLMConfig(optimizer="rmsprop").validate()
    with pytest.raises(ConfigError, match="`lr_decay_steps` must be >= 1"):
        CharLMConfig(lr_schedule="exponential").validate()
    with pytest.raises(ConfigError, match="`sampler=course` is an endless stream"):
        CharLMConfig(sampler="course").validate()
    with pytest.raises(ConfigError, match="`temperature` must be a finite number"):
        CharLMConfig(temperature=float("inf")).validate()
    with pytest.raises(ConfigError, match="needs an embedding"):
        CharLMConfig(inputs="bigrams").validate()


@pytest.mark.parametrize("temperature", [0.0, -0.0, 1e-30, 0.8, 1e30, float("inf"),
                                         float("-inf"), float("nan"), -1.0])
def test_temperature_has_one_rule_for_training_and_generation(temperature):
    """train.py's --temperature (samples at each report) and generation's follow one rule: a
    finite number >= 0 (issue 13 item 11)."""
    from rnnzoo.generate import GenerateError, check_request

    def accepted(check, error):
        try:
            check()
        except error as e:
            assert "`temperature` must be a finite number >= 0" in str(e)
            return False
        return True

    trains = accepted(lambda: CharLMConfig(temperature=temperature).validate(), ConfigError)
    generates = accepted(lambda: check_request(["a"], 1, temperature), GenerateError)
    assert trains == generates == (temperature >= 0 and temperature != float("inf"))


def test_flags_are_the_task_fields_with_the_presets_values_as_defaults():
    fv = flags.FlagValues()
    flags_util.define_config_flags(CharLMConfig, zoo.base_values(preset="course_lstm"), fv)
    fv(["train.py", "--num_hiddens=32"])
    assert fv["lr"].default == 10.0 and fv["sampler"].default == "course"
    assert flags_util.explicit_values(CharLMConfig, fv) == {"num_hiddens": 32}
    assert "task" not in fv and "model" not in fv


def test_peek_reads_model_and_preset_before_parsing():
    argv = ["train.py", "--model", "gru", "--preset=course_lstm", "--", "--model=x"]
    assert flags_util.peek(argv, "model") == "gru"
    assert flags_util.peek(argv, "preset") == "course_lstm"
    assert flags_util.peek(argv, "seed") is None


@pytest.mark.slow
def test_helpfull_documents_every_field():
    """(Bad flags, an unknown one and one the model fixes, are rows of
    tests/test_cli_bad_inputs.py: train-unknown-flag, train-model-cell-conflict.)"""
    out = _train_py("--helpfull").stdout
    for field in dataclasses.fields(CharLMConfig):
        if field.name not in flags_util.NOT_FLAGS:
            assert f"--{field.name}" in out or f"--[no]{field.name}" in out, field.name
    assert "Global gradient-norm clip" in out and "--model" in out and "--preset" in out
    course = _train_py("--preset=course_lstm", "--helpfull").stdout
    assert "(default: 'course')" in course  # the preset's sampler is the shown default
