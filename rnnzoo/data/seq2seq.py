"""Sequence-to-sequence examples for the course's word-mirroring task, batched by length.

The LSTM assignment's last problem (TensorFlow deep learning course, 6_lstm.ipynb) asks a
sequence-to-sequence model to mirror every word of a text in place:

    source  "the quick brown fox"
    target  "eht kciuq nworb xof"

The pairs are made from any character corpus of the zoo (text8 by default), one split at a
time, so training pairs come only from the training text and validation pairs only from the
validation text:

    train_text = load_text("text8/prefix", "train")        # rnnzoo.data.corpora
    valid_text = load_text("text8/prefix", "validation")
    vocab = Seq2SeqVocabulary.build(train_text)             # from the training text only
    valid_pairs = mirror_pairs(valid_text, max_length=20, seed=seed)            # fixed
    dropped = count_dropped(valid_pairs, COURSE_BUCKETS)                        # report it
    for epoch in range(num_epochs):
        train_pairs = mirror_pairs(train_text, max_length=20, seed=seed, epoch=epoch)
        for source_ids, decoder_inputs, targets in seq2seq_dataset(
                train_pairs, vocab, batch_size=64, bucket_boundaries=COURSE_BUCKETS,
                reverse_source=True, shuffle_seed=seed, epoch=epoch):
            mask = target_mask(targets)        # the loss and metrics count only real tokens
            ...

Spans (`mirror_pairs`)
    The text is split into words on runs of whitespace (`str.split()`, as text8's single
    spaces). With `n` words of lengths `len[0 .. n-1]` and `M = max_length`, one limit per word
    is drawn up front (RNG contract below), then spans are cut greedily from the start:

        i = 0
        while i < n:
            if len[i] > M:  skip word i (it can never fit), i += 1
            else:           L = max(limit[i], len[i]);
                            the span is words i .. j-1 with j the largest index such that
                            the words joined by single spaces have at most L characters;
                            i = j

    So spans are consecutive, non-overlapping runs of whole words; every span has at least one
    word and at most `M` characters; no span crosses a skipped word; a span's length is
    roughly uniform in `[1, M]` (but at least its first word). A word longer than `M` is
    skipped, never cut: a cut word would teach the model to mirror a word fragment as if it
    were a word. `source` is the span's words joined by single spaces (other whitespace in the
    text becomes one space), `target = mirror_words(source)`, every word reversed in place.

    RNG contract (spans). `rng = epoch_rng(seed, epoch) = np.random.default_rng([seed, epoch])`
    draws once: `limit = rng.integers(1, M + 1, size=n)`, one limit per word in text order (the
    limit of a word that does not start a span is drawn and unused). Same `(text, max_length,
    seed, epoch)` -> the same pairs in any process; each epoch gets different spans. Validation
    pairs are usually drawn once (epoch 0) and kept.

Vocabulary (`Seq2SeqVocabulary`)
    One character vocabulary for source and target: ids `0 .. 3` are the specials `<pad>` (0,
    the padding value), `<bos>` (1, the legacy model's `GO`), `<eos>` (2), `<unk>` (3), then the
    characters of the training text's words joined by single spaces (exactly the characters
    `mirror_pairs` can produce, space included) by count descending, ties by code point. A
    special is a token, never text: "<eos>" in a text is five characters.

Batches (`seq2seq_dataset`)
    A pair with `m` target characters becomes

        source_ids      the source's ids (reversed when `reverse_source`)       [S]
        decoder_inputs  <bos> t_1 .. t_m                                         [T = m + 1]
        targets         t_1 .. t_m <eos>                                         [T = m + 1]

    and each batch is padded with `<pad>` = 0 at the end of every row (also with
    `reverse_source`: the real ids are reversed, then padded, so `ids != 0` is a prefix mask;
    the legacy model reversed after padding, putting the pads in front).

    Buckets are `(source_size, target_size)` pairs, strictly increasing in both (the legacy
    tutorial's `LEGACY_BUCKETS`, the course's `COURSE_BUCKETS`). A pair goes to the first
    bucket with `S <= source_size` and `T <= target_size` (the legacy rule, counting `<eos>`
    and `<bos>` in the target size); a pair that fits no bucket is dropped before batching,
    and `count_dropped` / `bucket_sizes` count them so the task can report it.
    `tf.data.Dataset.bucket_by_sequence_length` is keyed by that bucket index, not a length:
    `element_length_func` returns the index `b` and its boundaries are `1 .. len(buckets) - 1`,
    so its bucket `b` is ours. Every batch holds pairs of one bucket, padded to its longest row
    (so within the bucket's sizes), or to the bucket's sizes exactly with `pad_to_bucket=True`.

    RNG contract (batches). With `shuffle_seed=None` the pairs enter the buckets in the given
    order; otherwise in the order `epoch_rng(shuffle_seed, epoch).permutation(num_kept)` of the
    kept pairs. A bucket emits a batch when it holds `batch_size` pairs; at the end the partial
    batches follow in bucket order (dropped with `drop_remainder=True`). Same arguments -> the
    same batches in any process. The dataset knows its cardinality.
"""

import collections
import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from rnnzoo.data.lm_pipeline import _check_int, epoch_rng
from rnnzoo.files import write_text_atomic

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
UNK_CHAR = "\N{REPLACEMENT CHARACTER}"  # how `decode` shows `<unk>`: one character per id

# (source_size, target_size) presets. The target size counts <bos> / <eos>.
LEGACY_BUCKETS = ((5, 10), (10, 15), (20, 25), (40, 50))  # TensorFlow's translate tutorial
COURSE_BUCKETS = ((20, 21),)  # the course's single bucket: spans of up to 20 characters

FORMAT = "rnnzoo.seq2seq_vocabulary"
VERSION = 1


# --- pairs --------------------------------------------------------------------------------------

def _check_text(text) -> str:
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str, got {type(text).__name__}")
    if not text or text.isspace():
        raise ValueError(f"`text` must hold at least one word, got {text[:30]!r}")
    return text


def mirror_words(text: str) -> str:
    """Every word of `text` reversed in place, words joined by single spaces.

    Example:
        >>> mirror_words("the quick brown fox")
        'eht kciuq nworb xof'
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str, got {type(text).__name__}")
    return " ".join(w[::-1] for w in text.split())


def span_bounds(text: str, *, max_length: int, seed: int = 0, epoch: int = 0,
                max_pairs: int | None = None) -> tuple[list[str], np.ndarray]:
    """The words of `text` and the spans `mirror_pairs` cuts from them (module docstring).

    Returns:
        `(words, bounds)`: `words = text.split()`; int64 `bounds [num_spans, 2]`, span `k` is
        `words[bounds[k, 0] : bounds[k, 1]]`, in text order.
    """
    text = _check_text(text)
    m = _check_int("max_length", max_length, 1)
    if max_pairs is not None:
        max_pairs = _check_int("max_pairs", max_pairs, 1)
    words = text.split()
    n = len(words)
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=n)
    limit = epoch_rng(seed, epoch).integers(1, m + 1, size=n)
    # ends[i] = c[i] + chars of words i .. j-1 joined + 1, with c[i] = sum(len[:i] + 1)
    c = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths + 1, out=c[1:])
    fits = lengths <= m
    budget = np.maximum(limit, lengths)
    nxt = np.searchsorted(c, c[:-1] + budget + 1, side="right") - 1  # the span's end j
    nxt = np.where(fits, nxt, np.arange(1, n + 1))  # a skipped word: go on after it
    nxt_list, fits_list = nxt.tolist(), fits.tolist()
    bounds = []
    i = 0
    while i < n and (max_pairs is None or len(bounds) < max_pairs):
        j = nxt_list[i]
        if fits_list[i]:
            bounds.append((i, j))
        i = j
    return words, np.array(bounds, dtype=np.int64).reshape(-1, 2)


def mirror_pairs(text: str, *, max_length: int, seed: int = 0, epoch: int = 0,
                 max_pairs: int | None = None) -> list[tuple[str, str]]:
    """Cuts a corpus split's text into spans of whole words and pairs each with its mirror.

    Call it once per split, so no pair crosses splits (module docstring):

        train_pairs = mirror_pairs(load_text("text8/prefix", "train"), max_length=20,
                                   seed=seed, epoch=epoch)
        valid_pairs = mirror_pairs(load_text("text8/prefix", "validation"), max_length=20,
                                   seed=seed)

    Args:
        text: one split of a corpus; words are separated by whitespace.
        max_length: the most characters in a span, >= 1 (the course: 20). Words longer than it
            are skipped, never cut.
        seed, epoch: ints >= 0; the spans' limits come from `epoch_rng(seed, epoch)`.
        max_pairs: stop after this many pairs (the first ones of the text); None: all.

    Returns:
        A list of `(source, target)` strings, `target == mirror_words(source)`, in text order.

    Raises:
        ValueError: `max_length`, `seed`, `epoch` or `max_pairs` out of range (named with its
            value), or a text without words.

    Example:
        >>> mirror_pairs("the quick brown fox jumps", max_length=12, seed=4)
        [('the quick', 'eht kciuq'), ('brown fox', 'nworb xof'), ('jumps', 'spmuj')]
    """
    words, bounds = span_bounds(text, max_length=max_length, seed=seed, epoch=epoch,
                                max_pairs=max_pairs)
    pairs = []
    for i, j in bounds.tolist():
        span = words[i:j]
        pairs.append((" ".join(span), " ".join(w[::-1] for w in span)))
    return pairs


# --- vocabulary ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Seq2SeqVocabulary:
    """The character vocabulary shared by source and target (module docstring).

    rnnzoo's `Vocabulary` puts its unknown token at id 0, where this task needs `<pad>` (the
    padding value of `tf.data` and of the masks), so this small class holds the four specials
    first and the characters after them.

    Attributes:
        chars: the characters, in id order from `len(SPECIAL_TOKENS)` on; distinct single
            characters.

    Example:
        >>> vocab = Seq2SeqVocabulary.build("a cab")
        >>> vocab.tokens
        ['<pad>', '<bos>', '<eos>', '<unk>', 'a', ' ', 'b', 'c']
        >>> vocab.encode("bad").tolist()
        [6, 4, 3]
        >>> vocab.decode([1, 6, 4, 2, 0])
        'ba'
    """

    chars: tuple[str, ...]

    def __post_init__(self):
        chars = tuple(self.chars)
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"`chars` must be single characters, got {bad[:5]!r}")
        if len(set(chars)) != len(chars):
            dups = [c for c, k in collections.Counter(chars).items() if k > 1]
            raise ValueError(f"`chars` must be distinct; duplicated: {dups[:5]!r}")
        object.__setattr__(self, "chars", chars)
        points = np.array([ord(c) for c in chars], dtype=np.int64)
        order = np.argsort(points)
        ids = np.arange(len(SPECIAL_TOKENS), len(SPECIAL_TOKENS) + len(chars), dtype=np.int64)
        object.__setattr__(self, "_table", (points[order], ids[order]))  # sorted code points

    @classmethod
    def build(cls, text: str) -> "Seq2SeqVocabulary":
        """The characters of `text`'s words joined by single spaces, by count descending, ties
        by code point: built from the training text only."""
        text = _check_text(text)
        joined = " ".join(text.split())
        codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        points, counts = np.unique(codes, return_counts=True)  # sorted by code point
        order = np.lexsort((points, -counts))
        return cls(tuple(chr(int(p)) for p in points[order]))

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order: the specials, then the characters."""
        return list(SPECIAL_TOKENS) + list(self.chars)

    def __len__(self) -> int:
        return len(SPECIAL_TOKENS) + len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """int32 `[len(text)]`: one id per character; `UNK_ID` for a character not in the
        vocabulary. No `<bos>` / `<eos>` (the dataset adds them)."""
        if not isinstance(text, str):
            raise TypeError(f"`text` must be a str, got {type(text).__name__}")
        points, ids = self._table
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        codes = codes.astype(np.int64)
        if not len(points):
            return np.full(codes.shape, UNK_ID, dtype=np.int32)
        pos = np.minimum(np.searchsorted(points, codes), len(points) - 1)
        return np.where(points[pos] == codes, ids[pos], UNK_ID).astype(np.int32)

    def decode(self, ids) -> str:
        """The text of `ids` (a 1-D int array-like): stops at the first `<eos>`, leaves out
        `<pad>` and `<bos>`, and shows `<unk>` as `UNK_CHAR` (one character, so a decoded
        output lines up with its target position by position)."""
        arr = np.asarray(ids).reshape(-1)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"`ids` must be integers, got dtype {arr.dtype}")
        bad = (arr < 0) | (arr >= len(self))
        if bad.any():
            raise ValueError(f"ids out of range for a vocabulary of {len(self)} tokens: "
                             f"{sorted(set(arr[bad].tolist()))[:5]}")
        out = []
        for i in arr.tolist():
            if i == EOS_ID:
                break
            if i == UNK_ID:
                out.append(UNK_CHAR)
            elif i >= len(SPECIAL_TOKENS):
                out.append(self.chars[i - len(SPECIAL_TOKENS)])
        return "".join(out)

    def to_dict(self) -> dict:
        """A JSON-ready dict; `from_dict` reads it back."""
        return {"format": FORMAT, "version": VERSION, "specials": list(SPECIAL_TOKENS),
                "chars": list(self.chars)}

    def save(self, path) -> None:
        """Writes `to_dict()` as a JSON file, atomically (a run directory's `vocab.json`)."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n"
        write_text_atomic(os.fspath(path), text)

    @classmethod
    def load(cls, path) -> "Seq2SeqVocabulary":
        """Reads a file written by `save`, with a ValueError naming the file if it is invalid."""
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"vocabulary file {path!r} does not exist") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"vocabulary file {path!r} is corrupt (not UTF-8 JSON): {e}") \
                from None
        try:
            return cls.from_dict(data)
        except ValueError as e:
            raise ValueError(f"vocabulary file {path!r}: {e}") from None

    @classmethod
    def from_dict(cls, data) -> "Seq2SeqVocabulary":
        """The vocabulary of a `to_dict` dict, with a ValueError naming what is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not a {FORMAT!r} dict (format: {got!r})")
        if data.get("version") != VERSION:
            raise ValueError(f"{FORMAT!r} version {data.get('version')!r}; this code reads "
                             f"version {VERSION}")
        if data.get("specials") != list(SPECIAL_TOKENS):
            raise ValueError(f"'specials' must be {list(SPECIAL_TOKENS)!r}, got "
                             f"{data.get('specials')!r}")
        chars = data.get("chars")
        if not isinstance(chars, list):
            raise ValueError(f"'chars' must be a list of characters, got {type(chars).__name__}")
        return cls(tuple(chars))


# --- buckets and batches ------------------------------------------------------------------------

def check_buckets(bucket_boundaries) -> tuple[tuple[int, int], ...]:
    """The buckets as a tuple of `(source_size, target_size)` int pairs; ValueError unless there
    is at least one and both sizes are >= 1 and strictly increasing."""
    try:
        buckets = tuple(tuple(b) for b in bucket_boundaries)
    except TypeError:
        raise ValueError(f"`bucket_boundaries` must be a sequence of (source_size, target_size) "
                         f"pairs, got {bucket_boundaries!r}") from None
    if not buckets:
        raise ValueError(f"`bucket_boundaries` must hold at least one (source_size, target_size) "
                         f"pair, got {bucket_boundaries!r}")
    for b in buckets:
        if len(b) != 2 or any(isinstance(x, bool) or not isinstance(x, (int, np.integer))
                              or x < 1 for x in b):
            raise ValueError(f"each bucket must be a (source_size, target_size) pair of ints "
                             f">= 1, got {b!r} in {bucket_boundaries!r}")
    for a, b in zip(buckets, buckets[1:]):
        if not (a[0] < b[0] and a[1] < b[1]):
            raise ValueError(f"`bucket_boundaries` must be sorted, strictly increasing in both "
                             f"sizes, got {a!r} before {b!r} in {bucket_boundaries!r}")
    return tuple((int(s), int(t)) for s, t in buckets)


def _check_pairs(pairs) -> list[tuple[str, str]]:
    pairs = list(pairs)
    for p in pairs[:1] + pairs[-1:]:  # cheap: the rest is checked by encode
        if not (isinstance(p, (tuple, list)) and len(p) == 2):
            raise ValueError(f"`pairs` must hold (source, target) strings, got {p!r}")
    return pairs


def assign_buckets(pairs: Sequence[tuple[str, str]], bucket_boundaries) -> np.ndarray:
    """int64 `[num_pairs]`: each pair's bucket (the first with `len(source) <= source_size` and
    `len(target) + 1 <= target_size`), or -1 when it fits none and will be dropped."""
    buckets = check_buckets(bucket_boundaries)
    pairs = _check_pairs(pairs)
    s = np.fromiter((len(p[0]) for p in pairs), dtype=np.int64, count=len(pairs))
    t = np.fromiter((len(p[1]) + 1 for p in pairs), dtype=np.int64, count=len(pairs))
    out = np.full(len(pairs), -1, dtype=np.int64)
    for b in reversed(range(len(buckets))):  # the first fitting bucket wins
        out[(s <= buckets[b][0]) & (t <= buckets[b][1])] = b
    return out


def bucket_sizes(pairs: Sequence[tuple[str, str]], bucket_boundaries) -> np.ndarray:
    """int64 `[len(buckets) + 1]`: how many pairs each bucket gets; the last entry counts the
    pairs dropped because they fit no bucket."""
    ids = assign_buckets(pairs, bucket_boundaries)
    n = len(check_buckets(bucket_boundaries))
    return np.bincount(np.where(ids < 0, n, ids), minlength=n + 1)


def count_dropped(pairs: Sequence[tuple[str, str]], bucket_boundaries) -> int:
    """How many pairs `seq2seq_dataset` drops because they are longer than the largest
    bucket."""
    return int(bucket_sizes(pairs, bucket_boundaries)[-1])


def target_mask(targets) -> tf.Tensor:
    """bool, `targets`' shape: True at real target ids (`<eos>` included), False at `<pad>`."""
    return tf.not_equal(targets, PAD_ID)


def count_target_tokens(targets) -> tf.Tensor:
    """int64 scalar: the number of real (non-`<pad>`) ids in `targets`, `<eos>` included: the
    denominator of a per-target-token loss or perplexity."""
    return tf.math.count_nonzero(target_mask(targets), dtype=tf.int64)


def _ragged(texts: list[str], vocab: Seq2SeqVocabulary) -> tf.RaggedTensor:
    """int32 `[len(texts), None]`: the ids of each text, encoded in one pass."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    with tf.device("CPU:0"):
        return tf.RaggedTensor.from_row_lengths(vocab.encode("".join(texts)), lengths)


def seq2seq_dataset(pairs: Sequence[tuple[str, str]], vocab: Seq2SeqVocabulary, *,
                    batch_size: int, bucket_boundaries=COURSE_BUCKETS,
                    reverse_source: bool = False, shuffle_seed: int | None = None,
                    epoch: int = 0, drop_remainder: bool = False,
                    pad_to_bucket: bool = False) -> tf.data.Dataset:
    """Batches of `(source_ids, decoder_inputs, targets)` by length (module docstring).

    Args:
        pairs: `(source, target)` strings, e.g. from `mirror_pairs` (one split's).
        vocab: the shared `Seq2SeqVocabulary` (characters outside it become `<unk>`).
        batch_size: pairs per batch, >= 1.
        bucket_boundaries: `(source_size, target_size)` pairs, strictly increasing in both
            (`LEGACY_BUCKETS`, `COURSE_BUCKETS`); target sizes count `<bos>` / `<eos>`.
        reverse_source: reverse each source's ids before padding (the legacy model did).
        shuffle_seed: None keeps the pairs' order; an int >= 0 shuffles them with
            `epoch_rng(shuffle_seed, epoch)`.
        epoch: int >= 0, the shuffle's epoch.
        drop_remainder: drop each bucket's last partial batch.
        pad_to_bucket: pad every batch to its bucket's sizes exactly (the legacy shapes)
            instead of to its longest row.

    Returns:
        A prefetching `tf.data.Dataset` of int32 `(source_ids [B, S], decoder_inputs [B, T],
        targets [B, T])`, `B <= batch_size` (`== batch_size` with `drop_remainder`), padded
        with `PAD_ID`; its cardinality is the exact number of batches. Pairs longer than the
        largest bucket are left out (`count_dropped` counts them).

    Raises:
        ValueError: an argument out of range (named with its value), or no pair that fits a
            bucket.
    """
    b = _check_int("batch_size", batch_size, 1)
    buckets = check_buckets(bucket_boundaries)
    if not isinstance(vocab, Seq2SeqVocabulary):
        raise TypeError(f"`vocab` must be a Seq2SeqVocabulary, got {type(vocab).__name__}")
    if shuffle_seed is not None:
        _check_int("shuffle_seed", shuffle_seed, 0)
    _check_int("epoch", epoch, 0)
    pairs = _check_pairs(pairs)
    if not pairs:
        raise ValueError("`pairs` is empty: nothing to batch")
    ids = assign_buckets(pairs, buckets)
    kept = np.flatnonzero(ids >= 0)
    if kept.size == 0:
        raise ValueError(f"none of the {len(pairs)} pairs fits the largest bucket "
                         f"{buckets[-1]!r} (source length <= {buckets[-1][0]}, target length "
                         f"+ 1 <= {buckets[-1][1]})")
    if shuffle_seed is not None:
        kept = kept[epoch_rng(shuffle_seed, epoch).permutation(kept.size)]

    bucket_of = ids[kept]
    order = kept.tolist()
    # Every pair is encoded once, up front; the dataset's elements are only (row, bucket)
    # scalars, bucketed by `bucket_by_sequence_length`, and each batch of rows is gathered and
    # padded in one vectorised step (a per-pair map cost ~10 ms a batch of 64).
    sources = _ragged([pairs[k][0][::-1] if reverse_source else pairs[k][0] for k in order],
                      vocab)
    targets = _ragged([pairs[k][1] for k in order], vocab)
    with tf.device("CPU:0"):
        rows = tf.data.Dataset.from_tensor_slices(
            (tf.range(len(order), dtype=tf.int64), tf.constant(bucket_of, dtype=tf.int64)))
    rows = rows.bucket_by_sequence_length(
        element_length_func=lambda row, k: tf.cast(k, tf.int32),
        bucket_boundaries=list(range(1, len(buckets))),
        bucket_batch_sizes=[b] * len(buckets),
        padded_shapes=([], []), padding_values=(np.int64(0), np.int64(0)),
        drop_remainder=drop_remainder)
    source_sizes = tf.constant([s for s, _ in buckets], dtype=tf.int64)
    target_sizes = tf.constant([t for _, t in buckets], dtype=tf.int64)

    def batch(row, k):
        s, t = tf.gather(sources, row), tf.gather(targets, row)
        n = tf.shape(row, out_type=tf.int64)[0]
        decoder_inputs = tf.concat([tf.fill([n, 1], BOS_ID), t], axis=1)
        target_ids = tf.concat([t, tf.fill([n, 1], EOS_ID)], axis=1)
        if pad_to_bucket:
            ss, ts = tf.gather(source_sizes, k[0]), tf.gather(target_sizes, k[0])
            return (s.to_tensor(PAD_ID, shape=tf.stack([n, ss])),
                    decoder_inputs.to_tensor(PAD_ID, shape=tf.stack([n, ts])),
                    target_ids.to_tensor(PAD_ID, shape=tf.stack([n, ts])))
        return (s.to_tensor(PAD_ID), decoder_inputs.to_tensor(PAD_ID),
                target_ids.to_tensor(PAD_ID))

    ds = rows.map(batch)
    per_bucket = np.bincount(bucket_of, minlength=len(buckets))
    num_batches = int((per_bucket // b).sum() if drop_remainder else (-(-per_bucket // b)).sum())
    ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches))
    return ds.prefetch(tf.data.AUTOTUNE)
