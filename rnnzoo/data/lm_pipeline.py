"""Language-model batches `(X, Y)` from a token-id stream, with d2l's four samplers.

Every sampler is expressed as a *plan*: an int64 array `starts` of shape
`[num_batches, batch_size]`. Batch `b` row `r` is

    X[b][r] = corpus[starts[b, r] : starts[b, r] + num_steps]
    Y[b][r] = corpus[starts[b, r] + 1 : starts[b, r] + 1 + num_steps]

The plan is pure NumPy (one integer per row). Two ways to read an epoch with it, the same batches:
`lm_batches` gathers each batch's windows in NumPy as it is asked for (what training uses: no
pipeline to build per epoch; building and tearing down a `tf.data` pipeline cost about 80 ms of
CPU per epoch here, most of an epoch of d2l's 10,000-character runs), and `lm_dataset` /
`window_dataset` gather them inside `tf.data`. Neither copies an epoch of a large corpus out.

With `n = len(corpus)`, `B = batch_size`, `T = num_steps`:

edition 1 (d2l-zh 1st ed., `data_iter_random` / `data_iter_consecutive`; Jay Chou lyrics)
    random: the `(n - 1) // T` subsequences starting at `0, T, 2T, ...` are shuffled and taken
        `B` at a time; `((n - 1) // T) // B` batches, the rest dropped.
    consecutive: the first `B * (n // B)` tokens are cut into `B` rows of `L = n // B` tokens;
        batch `b` is columns `[b*T, b*T + T)` of every row; `(L - 1) // T` batches.
edition 2 (d2l 2nd ed., `seq_data_iter_random` / `seq_data_iter_sequential`; Time Machine)
    random: drops a random `offset` in `[0, T - 1]` tokens first, then as edition 1 random.
    consecutive: a random `offset` in `[0, T]`; rows of `L = (n - offset - 1) // B` tokens
        starting at `offset`; `L // T` batches.

RNG contract. All randomness comes from `rng = np.random.default_rng([seed, epoch])`
(`epoch_rng`), drawn in this order:
    edition 1 random:      order = rng.permutation(num_subseqs)
    edition 1 consecutive: nothing
    edition 2 random:      offset = rng.integers(0, T); order = rng.permutation(num_subseqs)
    edition 2 consecutive: offset = rng.integers(0, T + 1)
`rng.permutation(k)` shuffles `arange(k)` exactly as `rng.shuffle` shuffles any length-k list,
so d2l's code with `random.shuffle(x)` -> `rng.shuffle(x)` and `random.randint(a, b)` ->
`rng.integers(a, b + 1)` yields exactly these batches (tests/data checks this batch for batch).
Same `(seed, epoch)` -> same batches in any process; each epoch gets a different shuffle/offset.

How a training loop uses it (state carried across batches only for "consecutive", with the
gradient cut at batch boundaries; re-initialised every batch for "random", and every epoch):

    corpus = tf.constant(ids)  # convert once; reused by every epoch's dataset
    for epoch in range(num_epochs):
        state = None
        for x, y in lm_dataset(corpus, batch_size=B, num_steps=T, sampler=sampler,
                               edition=edition, seed=seed, epoch=epoch):
            if state is None or not carries_state(sampler):
                state = initial_state(B)
            else:
                state = tf.nest.map_structure(tf.stop_gradient, state)
            ...

`len(lm_batches(...))` and `lm_dataset(...).cardinality()` are that epoch's exact number of
batches; `num_batches` gives it without building a dataset (for edition 2 with no `(seed,
epoch)`, the most over all offsets).
"""

import numpy as np
import tensorflow as tf

SAMPLERS = ("random", "consecutive")
EDITIONS = (1, 2)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_config(batch_size, num_steps, sampler, edition) -> tuple[int, int]:
    if sampler not in SAMPLERS:
        raise ValueError(f"`sampler` must be one of {SAMPLERS}, got {sampler!r}")
    if edition not in EDITIONS or isinstance(edition, bool):
        raise ValueError(f"`edition` must be one of {EDITIONS}, got {edition!r}")
    return _check_int("batch_size", batch_size, 1), _check_int("num_steps", num_steps, 1)


def carries_state(sampler: str) -> bool:
    """True if row `r` of a batch continues row `r` of the previous batch ("consecutive"), so the
    recurrent state should carry over; False ("random") if the state must be reset per batch."""
    if sampler not in SAMPLERS:
        raise ValueError(f"`sampler` must be one of {SAMPLERS}, got {sampler!r}")
    return sampler == "consecutive"


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of all sampling randomness: `np.random.default_rng([seed, epoch])`."""
    return np.random.default_rng([_check_int("seed", seed, 0), _check_int("epoch", epoch, 0)])


def _max_offset(num_steps: int, sampler: str, edition: int) -> int:
    if edition == 1:
        return 0
    return num_steps - 1 if sampler == "random" else num_steps


def _count(n: int, batch_size: int, num_steps: int, sampler: str, edition: int,
           offset: int) -> int:
    """Number of batches for a corpus of `n` tokens after dropping `offset` (edition 2)."""
    if edition == 1 and sampler == "consecutive":
        return max(0, (n // batch_size - 1) // num_steps)
    if sampler == "random":
        return max(0, (n - offset - 1) // num_steps) // batch_size
    return max(0, (n - offset - 1) // batch_size) // num_steps


def min_tokens(*, batch_size: int, num_steps: int, sampler: str, edition: int = 1) -> int:
    """The fewest corpus tokens that give at least one batch in every epoch (any offset)."""
    b, t = _check_config(batch_size, num_steps, sampler, edition)
    return {
        (1, "random"): b * t + 1,
        (1, "consecutive"): b * (t + 1),
        (2, "random"): (b + 1) * t,
        (2, "consecutive"): (b + 1) * t + 1,
    }[(edition, sampler)]


def num_batches(n_tokens: int, *, batch_size: int, num_steps: int, sampler: str,
                edition: int = 1, seed: int | None = None, epoch: int | None = None) -> int:
    """Batches per epoch for a corpus of `n_tokens` tokens.

    Exact for edition 1. For edition 2 the count depends on the epoch's random offset: exact when
    `seed` and `epoch` are given, else the most over all offsets (an upper bound, e.g. for a
    learning-rate schedule); epochs differ by at most two batches.
    """
    b, t = _check_config(batch_size, num_steps, sampler, edition)
    n = _check_int("n_tokens", n_tokens, 0)
    if edition == 2 and (seed is not None or epoch is not None):
        if seed is None or epoch is None:
            raise ValueError(f"pass both `seed` and `epoch` or neither, got {seed=}, {epoch=}")
        return len(lm_plan(n, batch_size=b, num_steps=t, sampler=sampler, edition=edition,
                           seed=seed, epoch=epoch))
    return _count(n, b, t, sampler, edition, offset=0)


def lm_plan(n_tokens: int, *, batch_size: int, num_steps: int, sampler: str, edition: int = 1,
            seed: int = 0, epoch: int = 0) -> np.ndarray:
    """The start index of every `(X, Y)` row of one epoch, following the RNG contract above.

    Args:
        n_tokens: length of the corpus.
        batch_size, num_steps, sampler, edition: as in `lm_dataset`.
        seed, epoch: non-negative ints seeding `epoch_rng`.

    Returns:
        int64 array `[num_batches, batch_size]`; row `r` of batch `b` is the tokens
        `starts[b, r] .. starts[b, r] + num_steps` (X; Y is one further). `num_batches` may be 0
        for a short corpus (see `min_tokens`).
    """
    b, t = _check_config(batch_size, num_steps, sampler, edition)
    n = _check_int("n_tokens", n_tokens, 0)
    rng = epoch_rng(seed, epoch)
    offset = 0
    if edition == 2:
        offset = int(rng.integers(0, _max_offset(t, sampler, edition) + 1))
    count = _count(n, b, t, sampler, edition, offset)
    if sampler == "random":
        order = rng.permutation(max(0, (n - offset - 1) // t))
        starts = offset + order[: count * b] * t
    else:
        row_len = n // b if edition == 1 else max(0, (n - offset - 1) // b)
        starts = offset + np.arange(b)[None, :] * row_len + np.arange(count)[:, None] * t
    return np.asarray(starts, dtype=np.int64).reshape(count, b)


def _as_corpus(ids) -> tf.Tensor:
    """A 1-D int32 tensor on the CPU (where tf.data runs); no copy for an int32 tensor."""
    if isinstance(ids, tf.Tensor):
        if ids.shape.rank != 1 or ids.dtype != tf.int32:
            raise ValueError(f"`ids` must be a 1-D int32 tensor, got {ids.dtype.name} "
                             f"of shape {ids.shape}")
        return ids
    with tf.device("CPU:0"):
        return tf.constant(_as_int32_array(ids))


def _as_int32_array(ids) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"`ids` must be a 1-D integer array, got {arr.dtype} of shape "
                         f"{arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.int32).max):
        raise ValueError(f"`ids` must be in [0, 2**31), got values in [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int32, copy=False)


def window_dataset(corpus, starts: np.ndarray, length: int) -> tf.data.Dataset:
    """One element per row of `starts`: the windows `corpus[s : s + length]` of its entries.

    A reusable piece for any sampler that can be written as a NumPy plan of start indices.

    Args:
        corpus: 1-D int32 token ids (array or tensor), `[n]`.
        starts: int array `[num_batches, batch_size]`, each `0 <= s <= n - length`.
        length: window length.

    Returns:
        A `tf.data.Dataset` of int32 `[batch_size, length]` (static shape), in plan order, with
        cardinality `num_batches`.
    """
    corpus = _as_corpus(corpus)
    length = _check_int("length", length, 1)
    starts = np.asarray(starts, dtype=np.int64)
    if starts.ndim != 2:
        raise ValueError(f"`starts` must be 2-D [num_batches, batch_size], got {starts.shape}")
    n = int(corpus.shape[0])
    if starts.size and (starts.min() < 0 or starts.max() + length > n):
        raise ValueError(f"windows of length {length} at starts in [{starts.min()}, "
                         f"{starts.max()}] do not fit in a corpus of {n} tokens")
    offsets = tf.range(length, dtype=tf.int64)

    def gather(row_starts):
        return tf.gather(corpus, row_starts[:, None] + offsets)

    return tf.data.Dataset.from_tensor_slices(starts).map(
        gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


class LMBatches:
    """One epoch of `(X, Y)` batches, int32 `[batch_size, num_steps]` eager tensors, gathered
    from a NumPy corpus one batch at a time as the loop asks (`lm_batches`). Sized (`len`), and
    iterable more than once."""

    def __init__(self, corpus: np.ndarray, starts: np.ndarray, num_steps: int):
        self.corpus, self.starts, self.num_steps = corpus, starts, num_steps

    def __len__(self) -> int:
        return len(self.starts)

    def __iter__(self):
        offsets = np.arange(self.num_steps + 1)
        for row_starts in self.starts:
            windows = self.corpus[row_starts[:, None] + offsets]
            yield tf.constant(windows[:, :-1]), tf.constant(windows[:, 1:])

    def skip(self, count: int) -> "LMBatches":
        """The batches after the first `count`."""
        return LMBatches(self.corpus, self.starts[count:], self.num_steps)


def as_numpy_corpus(ids) -> np.ndarray:
    """A 1-D int32 NumPy corpus from ids (a NumPy array, a list or a 1-D int32 tensor), checked
    as `lm_dataset` checks it; no copy for an int32 array."""
    return _as_corpus(ids).numpy() if isinstance(ids, tf.Tensor) else _as_int32_array(ids)


def lm_batches(ids, *, batch_size: int, num_steps: int, sampler: str, edition: int = 1,
               seed: int = 0, epoch: int = 0) -> LMBatches:
    """One epoch of language-model batches, exactly `lm_dataset`'s, without a `tf.data`
    pipeline: a sized iterable of `(X, Y)` int32 tensors `[batch_size, num_steps]`.

    `ids`: the corpus, best a 1-D int32 NumPy array (`as_numpy_corpus`; not copied) shared by
    the epochs; the other arguments and the errors are `lm_dataset`'s.
    """
    b, t = _check_config(batch_size, num_steps, sampler, edition)
    corpus = as_numpy_corpus(ids)
    n = len(corpus)
    need = min_tokens(batch_size=b, num_steps=t, sampler=sampler, edition=edition)
    if n < need:
        raise ValueError(
            f"corpus of {n} tokens is too short for one batch of batch_size={b}, num_steps={t} "
            f"(sampler={sampler!r}, edition={edition}): need at least {need} tokens")
    starts = lm_plan(n, batch_size=b, num_steps=t, sampler=sampler, edition=edition,
                     seed=seed, epoch=epoch)
    return LMBatches(corpus, starts, t)


def lm_dataset(ids, *, batch_size: int, num_steps: int, sampler: str, edition: int = 1,
               seed: int = 0, epoch: int = 0) -> tf.data.Dataset:
    """One epoch of language-model batches, exactly as d2l's sampler of that edition.

    Args:
        ids: the corpus, 1-D int token ids `[n]` (NumPy array, or an int32 tensor to share
            between epochs without a copy).
        batch_size: rows per batch, B >= 1.
        num_steps: time steps per row, T >= 1.
        sampler: "random" (independent subsequences; reset the state every batch) or
            "consecutive" (row r continues across batches; carry the state).
        edition: 1 (d2l-zh 1st ed.) or 2 (d2l 2nd ed., random offset each epoch).
        seed, epoch: non-negative ints; the epoch's randomness is `epoch_rng(seed, epoch)`.

    Returns:
        A prefetching `tf.data.Dataset` of `(X, Y)`, int32 `[batch_size, num_steps]` each (static
        shape), Y being X shifted one token on (`Y[:, :-1] == X[:, 1:]`); its cardinality is the
        epoch's batch count.

    Raises:
        ValueError: bad arguments, or fewer than `min_tokens(...)` tokens.
    """
    b, t = _check_config(batch_size, num_steps, sampler, edition)
    corpus = _as_corpus(ids)
    n = int(corpus.shape[0])
    need = min_tokens(batch_size=b, num_steps=t, sampler=sampler, edition=edition)
    if n < need:
        raise ValueError(
            f"corpus of {n} tokens is too short for one batch of batch_size={b}, num_steps={t} "
            f"(sampler={sampler!r}, edition={edition}): need at least {need} tokens")
    starts = lm_plan(n, batch_size=b, num_steps=t, sampler=sampler, edition=edition,
                     seed=seed, epoch=epoch)
    windows = window_dataset(corpus, starts, t + 1)
    return windows.map(lambda w: (w[:, :-1], w[:, 1:])).prefetch(tf.data.AUTOTUNE)
