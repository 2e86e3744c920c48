"""Training under tf.distribute through the tasks' real `train()`: two worker processes on
localhost (MultiWorkerMirroredStrategy, TF_CONFIG) and two logical CPU devices in one process
(MirroredStrategy) end with the weights one process reaches on the same global batches; only the
chief writes; its checkpoints resume and export in one process; a lost worker stops the job.

The reference is an independent single-device run of the same config and seed (the default
strategy, no replica code at all)."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import distribute_job as job
import numpy as np
import pytest

from rnnzoo.config import ConfigError
from rnnzoo.run_dir import RunDir
from rnnzoo.training import distribute

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
JOB = os.path.join(HERE, "distribute_job.py")
# How long a worker may take to notice a lost peer (TF_CONFIG, start-up aside).
LOST_WORKER_BOUND = 60


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_workers(jobs_of):
    """Two worker processes; `jobs_of(i)` the jobs of worker i. Returns the Popen objects."""
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = []
    for i in range(2):
        spec = {"tf_config": {"cluster": cluster, "task": {"type": "worker", "index": i}},
                "jobs": jobs_of(i)}
        procs.append(subprocess.Popen([sys.executable, JOB, json.dumps(spec)], env=_env(),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    return procs


def _assert_same(expected, actual, what):
    assert len(expected) == len(actual), what
    for a, b in zip(expected, actual):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7, err_msg=what)


def _npz(path):
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def _checkpoint_weights(task, workdir, name):
    from rnnzoo.tasks import char_lm, word2vec_export

    module = char_lm if task == "char_lm" else word2vec_export
    trained = module.load_trained(workdir, os.path.join(workdir, "checkpoints", name))
    return job.weights(trained.model)


def _files(path):
    return sorted(os.path.relpath(os.path.join(d, f), path)
                  for d, _, fs in os.walk(path) for f in fs)


@pytest.mark.slow
def test_two_workers_train_as_one_process_only_the_chief_writes_and_it_resumes(tmp_path):
    def jobs_of(i):
        return [{"task": task, "workdir": str(tmp_path / f"worker{i}" / task),
                 "fields": {"distribute": "multi_worker", "worker_timeout": 60.0},
                 "weights": str(tmp_path / f"{task}{i}.npz")} for task in ("char_lm", "word2vec")]

    workers = _start_workers(jobs_of)
    try:
        # Meanwhile, the single-process references: the same runs one epoch longer, whose
        # ckpt-2 holds the weights after the two epochs the workers train.
        one = {"distribute": "one_device"}
        longer = {task: job.weights(job.train(task, tmp_path / f"one_{task}",
                                               {**one, "num_epochs": 3}).model)
                  for task in ("char_lm", "word2vec")}
        reference = {task: _checkpoint_weights(task, tmp_path / f"one_{task}", "ckpt-2")
                     for task in ("char_lm", "word2vec")}
        outputs = [w.communicate(timeout=600)[0] for w in workers]
    finally:
        for w in workers:
            w.kill()
    for i, (w, out) in enumerate(zip(workers, outputs)):
        assert w.returncode == 0 and "trained word2vec" in out, f"worker {i}:\n{out[-3000:]}"

    for task in ("char_lm", "word2vec"):
        for i in range(2):
            _assert_same(reference[task], _npz(tmp_path / f"{task}{i}.npz"), f"{task} worker {i}")
    # Only the chief wrote a run directory; the other worker wrote nothing there.
    assert not (tmp_path / "worker1").exists(), _files(tmp_path / "worker1")
    # The chief's checkpoint exports as a single-process run's does.
    from rnnzoo.tasks import char_lm
    exported = char_lm.export_run(tmp_path / "worker0" / "char_lm", tmp_path / "export",
                                  log=lambda line: None)
    assert (exported.metadata.checkpoint, exported.metadata.epoch) == ("ckpt-2", 2)
    assert (exported.path / "model.tflite").is_file()
    for task in ("char_lm", "word2vec"):
        chief = RunDir(tmp_path / "worker0" / task)
        assert chief.config_path.exists() and chief.vocab_path.exists()
        assert [r["epoch"] for r in chief.read_metrics()] == [1, 2]
        assert os.path.basename(chief.latest_checkpoint()) == "ckpt-2"
        # The chief's checkpoint resumes in one process and continues exactly.
        resumed = job.train(task, chief.path, {**one, "num_epochs": 3}, resume=True)
        assert [r["epoch"] for r in chief.read_metrics()] == [1, 2, 3]
        _assert_same(longer[task], job.weights(resumed.model), f"{task} resumed")


@pytest.mark.slow
def test_a_lost_worker_stops_the_other_with_a_clear_error(tmp_path):
    def jobs_of(i):
        return [{"task": "char_lm", "workdir": str(tmp_path / f"worker{i}"),
                 "fields": {"distribute": "multi_worker", "num_epochs": 500,
                            "worker_timeout": 30.0},
                 "weights": str(tmp_path / f"w{i}.npz")}]

    chief, other = _start_workers(jobs_of)
    try:
        run = RunDir(tmp_path / "worker0")
        deadline = time.monotonic() + 300
        while not (run.metrics_path.exists() and run.read_metrics()):
            assert chief.poll() is None and time.monotonic() < deadline, chief.stdout.read()
            time.sleep(0.2)
        other.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        out = chief.communicate(timeout=LOST_WORKER_BOUND + 60)[0]
        took = time.monotonic() - killed
    finally:
        chief.kill()
        other.kill()
    assert chief.returncode == 3, out[-3000:]
    assert "error: another worker of the multi-worker job died or stopped answering" in out
    assert "--resume" in out and "ckpt-" in out, out[-3000:]
    print(f"the chief stopped {took:.1f} s after the other worker was killed")
    assert took < LOST_WORKER_BOUND, took
    # A restart with --resume (here in one process) continues from the last checkpoint.
    last = max(r["epoch"] for r in run.read_metrics())
    logs = []
    job.train("char_lm", run.path, {"distribute": "one_device", "num_epochs": last + 1},
              resume=True, log=logs.append)
    assert f"resumed {run.path} at epoch {last}" in logs, logs


MIRRORED = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import distribute_job as job
    from rnnzoo.training import distribute

    # Replica r owns rows [2r, 2r + 2) of every global batch of 4, from a dataset or not.
    strategy = distribute.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    rows = tf.reshape(tf.range(16), [2, 4, 2])
    owner = lambda x: (x, tf.distribute.get_replica_context().replica_id_in_sync_group)
    for source in (tf.data.Dataset.from_tensor_slices(rows), list(rows)):
        for k, batch in enumerate(distribute.distribute_batches(strategy, source)):
            for x, r in zip(*map(strategy.experimental_local_results,
                                 strategy.run(owner, args=(batch,)))):
                np.testing.assert_array_equal(x.numpy(), rows[k, 2 * int(r):2 * int(r) + 2])
    carry = [tf.reshape(tf.range(12.0), [4, 3])]
    back = distribute.gather_rows(strategy, distribute.split_rows(strategy, carry))
    np.testing.assert_array_equal(back[0].numpy(), carry[0].numpy())

    def same(a, b, what):
        for x, y in zip(a, b):
            np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-7, err_msg=what)

    one, two = {"distribute": "one_device"}, {"distribute": "mirrored"}
    W = lambda result: job.weights(result.model)
    # Epochs: distribute_datasets_from_function; the state carried within each epoch.
    same(W(job.train("char_lm", "one_epochs", one)), W(job.train("char_lm", "two_epochs", two)),
         "epochs")
    # Steps: the stream split batch by batch, the carried state checkpointed (gathered from the
    # replicas) and restored (split again) by a resumed run.
    steps = {"train_steps": 7, "pred_period": 7, "checkpoint_every": 2}
    whole = W(job.train("char_lm", "one_steps", {**one, **steps}))
    job.train("char_lm", "two_steps", {**two, **steps, "train_steps": 4})
    same(whole, W(job.train("char_lm", "two_steps", {**two, **steps}, resume=True)), "steps")
    # seq2seq: replicas with different counts of real target tokens, one global mean.
    same(W(job.train("seq2seq", "one_s2s", one)), W(job.train("seq2seq", "two_s2s", two)),
         "seq2seq")
    print("SAME WEIGHTS")
""")


@pytest.mark.slow
def test_two_logical_devices_train_the_char_lm_and_seq2seq_as_one_device(tmp_path):
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([HERE, env["PYTHONPATH"]])
    result = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                            timeout=600, env=env, cwd=tmp_path)
    assert "SAME WEIGHTS" in result.stdout, (result.stdout + result.stderr)[-4000:]


def test_tf_config_errors_name_the_value(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG .*not set"):
        distribute.make_strategy("multi_worker")
    bad = {"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(bad))
    with pytest.raises(ConfigError, match="not a task of its cluster"):
        distribute.make_strategy("multi_worker")
    ps = {"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(ps))
    with pytest.raises(ConfigError, match="parameter servers"):
        distribute.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{")
    with pytest.raises(ConfigError, match="not JSON"):
        distribute.make_strategy("multi_worker")
    with pytest.raises(ConfigError, match="`distribute` must be one of"):
        distribute.make_strategy("parameter_server")


def test_one_device_is_the_default_strategy_and_rows_stay_whole():
    import tensorflow as tf

    strategy = distribute.make_strategy("one_device")
    assert strategy is tf.distribute.get_strategy() and distribute.is_chief(strategy)
    assert distribute.check_batch_size(strategy, 5) == 5
    x = tf.ones([5, 2])
    assert distribute.split_rows(strategy, x) is x
    assert distribute.distribute_batches(strategy, [x])[0] is x


def test_a_global_batch_must_divide_among_the_replicas():
    class Two:
        num_replicas_in_sync = 2

    with pytest.raises(ConfigError, match=r"`batch_size` \(5\) .* multiple of the 2 replicas"):
        distribute.check_batch_size(Two(), 5)
