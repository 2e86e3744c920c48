"""export_run / export.py: a run directory alone is enough, and an export is all or nothing."""

import json
import os
import subprocess
import sys

import pytest
from export_registry import REPO_ROOT, make_run

from rnnzoo import zoo
from rnnzoo.export import exporter, tflite


def _snapshot(directory):
    """Every file under `directory` with its bytes."""
    return {p.relative_to(directory): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _fail(*args, **kwargs):
    raise tflite.TFLiteExportError("simulated converter crash")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("atomic") / "run", "gru")


def test_default_output_is_run_export(run):
    result = zoo.export_run(run.path, log=lambda *_: None)
    assert result.path == run.path / "export"
    assert {p.name for p in result.path.iterdir()} == {"saved_model", "model.tflite",
                                                       "model.json"}
    assert _leftovers(run.path) == []
    # Permissions follow the umask, not mkdtemp's private 0700.
    assert os.stat(result.path).st_mode & 0o777 == 0o777 & ~_umask()


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_failure_leaves_no_directory(run, tmp_path, monkeypatch):
    monkeypatch.setattr(exporter.tflite, "convert_step", _fail)
    output = tmp_path / "out"
    with pytest.raises(exporter.ExportError, match="simulated converter crash"):
        zoo.export_run(run.path, output, log=lambda *_: None)
    assert not output.exists()
    assert list(tmp_path.iterdir()) == []  # no staging directory either


def test_failure_keeps_the_previous_export(run, tmp_path, monkeypatch):
    output = tmp_path / "out"
    zoo.export_run(run.path, output, log=lambda *_: None)
    before = _snapshot(output)
    monkeypatch.setattr(exporter.tflite, "convert_step", _fail)
    with pytest.raises(exporter.ExportError):
        zoo.export_run(run.path, output, quantize="dynamic", log=lambda *_: None)
    assert _snapshot(output) == before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("atomic_swap", [True, False], ids=["renameat2", "two_renames"])
def test_replaces_a_previous_export_once_complete(run, tmp_path, monkeypatch, atomic_swap):
    if not atomic_swap:
        monkeypatch.setattr(exporter, "_exchange", lambda a, b: False)
    output = tmp_path / "out"
    zoo.export_run(run.path, output, log=lambda *_: None)
    float_size = (output / "model.tflite").stat().st_size
    seen = {}
    real_convert = tflite.convert_step

    def convert_and_look(model, quantize):
        seen["during"] = json.loads((output / "model.json").read_text())["quantize"]
        return real_convert(model, quantize)

    monkeypatch.setattr(exporter.tflite, "convert_step", convert_and_look)
    zoo.export_run(run.path, output, quantize="dynamic", log=lambda *_: None)
    assert seen["during"] == "none"  # the old export stayed in place while the new one was built
    assert json.loads((output / "model.json").read_text())["quantize"] == "dynamic"
    assert (output / "model.tflite").stat().st_size < float_size
    assert _leftovers(tmp_path) == []


def test_refuses_to_replace_something_else(run, tmp_path):
    output = tmp_path / "precious"
    output.mkdir()
    (output / "notes.txt").write_text("keep me")
    with pytest.raises(exporter.ExportError, match="not an rnnzoo export"):
        zoo.export_run(run.path, output, log=lambda *_: None)
    assert (output / "notes.txt").read_text() == "keep me"
    assert _leftovers(tmp_path) == []


def test_chosen_checkpoint_and_its_metrics(tmp_path):
    run = make_run(tmp_path / "run", "rnn")
    ckpt = run.latest_checkpoint()
    result = zoo.export_run(run.path, tmp_path / "out", checkpoint=ckpt,
                                 log=lambda *_: None)
    assert result.metadata.checkpoint == os.path.basename(ckpt)
    assert result.metadata.val_perplexity_source == "metrics.jsonl, epoch 5"
    with pytest.raises(exporter.ExportError, match="is not a checkpoint"):
        zoo.export_run(run.path, tmp_path / "out", checkpoint=ckpt + "-missing")
    # A checkpoint of another architecture is refused with the config named.
    other = make_run(tmp_path / "other", "lstm")
    with pytest.raises(exporter.ExportError, match="does not match the config"):
        zoo.export_run(run.path, tmp_path / "out2", checkpoint=other.latest_checkpoint())
    assert not (tmp_path / "out2").exists()


def _export_cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, str(REPO_ROOT / "export.py"), *args],
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_export_cli(run, tmp_path):
    output = tmp_path / "cli_export"
    proc = _export_cli(f"--workdir={run.path}", f"--output={output}", "--quantize=float16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((output / "model.json").read_text())["quantize"] == "float16"
    assert "exported" in proc.stdout


def test_export_cli_errors_without_traceback(tmp_path):
    (tmp_path / "empty_run").mkdir()
    proc = _export_cli(f"--workdir={tmp_path / 'empty_run'}")
    assert proc.returncode != 0
    assert "config.json is missing" in proc.stderr and "Traceback" not in proc.stderr
    proc = _export_cli(f"--workdir={tmp_path}", "--quantize=int4")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr


def test_export_cli_run_without_checkpoint(tmp_path):
    run = make_run(tmp_path / "run", "rnn")
    for f in run.checkpoint_dir.iterdir():
        f.unlink()
    proc = _export_cli(f"--workdir={run.path}")
    assert proc.returncode != 0
    assert "holds no checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    assert not (run.path / "export").exists() and _leftovers(run.path) == []
