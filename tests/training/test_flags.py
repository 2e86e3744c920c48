"""train.py's flags: one per config field, presets, overrides, --helpfull."""

import dataclasses
import os
import subprocess
import sys

import pytest
from absl import flags

from rnnzoo import flags_util
from rnnzoo.config import PRESETS, ConfigError, TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture()
def flag_values():
    fv = flags.FlagValues()
    flags_util.define_config_flags(fv)
    return fv


def test_defaults_are_the_d2l_zh_lstm_seed_run(flag_values):
    flag_values(["train.py"])
    config = flags_util.config_from_flags(None, flag_values)
    assert config == TrainConfig()
    assert (config.model, config.num_hiddens, config.num_steps, config.batch_size) == (
        "lstm", 256, 35, 32)
    assert (config.lr, config.clip_norm, config.sampler, config.num_epochs) == (
        100.0, 0.01, "consecutive", 160)
    assert config.prefixes == ("分开", "不分开") and config.pred_period == 40
    assert config.corpus == "jaychou_lyrics/d2l_zh"


def test_preset_then_explicit_flags_override(flag_values):
    flag_values(["train.py", "--num_epochs=7", "--prefixes=time,machine"])
    config = flags_util.config_from_flags("d2l_time_machine_lstm2", flag_values)
    assert config.num_layers == 2 and config.lr == 2.0 and config.clip_norm == 1.0
    assert config.corpus == "time_machine/d2l"
    assert config.num_epochs == 7 and config.prefixes == ("time", "machine")


def test_every_preset_is_valid():
    for name, overrides in PRESETS.items():
        TrainConfig(**overrides).validate()
        assert set(overrides) <= {f.name for f in dataclasses.fields(TrainConfig)}, name


def test_config_json_round_trip_and_unknown_fields():
    config = TrainConfig(model="gru", prefixes=("a\nb", " "))
    assert TrainConfig.from_json(config.to_json()) == config
    with pytest.raises(ConfigError, match="unknown config fields \\['colour'\\]"):
        TrainConfig.from_dict({**config.to_dict(), "colour": "red"})


def test_helpfull_documents_every_field():
    out = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), "--helpfull"],
                         capture_output=True, text=True, timeout=120).stdout
    for field in dataclasses.fields(TrainConfig):
        assert f"--{field.name}" in out or f"--[no]{field.name}" in out, field.name
    assert "Global gradient-norm clip" in out
