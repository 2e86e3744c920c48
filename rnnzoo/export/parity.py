"""Parity of the three runtimes: the Keras model, the SavedModel and the TFLite file.

Each is fed the same teacher-forced ids from a zero state, one sequence, and returns the logits
of every step, float32 `[time, vocab_size]`: the Keras model through its sequence forward pass
(`model(ids)`, the path training uses), the SavedModel and the TFLite file through their `step`
signature in a loop (the path a server or a phone uses).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from rnnzoo.export import contract
from rnnzoo.export.runtime import TFLiteStepModel

# The largest |logit difference| accepted between float32 runtimes at export time, times
# max(1, largest |logit|): a guard against a broken conversion, not a test of rounding
# (tests/export hold the runtimes to 1e-4).
FLOAT_EXPORT_TOLERANCE = 1e-3


def parity_ids(vocab_size: int, length: int = 100, seed: int = 0) -> np.ndarray:
    """A fixed pseudo-random id sequence, int32 `[length]`."""
    return np.random.default_rng(seed).integers(0, vocab_size, size=length).astype(np.int32)


def keras_logits(model, ids) -> np.ndarray:
    """Logits of `model` on `ids` (`[time]`), through its sequence forward pass."""
    logits, _ = model(tf.constant(np.asarray(ids, np.int32)[None, :]))
    return logits[0].numpy()


def saved_model_logits(saved_model, ids) -> np.ndarray:
    """Logits of a SavedModel (a directory or a loaded object) through its `step` signature."""
    if not hasattr(saved_model, "signatures"):
        saved_model = tf.saved_model.load(str(saved_model))
    step = saved_model.signatures[contract.STEP]
    state = saved_model.signatures[contract.INITIAL_STATE](batch_size=tf.constant(1))["state"]
    out = []
    for token_id in np.asarray(ids, np.int32):
        result = step(token_ids=tf.constant([token_id]), state=state)
        state = result["state"]
        out.append(result["logits"][0].numpy())
    return np.stack(out)


def tflite_logits(tflite, ids) -> np.ndarray:
    """Logits of a `.tflite` file (a path, or the flatbuffer bytes) through its `step` signature."""
    lm = TFLiteStepModel(tflite)
    state = lm.initial_state()
    out = []
    for token_id in np.asarray(ids, np.int32):
        logits, state = lm.step(int(token_id), state)
        out.append(logits)
    return np.stack(out)


@dataclasses.dataclass
class ParityReport:
    """Largest |logit difference| between runtimes over one teacher-forced sequence."""

    num_steps: int
    keras_vs_saved_model: float
    tflite_vs_saved_model: float
    max_abs_logit: float


def compare(model, saved_model, tflite, ids) -> ParityReport:
    """Runs the three runtimes on `ids` and reports their largest logit differences."""
    reference = saved_model_logits(saved_model, ids)
    return ParityReport(
        num_steps=len(ids),
        keras_vs_saved_model=float(np.max(np.abs(keras_logits(model, ids) - reference))),
        tflite_vs_saved_model=float(np.max(np.abs(tflite_logits(tflite, ids) - reference))),
        max_abs_logit=float(np.max(np.abs(reference))))
