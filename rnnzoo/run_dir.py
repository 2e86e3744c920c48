"""The run directory: everything a training run leaves behind, and the contract readers rely on.

    <workdir>/config.json      the run's config (a task's `rnnzoo.config.TrainConfig`)
    <workdir>/vocab.json       the Vocabulary (rnnzoo.data.vocab format)
    <workdir>/metrics.jsonl    one JSON record per epoch (or per report of a step-measured run)
    <workdir>/samples.txt      generated text at each report
    <workdir>/checkpoints/     tf.train.CheckpointManager checkpoints (object key "model"):
                               `checkpoint` (the state: which ckpt-N is the latest) and, per
                               checkpoint, ckpt-N.index and ckpt-N.data-SSSSS-of-TTTTT
    <workdir>/tensorboard/     TensorBoard scalars and text samples
    <workdir>/train.lock       the lock file of training (empty, or the pid of the last run)

Training writes it; `export.py` and sampling rebuild the model from it alone. Files are written
atomically (a temporary file, then `os.replace`), so a killed run never leaves a half-written one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pathlib
import re

import tensorflow as tf
from google.protobuf import text_format
from tensorflow.python.training.checkpoint_state_pb2 import CheckpointState

from rnnzoo.config import TrainConfig, upgrade_legacy
from rnnzoo.data.seq2seq import FORMAT as SEQ2SEQ_VOCAB_FORMAT
from rnnzoo.data.seq2seq import Seq2SeqVocabulary
from rnnzoo.data.vocab import Vocabulary
from rnnzoo.files import write_text_atomic

# ckpt-<N>.index and ckpt-<N>.data-<shard>-of-<shards>, as tf.train.CheckpointManager names them.
_INDEX = re.compile(r"ckpt-(\d+)\.index")
_DATA = re.compile(r"(ckpt-\d+)\.data-(\d+)-of-(\d+)")


class RunDirError(ValueError):
    """The run directory is missing, incomplete, damaged, in use, or does not match the
    requested run; the message names the file or directory at fault."""


class RunDir:
    """Paths and readers/writers of one run directory, and the rules training follows there.

    A training process calls `start(config, vocab, resume=...)`, which checks the rules below
    and locks the directory, writing nothing else; `begin()` once it is about to train (for a
    resumed run: after its checkpoint was restored); `release()` (or leaves the `with` block of
    `start`) at the end.

    - **One process at a time.** `start` takes an exclusive `fcntl.flock` on `train.lock` in the
      directory and holds it until `release()`; the OS drops it when the process exits or dies,
      so a killed run never leaves a stale lock. A second process is refused with a RunDirError
      naming the directory (and the pid holding it).
    - **A fresh run never mixes with an old one.** Without `resume`, a directory that holds a
      run's results (a checkpoint: `checkpoints/checkpoint`, a `ckpt-N.index` or data file; or
      records in `metrics.jsonl`) is refused, with or without `config.json`, and nothing there
      is changed. Two cases hold nothing to resume, and a fresh run takes them over: a run that
      failed at start (`config.json` and `vocab.json`, no checkpoint and no metrics), and a run
      that diverged before its first checkpoint (no checkpoint; `metrics.jsonl` ends in its
      `diverged` record). `begin()` then starts `metrics.jsonl`, `samples.txt` and the
      TensorBoard events afresh.
    - **The identity is written when training begins.** `config.json` and `vocab.json` are
      written by `begin()`, after every check and the restore, never by a run that is refused
      (a resumed run rewrites `config.json`, whose resumable fields may have changed).
    - **Resume changes nothing until its checkpoint is restored.** `resume` needs `config.json`
      and `vocab.json` matching the run. The newest checkpoint is `checkpoints/checkpoint`'s;
      when that state file is unreadable or missing, the newest complete checkpoint found by its
      files (ckpt-N.index and every data shard) is used and `find_latest_checkpoint` says so
      (the trainer logs it; `begin()` rewrites the state file). A state file naming a missing
      checkpoint, an unreadable state with no complete checkpoint, or garbage in a checkpoint's
      files is a RunDirError naming the file, and nothing is changed. A run already at its
      `num_epochs` / `train_steps` has nothing to do: nothing is written.
    - **Bad directories are clear errors:** a path that is a file, a directory that cannot be
      created, a read-only directory: a RunDirError naming the path.
    """

    LOCK_FILE = "train.lock"  # Not hidden: hidden names are export's staging.

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.config_path = self.path / "config.json"
        self.vocab_path = self.path / "vocab.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.samples_path = self.path / "samples.txt"
        self.checkpoint_dir = self.path / "checkpoints"
        self.checkpoint_state_path = self.checkpoint_dir / "checkpoint"
        self.tensorboard_dir = self.path / "tensorboard"
        self.lock_path = self.path / self.LOCK_FILE
        self._lock_fd: int | None = None
        self._started: tuple[TrainConfig, Vocabulary, bool] | None = None

    def exists(self) -> bool:
        return self.config_path.exists()

    # ------------------------------------------------------------------------ starting a run

    def start(self, config: TrainConfig, vocab: Vocabulary, *, resume: bool) -> RunDir:
        """Checks that this run may train here and locks the directory (see the class
        docstring); writes nothing but the lock file. Returns self, whose `with` block releases
        the lock."""
        self._check_path()
        self._check_start(config, vocab, resume)
        self._lock()
        try:
            self._check_start(config, vocab, resume)  # Again, now that no one else can write.
        except BaseException:
            self.release()
            raise
        self._started = (config, vocab, resume)
        return self

    def begin(self) -> None:
        """Training begins: writes `config.json` and `vocab.json` given to `start()`; a fresh
        run empties `metrics.jsonl`, `samples.txt` and the TensorBoard events (which `start()`
        found to hold nothing to resume); a resumed run whose checkpoint state was unreadable
        gets it rewritten from the checkpoints found by their files."""
        if self._started is None:
            raise RuntimeError("RunDir.begin() before start()")
        config, vocab, resume = self._started
        if resume:
            self._repair_checkpoint_state()
        else:
            for path in (self.metrics_path, self.samples_path, *self._event_files()):
                path.unlink(missing_ok=True)
        write_text_atomic(self.config_path, config.to_json() + "\n")
        vocab.save(self.vocab_path)

    def release(self) -> None:
        """Releases the lock taken by `start()` (the OS does it anyway when the process ends)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # Closing the last descriptor releases the flock.
            self._lock_fd = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _check_path(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"the run directory {self.path} is a file, not a directory; "
                              "choose another --workdir")
        if not self.path.exists():
            return
        written = [self.path, self.metrics_path, self.samples_path, self.checkpoint_dir,
                   self.tensorboard_dir, self.lock_path]
        for path in written:
            mode = os.W_OK | (os.X_OK if path.is_dir() else 0)
            if path.exists() and not os.access(path, mode):
                what = "" if path == self.path else f" ({path} is not writable)"
                raise RunDirError(f"the run directory {self.path} is read-only{what}; make it "
                                  "writable or choose another --workdir")

    def _check_start(self, config: TrainConfig, vocab: Vocabulary, resume: bool) -> None:
        if resume:
            if not self.exists():
                found = self._results()
                if found:
                    raise RunDirError(
                        f"--resume: {self.config_path} is missing, so the run in {self.path} "
                        f"({', '.join(found)}) cannot be resumed; restore config.json, or "
                        "choose another --workdir")
                raise RunDirError(f"--resume: {self.path} holds no run (no config.json); "
                                  "start a new run without --resume")
            saved = self.read_config(type(config))
            resumable = config.resumable_fields()
            differing = [
                f"{name}: saved {getattr(saved, name)!r}, now {getattr(config, name)!r}"
                for name in config.to_dict()
                if name not in resumable and getattr(saved, name) != getattr(config, name)
            ]
            if differing:
                raise RunDirError(f"--resume: the config differs from the run in {self.path}: "
                                  + "; ".join(differing))
            if self.read_vocab() != vocab:
                raise RunDirError(f"--resume: the vocabulary built now differs from "
                                  f"{self.vocab_path}; the corpus or vocabulary options changed")
            self.read_metrics()  # A damaged metrics file is found now, before any change.
            return
        found = self._results()
        if not found or self._diverged_before_first_checkpoint():
            return
        if self.exists():
            raise RunDirError(f"{self.path} already holds a run; pass --resume to continue it, "
                              "or choose another --workdir")
        raise RunDirError(f"{self.path} holds a run's results ({', '.join(found)}) without "
                          f"{self.config_path.name}; a new run never mixes with them: choose "
                          "another --workdir")

    def _results(self) -> list[str]:
        """What in the directory a fresh run must not overwrite: checkpoints, metrics."""
        found = []
        if self.has_checkpoints():
            found.append(f"checkpoints in {self.checkpoint_dir}")
        if self.metrics_path.exists() and self.metrics_path.read_bytes().strip():
            found.append(f"metrics in {self.metrics_path}")
        return found

    def has_checkpoints(self) -> bool:
        """True if `checkpoints/` holds a checkpoint state file or any checkpoint file."""
        if not self.checkpoint_dir.is_dir():
            return False
        return any(name == "checkpoint" or _INDEX.fullmatch(name) or _DATA.fullmatch(name)
                   for name in os.listdir(self.checkpoint_dir))

    def _diverged_before_first_checkpoint(self) -> bool:
        if self.has_checkpoints():
            return False
        try:
            records = self.read_metrics()
        except RunDirError:
            return False
        return bool(records) and records[-1].get("diverged") is True

    def _event_files(self) -> list[pathlib.Path]:
        if not self.tensorboard_dir.is_dir():
            return []
        return [p for p in self.tensorboard_dir.rglob("events.out.tfevents.*") if p.is_file()]

    def _lock(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise RunDirError(f"cannot create or write the run directory {self.path}: "
                              f"{e.strerror or e}; choose another --workdir") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                pid = f" (pid {holder})" if holder.isdigit() else ""
                raise RunDirError(f"{self.path} is in use by another training process{pid}; "
                                  "wait for it to end, or choose another --workdir") from e
            raise RunDirError(f"cannot lock {self.lock_path}: {e.strerror or e}") from e
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._lock_fd = fd

    # ------------------------------------------------------------------------ writing

    def append_metrics(self, record: dict) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")

    def truncate_metrics(self, last: int, key: str = "epoch") -> None:
        """Drops records whose `key` ("epoch" or "step") is after `last` (a resumed run redoes
        those epochs or steps)."""
        kept = [r for r in self.read_metrics() if r.get(key, 0) <= last]
        write_text_atomic(self.metrics_path,
                          "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n"
                                  for r in kept))

    def append_samples(self, text: str) -> None:
        with open(self.samples_path, "a", encoding="utf-8") as f:
            f.write(text + "\n")

    # ------------------------------------------------------------------------ reading

    def read_config_dict(self) -> dict:
        """`config.json` as a dict, with `task` (older files: a character LM)."""
        if not self.config_path.exists():
            raise RunDirError(f"{self.path} is not a run directory: {self.config_path} is missing")
        try:
            d = json.loads(self.config_path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise RunDirError(f"{self.config_path} is not a valid rnnzoo config: {e}") from e
        if not isinstance(d, dict):
            raise RunDirError(f"{self.config_path} is not a valid rnnzoo config: not a JSON "
                              "object")
        return upgrade_legacy(d)

    def read_config(self, config_class: type[TrainConfig]) -> TrainConfig:
        """`config.json` as a `config_class` (the task's config)."""
        d = self.read_config_dict()
        if d.get("task") != config_class.TASK:
            raise RunDirError(f"{self.config_path} is a {d.get('task')!r} run, not "
                              f"{config_class.TASK!r}")
        try:
            return config_class.from_dict(d)
        except (ValueError, TypeError) as e:
            raise RunDirError(f"{self.config_path} is not a valid rnnzoo config: {e}") from e

    def read_vocab(self) -> Vocabulary | Seq2SeqVocabulary:
        """The run's vocabulary: a `Vocabulary` (a `WordVocabulary` for word2vec) or, for a
        seq2seq run, a `Seq2SeqVocabulary`, by the file's `format`."""
        if not self.vocab_path.exists():
            raise RunDirError(f"{self.path} is incomplete: {self.vocab_path} is missing")
        try:
            if self._vocab_format() == SEQ2SEQ_VOCAB_FORMAT:
                return Seq2SeqVocabulary.load(self.vocab_path)
            return Vocabulary.load(self.vocab_path)
        except ValueError as e:
            raise RunDirError(str(e)) from e

    def _vocab_format(self) -> str | None:
        try:
            data = json.loads(self.vocab_path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None  # `Vocabulary.load` names the damage
        return data.get("format") if isinstance(data, dict) else None

    def read_metrics(self) -> list[dict]:
        """The records of `metrics.jsonl`; a line that is not a JSON object is a RunDirError
        naming the file and line, except an unterminated last line (a killed append), which is
        skipped."""
        if not self.metrics_path.exists():
            return []
        with open(self.metrics_path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        records = []
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as e:
                if n == len(lines) and not line.endswith("\n"):
                    break
                raise RunDirError(f"{self.metrics_path}:{n} is not a JSON record: {e}") from e
            if not isinstance(record, dict):
                raise RunDirError(f"{self.metrics_path}:{n} is not a JSON object")
            records.append(record)
        return records

    def checkpoint(self, model, **extra) -> tf.train.Checkpoint:
        """The checkpoint object layout shared by training and export."""
        return tf.train.Checkpoint(model=model, **extra)

    # ------------------------------------------------------------------------ checkpoints

    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint's prefix (`.../checkpoints/ckpt-N`), or None if there is none;
        see `find_latest_checkpoint`."""
        return self.find_latest_checkpoint()[0]

    def find_latest_checkpoint(self) -> tuple[str | None, str]:
        """`(prefix or None, note)`: the checkpoint a resumed run restores.

        The state file's latest checkpoint, which must be complete; if the state file is
        unreadable or missing, the newest complete checkpoint found by its files, with a note
        saying so (else the note is ""). Raises RunDirError naming the file when the state names
        a checkpoint whose files are missing, or is unreadable with no complete checkpoint.
        """
        state, problem = self._read_checkpoint_state()
        if state is not None:
            prefix = state.model_checkpoint_path
            if not os.path.isabs(prefix):
                prefix = os.path.join(self.checkpoint_dir, prefix)
            missing = self._missing_files(prefix)
            if missing:
                raise RunDirError(f"{self.checkpoint_state_path} names the checkpoint {prefix}, "
                                  f"but {missing} is missing; the checkpoints are damaged")
            return prefix, ""
        complete = self._complete_checkpoints()
        if not complete:
            if problem is None and not self.has_checkpoints():
                return None, ""
            what = problem or f"{self.checkpoint_state_path} is missing"
            raise RunDirError(f"{what}, and {self.checkpoint_dir} holds no complete checkpoint "
                              "(ckpt-N.index with all its data files) to use instead")
        prefix = complete[-1]
        what = problem or f"{self.checkpoint_state_path} is missing"
        return prefix, f"{what}; found {os.path.basename(prefix)} by its files"

    def checkpoint_error(self, prefix: str, error: BaseException) -> RunDirError:
        """A RunDirError naming the damaged file of checkpoint `prefix`, which failed to
        restore with `error`."""
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if isinstance(error, AssertionError):
            return RunDirError(f"the checkpoint {prefix} does not match the model of "
                               f"{self.config_path}: {detail}")
        try:
            tf.train.load_checkpoint(prefix)
        except (tf.errors.OpError, ValueError, IndexError):
            return RunDirError(f"the checkpoint {prefix} is damaged: {prefix}.index cannot be "
                               f"read ({detail})")
        data = sorted(os.path.join(os.path.dirname(prefix), n)
                      for n in os.listdir(os.path.dirname(prefix))
                      if (m := _DATA.fullmatch(n)) and m.group(1) == os.path.basename(prefix))
        return RunDirError(f"the checkpoint {prefix} is damaged: its data file "
                           f"{', '.join(data) or prefix + '.data-*'} cannot be read ({detail})")

    def _read_checkpoint_state(self) -> tuple[CheckpointState | None, str | None]:
        """`(state, None)`, or `(None, why it cannot be read)`, or `(None, None)` if absent."""
        path = self.checkpoint_state_path
        if not path.exists():
            return None, None
        try:
            state = text_format.Merge(path.read_bytes().decode("utf-8"), CheckpointState())
        except OSError as e:
            return None, f"{path} cannot be read ({e.strerror or e})"
        except UnicodeDecodeError:
            return None, f"{path} is damaged (not text)"
        except text_format.ParseError:
            return None, f"{path} is damaged (not a checkpoint state)"
        if not state.model_checkpoint_path:
            return None, f"{path} is damaged (it names no checkpoint)"
        return state, None

    def _missing_files(self, prefix: str) -> str | None:
        """The first missing file of checkpoint `prefix` (its index, a data shard), or None."""
        if not os.path.isfile(prefix + ".index"):
            return prefix + ".index"
        directory, name = os.path.split(prefix)
        try:
            names = os.listdir(directory)
        except OSError:
            return prefix + ".data-*"
        shards = [m for n in names if (m := _DATA.fullmatch(n)) and m.group(1) == name]
        if not shards:
            return prefix + ".data-00000-of-*"
        total = int(shards[0].group(3))
        present = {int(m.group(2)) for m in shards if int(m.group(3)) == total}
        for i in range(total):
            if i not in present:
                return f"{prefix}.data-{i:05d}-of-{total:05d}"
        return None

    def _complete_checkpoints(self) -> list[str]:
        """Prefixes of the checkpoints whose files are all there, oldest first."""
        if not self.checkpoint_dir.is_dir():
            return []
        numbers = sorted(int(m.group(1)) for n in os.listdir(self.checkpoint_dir)
                         if (m := _INDEX.fullmatch(n)))
        prefixes = [os.path.join(self.checkpoint_dir, f"ckpt-{n}") for n in numbers]
        return [p for p in prefixes if self._missing_files(p) is None]

    def _repair_checkpoint_state(self) -> None:
        """Rewrites an unreadable or missing state file from the complete checkpoints found by
        their files, so that the CheckpointManager keeps them in its rotation."""
        if self._read_checkpoint_state()[0] is not None:
            return
        complete = self._complete_checkpoints()
        if not complete:
            return
        names = [os.path.basename(p) for p in complete]
        # With their times (the index files'), which the manager needs to rotate them out.
        times = [os.path.getmtime(p + ".index") for p in complete]
        repaired = CheckpointState(model_checkpoint_path=names[-1],
                                   all_model_checkpoint_paths=names,
                                   all_model_checkpoint_timestamps=times,
                                   last_preserved_timestamp=min(times) - 1)
        write_text_atomic(self.checkpoint_state_path, text_format.MessageToString(repaired))
