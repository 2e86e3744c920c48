"""`lm_dataset` (and `lm_batches`, the same batches without tf.data) against d2l's four samplers,
written out literally, on the real corpora."""

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.data.lm_pipeline import (
    carries_state,
    epoch_rng,
    lm_batches,
    lm_dataset,
    lm_plan,
    min_tokens,
    num_batches,
    window_dataset,
)

# --- d2l's samplers, as published, with `random` -> the documented NumPy generator ------------

def randint(rng, a, b):
    """`random.randint(a, b)` (both ends included) on a NumPy generator."""
    return int(rng.integers(a, b + 1))


def data_iter_random(corpus_indices, batch_size, num_steps, rng):
    num_examples = (len(corpus_indices) - 1) // num_steps
    epoch_size = num_examples // batch_size
    example_indices = list(range(num_examples))
    rng.shuffle(example_indices)

    def _data(pos):
        return corpus_indices[pos: pos + num_steps]

    for i in range(epoch_size):
        i = i * batch_size
        batch_indices = example_indices[i: i + batch_size]
        X = [_data(j * num_steps) for j in batch_indices]
        Y = [_data(j * num_steps + 1) for j in batch_indices]
        yield X, Y


def data_iter_consecutive(corpus_indices, batch_size, num_steps, rng):
    data_len = len(corpus_indices)
    batch_len = data_len // batch_size
    indices = corpus_indices[0: batch_size * batch_len].reshape((batch_size, batch_len))
    epoch_size = (batch_len - 1) // num_steps
    for i in range(epoch_size):
        i = i * num_steps
        X = indices[:, i: i + num_steps]
        Y = indices[:, i + 1: i + num_steps + 1]
        yield X, Y


def seq_data_iter_random(corpus, batch_size, num_steps, rng):
    corpus = corpus[randint(rng, 0, num_steps - 1):]
    num_subseqs = (len(corpus) - 1) // num_steps
    initial_indices = list(range(0, num_subseqs * num_steps, num_steps))
    rng.shuffle(initial_indices)

    def data(pos):
        return corpus[pos: pos + num_steps]

    num_batches = num_subseqs // batch_size
    for i in range(0, batch_size * num_batches, batch_size):
        initial_indices_per_batch = initial_indices[i: i + batch_size]
        X = [data(j) for j in initial_indices_per_batch]
        Y = [data(j + 1) for j in initial_indices_per_batch]
        yield X, Y


def seq_data_iter_sequential(corpus, batch_size, num_steps, rng):
    offset = randint(rng, 0, num_steps)
    num_tokens = ((len(corpus) - offset - 1) // batch_size) * batch_size
    Xs = corpus[offset: offset + num_tokens]
    Ys = corpus[offset + 1: offset + 1 + num_tokens]
    Xs, Ys = Xs.reshape(batch_size, -1), Ys.reshape(batch_size, -1)
    num_batches = Xs.shape[1] // num_steps
    for i in range(0, num_steps * num_batches, num_steps):
        X = Xs[:, i: i + num_steps]
        Y = Ys[:, i: i + num_steps]
        yield X, Y


D2L = {
    (1, "random"): data_iter_random,
    (1, "consecutive"): data_iter_consecutive,
    (2, "random"): seq_data_iter_random,
    (2, "consecutive"): seq_data_iter_sequential,
}
SAMPLERS = list(D2L)


def reference(ids, batch_size, num_steps, sampler, edition, seed, epoch):
    rng = np.random.default_rng([seed, epoch])  # the generator lm_dataset documents
    it = D2L[edition, sampler](ids, batch_size, num_steps, rng)
    return [(np.array(x), np.array(y)) for x, y in it]


def collect(ds):
    """All of a dataset's batches as `[num_batches, batch_size, num_steps]` arrays (X, Y), taken
    in one call (iterating batch by batch in Python costs ~0.5 ms each)."""
    x, y = ds.batch(int(ds.cardinality())).get_single_element()
    return x.numpy(), y.numpy()


def batches(**kwargs):
    return list(zip(*collect(lm_dataset(**kwargs))))


# --- batch for batch against d2l -------------------------------------------------------------

@pytest.mark.parametrize("edition, sampler", SAMPLERS)
@pytest.mark.parametrize("corpus, n_tokens, batch_size, num_steps, seed, epoch", [
    ("jaychou", None, 32, 35, 0, 0),  # d2l-zh's setting
    ("jaychou", None, 2, 6, 7, 3),
    ("time_machine", None, 32, 35, 0, 1),  # d2l's setting
    ("time_machine", None, 5, 100, 7, 0),
    ("time_machine", 3001, 3, 7, 1, 2),
    ("time_machine", 400, 1, 1, 2, 5),
])
def test_matches_d2l_batch_for_batch(corpora, corpus, n_tokens, batch_size, num_steps, edition,
                                     sampler, seed, epoch):
    ids = corpora[corpus][:n_tokens]
    expected = reference(ids, batch_size, num_steps, sampler, edition, seed, epoch)
    ds = lm_dataset(ids, batch_size=batch_size, num_steps=num_steps, sampler=sampler,
                    edition=edition, seed=seed, epoch=epoch)
    got = list(ds.as_numpy_iterator()) if len(expected) < 100 else list(zip(*collect(ds)))
    assert len(got) == len(expected) == int(ds.cardinality()) > 0
    assert len(got) == num_batches(len(ids), batch_size=batch_size, num_steps=num_steps,
                                   sampler=sampler, edition=edition, seed=seed, epoch=epoch)
    for (x, y), (ex, ey) in zip(got, expected):
        assert x.dtype == y.dtype == np.int32
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


def test_d2l_toy_sequence():
    """d2l's own example: list(range(30)), batch_size 2, num_steps 6."""
    ids = np.arange(30)
    for edition, sampler in SAMPLERS:
        for epoch in range(5):
            got = batches(ids=ids, batch_size=2, num_steps=6, sampler=sampler, edition=edition,
                          epoch=epoch)
            expected = reference(ids, 2, 6, sampler, edition, 0, epoch)
            assert len(got) == len(expected)
            for (x, y), (ex, ey) in zip(got, expected):
                np.testing.assert_array_equal(x, ex)
                np.testing.assert_array_equal(y, ey)
    x, y = batches(ids=ids, batch_size=2, num_steps=6, sampler="consecutive")[0]
    np.testing.assert_array_equal(x, [[0, 1, 2, 3, 4, 5], [15, 16, 17, 18, 19, 20]])


# --- coverage, with token id == position so that rows can be traced -------------------------

@pytest.mark.parametrize("edition", [1, 2])
@pytest.mark.parametrize("batch_size, num_steps", [(4, 9), (1, 5), (16, 35)])
def test_consecutive_rows_continue_across_batches(corpora, edition, batch_size, num_steps):
    kwargs = dict(batch_size=batch_size, num_steps=num_steps, sampler="consecutive",
                  edition=edition)
    for epoch in range(3):
        x, y = collect(lm_dataset(np.arange(5000), epoch=epoch, **kwargs))  # id == position
        np.testing.assert_array_equal(x[1:, :, 0], x[:-1, :, -1] + 1)
        np.testing.assert_array_equal(x[1:, :, 0], y[:-1, :, -1])
        np.testing.assert_array_equal(x, x[:, :, :1] + np.arange(num_steps))
        assert len(set(np.diff(x[0, :, 0]))) <= 1  # rows of equal length, one after another
    # and on real text: each row picks up at the token after the previous batch's row
    x, y = collect(lm_dataset(corpora["time_machine"][:20000], epoch=1, **kwargs))
    np.testing.assert_array_equal(x[1:, :, 0], y[:-1, :, -1])
    np.testing.assert_array_equal(x[:, :, 1:], y[:, :, :-1])


@pytest.mark.parametrize("batch_size, num_steps", [(4, 9), (3, 1), (32, 35)])
def test_random_v1_uses_distinct_aligned_subsequences(batch_size, num_steps):
    positions = np.arange(10007)
    x, y = collect(lm_dataset(positions, batch_size=batch_size, num_steps=num_steps,
                              sampler="random", epoch=2))
    x, y = x.reshape(-1, num_steps), y.reshape(-1, num_steps)
    epoch_size = ((len(positions) - 1) // num_steps) // batch_size
    assert len(x) == epoch_size * batch_size
    assert len(np.unique(x[:, 0])) == len(x)
    assert np.all(x[:, 0] % num_steps == 0)
    np.testing.assert_array_equal(x, x[:, :1] + np.arange(num_steps))
    np.testing.assert_array_equal(y, x + 1)


@pytest.mark.parametrize("sampler, max_offset", [("random", 34), ("consecutive", 35)])
def test_v2_offsets_vary_across_epochs(sampler, max_offset):
    positions = np.arange(2000)
    offsets = []
    for epoch in range(12):
        x, _ = collect(lm_dataset(positions, batch_size=4, num_steps=35, sampler=sampler,
                                  edition=2, epoch=epoch))
        starts = x[:, :, 0]  # [num_batches, batch_size]
        if sampler == "random":
            offset = starts.min() % 35
            assert np.all(starts % 35 == offset)
        else:
            offset = starts[0, 0]
            np.testing.assert_array_equal(starts[:, 0], offset + 35 * np.arange(len(starts)))
        offsets.append(int(offset))
    assert 0 <= min(offsets) and max(offsets) <= max_offset
    assert len(set(offsets)) > 5


# --- determinism -----------------------------------------------------------------------------

@pytest.mark.parametrize("edition, sampler", SAMPLERS)
def test_same_seed_and_epoch_same_batches(corpora, edition, sampler):
    kwargs = dict(ids=corpora["jaychou"], batch_size=8, num_steps=20, sampler=sampler,
                  edition=edition)
    a = batches(seed=3, epoch=5, **kwargs)
    b = batches(seed=3, epoch=5, **kwargs)
    assert all(np.array_equal(x, x2) and np.array_equal(y, y2) for (x, y), (x2, y2) in zip(a, b))
    assert len(a) == len(b)
    if (edition, sampler) == (1, "consecutive"):
        return  # d2l-zh's consecutive sampler has no randomness
    for other in (dict(seed=3, epoch=6), dict(seed=4, epoch=5)):
        c = batches(**other, **kwargs)
        assert not (len(a) == len(c) and all(np.array_equal(x, x2) for (x, _), (x2, _) in
                                             zip(a, c)))


def test_plan_follows_the_documented_rng():
    rng = epoch_rng(5, 2)
    offset = int(rng.integers(0, 10))
    order = rng.permutation((1000 - offset - 1) // 10)
    plan = lm_plan(1000, batch_size=4, num_steps=10, sampler="random", edition=2, seed=5,
                   epoch=2)
    assert plan.shape == (24, 4) and plan.dtype == np.int64
    np.testing.assert_array_equal(plan.reshape(-1), offset + order[:96] * 10)


# --- shapes, counts, errors ------------------------------------------------------------------

def test_static_shapes_and_prefetch(corpora):
    ds = lm_dataset(corpora["time_machine"], batch_size=32, num_steps=35, sampler="random")
    spec = tf.TensorSpec([32, 35], tf.int32)
    assert ds.element_spec == (spec, spec)


def test_consumed_inside_tf_function(corpora):
    ids = corpora["jaychou"]
    ds = lm_dataset(tf.constant(ids), batch_size=4, num_steps=10, sampler="consecutive")

    @tf.function
    def total(dataset):
        s = tf.constant(0, tf.int64)
        for x, y in dataset:
            s += tf.reduce_sum(tf.cast(x, tf.int64)) + tf.reduce_sum(tf.cast(y, tf.int64))
        return s

    expected = sum(int(x.sum()) + int(y.sum()) for x, y in ds.as_numpy_iterator())
    assert int(total(ds)) == expected


@pytest.mark.parametrize("edition, sampler", SAMPLERS)
def test_num_batches_without_epoch_is_the_most_over_offsets(edition, sampler):
    for n in (500, 1001, 4321):
        most = num_batches(n, batch_size=3, num_steps=7, sampler=sampler, edition=edition)
        counts = [num_batches(n, batch_size=3, num_steps=7, sampler=sampler, edition=edition,
                              seed=0, epoch=e) for e in range(60)]
        assert max(counts) == most and most - min(counts) <= 2


@pytest.mark.parametrize("edition, sampler", SAMPLERS)
@pytest.mark.parametrize("batch_size, num_steps", [(1, 1), (2, 6), (32, 35), (3, 50)])
def test_min_tokens_is_the_exact_threshold(edition, sampler, batch_size, num_steps):
    kwargs = dict(batch_size=batch_size, num_steps=num_steps, sampler=sampler, edition=edition)
    need = min_tokens(**kwargs)
    for epoch in range(30):  # every offset still gives a batch
        assert len(lm_plan(need, seed=1, epoch=epoch, **kwargs)) >= 1
    assert len(batches(ids=np.arange(need), **kwargs)) >= 1
    short = np.zeros(need - 1, np.int32)
    with pytest.raises(ValueError, match=f"corpus of {need - 1} tokens is too short.*"
                                         f"batch_size={batch_size}, num_steps={num_steps}.*"
                                         f"need at least {need} tokens"):
        lm_dataset(short, **kwargs)
    # with the worst offset, one token fewer gives no batch
    worst = [len(lm_plan(need - 1, seed=1, epoch=e, **kwargs)) for e in range(300)]
    assert min(worst) == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), r"`batch_size` must be an int >= 1, got 0"),
    (dict(num_steps=0), r"`num_steps` must be an int >= 1, got 0"),
    (dict(num_steps=2.5), r"`num_steps` must be an int >= 1, got 2.5"),
    (dict(sampler="sequential"), r"`sampler` must be one of \('random', 'consecutive'\)"),
    (dict(edition=3), r"`edition` must be one of \(1, 2\), got 3"),
    (dict(seed=-1), r"`seed` must be an int >= 0, got -1"),
    (dict(ids=np.zeros((2, 50), np.int32)), r"1-D integer array, got int32 of shape \(2, 50\)"),
    (dict(ids=np.zeros(100, np.float32)), r"1-D integer array"),
    (dict(ids=np.full(100, -1)), r"must be in \[0, 2\*\*31\)"),
])
def test_bad_arguments(kwargs, match):
    args = dict(ids=np.arange(100), batch_size=2, num_steps=5, sampler="random")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        lm_dataset(**args)


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), r"`batch_size` must be an int >= 1, got 0"),
    (dict(sampler="sequential"), r"`sampler` must be one of"),
    (dict(ids=np.zeros((2, 50), np.int32)), r"1-D integer array, got int32 of shape \(2, 50\)"),
    (dict(ids=np.full(100, -1)), r"must be in \[0, 2\*\*31\)"),
    (dict(ids=np.arange(9)), r"corpus of 9 tokens is too short"),
])
def test_lm_batches_bad_arguments(kwargs, match):
    args = dict(ids=np.arange(100), batch_size=2, num_steps=5, sampler="random")
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        lm_batches(**args)


@pytest.mark.parametrize("edition, sampler", SAMPLERS)
@pytest.mark.parametrize("as_tensor", [False, True])
def test_lm_batches_are_lm_datasets_batches(corpora, edition, sampler, as_tensor):
    ids = corpora["time_machine"][:3001]
    kwargs = dict(batch_size=4, num_steps=9, sampler=sampler, edition=edition, seed=3, epoch=2)
    expected = list(lm_dataset(ids, **kwargs).as_numpy_iterator())
    got = lm_batches(tf.constant(ids, tf.int32) if as_tensor else ids, **kwargs)
    assert len(got) == len(expected) > 1
    for _ in range(2):  # iterable again, the same batches
        pairs = list(got)
        assert len(pairs) == len(expected)
        for (x, y), (ex, ey) in zip(pairs, expected):
            assert isinstance(x, tf.Tensor) and x.dtype == y.dtype == tf.int32
            assert x.shape == y.shape == (4, 9)
            np.testing.assert_array_equal(x.numpy(), ex)
            np.testing.assert_array_equal(y.numpy(), ey)
    skipped = got.skip(2)
    assert len(skipped) == len(expected) - 2
    np.testing.assert_array_equal(next(iter(skipped))[0].numpy(), expected[2][0])


def test_carries_state():
    assert carries_state("consecutive") is True
    assert carries_state("random") is False
    with pytest.raises(ValueError, match="`sampler`"):
        carries_state("sequential")


def test_window_dataset_checks_bounds():
    ds = window_dataset(np.arange(10), np.array([[0, 5], [2, 7]]), 3)
    np.testing.assert_array_equal(list(ds.as_numpy_iterator()),
                                  [[[0, 1, 2], [5, 6, 7]], [[2, 3, 4], [7, 8, 9]]])
    with pytest.raises(ValueError, match="do not fit in a corpus of 10 tokens"):
        window_dataset(np.arange(10), np.array([[0, 8]]), 3)


def test_large_corpus_is_cheap(source_dir):
    """text8's first 12.5M characters: the plan is small and batches are gathered lazily."""
    from rnnzoo.data.vocab import Vocabulary

    text = (source_dir / "text8_prefix_12549840.txt").read_text(encoding="ascii")
    vocab = Vocabulary.build(text)
    assert len(vocab) == 28  # 26 letters, space, <unk>
    ids = vocab.encode(text)
    plan = lm_plan(len(ids), batch_size=64, num_steps=100, sampler="consecutive")
    assert plan.nbytes < len(ids) * 8 / 100
    ds = lm_dataset(ids, batch_size=64, num_steps=100, sampler="consecutive", epoch=1)
    assert int(ds.cardinality()) == len(plan) == 1960
    last_x, last_y = next(iter(ds.skip(len(plan) - 1)))
    start = plan[-1, -1]
    np.testing.assert_array_equal(last_x[-1], ids[start:start + 100])
    np.testing.assert_array_equal(last_y[-1], ids[start + 1:start + 101])
