"""Where training runs: one device, the local devices (MirroredStrategy) or several worker
processes (MultiWorkerMirroredStrategy), with TensorFlow's own `tf.distribute`.

`--distribute` picks the strategy (`make_strategy`):

    one_device     the default strategy: today's single-device step, unchanged
    mirrored       one replica per local GPU (per logical CPU device where there is no GPU)
    multi_worker   one process per worker, the cluster read from the standard `TF_CONFIG`
    auto           mirrored when the machine has several GPUs, else one_device

`batch_size` is the global batch. With `R` replicas of `b = B / R` rows each, replica `r` owns
rows `[r b, (r + 1) b)` of every global batch (`distribute_batches`, `split_rows`): the global
batch is built exactly as on one device (same seed, same order) and each replica keeps its own
rows, so a state carried from batch to batch (row `i` of a batch continues row `i` of the last)
stays on the replica that owns the row; nothing is sharded by element. The trainer divides
each replica's summed loss by the all-reduced count and clips the global norm, so `R` replicas
take the step one device takes on the whole batch.

Only the chief (`is_chief`: task `chief`, else worker 0) writes the run directory; the others
write their checkpoints to a temporary directory they delete (TensorFlow's pattern for
`MultiWorkerMirroredStrategy`) and, on resume, receive the chief's restored variables
(`broadcast_from_chief`), so they need no copy of the run directory.

A worker that dies (its process ends, or stops answering TF's coordination-service heartbeat)
aborts the collectives of the others with `tf.errors.UnavailableError` within seconds;
`worker_timeout > 0` also bounds how long one collective may wait (a hung worker). The loop turns
either into `WorkerLost`, a clear error naming the last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile

import tensorflow as tf

from rnnzoo.config import DISTRIBUTES, ConfigError

# The errors a collective raises when a peer is gone or too slow.
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
               tf.errors.CancelledError, tf.errors.AbortedError)

_strategies: dict = {}  # A process can create MultiWorkerMirroredStrategy only once.


class WorkerLost(RuntimeError):
    """Another worker of a multi-worker job died or stopped answering; the job stopped."""


def make_strategy(name: str, *, worker_timeout: float = 0.0) -> tf.distribute.Strategy:
    """The strategy `name` (one of `DISTRIBUTES`; module docstring) describes.

    Call it before any other TensorFlow work in the process: a multi-worker strategy must
    configure TensorFlow's collectives before they start. The same strategy is returned to
    later calls with the same arguments (`MultiWorkerMirroredStrategy` exists once per process).
    `worker_timeout`: seconds one collective may wait for the other workers (0: no limit;
    a dead worker is still detected by TF's heartbeat).
    """
    if name not in DISTRIBUTES:
        raise ConfigError(f"`distribute` must be one of {list(DISTRIBUTES)}, got {name!r}")
    if name == "auto":
        name = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "one_device"
    key = (name, os.environ.get("TF_CONFIG") if name == "multi_worker" else None,
           float(worker_timeout))
    if key not in _strategies:
        if name == "one_device":
            strategy = tf.distribute.get_strategy()  # The default: no replica machinery.
        elif name == "mirrored":
            devices = (tf.config.list_logical_devices("GPU")
                       or tf.config.list_logical_devices("CPU"))
            strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        else:
            _check_tf_config(os.environ.get("TF_CONFIG"))
            options = tf.distribute.experimental.CommunicationOptions(
                timeout_seconds=float(worker_timeout) or None)
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        _strategies[key] = strategy
    return _strategies[key]


def _check_tf_config(text: str | None) -> None:
    """A ConfigError naming what is wrong with `TF_CONFIG` for a multi-worker run."""
    if not text:
        raise ConfigError("`distribute=multi_worker` reads the cluster from the TF_CONFIG "
                          "environment variable, which is not set (README: multi-worker "
                          "training)")
    try:
        d = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"TF_CONFIG is not JSON ({e}): {text!r}") from e
    cluster, task = (d.get("cluster"), d.get("task")) if isinstance(d, dict) else (None, None)
    if not isinstance(cluster, dict) or not cluster or not isinstance(task, dict):
        raise ConfigError(f"TF_CONFIG must hold a `cluster` and a `task`, got {text!r}")
    jobs = cluster.get(task.get("type"))
    index = task.get("index")
    if (not isinstance(jobs, list) or not isinstance(index, int)
            or not 0 <= index < len(jobs)):
        raise ConfigError(f"TF_CONFIG's task {task!r} is not a task of its cluster {cluster!r}")
    if set(cluster) - {"chief", "worker"}:
        raise ConfigError(f"TF_CONFIG's cluster may hold `chief` and `worker` jobs only (Keras 3 "
                          f"does not support parameter servers), got {sorted(cluster)}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True in the process that writes the run directory: the only one, or the chief."""
    return bool(strategy.extended.should_checkpoint)


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def mirrors_variables(strategy: tf.distribute.Strategy) -> bool:
    """True under the strategies `make_strategy` makes other than one_device: their variables
    are mirrored copies, updated by the replicas together."""
    return isinstance(strategy, (tf.distribute.MirroredStrategy,
                                 tf.distribute.MultiWorkerMirroredStrategy))


def replicas(strategy: tf.distribute.Strategy) -> int:
    return strategy.num_replicas_in_sync


def check_batch_size(strategy: tf.distribute.Strategy, batch_size: int) -> int:
    """Rows per replica of a global batch; a ConfigError when they do not divide evenly."""
    n = replicas(strategy)
    if batch_size % n:
        raise ConfigError(f"`batch_size` ({batch_size}) is the global batch and must be a "
                          f"multiple of the {n} replicas")
    return batch_size // n


def _share(t, n: int, first, count: int = 1):
    """Rows of `count` consecutive replicas from replica `first` on, as `[count, B / n, ...]`."""
    t = tf.convert_to_tensor(t)
    if t.shape.is_fully_defined():
        shape = [n, t.shape[0] // n, *t.shape[1:]]
    else:
        dims = tf.shape(t)
        shape = tf.concat([[n, dims[0] // n], dims[1:]], 0)
    return tf.reshape(t, shape)[first:first + count]


def split_rows(strategy: tf.distribute.Strategy, value):
    """`value` (a nest of `[B, ...]` tensors) as per-replica values: replica `r` gets rows
    `[r B / R, (r + 1) B / R)`. With one replica, `value` itself."""
    n = replicas(strategy)
    if n == 1 or not tf.nest.flatten(value):
        return value
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.nest.map_structure(
            lambda t: _share(t, n, ctx.replica_id_in_sync_group)[0], value))


def gather_rows(strategy: tf.distribute.Strategy, value):
    """The inverse of `split_rows`: per-replica `[b, ...]` values joined into `[R b, ...]` in
    replica order, on every worker (a collective under multi-worker: every worker calls it)."""
    if replicas(strategy) == 1 or not tf.nest.flatten(value):
        return value
    return tf.nest.map_structure(lambda t: strategy.gather(t, axis=0), value)


def distribute_batches(strategy: tf.distribute.Strategy, batches):
    """Global batches as per-replica batches, each replica's own rows (`split_rows`).

    A `tf.data.Dataset` goes through `distribute_datasets_from_function`: each worker's input
    pipeline builds the global batches and keeps the rows of its local replicas, in replica
    order (the order in which the pipeline feeds its devices). Any other iterable is split
    batch by batch. With one replica, `batches` itself.
    """
    n = replicas(strategy)
    if n == 1:
        return batches
    if not isinstance(batches, tf.data.Dataset):
        return (split_rows(strategy, batch) for batch in batches)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = n // context.num_input_pipelines
        first = context.input_pipeline_id * local
        mine = lambda *batch: tf.nest.map_structure(  # noqa: E731
            lambda t: _share(t, n, first, local), batch if len(batch) > 1 else batch[0])
        return batches.map(mine).unbatch()

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    return strategy.distribute_datasets_from_function(dataset_fn, options)


def broadcast_from_chief(strategy: tf.distribute.Strategy, variables) -> None:
    """Gives every worker the chief's values of `variables` (after the chief alone restored a
    checkpoint). Replica 0 (on the chief) contributes the values, the others zeros, and an
    all-reduced sum in float64 (exact for float32 and for integers below 2**53) is assigned
    back. A no-op unless multi-worker; every worker must call it."""
    if not is_multi_worker(strategy):
        return
    variables = list(variables)
    values = [tf.cast(tf.convert_to_tensor(v), tf.float64) for v in variables]

    def contribution(ctx):
        first = ctx.replica_id_in_sync_group == 0
        return [v if first else tf.zeros_like(v) for v in values]

    def reduce(parts):
        return tf.distribute.get_replica_context().all_reduce("SUM", parts)

    shared = strategy.experimental_distribute_values_from_function(contribution)
    summed = strategy.run(tf.function(reduce), args=(shared,))
    for variable, total in zip(variables, summed, strict=True):
        value = strategy.experimental_local_results(total)[0]
        variable.assign(tf.cast(value, variable.dtype))


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Waits until every worker reaches this point (a no-op unless multi-worker)."""
    if is_multi_worker(strategy):
        strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)


class WorkerCheckpointDir:
    """Where a non-chief worker writes its copy of a checkpoint: a temporary directory, deleted
    after each save (`MultiWorkerMirroredStrategy` wants every worker to save)."""

    def save(self, checkpoint: tf.train.Checkpoint) -> None:
        directory = tempfile.mkdtemp(prefix="rnnzoo-worker-ckpt-")
        try:
            checkpoint.write(os.path.join(directory, "ckpt"))
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def lost_worker_error(error: BaseException, last_checkpoint: str | None = None, *,
                      training: bool = True) -> WorkerLost:
    """The `WorkerLost` a collective's `error` means (`training`: once the loop had begun)."""
    detail = str(error).strip().splitlines()
    detail = next((line for line in detail if "abort" in line.lower() or "unhealthy" in line
                   or "reset" in line), detail[0] if detail else type(error).__name__)
    if "aborted by:" in detail:  # Drop TF's function-node prefix.
        detail = "collective ops aborted by:" + detail.split("aborted by:", 1)[1]
    then = (f"Restart every worker with --resume to continue from the last checkpoint: "
            f"{last_checkpoint or 'none yet'}" if training else
            "It stopped before training began: see the chief's (worker 0's) error")
    return WorkerLost(f"another worker of the multi-worker job died or stopped answering "
                      f"({detail.strip()}); this worker stopped. {then}")


@contextlib.contextmanager
def stop_on_lost_worker(strategy: tf.distribute.Strategy):
    """Turns a collective's peer error before the loop (a chief that refused the run directory
    while the others built the model) into `WorkerLost`; the loop reports its own."""
    try:
        yield
    except PEER_ERRORS as e:
        if not is_multi_worker(strategy):
            raise
        raise lost_worker_error(e, training=False) from e
