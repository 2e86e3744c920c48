"""How good an exported model is: perplexity on held-out character ids.

    perplexity = exp( -1/(N-1) * sum_t log softmax(logits_t)[ids[t+1]] )

`step_loop_perplexity` reads the ids as ONE stream from a zero state, one `step` call per
character: exactly what a phone running `model.tflite` does, so it is the number to compare
across float / dynamic / float16 files (`tflite_perplexity`). `model_perplexity` is the batched
reading training reports (d2l-zh's consecutive layout): rows carried across windows of
`num_steps`; its number is close to, not equal to, the one-stream number.
"""

from __future__ import annotations

import math

import numpy as np

from rnnzoo.export.runtime import TFLiteStepModel


def _nll(logits: np.ndarray, target: int) -> float:
    """`-log softmax(logits)[target]`, in float64."""
    logits = np.asarray(logits, np.float64)
    top = logits.max()
    return float(top + math.log(np.exp(logits - top).sum()) - logits[target])


def step_loop_perplexity(step, state, ids) -> float:
    """Perplexity of `ids` (int `[N]`, N >= 2) under `step(token_id, state) -> (logits, state)`."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) < 2:
        raise ValueError(f"`ids` must be 1-D with at least 2 ids, got shape {ids.shape}")
    total = 0.0
    for t in range(len(ids) - 1):
        logits, state = step(int(ids[t]), state)
        total += _nll(logits, int(ids[t + 1]))
    mean = total / (len(ids) - 1)
    return math.exp(mean) if mean < 709.0 else math.inf  # never an OverflowError


def tflite_perplexity(tflite, ids, max_chars: int | None = None) -> float:
    """Perplexity of a `.tflite` file (path or bytes) on `ids[:max_chars]`, one step at a time."""
    lm = TFLiteStepModel(tflite)
    ids = np.asarray(ids)[:max_chars] if max_chars else np.asarray(ids)
    return step_loop_perplexity(lm.step, lm.initial_state(), ids)


def model_perplexity(model, ids, *, batch_size: int = 32, num_steps: int = 35) -> float:
    """Perplexity of a `CharLM` on `ids`, read as training reads validation text
    (`rnnzoo.evaluation.perplexity_evaluator`)."""
    from rnnzoo.evaluation import perplexity_evaluator  # TensorFlow: not for the TFLite path.

    return perplexity_evaluator(model, batch_size=batch_size, num_steps=num_steps)(ids)[
        "perplexity"]


def compare_quantizations(model, ids, *, modes=("none", "dynamic", "float16"),
                          max_chars: int | None = None) -> list[dict]:
    """Converts `model`'s step once per quantization mode and measures each file.

    Returns one row per mode: `{"quantize", "bytes", "perplexity", "bytes_ratio",
    "perplexity_ratio"}`, the ratios against the first mode's file (float32 by default),
    measured in the same run on the same `ids[:max_chars]` by `tflite_perplexity`.
    """
    from rnnzoo.export import tflite

    rows = []
    for mode in modes:
        flatbuffer = tflite.convert_step(model, mode)
        rows.append({"quantize": mode, "bytes": len(flatbuffer),
                     "perplexity": tflite_perplexity(flatbuffer, ids, max_chars)})
    for row in rows:
        row["bytes_ratio"] = row["bytes"] / rows[0]["bytes"]
        row["perplexity_ratio"] = row["perplexity"] / rows[0]["perplexity"]
    return rows


def format_table(rows: list[dict], num_chars: int) -> str:
    """A markdown table of `compare_quantizations` rows, ready for the README."""
    lines = [f"| model.tflite | size | vs float | val perplexity ({num_chars:,} chars, step "
             "loop) | vs float |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['quantize']} | {r['bytes'] / 1024:,.1f} KiB | "
                     f"{r['bytes_ratio']:.2f}x | {r['perplexity']:.3f} | "
                     f"{r['perplexity_ratio']:.4f}x |")
    return "\n".join(lines)
