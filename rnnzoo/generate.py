"""Continues a prefix with an exported model: the SavedModel or the `.tflite` file.

    python -m rnnzoo.generate --model=runs/lstm/export/saved_model --prefix=分开 --num_chars=50
    python -m rnnzoo.generate --model=runs/lstm/export/model.tflite --prefix=分开 --num_chars=50
    python -m rnnzoo.generate --model=runs/lstm/export --prefix=分开 --prefix=不分开 \\
        --temperature=0.8 --seed=3

With a SavedModel (a `saved_model/` directory, or an export directory holding one) the whole
loop runs inside its `generate` signature. With a `.tflite` file, `generate_tflite` below drives
the `step` signature one character at a time, reading the vocabulary from the `model.json`
beside it: it is the reference for how a phone app uses the file.

Rules shared with the SavedModel's signature: `num_chars` in [0, MAX_NUM_CHARS], `temperature`
a finite number >= 0 (0 = greedy argmax), at least one prefix, no empty prefix; a prefix
character outside the vocabulary reads as the unknown token, which is never generated. Greedy
text is the same from both files; sampled text is reproducible for a seed, but the SavedModel
samples with TensorFlow's stateless random ops and the step loop with NumPy, so the two differ.
"""

from __future__ import annotations

import math
import pathlib
import sys

import numpy as np
from absl import app, flags

from rnnzoo import flags_util
from rnnzoo.export import contract
from rnnzoo.export.metadata import ExportMetadata, MetadataError
from rnnzoo.export.runtime import TFLiteStepModel

FLAGS = flags.FLAGS


class GenerateError(ValueError):
    """A bad request or a missing model; the message says which argument and value."""


def check_request(prefixes, num_chars, temperature, seed=0) -> None:
    """The checks the SavedModel's `generate` signature makes, done before loading anything."""
    if not prefixes:
        raise GenerateError("`prefix` must hold at least one string, got an empty batch")
    if any(not p for p in prefixes):
        raise GenerateError("every `prefix` must be a non-empty string, got an empty one")
    if isinstance(num_chars, bool) or not isinstance(num_chars, (int, np.integer)) or not (
            0 <= num_chars <= contract.MAX_NUM_CHARS):
        raise GenerateError(f"`num_chars` must be between 0 and {contract.MAX_NUM_CHARS}, "
                            f"got {num_chars}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise GenerateError(f"`temperature` must be a finite number >= 0 (0 means greedy), "
                            f"got {temperature}")
    if not -2**31 <= seed < 2**31:
        raise GenerateError(f"`seed` must be a 32-bit integer, got {seed}")


# ------------------------------------------------------------------------------- TFLite


def generate_tflite(lm: TFLiteStepModel, metadata: ExportMetadata, prefix: str, num_chars: int,
                    *, temperature: float = 0.0, seed: int = 0) -> str:
    """d2l's predict_rnn on the TFLite `step`: read the prefix, then feed back each choice.

    1. Encode the prefix with the `model.json` vocabulary, character by character; a character
       outside it becomes `unk_id`.
    2. Start from a zero state `[1, state_size]`; feed each prefix id (teacher forcing), keeping
       only the state, until the last one, whose logits choose the first new character.
    3. Feed each chosen id back, `num_chars - 1` more times.
    A choice is never the unknown token: its logit is set to -inf first.
    """
    check_request([prefix], num_chars, temperature, seed)
    ids = metadata.encode(prefix)
    forbidden = metadata.unk_id  # prefixes may hold <unk>, generated text never does
    rng = np.random.default_rng(seed % 2**32)
    state = lm.initial_state()
    chosen: list[int] = []
    for t in range(len(ids) - 1 + num_chars):
        token_id = ids[t] if t < len(ids) else chosen[-1]
        logits, state = lm.step(token_id, state)
        if t >= len(ids) - 1:
            if forbidden is not None:
                logits = logits.copy()
                logits[forbidden] = -np.inf
            chosen.append(choose(logits, temperature, rng))
    return prefix + metadata.decode(chosen)


def choose(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """Greedy argmax (`temperature == 0`) or a sample from `softmax(logits / temperature)`."""
    if temperature == 0:
        return int(np.argmax(logits))
    scaled = np.asarray(logits, np.float64) / temperature
    p = np.exp(scaled - scaled.max())  # exp(-inf) = 0: a masked token is never drawn
    return int(rng.choice(len(p), p=p / p.sum()))


# --------------------------------------------------------------------------- SavedModel


def generate_saved_model(saved_model, prefixes, num_chars: int, *, temperature: float = 0.0,
                         seed: int = 0) -> list[str]:
    """Calls the SavedModel's `generate` signature once for the whole batch of prefixes."""
    import tensorflow as tf

    if not hasattr(saved_model, "signatures"):
        saved_model = tf.saved_model.load(str(saved_model))
    out = saved_model.signatures[contract.GENERATE](
        prefix=tf.constant(list(prefixes), tf.string), num_chars=tf.constant(num_chars, tf.int32),
        temperature=tf.constant(temperature, tf.float32), seed=tf.constant(seed, tf.int32))
    return [t.decode("utf-8", errors="replace") for t in out["text"].numpy()]


# ---------------------------------------------------------------------------------- CLI


def resolve_model(path) -> tuple[str, pathlib.Path]:
    """`("saved_model" | "tflite", path)` for a SavedModel, an export directory or a .tflite."""
    found = contract.find_exported_model(path)
    if found is not None:
        return found
    path = pathlib.Path(path)
    raise GenerateError(f"--model={path} is neither a SavedModel directory, an export directory "
                        "holding saved_model/, nor a .tflite file")


def generate(model_path, prefixes, num_chars, *, temperature=0.0, seed=0) -> list[str]:
    """Checks the request, then generates with whichever exported file `model_path` names."""
    check_request(prefixes, num_chars, temperature, seed)
    kind, path = resolve_model(model_path)
    if kind == "tflite":
        try:
            metadata = ExportMetadata.load(path.parent / contract.METADATA_FILE)
        except MetadataError as e:
            raise GenerateError(str(e)) from None
        try:
            lm = TFLiteStepModel(path)
        except (OSError, ValueError, RuntimeError) as e:  # LiteRT: not a valid model file
            raise GenerateError(f"cannot load {path}: {e}") from None
        if (lm.vocab_size, lm.state_size) != (metadata.vocab_size, metadata.state_size):
            raise GenerateError(
                f"{path} (vocabulary {lm.vocab_size}, state {lm.state_size}) does not match the "
                f"model.json beside it (vocabulary {metadata.vocab_size}, state "
                f"{metadata.state_size})")
        return [generate_tflite(lm, metadata, p, num_chars, temperature=temperature, seed=seed)
                for p in prefixes]
    import tensorflow as tf

    try:
        saved_model = tf.saved_model.load(str(path))
    except (OSError, ValueError, tf.errors.OpError) as e:
        raise GenerateError(f"cannot load the SavedModel {path}: {e}") from None
    if contract.GENERATE not in getattr(saved_model, "signatures", {}):
        raise GenerateError(f"the SavedModel {path} has no `{contract.GENERATE}` signature: it is "
                            "not an rnnzoo export")
    try:
        return generate_saved_model(saved_model, prefixes, num_chars, temperature=temperature,
                                    seed=seed)
    except tf.errors.InvalidArgumentError as e:
        raise GenerateError(assertion_message(e.message)) from None


def assertion_message(error_text: str) -> str:
    """The message of a failed `tf.debugging.Assert` inside a TensorFlow error's text."""
    marker = "assertion failed: ["
    for line in error_text.splitlines():
        if line.startswith(marker):
            return line[len(marker):].removesuffix("]")
    return error_text


def define_flags() -> None:
    """The CLI's flags (defined only when run as a program: `seed` and `temperature` are also
    training flags)."""
    flags.DEFINE_string("model", None, "An exported model: a SavedModel directory, an export "
                        "directory holding one, or a .tflite file (with model.json beside it).",
                        required=True)
    flags.DEFINE_multi_string("prefix", None, "Text to continue; repeat the flag for a batch.",
                              required=True)
    flags.DEFINE_integer("num_chars", 50, f"Characters to add after each prefix (0 .. "
                         f"{contract.MAX_NUM_CHARS}).")
    flags.DEFINE_float("temperature", 0.0, "0: greedy; > 0: sample from softmax(logits / T).")
    flags.DEFINE_integer("seed", 0, "Seed of the sampling (with --temperature > 0).")


def main(argv):
    del argv  # Only flags: flags_util.flags_parser refuses other arguments.
    try:
        texts = generate(FLAGS.model, FLAGS.prefix, FLAGS.num_chars,
                         temperature=FLAGS.temperature, seed=FLAGS.seed)
    except GenerateError as e:  # Bad input; any other exception is a bug: its traceback shows.
        sys.exit(f"error: {e}")
    for text in texts:
        print(text)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=flags_util.flags_parser("python -m rnnzoo.generate --helpfull"))
