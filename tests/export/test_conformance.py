"""Conformance of every zoo entry (`export_registry.ZOO_ENTRIES`), by the real task code:
trained, checkpointed, restored, resumed, and its metrics as the contract says. (Export, parity
and the signatures of the same runs are checked by the other tests of this folder.)"""

import json
import math
import shutil

import numpy as np
import pytest
from export_registry import (
    EPOCHS,
    ZOO_ENTRIES,
    load_model,
    tiny_config,
    tiny_data,
    train_tiny,
)

from rnnzoo.run_dir import RunDir
from rnnzoo.tasks import char_lm
from rnnzoo.zoo import export_run


def _positions(config):
    """The report positions of a run: its steps when measured in steps, else its epochs."""
    if config.by_steps:
        return "step", config.train_steps, config.pred_period
    return "epoch", config.num_epochs, config.pred_period


def test_metrics_follow_the_contract(exports, model_name):
    run, _ = exports.run(model_name)
    config = tiny_config(model_name)
    key, last, period = _positions(config)
    records = run.read_metrics()
    for r in records:
        assert isinstance(r["step"], int) and r["step"] > 0
        assert math.isfinite(r["train_perplexity"]) and r["train_perplexity"] > 1
        assert ("epoch" in r) == (not config.by_steps)
    reports = [r[key] for r in records if "val_perplexity" in r]
    assert reports == list(range(period, last + 1, period))
    assert [r["step"] for r in records] == sorted({r["step"] for r in records})
    assert records[-1][key] == last
    assert all(math.isfinite(r["val_perplexity"]) for r in records if "val_perplexity" in r)


def test_the_checkpoint_restores_every_weight(exports, model_name):
    run, trained = exports.run(model_name)
    restored, _ = load_model(run)
    assert len(trained.weights) == len(restored.weights)
    for a, b in zip(trained.weights, restored.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO_ENTRIES))
def test_resume_continues_exactly(exports, tmp_path, name):
    """Stopped part-way and resumed, a run ends with the weights of the uninterrupted one."""
    full_run, full_model = exports.run(name)
    config = tiny_config(name)
    stop = dict(train_steps=config.train_steps // 2 + 3) if config.by_steps else dict(
        num_epochs=EPOCHS - 2)
    train_tiny(tmp_path / "split", name, **stop)
    resumed = train_tiny(tmp_path / "split", name, resume=True)
    for a, b in zip(full_model.weights, resumed.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    key = "step" if config.by_steps else "epoch"
    split = [r[key] for r in RunDir(tmp_path / "split").read_metrics()]
    full = [r[key] for r in full_run.read_metrics()]
    # A run in steps also reported where the first part stopped.
    assert split == (sorted(full + [stop["train_steps"]]) if config.by_steps else full)


def test_a_run_directory_written_before_the_zoo_loads_resumes_and_exports(exports, tmp_path):
    """config.json of the earlier code: no `task`, and `model` named the cell."""
    run = exports.copy_run("gru", tmp_path / "run")
    config = json.loads(run.config_path.read_text())
    new_fields = ("task", "cell", "inputs", "dropout", "optimizer", "lr_schedule",
                  "lr_decay_steps", "lr_decay_rate", "lr_min_fraction", "train_steps",
                  "val_scoring")
    legacy = {k: v for k, v in config.items() if k not in new_fields}
    assert legacy["model"] == "gru"
    run.config_path.write_text(json.dumps(legacy))
    shutil.copytree(run.path, tmp_path / "copy")
    result = export_run(run.path, tmp_path / "export", log=lambda *_: None)
    assert (result.metadata.model, result.metadata.cell) == ("gru", "gru")
    more = char_lm.CharLMConfig.from_dict({**config, "num_epochs": EPOCHS + 1})
    resumed = char_lm.train(more, tmp_path / "copy", resume=True, data=tiny_data(),
                            log=lambda *_: None)
    assert resumed.record["epoch"] == EPOCHS + 1
