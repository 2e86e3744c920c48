"""Checkpoints of a run: model, optimizer, epoch, carried state and the state of the random
layers, via tf.train.CheckpointManager.

The global step is the optimizer's iteration count, which the checkpoint holds with the
optimizer; the epoch reached is a variable of its own. A run that carries a recurrent state from
batch to batch across the whole run (the course's batch generator) checkpoints that state too,
so a resumed run continues exactly. A checkpoint is taken only after a finite loss, so the
newest one is always a good one. TensorFlow writes the data files first and the `checkpoint`
index last, so a run killed while saving still resumes from the previous checkpoint.

Restoring reads and changes nothing on disk: the checkpoint to restore is found by
`RunDir.find_latest_checkpoint` (by its files when the state file is unreadable), and a damaged
one is a `RunDirError` naming the file. The CheckpointManager, which reads the state file and
deletes old checkpoints, is made at the first save, after `RunDir.begin()`.

Under a multi-worker strategy only the chief reads and writes the run directory: another worker
saves into a temporary directory it deletes, and on resume takes the chief's restored values
(`rnnzoo.training.distribute.broadcast_from_chief`), so it needs no copy of the checkpoints.
"""

from __future__ import annotations

import tensorflow as tf

from rnnzoo.run_dir import RunDir
from rnnzoo.training import distribute


class Checkpoints:
    """Saves and restores `(model, optimizer, epoch[, carry])` under `run_dir.checkpoint_dir`.

    Args:
        run_dir: the run directory.
        model, optimizer: what is trained.
        max_to_keep: checkpoints kept on disk, oldest deleted first.
        carry: a flat list of tensors shaped like the state carried between batches (of the
            global batch), to be checkpointed too; `None` when no state outlives an epoch.
        strategy: the `tf.distribute.Strategy` trained under (default: the current one).
    """

    def __init__(self, run_dir: RunDir, model, optimizer, *, max_to_keep: int = 3, carry=None,
                 strategy=None):
        self.run_dir = run_dir
        self.optimizer = optimizer
        self.strategy = strategy or tf.distribute.get_strategy()
        self.chief = distribute.is_chief(self.strategy)
        self.max_to_keep = max_to_keep
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        extra = {}
        self.carry = None
        if carry is not None:
            self.carry = [tf.Variable(tf.zeros_like(t), trainable=False, name=f"carry_{i}")
                          for i, t in enumerate(carry)]
            extra["carry"] = self.carry
        # Keras' random layers (dropout) keep their generator state in variables that
        # tf.train.Checkpoint does not find through the model: saved here, a resumed run draws
        # the masks the uninterrupted run would have drawn.
        random_state = [v for v in model.non_trainable_variables if "seed_generator" in v.path]
        if random_state:
            extra["random_state"] = random_state
        self.checkpoint = run_dir.checkpoint(model, optimizer=optimizer, epoch=self.epoch,
                                             **extra)
        self._variables = [*model.variables, *optimizer.variables, self.epoch,
                           *(self.carry or [])]
        self._manager = None
        self.restored: str | None = None  # the prefix `restore_latest` restored
        self.note = ""  # how it was found, when not by the state file

    @property
    def manager(self) -> tf.train.CheckpointManager:
        if self._manager is None:
            self._manager = tf.train.CheckpointManager(
                self.checkpoint, str(self.run_dir.checkpoint_dir), max_to_keep=self.max_to_keep,
                checkpoint_name="ckpt")
        return self._manager

    def save(self, number: int, *, epoch: int = 0, carry=None) -> str | None:
        """Writes `ckpt-<number>` (the epoch, or the step of a run measured in steps); returns
        its prefix (None on a worker that is not the chief, which writes a copy it deletes)."""
        self.epoch.assign(epoch)
        if self.carry is not None and carry is not None:
            for variable, value in zip(self.carry, carry, strict=True):
                variable.assign(value)
        if not self.chief:
            distribute.WorkerCheckpointDir().save(self.checkpoint)
            return None
        return self.manager.save(checkpoint_number=number)

    def restore_latest(self) -> tuple[int, int]:
        """Restores the newest checkpoint; returns `(epoch, global step)` it had reached
        (`(0, 0)` without one). Writes nothing; a damaged checkpoint is a `RunDirError` naming
        the file (see `RunDir.find_latest_checkpoint`), and `note` says when the checkpoint was
        found by its files. Under multi-worker the chief restores and every worker takes its
        values (each worker calls this)."""
        if self.chief:
            self._restore_latest()
        distribute.broadcast_from_chief(self.strategy, self._variables)
        return int(self.epoch.numpy()), int(self.optimizer.iterations.numpy())

    def _restore_latest(self) -> None:
        path, self.note = self.run_dir.find_latest_checkpoint()
        if path is None:
            return
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, IndexError, tf.errors.OpError) as e:
            raise self.run_dir.checkpoint_error(path, e) from e
        self.restored = path

    def restored_carry(self) -> list[tf.Tensor] | None:
        return None if self.carry is None else [tf.identity(v) for v in self.carry]

    @property
    def latest(self) -> str | None:
        """The newest checkpoint saved or restored, or None."""
        return self.manager.latest_checkpoint if self._manager is not None else self.restored
