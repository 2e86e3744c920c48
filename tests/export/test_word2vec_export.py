"""Export of word2vec runs: vectors.txt / vectors.bin (read back by gensim and by hand), the
TensorBoard projector files, the SavedModel's `embed` and `nearest` (without rnnzoo, against
`nearest_words` and NumPy, with bad inputs), the `<unk>` row, atomic replacement and t-SNE.

Two tiny runs are trained once per module by the real task code (`word2vec.train`): the
course's skip-gram (steps, `<unk>` trained on the words the vocabulary cut) and word2vec.c's
CBOW (epochs, `drop_unknown`: no trained `<unk>`). Not in `export_registry.ZOO_ENTRIES`: that
harness trains character LMs (`CharData`, perplexity metrics) and checks TFLite files, which a
word2vec export does not have.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo import plot, zoo
from rnnzoo.data.tokenize import word_tokens
from rnnzoo.data.vocab import WordVocabulary
from rnnzoo.export import contract
from rnnzoo.export.exporter import ExportError
from rnnzoo.export.metadata import WordVectorsMetadata
from rnnzoo.tasks import word2vec, word2vec_export

# 30 words with Zipf frequencies: the vocabularies below cut the rarest.
_RNG = np.random.default_rng(0)
_WORDS = [f"w{i}" for i in range(30)]
_P = 1.0 / np.arange(1, 31)
TEXT = " ".join(_RNG.choice(_WORDS, 1200, p=_P / _P.sum()))

TINY = dict(embedding_dim=8, num_sampled=4, nearest=("w1",), batch_size=16, seed=3)
RUNS = {
    # The course: a stream in steps; 20 words kept, the rest read as <unk>.
    "skipgram": ("skipgram", dict(train_steps=20, pred_period=10, checkpoint_every=10,
                                  vocab_max_size=20)),
    # word2vec.c: epochs, negative sampling, words seen < 15 times dropped.
    "cbow": ("cbow", dict(
        pairs="word2vec", train_steps=0, num_epochs=2, pred_period=1, checkpoint_every=1,
        loss="negative", sampler="unigram", optimizer="sgd", lr=0.5, window=2, sample=0.0,
        init="word2vec", sentence_length=0, combine="mean", vocab_max_size=0,
        vocab_min_count=15, drop_unknown=True)),
}


def _train(path, name):
    model, fields = RUNS[name]
    config = zoo.make_config(model, **{**TINY, **fields})
    words = word_tokens(TEXT)
    vocab = WordVocabulary.build(words, max_size=config.vocab_max_size or None,
                                 min_count=config.vocab_min_count)
    ids = vocab.encode(words, oov="skip" if config.drop_unknown else "unk").astype(np.int32)
    data = word2vec.WordData(vocab=vocab, ids=ids, questions=None)
    return word2vec.train(config, path, data=data, log=lambda *_: None)


class Exported:
    def __init__(self, root, name):
        self.name = name
        self.trained = _train(root / name, name)
        self.run = self.trained.run
        self.output = root / f"{name}-export"
        self.result = zoo.export_run(self.run.path, self.output, log=lambda *_: None)
        self.metadata = WordVectorsMetadata.from_json(
            (self.output / contract.METADATA_FILE).read_text(encoding="utf-8"))
        self.run_vocab = self.trained.data.vocab
        # What the files must hold: the run's rows, less <unk> where the run never trained it.
        embeddings = self.trained.model.embeddings.numpy()
        if name == "cbow":
            self.tokens = list(self.run_vocab.tokens[1:])
            self.vectors = embeddings[1:]
        else:
            self.tokens = list(self.run_vocab.tokens)
            self.vectors = embeddings
        self._loaded = None

    def loaded(self):
        if self._loaded is None:
            self._loaded = tf.saved_model.load(str(self.output / contract.SAVED_MODEL_DIR))
        return self._loaded


@pytest.fixture(scope="module")
def w2v_exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("word2vec-exports")
    return {name: Exported(root, name) for name in RUNS}


@pytest.fixture(params=sorted(RUNS))
def ex(request, w2v_exports):
    return w2v_exports[request.param]


# ------------------------------------------------------------------------- the run, the files


def test_the_checkpoint_restores_every_weight(ex):
    restored = word2vec_export.load_trained(ex.run.path).model
    assert len(restored.weights) == len(ex.trained.model.weights) == 3
    for a, b in zip(ex.trained.model.weights, restored.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_the_export_records_its_files_and_the_unk_row(ex):
    m = ex.metadata
    found = sorted(
        os.path.relpath(os.path.join(d, f), ex.output).replace(os.sep, "/") + suffix
        for d, dirs, files in os.walk(ex.output) for f, suffix in
        [*((f, "") for f in files), *((x, "/") for x in dirs)])
    assert m.files == found
    assert {contract.VECTORS_TEXT_FILE, contract.VECTORS_BINARY_FILE, "projector/",
            "saved_model/", contract.METADATA_FILE} <= set(m.files)
    assert contract.TSNE_FILE not in m.files  # only with tsne=True
    assert (m.vocab_size, m.embedding_dim) == (len(ex.tokens), 8)
    assert m.model == m.architecture == ex.name
    if ex.name == "skipgram":  # <unk> stood for the cut words: trained, kept
        assert (m.unk_token, m.unk_id, m.nearest_max_k) == ("<unk>", 0, len(ex.tokens) - 2)
        assert m.unk_row.startswith("kept") and (m.step, m.epoch) == (20, None)
        assert m.metrics["step"] == 20 and "loss" in m.metrics
    else:  # drop_unknown: <unk> never trained, left out
        assert (m.unk_token, m.unk_id, m.nearest_max_k) == (None, None, len(ex.tokens) - 1)
        assert m.unk_row.startswith("left out") and (m.step, m.epoch) == (None, 2)
        assert "<unk>" not in ex.tokens and ex.run_vocab.unk_id == 0


def _read_binary(path):
    """word2vec.c's binary format, read by hand: `V D\\n`, then word, space, D <f4, "\\n"."""
    data = path.read_bytes()
    header, _, rest = data.partition(b"\n")
    count, dim = map(int, header.split())
    words, rows, pos = [], [], 0
    for _ in range(count):
        space = rest.index(b" ", pos)
        words.append(rest[pos:space].decode("utf-8"))
        rows.append(np.frombuffer(rest, "<f4", dim, space + 1))
        pos = space + 1 + 4 * dim
        assert rest[pos:pos + 1] == b"\n"
        pos += 1
    assert pos == len(rest)
    return words, np.array(rows)


def test_vector_files_hold_every_row_exactly(ex):
    words, rows = _read_binary(ex.output / contract.VECTORS_BINARY_FILE)
    assert words == ex.tokens
    np.testing.assert_array_equal(rows, ex.vectors)
    lines = (ex.output / contract.VECTORS_TEXT_FILE).read_text(encoding="utf-8").splitlines()
    assert lines[0] == f"{len(ex.tokens)} 8"
    assert [line.split(" ")[0] for line in lines[1:]] == ex.tokens
    text_rows = np.array([[np.float32(x) for x in line.split(" ")[1:]] for line in lines[1:]])
    np.testing.assert_array_equal(text_rows, ex.vectors)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_gensim_loads_both_formats(ex, binary):
    gensim_models = pytest.importorskip("gensim.models")
    name = contract.VECTORS_BINARY_FILE if binary else contract.VECTORS_TEXT_FILE
    kv = gensim_models.KeyedVectors.load_word2vec_format(str(ex.output / name), binary=binary)
    assert list(kv.index_to_key) == ex.tokens
    np.testing.assert_array_equal(kv.vectors, ex.vectors)


def test_projector_files(ex):
    from google.protobuf import text_format
    from tensorboard.plugins import projector

    directory = ex.output / contract.PROJECTOR_DIR
    config = text_format.Parse(
        (directory / contract.PROJECTOR_CONFIG_FILE).read_text(encoding="utf-8"),
        projector.ProjectorConfig())
    (embedding,) = config.embeddings
    assert embedding.tensor_name == contract.PROJECTOR_TENSOR
    assert embedding.metadata_path == contract.PROJECTOR_METADATA_FILE
    assert not config.model_checkpoint_path  # the projector finds the checkpoint, relatively
    checkpoint = tf.train.latest_checkpoint(str(directory))
    assert checkpoint and "/" not in (directory / "checkpoint").read_text().split('"')[1]
    reader = tf.train.load_checkpoint(checkpoint)
    np.testing.assert_array_equal(reader.get_tensor(embedding.tensor_name), ex.vectors)
    tsv = (directory / contract.PROJECTOR_VECTORS_FILE).read_text(encoding="utf-8")
    np.testing.assert_array_equal(
        np.array([[np.float32(x) for x in line.split("\t")] for line in tsv.splitlines()]),
        ex.vectors)
    metadata = (directory / contract.PROJECTOR_METADATA_FILE).read_text(encoding="utf-8")
    rows = [line.split("\t") for line in metadata.splitlines()]
    assert rows[0] == ["word", "count"]  # two columns: a header, as the projector expects
    assert [w for w, _ in rows[1:]] == ex.tokens
    assert [int(c) for _, c in rows[1:]] == [ex.run_vocab.count(w) for w in ex.tokens]


# ------------------------------------------------------------------------- the SavedModel


def test_embed_gives_the_rows_and_handles_unknown_words(ex):
    loaded = ex.loaded()
    words = [ex.tokens[3], "no-such-word", ex.tokens[1], "<unk>"]
    got = loaded.embed(tf.constant(words))["vectors"].numpy()
    default = loaded.signatures["serving_default"](words=tf.constant(words))["vectors"].numpy()
    np.testing.assert_array_equal(got, default)
    np.testing.assert_array_equal(got[0], ex.vectors[3])
    np.testing.assert_array_equal(got[2], ex.vectors[1])
    if ex.name == "skipgram":  # an unknown word reads as <unk>
        np.testing.assert_array_equal(got[1], ex.vectors[0])
        np.testing.assert_array_equal(got[3], ex.vectors[0])
    else:  # no <unk> row: a zero vector, "<unk>" included
        np.testing.assert_array_equal(got[[1, 3]], np.zeros((2, 8), np.float32))
    assert loaded.embed(tf.constant([], tf.string))["vectors"].shape == (0, 8)


def _numpy_nearest(vectors, tokens, word, k, excluded):
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
    scores = unit @ unit[tokens.index(word)]
    order = [i for i in np.argsort(-scores, kind="stable")
             if tokens[i] != word and tokens[i] not in excluded]
    return [tokens[i] for i in order[:k]], scores[order[:k]]


def test_nearest_is_nearest_words_and_numpy(ex):
    k = ex.metadata.nearest_max_k
    queries = [w for w in ex.tokens if w != "<unk>"][:6]
    got = ex.loaded().nearest(tf.constant(queries), tf.constant(k))
    words = [[w.decode() for w in row] for row in got["words"].numpy()]
    similarities = got["similarities"].numpy()
    assert similarities.shape == (len(queries), k)
    want = word2vec.nearest_words(ex.trained.model, ex.run_vocab, queries, k=k)
    for i, query in enumerate(queries):
        assert words[i] == want[query], query
        np_words, np_scores = _numpy_nearest(ex.vectors, ex.tokens, query, k, {"<unk>"})
        assert words[i] == np_words
        np.testing.assert_allclose(similarities[i], np_scores, atol=1e-6)
        assert np.all(np.diff(similarities[i]) <= 0)
        assert query not in words[i] and "<unk>" not in words[i]
    # A smaller k is the head of the list.
    head = ex.loaded().nearest(tf.constant(queries[:1]), tf.constant(2))["words"].numpy()
    assert [w.decode() for w in head[0]] == words[0][:2]


def test_bad_inputs_are_clear_errors(w2v_exports):
    loaded = w2v_exports["skipgram"].loaded()
    max_k = w2v_exports["skipgram"].metadata.nearest_max_k
    with pytest.raises((TypeError, ValueError)) as info:
        loaded.embed(tf.constant([1, 2]))
    assert "string" in str(info.value)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a string tensor"):
        loaded.signatures["embed"](words=tf.constant([1]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`words` must have shape \[batch\]"):
        loaded.embed(tf.constant([["w1"]]))
    for k in (0, max_k + 1, -3):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=rf"`k` must be between 1 and {max_k} .*got {k}"):
            loaded.nearest(tf.constant(["w1"]), tf.constant(k))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`k` must have shape \[\]"):
        loaded.nearest(tf.constant(["w1"]), tf.constant([3]))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="every `word` must be in the vocabulary, got.*zzz"):
        loaded.nearest(tf.constant(["w1", "zzz"]), tf.constant(2))
    with pytest.raises((TypeError, ValueError)) as info:
        loaded.nearest(tf.constant(["w1"]), tf.constant(2.5))
    assert "int32" in str(info.value)


_NO_RNNZOO = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    embed = model.signatures["embed"](words=tf.constant(["w1", "w2", "nope"]))["vectors"]
    default = model.signatures["serving_default"](words=tf.constant(["w1"]))["vectors"]
    near = model.signatures["nearest"](word=tf.constant(["w1"]), k=tf.constant(3))
    assert "rnnzoo" not in sys.modules, sorted(m for m in sys.modules if "rnnzoo" in m)
    print(json.dumps({"embed": embed.numpy().tolist(), "default": default.numpy().tolist(),
                      "words": [w.decode() for w in near["words"].numpy()[0]],
                      "similarities": near["similarities"].numpy()[0].tolist()}))
""")


def test_saved_model_runs_in_a_process_that_never_imports_rnnzoo(w2v_exports, tmp_path):
    ex = w2v_exports["skipgram"]
    copy = tmp_path / "copy"  # elsewhere: nothing may point back into the run or the package
    shutil.copytree(ex.output / contract.SAVED_MODEL_DIR, copy)
    proc = subprocess.run([sys.executable, "-c", _NO_RNNZOO, str(copy)], capture_output=True,
                          text=True, timeout=180, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    ids = [ex.tokens.index(w) for w in ("w1", "w2")] + [0]  # "nope" is <unk>
    np.testing.assert_array_equal(np.float32(got["embed"]), ex.vectors[ids])
    assert got["default"] == got["embed"][:1]
    assert got["words"] == word2vec.nearest_words(ex.trained.model, ex.run_vocab, ["w1"], 3)["w1"]
    assert len(got["similarities"]) == 3


# ------------------------------------------------------------------------- export.py's rules


def test_char_lm_flags_are_refused_before_anything_is_written(w2v_exports, tmp_path):
    run = w2v_exports["skipgram"].run.path
    with pytest.raises(ExportError, match="--quantize=dynamic .* no TFLite file"):
        zoo.export_run(run, tmp_path / "out", quantize="dynamic", log=lambda *_: None)
    with pytest.raises(ExportError, match="--compute_val_perplexity"):
        zoo.export_run(run, tmp_path / "out", compute_val_perplexity=True, log=lambda *_: None)
    assert not os.listdir(tmp_path)


def test_reexport_with_tsne_replaces_the_export_and_refuses_foreign_files(w2v_exports, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    ex = w2v_exports["cbow"]
    output = tmp_path / "export"
    shutil.copytree(ex.output, output)
    result = zoo.export_run(ex.run.path, output, tsne=True, log=lambda *_: None)
    assert contract.TSNE_FILE in result.metadata.files
    assert (output / contract.TSNE_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no staging left
    (output / "notes.txt").write_text("mine\n")
    with pytest.raises(ExportError, match="holds files that rnnzoo did not write: notes.txt"):
        zoo.export_run(ex.run.path, output, log=lambda *_: None)
    assert (output / "notes.txt").read_text() == "mine\n"
    assert (output / contract.TSNE_FILE).exists()  # the export it refused to replace is intact


def test_a_damaged_word_vectors_model_json_is_not_replaced(w2v_exports, tmp_path):
    ex = w2v_exports["skipgram"]
    output = tmp_path / "export"
    shutil.copytree(ex.output, output)
    metadata = json.loads((output / contract.METADATA_FILE).read_text(encoding="utf-8"))
    (output / contract.METADATA_FILE).write_text(json.dumps({**metadata, "version": 2}))
    with pytest.raises(ExportError, match="not an rnnzoo export .*has version 2"):
        zoo.export_run(ex.run.path, output, log=lambda *_: None)
    assert json.loads((output / contract.METADATA_FILE).read_text())["version"] == 2


def test_a_character_lm_export_cannot_draw_tsne(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"task": "char_lm", "model": "lstm"}\n')
    with pytest.raises(ExportError, match="--tsne maps the word vectors of a word2vec run"):
        zoo.export_run(run, tmp_path / "out", tsne=True, log=lambda *_: None)


# ------------------------------------------------------------------------- t-SNE


def test_plot_word_map_draws_the_frequent_words(w2v_exports, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    ex = w2v_exports["skipgram"]
    assert plot.frequent_ids(ex.run_vocab, 500) == sorted(
        range(1, len(ex.run_vocab)), key=lambda i: (-ex.run_vocab.counts[i], i))  # no <unk>
    assert plot.frequent_ids(ex.run_vocab, 3) == plot.frequent_ids(ex.run_vocab, 500)[:3]
    out = tmp_path / "maps" / "words.png"
    assert plot.plot_word_map(ex.run.path, out) == out  # 19 words: fewer than 500
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(out.parent)) == ["words.png"]


def test_plot_word_map_errors(tmp_path):
    with pytest.raises(plot.PlotError, match="no such run directory"):
        plot.plot_word_map(tmp_path / "missing", tmp_path / "x.png")
    run = tmp_path / "lstm"
    run.mkdir()
    (run / "config.json").write_text('{"task": "char_lm", "model": "lstm"}\n')
    with pytest.raises(plot.PlotError, match="--tsne draws a trained word2vec run: .*'char_lm'"):
        plot.plot_word_map(run, tmp_path / "x.png")
    with pytest.raises(plot.PlotError, match="at least 3 words, got 2"):
        plot.tsne_points(np.zeros((2, 4)))
    assert not (tmp_path / "x.png").exists()


def test_missing_scikit_learn_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(plot.PlotError, match=r'scikit-learn is not installed; install it with '
                                             r'pip install -e "\.\[plot\]"'):
        plot.tsne_points(np.zeros((5, 4)))
