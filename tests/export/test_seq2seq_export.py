"""A seq2seq run exported as a translator: the SavedModel's signatures against the Keras model,
the TFLite file's loop against the SavedModel, model.json, bad inputs, and the translate CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from rnnzoo import translate, zoo
from rnnzoo.export import contract, exporter, tflite
from rnnzoo.export.metadata import TranslatorMetadata, read_any
from rnnzoo.tasks import seq2seq, seq2seq_export

_RNG = np.random.default_rng(1)
_WORDS = "the quick brown fox jumps over a lazy dog while seven bold kings ride home".split()
TRAIN_TEXT = " ".join(_RNG.choice(_WORDS, 3000))
VAL_TEXT = " ".join(_RNG.choice(_WORDS, 200))
TEXTS = ["the fox", "a  lazy dog ", "kings", "zq#x", "ride home"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny run (2 layers, Bahdanau attention, reversed source: every option the serving
    code branches on), exported once."""
    path = tmp_path_factory.mktemp("s2s_export") / "run"
    config = zoo.make_config(
        "seq2seq", max_length=10, buckets="10:11", embedding_dim=8, num_hiddens=16,
        num_layers=2, attention="bahdanau", reverse_source=True, batch_size=16,
        train_steps=30, pred_period=30, checkpoint_every=30, val_pairs=10, samples=("a",))
    data = seq2seq.make_data(config, TRAIN_TEXT, VAL_TEXT)
    result = seq2seq.train(config, path, data=data, log=lambda *_: None)
    export = zoo.export_run(path, log=lambda *_: None)
    return path, result, export


def _keras_greedy(result, texts, config):
    ids = seq2seq.source_ids([" ".join(t.split()) for t in texts], result.data.vocab,
                             reverse=config.reverse_source)
    out = seq2seq.greedy_translator(result.model, config)(tf.constant(ids)).numpy()
    return [result.data.vocab.decode(row) for row in out]


def test_files_and_model_json(exported):
    path, result, export = exported
    out = path / "export"
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.tflite",
                                                     "saved_model"]
    meta = read_any((out / "model.json").read_text(), source="model.json")
    assert isinstance(meta, TranslatorMetadata)
    assert meta.vocab == result.data.vocab.tokens
    assert meta.special_ids == {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3}
    assert (meta.max_source_length, meta.max_output_length) == (10, 11)
    assert meta.reverse_source and meta.attention == "bahdanau"
    assert meta.state_size == 2 * 2 * 16
    assert [(d["layer"], d["name"], d["offset"]) for d in meta.state_layout] == [
        (0, "h", 0), (0, "c", 16), (1, "h", 32), (1, "c", 48)]
    assert meta.metrics["step"] == 30 and "val_sequence_accuracy" in meta.metrics
    assert set(meta.files) >= {"model.json", "model.tflite", "saved_model/"}
    assert meta.tflite["max_abs_logit_diff_vs_saved_model"] < 1e-4


def test_tflite_is_builtin_only_with_two_signatures(exported):
    flatbuffer = (exported[0] / "export" / "model.tflite").read_bytes()
    tflite.check_builtin_only(flatbuffer, ["encode", "decode_step"])
    ops = tflite.op_names(flatbuffer)
    assert not [op for op in ops if "WHILE" in op or op.startswith("CUSTOM")], ops


def test_saved_model_translates_as_the_keras_model(exported):
    path, result, _ = exported
    config = result.run.read_config(seq2seq.Seq2SeqConfig)
    loaded = tf.saved_model.load(str(path / "export" / "saved_model"))
    got = [t.decode() for t in loaded.translate(tf.constant(TEXTS))["translation"].numpy()]
    assert got == _keras_greedy(result, TEXTS, config)
    assert any(got), got  # the outputs are not all empty, so the comparison means something
    default = loaded.signatures["serving_default"](text=tf.constant(TEXTS))["translation"]
    assert [t.decode() for t in default.numpy()] == got
    beam1 = loaded.translate_beam(tf.constant(TEXTS), tf.constant(1))
    assert [t.decode() for t in beam1["translation"].numpy()] == got
    beam4 = loaded.translate_beam(tf.constant(TEXTS), tf.constant(4))
    assert (beam4["score"].numpy() >= beam1["score"].numpy() - 1e-4).all()


def test_unknown_characters_read_as_unk(exported):
    """'#' is not in the vocabulary: the text reads as if it held <unk> there."""
    path, result, _ = exported
    vocab = result.data.vocab
    assert vocab.encode("#").tolist() == [3]
    loaded = tf.saved_model.load(str(path / "export" / "saved_model"))
    a = loaded.translate(tf.constant(["zq#x"]))["translation"].numpy()[0]
    b = loaded.translate(tf.constant(["zq\u00e9x"]))["translation"].numpy()[0]
    assert a == b


def test_encode_and_decode_step_drive_the_keras_maths(exported):
    path, result, _ = exported
    model = result.model
    loaded = tf.saved_model.load(str(path / "export" / "saved_model"))
    ids = tf.constant([[5, 6, 7, 0], [8, 4, 0, 0]], tf.int32)
    enc = loaded.encode(source_ids=ids)
    memory, mask, states = model.encode(ids)
    np.testing.assert_allclose(enc["memory"].numpy(), memory.numpy(), atol=1e-6)
    np.testing.assert_allclose(enc["state"].numpy(), tf.concat(states, 1).numpy(), atol=1e-6)
    np.testing.assert_array_equal(enc["memory_mask"].numpy(), mask.numpy().astype(np.float32))
    step = loaded.decode_step(token_ids=tf.constant([1, 1]), state=enc["state"],
                              memory=enc["memory"], memory_mask=enc["memory_mask"])
    logits, _ = model.decode_step(tf.constant([1, 1]), states, memory, mask)
    np.testing.assert_allclose(step["logits"].numpy(), logits.numpy(), atol=1e-5)


def test_tflite_loop_translates_as_the_saved_model(exported):
    from ai_edge_litert.interpreter import Interpreter

    out = exported[0] / "export"
    meta = TranslatorMetadata.from_json((out / "model.json").read_text())
    interpreter = Interpreter(model_path=str(out / "model.tflite"))
    lite = [translate.translate_tflite(interpreter, meta, t)[0] for t in TEXTS]
    assert lite == translate.translate(out, TEXTS)
    assert translate.translate(out / "model.tflite", TEXTS) == lite


@pytest.mark.parametrize("call, message", [
    (lambda m: m.translate(tf.constant([""])), "must hold a non-space character"),
    (lambda m: m.translate(tf.constant(["   "])), "must hold a non-space character"),
    (lambda m: m.translate(tf.constant(["the quick brown fox"])),
     "must be at most 10 characters long"),
    (lambda m: m.translate(tf.constant("the fox")), "`text` must have shape"),
    (lambda m: m.translate_beam(tf.constant(["a"]), tf.constant(0)),
     "`beam_width` must be between 1 and 64, got 0"),
    (lambda m: m.translate_beam(tf.constant(["a"]), tf.constant(65)),
     "`beam_width` must be between 1 and 64"),
    (lambda m: m.encode(source_ids=tf.constant([[5, 99]])), "`source_ids` must be in"),
    (lambda m: m.encode(source_ids=tf.constant([5, 6])), "must have shape \\[batch, length\\]"),
    (lambda m: m.encode(source_ids=tf.zeros([1, 11], tf.int32)), "1 to 10 columns"),
])
def test_bad_inputs_are_clear_errors(exported, call, message):
    loaded = tf.saved_model.load(str(exported[0] / "export" / "saved_model"))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        call(loaded)


@pytest.mark.parametrize("kwargs, message", [
    (dict(compute_val_perplexity=True), "--compute_val_perplexity is a character LM's"),
    (dict(tsne=True), "--tsne maps the word vectors"),
    (dict(quantize="int4"), "`quantize` must be one of"),
])
def test_other_tasks_export_flags_are_refused(exported, tmp_path, kwargs, message):
    with pytest.raises(exporter.ExportError, match=message):
        zoo.export_run(exported[0], tmp_path / "out", log=lambda *_: None, **kwargs)
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_directory_it_did_not_write(exported, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(exporter.ExportError):
        zoo.export_run(exported[0], tmp_path / "out", log=lambda *_: None)
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_translate_cli(exported):
    out = exported[0] / "export"
    expected = translate.translate(out, ["the fox"])[0]
    for model in (out, out / "model.tflite"):
        proc = subprocess.run(
            [sys.executable, "-m", "rnnzoo.translate", f"--model={model}", "--text=the fox"],
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip().splitlines()[-1] == f"the fox -> {expected}"
    # One request refused once the model is read (tests/test_cli_bad_inputs.py has the rest).
    proc = subprocess.run([sys.executable, "-m", "rnnzoo.translate", f"--model={out}",
                           "--text=the quick brown fox"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1 and "at most 10 characters" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_translate_request_errors(exported):
    out = exported[0] / "export"
    with pytest.raises(translate.TranslateError, match="at least one string"):
        translate.translate(out, [])
    with pytest.raises(translate.TranslateError, match="`beam_width` must be between 1 and 64"):
        translate.translate(out, ["a"], beam_width=0)
    with pytest.raises(translate.TranslateError, match="beam search runs in the SavedModel"):
        translate.translate(out / "model.tflite", ["a"], beam_width=3)
    with pytest.raises(translate.TranslateError, match="must hold a non-space character"):
        translate.translate(out / "model.tflite", ["  "])
    with pytest.raises(translate.TranslateError, match="is neither a SavedModel directory"):
        translate.translate(out / "model.json", ["a"])


def test_model_json_round_trip(exported):
    text = (exported[0] / "export" / contract.METADATA_FILE).read_text()
    meta = TranslatorMetadata.from_json(text)
    assert json.loads(meta.to_json()) == json.loads(text)
    assert seq2seq_export.TEXT_POLICY == meta.text_policy
