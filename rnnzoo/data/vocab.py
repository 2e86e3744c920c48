"""A token <-> id vocabulary with a deterministic order, a JSON file format and Keras parity.

Id order (`Vocabulary.build`): the unknown token first (id 0, when there is one), then the
reserved tokens in the order given, then every other token by count descending, ties broken by
Python `str` order (code point by code point). The ids depend only on the token counts, never on
hashing or set order, so the same text gives the same ids in every process.

File format (`save` / `load`), UTF-8 JSON, one token per line:

    {"format": "rnnzoo.vocabulary", "version": 1, "unk_token": "<unk>" | null,
     "tokens": ["<unk>", " ", "e", ...]}

JSON escapes control characters, so every token ("\\n", "\\r", "\\t", " ", Chinese characters)
round-trips exactly.

`WordVocabulary` (below) is a `Vocabulary` of words that also keeps each token's count in the
corpus it was built from (word2vec's subsampling and negative sampling are driven by them). Its
file has its own format name, and a `counts` list beside `tokens`:

    {"format": "rnnzoo.word_vocabulary", "version": 1, "unk_token": "<unk>" | null,
     "tokens": ["<unk>", "the", "of", ...], "counts": [418391, 1061396, 593677, ...]}

`Vocabulary.load` reads either format (a word file gives a `WordVocabulary`);
`WordVocabulary.load` reads only word files.
"""

import collections
import json
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from rnnzoo.files import write_text_atomic

FORMAT = "rnnzoo.vocabulary"
WORD_FORMAT = "rnnzoo.word_vocabulary"
VERSION = 1
OOV_POLICIES = ("unk", "error", "skip")
_SHOW = 5  # how many offending tokens or ids an error message lists


def _preview(items) -> str:
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:_SHOW])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _SHOW else "")


def _distinct(items) -> list:
    return list(dict.fromkeys(items))


def _ordered_tokens(counts, *, max_size, min_count, unk_token, reserved_tokens) -> list[str]:
    """The tokens of a vocabulary built from `counts` (token -> count), in id order: the unknown
    token, the reserved tokens, then the rest by count descending and `str` order (see the module
    docstring), cut by `min_count` and `max_size`. Checks the arguments."""
    specials = ([unk_token] if unk_token is not None else []) + list(reserved_tokens)
    bad = [t for t in specials if not isinstance(t, str)]
    if bad:
        raise TypeError(f"`unk_token` and `reserved_tokens` must be str, got {_preview(bad)}")
    if len(set(specials)) != len(specials):
        raise ValueError(
            f"`unk_token` and `reserved_tokens` must be distinct, got {specials!r}")
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"`min_count` must be an int >= 1, got {min_count!r}")
    if max_size is not None and (
        isinstance(max_size, bool) or not isinstance(max_size, int)
        or max_size < max(len(specials), 1)
    ):
        raise ValueError(
            f"`max_size` must be None or an int >= {max(len(specials), 1)} (the unknown and "
            f"reserved tokens count towards it), got {max_size!r}")
    bad = [t for t in counts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"tokens must be str, got {_preview(bad)}")
    special_set = set(specials)
    rest = [t for t, c in counts.items() if c >= min_count and t not in special_set]
    rest.sort(key=lambda t: (-counts[t], t))
    if max_size is not None:
        rest = rest[: max_size - len(specials)]
    return specials + rest


class Vocabulary:
    """An immutable mapping between string tokens and int ids `0 .. len - 1`.

    Args:
        tokens: the tokens in id order; distinct strings.
        unk_token: the token that stands for every out-of-vocabulary token, or None for a closed
            vocabulary (d2l-zh's Jay Chou characters). When not None it must be `tokens[0]`,
            so that id 0 is the unknown id, as in `keras.layers.StringLookup`.

    Example:
        >>> vocab = Vocabulary.build(list("the time"))
        >>> vocab.tokens
        ['<unk>', 'e', 't', ' ', 'h', 'i', 'm']
        >>> vocab.encode("tide")
        array([2, 5, 0, 1], dtype=int32)
        >>> vocab.decode([2, 4, 1])
        ['t', 'h', 'e']
    """

    def __init__(self, tokens: Sequence[str], *, unk_token: str | None):
        tokens = tuple(tokens)
        bad = [t for t in tokens if not isinstance(t, str)]
        if bad:
            raise TypeError(f"tokens must be str, got {_preview(bad)}")
        if len(set(tokens)) != len(tokens):
            seen, dups = set(), []
            for t in tokens:
                if t in seen:
                    dups.append(t)
                seen.add(t)
            raise ValueError(f"tokens must be distinct; duplicated: {_preview(_distinct(dups))}")
        if unk_token is not None:
            if not isinstance(unk_token, str):
                raise TypeError(f"`unk_token` must be a str or None, got {unk_token!r}")
            if not tokens or tokens[0] != unk_token:
                first = repr(tokens[0]) if tokens else "nothing (no tokens)"
                raise ValueError(
                    f"`unk_token` {unk_token!r} must be the first token (id 0), got {first}")
        self._tokens = tokens
        self._unk_token = unk_token
        self._index = {t: i for i, t in enumerate(tokens)}
        self._char_table = None  # (sorted code points, their ids), built on first str encode

    @classmethod
    def build(
        cls,
        tokens: Iterable[str],
        *,
        max_size: int | None = None,
        min_count: int = 1,
        unk_token: str | None = "<unk>",
        reserved_tokens: Sequence[str] = (),
    ) -> "Vocabulary":
        """Counts `tokens` and orders them deterministically (see the module docstring).

        Args:
            tokens: the corpus as tokens (a `str` counts as its characters).
            max_size: the most tokens to keep, counting the unknown and reserved tokens; None
                keeps all. Tokens cut here (the rarest) encode as the unknown token.
            min_count: tokens seen fewer times are left out (and encode as the unknown token).
            unk_token: id 0, or None for no unknown token.
            reserved_tokens: ids right after the unknown token (e.g. "<pad>", "<bos>", "<eos>"),
                kept whether or not they occur in `tokens`.

        Returns:
            The `Vocabulary`.
        """
        counts = collections.Counter(tokens)
        return cls(_ordered_tokens(counts, max_size=max_size, min_count=min_count,
                                   unk_token=unk_token, reserved_tokens=reserved_tokens),
                   unk_token=unk_token)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token) -> bool:
        return token in self._index

    def __eq__(self, other) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._tokens == other._tokens and self._unk_token == other._unk_token

    def __hash__(self) -> int:
        return hash((self._tokens, self._unk_token))

    def __repr__(self) -> str:
        head = list(self._tokens[:8])
        more = ", ..." if len(self) > 8 else ""
        return (f"Vocabulary(size={len(self)}, unk_token={self._unk_token!r}, "
                f"tokens={head!r}{more})")

    @property
    def tokens(self) -> list[str]:
        """All tokens, in id order (a copy)."""
        return list(self._tokens)

    @property
    def unk_token(self) -> str | None:
        return self._unk_token

    @property
    def unk_id(self) -> int | None:
        """0 when there is an unknown token, else None."""
        return None if self._unk_token is None else 0

    def token_to_id(self, token: str) -> int:
        """The id of `token`; the unknown id for an unknown token (ValueError if there is none)."""
        i = self._index.get(token)
        if i is not None:
            return i
        if self._unk_token is None:
            raise ValueError(f"token {token!r} is not in the vocabulary, which has no unk token")
        return 0

    def id_to_token(self, i: int) -> str:
        """The token with id `i`; ValueError unless `0 <= i < len(self)`."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"id must be an int, got {i!r}")
        if not 0 <= i < len(self):
            raise ValueError(f"id {i} is out of range for a vocabulary of {len(self)} tokens")
        return self._tokens[i]

    def encode(self, tokens: Iterable[str], oov: str | None = None) -> np.ndarray:
        """Maps tokens to ids.

        Args:
            tokens: the tokens; a `str` is encoded character by character (a fast path;
                `WordVocabulary.encode` refuses a `str` instead).
            oov: what to do with a token not in the vocabulary:
                "unk": its id is `unk_id` (the default when there is an unknown token; a
                    ValueError when there is none);
                "error": ValueError naming the unknown tokens (the default without an unknown
                    token);
                "skip": left out, so the output may be shorter than the input.

        Returns:
            int32 array `[num_tokens]` (`[num_tokens - num_skipped]` with "skip").
        """
        if oov is None:
            oov = "error" if self._unk_token is None else "unk"
        if oov not in OOV_POLICIES:
            raise ValueError(f"`oov` must be one of {OOV_POLICIES}, got {oov!r}")
        if oov == "unk" and self._unk_token is None:
            raise ValueError(
                "`oov='unk'` needs an unknown token, but this vocabulary has unk_token=None; "
                "use oov='error' or oov='skip'")
        if isinstance(tokens, str):
            ids = self._encode_chars(tokens)
        else:
            if not isinstance(tokens, (Sequence, np.ndarray)):
                tokens = list(tokens)
            ids = np.fromiter((self._index.get(t, -1) for t in tokens), dtype=np.int64,
                              count=len(tokens))
        unknown = ids < 0
        if unknown.any():
            bad = [tokens[i] for i in np.flatnonzero(unknown)[:1000]]
            wrong = [t for t in bad if not isinstance(t, str)]
            if wrong:
                raise TypeError(f"tokens must be str, got {_preview(wrong)}")
            if oov == "error":
                remedy = ("it has no unknown token; pass oov='skip' to drop them"
                          if self._unk_token is None
                          else "pass oov='unk' or oov='skip' to allow them")
                raise ValueError(
                    f"{int(unknown.sum())} tokens are not in the vocabulary: "
                    f"{_preview(_distinct(bad))}; {remedy}")
            ids = np.where(unknown, 0, ids) if oov == "unk" else ids[~unknown]
        return ids.astype(np.int32)

    def _encode_chars(self, text: str) -> np.ndarray:
        """Vectorised lookup of each code point of `text`; -1 where it is not a token."""
        if self._char_table is None:
            singles = sorted((ord(t), i) for t, i in self._index.items() if len(t) == 1)
            points = np.array([p for p, _ in singles], dtype=np.int64)
            ids = np.array([i for _, i in singles], dtype=np.int64)
            self._char_table = (points, ids)
        points, ids = self._char_table
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        codes = codes.astype(np.int64)
        if len(points) == 0:
            return np.full(codes.shape, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(points, codes), len(points) - 1)
        return np.where(points[pos] == codes, ids[pos], -1)

    def decode(self, ids) -> list[str]:
        """Maps ids (a scalar or 1-D int array-like) back to tokens; ValueError for a bad id."""
        arr = np.asarray(ids)
        if arr.ndim > 1:
            raise ValueError(f"`ids` must be a scalar or 1-D, got shape {arr.shape}")
        arr = arr.reshape(-1)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"`ids` must be integers, got dtype {arr.dtype}")
        bad = (arr < 0) | (arr >= len(self))
        if bad.any():
            raise ValueError(
                f"ids out of range for a vocabulary of {len(self)} tokens (valid: 0 .. "
                f"{len(self) - 1}): {_preview(_distinct(arr[bad].tolist()))}")
        return [self._tokens[i] for i in arr.tolist()]

    _FORMAT = FORMAT  # the "format" of this class's file

    def _payload(self) -> dict:
        return {"format": self._FORMAT, "version": VERSION, "unk_token": self._unk_token,
                "tokens": list(self._tokens)}

    def save(self, path) -> None:
        """Writes the JSON file atomically (a temporary file in the same folder, then rename)."""
        path = os.fspath(path)
        text = json.dumps(self._payload(), ensure_ascii=False, indent=1) + "\n"
        write_text_atomic(path, text)

    @classmethod
    def load(cls, path) -> "Vocabulary":
        """Reads a file written by `save`, with a ValueError naming the file if it is invalid.

        `Vocabulary.load` reads a word vocabulary's file too, returning a `WordVocabulary`.
        """
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"vocabulary file {path!r} does not exist") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(
                f"vocabulary file {path!r} is corrupt (not UTF-8 JSON): {e}") from None
        fmt = data.get("format") if isinstance(data, dict) else None
        if cls is Vocabulary and fmt == WORD_FORMAT:
            cls = WordVocabulary
        if fmt != cls._FORMAT:
            got = fmt if isinstance(data, dict) else type(data).__name__
            raise ValueError(
                f"vocabulary file {path!r} is not an {cls._FORMAT!r} file (format: {got!r})")
        if data.get("version") != VERSION:
            raise ValueError(f"vocabulary file {path!r} has version {data.get('version')!r}; "
                             f"this code reads version {VERSION}")
        tokens, unk = data.get("tokens"), data.get("unk_token")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError(f"vocabulary file {path!r}: 'tokens' must be a list of strings")
        if unk is not None and not isinstance(unk, str):
            raise ValueError(
                f"vocabulary file {path!r}: 'unk_token' must be a string or null, got {unk!r}")
        try:
            return cls._from_payload(tokens, unk, data)
        except (ValueError, TypeError) as e:
            raise ValueError(f"vocabulary file {path!r}: {e}") from None

    @classmethod
    def _from_payload(cls, tokens: list, unk_token, data: dict) -> "Vocabulary":
        return cls(tokens, unk_token=unk_token)

    def to_string_lookup(self, *, invert: bool = False, name: str | None = None):
        """A `keras.layers.StringLookup` giving the same ids as `encode` (ids -> tokens if invert).

        With an unknown token, Keras' single OOV index 0 is our `unk_id` 0 and its vocabulary is
        `tokens[1:]`; without one, `num_oov_indices=0` (an unknown token is then an error, as
        `encode(oov="error")`). No mask token. Keras returns int64 ids. A token ending in
        "\\x00" is refused (Keras would silently strip it).
        """
        import keras  # deferred: the vocabulary itself needs no TensorFlow

        nul = [t for t in self._tokens if t.endswith("\x00")]
        if nul:  # Keras passes the vocabulary through NumPy, which strips trailing NULs
            raise ValueError(f"keras.layers.StringLookup cannot hold tokens ending in '\\x00', "
                             f"got {_preview(nul)}")
        if self._unk_token is not None:
            if len(self) < 2:
                raise ValueError("a StringLookup needs at least one token besides the unk token")
            return keras.layers.StringLookup(
                vocabulary=list(self._tokens[1:]), num_oov_indices=1,
                oov_token=self._unk_token, mask_token=None, invert=invert, name=name)
        if not self._tokens:
            raise ValueError("a StringLookup needs at least one token")
        unused = "[UNK]"  # Keras still checks its (unused) OOV token against the vocabulary
        while unused in self._index:
            unused += "_"
        return keras.layers.StringLookup(
            vocabulary=list(self._tokens), num_oov_indices=0, oov_token=unused, mask_token=None,
            invert=invert, name=name)


class WordVocabulary(Vocabulary):
    """A `Vocabulary` of words that keeps how often each token occurs in its corpus.

    Why a subclass rather than counts on every `Vocabulary`: a word vocabulary differs in
    behaviour, not only in data. `encode` must refuse a bare `str` (the character vocabulary's
    fast path would silently read "the cat" as seven characters), the counts are part of its
    identity (two runs whose corpora differ in counts must not pass as the same vocabulary),
    and its file names another format, so the character vocabularies' files, run directories
    and SavedModel assets stay byte for byte what they were. Everything else (ids, `decode`,
    `to_string_lookup`, `save` / `load`) is inherited.

    `counts[i]` is the number of corpus tokens that `encode` maps to id `i`:

        counts[unk_id] = #(tokens cut by `min_count` / `max_size`) + #(literal unk tokens)
                         (the course's UNK count),
        sum(counts)    = len(corpus)

    so `counts == np.bincount(vocab.encode(corpus), minlength=len(vocab))`. The order is
    `Vocabulary`'s: the unknown token (id 0), the reserved tokens, then count descending with
    ties in `str` order, independent of hashing and of the order of the corpus.

    Args:
        tokens: the tokens in id order; distinct strings.
        counts: one int >= 0 per token, in id order.
        unk_token: as for `Vocabulary` ("<unk>" by default; None for a closed vocabulary).

    Example:
        >>> vocab = WordVocabulary.build("a cat and a dog and a cat".split(), min_count=2)
        >>> vocab.tokens, vocab.counts.tolist()
        (['<unk>', 'a', 'and', 'cat'], [1, 3, 2, 2])
        >>> vocab.encode(["a", "dog"])
        array([1, 0], dtype=int32)
    """

    _FORMAT = WORD_FORMAT

    def __init__(self, tokens: Sequence[str], counts: Sequence[int], *,
                 unk_token: str | None = "<unk>"):
        super().__init__(tokens, unk_token=unk_token)
        if isinstance(counts, (str, bytes)):
            raise TypeError(f"`counts` must be a sequence of ints, got {type(counts).__name__}")
        counts = list(counts)
        bad = [c for c in counts
               if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0]
        if bad:
            raise ValueError(f"`counts` must be ints >= 0, got {_preview(bad)}")
        if len(counts) != len(self):
            raise ValueError(f"`counts` must have one entry per token ({len(self)}), got "
                             f"{len(counts)}")
        self._counts = np.array(counts, dtype=np.int64).reshape(-1)
        self._counts.setflags(write=False)

    @classmethod
    def build(
        cls,
        tokens: Iterable[str],
        *,
        max_size: int | None = None,
        min_count: int = 1,
        unk_token: str | None = "<unk>",
        reserved_tokens: Sequence[str] = (),
    ) -> "WordVocabulary":
        """Counts the words of a corpus and keeps the most frequent.

        Args:
            tokens: the corpus as words, e.g. `word_tokens(text)`; a bare `str` is refused.
            max_size: the most tokens to keep, counting the unknown and reserved tokens (the
                course: 50,000); None keeps all.
            min_count: words seen fewer times are cut (word2vec.c and gensim: 5).
            unk_token: id 0; every cut word counts as it. None only when no word is cut.
            reserved_tokens: ids right after the unknown token, kept whatever their count.

        Returns:
            The `WordVocabulary`, with `counts` as defined in the class docstring.

        Raises:
            TypeError: a `str` (or a non-str token).
            ValueError: bad `max_size` / `min_count` / specials (named with their values), or
                `unk_token=None` while some words would be cut.
        """
        _refuse_str(tokens, "WordVocabulary.build")
        return cls.from_counts(collections.Counter(tokens), max_size=max_size,
                               min_count=min_count, unk_token=unk_token,
                               reserved_tokens=reserved_tokens)

    @classmethod
    def from_counts(
        cls,
        counts,
        *,
        max_size: int | None = None,
        min_count: int = 1,
        unk_token: str | None = "<unk>",
        reserved_tokens: Sequence[str] = (),
    ) -> "WordVocabulary":
        """As `build`, from word counts already made (a `collections.Counter` or any mapping
        word -> count >= 0), e.g. summed over the files of a corpus too large to hold."""
        if not isinstance(counts, Mapping):
            raise TypeError(f"`counts` must be a mapping word -> count, got "
                            f"{type(counts).__name__}")
        bad = [c for c in counts.values()
               if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0]
        if bad:
            raise ValueError(f"word counts must be ints >= 0, got {_preview(bad)}")
        tokens = _ordered_tokens(counts, max_size=max_size, min_count=min_count,
                                 unk_token=unk_token, reserved_tokens=reserved_tokens)
        kept = [int(counts.get(t, 0)) for t in tokens]
        total = sum(int(c) for c in counts.values())
        if unk_token is not None:
            kept[0] = total - sum(kept[1:])  # cut words + literal unk tokens
        elif sum(kept) != total:
            kept_set = set(tokens)
            cut = [t for t in counts if t not in kept_set]
            raise ValueError(
                f"`unk_token=None` but min_count={min_count!r} / max_size={max_size!r} cut "
                f"{total - sum(kept)} tokens ({_preview(sorted(cut))}): they could not be "
                f"encoded; pass unk_token='<unk>' (and encode with oov='skip' to drop them)")
        return cls(tokens, kept, unk_token=unk_token)

    @property
    def counts(self) -> np.ndarray:
        """int64 `[len(self)]`: each token's count in the corpus, in id order (read-only)."""
        return self._counts

    @property
    def total_count(self) -> int:
        """The number of corpus tokens, `sum(counts)`."""
        return int(self._counts.sum())

    def count(self, token: str) -> int:
        """The count of `token`; 0 for a token not in the vocabulary (its occurrences are in
        `counts[unk_id]`)."""
        i = self._index.get(token)
        return 0 if i is None else int(self._counts[i])

    def encode(self, tokens: Iterable[str], oov: str | None = None) -> np.ndarray:
        """Maps words to ids, as `Vocabulary.encode`, but a bare `str` is a TypeError: split the
        text into words first (e.g. `encode(word_tokens(text))`).

        `oov="skip"` drops out-of-vocabulary words, as word2vec.c and gensim train (then
        `unigram_counts(vocab, unk=False)` leaves `<unk>` out of the negatives too).
        """
        _refuse_str(tokens, "WordVocabulary.encode")
        return super().encode(tokens, oov)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        if not isinstance(other, WordVocabulary):
            return False
        return (self._tokens == other._tokens and self._unk_token == other._unk_token
                and np.array_equal(self._counts, other._counts))

    def __hash__(self) -> int:
        return hash((self._tokens, self._unk_token, self._counts.tobytes()))

    def __repr__(self) -> str:
        head = list(self._tokens[:8])
        more = ", ..." if len(self) > 8 else ""
        return (f"WordVocabulary(size={len(self)}, unk_token={self._unk_token!r}, "
                f"total_count={self.total_count}, tokens={head!r}{more})")

    def _payload(self) -> dict:
        return {**super()._payload(), "counts": self._counts.tolist()}

    @classmethod
    def _from_payload(cls, tokens: list, unk_token, data: dict) -> "WordVocabulary":
        counts = data.get("counts")
        if not isinstance(counts, list):
            raise ValueError(f"'counts' must be a list of ints, got {type(counts).__name__}")
        return cls(tokens, counts, unk_token=unk_token)


def _refuse_str(tokens, where: str) -> None:
    if isinstance(tokens, (str, bytes, bytearray)):
        head = tokens[:30]
        raise TypeError(
            f"{where} takes a sequence of words, got a {type(tokens).__name__} ({head!r}"
            f"{'...' if len(tokens) > 30 else ''}), which would be read character by "
            f"character; split it into words first, e.g. word_tokens(text) "
            f"(rnnzoo.data.tokenize), or pass [word] for a single word")
