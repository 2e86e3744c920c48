"""Character batches `(X, Y)` exactly as the TensorFlow deep learning course makes them.

The course (Udacity, assignment `6_lstm.ipynb`) trains its character LSTM on batches from a
`BatchGenerator(text, batch_size, num_unrollings)`: the text is split into `batch_size` segments
of `segment = n // batch_size` characters, row `b` reads its segment from a cursor that starts at
`b * segment`, and each `next()` returns `num_unrollings + 1` one-hot batches (the last batch of
the previous call, then `num_unrollings` new ones), of which the model takes
`inputs = batches[:-1]`, `labels = batches[1:]`. The cursors advance modulo `n`, so a row runs on
past the end of its segment into the next one, and the last row wraps around to the start of the
text.

With `n = len(text)`, `B = batch_size`, `T = num_unrollings`, `segment = n // B`, the `k`-th
call to `next()` (0-based) gives, for row `b` and time `t`:

    start[k, b] = (b * segment + k * T) mod n
    X[k][b, t]  = text[(start[k, b] + t) mod n]          t = 0 .. T-1
    Y[k][b, t]  = text[(start[k, b] + t + 1) mod n]

so batch `k` depends only on `k`, and row `b` of batch `k + 1` continues row `b` of batch `k`
(`X[k + 1][b, 0] == Y[k][b, T - 1]`). The stream never ends; there are no epochs. As in
`lm_pipeline`, the batches are a *plan* of start offsets (`course_starts`, `[num_batches, B]`)
and the windows are gathered inside `tf.data`, here with indices taken modulo `n`.

How the course uses them. Training carries the LSTM state from batch to batch, row by row, and
never resets it (the gradient is cut at batch boundaries):

    ds = course_dataset(train_ids, batch_size=64, num_unrollings=10)  # the course's setting
    state = initial_state(64)
    for x, y in ds.take(num_steps):
        state = tf.nest.map_structure(tf.stop_gradient, state)
        ...

A run resumed after `k` steps continues with `course_dataset(..., first_batch=k)`.

Validation is `BatchGenerator(valid_text, 1, 1)` stepped `len(valid_text)` times with the state
reset once at the start: `n` predictions, the last one of `valid_text[0]` after
`valid_text[n - 1]`. `course_validation_pairs` gives those as one `[1, n]` row, to run from a
zero state.
"""

import numpy as np
import tensorflow as tf

from rnnzoo.data.lm_pipeline import _as_corpus, _check_int

# The name of this sampler in a character-LM config (`sampler="course"`).
SAMPLER = "course"


def _check_length(name: str, n: int, batch_size: int) -> int:
    """`n` must leave every one of `batch_size` rows a segment, and a target after it."""
    if n < batch_size + 1:
        raise ValueError(
            f"`{name}` of {n} tokens is too short for batch_size={batch_size}: need at least "
            f"{batch_size + 1} tokens (segment = {n} // {batch_size} = {n // batch_size})")
    return n


def _check_num_batches(num_batches) -> int | None:
    return None if num_batches is None else _check_int("num_batches", num_batches, 0)


def course_starts(text_len: int, batch_size: int, num_unrollings: int, first_batch: int,
                  num_batches: int) -> np.ndarray:
    """The start offsets of batches `first_batch .. first_batch + num_batches - 1`.

        starts[i, b] = (b * segment + (first_batch + i) * num_unrollings) mod text_len,
        segment = text_len // batch_size

    Row `b` of batch `k` is then `X = text[(s + t) mod n]`, `Y = text[(s + t + 1) mod n]` for
    `t < num_unrollings`, `s = starts[k - first_batch, b]`, exactly the course's `BatchGenerator`.

    Args:
        text_len: length `n` of the text, at least `batch_size + 1`.
        batch_size: rows per batch, B >= 1.
        num_unrollings: time steps per batch, T >= 1.
        first_batch: index of the first batch, >= 0 (the number of `next()` calls before it).
        num_batches: how many batches, >= 0.

    Returns:
        int64 array `[num_batches, batch_size]`, each entry in `[0, text_len)`.

    Raises:
        ValueError: an argument out of range (named with its value).
    """
    b = _check_int("batch_size", batch_size, 1)
    t = _check_int("num_unrollings", num_unrollings, 1)
    n = _check_length("text_len", _check_int("text_len", text_len, 0), b)
    k0 = _check_int("first_batch", first_batch, 0)
    count = _check_num_batches(num_batches)
    rows = np.arange(b, dtype=np.int64) * (n // b)  # all < n
    k = (k0 % n + np.arange(count, dtype=np.int64)) % n
    step = k * (t % n) % n  # < n * min(T, n): no int64 overflow for any real text
    return (rows[None, :] + step[:, None]) % n


def course_dataset(corpus, *, batch_size: int, num_unrollings: int, first_batch: int = 0,
                   num_batches: int | None = None) -> tf.data.Dataset:
    """The course's training batches from batch `first_batch` on, as `(X, Y)` token ids.

    Batch `i` of the dataset is the course's batch `k = first_batch + i` (its `k`-th `next()`,
    inputs and labels):

        X[b, t] = corpus[(start + t) mod n],  Y[b, t] = corpus[(start + t + 1) mod n],
        start = (b * (n // batch_size) + k * num_unrollings) mod n

    (see `course_starts`). Batch `k` depends only on `k`, so `first_batch=k` continues a run
    exactly where it stopped after `k` batches. The start offsets are computed inside `tf.data`
    from the batch index, so an endless stream holds no plan in memory.

    Args:
        corpus: 1-D int token ids `[n]` (NumPy array, or an int32 tensor to share without a
            copy); `n >= batch_size + 1`.
        batch_size: rows per batch, B >= 1 (the course: 64).
        num_unrollings: time steps per batch, T >= 1 (the course: 10).
        first_batch: index of the first batch, >= 0.
        num_batches: how many batches, >= 0; None (default) for an endless stream, as the
            course's generator.

    Returns:
        A prefetching `tf.data.Dataset` of `(X, Y)`, int32 `[batch_size, num_unrollings]` each
        (static shape); its cardinality is `num_batches`, or infinite.

    Raises:
        ValueError: an argument out of range (named with its value), or a corpus shorter than
            `batch_size + 1` tokens.
    """
    b = _check_int("batch_size", batch_size, 1)
    t = _check_int("num_unrollings", num_unrollings, 1)
    k0 = _check_int("first_batch", first_batch, 0)
    count = _check_num_batches(num_batches)
    corpus = _as_corpus(corpus)
    n = _check_length("corpus", int(corpus.shape[0]), b)

    rows = tf.constant(np.arange(b, dtype=np.int64) * (n // b))  # [B], all < n
    offsets = tf.range(t + 1, dtype=tf.int64)  # [T + 1]
    t_mod_n = t % n

    def batch(k):  # k: int64 scalar, the batch index
        starts = (rows + (k % n) * t_mod_n % n) % n  # [B], as course_starts
        window = tf.gather(corpus, (starts[:, None] + offsets) % n)  # [B, T + 1]
        return window[:, :-1], window[:, 1:]

    if count is None:
        indices = tf.data.Dataset.counter(start=k0, dtype=tf.int64)
    else:
        indices = tf.data.Dataset.range(k0, k0 + count, output_type=tf.int64)
    return indices.map(batch, num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True).prefetch(tf.data.AUTOTUNE)


def course_validation_pairs(ids) -> tuple[np.ndarray, np.ndarray]:
    """The course's validation as one row: `BatchGenerator(valid, 1, 1)` stepped `n` times.

        x[0, i] = ids[i],  y[0, i] = ids[(i + 1) mod n],   i = 0 .. n-1

    Run over `x` from a zero state (the course resets the state once, before validation), a
    model makes exactly the course's `n` predictions, the last one of `ids[0]` after `ids[n - 1]`;
    the course's validation perplexity is `exp(mean cross-entropy)` over them.

    Args:
        ids: the validation text's token ids, 1-D int `[n]` (array or int32 tensor), `n >= 2`.

    Returns:
        `(x, y)`, NumPy int32 `[1, n]` each.

    Raises:
        ValueError: not a 1-D integer array, or fewer than 2 tokens.
    """
    arr = _as_corpus(ids).numpy()
    _check_length("ids", len(arr), 1)
    return arr[None, :], np.roll(arr, -1)[None, :]
