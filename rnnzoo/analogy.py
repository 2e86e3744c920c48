"""Word-analogy accuracy (`questions-words.txt`), scored exactly as gensim scores it.

`read_questions` reads the word2vec analogy file (`: section` header lines, then lines
`a b c d` meaning a:b :: c:d). `evaluate_analogies` answers each question with 3CosAdd on unit
vectors and counts the answers as gensim 4.x's
`KeyedVectors.evaluate_word_analogies(path, restrict_vocab=30000)` does:

- the vocabulary is the first `restrict_vocab` words (the words come most frequent first); a
  question with any of its four words outside it is skipped and counted as skipped;
- with `case_insensitive` (the default) the question words and the vocabulary are upper-cased,
  and a word stands for the vector of its first (most frequent) case variant in that vocabulary;
- the query is the mean of the unit vectors `b + c - a` (in float32, in that order), divided by 3
  and normalised in float64, then cast to float32; each candidate's score is its raw vector
  dotted with the query, divided by its norm (its cosine with the query);
- the three question words are never the answer: their vectors' rows are excluded from the
  ranking, and an answer that upper-cases to one of them is passed over (gensim looks at the 5 best
  answers left once those rows are out; if all 5 upper-case to question words the last of them
  is its answer, which is wrong unless it equals the expected word);
- the answer is right when it (upper-cased) is the expected word; accuracy is correct /
  (correct + incorrect), 0.0 when nothing was answered.

Sections whose name starts with `gram` are the syntactic questions, the others the semantic ones
(the 5 first sections of `questions-words.txt`: 8,869 semantic and 10,675 syntactic questions).

The scoring is batched: the queries of `chunk_size` questions against the whole restricted
vocabulary in one float32 matrix product, the question words' rows set to -inf, an argmax per row.
It answers as a question-by-question ranking (and gensim) does, except where two candidates'
scores are within float32 rounding of each other. Pure NumPy; no TensorFlow. The 19,544
questions against 30,000 x 128 vectors cost about 6 CPU-seconds (150 GFLOP of matrix products).

Unlike gensim, which logs and skips them, lines that are not `a b c d` are an error here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from rnnzoo.data.errors import CorpusError

__all__ = [
    "AnalogyResult",
    "Question",
    "Section",
    "SectionScore",
    "evaluate_analogies",
    "read_questions",
]

Question = tuple[str, str, str, str]

_GENSIM_TOPN = 5  # evaluate_word_analogies asks most_similar for the 5 best answers


@dataclasses.dataclass(frozen=True)
class Section:
    """One section of an analogy file: its name and its questions (a, b, c, d), in file order."""

    name: str
    questions: tuple[Question, ...]

    @property
    def syntactic(self) -> bool:
        """True for the `gram*` sections of questions-words.txt."""
        return self.name.startswith("gram")


def read_questions(path: str | os.PathLike) -> list[Section]:
    """Reads an analogy file (questions-words.txt) into its sections, in file order.

    A line starting with `:` opens a section named by the rest of the line; every other non-blank
    line must hold four whitespace-separated words. Blank lines are ignored.

    Raises:
      CorpusError (a ValueError): the file is missing or not UTF-8, a question comes before the
        first section header, a line does not hold four words, a header has no name, or two
        sections share a name. The message names the file and the line number (from 1).
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise CorpusError(f"{path}: analogy questions file not found") from None
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path}: not UTF-8 text ({e})") from None
    sections: list[Section] = []
    name, questions, seen = None, [], set()
    for line_no, line in enumerate(lines, start=1):
        if line.startswith(":"):
            if name is not None:
                sections.append(Section(name, tuple(questions)))
            name, questions = line[1:].strip(), []
            if not name:
                raise CorpusError(f"{path}:{line_no}: section header without a name: {line!r}")
            if name in seen:
                raise CorpusError(f"{path}:{line_no}: section {name!r} appears twice")
            seen.add(name)
            continue
        words = line.split()
        if not words:
            continue
        if name is None:
            raise CorpusError(
                f"{path}:{line_no}: question before the first ': section' header: {line!r}")
        if len(words) != 4:
            raise CorpusError(
                f"{path}:{line_no}: expected 4 words 'a b c d' (a:b :: c:d), "
                f"got {len(words)}: {line!r}")
        questions.append(tuple(words))
    if name is not None:
        sections.append(Section(name, tuple(questions)))
    return sections


@dataclasses.dataclass(frozen=True)
class SectionScore:
    """Counts of one section (or of a group of sections: total, semantic, syntactic)."""

    name: str
    correct: int
    incorrect: int
    skipped: int

    @property
    def evaluated(self) -> int:
        """Questions answered (all of whose words are in the restricted vocabulary)."""
        return self.correct + self.incorrect

    @property
    def questions(self) -> int:
        return self.correct + self.incorrect + self.skipped

    @property
    def accuracy(self) -> float:
        """correct / (correct + incorrect), as gensim; 0.0 when no question was answered."""
        return self.correct / self.evaluated if self.evaluated else 0.0


@dataclasses.dataclass(frozen=True)
class AnalogyResult:
    """What `evaluate_analogies` found.

    Attributes:
      sections: section name -> `SectionScore`, in file order.
      total_score, semantic_score, syntactic_score: the counts summed over all sections, over the
        non-`gram` and over the `gram*` sections.
      outcomes: section name -> int8 array, one per question: 1 correct, 0 incorrect, -1 skipped.
      predictions: section name -> int64 array, one per question: the row (index into `words`) of
        the answer, -1 for a skipped question (or none at all, a vocabulary of 3 words or fewer).
      restrict_vocab: the number of words the answers were drawn from.
    """

    sections: dict[str, SectionScore]
    total_score: SectionScore
    semantic_score: SectionScore
    syntactic_score: SectionScore
    outcomes: dict[str, np.ndarray]
    predictions: dict[str, np.ndarray]
    restrict_vocab: int

    @property
    def total(self) -> float:
        return self.total_score.accuracy

    @property
    def semantic(self) -> float:
        return self.semantic_score.accuracy

    @property
    def syntactic(self) -> float:
        return self.syntactic_score.accuracy

    @property
    def correct(self) -> int:
        return self.total_score.correct

    @property
    def incorrect(self) -> int:
        return self.total_score.incorrect

    @property
    def skipped(self) -> int:
        return self.total_score.skipped

    @property
    def section_accuracy(self) -> dict[str, float]:
        return {name: s.accuracy for name, s in self.sections.items()}

    def to_metrics(self, per_section: bool = False) -> dict[str, float | int]:
        """The `metrics.jsonl` fields of issue 10: accuracies as fractions, plus counts.

        With `per_section`, also `analogy/<section name>` accuracies.
        """
        metrics: dict[str, float | int] = {
            "analogy_accuracy": self.total,
            "analogy_semantic": self.semantic,
            "analogy_syntactic": self.syntactic,
            "analogy_correct": self.correct,
            "analogy_evaluated": self.total_score.evaluated,
            "analogy_skipped": self.skipped,
        }
        if per_section:
            metrics.update({f"analogy/{n}": a for n, a in self.section_accuracy.items()})
        return metrics


def _sum_scores(name: str, scores: Sequence[SectionScore]) -> SectionScore:
    return SectionScore(name, sum(s.correct for s in scores), sum(s.incorrect for s in scores),
                        sum(s.skipped for s in scores))


def evaluate_analogies(
    vectors,
    words: Sequence[str],
    questions: Sequence[Section] | str | os.PathLike,
    *,
    restrict_vocab: int | None = 30000,
    case_insensitive: bool = True,
    chunk_size: int = 512,
) -> AnalogyResult:
    """Analogy accuracy of word vectors, as gensim's `evaluate_word_analogies` computes it.

    Args:
      vectors: `[vocab, dim]` word vectors (array-like; scored in float32, as gensim stores them),
        row `i` the vector of `words[i]`.
      words: the vocabulary, most frequent first.
      questions: sections from `read_questions`, or the path of an analogy file.
      restrict_vocab: answers come from, and questions are limited to, the first `restrict_vocab`
        words; None for all of them.
      case_insensitive: compare words upper-cased (gensim's default); a word then stands for its
        first case variant in the restricted vocabulary.
      chunk_size: questions scored per matrix product (memory: chunk_size x restrict_vocab floats).

    A zero vector has a cosine of 0 with everything here (gensim would score it NaN).

    Raises:
      ValueError: vectors not 2-D, or not one per word; restrict_vocab or chunk_size < 1; two
        sections with one name.
      CorpusError (a ValueError): `questions` is a path, and `read_questions` fails.
    """
    if isinstance(questions, (str, os.PathLike)):
        questions = read_questions(questions)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be [vocab, dim], got shape {vectors.shape}")
    if len(words) != vectors.shape[0]:
        raise ValueError(f"{len(words)} words but {vectors.shape[0]} vectors; need one per word")
    if restrict_vocab is not None and (not isinstance(restrict_vocab, (int, np.integer))
                                       or restrict_vocab < 1):
        raise ValueError(
            f"restrict_vocab must be a positive integer or None, got {restrict_vocab!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    names = [s.name for s in questions]
    if len(set(names)) != len(names):
        raise ValueError(f"section names must be unique, got {names}")
    size = len(words) if restrict_vocab is None else min(int(restrict_vocab), len(words))
    vectors = vectors[:size]

    key = str.upper if case_insensitive else (lambda w: w)
    keys = [key(w) for w in words[:size]]
    index: dict[str, int] = {}  # key -> the row of its first occurrence (gensim's ok_vocab)
    variants: dict[str, list[int]] = {}  # key -> rows of its later occurrences
    for i, k in enumerate(keys):
        if k in index:
            variants.setdefault(k, []).append(i)
        else:
            index[k] = i
    canonical = np.fromiter((index[k] for k in keys), dtype=np.int64, count=size)

    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0] = 1.0
    units = vectors / norms[:, None]

    # Every answered question: its section, its position there, its rows, and the rows of the
    # later case variants of its first three words (also never the answer).
    where, rows, others_of, exact = [], [], {}, []
    outcomes = {s.name: np.full(len(s.questions), -1, np.int8) for s in questions}
    predictions = {s.name: np.full(len(s.questions), -1, np.int64) for s in questions}
    for s in questions:
        for j, question in enumerate(s.questions):
            qkeys = [key(w) for w in question]
            if not all(k in index for k in qkeys):
                continue
            others = [v for k in set(qkeys[:3]) for v in variants.get(k, ())]
            # Batched, the answer is the best row that is no question word nor a variant of one;
            # gensim looks at its 5 best rows only, so where 5 variants could fill them (or there
            # are fewer than 5 rows to look at) answer the question as gensim does, on its own.
            if len(others) >= _GENSIM_TOPN or size < _GENSIM_TOPN + 3:
                exact.append((s.name, j, qkeys))
                continue
            if others:
                others_of[len(rows)] = others
            where.append((s.name, j))
            rows.append([index[k] for k in qkeys])
    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 4)

    for start in range(0, len(rows), chunk_size):
        r = rows[start:start + chunk_size]
        queries = _queries(units[r[:, 0]], units[r[:, 1]], units[r[:, 2]])
        scores = queries @ vectors.T
        scores /= norms
        scores[np.arange(len(r))[:, None], r[:, :3]] = -np.inf
        for n in range(start, start + len(r)):
            if n in others_of:
                scores[n - start, others_of[n]] = -np.inf
        best = scores.argmax(axis=1)
        right = canonical[best] == r[:, 3]
        for (name, j), b, ok in zip(where[start:start + len(r)], best, right, strict=True):
            predictions[name][j] = b
            outcomes[name][j] = 1 if ok else 0

    for name, j, qkeys in exact:
        predictions[name][j], ok = _answer_like_gensim(vectors, norms, units, keys, index, qkeys)
        outcomes[name][j] = 1 if ok else 0

    scores = {
        s.name: SectionScore(s.name, int(np.sum(outcomes[s.name] == 1)),
                             int(np.sum(outcomes[s.name] == 0)),
                             int(np.sum(outcomes[s.name] == -1)))
        for s in questions
    }
    return AnalogyResult(
        sections=scores,
        total_score=_sum_scores("total", list(scores.values())),
        semantic_score=_sum_scores("semantic", [scores[s.name] for s in questions
                                                if not s.syntactic]),
        syntactic_score=_sum_scores("syntactic", [scores[s.name] for s in questions
                                                  if s.syntactic]),
        outcomes=outcomes,
        predictions=predictions,
        restrict_vocab=size,
    )


def _queries(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """gensim's most_similar(positive=[b, c], negative=[a]) query, for rows of unit vectors."""
    mean = (b + c) - a  # float32, accumulated in gensim's order
    mean = mean.astype(np.float64) / 3.0
    length = np.linalg.norm(mean, axis=-1, keepdims=True)
    np.divide(mean, length, out=mean, where=length > 0)
    return mean.astype(np.float32)


def _answer_like_gensim(vectors, norms, units, keys, index, qkeys) -> tuple[int, bool]:
    """One question, step by step as gensim answers it: (answer row or -1, correct)."""
    a, b, c, expected = qkeys
    query = _queries(units[index[a]], units[index[b]], units[index[c]])
    dists = (vectors @ query) / norms
    excluded = {index[a], index[b], index[c]}
    ranked = [i for i in np.argsort(-dists, kind="stable")[:_GENSIM_TOPN + 3]
              if i not in excluded][:_GENSIM_TOPN]
    answer = -1
    for i in ranked:
        answer = int(i)
        if keys[i] not in (a, b, c):
            break
    return answer, answer >= 0 and keys[answer] == expected
