"""export.py --compute_val_perplexity with no data and no network: a clear error in seconds (not
minutes of download retries), naming $RNNZOO_DATA_DIR, and nothing left behind."""

import dataclasses
import os
import socket
import subprocess
import sys
import time

from export_registry import REPO_ROOT

from rnnzoo.tasks.char_lm import CharLMConfig


def _snapshot(directory):
    return {p.relative_to(directory): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_compute_val_perplexity_offline_fails_fast(exports, tmp_path):
    # The registry's trained "rnn" run, as if it had been trained on The Time Machine (`corpus`
    # is all a run's config says of its data).
    run = exports.copy_run("rnn", tmp_path / "run")
    config = run.read_config(CharLMConfig)
    assert config.corpus == "tiny/test"
    run.config_path.write_text(
        dataclasses.replace(config, corpus="time_machine/d2l").to_json() + "\n")
    before = _snapshot(run.path)
    with socket.socket() as s:  # a port nothing listens on: the proxy refuses at once
        s.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                                "rnnzoo_data_dir", "rnnzoo_tfds_dir")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", HTTP_PROXY=proxy, HTTPS_PROXY=proxy, http_proxy=proxy,
               https_proxy=proxy,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])))
    tfds_dir = tmp_path / "tfds"

    start = time.monotonic()
    # TFDS's download retries alone take over 3 minutes: a timeout here is the old behaviour.
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "export.py"), f"--workdir={run.path}",
                           "--compute_val_perplexity", f"--tfds_dir={tfds_dir}"],
                          capture_output=True, text=True, timeout=150, env=env)
    elapsed = time.monotonic() - start

    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "$RNNZOO_DATA_DIR" in errors[0], proc.stderr[-3000:]
    assert "timemachine.txt" in errors[0]
    assert elapsed < 100, f"took {elapsed:.0f} s"  # TensorFlow's start and the model included
    assert _snapshot(run.path) == before  # no export/, nothing else written
    assert not [p for p in tfds_dir.rglob("*") if p.is_file() or "incomplete" in p.name]
    assert not [p for p in run.path.parent.iterdir() if p.name.startswith(".")]
