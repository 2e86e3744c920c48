"""Checkpoints of a run: model, optimizer and the epoch reached, via tf.train.CheckpointManager.

A checkpoint is taken only at the end of an epoch whose loss was finite, so the newest one is
always a good one. TensorFlow writes the data files first and the `checkpoint` index last, so a
run killed while saving still resumes from the previous checkpoint.
"""

from __future__ import annotations

import tensorflow as tf

from rnnzoo.run_dir import RunDir


class Checkpoints:
    """Saves and restores `(model, optimizer, epoch)` under `run_dir.checkpoint_dir`."""

    def __init__(self, run_dir: RunDir, model, optimizer, *, max_to_keep: int = 3):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.checkpoint = run_dir.checkpoint(model, optimizer=optimizer, epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(run_dir.checkpoint_dir), max_to_keep=max_to_keep,
            checkpoint_name="ckpt")

    def save(self, epoch: int) -> str:
        self.epoch.assign(epoch)
        return self.manager.save(checkpoint_number=epoch)

    def restore_latest(self) -> int:
        """Restores the newest checkpoint; returns the number of epochs it had completed."""
        path = self.manager.latest_checkpoint
        if path is None:
            return 0
        self.checkpoint.restore(path).assert_existing_objects_matched()
        return int(self.epoch.numpy())

    @property
    def latest(self) -> str | None:
        return self.manager.latest_checkpoint
