"""Analogy accuracy: the file reader, hand-made questions with known answers, a slow reference
implementation (a loop per question and per candidate), and gensim's evaluate_word_analogies."""

import math

import numpy as np
import pytest

from rnnzoo.analogy import AnalogyResult, Section, evaluate_analogies, read_questions
from rnnzoo.data.errors import CorpusError

E = np.eye(16, dtype=np.float32)


def _write(tmp_path, text, name="questions.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _outcome(result: AnalogyResult):
    return {name: (list(result.predictions[name]), list(result.outcomes[name]))
            for name in result.sections}


# --- the reference: gensim's algorithm, literally, one question and one candidate at a time ----

def reference(vectors, words, sections, restrict_vocab, case_insensitive):
    """{section: (predicted rows, outcomes)}; outcome 1 correct, 0 incorrect, -1 skipped."""
    key = str.upper if case_insensitive else str
    vocab = list(words[:restrict_vocab])
    rows = [np.asarray(v, np.float64) for v in vectors[:restrict_vocab]]
    first = {}
    for i, w in enumerate(vocab):
        first.setdefault(key(w), i)

    def unit(v):
        return v / math.sqrt(sum(float(x) * float(x) for x in v))

    units = [unit(v) for v in rows]
    out = {}
    for section in sections:
        predictions, outcomes = [], []
        for question in section.questions:
            a, b, c, d = (key(w) for w in question)
            if any(k not in first for k in (a, b, c, d)):
                predictions.append(-1)
                outcomes.append(-1)
                continue
            query = unit((units[first[b]] + units[first[c]] - units[first[a]]) / 3)
            cosines = [float(np.dot(units[i], query)) for i in range(len(vocab))]
            ranked = sorted(range(len(vocab)), key=lambda i: -cosines[i])
            top5 = [i for i in ranked if i not in (first[a], first[b], first[c])][:5]
            predicted = -1
            for i in top5:
                predicted = i
                if key(vocab[i]) not in (a, b, c):
                    break
            predictions.append(predicted)
            outcomes.append(int(predicted >= 0 and key(vocab[predicted]) == d))
        out[section.name] = (predictions, outcomes)
    return out


def _random_case(rng, word):
    return "".join(ch.upper() if rng.random() < 0.5 else ch for ch in word)


def parallelogram_vocab(rng, pairs, dim, noise, n_distractors, n_variants):
    """Words, vectors (random norms) for pairs (x, y) with y = x + offset + noise, shuffled."""
    offset = rng.standard_normal(dim)
    table = {}
    for x, y in pairs:
        table.setdefault(x, rng.standard_normal(dim))
        table.setdefault(y, table[x] + offset + noise * rng.standard_normal(dim))
    words = list(table)
    for i in range(n_distractors):
        table[f"noise{i}"] = rng.standard_normal(dim)
    for w in rng.choice(words, n_variants, replace=False):
        v = _random_case(rng, w)
        if v not in table:
            table[v] = table[w] + 0.5 * rng.standard_normal(dim)
    words = list(table)
    rng.shuffle(words)
    scale = np.exp(rng.standard_normal((len(words), 1)))
    return words, (np.stack([table[w] for w in words]) * scale).astype(np.float32)


def _pair_sections(rng, n_pairs, n_questions):
    pairs = [(f"x{i}", f"y{i}") for i in range(n_pairs)]
    sections = []
    for name in ("capital-like", "gram1-like"):
        questions = []
        for _ in range(n_questions):
            i, j = rng.choice(n_pairs, 2, replace=False)
            q = [*pairs[i], *pairs[j]]
            if rng.random() < 0.1:
                q[rng.integers(4)] = "unseen"
            questions.append(tuple(_random_case(rng, w) if rng.random() < 0.3 else w for w in q))
        sections.append(Section(name, tuple(questions)))
    return pairs, sections


# --- read_questions ---------------------------------------------------------------------------

def test_reads_questions_words_sections_in_file_order(source_dir):
    sections = read_questions(source_dir / "questions-words.txt")
    assert [s.name for s in sections][:3] == ["capital-common-countries", "capital-world",
                                              "currency"]
    assert len(sections) == 14
    assert sum(len(s.questions) for s in sections) == 19544
    assert sum(len(s.questions) for s in sections if not s.syntactic) == 8869
    assert [s.syntactic for s in sections] == [False] * 5 + [True] * 9
    assert sections[0].questions[0] == ("Athens", "Greece", "Baghdad", "Iraq")
    assert sections[-1].name == "gram9-plural-verbs"
    assert len(sections[-1].questions) == 870


@pytest.mark.parametrize("text, line, what", [
    (": s\na b c d\na b c\n", 3, "expected 4 words"),
    (": s\na b c d e\n", 2, "expected 4 words"),
    ("a b c d\n: s\n", 1, "before the first"),
    (": s\n:   \n", 2, "without a name"),
    (": s\na b c d\n: s\n", 3, "appears twice"),
])
def test_a_malformed_file_names_the_file_and_line(tmp_path, text, line, what):
    path = _write(tmp_path, text)
    with pytest.raises(CorpusError, match=what) as error:
        read_questions(path)
    assert f"{path}:{line}:" in str(error.value)


def test_blank_lines_and_empty_sections_are_kept_as_gensim_keeps_them(tmp_path):
    path = _write(tmp_path, ": empty\n\n: gram-x\n\na b c d\n  \n")
    sections = read_questions(path)
    assert sections == [Section("empty", ()), Section("gram-x", (("a", "b", "c", "d"),))]
    with pytest.raises(CorpusError, match="not found"):
        read_questions(tmp_path / "missing.txt")


# --- hand-made questions with known answers ---------------------------------------------------

HAND_WORDS = {  # man:woman :: king:queen on an orthonormal basis; b - a + c lands on d exactly
    "man": E[0] + E[2], "woman": E[1] + E[2], "king": E[0] + E[3], "queen": E[1] + E[3],
    "boy": E[0] + E[4], "girl": E[1] + E[4], "prince": E[5] + E[6],
    "walk": E[7] + E[9], "walking": E[8] + E[9], "run": E[7] + E[10], "running": E[8] + E[10],
    "swim": E[7] + E[11], "swimming": E[12], "kid": E[13],
}
HAND_QUESTIONS = """: family
man woman king queen
man woman boy girl
king queen man woman
man woman king prince
man woman king emperor
man woman king kid
: gram5-present-participle
walk walking run running
walk walking swim swimming
"""


def test_hand_made_answers_counts_and_metrics(tmp_path):
    words = list(HAND_WORDS)
    vectors = np.stack([HAND_WORDS[w] * (1 + i) for i, w in enumerate(words)])  # norms differ
    restrict = words.index("kid")  # kid is the last word: outside the vocabulary
    result = evaluate_analogies(vectors, words, _write(tmp_path, HAND_QUESTIONS),
                                restrict_vocab=restrict)
    family, gram = result.sections["family"], result.sections["gram5-present-participle"]
    assert (family.correct, family.incorrect, family.skipped) == (3, 1, 2)
    assert (gram.correct, gram.incorrect, gram.skipped) == (1, 1, 0)
    assert list(result.outcomes["family"]) == [1, 1, 1, 0, -1, -1]
    assert [words[i] if i >= 0 else None for i in result.predictions["family"]] == [
        "queen", "girl", "woman", "queen", None, None]
    assert words[result.predictions["gram5-present-participle"][1]] == "running"
    assert (result.correct, result.incorrect, result.skipped) == (4, 2, 2)
    assert result.total == 4 / 6 and result.semantic == 3 / 4 and result.syntactic == 1 / 2
    assert result.section_accuracy == {"family": 0.75, "gram5-present-participle": 0.5}
    assert result.to_metrics() == {
        "analogy_accuracy": 4 / 6, "analogy_semantic": 0.75, "analogy_syntactic": 0.5,
        "analogy_correct": 4, "analogy_evaluated": 6, "analogy_skipped": 2}
    assert result.to_metrics(per_section=True)["analogy/family"] == 0.75
    # All words: kid is in, and the question whose answer is kid is answered (kid is orthogonal
    # to queen's direction, queen wins).
    everything = evaluate_analogies(vectors, words, read_questions(tmp_path / "questions.txt"),
                                    restrict_vocab=None)
    assert list(everything.outcomes["family"]) == [1, 1, 1, 0, -1, 0]


def test_nothing_answered_is_zero_accuracy():
    words = list(HAND_WORDS)
    vectors = np.stack([HAND_WORDS[w] for w in words])
    result = evaluate_analogies(vectors, words, [Section("gram1", (("a", "b", "c", "d"),))])
    assert (result.total, result.semantic, result.syntactic, result.skipped) == (0.0, 0.0, 0.0, 1)
    assert result.semantic_score.questions == 0


# Case: Paris:France :: Rome:Italy where later case variants of the question words (Paris, ROME)
# point closer to the query than italy does: gensim passes them over.
CASE_WORDS = [
    ("paris", E[1] + E[2]), ("france", E[0] + E[2]), ("rome", E[1] + E[3]),
    ("italy", E[0] + E[3] + 0.5 * E[5]), ("ROME", E[0] + E[3] + 0.1 * E[4]),
    ("Paris", E[0] + E[3]), ("london", E[1] + E[2] + E[7]),
]
CASE_QUESTIONS = ": capitals\nParis France Rome Italy\n: lower\nparis france rome italy\n"


def test_case_insensitive_uses_the_first_variant_and_passes_over_all_variants(tmp_path):
    path = _write(tmp_path, CASE_QUESTIONS)
    words = [w for w, _ in CASE_WORDS]
    vectors = np.stack([v for _, v in CASE_WORDS])
    result = evaluate_analogies(vectors, words, path)
    assert [words[result.predictions[s][0]] for s in ("capitals", "lower")] == ["italy", "italy"]
    assert result.correct == 2
    # Case-sensitive: France is not a word; paris:france :: rome:? is Paris (a different word).
    sensitive = evaluate_analogies(vectors, words, path, case_insensitive=False)
    assert list(sensitive.outcomes["capitals"]) == [-1]
    assert words[sensitive.predictions["lower"][0]] == "Paris"
    assert (sensitive.correct, sensitive.incorrect, sensitive.skipped) == (0, 1, 1)
    # Paris before paris: PARIS now means Paris's vector (italy's direction), the query points
    # at paris (a variant of a question word, passed over) and london is the answer.
    swapped = [words.index("Paris")] + [i for i, w in enumerate(words) if w != "Paris"]
    result = evaluate_analogies(vectors[swapped], [words[i] for i in swapped], path)
    assert [words[swapped[result.predictions[s][0]]] for s in ("capitals", "lower")] == [
        "london", "london"]
    assert result.correct == 0


def _variant_vocab(n_variants):
    """abc:xyz :: pqr:ans where n_variants case variants of pqr outrank ans."""
    rng = np.random.default_rng(5)
    target = -E[0] + E[1] + E[2]
    table = [("abc", E[0]), ("xyz", E[1]), ("pqr", E[2]), ("ans", target + 0.3 * E[5])]
    for i, v in enumerate(["Pqr", "pQr", "pqR", "PQr", "PqR", "pQR"][:n_variants]):
        table.append((v, target + 0.02 * (i + 1) * E[6 + i]))
    table += [(f"other{i}", rng.standard_normal(16).astype(np.float32)) for i in range(6)]
    return [w for w, _ in table], np.stack([v for _, v in table])


@pytest.mark.parametrize("n_variants, answer, correct", [
    (4, "ans", 1),  # gensim's 5 best answers hold the 4 variants and ans
    (5, "PqR", 0),  # all 5 are variants: gensim answers with the 5th, the worst of them
    (6, "PqR", 0),
])
def test_five_case_variants_fill_gensims_five_answers(tmp_path, n_variants, answer, correct):
    words, vectors = _variant_vocab(n_variants)
    sections = [Section("s", (("abc", "xyz", "pqr", "ans"),))]
    result = evaluate_analogies(vectors, words, sections)
    assert words[result.predictions["s"][0]] == answer
    assert result.correct == correct
    assert _outcome(result) == reference(vectors, words, sections, len(words), True)
    if _have_gensim():
        path = _write(tmp_path, ": s\nabc xyz pqr ans\n")
        assert gensim_outcomes(vectors, words, path, 30000, True) == _keyed_outcomes(
            result, sections, True)


# --- against the reference --------------------------------------------------------------------

@pytest.mark.parametrize("case_insensitive", [True, False])
def test_matches_the_reference_on_a_random_vocabulary(case_insensitive):
    rng = np.random.default_rng(0)
    pairs, sections = _pair_sections(rng, n_pairs=60, n_questions=150)
    words, vectors = parallelogram_vocab(rng, pairs, dim=12, noise=0.6, n_distractors=120,
                                         n_variants=40)
    restrict = len(words) - 40
    result = evaluate_analogies(vectors, words, sections, restrict_vocab=restrict,
                                case_insensitive=case_insensitive, chunk_size=64)
    expected = reference(vectors, words, sections, restrict, case_insensitive)
    assert _outcome(result) == expected
    for name, (_, outcomes) in expected.items():
        score = result.sections[name]
        assert (score.correct, score.incorrect, score.skipped) == (
            outcomes.count(1), outcomes.count(0), outcomes.count(-1))
    # The test has teeth: right and wrong answers, skipped questions, both kinds of section.
    assert result.correct > 20 and result.incorrect > 20 and result.skipped > 20
    assert 0 < result.semantic < 1 and 0 < result.syntactic < 1


def test_chunk_size_does_not_change_anything():
    rng = np.random.default_rng(1)
    pairs, sections = _pair_sections(rng, n_pairs=40, n_questions=60)
    words, vectors = parallelogram_vocab(rng, pairs, dim=8, noise=0.8, n_distractors=50,
                                         n_variants=20)
    results = [_outcome(evaluate_analogies(vectors, words, sections, chunk_size=size))
               for size in (1, 7, 512, 100_000)]
    assert all(r == results[0] for r in results[1:])


def test_bad_arguments():
    words = list(HAND_WORDS)
    vectors = np.stack([HAND_WORDS[w] for w in words])
    with pytest.raises(ValueError, match="one per word"):
        evaluate_analogies(vectors, words[:-1], [])
    with pytest.raises(ValueError, match=r"\[vocab, dim\]"):
        evaluate_analogies(vectors[0], words[:1], [])
    with pytest.raises(ValueError, match="restrict_vocab"):
        evaluate_analogies(vectors, words, [], restrict_vocab=0)
    with pytest.raises(ValueError, match="chunk_size"):
        evaluate_analogies(vectors, words, [], chunk_size=0)
    with pytest.raises(ValueError, match="unique"):
        evaluate_analogies(vectors, words, [Section("s", ()), Section("s", ())])


# --- against gensim ---------------------------------------------------------------------------

def _have_gensim():
    try:
        import gensim  # noqa: F401
    except ImportError:
        return False
    return True


def gensim_outcomes(vectors, words, path, restrict_vocab, case_insensitive):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=vectors.shape[1])
    kv.add_vectors(list(words), vectors)
    total, sections = kv.evaluate_word_analogies(str(path), restrict_vocab=restrict_vocab,
                                                 case_insensitive=case_insensitive)
    return total, {s["section"]: (s["correct"], s["incorrect"]) for s in sections}


def _keyed_outcomes(result, sections, case_insensitive):
    """Our result in gensim's shape: (total accuracy, {section: (correct, incorrect)})."""
    key = str.upper if case_insensitive else str
    out = {}
    for section in sections:
        keyed = [tuple(key(w) for w in q) for q in section.questions]
        outcomes = result.outcomes[section.name]
        out[section.name] = ([q for q, o in zip(keyed, outcomes, strict=True) if o == 1],
                             [q for q, o in zip(keyed, outcomes, strict=True) if o == 0])
    out["Total accuracy"] = ([q for s in sections for q in out[s.name][0]],
                             [q for s in sections for q in out[s.name][1]])
    return result.total, out


@pytest.mark.parametrize("case_insensitive", [True, False])
def test_agrees_with_gensim_on_questions_words(source_dir, case_insensitive):
    pytest.importorskip("gensim")
    path = source_dir / "questions-words.txt"
    sections = read_questions(path)
    chosen = {"capital-common-countries", "gram3-comparative"}
    pairs = sorted({(q[i].lower(), q[i + 1].lower()) for s in sections if s.name in chosen
                    for q in s.questions for i in (0, 2)})
    rng = np.random.default_rng(2)
    words, vectors = parallelogram_vocab(rng, pairs, dim=24, noise=0.9, n_distractors=0,
                                         n_variants=0)
    # Capitalised variants (Athens after athens, or before it), then distractors up to 2,000.
    extra = [(w.title(), rng.standard_normal(24)) for w in rng.choice(words, 40, replace=False)]
    extra += [(f"d{i}", rng.standard_normal(24)) for i in range(2000 - len(words) - len(extra))]
    order = rng.permutation(2000)
    words = [(words + [w for w, _ in extra])[i] for i in order]
    vectors = np.concatenate([vectors, np.stack([v for _, v in extra])]).astype(np.float32)[order]
    assert len(set(words)) == 2000

    result = evaluate_analogies(vectors, words, sections, restrict_vocab=1500,
                                case_insensitive=case_insensitive)
    ours = _keyed_outcomes(result, sections, case_insensitive)
    theirs = gensim_outcomes(vectors, words, path, 1500, case_insensitive)
    assert ours[1].keys() == theirs[1].keys()
    for name in theirs[1]:
        assert ours[1][name] == theirs[1][name], name
    assert ours[0] == theirs[0]
    assert result.skipped == 19544 - result.total_score.evaluated
    if case_insensitive:  # the structure is found, not perfectly, and some questions skipped
        assert result.sections["capital-common-countries"].correct > 30
        assert result.sections["gram3-comparative"].incorrect > 30
        assert result.sections["gram3-comparative"].skipped > 100
