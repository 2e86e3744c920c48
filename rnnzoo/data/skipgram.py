"""word2vec training examples: skip-gram pairs and CBOW windows, the course's and word2vec.c's.

Two families, each for skip-gram (predict a context word from its center word) and CBOW (predict
a word from the words around it). All work on a corpus of word ids `ids [n]` (e.g.
`WordVocabulary.encode(word_tokens(text))`), are seeded, and give the same batches in every
process. Negatives are not drawn here: the loss draws them, e.g. with
`tf.random.fixed_unigram_candidate_sampler(..., unigrams=unigram_counts(vocab), distortion=0.75)`.

The course (TensorFlow deep learning course, assignment 5_word2vec.ipynb)
    `generate_batch(batch_size, num_skips, skip_window)` reads the text sequentially. With
    `B = batch_size`, `w = skip_window`, `span = 2w + 1`, `R = B // num_skips` centers per batch
    and `n = len(ids)`, its `k`-th call (0-based) refills its buffer with `span` fresh words
    starting at `d_k`, then takes the centers `d_k + w, ..., d_k + w + R - 1`:

        d_k = k * (span + R)  mod n      (each call reads span + R words, so the `span` words
                                          between two calls' centers are never centers)
        centers[k][i * num_skips + j]     = ids[(d_k + w + i) mod n]     i < R, j < num_skips
        contexts[k][i * num_skips + j, 0] = ids[(d_k + w + i + o[k, i, j]) mod n]

    where `o[k, i, :]` are `num_skips` distinct offsets in `[-w, w] \\ {0}`, drawn by the course's
    rejection loop (`target = random.randint(0, span - 1)` until not yet used; `o = target - w`).
    `course_skipgram_dataset` gives these batches.

    The course leaves CBOW as an exercise; `course_cbow_dataset` is `generate_batch` turned
    around, with the same sequential reading and refill: `B` targets per call,

        d_k = k * (span + B)  mod n
        targets[k][i, 0]  = ids[(d_k + w + i) mod n]                                   i < B
        contexts[k][i, s] = ids[(d_k + i + t_s) mod n],   t_s = s if s < w else s + 1,  s < 2w

    (the buffer without its middle word, in text order); the course sums their embeddings. The
    text wraps around, so every window is full and `mask` is all True.

    RNG contract (course). `generate_batch` calls `random.randint(0, span - 1)`; here that is
    `CourseRandom(seed).randint`, i.e. `floor(u * span)` for the next `u` of
    `np.random.default_rng(seed).random()`. The datasets draw the same doubles in blocks
    (`rng.random(size)`, the same stream) and replay the rejection loop in NumPy, so the course's
    code with `random = CourseRandom(seed)` makes exactly these batches (tests/data checks this
    batch for batch on text8). The stream is consumed from call 0 on, so batch `k` depends on all
    the draws before it: `first_batch=k` replays the draws of the first `k` batches. The plan
    (`course_skipgram_plan`, int8 offsets `[num_batches, B]`) is made up front: ~50 us of CPU
    per batch of 128 (the course's 100,001 steps: ~5 s, 12.8 MB). CBOW draws nothing.

word2vec.c / gensim
    One epoch, with `counts` the words' corpus counts (`N = sum(counts)`), `sample = s`, and
    `window = W`:
    1. Subsampling: the token at position `p` with id `v` is kept iff `keep[v] > u[p]`, with
           keep[v] = (sqrt(counts[v] / (s N)) + 1) * (s N) / counts[v]     (word2vec.c; > 1 is
           always kept; every word is kept when s = 0)
       The kept tokens, in text order, are the epoch's sequence `x[0 .. m-1]` (`m` =
       `kept_words`).
    2. Shrinking: each kept token `k` draws `b[k]` uniform in `[0, W)`; its window is
       `eff[k] = W - b[k]` (1 .. W) kept tokens on either side, cut where the text (or its
       sentence, see `sentence_length`) ends:
           left[k]  = min(eff[k], k - first[k]),   right[k] = min(eff[k], last[k] - k)
       (`first` / `last`: the kept indices bounding the sentence of `k`).
    3. Skip-gram: for `k = 0 .. m-1`, then offsets `o = -left[k] .. -1, 1 .. right[k]` in order
       (word2vec.c's loop), the pair `(center x[k], context x[k + o])`. With
       `c[k] = left[k] + right[k]` and `start[k] = c[0] + ... + c[k-1]`, pair `j` of the epoch is
       the one of center `k` with `start[k] <= j < start[k + 1]`; batch `t` is pairs
       `t*B .. t*B + B - 1`. The last `num_pairs mod B` pairs are dropped (fewer than one batch
       in millions; static shapes, no padded pairs to mask out of the loss). The pairs come in
       text order, as word2vec.c trains, not shuffled: a batch holds the pairs of about
       `B / (W + 1)` consecutive centers.
    4. CBOW: for every kept `k` with `c[k] > 0` (word2vec.c skips a word without context), in
       order: `target = x[k]`, and over the slots `s = 0 .. 2W-1` with offsets
       `o_s = s - W` (s < W) or `s - W + 1` (s >= W), i.e. `-W .. -1, 1 .. W`:
           mask[s]     = -left[k] <= o_s <= right[k]
           contexts[s] = x[k + o_s] if mask[s] else 0
       Batches of `B` examples in order, the last partial batch dropped likewise.
    `sentence_length=L` cuts the corpus into sentences of `L` tokens (positions `p // L`, before
    subsampling) that no window crosses: gensim's `Text8Corpus` (L = 10,000) and `LineSentence`
    behave so; word2vec.c cuts text8 every 1,000 kept words. None: the corpus is one text.

    RNG contract (word2vec). `rng = epoch_rng(seed, epoch) = np.random.default_rng([seed, epoch])`
    draws, in this order:
        u = rng.random(n, dtype=np.float32)              one per corpus token, in text order
        b = rng.integers(0, W, size=m, dtype=np.int32)   one per kept token, in text order
    Same `(seed, epoch)` -> same epoch in any process; every epoch redraws both.

    `words_in_epoch` (or `Word2VecPlan.words` / `.kept_words`) gives the corpus words before and
    after subsampling, for words/s reports and gensim's linear learning-rate decay (which counts
    corpus words, before subsampling).

How a training loop uses it:

    # the course: one endless stream, no epochs
    ds = course_skipgram_dataset(ids, batch_size=128, num_skips=2, skip_window=1,
                                 num_batches=100_001, seed=seed)   # first_batch=k to resume

    # word2vec.c / gensim: epochs
    vocab = WordVocabulary.build(word_tokens(text), min_count=5)
    ids = vocab.encode(word_tokens(text), oov="skip")       # gensim / word2vec.c drop rare words
    for epoch in range(num_epochs):
        plan = word2vec_plan(ids, window=5, sample=1e-3, seed=seed, epoch=epoch)
        for centers, contexts in word2vec_skipgram_dataset(plan, batch_size=B):
            ...                                              # centers [B], contexts [B, 1]
        words_done += plan.words

Every dataset has static shapes, prefetches, and knows its cardinality (its number of batches).
"""

import dataclasses
import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from rnnzoo.data.lm_pipeline import _as_corpus, _check_int, epoch_rng

_STREAM_BLOCK = 1 << 20  # how many course draws are parsed at once (any size gives the same)
_MAX_SETS = 8  # `_parse_rows` jumps through tables when a step has at most this many used sets


# --- shared checks ---------------------------------------------------------------------------

def _check_ids(ids, name: str = "ids") -> np.ndarray:
    """Corpus ids as a 1-D int32 NumPy array (from an array, a list or an int32 tensor)."""
    if isinstance(ids, tf.Tensor):
        ids = ids.numpy()
    arr = np.asarray(ids)
    if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"`{name}` must be a 1-D integer array, got {arr.dtype} of shape "
                         f"{arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.int32).max):
        raise ValueError(f"`{name}` must be in [0, 2**31), got values in [{arr.min()}, "
                         f"{arr.max()}]")
    return arr.astype(np.int32, copy=False)


def _check_counts(counts) -> np.ndarray:
    arr = np.asarray(counts)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"`counts` must be a non-empty 1-D integer array (one count per word "
                         f"id), got {arr.dtype} of shape {arr.shape}")
    if arr.min() < 0:
        raise ValueError(f"`counts` must be >= 0, got {arr.min()} (id {int(arr.argmin())})")
    return arr.astype(np.int64, copy=False)


def _check_sample(sample) -> float:
    if isinstance(sample, bool) or not isinstance(sample, (int, float, np.floating, np.integer)) \
            or not math.isfinite(sample) or sample < 0:
        raise ValueError(f"`sample` must be a finite number >= 0 (word2vec.c: 1e-3, 0: no "
                         f"subsampling), got {sample!r}")
    return float(sample)


def _check_course(batch_size, num_skips, skip_window) -> tuple[int, int, int]:
    b = _check_int("batch_size", batch_size, 1)
    ns = _check_int("num_skips", num_skips, 1)
    w = _check_int("skip_window", skip_window, 1)
    if b % ns:
        raise ValueError(f"`batch_size` ({b}) must be a multiple of `num_skips` ({ns}): each "
                         f"center fills num_skips consecutive rows")
    if ns > 2 * w:
        raise ValueError(f"`num_skips` ({ns}) must be at most 2 * skip_window = {2 * w}: a center "
                         f"has only 2 * skip_window distinct context words")
    return b, ns, w


def _check_text_fits(n: int, window: int, what: str) -> None:
    if n < 2 * window + 1:
        raise ValueError(f"corpus of {n} tokens is too short for {what}: a window spans "
                         f"2 * {window} + 1 = {2 * window + 1} tokens")


def _batch_indices(first_batch: int, num_batches: int | None) -> tf.data.Dataset:
    """int64 batch indices `first_batch, first_batch + 1, ...`: `num_batches` of them, or
    endless."""
    if num_batches is None:
        return tf.data.Dataset.counter(start=first_batch, dtype=tf.int64)
    return tf.data.Dataset.range(first_batch, first_batch + num_batches, output_type=tf.int64)


def _grouped(plan: tf.data.Dataset, batches, batch_size: int,
             num_batches: int | None) -> tf.data.Dataset:
    """Batches made `group` at a time: `batches` maps a group of plan elements (each with a
    leading `[g]` axis) to tensors `[g, batch_size, ...]`, split here into `g` batches. One `map`
    call per ~2**16 examples keeps TensorFlow's per-call cost off every batch; the batches and
    their order are the same as one call per batch."""
    group = max(1, (1 << 16) // batch_size)
    ds = plan.batch(group).map(batches, num_parallel_calls=tf.data.AUTOTUNE,
                               deterministic=True).unbatch()
    if num_batches is not None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    return ds.prefetch(tf.data.AUTOTUNE)


# --- counts for the negatives and the subsampling ---------------------------------------------

def unigram_counts(vocab, *, unk: bool = True) -> list[int]:
    """Each word's corpus count in id order: `unigrams` for
    `tf.random.fixed_unigram_candidate_sampler(..., distortion=0.75)` (negatives drawn in
    proportion to `count ** 0.75`, as word2vec.c and gensim do).

    Args:
        vocab: a `WordVocabulary` (or anything with a `counts` array and an `unk_id`).
        unk: False gives `<unk>` the count 0, so it is never drawn: right when the corpus was
            encoded with `oov="skip"` (word2vec.c / gensim train without the cut words).

    Returns:
        A list of `len(vocab)` Python ints.
    """
    counts = getattr(vocab, "counts", None)
    if counts is None:
        raise TypeError(f"`vocab` must be a WordVocabulary (it has the counts), got "
                        f"{type(vocab).__name__}")
    out = [int(c) for c in counts]
    if not unk and getattr(vocab, "unk_id", None) is not None:
        out[vocab.unk_id] = 0
    return out


def keep_probabilities(counts, sample: float) -> np.ndarray:
    """word2vec.c's subsampling: the probability that a token of each word is kept.

        keep[v] = min(1, (sqrt(counts[v] / (s N)) + 1) * (s N) / counts[v]),   N = sum(counts)

    1 for a word with count 0, and for every word when `sample = s = 0` (no subsampling).

    Args:
        counts: int `[V]`, each word's corpus count in id order (`WordVocabulary.counts`).
        sample: `s >= 0` (word2vec.c and gensim: 1e-3).

    Returns:
        float64 `[V]` in `(0, 1]`.
    """
    c = _check_counts(counts).astype(np.float64)
    s = _check_sample(sample)
    t = s * c.sum()
    if t == 0:
        return np.ones_like(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (np.sqrt(c / t) + 1.0) * t / c
    return np.where(c > 0, np.minimum(keep, 1.0), 1.0)


# --- the course: generate_batch ---------------------------------------------------------------

class CourseRandom:
    """The seeded stand-in for `random` in the course's `generate_batch`.

    `randint(a, b)` is `a + floor(u * (b - a + 1))` with `u` the next double of
    `np.random.default_rng(seed).random()`; the course's code with `random = CourseRandom(seed)`
    makes the batches of `course_skipgram_dataset(..., seed=seed)`.
    """

    def __init__(self, seed: int = 0):
        self._rng = np.random.default_rng(_check_int("seed", seed, 0))

    def randint(self, a: int, b: int) -> int:
        return a + int(self._rng.random() * (b - a + 1))


def _parse_rows(draws: np.ndarray, num_skips: int, skip_window: int):
    """The course's rejection loop, run from every start position of a block of draws at once.

    For a row (one center) starting at draw `p`, the loop takes the draws `p, p+1, ...` and keeps
    each one not yet used (the middle slot `skip_window` counts as used) until it has
    `num_skips`. Returns `(ends, slots)`: `ends[p]` the draw after the row's last (-1 when the
    row needs draws past the block), `slots[p]` its `num_skips` slots in `[0, span)`.

    Each step `j` moves every row to its next draw outside its used slots. Rows sharing a set
    of used slots (few when `skip_window` is small: 3 sets in all for the course's
    `skip_window=1, num_skips=2`) jump there at once through a table of "next draw outside the
    set"; with many sets, rejected rows step one draw at a time. Both give the same rows.
    """
    size = len(draws)
    span = 2 * skip_window + 1
    values = np.append(draws, 0).astype(np.intp)  # [size + 1]; draw `size` stands for "none"
    index = np.arange(size + 1)
    pos = np.arange(size)  # each row's next draw to look at
    used = np.full(size, 1 << skip_window, dtype=np.int64 if span < 63 else object)
    slots = np.zeros((size, num_skips), dtype=np.int32)
    complete = np.ones(size, dtype=bool)
    for j in range(num_skips):
        sets = (np.flatnonzero(np.bincount(used)) if span <= 20
                else np.unique(used[complete]))
        if len(sets) <= _MAX_SETS:
            for mask in sets:
                allowed = np.append(((int(mask) >> values[:size]) & 1) == 0, True)
                nxt = np.minimum.accumulate(np.where(allowed, index, size)[::-1])[::-1]
                pos = nxt[pos] if len(sets) == 1 else np.where(used == mask, nxt[pos], pos)
        else:
            todo = np.flatnonzero(complete)
            while todo.size:
                q = pos[todo]
                todo = todo[(q < size) & ((used[todo] >> values[q]) & 1 == 1)]
                pos[todo] += 1
        complete &= pos < size
        slot = values[pos]
        slots[:, j] = slot
        used |= np.where(complete, np.left_shift(1, slot), 0).astype(used.dtype)
        pos = np.minimum(pos + 1, size)
    return np.where(complete, pos, -1), slots


def _chain(ends: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
    """Follows the rows from draw 0: `p_0 = 0`, `p_(i+1) = ends[p_i]`.

    Returns `(rows, stop)`: `rows` the starts of the first rows that are complete in the block
    (at most `limit`), `stop` the draw where the next row starts (`len(ends)` when none is
    left). Pointer doubling: `log2(limit)` vectorised steps, no loop over rows.
    """
    size = len(ends)
    jump = np.append(np.where(ends >= 0, ends, size), size)  # size: an absorbing stop
    chain = np.zeros(1, dtype=np.int64)  # p_0 .. p_(2^i - 1)
    while chain[-1] < size and len(chain) <= limit:
        chain = np.concatenate([chain, jump[chain]])
        jump = jump[jump]
    complete = np.append(ends, -1)[chain] >= 0  # p_i < size and its row fits in the block
    r = min(limit, int(np.argmin(complete)) if not complete.all() else len(chain))
    return chain[:r], int(chain[r])


def _course_slots(seed: int, num_rows: int, num_skips: int, skip_window: int) -> np.ndarray:
    """The slots (buffer indices, `[0, span)`) the course's loop picks for its first `num_rows`
    centers, int32 `[num_rows, num_skips]`, drawn as `CourseRandom(seed)` would."""
    span = 2 * skip_window + 1
    draws_per_row = sum(span / (span - 1 - j) for j in range(num_skips))  # expected
    rng = np.random.default_rng(seed)
    out = np.empty((num_rows, num_skips), dtype=np.int32)
    left = np.empty(0, dtype=np.int32)  # draws not yet used by a row
    done = 0
    while done < num_rows:
        block = min(_STREAM_BLOCK, int((num_rows - done) * draws_per_row * 1.1) + 64)
        draws = np.concatenate([left, (rng.random(block) * span).astype(np.int32)])
        ends, slots = _parse_rows(draws, num_skips, skip_window)
        rows, stop = _chain(ends, num_rows - done)
        out[done:done + len(rows)] = slots[rows]
        done += len(rows)
        left = draws[stop:]
    return out


def course_skipgram_plan(*, batch_size: int, num_skips: int, skip_window: int, num_batches: int,
                         seed: int = 0, first_batch: int = 0) -> np.ndarray:
    """The context offsets of the course's batches `first_batch .. first_batch + num_batches - 1`.

    Args:
        batch_size, num_skips, skip_window, seed: as in `course_skipgram_dataset`.
        num_batches: how many batches, >= 0.
        first_batch: index of the first, >= 0.

    Returns:
        int8 (int32 if `skip_window >= 128`) `[num_batches, batch_size]`:
        `o[k - first_batch, i * num_skips + j]` in
        `[-skip_window, skip_window] \\ {0}`, distinct within a center; the context of row `r`
        of batch `k` is `ids[(d_k + skip_window + r // num_skips + o) mod n]` (module docstring).
    """
    b, ns, w = _check_course(batch_size, num_skips, skip_window)
    count = _check_int("num_batches", num_batches, 0)
    k0 = _check_int("first_batch", first_batch, 0)
    seed = _check_int("seed", seed, 0)
    rows = b // ns
    slots = _course_slots(seed, (k0 + count) * rows, ns, w)[k0 * rows:]
    return (slots - w).astype(np.int8 if w < 128 else np.int32).reshape(count, b)


def course_skipgram_dataset(ids, *, batch_size: int, num_skips: int, skip_window: int,
                            num_batches: int, seed: int = 0,
                            first_batch: int = 0) -> tf.data.Dataset:
    """The course's `generate_batch` skip-gram batches, from call `first_batch` on.

    Batch `i` is the course's call `k = first_batch + i` (module docstring): `R = batch_size //
    num_skips` consecutive centers, each repeated `num_skips` times with distinct context words
    at most `skip_window` away, read sequentially (wrapping around the text), with `2 *
    skip_window + 1` words skipped between calls by the buffer refill.

    Args:
        ids: the corpus, 1-D int word ids `[n]` (array or int32 tensor),
            `n >= 2 * skip_window + 1`.
        batch_size: pairs per batch, a multiple of `num_skips` (the course: 128).
        num_skips: contexts per center, `1 <= num_skips <= 2 * skip_window` (the course: 2).
        skip_window: words on each side of the center, >= 1 (the course: 1).
        num_batches: how many batches (the course trains 100,001 steps).
        seed: seeds `CourseRandom` (the RNG contract in the module docstring).
        first_batch: the number of calls before the first batch, >= 0 (resuming a run).

    Returns:
        A prefetching `tf.data.Dataset` of `(centers, contexts)`, int32 `[batch_size]` and
        `[batch_size, 1]` (the labels shape of `tf.nn.sampled_softmax_loss`); its cardinality is
        `num_batches`.

    Raises:
        ValueError: an argument out of range (named with its value), or a corpus too short for
            the window.
    """
    b, ns, w = _check_course(batch_size, num_skips, skip_window)
    corpus = _as_corpus(ids)
    n = int(corpus.shape[0])
    _check_text_fits(n, w, f"skip_window={w}")
    offsets = course_skipgram_plan(batch_size=b, num_skips=ns, skip_window=w,
                                   num_batches=num_batches, seed=seed, first_batch=first_batch)
    k0 = int(first_batch)
    step = (2 * w + 1 + b // ns) % n  # words read per call, mod n
    centers_in_batch = tf.constant(w + np.arange(b, dtype=np.int64) // ns)  # [B]

    def batches(k, o):  # k: int64 [g] call indices, o: [g, B] context offsets
        start = (k % n) * step % n
        center = (start[:, None] + centers_in_batch) % n  # [g, B]
        context = (center + tf.cast(o, tf.int64)) % n
        return tf.gather(corpus, center), tf.gather(corpus, context)[:, :, None]

    plan = tf.data.Dataset.from_tensor_slices(
        (tf.range(k0, k0 + len(offsets), dtype=tf.int64), offsets))
    return _grouped(plan, batches, b, len(offsets))


def course_cbow_dataset(ids, *, batch_size: int, skip_window: int, num_batches: int | None = None,
                        first_batch: int = 0) -> tf.data.Dataset:
    """CBOW batches read as the course's `generate_batch` reads its text (module docstring).

    Row `i` of call `k` is the window of `2 * skip_window + 1` words at `d_k + i`,
    `d_k = k * (2 * skip_window + 1 + batch_size) mod n`: its middle word is the target, the
    others (in text order) the contexts. Nothing is random.

    Args:
        ids: the corpus, 1-D int word ids `[n]` (array or int32 tensor),
            `n >= 2 * skip_window + 1`.
        batch_size: targets per batch, >= 1 (the course: 128).
        skip_window: words on each side, >= 1 (the course: 1).
        num_batches: how many batches; None (default) for an endless stream, as the course's.
        first_batch: the number of calls before the first batch, >= 0.

    Returns:
        A prefetching `tf.data.Dataset` of `(contexts, mask, targets)`: int32
        `[batch_size, 2 * skip_window]`, bool `[batch_size, 2 * skip_window]` (all True: the
        text wraps around, so no window is cut), int32 `[batch_size, 1]`; cardinality
        `num_batches` or infinite.

    Raises:
        ValueError: an argument out of range (named with its value), or a corpus too short for
            the window.
    """
    b = _check_int("batch_size", batch_size, 1)
    w = _check_int("skip_window", skip_window, 1)
    k0 = _check_int("first_batch", first_batch, 0)
    count = None if num_batches is None else _check_int("num_batches", num_batches, 0)
    corpus = _as_corpus(ids)
    n = int(corpus.shape[0])
    _check_text_fits(n, w, f"skip_window={w}")
    step = (2 * w + 1 + b) % n
    rows = tf.constant(np.arange(b, dtype=np.int64)[:, None])  # [B, 1]
    context_slots = np.array([t for t in range(2 * w + 1) if t != w], dtype=np.int64)
    context_slots = tf.constant(context_slots[None, :])  # [1, 2w]

    def batches(k):  # k: int64 [g] call indices
        start = ((k % n) * step % n)[:, None, None]  # [g, 1, 1]
        contexts = tf.gather(corpus, (start + rows + context_slots) % n)  # [g, B, 2w]
        targets = tf.gather(corpus, (start + rows + w) % n)  # [g, B, 1]
        return contexts, tf.ones_like(contexts, dtype=tf.bool), targets

    return _grouped(_batch_indices(k0, count), batches, b, count)


# --- word2vec.c / gensim ------------------------------------------------------------------------

class EpochWords(NamedTuple):
    """Corpus words of one epoch: `words` before subsampling, `kept` after."""

    words: int
    kept: int


@dataclasses.dataclass(frozen=True, eq=False)
class Word2VecPlan:
    """One epoch of word2vec.c / gensim examples (module docstring), as NumPy arrays over the
    `m` kept tokens; `word2vec_skipgram_dataset` and `word2vec_cbow_dataset` gather from it.

    Attributes:
        ids: int32 `[m]`, the kept tokens' ids in text order (`x`).
        positions: int64 `[m]`, their positions in the corpus.
        shrink: int32 `[m]`, `b` in `[0, window)`; the window of kept token `k` is
            `window - shrink[k]`.
        left, right: int32 `[m]`, how many contexts kept token `k` has on each side (its window,
            cut at the text's or sentence's ends).
        window: the largest window, `W`.
        words: corpus tokens before subsampling (`n`).
        seed, epoch: what the plan was drawn from.
    """

    ids: np.ndarray
    positions: np.ndarray
    shrink: np.ndarray
    left: np.ndarray
    right: np.ndarray
    window: int
    words: int
    seed: int
    epoch: int

    @property
    def kept_words(self) -> int:
        """Corpus tokens after subsampling (`m`)."""
        return len(self.ids)

    @property
    def epoch_words(self) -> EpochWords:
        return EpochWords(self.words, self.kept_words)

    @property
    def pair_starts(self) -> np.ndarray:
        """int64 `[m + 1]`: `start[k]`, the index of kept token `k`'s first skip-gram pair; the
        last entry is the number of pairs."""
        starts = np.zeros(len(self.ids) + 1, dtype=np.int64)
        np.cumsum(self.left + self.right, out=starts[1:])
        return starts

    @property
    def num_pairs(self) -> int:
        """Skip-gram pairs in the epoch, `sum(left + right)`."""
        return int(self.left.sum(dtype=np.int64) + self.right.sum(dtype=np.int64))

    @property
    def cbow_targets(self) -> np.ndarray:
        """int64 `[E]`: the kept indices `k` with at least one context (the CBOW examples)."""
        return np.flatnonzero((self.left + self.right) > 0)

    def num_batches(self, batch_size: int, kind: str = "skipgram") -> int:
        """Full batches of `batch_size` skip-gram pairs or CBOW examples (`kind`)."""
        b = _check_int("batch_size", batch_size, 1)
        if kind == "skipgram":
            return self.num_pairs // b
        if kind == "cbow":
            return len(self.cbow_targets) // b
        raise ValueError(f"`kind` must be 'skipgram' or 'cbow', got {kind!r}")


def _kept(ids: np.ndarray, counts, sample, rng) -> np.ndarray:
    """Step 1 of the contract: the positions of the kept tokens (draws `u`)."""
    if counts is None:
        counts = np.bincount(ids, minlength=1)
    counts = _check_counts(counts)
    if ids.size and ids.max() >= len(counts):
        raise ValueError(f"`ids` holds id {ids.max()}, out of range for `counts` of "
                         f"{len(counts)} words (the vocabulary is too small for this corpus)")
    keep = keep_probabilities(counts, sample)
    u = rng.random(len(ids), dtype=np.float32)
    return np.flatnonzero(keep[ids] > u)


def words_in_epoch(ids, counts=None, *, sample: float, seed: int = 0,
                   epoch: int = 0) -> EpochWords:
    """The corpus words of an epoch before and after subsampling (for words/s reports).

    Draws the same `u` as `word2vec_plan` with the same arguments, so `kept` is its
    `kept_words`.
    """
    arr = _check_ids(ids)
    return EpochWords(len(arr), len(_kept(arr, counts, sample, epoch_rng(seed, epoch))))


def word2vec_plan(ids, counts=None, *, window: int, sample: float, seed: int = 0, epoch: int = 0,
                  sentence_length: int | None = None) -> Word2VecPlan:
    """Subsamples and shrinks one epoch as word2vec.c and gensim do (module docstring).

    Args:
        ids: the corpus, 1-D int word ids `[n]` (array or int32 tensor). gensim and word2vec.c
            train without the words cut from the vocabulary: `encode(..., oov="skip")`.
        counts: int `[V]`, each id's corpus count (`WordVocabulary.counts`); None counts `ids`
            (`np.bincount`), which is what word2vec.c uses (`N` then excludes skipped words).
        window: the largest window `W >= 1` (word2vec.c and gensim: 5).
        sample: the subsampling threshold `s >= 0` (word2vec.c and gensim: 1e-3; 0: none).
        seed, epoch: non-negative ints; the epoch's draws come from `epoch_rng(seed, epoch)`.
        sentence_length: windows do not cross multiples of it in `ids`; None: one text.

    Returns:
        The `Word2VecPlan`.

    Raises:
        ValueError: an argument out of range (named with its value), or an id outside `counts`.
    """
    arr = _check_ids(ids)
    w = _check_int("window", window, 1)
    sample = _check_sample(sample)
    seed, epoch = _check_int("seed", seed, 0), _check_int("epoch", epoch, 0)
    if sentence_length is not None:
        sentence_length = _check_int("sentence_length", sentence_length, 1)
    rng = epoch_rng(seed, epoch)
    positions = _kept(arr, counts, sample, rng)
    m = len(positions)
    shrink = rng.integers(0, w, size=m, dtype=np.int32)
    eff = w - shrink
    k = np.arange(m, dtype=np.int64)
    if sentence_length is None:
        first, last = np.zeros(m, dtype=np.int64), np.full(m, m - 1, dtype=np.int64)
    else:
        sentence = positions // sentence_length
        first = np.searchsorted(sentence, sentence, side="left")
        last = np.searchsorted(sentence, sentence, side="right") - 1
    left = np.minimum(eff, k - first).astype(np.int32)
    right = np.minimum(eff, last - k).astype(np.int32)
    return Word2VecPlan(ids=arr[positions], positions=positions, shrink=shrink, left=left,
                        right=right, window=w, words=len(arr), seed=seed, epoch=epoch)


def _check_plan(plan, batch_size, first_batch, kind) -> tuple[int, int, int]:
    if not isinstance(plan, Word2VecPlan):
        raise TypeError(f"`plan` must be a Word2VecPlan (from word2vec_plan), got "
                        f"{type(plan).__name__}")
    b = _check_int("batch_size", batch_size, 1)
    k0 = _check_int("first_batch", first_batch, 0)
    total = plan.num_batches(b, kind)
    if total == 0:
        what = "pairs" if kind == "skipgram" else "CBOW examples"
        have = plan.num_pairs if kind == "skipgram" else len(plan.cbow_targets)
        raise ValueError(f"the epoch has {have} {what} ({plan.words} words, {plan.kept_words} "
                         f"kept), fewer than batch_size={b}: the corpus is too short")
    if k0 > total:
        raise ValueError(f"`first_batch` ({k0}) is past the epoch's {total} batches")
    return b, k0, total


def word2vec_skipgram_dataset(plan: Word2VecPlan, *, batch_size: int,
                              first_batch: int = 0) -> tf.data.Dataset:
    """The epoch's skip-gram pairs `(center, context)`, `batch_size` at a time, in word2vec.c's
    order (module docstring, step 3); the last `num_pairs mod batch_size` pairs are dropped.

    The pairs are never materialised: batch `t` finds the centers of pairs `t*B .. t*B + B - 1`
    by binary search in `plan.pair_starts` inside `tf.data`.

    Args:
        plan: the epoch, from `word2vec_plan`.
        batch_size: pairs per batch, >= 1.
        first_batch: batches of the epoch to skip (resuming mid-epoch), >= 0.

    Returns:
        A prefetching `tf.data.Dataset` of `(centers, contexts)`, int32 `[batch_size]` and
        `[batch_size, 1]` (as the course's); cardinality `plan.num_batches(batch_size) -
        first_batch`.

    Raises:
        ValueError: a bad argument, or fewer than `batch_size` pairs in the epoch.
    """
    b, k0, total = _check_plan(plan, batch_size, first_batch, "skipgram")
    with tf.device("CPU:0"):
        ids = tf.constant(plan.ids)
        starts = tf.constant(plan.pair_starts)
        left = tf.constant(plan.left.astype(np.int64))
    in_batch = tf.range(b, dtype=tf.int64)

    def batches(t):  # t: int64 [g] batch indices
        j = tf.reshape(t[:, None] * b + in_batch, [-1])  # [g * B] pair indices
        k = tf.searchsorted(starts, j, side="right", out_type=tf.int64) - 1  # their centers
        r = j - tf.gather(starts, k)  # which of k's pairs
        lk = tf.gather(left, k)
        offset = r - lk + tf.cast(r >= lk, tf.int64)  # -left .. -1, 1 .. right
        centers = tf.reshape(tf.gather(ids, k), [-1, b])
        contexts = tf.reshape(tf.gather(ids, k + offset), [-1, b, 1])
        return centers, contexts

    return _grouped(_batch_indices(k0, total - k0), batches, b, total - k0)


def word2vec_cbow_dataset(plan: Word2VecPlan, *, batch_size: int,
                          first_batch: int = 0) -> tf.data.Dataset:
    """The epoch's CBOW examples, `batch_size` at a time, in text order (module docstring, step
    4); the last partial batch is dropped.

    Args:
        plan: the epoch, from `word2vec_plan`.
        batch_size: examples per batch, >= 1.
        first_batch: batches of the epoch to skip, >= 0.

    Returns:
        A prefetching `tf.data.Dataset` of `(contexts, mask, targets)`: int32
        `[batch_size, 2 * window]` (slot `s` is offset `s - W` or `s - W + 1`; 0 where masked),
        bool `[batch_size, 2 * window]` (True where the shrunk, cut window has a word), int32
        `[batch_size]`. Sum (the course) or average (word2vec.c: divide by `mask` summed, >= 1)
        the masked context vectors. Cardinality `plan.num_batches(batch_size, "cbow") -
        first_batch`.

    Raises:
        ValueError: a bad argument, or fewer than `batch_size` examples in the epoch.
    """
    b, k0, total = _check_plan(plan, batch_size, first_batch, "cbow")
    w = plan.window
    with tf.device("CPU:0"):
        ids = tf.constant(plan.ids)
        targets = tf.constant(plan.cbow_targets)
        left = tf.constant(plan.left.astype(np.int64))
        right = tf.constant(plan.right.astype(np.int64))
    slot_offsets = tf.constant(
        np.concatenate([np.arange(-w, 0), np.arange(1, w + 1)]).astype(np.int64)[None, :])
    in_batch = tf.range(b, dtype=tf.int64)

    def batches(t):  # t: int64 [g] batch indices
        k = tf.gather(targets, tf.reshape(t[:, None] * b + in_batch, [-1]))  # [g * B]
        mask = ((slot_offsets >= -tf.gather(left, k)[:, None])
                & (slot_offsets <= tf.gather(right, k)[:, None]))  # [g * B, 2W]
        pos = tf.where(mask, k[:, None] + slot_offsets, 0)
        contexts = tf.where(mask, tf.gather(ids, pos), 0)
        return (tf.reshape(contexts, [-1, b, 2 * w]), tf.reshape(mask, [-1, b, 2 * w]),
                tf.reshape(tf.gather(ids, k), [-1, b]))

    return _grouped(_batch_indices(k0, total - k0), batches, b, total - k0)
