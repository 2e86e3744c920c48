"""Every CLI with bad input: one `error:` line naming the argument, a non-zero exit, no traceback,
and nothing changed outside the run directory.

Each row of `CASES` runs one CLI in a subprocess (`train.py`, `export.py`,
`python -m rnnzoo.generate`, `python -m rnnzoo.plot`) and asserts:

* a non-zero exit status;
* exactly one stderr line starting with `error:`, and it is the first line (a pointer to
  `--helpfull` may follow it, never a page of flag help first), naming the argument at fault;
* no "Traceback" anywhere;
* no file created, changed or deleted in the scratch directory (the process's working and
  temporary directories, TFDS's data directory, the fixtures) except under the run directory
  the row names, and none created or deleted in the repository (whose files a developer may
  be editing meanwhile).

No row trains: each fails before a model is built. Every
`train.py` row and most `export.py` rows import TensorFlow (about 5 s each): keep to one row per
kind of mistake. The network is never used: every row runs with its HTTP(S) proxy set to a
closed port on localhost, and with `$RNNZOO_DATA_DIR` set to the real corpora unless the row is
about having no data. A new task (word2vec, seq2seq) adds its rows here.
`test_a_bug_keeps_its_traceback` checks the other side: an unexpected
exception (here a plain ValueError) is not reported as bad input.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

CLIS = {
    "train": [str(REPO / "train.py")],
    "export": [str(REPO / "export.py")],
    "generate": ["-m", "rnnzoo.generate"],
    "plot": ["-m", "rnnzoo.plot"],
    "translate": ["-m", "rnnzoo.translate"],
}
# TensorFlow's own start-up lines, written to stderr before absl's logging is set up.
TF_NOISE = ("WARNING: All log messages", "I0000", "E0000", "W0000")


# (id, cli, args, what the error line must name, marks). In args and names: {run} is the run
# directory (which the CLI may change), {file} a plain file, {notrun} a directory holding a file
# but no run, {badvocab} a run directory whose vocab.json is garbage, {w2vrun} a word2vec run
# directory with its config and vocabulary but no checkpoint, {missing} a path that does not
# exist. `offline` rows run without $RNNZOO_DATA_DIR;
# `prepares` rows may prepare their corpus in TFDS's data directory before they fail.
CASES = [
    # train.py: flags absl refuses.
    ("train-unknown-flag", "train", ["--skip_window=2"], "skip_window"),
    ("train-int-type", "train", ["--num_hiddens=abc"], "--num_hiddens"),
    ("train-unknown-model", "train", ["--model=transformer"],
     "--model=transformer: value should be one of"),
    ("train-unknown-preset", "train", ["--preset=nope"], "--preset"),
    # train.py: values the task's config refuses (CharLMConfig.validate).
    ("train-num_hiddens-0", "train", ["--num_hiddens=0"], "`num_hiddens` must be >= 1, got 0"),
    ("train-clip_norm-negative", "train", ["--clip_norm=-1"], "`clip_norm` must be positive"),
    ("train-lr-0", "train", ["--lr=0"], "`lr`"),
    ("train-temperature-inf", "train", ["--temperature=inf"], "`temperature`"),
    ("train-temperature-negative", "train", ["--temperature=-1"], "`temperature`"),
    ("train-dropout-1.5", "train", ["--dropout=1.5"], "`dropout`"),
    ("train-batch_size-0", "train", ["--batch_size=0"], "`batch_size`"),
    ("train-model-cell-conflict", "train", ["--model=lstm", "--cell=gru"],
     "`cell` is 'lstm' for --model=lstm"),
    # train.py: paths and data.
    ("train-unknown-corpus", "train", ["--corpus=no_such_corpus"], "no_such_corpus"),
    ("train-workdir-is-a-file", "train", ["--workdir={file}"], "--workdir"),
    ("train-offline-without-data", "train", ["--corpus=time_machine/d2l"], "RNNZOO_DATA_DIR",
     "offline"),
    ("train-batch-larger-than-corpus", "train",
     ["--corpus=time_machine/d2l", "--batch_size=10000", "--num_hiddens=2"], "batch_size",
     "prepares"),
    # train.py, word2vec
    ("train-skipgram-num-skips", "train", ["--model=skipgram", "--num_skips=3"], "num_skips"),
    ("train-skipgram-pairs-in-steps", "train", ["--model=skipgram", "--pairs=word2vec"],
     "pairs=word2vec"),
    ("train-skipgram-char-flag", "train", ["--model=skipgram", "--num_hiddens=8"],
     "num_hiddens"),
    ("train-skipgram-vocab-too-small", "train", ["--model=skipgram", "--vocab_max_size=10"],
     "`num_sampled` (64)", "prepares"),
    # train.py, seq2seq
    ("train-seq2seq-buckets", "train", ["--model=seq2seq", "--buckets=abc"], "`buckets`"),
    ("train-seq2seq-char-flag", "train", ["--model=seq2seq", "--cell=gru"], "cell"),
    # export.py
    ("export-unknown-flag", "export", ["--workdir={run}", "--bogus=1"], "bogus"),
    ("export-positional", "export", ["--workdir={run}", "extra"], "unexpected arguments"),
    ("export-no-workdir", "export", [], "--workdir"),
    ("export-bad-quantize", "export", ["--workdir={run}", "--quantize=int4"], "--quantize"),
    ("export-bool-type", "export", ["--workdir={run}", "--compute_val_perplexity=sure"],
     "--compute_val_perplexity"),
    ("export-not-a-run", "export", ["--workdir={notrun}"], "{notrun}"),
    ("export-output-is-a-file", "export", ["--workdir={notrun}", "--output={file}"],
     "--output"),
    ("export-corrupt-vocab", "export", ["--workdir={badvocab}"], "vocab.json"),
    # export.py, word2vec
    ("export-word2vec-no-checkpoint", "export", ["--workdir={w2vrun}"], "{w2vrun}"),
    ("export-word2vec-quantize", "export", ["--workdir={w2vrun}", "--quantize=dynamic"],
     "--quantize"),
    ("export-tsne-char-lm", "export", ["--workdir={badvocab}", "--tsne"], "--tsne"),
    # python -m rnnzoo.generate
    ("generate-unknown-flag", "generate", ["--model={missing}", "--prefix=a", "--bogus"],
     "bogus"),
    ("generate-positional", "generate", ["--model={missing}", "--prefix=a", "extra"],
     "unexpected arguments"),
    ("generate-no-prefix", "generate", ["--model={missing}"], "--prefix"),
    ("generate-no-model", "generate", ["--prefix=a"], "--model"),
    ("generate-missing-model", "generate", ["--model={missing}", "--prefix=a"], "--model"),
    ("generate-model-is-not-an-export", "generate", ["--model={notrun}", "--prefix=a"],
     "--model"),
    ("generate-num_chars-type", "generate", ["--model={missing}", "--prefix=a",
                                             "--num_chars=many"], "--num_chars"),
    ("generate-num_chars-too-large", "generate", ["--model={missing}", "--prefix=a",
                                                  "--num_chars=10001"], "`num_chars`"),
    ("generate-num_chars-negative", "generate", ["--model={missing}", "--prefix=a",
                                                 "--num_chars=-1"], "`num_chars`"),
    ("generate-empty-prefix", "generate", ["--model={missing}", "--prefix="], "`prefix`"),
    ("generate-temperature-inf", "generate", ["--model={missing}", "--prefix=a",
                                              "--temperature=inf"], "`temperature`"),
    ("generate-temperature-negative", "generate", ["--model={missing}", "--prefix=a",
                                                   "--temperature=-1"], "`temperature`"),
    ("generate-seed-too-large", "generate", ["--model={missing}", "--prefix=a",
                                             "--seed=4294967296"], "`seed`"),
    # python -m rnnzoo.translate
    ("translate-no-model", "translate", ["--text=a"], "--model"),
    ("translate-not-an-export", "translate", ["--model={notrun}", "--text=a"], "--model"),
    ("translate-beam-0", "translate", ["--model={missing}", "--text=a", "--beam_width=0"],
     "`beam_width`"),
    ("translate-no-text", "translate", ["--model={missing}"], "`text`"),
    # python -m rnnzoo.plot
    ("plot-unknown-flag", "plot", ["{notrun}", "--output={run}/x.png", "--bogus"], "bogus"),
    ("plot-missing-dir", "plot", ["{missing}", "--output={run}/x.png"], "{missing}"),
    ("plot-not-a-run", "plot", ["{notrun}", "--output={run}/x.png"], "{notrun}"),
    ("plot-no-output", "plot", ["{notrun}"], "--output"),
    ("plot-tsne-char-lm", "plot", ["{badvocab}", "--tsne", "--output={run}/x.png"], "'char_lm'"),
    ("plot-tsne-two-runs", "plot", ["{notrun}", "{badvocab}", "--tsne", "--output={run}/x.png"],
     "--tsne"),
    ("plot-tsne-num-words", "plot", ["{w2vrun}", "--tsne", "--num_words=2",
                                     "--output={run}/x.png"], "--num_words"),
]


# Rows whose stderr (TensorFlow's start-up lines aside) must be exactly these lines.
EXACT_STDERR = {
    "train-unknown-flag": [
        "error: Unknown command line flag 'skip_window'",
        "(`python train.py --model=lstm --helpfull` lists the flags of that model)"],
    "train-skipgram-char-flag": [
        "error: Unknown command line flag 'num_hiddens'",
        "(`python train.py --model=skipgram --helpfull` lists the flags of that model)"],
}


def _params():
    for case in CASES:
        name, cli, args, names, *rest = case
        marks = [m for m in rest if not isinstance(m, str)]
        yield pytest.param(cli, args, names, "offline" in rest, "prepares" in rest,
                           EXACT_STDERR.get(name), id=name, marks=marks)


@pytest.fixture(scope="module")
def closed_port():
    """A localhost port nothing listens on: a proxy there refuses every connection at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scratch(tmp_path: pathlib.Path) -> dict[str, str]:
    """The fixtures the rows name, in a fresh scratch directory."""
    for name in ("cwd", "tmp", "tfds", "notrun", "badvocab", "w2vrun"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "file").write_text("not a directory\n")
    (tmp_path / "notrun" / "notes.txt").write_text("my notes\n")
    (tmp_path / "badvocab" / "config.json").write_text('{"task": "char_lm", "model": "lstm"}\n')
    (tmp_path / "badvocab" / "vocab.json").write_text("garbage\n")
    (tmp_path / "w2vrun" / "config.json").write_text('{"task": "word2vec", "model": "skipgram"}\n')
    (tmp_path / "w2vrun" / "vocab.json").write_text(
        '{"format": "rnnzoo.word_vocabulary", "version": 1, "unk_token": "<unk>", '
        '"tokens": ["<unk>", "the", "of"], "counts": [1, 3, 2]}\n')
    return {"run": str(tmp_path / "run"), "file": str(tmp_path / "file"),
            "notrun": str(tmp_path / "notrun"), "badvocab": str(tmp_path / "badvocab"),
            "w2vrun": str(tmp_path / "w2vrun"), "missing": str(tmp_path / "missing")}


# Not watched in the repository: git's own files, caches, virtualenvs and run directories (a
# developer's own training runs may write there while the tests run).
_UNWATCHED = {".git", "__pycache__", ".pytest_cache", ".ruff_cache", ".venv", ".ci-venv", "runs",
              "exports"}


def _snapshot(root: pathlib.Path) -> dict[str, tuple]:
    """Every file and directory under `root` (but `_UNWATCHED`): size and mtime of files."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _UNWATCHED]
        entries[dirpath] = ("dir",)
        for f in filenames:
            path = os.path.join(dirpath, f)
            st = os.lstat(path)
            entries[path] = (st.st_size, st.st_mtime_ns)
    return entries


def run_cli(cli: str, args: list[str], *, cwd, env: dict, timeout: float = 120):
    return subprocess.run([sys.executable, *CLIS[cli], *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def cli_env(tmp_path: pathlib.Path, closed_port: int, *, data_dir=None) -> dict:
    """The environment of a row: this checkout first on the path, scratch temporary and TFDS
    directories, the corpora (or none), and every HTTP(S) request sent to a closed port."""
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                                "rnnzoo_data_dir", "rnnzoo_tfds_dir")}
    proxy = f"http://127.0.0.1:{closed_port}"
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path / "tmp"),
               RNNZOO_TFDS_DIR=str(tmp_path / "tfds"), HTTP_PROXY=proxy, HTTPS_PROXY=proxy,
               http_proxy=proxy, https_proxy=proxy,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    if data_dir is not None:
        env["RNNZOO_DATA_DIR"] = str(data_dir)
    return env


def error_lines(result) -> tuple[list[str], list[str]]:
    """(stderr's lines without TensorFlow's start-up noise, the `error:` lines among them)."""
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and not line.startswith(TF_NOISE)]
    return lines, [line for line in lines if line.startswith("error:")]


@pytest.mark.parametrize("cli, args, names, offline, prepares, exact", list(_params()))
def test_bad_input_ends_with_one_error_line(cli, args, names, offline, prepares, exact, tmp_path,
                                            closed_port, source_dir):
    paths = _scratch(tmp_path)
    args = [a.format(**paths) for a in args]
    names = names.format(**paths)
    if cli == "train" and not any(a.startswith("--workdir") for a in args):
        args.append(f"--workdir={paths['run']}")
    env = cli_env(tmp_path, closed_port, data_dir=None if offline else source_dir)
    allowed = [paths["run"]]
    if prepares:
        allowed.append(str(tmp_path / "tfds"))
    before, repo_before = _snapshot(tmp_path), set(_snapshot(REPO))

    result = run_cli(cli, args, cwd=tmp_path / "cwd", env=env)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    lines, errors = error_lines(result)
    assert len(errors) == 1, output[-3000:]
    if prepares:  # TFDS's preparation lines come first; the error ends the output.
        assert errors[0] in lines[-2:], f"the error does not end:\n{result.stderr[-3000:]}"
    else:
        assert lines[0] == errors[0], f"the error is not the first line:\n{result.stderr[-3000:]}"
        assert len(lines) <= 2, f"more than the error and a pointer:\n{result.stderr[-3000:]}"
    assert names in errors[0]
    if exact is not None:
        assert lines == exact, result.stderr[-3000:]
    if cli == "train":  # refused before the run started: no config.json
        assert not os.path.exists(os.path.join(paths["run"], "config.json"))
    after = _snapshot(tmp_path)
    changed = sorted(p for p in set(before) | set(after)
                     if before.get(p) != after.get(p) and not p.startswith(tuple(allowed)))
    assert not changed, f"{changed} changed; {errors[0]}"
    assert set(_snapshot(REPO)) == repo_before, "files created or deleted in the repository"


# --------------------------------------------------------------------- bugs keep a traceback

# A CLI run with one of its steps replaced by `boom`, which raises a plain ValueError: not bad
# input but a bug, which must not be dressed up as an `error:` line.
BOOM = "def boom(*args, **kwargs):\n    raise ValueError('simulated bug')\n"
BUGS = {
    "train": ("import rnnzoo.tasks.char_lm as m; m.train = boom",
              "runpy.run_path({train!r}, run_name='__main__')", ["--workdir={run}"]),
    "export": ("import rnnzoo.zoo as m; m.export_run = boom",
               "runpy.run_path({export!r}, run_name='__main__')", ["--workdir={run}"]),
    "generate": ("from rnnzoo.export.metadata import ExportMetadata as m; m.load = boom",
                 "runpy.run_module('rnnzoo.generate', run_name='__main__', alter_sys=True)",
                 ["--model={file}.tflite", "--prefix=a"]),
}


@pytest.mark.parametrize("cli", sorted(BUGS))
def test_a_bug_keeps_its_traceback(cli, tmp_path, closed_port, source_dir):
    paths = _scratch(tmp_path)
    pathlib.Path(paths["file"] + ".tflite").write_bytes(b"not a model")
    patch, run, args = BUGS[cli]
    args = [a.format(**paths) for a in args]
    script = (f"import runpy, sys\n{BOOM}{patch}\nsys.argv = [{cli!r}, *{args!r}]\n"
              + run.format(train=str(REPO / "train.py"), export=str(REPO / "export.py")))
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path / "cwd",
                            env=cli_env(tmp_path, closed_port, data_dir=source_dir),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ValueError: simulated bug" in result.stderr, (
        result.stderr[-3000:])
    assert not error_lines(result)[1], result.stderr[-3000:]
