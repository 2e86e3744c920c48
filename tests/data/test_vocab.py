"""Vocabulary: deterministic ids, unknown-token policies, the JSON file, Keras parity."""

import collections
import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from rnnzoo.data.tokenize import char_tokens, word_tokens
from rnnzoo.data.vocab import Vocabulary, WordVocabulary

TRICKY = ["\n", " ", "\t", "\r", "\r\n", "中", "国", "😀", "e\u0301", "é", "\u2028", "\x00",
          '"', "\\", "<unk>x", "", "null"]


# --- the d2l numbers --------------------------------------------------------------------------

def test_d2l_jaychou_has_1027_distinct_characters(jaychou_text):
    corpus_chars = jaychou_text.replace("\n", " ").replace("\r", " ")[0:10000]
    vocab = Vocabulary.build(char_tokens(corpus_chars), unk_token=None)
    assert len(vocab) == 1027
    assert vocab.unk_id is None
    assert sorted(vocab.tokens) == sorted(set(corpus_chars))


def test_d2l_time_machine_has_28_tokens_with_unk(timemachine_text):
    cleaned = re.sub("[^A-Za-z]+", " ", timemachine_text).lower()
    vocab = Vocabulary.build(char_tokens(cleaned))
    assert len(vocab) == 28
    assert vocab.tokens[:3] == ["<unk>", " ", "e"]  # by frequency, as in d2l
    assert set(vocab.tokens[1:]) == set("abcdefghijklmnopqrstuvwxyz ")


# --- order and construction -------------------------------------------------------------------

def test_order_is_unk_reserved_then_count_then_code_point():
    vocab = Vocabulary.build(list("bab中 Ba c") + ["<pad>"], reserved_tokens=["<pad>", "<eos>"])
    # counts: b 2, a 2, ' ' 3, 中 1, B 1, c 1
    assert vocab.tokens == ["<unk>", "<pad>", "<eos>", " ", "a", "b", "B", "c", "中"]
    assert vocab.unk_token == "<unk>" and vocab.unk_id == 0
    assert [vocab.token_to_id(t) for t in vocab.tokens] == list(range(len(vocab)))
    assert vocab.id_to_token(8) == "中"


def test_order_does_not_depend_on_input_order():
    words = word_tokens("the time machine by h g wells the time traveller")
    assert Vocabulary.build(words) == Vocabulary.build(reversed(words))


def test_max_size_counts_specials_and_cut_tokens_become_unk():
    vocab = Vocabulary.build("aaabbc", max_size=3)
    assert vocab.tokens == ["<unk>", "a", "b"]
    np.testing.assert_array_equal(vocab.encode("abc"), [1, 2, 0])
    vocab = Vocabulary.build("aaabbc", max_size=3, reserved_tokens=["<pad>"])
    assert vocab.tokens == ["<unk>", "<pad>", "a"]


def test_min_count_cuts_rare_tokens():
    vocab = Vocabulary.build("aaabbc", min_count=2)
    assert vocab.tokens == ["<unk>", "a", "b"]
    assert vocab.token_to_id("c") == 0


def test_no_unk_token():
    vocab = Vocabulary.build("abca", unk_token=None)
    assert vocab.tokens == ["a", "b", "c"]
    assert vocab.unk_token is None and vocab.unk_id is None
    with pytest.raises(ValueError, match="'z'.*no unk token"):
        vocab.token_to_id("z")


@pytest.mark.parametrize("kwargs, match", [
    ({"max_size": 1, "reserved_tokens": ["<pad>"]}, "`max_size` must be None or an int >= 2"),
    ({"max_size": 0, "unk_token": None}, "`max_size`"),
    ({"min_count": 0}, "`min_count` must be an int >= 1, got 0"),
    ({"reserved_tokens": ["<unk>"]}, "must be distinct"),
])
def test_build_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Vocabulary.build("abc", **kwargs)


def test_constructor_checks_tokens():
    with pytest.raises(ValueError, match="duplicated: 'a'"):
        Vocabulary(["<unk>", "a", "b", "a"], unk_token="<unk>")
    with pytest.raises(ValueError, match="must be the first token"):
        Vocabulary(["a", "<unk>"], unk_token="<unk>")
    with pytest.raises(TypeError, match="tokens must be str"):
        Vocabulary.build([b"a", b"b"])


def test_equality_and_hash():
    a = Vocabulary.build("hello world")
    assert a == Vocabulary(a.tokens, unk_token="<unk>")
    assert hash(a) == hash(Vocabulary(a.tokens, unk_token="<unk>"))
    assert a != Vocabulary.build("hello world", unk_token="<oov>")
    assert a != Vocabulary.build("hello there")
    assert a != a.tokens
    assert "size=" in repr(a)


# --- encode / decode --------------------------------------------------------------------------

def test_encode_policies():
    vocab = Vocabulary.build("abc")
    tokens = ["a", "X", "b", "Y", "X"]
    for got in (vocab.encode(tokens), vocab.encode(tokens, oov="unk")):
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, [vocab.token_to_id("a"), 0, vocab.token_to_id("b"),
                                            0, 0])
    np.testing.assert_array_equal(vocab.encode(tokens, oov="skip"),
                                  vocab.encode(["a", "b"]))
    with pytest.raises(ValueError, match=r"3 tokens are not in the vocabulary: 'X', 'Y'"):
        vocab.encode(tokens, oov="error")
    with pytest.raises(ValueError, match="`oov` must be one of"):
        vocab.encode(tokens, oov="ignore")


def test_encode_error_lists_only_the_first_few_tokens():
    vocab = Vocabulary.build("a")
    with pytest.raises(ValueError, match=r"'b', 'c', 'd', 'e', 'f', \.\.\. \(7 in all\)"):
        vocab.encode("abcdefgh", oov="error")


def test_encode_without_unk_token():
    vocab = Vocabulary.build("abc", unk_token=None)
    np.testing.assert_array_equal(vocab.encode("cab"), [2, 0, 1])
    with pytest.raises(ValueError, match=r"not in the vocabulary: '中'; it has no unknown token"):
        vocab.encode("a中")  # the default is "error" when there is no unk token
    with pytest.raises(ValueError, match="needs an unknown token"):
        vocab.encode("abc", oov="unk")
    np.testing.assert_array_equal(vocab.encode("a中b", oov="skip"), [0, 1])


def test_encode_rejects_non_str_tokens():
    with pytest.raises(TypeError, match="tokens must be str"):
        Vocabulary.build("abc").encode([b"a"])


def test_str_fast_path_equals_token_list_path(timemachine_text, time_machine_vocab,
                                              jaychou_text, jaychou_vocab):
    # Raw Time Machine text has capitals and punctuation: all unknown to the cleaned vocabulary.
    fast = time_machine_vocab.encode(timemachine_text)
    slow = time_machine_vocab.encode(char_tokens(timemachine_text))
    np.testing.assert_array_equal(fast, slow)
    assert (fast == 0).any() and fast.shape == (len(timemachine_text),)
    text = jaychou_text[:20000]
    for oov in ("skip", "error"):
        if oov == "error":
            with pytest.raises(ValueError, match="not in the vocabulary"):
                jaychou_vocab.encode(text, oov=oov)
        else:
            np.testing.assert_array_equal(jaychou_vocab.encode(text, oov=oov),
                                          jaychou_vocab.encode(char_tokens(text), oov=oov))
    vocab = Vocabulary(["<unk>x", "ab", "a"], unk_token=None)  # multi-char tokens
    np.testing.assert_array_equal(vocab.encode("aabx", oov="skip"), [2, 2])


def test_decode_round_trip_and_errors(jaychou_text, jaychou_vocab):
    chars = char_tokens(jaychou_text[:3000].replace("\n", " ").replace("\r", " "))
    ids = jaychou_vocab.encode(chars)
    assert jaychou_vocab.decode(ids) == chars
    assert jaychou_vocab.decode(ids.tolist()) == chars
    assert jaychou_vocab.decode(np.int64(3)) == [jaychou_vocab.id_to_token(3)]
    assert jaychou_vocab.decode([]) == []
    with pytest.raises(ValueError, match=r"out of range for a vocabulary of 1027 tokens.*1027"):
        jaychou_vocab.decode([5, 1027])
    with pytest.raises(ValueError, match="-1"):
        jaychou_vocab.decode(np.array([-1]))
    with pytest.raises(ValueError, match=r"scalar or 1-D, got shape \(2, 2\)"):
        jaychou_vocab.decode([[0, 1], [2, 3]])
    with pytest.raises(TypeError, match="integers"):
        jaychou_vocab.decode([0.5])
    with pytest.raises(ValueError, match="out of range"):
        jaychou_vocab.id_to_token(1027)


# --- ids are the same in every process -------------------------------------------------------

_CHILD = """
import hashlib, sys, zipfile
from rnnzoo.data.tokenize import char_tokens
from rnnzoo.data.vocab import Vocabulary
with zipfile.ZipFile(sys.argv[1]) as z:
    text = z.read("jaychou_lyrics.txt").decode("utf-8")
chars = char_tokens(text.replace("\\n", " ").replace("\\r", " ")[:10000])
vocab = Vocabulary.build(chars, unk_token=None)
ids = vocab.encode(chars)
print(len(vocab), ids[:10].tolist(), hashlib.sha256(ids.tobytes()).hexdigest())
print(hashlib.sha256("".join(list(set(chars))).encode()).hexdigest())  # what d2l-zh did
"""


def test_ids_identical_across_processes_and_hash_seeds(jaychou_zip, jaychou_text, jaychou_vocab):
    chars = char_tokens(jaychou_text.replace("\n", " ").replace("\r", " ")[:10000])
    ids = jaychou_vocab.encode(chars)
    expected = f"1027 {ids[:10].tolist()} {hashlib.sha256(ids.tobytes()).hexdigest()}"
    set_orders = set()
    for hash_seed in ("0", "1", "4242"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run([sys.executable, "-c", _CHILD, str(jaychou_zip)], env=env,
                             capture_output=True, text=True, timeout=60, check=True).stdout
        ours, set_order = out.strip().splitlines()
        assert ours == expected
        set_orders.add(set_order)
    assert len(set_orders) > 1  # list(set(...)) would have given different ids per process


# --- the file format --------------------------------------------------------------------------

def test_save_load_round_trips_tricky_tokens(tmp_path):
    vocab = Vocabulary(["<unk>"] + TRICKY, unk_token="<unk>")
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded == vocab
    assert loaded.tokens == ["<unk>"] + TRICKY
    data = json.loads(path.read_bytes().decode("utf-8"))
    assert data == {"format": "rnnzoo.vocabulary", "version": 1, "unk_token": "<unk>",
                    "tokens": ["<unk>"] + TRICKY}
    assert "中" in path.read_text(encoding="utf-8")  # ensure_ascii=False
    no_unk = Vocabulary(TRICKY, unk_token=None)
    no_unk.save(str(path))  # overwrites, str path
    assert Vocabulary.load(str(path)) == no_unk
    assert Vocabulary.load(path).unk_token is None


def test_save_load_real_vocabularies(tmp_path, jaychou_vocab, time_machine_vocab):
    for i, vocab in enumerate([jaychou_vocab, time_machine_vocab]):
        vocab.save(tmp_path / f"{i}.json")
        assert Vocabulary.load(tmp_path / f"{i}.json") == vocab


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "vocab.json"
    old = Vocabulary.build("old")
    old.save(path)
    assert sorted(os.listdir(tmp_path)) == ["vocab.json"]  # no temporary file left

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        Vocabulary.build("new").save(path)
    assert Vocabulary.load(path) == old
    assert sorted(os.listdir(tmp_path)) == ["vocab.json"]


@pytest.mark.parametrize("content, match", [
    (b'{"format": "rnnzoo.vocabulary", "version": 1, "unk_token": null, "tok', "corrupt"),
    (b"", "corrupt"),
    (b"\xff\xfe{}", "corrupt"),
    (b'["a", "b"]', "not an 'rnnzoo.vocabulary' file"),
    (b'{"format": "vocab", "tokens": ["a"]}', "not an 'rnnzoo.vocabulary' file"),
    (b'{"format": "rnnzoo.vocabulary", "version": 2, "unk_token": null, "tokens": []}',
     "version 2"),
    (b'{"format": "rnnzoo.vocabulary", "version": 1, "unk_token": null, "tokens": ["a", 1]}',
     "list of strings"),
    (b'{"format": "rnnzoo.vocabulary", "version": 1, "unk_token": null, "tokens": "ab"}',
     "list of strings"),
    (b'{"format": "rnnzoo.vocabulary", "version": 1, "unk_token": 0, "tokens": ["a"]}',
     "'unk_token' must be a string or null"),
    (b'{"format": "rnnzoo.vocabulary", "version": 1, "unk_token": null, '
     b'"tokens": ["a", "\\n", "a"]}', "duplicated: 'a'"),
    (b'{"format": "rnnzoo.vocabulary", "version": 1, "unk_token": "<unk>", "tokens": ["a"]}',
     "must be the first token"),
])
def test_load_rejects_bad_files_naming_them(tmp_path, content, match):
    path = tmp_path / "bad_vocab.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        Vocabulary.load(path)
    assert "bad_vocab.json" in str(info.value)


def test_load_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        Vocabulary.load(tmp_path / "nowhere.json")


# --- the word vocabulary: counts, the course's UNK count, its file ----------------------------

def test_word_vocabulary_counts_and_order():
    words = "b a c a b a d e e e e <unk> z".split()  # counts: e 4, a 3, b 2; c d z 1
    vocab = WordVocabulary.build(words)
    assert vocab.tokens == ["<unk>", "e", "a", "b", "c", "d", "z"]
    assert vocab.counts.tolist() == [1, 4, 3, 2, 1, 1, 1]  # the literal "<unk>" counts as unk
    assert vocab.counts.dtype == np.int64 and vocab.total_count == len(words)
    assert vocab.count("a") == 3 and vocab.count("nowhere") == 0
    np.testing.assert_array_equal(np.bincount(vocab.encode(words), minlength=len(vocab)),
                                  vocab.counts)
    assert WordVocabulary.build(reversed(words)) == vocab
    with pytest.raises(ValueError, match="read-only"):
        vocab.counts[0] = 5


def test_word_vocabulary_min_count_max_size_and_unk_count():
    words = "b a c a b a d e e e e".split()
    vocab = WordVocabulary.build(words, min_count=2)
    assert vocab.tokens == ["<unk>", "e", "a", "b"]
    assert vocab.counts.tolist() == [2, 4, 3, 2]  # <unk>: c and d, the dropped tokens
    vocab = WordVocabulary.build(words, max_size=3)
    assert vocab.tokens == ["<unk>", "e", "a"] and vocab.counts.tolist() == [4, 4, 3]
    vocab = WordVocabulary.build(words, max_size=3, reserved_tokens=["<pad>"])
    assert vocab.tokens == ["<unk>", "<pad>", "e"] and vocab.counts.tolist() == [7, 0, 4]
    closed = WordVocabulary.build(words, unk_token=None)
    assert closed.tokens[0] == "e" and closed.total_count == len(words)
    with pytest.raises(ValueError, match=r"`unk_token=None` but min_count=2 .* cut 2 tokens "
                                         r"\('c', 'd'\)"):
        WordVocabulary.build(words, min_count=2, unk_token=None)
    with pytest.raises(ValueError, match="`min_count` must be an int >= 1, got 0"):
        WordVocabulary.build(words, min_count=0)
    with pytest.raises(ValueError, match="`max_size` must be None or an int >= 1"):
        WordVocabulary.build(words, max_size=0)


def test_word_vocabulary_matches_the_course_on_text8(source_dir):
    """The course's `build_dataset` (50,000 words, UNK first) on the text8 prefix: the same UNK
    count and the same words and counts (ties at the cut aside: the course breaks them by first
    occurrence, we by the word)."""
    text = (source_dir / "text8_prefix_12549840.txt").read_text(encoding="ascii")
    words = word_tokens(text)
    count = [["UNK", -1]]
    count.extend(collections.Counter(words).most_common(50_000 - 1))
    dictionary = {word: i for i, (word, _) in enumerate(count)}
    count[0][1] = sum(1 for word in words if word not in dictionary)

    vocab = WordVocabulary.build(words, max_size=50_000)
    assert len(vocab) == 50_000 and vocab.tokens[:5] == ["<unk>", "the", "of", "one", "and"]
    assert vocab.counts[0] == count[0][1] > 0
    assert vocab.counts[1:].tolist() == [c for _, c in count[1:]]
    cut = count[-1][1]  # the count at the cut: ties there may be kept differently
    assert ({w: c for w, c in count[1:] if c > cut}
            == {w: int(c) for w, c in zip(vocab.tokens[1:], vocab.counts[1:]) if c > cut})
    assert WordVocabulary.build(words, min_count=5).counts[0] == sum(
        c for c in collections.Counter(words).values() if c < 5)


def test_word_vocabulary_refuses_a_bare_str():
    vocab = WordVocabulary.build(["the", "cat", "the"])
    for text in ("the cat", b"the cat"):
        with pytest.raises(TypeError, match=r"WordVocabulary.encode takes a sequence of words, "
                                            r"got a (str|bytes) .*character by character.*"
                                            r"word_tokens\(text\)"):
            vocab.encode(text)
    with pytest.raises(TypeError, match="WordVocabulary.build takes a sequence of words"):
        WordVocabulary.build("the cat sat")
    np.testing.assert_array_equal(vocab.encode(word_tokens("the cat the dog")), [1, 2, 1, 0])
    np.testing.assert_array_equal(vocab.encode(["the", "dog"], oov="skip"), [1])
    np.testing.assert_array_equal(vocab.encode(np.array(["cat", "the"])), [2, 1])
    # the character vocabulary keeps its fast path
    np.testing.assert_array_equal(Vocabulary.build("abca").encode("cab"), [3, 1, 2])


def test_word_vocabulary_file_round_trip(tmp_path):
    vocab = WordVocabulary.build(["a", "b", "b", "中", "\n", "<unk>"] + ["x"] * 3, min_count=2)
    path = tmp_path / "vocab.json"
    vocab.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == {"format": "rnnzoo.word_vocabulary", "version": 1, "unk_token": "<unk>",
                    "tokens": ["<unk>", "x", "b"], "counts": [4, 3, 2]}
    for loaded in (WordVocabulary.load(path), Vocabulary.load(path)):
        assert isinstance(loaded, WordVocabulary) and loaded == vocab
        assert loaded.counts.tolist() == [4, 3, 2] and loaded.unk_token == "<unk>"
    closed = WordVocabulary.build(["a", "b", "b"], unk_token=None)
    closed.save(tmp_path / "closed.json")
    assert WordVocabulary.load(tmp_path / "closed.json") == closed
    # a character vocabulary's file is unchanged, and not a word vocabulary
    chars = Vocabulary.build("abc")
    chars.save(tmp_path / "chars.json")
    assert "counts" not in json.loads((tmp_path / "chars.json").read_text(encoding="utf-8"))
    assert type(Vocabulary.load(tmp_path / "chars.json")) is Vocabulary
    with pytest.raises(ValueError, match="not an 'rnnzoo.word_vocabulary' file "
                                         r"\(format: 'rnnzoo.vocabulary'\)"):
        WordVocabulary.load(tmp_path / "chars.json")


def test_word_vocabulary_equality_includes_counts():
    a = WordVocabulary.build("a b b".split())
    assert a == WordVocabulary(a.tokens, a.counts, unk_token="<unk>")
    assert hash(a) == hash(WordVocabulary(a.tokens, a.counts.tolist()))
    assert a != WordVocabulary(a.tokens, [0, 1, 3])
    assert a != Vocabulary(a.tokens, unk_token="<unk>") and Vocabulary(
        a.tokens, unk_token="<unk>") != a
    assert "total_count=3" in repr(a)


@pytest.mark.parametrize("counts, match", [
    ("[1, 2]", "`counts` must have one entry per token \\(3\\), got 2"),
    ("[1, -2, 3]", "`counts` must be ints >= 0, got -2"),
    ("[1, 2.5, 3]", "`counts` must be ints >= 0, got 2.5"),
    ("[1, true, 3]", "`counts` must be ints >= 0, got True"),
    ('"123"', "'counts' must be a list of ints, got str"),
    ("null", "'counts' must be a list of ints, got NoneType"),
])
def test_word_vocabulary_file_with_bad_counts_names_it(tmp_path, counts, match):
    path = tmp_path / "bad_words.json"
    path.write_text('{"format": "rnnzoo.word_vocabulary", "version": 1, "unk_token": "<unk>", '
                    f'"tokens": ["<unk>", "a", "b"], "counts": {counts}}}', encoding="utf-8")
    with pytest.raises(ValueError, match=match) as info:
        WordVocabulary.load(path)
    assert "bad_words.json" in str(info.value)


def test_word_vocabulary_from_counts():
    counter = collections.Counter("a b b c".split())
    assert WordVocabulary.from_counts(counter) == WordVocabulary.build("a b b c".split())
    with pytest.raises(TypeError, match="`counts` must be a mapping word -> count"):
        WordVocabulary.from_counts(["a", "b"])
    with pytest.raises(ValueError, match="word counts must be ints >= 0, got -1"):
        WordVocabulary.from_counts({"a": -1})
