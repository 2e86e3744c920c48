"""Quantized exports and the perplexity of an exported model on held-out ids."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from export_registry import REPO_ROOT

from rnnzoo.export import parity, quality, tflite
from rnnzoo.export.metadata import ExportMetadata

HELD_OUT = "不分开\n我想就这样 the time traveller 牵着你的手\n分开 for so it will be\n" * 3


def _reference_perplexity(model, ids):
    """exp(mean NLL) from the Keras model's teacher-forced logits, in NumPy."""
    logits = parity.keras_logits(model, ids[:-1]).astype(np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    return math.exp(-log_probs[np.arange(len(ids) - 1), ids[1:]].mean())


@pytest.mark.parametrize("quantize", ["dynamic", "float16"])
def test_quantized_export_is_smaller_and_builtin(exports, quantize):
    plain, small = exports.get("lstm"), exports.get("lstm", quantize)
    flatbuffer = small.tflite_path.read_bytes()
    assert len(flatbuffer) < 0.75 * plain.tflite_path.stat().st_size
    tflite.check_builtin_only(flatbuffer)
    meta = ExportMetadata.load(small.path / "model.json")
    assert meta.quantize == quantize and meta.tflite["bytes"] == len(flatbuffer)
    # The SavedModel stays float; the TFLite logits move by the weights' rounding only.
    ids = parity.parity_ids(len(small.vocab), 100, seed=2)
    want = parity.keras_logits(small.model, ids)
    np.testing.assert_allclose(parity.saved_model_logits(small.loaded(), ids), want, atol=1e-4)
    got = parity.tflite_logits(small.tflite_path, ids)
    assert np.abs(got - want).max() <= 0.05 * max(1.0, np.abs(want).max())


def test_tflite_perplexity_on_held_out_ids(exports):
    ex = exports.get("lstm")
    ids = ex.vocab.encode(list(HELD_OUT))
    want = _reference_perplexity(ex.model, ids)
    assert quality.tflite_perplexity(ex.tflite_path, ids) == pytest.approx(want, rel=1e-5)
    assert quality.tflite_perplexity(ex.tflite_path, ids, max_chars=50) == pytest.approx(
        _reference_perplexity(ex.model, ids[:50]), rel=1e-5)
    for quantize in ("dynamic", "float16"):
        got = quality.tflite_perplexity(exports.get("lstm", quantize).tflite_path, ids)
        assert got == pytest.approx(want, rel=0.05), quantize


def test_batched_perplexity_matches_the_step_loop(exports):
    ex = exports.get("gru")
    ids = ex.vocab.encode(list(HELD_OUT))
    # One row, state carried across full windows: the one-stream computation on those targets.
    scored = (len(ids) - 1) // 16 * 16
    want = _reference_perplexity(ex.model, ids[:scored + 1])
    assert quality.model_perplexity(ex.model, ids, batch_size=1, num_steps=16) == pytest.approx(
        want, rel=1e-5)
    assert quality.model_perplexity(ex.model, ids, batch_size=4, num_steps=8) == pytest.approx(
        want, rel=0.2)
    with pytest.raises(ValueError, match="at least"):
        quality.model_perplexity(ex.model, ids[:10], batch_size=1, num_steps=16)


def test_compare_quantizations_table(exports):
    # LSTM: dynamic-range quantization leaves tensors under 1024 elements in float, which is
    # every weight of the tiny simple RNN.
    ex = exports.get("lstm")
    ids = ex.vocab.encode(list(HELD_OUT))[:80]
    rows = quality.compare_quantizations(ex.model, ids)
    assert [r["quantize"] for r in rows] == ["none", "dynamic", "float16"]
    assert rows[0]["bytes_ratio"] == 1.0 and rows[0]["perplexity_ratio"] == 1.0
    assert all(r["bytes"] < rows[0]["bytes"] for r in rows[1:])
    assert rows[0]["perplexity"] == pytest.approx(_reference_perplexity(ex.model, ids), rel=1e-5)
    table = quality.format_table(rows, len(ids))
    assert table.count("\n") == 4 and "| float16 |" in table


@pytest.mark.slow
def test_export_quality_benchmark_script(exports, tmp_path):
    ex = exports.get("rnn")
    text = tmp_path / "heldout.txt"
    text.write_text(HELD_OUT, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "export_quality.py"),
         f"--workdir={ex.run.path}", f"--text_file={text}", "--max_chars=60"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| dynamic |" in proc.stdout and "| float16 |" in proc.stdout
    assert "val perplexity (60 chars" in proc.stdout
