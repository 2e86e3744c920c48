"""`course_dataset` against the TensorFlow course's `BatchGenerator`, written out literally."""

import string

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.data.course_batches import course_dataset, course_starts, course_validation_pairs

# --- the course's code (6_lstm.ipynb), as published; `np.float` (gone from NumPy) -> float32 ---

vocabulary_size = len(string.ascii_lowercase) + 1  # [a-z] + ' '
first_letter = ord(string.ascii_lowercase[0])


def char2id(char):
    if char in string.ascii_lowercase:
        return ord(char) - first_letter + 1
    elif char == ' ':
        return 0
    else:
        raise AssertionError(f"Unexpected character: {char}")


class BatchGenerator:
    def __init__(self, text, batch_size, num_unrollings):
        self._text = text
        self._text_size = len(text)
        self._batch_size = batch_size
        self._num_unrollings = num_unrollings
        segment = self._text_size // batch_size
        self._cursor = [offset * segment for offset in range(batch_size)]
        self._last_batch = self._next_batch()

    def _next_batch(self):
        """Generate a single batch from the current cursor position in the data."""
        batch = np.zeros(shape=(self._batch_size, vocabulary_size), dtype=np.float32)
        for b in range(self._batch_size):
            batch[b, char2id(self._text[self._cursor[b]])] = 1.0
            self._cursor[b] = (self._cursor[b] + 1) % self._text_size
        return batch

    def next(self):
        """Generate the next array of batches from the data. The array consists of
        the last batch of the previous array, followed by num_unrollings new ones."""
        batches = [self._last_batch]
        for _step in range(self._num_unrollings):
            batches.append(self._next_batch())
        self._last_batch = batches[-1]
        return batches


def as_ids(one_hot):
    """One-hot `[batch, vocabulary_size]` -> ids `[batch]` (checking it is one-hot)."""
    np.testing.assert_array_equal(one_hot.sum(axis=1), 1.0)
    return one_hot.argmax(axis=1)


def reference(text, batch_size, num_unrollings, num_batches):
    """The course's first `num_batches` training batches, as ids `[num_batches, B, T]` (X, Y):
    `inputs = batches[:-1]`, `labels = batches[1:]`, time along axis 2."""
    generator = BatchGenerator(text, batch_size, num_unrollings)
    xs, ys = [], []
    for _ in range(num_batches):
        batches = [as_ids(b) for b in generator.next()]
        xs.append(np.stack(batches[:-1], axis=1))
        ys.append(np.stack(batches[1:], axis=1))
    return np.array(xs), np.array(ys)


def reference_validation(valid_text):
    """The course's validation: `BatchGenerator(valid_text, 1, 1)`, `len(valid_text)` steps of
    feeding `b[0]` and scoring `b[1]` (ids of the fed and the predicted characters)."""
    valid_batches = BatchGenerator(valid_text, 1, 1)
    fed, scored = [], []
    for _ in range(len(valid_text)):
        b = valid_batches.next()
        fed.append(as_ids(b[0])[0])
        scored.append(as_ids(b[1])[0])
    return np.array(fed), np.array(scored)


# --- helpers ---------------------------------------------------------------------------------

def encode(text):
    return np.array([char2id(c) for c in text], dtype=np.int32)


def encode_fast(text):
    """`encode` vectorised, for the whole text8 prefix (letters and spaces)."""
    codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8).astype(np.int32)
    assert np.all((codes == ord(" ")) | ((codes >= ord("a")) & (codes <= ord("z"))))
    return np.where(codes == ord(" "), 0, codes - first_letter + 1).astype(np.int32)


def collect(ds, num_batches):
    """The first `num_batches` of a (possibly endless) dataset, `[num_batches, B, T]` (X, Y)."""
    x, y = ds.take(num_batches).batch(num_batches).get_single_element()
    return x.numpy(), y.numpy()


@pytest.fixture(scope="session")
def text8_text(source_dir) -> str:
    """The real text8 prefix (letters and spaces only, as the course's text)."""
    return (source_dir / "text8_prefix_12549840.txt").read_text(encoding="ascii")


# --- batch for batch against the course -------------------------------------------------------

def test_matches_course_on_text8(text8_text):
    """The course's setting (batch 64, 10 unrollings) on 200,000 characters of text8, split into
    validation and training text the course's way."""
    text = text8_text[:200_000]
    valid_size = 1000
    train_text = text[valid_size:]
    ex, ey = reference(train_text, 64, 10, 30)
    ds = course_dataset(encode(train_text), batch_size=64, num_unrollings=10, num_batches=30)
    assert int(ds.cardinality()) == 30
    x, y = collect(ds, 30)
    assert x.shape == y.shape == (30, 64, 10) and x.dtype == y.dtype == np.int32
    np.testing.assert_array_equal(x, ex)
    np.testing.assert_array_equal(y, ey)
    # the same from the endless stream, and from a tensor corpus
    endless = course_dataset(tf.constant(encode(train_text)), batch_size=64, num_unrollings=10)
    x2, y2 = collect(endless, 30)
    np.testing.assert_array_equal(x2, ex)
    np.testing.assert_array_equal(y2, ey)
    # the plan is the first column of X
    starts = course_starts(len(train_text), 64, 10, 0, 30)
    assert starts.shape == (30, 64) and starts.dtype == np.int64
    segment = len(train_text) // 64
    np.testing.assert_array_equal(starts[0], np.arange(64) * segment)
    np.testing.assert_array_equal(x[:, :, 0], encode(train_text)[starts])


@pytest.mark.parametrize("text, batch_size, num_unrollings, num_batches", [
    ("qwertyuiopasdfghjklzxcv", 3, 4, 20),  # n = 23, distinct letters: every position traced
    ("hello world and goodbye", 3, 4, 20),
    ("qwertyuiopasdfghjklzxcv", 1, 1, 50),
    ("qwertyuiopasdfghjklzxcv", 22, 3, 12),  # segment 1, and a last segment of 2
    ("abcde", 2, 7, 9),  # unrollings longer than the text: wraps within a batch
    ("ab", 1, 1, 5),
])
def test_matches_course_with_wrap_around(text, batch_size, num_unrollings, num_batches):
    ex, ey = reference(text, batch_size, num_unrollings, num_batches)
    assert (num_batches * num_unrollings + 1) > len(text)  # the last row wraps around
    for kwargs in (dict(num_batches=num_batches), dict()):
        ds = course_dataset(encode(text), batch_size=batch_size, num_unrollings=num_unrollings,
                            **kwargs)
        x, y = collect(ds, num_batches)
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)
    starts = course_starts(len(text), batch_size, num_unrollings, 0, num_batches)
    np.testing.assert_array_equal(encode(text)[starts], ex[:, :, 0])


def test_wrap_around_by_position():
    """With id == position: every row reads consecutive positions modulo n, and row b of batch
    k starts at (b * segment + k * T) mod n."""
    n, b, t = 23, 3, 4
    x, y = collect(course_dataset(np.arange(n), batch_size=b, num_unrollings=t), 20)
    k = np.arange(20)[:, None, None]
    rows = np.arange(b)[None, :, None] * (n // b)
    steps = np.arange(t)[None, None, :]
    np.testing.assert_array_equal(x, (rows + k * t + steps) % n)
    np.testing.assert_array_equal(y, (rows + k * t + steps + 1) % n)
    assert x[5, 2, 3] == (2 * 7 + 5 * 4 + 3) % n == 14  # row 2 has wrapped into row 0's text
    # the state carries row by row: each row picks up where it stopped
    np.testing.assert_array_equal(x[1:, :, 0], y[:-1, :, -1])
    np.testing.assert_array_equal(x[:, :, 1:], y[:, :, :-1])


# --- resuming --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, batch_size, num_unrollings", [
    ("qwertyuiopasdfghjklzxcv", 3, 4),
    ("hello world and goodbye", 5, 2),
])
@pytest.mark.parametrize("first_batch", [0, 1, 7, 19])
def test_first_batch_equals_skipping(text, batch_size, num_unrollings, first_batch):
    m = 8
    ex, ey = reference(text, batch_size, num_unrollings, first_batch + m)
    ids = encode(text)
    kwargs = dict(batch_size=batch_size, num_unrollings=num_unrollings)
    resumed = course_dataset(ids, first_batch=first_batch, num_batches=m, **kwargs)
    assert int(resumed.cardinality()) == m
    endless = course_dataset(ids, first_batch=first_batch, **kwargs)
    skipped = course_dataset(ids, **kwargs).skip(first_batch)
    for ds in (resumed, endless, skipped):
        x, y = collect(ds, m)
        np.testing.assert_array_equal(x, ex[first_batch:])
        np.testing.assert_array_equal(y, ey[first_batch:])
    np.testing.assert_array_equal(
        course_starts(len(text), batch_size, num_unrollings, first_batch, m),
        course_starts(len(text), batch_size, num_unrollings, 0, first_batch + m)[first_batch:])


def test_far_batches_of_an_endless_stream(text8_text):
    """Batch 10**15 of the whole 12.5M-character prefix, with no plan of 10**15 batches, and
    exact integer arithmetic (checked against Python ints)."""
    ids = encode_fast(text8_text)
    np.testing.assert_array_equal(ids[:20_000], encode(text8_text[:20_000]))
    n, b, t = len(ids), 64, 10
    k = 10**15 + 3
    ds = course_dataset(ids, batch_size=b, num_unrollings=t, first_batch=k)
    assert ds.cardinality() == tf.data.INFINITE_CARDINALITY
    assert ds.element_spec == (tf.TensorSpec([b, t], tf.int32),) * 2
    x, y = collect(ds, 2)
    for i in range(2):
        starts = [(r * (n // b) + (k + i) * t) % n for r in range(b)]  # Python ints
        np.testing.assert_array_equal(course_starts(n, b, t, k + i, 1)[0], starts)
        for r, s in enumerate(starts):
            np.testing.assert_array_equal(x[i, r], ids[[(s + j) % n for j in range(t)]])
            np.testing.assert_array_equal(y[i, r], ids[[(s + j + 1) % n for j in range(t)]])


def test_batches_repeat_with_period_n():
    """start[k + n] == start[k]: the first batch index beyond any int32 still lines up."""
    ids = encode("qwertyuiopasdfghjklzxcv")
    n = len(ids)
    base = collect(course_dataset(ids, batch_size=3, num_unrollings=4), 5)
    for first_batch in (n, 7 * n, 2**40 * n):
        again = collect(course_dataset(ids, batch_size=3, num_unrollings=4,
                                       first_batch=first_batch), 5)
        np.testing.assert_array_equal(again[0], base[0])
        np.testing.assert_array_equal(again[1], base[1])


# --- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("valid", ["text8", "qwertyuiopasdfghjklzxcv", "ab"])
def test_validation_pairs_match_course(text8_text, valid):
    valid_text = text8_text[:1000] if valid == "text8" else valid  # the course's valid_text
    fed, scored = reference_validation(valid_text)
    x, y = course_validation_pairs(encode(valid_text))
    n = len(valid_text)
    assert x.shape == y.shape == (1, n) and x.dtype == y.dtype == np.int32
    np.testing.assert_array_equal(x[0], fed)
    np.testing.assert_array_equal(y[0], scored)
    assert y[0, -1] == char2id(valid_text[0])  # the last prediction wraps around
    x2, y2 = course_validation_pairs(tf.constant(encode(valid_text)))
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(y2, y)


def test_validation_scores_the_course_predictions():
    """A stateful model stepped the course's way (state reset once, feed b[0], score b[1]) and
    the same model run over `x` from a zero state give the same n scores."""
    rng = np.random.default_rng(0)
    w, u = rng.normal(size=(vocabulary_size, 8)), rng.normal(size=(8, 8))
    v = rng.normal(size=(8, vocabulary_size))

    def step(h, char_id):
        h = np.tanh(w[char_id] + h @ u)
        logits = h @ v
        return h, logits - np.log(np.exp(logits).sum())

    valid_text = "the quick brown fox jumps"
    valid_batches = BatchGenerator(valid_text, 1, 1)
    h, course = np.zeros(8), []
    for _ in range(len(valid_text)):
        b = valid_batches.next()
        h, log_p = step(h, as_ids(b[0])[0])
        course.append(log_p[as_ids(b[1])[0]])
    x, y = course_validation_pairs(encode(valid_text))
    h, ours = np.zeros(8), []
    for xi, yi in zip(x[0], y[0]):
        h, log_p = step(h, xi)
        ours.append(log_p[yi])
    assert len(ours) == len(course) == len(valid_text)
    np.testing.assert_array_equal(ours, course)


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), r"`batch_size` must be an int >= 1, got 0"),
    (dict(batch_size=True), r"`batch_size` must be an int >= 1, got True"),
    (dict(num_unrollings=0), r"`num_unrollings` must be an int >= 1, got 0"),
    (dict(num_unrollings=2.0), r"`num_unrollings` must be an int >= 1, got 2.0"),
    (dict(first_batch=-1), r"`first_batch` must be an int >= 0, got -1"),
    (dict(num_batches=-2), r"`num_batches` must be an int >= 0, got -2"),
    (dict(corpus=np.arange(3), batch_size=3),
     r"`corpus` of 3 tokens is too short for batch_size=3: need at least 4 tokens "
     r"\(segment = 3 // 3 = 1\)"),
    (dict(corpus=np.arange(2), batch_size=3),
     r"`corpus` of 2 tokens is too short for batch_size=3: need at least 4 tokens "
     r"\(segment = 2 // 3 = 0\)"),
    (dict(corpus=np.arange(0), batch_size=1), r"`corpus` of 0 tokens is too short"),
    (dict(corpus=np.zeros((2, 50), np.int32)), r"1-D integer array, got int32 of shape"),
    (dict(corpus=np.full(100, -1)), r"must be in \[0, 2\*\*31\)"),
])
def test_dataset_bad_arguments(kwargs, match):
    args = dict(corpus=np.arange(100), batch_size=2, num_unrollings=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        course_dataset(**args)


def test_dataset_boundary_corpus_is_accepted():
    x, y = collect(course_dataset(np.arange(4), batch_size=3, num_unrollings=2), 2)
    np.testing.assert_array_equal(x[0], [[0, 1], [1, 2], [2, 3]])
    np.testing.assert_array_equal(y[1], [[3, 0], [0, 1], [1, 2]])


@pytest.mark.parametrize("args, match", [
    ((3, 3, 4, 0, 1), r"`text_len` of 3 tokens is too short for batch_size=3: need at least 4"),
    ((2, 3, 4, 0, 1), r"segment = 2 // 3 = 0"),
    ((10, 0, 4, 0, 1), r"`batch_size` must be an int >= 1, got 0"),
    ((10, 2, 0, 0, 1), r"`num_unrollings` must be an int >= 1, got 0"),
    ((10, 2, 4, -3, 1), r"`first_batch` must be an int >= 0, got -3"),
    ((10, 2, 4, 0, -1), r"`num_batches` must be an int >= 0, got -1"),
    ((-1, 2, 4, 0, 1), r"`text_len` must be an int >= 0, got -1"),
])
def test_starts_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        course_starts(*args)


@pytest.mark.parametrize("ids, match", [
    (np.array([5]), r"`ids` of 1 tokens is too short for batch_size=1: need at least 2"),
    (np.array([], np.int32), r"`ids` of 0 tokens is too short"),
    (np.zeros((1, 10), np.int32), r"1-D integer array"),
])
def test_validation_bad_arguments(ids, match):
    with pytest.raises(ValueError, match=match):
        course_validation_pairs(ids)
