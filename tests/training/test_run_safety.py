"""The run directory's safety rules (`rnnzoo.run_dir.RunDir`), through real (tiny) training runs
on The Time Machine: a resume that cannot read its checkpoints changes nothing, a fresh run never
mixes with an old one, one process at a time, huge losses and divergence stop cleanly, a failed
start leaves a usable directory, bad directories are clear errors, nothing to do writes nothing.
"""

import fcntl
import hashlib
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo import evaluation
from rnnzoo.config import ConfigError
from rnnzoo.data.char_data import CharData
from rnnzoo.data.vocab import Vocabulary
from rnnzoo.run_dir import RunDir, RunDirError
from rnnzoo.tasks import char_lm
from rnnzoo.tasks.char_lm import CharLMConfig
from rnnzoo.training import loop

LOCK_FILE = "train.lock"  # RunDir.LOCK_FILE
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


# Each run trained once for this module and never changed: tests work on copies (a run
# directory holds relative paths only, so a copy is a run of its own).
_SHARED_RUNS = {
    # 2 epochs, ckpt-1 and ckpt-2.
    "num_epochs": _config(),
    # 6 steps, ckpt-3 and ckpt-6.
    "train_steps": _config(train_steps=6, pred_period=3, checkpoint_every=3),
}


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, source_dir, tfds_dir):
    """`shared_run(measure)`: (workdir, record) of the `_SHARED_RUNS` run, trained on first use."""
    runs = {}

    def get(measure):
        if measure not in runs:
            workdir = tmp_path_factory.mktemp(measure) / "run"
            record, _ = _train(_SHARED_RUNS[measure], workdir, source_dir, tfds_dir)
            runs[measure] = workdir, record
        return runs[measure]

    return get


def _copy_shared_run(shared_run, measure, workdir):
    """A copy of the shared run at `workdir`; its last record."""
    source, record = shared_run(measure)
    shutil.copytree(source, workdir)
    return record


@pytest.fixture
def trained(shared_run, tmp_path):
    """The test's own 2-epoch run with ckpt-1 and ckpt-2 (a copy of the shared one)."""
    workdir = tmp_path / "run"
    _copy_shared_run(shared_run, "num_epochs", workdir)
    assert RunDir(workdir).latest_checkpoint() == str(workdir / "checkpoints" / "ckpt-2")
    return workdir


# ----------------------------------------------------------- 2. the checkpoint state file


@pytest.mark.parametrize("garbage", [b"this is { not a checkpoint state", b"\x00\xff\xfe",
                                     b""])
def test_resume_with_an_unreadable_checkpoint_state_finds_the_checkpoints_by_their_files(
        trained, source_dir, tfds_dir, garbage):
    run = RunDir(trained)
    state_path = run.checkpoint_dir / "checkpoint"
    state_path.write_bytes(garbage)
    _, logs = _train(_config(num_epochs=3), trained, source_dir, tfds_dir, resume=True)
    resumed = [line for line in logs if line.startswith("resumed")]
    assert len(resumed) == 1
    assert resumed[0].startswith(f"resumed {trained} at epoch 2 ({state_path} "
                                 "is damaged (")
    assert resumed[0].endswith("); found ckpt-2 by its files)")
    assert _epochs(trained) == [1, 2, 3]
    # The state file was rewritten: TensorFlow reads it, and the rotation goes on.
    state = tf.train.get_checkpoint_state(str(run.checkpoint_dir))
    assert state.model_checkpoint_path.endswith("ckpt-3")
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
        "ckpt-1", "ckpt-2", "ckpt-3"]


def test_resume_that_cannot_read_its_checkpoint_state_stops_and_changes_nothing(
        trained, source_dir, tfds_dir):
    run = RunDir(trained)
    state_path = run.checkpoint_dir / "checkpoint"
    state_path.write_text("garbage {", encoding="utf-8")
    for name in os.listdir(run.checkpoint_dir):
        if name.endswith(".index"):  # No checkpoint can be found by its files either.
            os.remove(run.checkpoint_dir / name)
    before = _snapshot(trained)
    with pytest.raises(RunDirError, match=rf"{state_path} is damaged .*"
                                          "holds no complete checkpoint"):
        _train(_config(num_epochs=3), trained, source_dir, tfds_dir, resume=True)
    assert _snapshot(trained) == before


def test_resume_from_a_state_that_names_a_missing_checkpoint_stops_and_changes_nothing(
        trained, source_dir, tfds_dir):
    run = RunDir(trained)
    os.remove(run.checkpoint_dir / "ckpt-2.index")
    before = _snapshot(trained)
    with pytest.raises(RunDirError, match=rf"names the checkpoint .*ckpt-2, but "
                                          rf"{run.checkpoint_dir / 'ckpt-2.index'} is missing"):
        _train(_config(num_epochs=3), trained, source_dir, tfds_dir, resume=True)
    assert _snapshot(trained) == before


# ------------------------------------------------- 8. garbage in a checkpoint's files


@pytest.mark.parametrize("damaged", ["ckpt-2.index", "ckpt-2.data-00000-of-00001"])
@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_resume_with_garbage_in_a_checkpoint_file_is_a_clear_error(
        trained, source_dir, tfds_dir, damaged, how):
    path = RunDir(trained).checkpoint_dir / damaged
    size = path.stat().st_size
    path.write_bytes(b"\xa5" * size if how == "garbage" else path.read_bytes()[:size // 2])
    before = _snapshot(trained)
    with pytest.raises(RunDirError, match=rf"ckpt-2 is damaged: .*{path}.* cannot be read"):
        _train(_config(num_epochs=3), trained, source_dir, tfds_dir, resume=True)
    assert _snapshot(trained) == before


# --------------------------------------------- 3. a fresh run never mixes with an old one


def test_fresh_run_refuses_a_directory_with_checkpoints_or_metrics_even_without_config(
        trained, source_dir, tfds_dir):
    run = RunDir(trained)
    run.config_path.unlink()
    before = _snapshot(trained)
    with pytest.raises(RunDirError, match=rf"{trained} holds a run's results \(checkpoints in "
                                          r".*, metrics in .*\) without config.json"):
        _train(_config(), trained, source_dir, tfds_dir)
    assert _snapshot(trained) == before
    shutil.rmtree(run.checkpoint_dir)  # Metrics alone are a run's results too.
    before = _snapshot(trained)
    with pytest.raises(RunDirError, match=r"holds a run's results \(metrics in .*\)"):
        _train(_config(), trained, source_dir, tfds_dir)
    assert _snapshot(trained) == before
    with pytest.raises(RunDirError, match=r"config.json is missing, so the run .* cannot be "
                                          "resumed"):
        _train(_config(), trained, source_dir, tfds_dir, resume=True)
    assert _snapshot(trained) == before


# ------------------------------------------------------------- 4. one process at a time

_HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, str(os.getpid()).encode())
print("locked", flush=True)
time.sleep(600)
"""


def _locked_by_someone(lock_path) -> bool:
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_a_second_process_is_refused_and_the_lock_dies_with_its_process(
        tmp_path, source_dir, tfds_dir):
    workdir = tmp_path / "run"
    workdir.mkdir()
    lock = workdir / LOCK_FILE
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(lock)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=rf"{workdir} is in use by another training "
                                              rf"process \(pid {holder.pid}\)"):
            _train(_config(num_epochs=1), workdir, source_dir, tfds_dir)
        assert os.listdir(workdir) == [LOCK_FILE]  # Nothing else was written.
    finally:
        holder.kill()  # A killed process leaves no stale lock:
        holder.wait()
    held = []  # ... and training holds the lock from start to end.
    result = char_lm.train(_config(num_epochs=1), workdir, source_dir=str(source_dir),
                           tfds_dir=str(tfds_dir),
                           log=lambda line: held.append(_locked_by_someone(lock)))
    assert result.record["epoch"] == 1
    assert held and all(held)
    assert not _locked_by_someone(lock)


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


# ---------------------------------------------- 7. a failed start leaves a usable directory


def test_a_run_too_large_for_its_corpus_leaves_a_directory_a_new_run_can_use(
        tmp_path, source_dir, tfds_dir, monkeypatch):
    workdir = tmp_path / "run"
    with pytest.raises(ConfigError, match="too short for one batch of batch_size=10000"):
        _train(_config(batch_size=10000), workdir, source_dir, tfds_dir)  # 10,000 characters
    assert not RunDir(workdir).exists()
    # A run that fails once training began, before any metric or checkpoint, leaves its
    # config.json and vocab.json: a new run (another config) takes the directory over.
    with monkeypatch.context() as m:
        m.setattr(char_lm, "_epoch_dataset", lambda *a: 1 / 0)
        m.setattr(char_lm, "_check_batches", lambda *a: None, raising=False)
        with pytest.raises(ZeroDivisionError):
            _train(_config(), workdir, source_dir, tfds_dir)
    assert RunDir(workdir).exists() and not RunDir(workdir).read_metrics()
    record, _ = _train(_config(num_hiddens=12), workdir, source_dir, tfds_dir)
    assert record["epoch"] == 2 and _epochs(workdir) == [1, 2]
    assert RunDir(workdir).read_config(CharLMConfig).num_hiddens == 12


def test_a_run_diverged_before_its_first_checkpoint_can_be_replaced_by_a_new_run(
        tmp_path, source_dir, tfds_dir, monkeypatch):
    workdir = tmp_path / "run"
    with monkeypatch.context() as m:
        _poison(m, epoch=1)
        with pytest.raises(loop.TrainingDiverged):
            _train(_config(lr=100.0), workdir, source_dir, tfds_dir)
    run = RunDir(workdir)
    assert [r.get("diverged") for r in run.read_metrics()] == [True]
    old_events = {p.name for p in run.tensorboard_dir.iterdir()}
    record, _ = _train(_config(lr=8.0), workdir, source_dir, tfds_dir)
    assert record["epoch"] == 2 and _epochs(workdir) == [1, 2]
    assert not any(r.get("diverged") for r in run.read_metrics())
    assert run.read_config(CharLMConfig).lr == 8.0
    assert not old_events & {p.name for p in run.tensorboard_dir.iterdir()}
    # A run with results is never replaced:
    with pytest.raises(RunDirError, match="already holds a run; pass --resume"):
        _train(_config(lr=4.0), workdir, source_dir, tfds_dir)


# ------------------------------------------------------------- 8. bad run directories


def test_a_workdir_that_is_a_file_is_a_clear_error(tmp_path, source_dir, tfds_dir):
    path = tmp_path / "notes.txt"
    path.write_text("mine", encoding="utf-8")
    for workdir, resume in [(path, False), (path, True), (path / "run", False)]:
        with pytest.raises(RunDirError, match=rf"{path}"):
            _train(_config(num_epochs=1), workdir, source_dir, tfds_dir, resume=resume)
    assert path.read_text(encoding="utf-8") == "mine"


_TRAIN = """
import sys
sys.path.insert(0, sys.argv[1])
from rnnzoo.run_dir import RunDirError
from rnnzoo.tasks import char_lm
from test_run_safety import _config, _synthetic_data
try:
    char_lm.train(_config(num_epochs=2), sys.argv[2], resume=sys.argv[3] == "resume",
                  data=_synthetic_data(), log=lambda line: None)
    print("trained")
except RunDirError as e:
    print("RunDirError:", e)
"""


def _synthetic_data() -> CharData:
    text = "the time traveller smiled. " * 200
    vocab = Vocabulary.build(list(text))
    ids = vocab.encode(list(text))
    return CharData(vocab=vocab, train_ids=ids[:4000], val_ids=ids[4000:])


def _train_read_only(workdir, resume: bool) -> str:
    """Trains in a subprocess to which `workdir` is read-only: its permissions (all write bits
    off) for a user, a read-only bind mount in a mount namespace of its own for root (whom
    permissions do not stop)."""
    for root, _, files in os.walk(workdir):
        for name in files:
            os.chmod(os.path.join(root, name), 0o444)
        os.chmod(root, 0o555)
    command = [sys.executable, "-c", _TRAIN, os.path.dirname(os.path.abspath(__file__)),
               str(workdir), "resume" if resume else "fresh"]
    if os.geteuid() == 0:
        command = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"',
                   str(workdir), *command]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=300)
    except FileNotFoundError:
        pytest.skip("no `unshare` to make a directory read-only for root")
    out = result.stdout.strip().splitlines()
    if not out and os.geteuid() == 0 and "mount" in result.stderr + " unshare":
        pytest.skip(f"cannot make a directory read-only for root: {result.stderr.strip()}")
    return out[-1] if out else result.stderr


@pytest.mark.parametrize("resume", [False, True])
def test_a_read_only_run_directory_is_a_clear_error(tmp_path, resume):
    workdir = tmp_path / "run"
    if resume:
        char_lm.train(_config(num_epochs=1), workdir, data=_synthetic_data(),
                      log=lambda line: None)
    else:
        workdir.mkdir()
    before = _snapshot(workdir)
    try:
        out = _train_read_only(workdir, resume)
    finally:
        for root, _, _ in os.walk(workdir):
            os.chmod(root, 0o755)
    assert out.startswith(f"RunDirError: the run directory {workdir} is read-only"), out
    assert _snapshot(workdir) == before


# ------------------------------------------------------- 12. resume with nothing to do


@pytest.mark.parametrize("measure, reached, asked", [
    ("num_epochs", 2, 2), ("num_epochs", 2, 1), ("train_steps", 6, 6), ("train_steps", 6, 3)])
def test_resume_with_nothing_to_do_says_so_and_changes_nothing(
        shared_run, tmp_path, source_dir, tfds_dir, measure, reached, asked):
    workdir = tmp_path / "run"
    steps = dict(pred_period=3, checkpoint_every=3) if measure == "train_steps" else {}
    assert _SHARED_RUNS[measure] == _config(**{measure: reached}, **steps)
    record = _copy_shared_run(shared_run, measure, workdir)
    before = _snapshot(workdir)
    again, logs = _train(_config(**{measure: asked}, **steps), workdir, source_dir, tfds_dir,
                         resume=True)
    key = "step" if measure == "train_steps" else "epoch"
    assert any(line.startswith(f"nothing to do: {workdir} is already at {key} {reached} and "
                               f"{measure} is {asked}") for line in logs), logs
    assert not any(line.startswith("resumed") for line in logs)
    assert _snapshot(workdir) == before
    assert again == record
