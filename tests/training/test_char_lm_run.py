"""Real (short) training runs on The Time Machine: perplexity falls, the run directory is
complete, resume continues exactly, divergence stops cleanly, bad inputs get clear errors."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.data.vocab import Vocabulary
from rnnzoo.run_dir import RunDir, RunDirError
from rnnzoo.tasks import char_lm as char_lm_training
from rnnzoo.tasks.char_lm import CharLMConfig, build_model
from rnnzoo.training import loop

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(**overrides):
    base = dict(corpus="time_machine/d2l", sampler_edition=2, cell="lstm", num_hiddens=48,
                init="keras", lr=8.0, clip_norm=1.0, num_epochs=6, pred_period=2, pred_len=20,
                prefixes=("time traveller",), checkpoint_every=1)
    base.update(overrides)
    return CharLMConfig(**base)


def _train(config, workdir, source_dir, tfds_dir, **kwargs):
    logs = []
    result = char_lm_training.train(config, workdir, source_dir=str(source_dir),
                                    tfds_dir=str(tfds_dir), log=logs.append, **kwargs)
    return result.record, logs


def _weights(workdir, config, vocab_size):
    model = build_model(config, vocab_size)
    run = RunDir(workdir)
    run.checkpoint(model).restore(run.latest_checkpoint()).expect_partial()
    return [v.numpy() for v in model.trainable_variables]


@pytest.mark.slow
def test_short_run_validation_perplexity_falls_and_run_dir_is_complete(
        tmp_path, source_dir, tfds_dir):
    config = _config()
    record, logs = _train(config, tmp_path / "run", source_dir, tfds_dir)
    run = RunDir(tmp_path / "run")
    metrics = run.read_metrics()
    assert [m["epoch"] for m in metrics] == list(range(1, 7))
    val = [m["val_perplexity"] for m in metrics if "val_perplexity" in m]
    assert len(val) == 3
    assert val[-1] < 0.8 * val[0], val  # It learns, on text it never trained on.
    assert val[0] < 28  # Better than uniform over the 28 tokens.
    train_ppl = [m["train_perplexity"] for m in metrics]
    assert train_ppl[-1] < train_ppl[0]
    assert run.read_config(CharLMConfig) == config
    vocab = run.read_vocab()
    assert len(vocab) == 28 and vocab.tokens[0] == "<unk>"
    assert any(line.startswith("epoch 6, perplexity") for line in logs)
    assert any(line.startswith(" - time traveller") for line in logs)
    assert "epoch 6" in run.samples_path.read_text(encoding="utf-8")
    assert os.listdir(run.tensorboard_dir)
    assert run.latest_checkpoint().endswith("ckpt-6")
    assert record["epoch"] == 6 and math.isfinite(record["val_perplexity"])


@pytest.mark.slow
def test_resume_continues_exactly_where_the_run_stopped(tmp_path, source_dir, tfds_dir):
    full = _config(num_epochs=4)
    _train(full, tmp_path / "full", source_dir, tfds_dir)
    _train(_config(num_epochs=2), tmp_path / "split", source_dir, tfds_dir)
    _, logs = _train(full, tmp_path / "split", source_dir, tfds_dir, resume=True)
    assert "resumed" in logs[1] and "epoch 2" in logs[1]
    a = _weights(tmp_path / "full", full, 28)
    b = _weights(tmp_path / "split", full, 28)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, atol=1e-6)
    epochs = [m["epoch"] for m in RunDir(tmp_path / "split").read_metrics()]
    assert epochs == [1, 2, 3, 4]


def test_resume_refuses_a_different_config_or_vocabulary(tmp_path, source_dir, tfds_dir):
    config = _config(num_epochs=1, num_hiddens=8)
    _train(config, tmp_path / "run", source_dir, tfds_dir)
    with pytest.raises(RunDirError, match="already holds a run; pass --resume"):
        _train(config, tmp_path / "run", source_dir, tfds_dir)
    with pytest.raises(RunDirError, match=r"num_hiddens: saved 8, now 16"):
        _train(_config(num_epochs=2, num_hiddens=16), tmp_path / "run", source_dir, tfds_dir,
               resume=True)
    run = RunDir(tmp_path / "run")
    Vocabulary(["<unk>", *"abc"], unk_token="<unk>").save(run.vocab_path)
    with pytest.raises(RunDirError, match="vocabulary built now differs"):
        _train(_config(num_epochs=2, num_hiddens=8), tmp_path / "run", source_dir, tfds_dir,
               resume=True)
    with pytest.raises(RunDirError, match="holds no run"):
        _train(config, tmp_path / "empty", source_dir, tfds_dir, resume=True)


def test_divergence_stops_and_keeps_the_last_good_checkpoint(
        tmp_path, source_dir, tfds_dir, monkeypatch):
    real_epoch = char_lm_training._epoch_dataset
    models = []
    real_build = char_lm_training.build_model
    monkeypatch.setattr(char_lm_training, "build_model",
                        lambda *a: models.append(real_build(*a)) or models[-1])

    def poisoned_epoch(corpus, config, epoch):
        if epoch == 3:  # Something blows up: a weight becomes NaN.
            v = models[0].trainable_variables[0]
            v.assign(tf.fill(v.shape, float("nan")))
        return real_epoch(corpus, config, epoch)

    monkeypatch.setattr(char_lm_training, "_epoch_dataset", poisoned_epoch)
    config = _config(num_epochs=5, num_hiddens=8)
    with pytest.raises(loop.TrainingDiverged, match="epoch 3"):
        _train(config, tmp_path / "run", source_dir, tfds_dir)
    run = RunDir(tmp_path / "run")
    assert run.latest_checkpoint().endswith("ckpt-2")
    assert all(np.isfinite(w).all() for w in _weights(tmp_path / "run", config, 28))
    assert run.read_metrics()[-1]["diverged"] is True


def _train_py(*args, cwd, timeout=240):
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, os.path.join(REPO, "train.py"), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout)


# An unknown model, num_hiddens=0 and a negative clip_norm are rows of
# tests/test_cli_bad_inputs.py (which checks these messages, and that no config.json is written).
@pytest.mark.parametrize("args, message", [
    (["--corpus=no_such_corpus/x"], "no_such_corpus"),
])
def test_train_py_rejects_bad_input_without_a_traceback(tmp_path, args, message):
    result = _train_py(*args, f"--workdir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.mark.slow
def test_train_py_killed_mid_run_resumes_from_its_last_checkpoint(
        tmp_path, source_dir, tfds_dir):
    workdir = tmp_path / "run"
    common = [f"--workdir={workdir}", f"--data_dir={source_dir}", f"--tfds_dir={tfds_dir}",
              "--corpus=time_machine/d2l", "--sampler_edition=2", "--num_hiddens=16",
              "--lr=8", "--clip_norm=1", "--pred_period=1000", "--checkpoint_every=1",
              "--prefixes=time"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "train.py"), *common,
                             "--num_epochs=100000"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            ckpt = RunDir(workdir).latest_checkpoint()
            if ckpt and int(ckpt.rsplit("-", 1)[1]) >= 3:
                break
            time.sleep(0.5)
        else:
            pytest.fail("no third checkpoint within 180 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = int(RunDir(workdir).latest_checkpoint().rsplit("-", 1)[1])
    result = _train_py(*common, f"--num_epochs={killed_at + 2}", "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"resumed {workdir} at epoch {killed_at}" in result.stdout
    metrics = RunDir(workdir).read_metrics()
    assert metrics[-1]["epoch"] == killed_at + 2
    assert RunDir(workdir).latest_checkpoint().endswith(f"ckpt-{killed_at + 2}")
    config = json.loads((workdir / "config.json").read_text())
    assert config["num_epochs"] == killed_at + 2


def test_long_epochs_show_a_progress_bar(tmp_path, source_dir, tfds_dir, capsys):
    # 10,000 characters in windows of 2 x 4 make about 1,250 batches: a long epoch.
    config = _config(num_epochs=1, num_hiddens=4, batch_size=2, num_steps=4, pred_len=2)
    _train(config, tmp_path / "run", source_dir, tfds_dir)
    out = capsys.readouterr().out
    assert "perplexity:" in out and "/1249" in out
    short = _config(num_epochs=1, num_hiddens=4, pred_len=2)
    _train(short, tmp_path / "short", source_dir, tfds_dir)
    assert "perplexity:" not in capsys.readouterr().out  # 8 batches: no bar.
