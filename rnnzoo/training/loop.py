"""The training loop every task shares: epochs or steps, reports, checkpoints, NaN stop, resume.

A task hands the loop a `TrainingPlan`: its compiled `Trainer`, where the batches come from,
how the carried state starts, how to evaluate and what to show at each report. The loop owns
the rest, nanoGPT-style, top to bottom:

    for each batch (an epoch's, or a step-measured stream's):
        loss_sum, count, carry <- trainer.train_step(batch, carry)   # clip + update inside
        every report: train metric over the batches since the last report (exp of the total
            loss over the total count for a language model), validation, samples, TensorBoard
        every report and every `checkpoint_every`: a checkpoint (ckpt-<epoch> or ckpt-<step>)
    a non-finite loss: a `diverged` record, the last good checkpoint kept, `TrainingDiverged`

With `train_steps > 0` the run is measured in optimizer steps: `pred_period` and
`checkpoint_every` count steps, and the stream of batches continues from the global step on
resume (the optimizer's iteration count, restored with the checkpoint), with the carried state
restored too. Otherwise it is measured in epochs, as d2l: the carried state starts at zero each
epoch, and a resumed run restarts at the epoch after its last checkpoint.

Under a `tf.distribute` strategy (the trainer's) the task still hands over global batches and a
global carried state: the loop gives each replica its own rows of them
(`rnnzoo.training.distribute`), gathers the carried state back for a checkpoint, and lets only
the chief write the run directory (metrics, TensorBoard, reports, checkpoints); the others keep
in step and write nothing there. A worker lost mid-run ends every other with `WorkerLost`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import keras
import tensorflow as tf

from rnnzoo.evaluation import perplexity
from rnnzoo.training import distribute
from rnnzoo.training.checkpoints import Checkpoints
from rnnzoo.training.optim import current_learning_rate
from rnnzoo.training.trainer import Trainer

# Epochs with at least this many batches get a progress bar.
PROGBAR_MIN_BATCHES = 200


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclasses.dataclass
class TrainingPlan:
    """What a task gives the loop.

    Attributes:
        trainer: the compiled step (`rnnzoo.training.trainer.Trainer`).
        epoch_batches: `epoch (1-based) -> iterable of batches`, for runs measured in epochs.
        stream: `first_batch -> iterator of (batch, starts_sequence)`, for runs measured in
            steps: the batches from global batch `first_batch` on (endless, or ending when the
            data does), with `starts_sequence` True where the carried state must start again.
        initial_carry: `() -> carry`, the state at the start of a sequence.
        carries_state: True if row r of a batch continues row r of the previous batch.
        evaluate: `() -> dict` of validation metrics (keys prefixed `val_`), or None.
        train_metrics: `(mean loss) -> dict` of the training metrics of a report window.
        annotate: `(record, num_batches) -> dict`, more metrics of a record (e.g. words/s).
        on_report: `(record) -> None`, the task's log lines and samples at each report.
        num_batches_per_epoch: for a progress bar in epoch mode (optional).
    """

    trainer: Trainer
    initial_carry: Callable[[], Any]
    carries_state: bool
    epoch_batches: Callable[[int], Iterable] | None = None
    stream: Callable[[int], Iterator] | None = None
    evaluate: Callable[[], dict] | None = None
    train_metrics: Callable[[float], dict] = lambda mean: {"train_perplexity": perplexity(mean)}
    annotate: Callable[[dict, int], dict] = lambda record, num_batches: {}
    on_report: Callable[[dict], None] = lambda record: None


def fit(plan: TrainingPlan, config, run, checkpoints: Checkpoints, *, resume: bool,
        log=print) -> dict:
    """Trains for `config.num_epochs` epochs or `config.train_steps` steps; returns the last
    metrics record. See the module docstring.

    `run` is a `RunDir` that `start()` checked and locked (on the chief; another worker of a
    multi-worker job never touches it). A resumed run restores its checkpoint before anything
    is written (a damaged one is a `RunDirError`, and nothing changes); a run already at its
    `num_epochs` / `train_steps` logs that there is nothing to do and returns its last record,
    writing nothing. Then `run.begin()` writes the run's identity and training starts (a resumed
    run first drops the metrics after its checkpoint).
    """
    strategy = getattr(plan.trainer, "strategy", None) or tf.distribute.get_strategy()
    try:
        return _fit(plan, config, run, checkpoints, resume, log, strategy)
    except distribute.PEER_ERRORS as e:
        if not distribute.is_multi_worker(strategy):
            raise
        raise distribute.lost_worker_error(e, checkpoints.latest) from e


def _fit(plan, config, run, checkpoints, resume, log, strategy) -> dict:
    chief = distribute.is_chief(strategy)
    epoch, step = checkpoints.restore_latest() if resume else (0, 0)
    key, reached, target, limit = (("step", step, config.train_steps, "train_steps")
                                   if config.by_steps else
                                   ("epoch", epoch, config.num_epochs, "num_epochs"))
    if resume:
        if reached >= target:
            log(f"nothing to do: {run.path} is already at {key} {reached} and {limit} is "
                f"{target}; raise {limit} to train further (nothing was changed)")
            records = ([r for r in run.read_metrics() if r.get(key, 0) <= reached]
                       if chief else [])
            return records[-1] if records else {}
        how = (f" ({checkpoints.note})" if checkpoints.note else
               "" if reached else " (no checkpoint yet: the run starts again)")
        log(f"resumed {run.path} at {key} {reached}{how}")
    if chief:
        run.begin()
        if resume:
            run.truncate_metrics(reached, key)
    writer = (tf.summary.create_file_writer(str(run.tensorboard_dir)) if chief
              else tf.summary.create_noop_writer())
    loop = _StepLoop if config.by_steps else _EpochLoop
    try:
        record = loop(plan, config, run, checkpoints, writer, log, strategy).run(epoch, step)
    finally:
        writer.flush()
    distribute.barrier(strategy)  # No worker leaves while another still needs it.
    return record


class _Window:
    """Loss sums and counts since the last report, kept on the device until read."""

    def __init__(self):
        self.sums, self.counts, self.start = [], [], time.perf_counter()

    def add(self, loss_sum, count):
        self.sums.append(loss_sum)
        self.counts.append(count)

    def totals(self) -> tuple[float, float, float]:
        """`(total loss, total count, seconds)`."""
        total = float(tf.add_n(self.sums)) if self.sums else 0.0
        count = float(tf.add_n(self.counts)) if self.counts else 0.0
        return total, count, time.perf_counter() - self.start


class _Loop:
    def __init__(self, plan, config, run, checkpoints, writer, log, strategy):
        self.plan, self.config, self.run_dir = plan, config, run
        self.checkpoints, self.writer, self.log = checkpoints, writer, log
        self.strategy, self.chief = strategy, distribute.is_chief(strategy)

    def _initial_carry(self):
        """The state at the start of a sequence, each replica holding its rows."""
        return distribute.split_rows(self.strategy, self.plan.initial_carry())

    def _save(self, number: int, carry=None, **kwargs) -> None:
        """A checkpoint, with the carried state of the whole global batch when it keeps one."""
        if self.checkpoints.carry is not None and carry is not None:
            kwargs["carry"] = distribute.gather_rows(self.strategy, carry)
        self.checkpoints.save(number, **kwargs)

    def _step(self, batch, carry):
        loss_sum, count, _, new_carry = self.plan.trainer.train_step(batch, carry)
        return loss_sum, count, new_carry

    def _record(self, window: _Window, **position) -> dict:
        total, count, seconds = self._check_finite(window, **position)
        record = dict(position)
        record.update(self.plan.train_metrics(total / count))
        record.update(tokens_per_sec=count / seconds, seconds=seconds)
        record.update(self.plan.annotate(record, len(window.sums)))
        return record

    def _check_finite(self, window: _Window, **position) -> tuple[float, float, float]:
        """The window's totals; a non-finite loss ends the run (see `TrainingDiverged`)."""
        total, count, seconds = window.totals()
        record = dict(position)
        if not math.isfinite(total):
            last = self.checkpoints.latest or "none yet"
            where = ", ".join(f"{k} {v}" for k, v in position.items())
            metrics = {k: str(v) for k, v in self.plan.train_metrics(total).items()}
            if self.chief:
                self.run_dir.append_metrics({**record, **metrics, "diverged": True})
            raise TrainingDiverged(f"the training loss became {total} at {where}; stopped, "
                                   f"keeping the last good checkpoint: {last}")
        return total, count, seconds

    def _finish(self, record: dict, report: bool, tb_step: int) -> None:
        if not self.chief:  # Only the chief evaluates, reports and writes.
            return
        if report:
            if self.plan.evaluate is not None:
                record.update(self.plan.evaluate())
            record["lr"] = current_learning_rate(self.plan.trainer.optimizer)
        self.run_dir.append_metrics(record)
        with self.writer.as_default(step=tb_step):
            for key, value in record.items():
                if key not in ("epoch", "step", "seconds") and isinstance(value, (int, float)):
                    # As float64: a huge finite value (perplexity 1e149) becomes inf in the
                    # float32 summary instead of failing to convert.
                    tf.summary.scalar(key, tf.constant(value, tf.float64))
        if report:
            self.plan.on_report(record)


class _EpochLoop(_Loop):
    def run(self, start_epoch: int, step: int) -> dict:
        plan, config = self.plan, self.config
        record = {}
        for epoch in range(start_epoch + 1, config.num_epochs + 1):
            window = _Window()
            batches = plan.epoch_batches(epoch)
            num_batches = _length(batches)
            batches = distribute.distribute_batches(self.strategy, batches)
            progbar = (keras.utils.Progbar(num_batches, unit_name="batch")
                       if self.chief and num_batches and num_batches >= PROGBAR_MIN_BATCHES
                       else None)
            carry = zeros = self._initial_carry()
            for i, batch in enumerate(batches):
                loss_sum, count, carry = self._step(batch, carry if plan.carries_state
                                                    else zeros)
                window.add(loss_sum, count)
                step += 1
                if progbar is not None and (i + 1) % 50 == 0:
                    mean = float(loss_sum) / float(count)
                    progbar.update(i + 1, list(plan.train_metrics(mean).items()))
            record = self._record(window, epoch=epoch, step=step)
            report = epoch % config.pred_period == 0 or epoch == config.num_epochs
            self._finish(record, report, epoch)
            if report or epoch % config.checkpoint_every == 0:
                self._save(epoch, epoch=epoch)
        return record


class _StepLoop(_Loop):
    def run(self, epoch: int, step: int) -> dict:
        plan, config = self.plan, self.config
        record = {}
        if step >= config.train_steps:
            return record
        restored = self.checkpoints.restored_carry() if step else None
        zeros = self._initial_carry()
        carry = (distribute.split_rows(self.strategy, restored) if restored is not None
                 else zeros)
        window = _Window()
        for batch, starts_sequence in plan.stream(step):
            if starts_sequence or not plan.carries_state:
                carry = zeros
            batch = distribute.split_rows(self.strategy, batch)
            loss_sum, count, carry = self._step(batch, carry)
            window.add(loss_sum, count)
            step += 1
            report = step % config.pred_period == 0 or step == config.train_steps
            if report:
                record = self._record(window, step=step)
                self._finish(record, True, step)
                window = _Window()
            elif step % config.checkpoint_every == 0:
                self._check_finite(window, step=step)  # never checkpoint diverged weights
            if report or step % config.checkpoint_every == 0:
                self._save(step, carry=carry)
            if step >= config.train_steps:
                break
        return record


def _length(batches) -> int | None:
    if isinstance(batches, tf.data.Dataset):
        n = int(batches.cardinality())
        return n if n >= 0 else None
    try:
        return len(batches)
    except TypeError:
        return None
