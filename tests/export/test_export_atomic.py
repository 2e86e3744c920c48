"""export_run / export.py: a run directory alone is enough, and an export is all or nothing."""

import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest
from export_registry import REPO_ROOT

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
def run(exports, tmp_path_factory):
    """This module's own copy of the registry's trained "gru" run (its tests export into it)."""
    return exports.copy_run("gru", tmp_path_factory.mktemp("atomic") / "run")


@pytest.fixture
def previous_export(exports):
    """`previous_export(output)`: puts at `output` what `zoo.export_run(run.path, output)`
    writes, a copy of the shared export of the same "gru" run (no second conversion)."""
    return lambda output: exports.copy_export("gru", output)


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


def test_failure_keeps_the_previous_export(run, previous_export, tmp_path, monkeypatch):
    output = tmp_path / "out"
    previous_export(output)
    before = _snapshot(output)
    monkeypatch.setattr(exporter.tflite, "convert_step", _fail)
    with pytest.raises(exporter.ExportError):
        zoo.export_run(run.path, output, quantize="dynamic", log=lambda *_: None)
    assert _snapshot(output) == before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("atomic_swap", [True, False], ids=["renameat2", "two_renames"])
def test_replaces_a_previous_export_once_complete(run, previous_export, tmp_path, monkeypatch,
                                                  atomic_swap):
    if not atomic_swap:
        monkeypatch.setattr(exporter, "_exchange", lambda a, b: False)
    output = tmp_path / "out"
    previous_export(output)
    float_size = (output / "model.tflite").stat().st_size
    seen = {}
    real_convert = tflite.convert_step

    def convert_and_look(model, quantize, **kwargs):
        seen["during"] = json.loads((output / "model.json").read_text())["quantize"]
        return real_convert(model, quantize, **kwargs)

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


# ------------------------------------------------- what an export will and will not replace

NOT_AN_EXPORTS_MODEL_JSON = {
    "empty_object": "{}",
    "any_json": '{"name": "my notes", "version": 1}',
    "a_list": '["rnnzoo.export", 1]',
    "not_json": "model.json of my own, not JSON",
    "other_format": '{"format": "something.else", "version": 1}',
    "no_version": '{"format": "rnnzoo.export"}',
    "future_version": '{"format": "rnnzoo.export", "version": 2}',
    "version_true": '{"format": "rnnzoo.export", "version": true}',
    "version_float": '{"format": "rnnzoo.export", "version": 1.0}',
    "marker_only": '{"format": "rnnzoo.export", "version": 1}',  # no export's fields
}


@pytest.mark.parametrize("case", sorted(NOT_AN_EXPORTS_MODEL_JSON))
def test_a_model_json_alone_does_not_make_an_export(run, tmp_path, case):
    """Issue 13, item 1: any JSON named model.json let export delete the directory."""
    output = tmp_path / "mine"
    output.mkdir()
    (output / "model.json").write_text(NOT_AN_EXPORTS_MODEL_JSON[case])
    (output / "notes.txt").write_text("keep me")
    (output / "data").mkdir()
    (output / "data" / "table.csv").write_text("1,2\n")
    before = _snapshot(output)
    with pytest.raises(exporter.ExportError, match="not an rnnzoo export") as info:
        zoo.export_run(run.path, output, log=lambda *_: None)
    assert str(output) in str(info.value)
    assert _snapshot(output) == before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("foreign", ["notes.txt", "saved_model/assets/extra.txt", "mine/",
                                     "link", "model.tflite.orig"])
def test_refuses_to_replace_an_export_holding_foreign_files(run, previous_export, tmp_path,
                                                            foreign):
    """Issue 13, item 1: re-exporting over an export deleted the files the user had put in it."""
    output = tmp_path / "out"
    previous_export(output)
    if foreign == "link":
        (tmp_path / "target.txt").write_text("keep me")
        (output / foreign).symlink_to(tmp_path / "target.txt")
    elif foreign.endswith("/"):
        (output / foreign).mkdir()
        (output / foreign / "inside.txt").write_text("keep me")
    else:
        (output / foreign).write_text("keep me")
    before = _snapshot(output)
    with pytest.raises(exporter.ExportError, match="holds files that rnnzoo did not write") as info:
        zoo.export_run(run.path, output, quantize="dynamic", log=lambda *_: None)
    message = str(info.value)
    assert str(output) in message and foreign in message
    assert "inside.txt" not in message  # a foreign directory is named, not listed
    assert _snapshot(output) == before
    assert _leftovers(tmp_path) == []


def test_export_records_its_files(exports, model_name, tmp_path):
    """model.json lists exactly what the export wrote; that, and only that, may be replaced."""
    ex = exports.get(model_name)
    files = json.loads((ex.path / "model.json").read_text())["files"]
    assert files == sorted(rel for rel, _ in exporter._entries(ex.path))
    assert {"model.json", "model.tflite", "saved_model/", "saved_model/saved_model.pb"} <= set(
        files)
    copy = tmp_path / "copy"
    shutil.copytree(ex.path, copy)
    exporter.check_replaceable(copy)
    (copy / "saved_model" / "variables" / "mine.bin").write_bytes(b"x")
    with pytest.raises(exporter.ExportError, match="saved_model/variables/mine.bin"):
        exporter.check_replaceable(copy)


def test_replaces_an_export_written_before_files_were_recorded(run, previous_export, tmp_path):
    """An export whose model.json has no `files` is checked against the known layout."""
    output = tmp_path / "out"
    previous_export(output)
    meta = json.loads((output / "model.json").read_text())
    del meta["files"]
    (output / "model.json").write_text(json.dumps(meta))
    (output / "notes.txt").write_text("keep me")
    with pytest.raises(exporter.ExportError, match="notes.txt"):
        zoo.export_run(run.path, output, log=lambda *_: None)
    (output / "notes.txt").unlink()
    zoo.export_run(run.path, output, quantize="dynamic", log=lambda *_: None)
    assert json.loads((output / "model.json").read_text())["quantize"] == "dynamic"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("files", ["a string", ["../outside.txt"], ["/etc/passwd"], [1]])
def test_refuses_a_bad_files_list(run, previous_export, tmp_path, files):
    output = tmp_path / "out"
    previous_export(output)
    meta = json.loads((output / "model.json").read_text())
    meta["files"] = files
    (output / "model.json").write_text(json.dumps(meta))
    before = _snapshot(output)
    with pytest.raises(exporter.ExportError, match="`files` must be a list of relative paths"):
        zoo.export_run(run.path, output, log=lambda *_: None)
    assert _snapshot(output) == before


def test_files_arriving_during_the_export_are_kept(run, previous_export, tmp_path, monkeypatch):
    output = tmp_path / "out"
    previous_export(output)
    real_convert = tflite.convert_step

    def convert_and_add(model, quantize, **kwargs):
        (output / "late.txt").write_text("keep me")
        return real_convert(model, quantize, **kwargs)

    monkeypatch.setattr(exporter.tflite, "convert_step", convert_and_add)
    with pytest.raises(exporter.ExportError, match="late.txt"):
        zoo.export_run(run.path, output, quantize="dynamic", log=lambda *_: None)
    assert (output / "late.txt").read_text() == "keep me"
    assert json.loads((output / "model.json").read_text())["quantize"] == "none"
    assert _leftovers(tmp_path) == []


# --------------------------------------------------------- killed exports, temporary files

_KILLED_EXPORT = textwrap.dedent("""
    import os, signal, sys
    import tensorflow as tf
    from rnnzoo import zoo

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if sys.argv[3] == "saved_model":  # while the vocabulary asset sits in its scratch directory
        tf.saved_model.save = die
    else:  # while the two intermediate SavedModels of the TFLite conversion exist
        tf.lite.TFLiteConverter.from_saved_model = die
    zoo.export_run(sys.argv[1], sys.argv[2], log=lambda *_: None)
""")


def _staging_like(parent, name, *, lock=True):
    path = parent / name
    path.mkdir()
    (path / "export").mkdir()
    (path / "export" / "model.json").write_text("{}")
    if lock:
        (path / "lock").write_text("")
    return path


@pytest.mark.parametrize("killed_in", ["saved_model", "tflite"])
def test_a_killed_export_is_cleaned_up_by_the_next(run, tmp_path, killed_in):
    """Issue 13, item 6: a killed export left its staging directory and temporary directories
    forever. Temporary files live in the staging directory, and the next export to the same
    output removes staging directories whose lock no process holds, and nothing else."""
    systmp, parent = tmp_path / "systmp", tmp_path / "exports"
    systmp.mkdir()
    parent.mkdir()
    output = parent / "out"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(systmp),
           "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-c", _KILLED_EXPORT, str(run.path), str(output),
                           killed_in], capture_output=True, text=True, timeout=300, env=env,
                          cwd=REPO_ROOT)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert not output.exists()
    # No rnnzoo-vocab-*, rnnzoo-tflite-*. (TensorFlow's autograph leaves its own generated
    # __autograph_generated_file*.py there in any process killed after tracing.)
    assert [p.name for p in systmp.iterdir() if not p.name.startswith("__autograph")] == []
    [killed] = _leftovers(parent)

    # What the next export must leave alone: a live export's staging directory (its lock held),
    # one without a lock file, another output's, names it does not make, a link.
    live = _staging_like(parent, ".out.tmp-0123456789ab")
    holder = os.open(live / "lock", os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    keep = [live.name,
            _staging_like(parent, ".out.tmp-ba9876543210", lock=False).name,
            _staging_like(parent, ".other.tmp-0123456789ab").name,
            _staging_like(parent, ".out.tmp-abc").name,
            _staging_like(parent, ".out.old-0123456789ab").name,
            _staging_like(parent, "out.tmp-0123456789ab").name]
    (parent / ".out.tmp-00000000000f").symlink_to(parent / ".other.tmp-0123456789ab")
    keep.append(".out.tmp-00000000000f")
    before = {name: _snapshot(parent / name) for name in keep}
    try:
        zoo.export_run(run.path, output, log=lambda *_: None)
    finally:
        os.close(holder)
    assert (output / "model.json").is_file()
    assert sorted(p.name for p in parent.iterdir()) == sorted([*keep, "out"])
    assert killed not in keep
    assert {name: _snapshot(parent / name) for name in keep} == before


def test_stale_staging_gives_back_an_export_moved_aside(tmp_path):
    """Killed between the two renames (no renameat2): the old export is moved back, not lost."""
    output = tmp_path / "out"
    stale = _staging_like(tmp_path, ".out.tmp-0123456789ab")
    (stale / "previous").mkdir()
    (stale / "previous" / "model.json").write_text("the old export")
    assert exporter.remove_stale_staging(output) == [stale]
    assert (output / "model.json").read_text() == "the old export"
    assert _leftovers(tmp_path) == []


def test_export_uses_no_system_temporary_directory(run, tmp_path, monkeypatch):
    """Every temporary file of an export lives in its staging directory."""
    import tempfile

    systmp = tmp_path / "systmp"
    systmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(systmp))
    made = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        path = real_mkdtemp(*args, **kwargs)
        made.append(path)
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    zoo.export_run(run.path, tmp_path / "out", log=lambda *_: None)
    # Each in <parent>/.out.tmp-<hex>/tmp/, the staging directory's scratch directory.
    assert made and all(pathlib.Path(p).parent.name == "tmp" and pathlib.Path(
        p).parent.parent.name.startswith(".out.tmp-") for p in made), made
    assert list(systmp.iterdir()) == []


def test_chosen_checkpoint_and_its_metrics(exports, tmp_path):
    run = exports.copy_run("rnn", tmp_path / "run")
    ckpt = run.latest_checkpoint()
    result = zoo.export_run(run.path, tmp_path / "out", checkpoint=ckpt,
                                 log=lambda *_: None)
    assert result.metadata.checkpoint == os.path.basename(ckpt)
    assert result.metadata.val_perplexity_source == "metrics.jsonl, epoch 5"
    with pytest.raises(exporter.ExportError, match="is not a checkpoint"):
        zoo.export_run(run.path, tmp_path / "out", checkpoint=ckpt + "-missing")
    # A checkpoint of another architecture is refused with the config named.
    other = exports.copy_run("lstm", tmp_path / "other")
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


def test_export_cli_run_without_checkpoint(exports, tmp_path):
    run = exports.copy_run("rnn", tmp_path / "run")
    for f in run.checkpoint_dir.iterdir():
        f.unlink()
    proc = _export_cli(f"--workdir={run.path}")
    assert proc.returncode != 0
    assert "holds no checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    assert not (run.path / "export").exists() and _leftovers(run.path) == []
