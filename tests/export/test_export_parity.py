"""Keras model vs SavedModel vs TFLite, for every model of the registry: logits and greedy text."""

import json

import numpy as np
import pytest
import tensorflow as tf
from export_registry import EPOCHS, last_report

from rnnzoo import generate
from rnnzoo.export import parity, tflite
from rnnzoo.export.metadata import ExportMetadata
from rnnzoo.export.runtime import TFLiteStepModel
from rnnzoo.models.generation import TextGenerator
from rnnzoo.tasks.char_lm import CharLMConfig

TOLERANCE = 1e-4
NUM_STEPS = 100
GREEDY_CHARS = 200


def test_logits_match_on_teacher_forced_sequence(exports, model_name):
    ex = exports.get(model_name)
    ids = parity.parity_ids(len(ex.vocab), NUM_STEPS, seed=1)
    want = parity.keras_logits(ex.model, ids)
    saved = parity.saved_model_logits(ex.loaded(), ids)
    lite = parity.tflite_logits(ex.tflite_path, ids)
    assert want.shape == saved.shape == lite.shape == (NUM_STEPS, len(ex.vocab))
    assert np.abs(want).max() > 0.1, "logits too flat for a meaningful comparison"
    diffs = {"keras_vs_saved_model": np.abs(want - saved).max(),
             "keras_vs_tflite": np.abs(want - lite).max(),
             "saved_model_vs_tflite": np.abs(saved - lite).max()}
    print(f"{model_name}: max |logit diff| {diffs}")
    assert max(diffs.values()) <= TOLERANCE, diffs


def test_export_rebuilds_the_trained_weights(exports, model_name):
    """The run directory alone gives back every weight training had, recurrent ones included."""
    ex = exports.get(model_name)
    trained = {v.path: v.numpy() for v in ex.model.weights}
    restored = {v.path: v.numpy() for v in ex.restored.weights}
    assert trained.keys() == restored.keys()
    for path, value in trained.items():
        np.testing.assert_array_equal(restored[path], value, err_msg=path)


def test_greedy_text_identical(exports, model_name):
    ex = exports.get(model_name)
    prefix = "分开"
    keras_text = TextGenerator(ex.model, ex.vocab)(prefix, GREEDY_CHARS)
    saved_text = generate.generate_saved_model(ex.loaded(), [prefix], GREEDY_CHARS)[0]
    lite_text = generate.generate_tflite(
        TFLiteStepModel(ex.tflite_path), ExportMetadata.load(ex.path / "model.json"), prefix,
        GREEDY_CHARS)
    assert len(keras_text) == len(prefix) + GREEDY_CHARS
    assert saved_text == keras_text
    assert lite_text == keras_text


def test_tflite_is_builtin_ops_only(exports, model_name, capsys):
    flatbuffer = exports.get(model_name).tflite_path.read_bytes()
    ops = tflite.op_names(flatbuffer)
    assert ops and not [op for op in ops if op.startswith("CUSTOM")], ops
    assert not tflite.VARIABLE_OPS.intersection(ops), ops
    assert tflite.signature_keys(flatbuffer) == ["step"]
    # The flatbuffer analyzer agrees, independently of our own reading of the schema.
    analyzer = getattr(getattr(tf.lite, "experimental", None), "Analyzer", None)
    if analyzer is not None:
        analyzer.analyze(model_content=flatbuffer)
        report = capsys.readouterr().out
        for op in set(ops):
            assert op in report
        for forbidden in ("Flex", "VAR_HANDLE", "READ_VARIABLE", "CALL_ONCE", "CUSTOM"):
            assert forbidden not in report
        assert "Signature#0 key: 'step'" in report


def test_tflite_step_signature_is_batch_one(exports, model_name):
    ex = exports.get(model_name)
    lm = TFLiteStepModel(ex.tflite_path)
    details = lm._runner.get_input_details()
    assert list(details["token_ids"]["shape"]) == [1]
    assert details["token_ids"]["dtype"] == np.int32
    assert list(details["state"]["shape"]) == [1, sum(ex.model.state_sizes)]
    assert details["state"]["dtype"] == np.float32
    assert lm.vocab_size == len(ex.vocab)


def test_model_json(exports, model_name):
    ex = exports.get(model_name)
    raw = json.loads((ex.path / "model.json").read_text(encoding="utf-8"))
    meta = ExportMetadata.load(ex.path / "model.json")
    config = ex.run.read_config(CharLMConfig)
    assert raw["vocab"] == ex.vocab.tokens  # in id order, "\n" and " " included
    assert "\n" in raw["vocab"] and " " in raw["vocab"]
    assert raw["vocab_size"] == len(ex.vocab)
    assert (raw["unk_token"], raw["unk_id"], raw["oov_policy"]) == ("<unk>", 0, "unk")
    assert raw["model"] == config.model and raw["corpus"] == config.corpus
    assert (raw["cell"], raw["inputs"]) == (config.cell, config.inputs)
    assert raw["num_layers"] == config.num_layers and raw["units"] == config.num_hiddens
    assert raw["state_size"] == sum(ex.model.state_sizes)
    per_layer = 2 if config.cell == "lstm" else 1
    recurrent = raw["state_layout"][:per_layer * config.num_layers]
    assert [s["offset"] for s in recurrent] == [
        i * config.num_hiddens for i in range(len(recurrent))]
    extra = raw["state_layout"][len(recurrent):]  # a bigram model's previous character
    assert extra == ([{"layer": None, "name": "prev_char", "offset": len(recurrent) *
                       config.num_hiddens, "size": 1}] if config.inputs == "bigrams" else [])
    assert raw["max_num_chars"] == 10_000
    report = last_report(ex.run)
    assert raw["val_perplexity"] == pytest.approx(report["val_perplexity"], rel=1e-12)
    if config.by_steps:
        assert (raw["step"], raw["checkpoint"]) == (config.train_steps,
                                                    f"ckpt-{config.train_steps}")
    else:
        assert (raw["epoch"], raw["checkpoint"]) == (EPOCHS, f"ckpt-{EPOCHS}")
    assert raw["tflite"]["bytes"] == ex.tflite_path.stat().st_size
    assert raw["tflite"]["max_abs_logit_diff_vs_saved_model"] <= TOLERANCE
    assert meta.decode(meta.encode("分开\n the")) == "分开\n the"


def test_state_layout_matches_the_model(exports):
    """The packed state is the model's flat state list concatenated: h then c, layer by layer."""
    ex = exports.get("lstm_2layer")
    meta = ExportMetadata.load(ex.path / "model.json")
    ids = [3, 1, 4, 1, 5]
    states = ex.model.initial_state(1)
    for i in ids:
        _, states = ex.model.step(tf.constant([i]), states)
    saved = ex.loaded()
    state = saved.signatures["initial_state"](batch_size=tf.constant(1))["state"]
    for i in ids:
        state = saved.signatures["step"](token_ids=tf.constant([i]), state=state)["state"]
    state = state.numpy()[0]
    for piece, want in zip(meta.state_layout, states):
        got = state[piece["offset"]:piece["offset"] + piece["size"]]
        np.testing.assert_allclose(got, want.numpy()[0], atol=1e-6)
    assert [(p["layer"], p["name"]) for p in meta.state_layout] == [
        (0, "h"), (0, "c"), (1, "h"), (1, "c")]
