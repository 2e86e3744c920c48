"""The run directory's safety rules (`rnnzoo.run_dir.RunDir`), through real (tiny) training runs
on The Time Machine: a resume that cannot read its checkpoints changes nothing, a fresh run never
mixes with an old one, one process at a time, huge losses and divergence stop cleanly, a failed
start leaves a usable directory, bad directories are clear errors, nothing to do writes nothing.
"""

import hashlib
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo import evaluation
from rnnzoo.run_dir import RunDir
from rnnzoo.tasks import char_lm
from rnnzoo.tasks.char_lm import CharLMConfig
from rnnzoo.training import loop

LOCK_FILE = ".lock"  # RunDir.LOCK_FILE
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(**overrides):
    base = dict(corpus="time_machine/d2l", sampler_edition=2, cell="lstm", num_hiddens=8,
                init="keras", lr=8.0, clip_norm=1.0, num_epochs=2, pred_period=2, pred_len=5,
                prefixes=("time",), checkpoint_every=1)
    base.update(overrides)
    return CharLMConfig(**base)


def _train(config, workdir, source_dir, tfds_dir, **kwargs):
    logs = []
    result = char_lm.train(config, workdir, source_dir=str(source_dir), tfds_dir=str(tfds_dir),
                           log=logs.append, **kwargs)
    return result.record, logs


def _snapshot(workdir) -> dict:
    """Every file under `workdir` but the lock file: content digest and modification time."""
    files = {}
    for root, _, names in os.walk(workdir):
        for name in names:
            path = os.path.join(root, name)
            if os.path.relpath(path, workdir) == LOCK_FILE:
                continue
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            files[os.path.relpath(path, workdir)] = (digest, os.stat(path).st_mtime_ns)
    return files


def _epochs(workdir):
    return [m["epoch"] for m in RunDir(workdir).read_metrics()]


@pytest.fixture
def trained(tmp_path, source_dir, tfds_dir):
    """A 2-epoch run with ckpt-1 and ckpt-2."""
    workdir = tmp_path / "run"
    _train(_config(), workdir, source_dir, tfds_dir)
    assert RunDir(workdir).latest_checkpoint().endswith("ckpt-2")
    return workdir


# ------------------------------------------------------- 5. huge losses and divergence


@pytest.mark.parametrize("lr, clip_norm", [(20.0, 1000.0), (1e6, 1e6)])
def test_a_huge_finite_loss_reports_inf_and_never_a_float_error(
        tmp_path, source_dir, tfds_dir, lr, clip_norm):
    # The vanilla RNN at a huge rate: the perplexity reaches 1e17 (training) and 1e149
    # (validation) or overflows, while the loss stays finite at first.
    config = _config(model="rnn", cell="rnn", num_hiddens=32, init="d2l", lr=lr,
                     clip_norm=clip_norm, num_epochs=2, pred_period=1)
    try:
        _train(config, tmp_path / "run", source_dir, tfds_dir)
    except loop.TrainingDiverged as e:  # A non-finite loss: the documented path.
        assert "\n" not in str(e) and "last good checkpoint" in str(e)
        assert RunDir(tmp_path / "run").read_metrics()[-1]["diverged"] is True
    records = RunDir(tmp_path / "run").read_metrics()
    first = records[0]
    assert first["epoch"] == 1 and "diverged" not in first
    assert first["val_perplexity"] > 1e100  # Huge or inf, as a number.
    good = [r["epoch"] for r in records if not r.get("diverged")]
    assert RunDir(tmp_path / "run").latest_checkpoint().endswith(f"ckpt-{good[-1]}")


def test_perplexity_never_overflows():
    assert evaluation.perplexity(1e6) == math.inf == loop.perplexity(710.0)
    assert math.isnan(evaluation.perplexity(float("nan")))
    assert evaluation.perplexity(np.float64(2.0)) == pytest.approx(math.e ** 2)
    result = evaluation._perplexities(np.float64(1e6), np.float64(10.0), np.float64(1e6),
                                      np.float64(10.0), unk_id=0)
    assert result["perplexity"] == result["perplexity_known"] == math.inf
    assert math.isnan(evaluation._perplexities(math.nan, 1.0, math.nan, 1.0, 0)["perplexity"])


def test_divergence_on_the_first_epoch_stops_with_one_line_and_no_checkpoint(
        tmp_path, source_dir, tfds_dir, monkeypatch):
    _poison(monkeypatch, epoch=1)
    with pytest.raises(loop.TrainingDiverged) as e:
        _train(_config(), tmp_path / "run", source_dir, tfds_dir)
    assert "\n" not in str(e.value)
    assert "epoch 1" in str(e.value) and "last good checkpoint: none yet" in str(e.value)
    run = RunDir(tmp_path / "run")
    assert run.latest_checkpoint() is None
    assert [r.get("diverged") for r in run.read_metrics()] == [True]


def _poison(monkeypatch, epoch):
    """Weights become NaN at the start of `epoch` (something blew up)."""
    models = []
    real_build, real_epoch = char_lm.build_model, char_lm._epoch_dataset
    monkeypatch.setattr(char_lm, "build_model",
                        lambda *a: models.append(real_build(*a)) or models[-1])

    def poisoned_epoch(corpus, config, e):
        if e == epoch:
            v = models[-1].trainable_variables[0]
            v.assign(tf.fill(v.shape, float("nan")))
        return real_epoch(corpus, config, e)

    monkeypatch.setattr(char_lm, "_epoch_dataset", poisoned_epoch)


