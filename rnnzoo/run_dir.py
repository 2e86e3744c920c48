"""The run directory: everything a training run leaves behind, and the contract readers rely on.

    <workdir>/config.json      the run's config (a task's `rnnzoo.config.TrainConfig`)
    <workdir>/vocab.json       the Vocabulary (rnnzoo.data.vocab format)
    <workdir>/metrics.jsonl    one JSON record per epoch (or per report of a step-measured run)
    <workdir>/samples.txt      generated text at each report
    <workdir>/checkpoints/     tf.train.CheckpointManager checkpoints (object key "model")
    <workdir>/tensorboard/     TensorBoard scalars and text samples

Training writes it; `export.py` and sampling rebuild the model from it alone. Files are written
atomically (a temporary file, then `os.replace`), so a killed run never leaves a half-written one.
"""

from __future__ import annotations

import json
import pathlib

import tensorflow as tf

from rnnzoo.config import TrainConfig, upgrade_legacy
from rnnzoo.data.vocab import Vocabulary
from rnnzoo.files import write_text_atomic


class RunDirError(ValueError):
    """The run directory is missing, incomplete, or does not match the requested run."""


class RunDir:
    """Paths and readers/writers of one run directory."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.config_path = self.path / "config.json"
        self.vocab_path = self.path / "vocab.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.samples_path = self.path / "samples.txt"
        self.checkpoint_dir = self.path / "checkpoints"
        self.tensorboard_dir = self.path / "tensorboard"

    def exists(self) -> bool:
        return self.config_path.exists()

    # ------------------------------------------------------------------------ writing

    def start(self, config: TrainConfig, vocab: Vocabulary, *, resume: bool) -> None:
        """Creates the run directory, or checks that a resumed one matches `config` and `vocab`."""
        if resume:
            if not self.exists():
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
        elif self.exists():
            raise RunDirError(f"{self.path} already holds a run; pass --resume to continue it, "
                              "or choose another --workdir")
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.config_path, config.to_json() + "\n")
        vocab.save(self.vocab_path)

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

    def read_vocab(self) -> Vocabulary:
        if not self.vocab_path.exists():
            raise RunDirError(f"{self.path} is incomplete: {self.vocab_path} is missing")
        return Vocabulary.load(self.vocab_path)

    def read_metrics(self) -> list[dict]:
        if not self.metrics_path.exists():
            return []
        with open(self.metrics_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def checkpoint(self, model, **extra) -> tf.train.Checkpoint:
        """The checkpoint object layout shared by training and export."""
        return tf.train.Checkpoint(model=model, **extra)

    def latest_checkpoint(self) -> str | None:
        return tf.train.latest_checkpoint(str(self.checkpoint_dir))
