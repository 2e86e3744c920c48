"""seq2seq data: mirror pairs, the shared character vocabulary, bucketed batches."""

import json

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo.data.seq2seq import (
    BOS_ID,
    COURSE_BUCKETS,
    EOS_ID,
    LEGACY_BUCKETS,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_CHAR,
    UNK_ID,
    Seq2SeqVocabulary,
    assign_buckets,
    bucket_sizes,
    count_dropped,
    count_target_tokens,
    mirror_pairs,
    mirror_words,
    seq2seq_dataset,
    span_bounds,
    target_mask,
)

TRAIN = ("anarchism originated as a term of abuse first used against early working class "
         "radicals including the diggers of the english revolution and the sans culottes of "
         "the french revolution whilst the term is still used in a pejorative way ") * 3
VALID = ("zygote quizzically jukebox vexing the of and a pyjamas whizz buzz fjord "
         "kvetch the of ") * 3


@pytest.fixture(scope="module")
def vocab():
    return Seq2SeqVocabulary.build(TRAIN)


@pytest.fixture(scope="module")
def pairs():
    return mirror_pairs(TRAIN, max_length=20, seed=3)


def batches(ds):
    return [tuple(x.numpy() for x in batch) for batch in ds]


# --- pairs --------------------------------------------------------------------------------------

def test_mirror_rule_on_known_text():
    assert mirror_words("the quick brown fox") == "eht kciuq nworb xof"
    assert mirror_words("a  bc\nd") == "a cb d"
    for source, target in mirror_pairs("the quick brown fox jumps over", max_length=15, seed=0):
        assert target == mirror_words(source)
        assert len(target) == len(source)
    assert mirror_pairs("the quick brown fox jumps", max_length=12, seed=4) == [
        ("the quick", "eht kciuq"), ("brown fox", "nworb xof"), ("jumps", "spmuj")]


@pytest.mark.parametrize("max_length", [1, 4, 9, 20])
def test_spans_are_consecutive_whole_words_within_max_length(max_length):
    words, bounds = span_bounds(TRAIN, max_length=max_length, seed=1)
    assert (bounds[:, 1] > bounds[:, 0]).all()
    assert (bounds[1:, 0] >= bounds[:-1, 1]).all()  # in text order, no overlap
    for (i, j), (source, target) in zip(bounds.tolist(),
                                        mirror_pairs(TRAIN, max_length=max_length, seed=1)):
        assert source == " ".join(words[i:j])  # whole words, from the text, in order
        assert 1 <= len(source) <= max_length and target == mirror_words(source)
    # every word that fits is in exactly one span; the gaps are exactly the long words
    covered = np.zeros(len(words), dtype=bool)
    for i, j in bounds.tolist():
        covered[i:j] = True
    assert (covered == np.array([len(w) <= max_length for w in words])).all()


def test_long_words_are_skipped_not_cut_and_spans_do_not_cross_them():
    text = "ab cd antidisestablishmentarianism ef gh"
    for seed in range(10):
        got = mirror_pairs(text, max_length=8, seed=seed)
        assert all("antidis" not in s for s, _ in got)
        assert "ab cd" in [s for s, _ in got] or ("ab", "ba") in got
        assert all(not ({"cd", "ef"} <= set(s.split())) for s, _ in got)
    assert mirror_pairs("antidisestablishmentarianism", max_length=8) == []


def test_spans_vary_in_length_and_use_multiword_spans(pairs):
    lengths = [len(s) for s, _ in pairs]
    assert max(lengths) > 12 and min(lengths) < 6
    assert any(" " in s for s, _ in pairs)


def test_pairs_are_deterministic_by_seed_and_epoch():
    a = mirror_pairs(TRAIN, max_length=20, seed=7, epoch=2)
    assert a == mirror_pairs(TRAIN, max_length=20, seed=7, epoch=2)
    assert a != mirror_pairs(TRAIN, max_length=20, seed=8, epoch=2)
    assert a != mirror_pairs(TRAIN, max_length=20, seed=7, epoch=3)
    # the contract: one limit per word from epoch_rng(seed, epoch)
    limit = np.random.default_rng([7, 2]).integers(1, 21, size=len(TRAIN.split()))
    words, bounds = span_bounds(TRAIN, max_length=20, seed=7, epoch=2)
    for i, j in bounds.tolist():
        budget = max(limit[i], len(words[i]))
        assert len(" ".join(words[i:j])) <= budget
        assert j == len(words) or len(" ".join(words[i:j + 1])) > budget  # greedy
    assert mirror_pairs(TRAIN, max_length=20, seed=7, epoch=2, max_pairs=5) == a[:5]


def test_train_and_validation_pairs_come_only_from_their_own_text():
    train = mirror_pairs(TRAIN, max_length=20, seed=0)
    valid = mirror_pairs(VALID, max_length=20, seed=0)
    train_words, valid_words = set(TRAIN.split()), set(VALID.split())
    only_valid, only_train = valid_words - train_words, train_words - valid_words
    assert only_valid and only_train
    for source, _ in train:
        assert set(source.split()) <= train_words and not set(source.split()) & only_valid
    for source, _ in valid:
        assert set(source.split()) <= valid_words and not set(source.split()) & only_train


# --- vocabulary ---------------------------------------------------------------------------------

def test_vocabulary_specials_and_order(vocab):
    assert vocab.tokens[:4] == list(SPECIAL_TOKENS) == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    joined = " ".join(TRAIN.split())
    counts = {c: joined.count(c) for c in set(joined)}
    assert list(vocab.chars) == sorted(counts, key=lambda c: (-counts[c], c))
    assert Seq2SeqVocabulary.build(TRAIN) == vocab  # deterministic
    assert "\n" not in Seq2SeqVocabulary.build("a\nb").chars  # only what pairs can hold


def test_vocabulary_encode_decode_and_json_round_trip(vocab):
    text = "the diggers"
    ids = vocab.encode(text)
    assert ids.dtype == np.int32 and (ids >= 4).all()
    assert vocab.decode(ids) == text
    assert vocab.decode(np.concatenate([[BOS_ID], ids, [EOS_ID, PAD_ID, 7]])) == text
    assert vocab.encode("zq<eos>").tolist()[:2] == [UNK_ID, UNK_ID]  # "<eos>" is text
    assert vocab.decode(vocab.encode("zap")) == f"{UNK_CHAR}ap"
    again = Seq2SeqVocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert again == vocab and again.tokens == vocab.tokens
    with pytest.raises(ValueError, match="format"):
        Seq2SeqVocabulary.from_dict({"format": "rnnzoo.vocabulary"})
    with pytest.raises(ValueError, match="out of range"):
        vocab.decode([len(vocab)])


# --- batches ------------------------------------------------------------------------------------

@pytest.mark.parametrize("buckets", [COURSE_BUCKETS, LEGACY_BUCKETS])
def test_batches_fit_their_bucket_and_hold_every_kept_pair(pairs, vocab, buckets):
    ds = seq2seq_dataset(pairs, vocab, batch_size=4, bucket_boundaries=buckets)
    got = batches(ds)
    assert ds.cardinality().numpy() == len(got)
    seen = []
    for s, d, t in got:
        assert s.dtype == d.dtype == t.dtype == np.int32 and d.shape == t.shape
        assert s.shape[0] == d.shape[0] <= 4
        lengths = (s != PAD_ID).sum(1)
        k = {int(b) for b in assign_buckets(
            [(vocab.decode(r), vocab.decode(r)) for r in s], buckets)}
        assert len(k) == 1  # one bucket per batch
        (k,) = k
        assert s.shape[1] <= buckets[k][0] and t.shape[1] <= buckets[k][1]
        assert s.shape[1] == lengths.max()  # padded to the longest row
        seen += [vocab.decode(r) for r in s]
    kept = [src for src, _ in pairs if len(src) <= buckets[-1][0]
            and len(src) + 1 <= buckets[-1][1]]
    assert sorted(seen) == sorted(kept)


def test_bos_eos_placement_and_padding(pairs, vocab):
    for s, d, t in batches(seq2seq_dataset(pairs, vocab, batch_size=5)):
        for row_s, row_d, row_t in zip(s, d, t):
            m = int((row_t != PAD_ID).sum())  # target characters + <eos>
            assert row_d[0] == BOS_ID and row_t[m - 1] == EOS_ID
            np.testing.assert_array_equal(row_d[1:m], row_t[:m - 1])  # teacher forcing shift
            assert (row_d[m:] == PAD_ID).all() and (row_t[m:] == PAD_ID).all()
            n = int((row_s != PAD_ID).sum())
            assert (row_s[n:] == PAD_ID).all() and (row_s[:n] != PAD_ID).all()
            assert vocab.decode(row_t) == mirror_words(vocab.decode(row_s))
            assert EOS_ID not in row_s and BOS_ID not in row_s


def test_reverse_source_reverses_the_real_ids_and_keeps_pads_at_the_end(pairs, vocab):
    plain = batches(seq2seq_dataset(pairs, vocab, batch_size=4, shuffle_seed=1))
    rev = batches(seq2seq_dataset(pairs, vocab, batch_size=4, shuffle_seed=1,
                                  reverse_source=True))
    assert len(plain) == len(rev)
    for (s, d, t), (rs, rd, rt) in zip(plain, rev):
        np.testing.assert_array_equal(d, rd)
        np.testing.assert_array_equal(t, rt)
        for row, rrow in zip(s, rs):
            n = int((row != PAD_ID).sum())
            np.testing.assert_array_equal(rrow[:n], row[:n][::-1])
            assert (rrow[n:] == PAD_ID).all()


def test_shuffle_is_deterministic_by_seed_and_epoch(pairs, vocab):
    def run(**kw):
        return [np.concatenate([a.ravel() for a in b]) for b in batches(
            seq2seq_dataset(pairs, vocab, batch_size=4, bucket_boundaries=LEGACY_BUCKETS, **kw))]

    a = run(shuffle_seed=5, epoch=1)
    assert all(np.array_equal(x, y) for x, y in zip(a, run(shuffle_seed=5, epoch=1)))
    b = run(shuffle_seed=5, epoch=2)
    assert len(a) == len(b) and not all(np.array_equal(x, y) for x, y in zip(a, b))
    first = batches(seq2seq_dataset(pairs, vocab, batch_size=len(pairs)))[0][0]
    assert vocab.decode(first[0]) == pairs[0][0]  # no seed: the given order


def test_pad_to_bucket_and_drop_remainder(pairs, vocab):
    ds = seq2seq_dataset(pairs, vocab, batch_size=3, bucket_boundaries=LEGACY_BUCKETS,
                         pad_to_bucket=True, drop_remainder=True)
    got = batches(ds)
    assert len(got) == ds.cardinality().numpy() > 0
    sizes = bucket_sizes(pairs, LEGACY_BUCKETS)
    assert len(got) == (sizes[:-1] // 3).sum()
    for s, d, t in got:
        assert s.shape[0] == 3 and (s.shape[1], t.shape[1]) in LEGACY_BUCKETS
        assert d.shape == t.shape


def test_pairs_too_long_for_the_largest_bucket_are_dropped_and_counted(vocab):
    pairs = mirror_pairs(TRAIN, max_length=30, seed=2)
    buckets = ((10, 11), (20, 21))
    dropped = sum(len(s) > 20 for s, _ in pairs)
    assert dropped > 0 and count_dropped(pairs, buckets) == dropped
    sizes = bucket_sizes(pairs, buckets)
    assert sizes.tolist() == [sum(len(s) <= 10 for s, _ in pairs),
                              sum(10 < len(s) <= 20 for s, _ in pairs), dropped]
    got = batches(seq2seq_dataset(pairs, vocab, batch_size=8, bucket_boundaries=buckets))
    assert sum(s.shape[0] for s, _, _ in got) == len(pairs) - dropped
    with pytest.raises(ValueError, match="none of the"):
        seq2seq_dataset([p for p in pairs if len(p[0]) > 20], vocab, batch_size=2,
                        bucket_boundaries=buckets)


def test_count_target_tokens_counts_only_real_targets(pairs, vocab):
    total = 0
    count = tf.function(count_target_tokens)
    for _, _, t in seq2seq_dataset(pairs, vocab, batch_size=6, bucket_boundaries=LEGACY_BUCKETS):
        expected = np.count_nonzero(t.numpy() != PAD_ID)
        assert count_target_tokens(t).numpy() == expected == count(t).numpy()
        np.testing.assert_array_equal(target_mask(t).numpy(), t.numpy() != PAD_ID)
        total += expected
    assert total == sum(len(tgt) + 1 for _, tgt in pairs)  # every character and <eos>


# --- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"max_length": 0}, "`max_length` must be an int >= 1, got 0"),
    ({"max_length": -3}, "got -3"),
    ({"max_length": 2.5}, "got 2.5"),
    ({"max_length": 5, "seed": -1}, "`seed` must be an int >= 0, got -1"),
])
def test_mirror_pairs_errors_name_the_bad_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mirror_pairs(TRAIN, **kwargs)


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text_is_a_value_error(text):
    with pytest.raises(ValueError, match="at least one word"):
        mirror_pairs(text, max_length=5)
    with pytest.raises(ValueError, match="at least one word"):
        Seq2SeqVocabulary.build(text)


@pytest.mark.parametrize("buckets, match", [
    ((), "at least one"),
    ([], "at least one"),
    (((10, 15), (5, 10)), r"sorted.*\(10, 15\) before \(5, 10\)"),
    (((5, 10), (5, 15)), r"\(5, 10\) before \(5, 15\)"),
    (((5, 0),), r"got \(5, 0\)"),
    (((5,),), r"got \(5,\)"),
    (20, "got 20"),
])
def test_bad_bucket_boundaries_are_value_errors(pairs, vocab, buckets, match):
    with pytest.raises(ValueError, match=match):
        seq2seq_dataset(pairs, vocab, batch_size=2, bucket_boundaries=buckets)


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_size": 0}, "`batch_size` must be an int >= 1, got 0"),
    ({"batch_size": True}, "got True"),
    ({"batch_size": 2, "shuffle_seed": -2}, "`shuffle_seed` must be an int >= 0, got -2"),
    ({"batch_size": 2, "epoch": -1}, "`epoch` must be an int >= 0, got -1"),
])
def test_bad_batch_arguments_are_value_errors(pairs, vocab, kwargs, match):
    with pytest.raises(ValueError, match=match):
        seq2seq_dataset(pairs, vocab, **kwargs)
    with pytest.raises(ValueError, match="empty"):
        seq2seq_dataset([], vocab, batch_size=2)
