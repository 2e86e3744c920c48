"""Translates text with an exported seq2seq model: the SavedModel or the `.tflite` file.

    python -m rnnzoo.translate --model=runs/seq2seq/export --text="the quick brown fox"
    python -m rnnzoo.translate --model=runs/seq2seq/export/model.tflite --text="hello world"
    python -m rnnzoo.translate --model=runs/seq2seq/export --text="a b" --beam_width=4

With a SavedModel (a `saved_model/` directory, or an export directory holding one) the whole
decode loop runs inside its `translate` (greedy) or `translate_beam` signature. With a
`.tflite` file, `translate_tflite` below drives its `encode` and `decode_step` signatures,
reading the vocabulary and limits from the `model.json` beside it: it is the reference for how
an app uses the file. Both read a text the same way (`normalize`, `encode_text`): runs of
whitespace become one space, the ends are stripped, a character outside the vocabulary is
`<unk>`; an empty text or one longer than `max_source_length` is an error. Greedy output is the
same from both files (the export checks it).
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
from absl import app, flags

from rnnzoo import flags_util
from rnnzoo.export import contract
from rnnzoo.export.metadata import MetadataError, TranslatorMetadata

FLAGS = flags.FLAGS
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3  # model.json's special_ids
MAX_BEAM_WIDTH = 64  # rnnzoo.export.translator's


class TranslateError(ValueError):
    """A bad request or a missing model; the message names the argument and the value."""


def normalize(text: str, max_source_length: int) -> str:
    """`text` as the model reads it: whitespace runs -> one space, ends stripped; checked."""
    if not isinstance(text, str):
        raise TranslateError(f"`text` must be a string, got {type(text).__name__}")
    normal = " ".join(text.split())
    if not normal:
        raise TranslateError(f"`text` must hold a non-space character, got {text!r}")
    if len(normal) > max_source_length:
        raise TranslateError(f"`text` must be at most {max_source_length} characters long (the "
                             f"model's max_source_length), got {len(normal)}: {normal!r}")
    return normal


def encode_text(vocab: list[str], text: str, *, reverse: bool) -> np.ndarray:
    """int32 `[len(text)]` ids (`<unk>` for a character not in `vocab`), reversed if asked."""
    index = {t: i for i, t in enumerate(vocab) if i > UNK_ID}
    ids = np.array([index.get(c, UNK_ID) for c in text], np.int32)
    return ids[::-1].copy() if reverse else ids


def decode_ids(vocab: list[str], ids, unk_char: str = "\N{REPLACEMENT CHARACTER}") -> str:
    """The text of output ids: up to the first `<eos>`, `<unk>` as `unk_char`, no specials."""
    out = []
    for i in np.asarray(ids).reshape(-1).tolist():
        if i == EOS_ID:
            break
        if i == UNK_ID:
            out.append(unk_char)
        elif i > UNK_ID:
            out.append(vocab[i])
    return "".join(out)


# ------------------------------------------------------------------------------- TFLite


def translate_tflite(interpreter, metadata: TranslatorMetadata, text: str):
    """Greedy translation with `model.tflite`: `(translation, logits [steps, V])`.

    1. Normalise and encode the text (`model.json`'s vocabulary; reversed if
       `reverse_source`), pad it with `<pad>` = 0 to `max_source_length`, run `encode`.
    2. Feed `<bos>`, then each argmax id, to `decode_step` with the state it returns, the
       encoder's `memory` and `memory_mask`, until `<eos>` or `max_output_length` ids.
    """
    text = normalize(text, metadata.max_source_length)
    ids = encode_text(metadata.vocab, text, reverse=metadata.reverse_source)
    source = np.zeros((1, metadata.max_source_length), np.int32)
    source[0, :len(ids)] = ids
    encoded = interpreter.get_signature_runner("encode")(source_ids=source)
    step = interpreter.get_signature_runner("decode_step")
    state, token, out, logits = encoded["state"], BOS_ID, [], []
    for _ in range(metadata.max_output_length):
        result = step(token_ids=np.array([token], np.int32), state=state,
                      memory=encoded["memory"], memory_mask=encoded["memory_mask"])
        state = result["state"]
        logits.append(result["logits"][0])
        token = int(np.argmax(result["logits"][0]))
        out.append(token)
        if token == EOS_ID:
            break
    return decode_ids(metadata.vocab, out, metadata.unk_char), np.stack(logits)


# --------------------------------------------------------------------------- SavedModel


def translate_saved_model(saved_model, texts, *, beam_width: int = 1) -> list[str]:
    """One call of the SavedModel's `translate` (or, with `beam_width > 1`, `translate_beam`)
    for the whole batch."""
    import tensorflow as tf

    if not hasattr(saved_model, "signatures"):
        saved_model = tf.saved_model.load(str(saved_model))
    text = tf.constant(list(texts), tf.string)
    if beam_width == 1:
        out = saved_model.signatures["translate"](text=text)
    else:
        out = saved_model.signatures["translate_beam"](
            text=text, beam_width=tf.constant(beam_width, tf.int32))
    return [t.decode("utf-8") for t in out["translation"].numpy()]


# ---------------------------------------------------------------------------------- CLI


def resolve_model(path) -> tuple[str, pathlib.Path]:
    """`("saved_model" | "tflite", path)` for a SavedModel, an export directory or a .tflite."""
    found = contract.find_exported_model(path)
    if found is not None:
        return found
    path = pathlib.Path(path)
    raise TranslateError(f"--model={path} is neither a SavedModel directory, an export "
                         f"directory holding saved_model/, nor a .tflite file")


def _metadata(directory: pathlib.Path) -> TranslatorMetadata:
    path = directory / contract.METADATA_FILE
    try:
        return TranslatorMetadata.from_json(path.read_text(encoding="utf-8"), source=str(path))
    except FileNotFoundError:
        raise TranslateError(f"{path} is missing: a translator export keeps model.json beside "
                             f"its files") from None
    except MetadataError as e:
        raise TranslateError(str(e)) from None


def translate(model_path, texts, *, beam_width: int = 1) -> list[str]:
    """Checks the request, then translates with whichever exported file `model_path` names."""
    texts = list(texts)
    if not texts:
        raise TranslateError("`text` must hold at least one string, got none")
    if isinstance(beam_width, bool) or not isinstance(beam_width, int) or not (
            1 <= beam_width <= MAX_BEAM_WIDTH):
        raise TranslateError(f"`beam_width` must be between 1 and {MAX_BEAM_WIDTH}, got "
                             f"{beam_width!r}")
    kind, path = resolve_model(model_path)
    metadata = _metadata(path.parent)  # export/model.json, beside saved_model/ and the file
    for t in texts:
        normalize(t, metadata.max_source_length)
    if kind == "tflite":
        if beam_width != 1:
            raise TranslateError(f"--beam_width={beam_width}: beam search runs in the "
                                 f"SavedModel; the .tflite file's loop here is greedy")
        from ai_edge_litert.interpreter import Interpreter

        try:
            interpreter = Interpreter(model_path=str(path))
        except (OSError, ValueError, RuntimeError) as e:
            raise TranslateError(f"cannot load {path}: {e}") from None
        return [translate_tflite(interpreter, metadata, t)[0] for t in texts]
    return translate_saved_model(path, texts, beam_width=beam_width)


def define_flags() -> None:
    flags.DEFINE_string("model", None, "An export directory, its saved_model/, or its "
                        "model.tflite.")
    flags.DEFINE_multi_string("text", None, "Text to translate (repeat the flag for several).")
    flags.DEFINE_integer("beam_width", 1, "1: greedy search; > 1: beam search (SavedModel "
                         "only).")


def main(argv):
    del argv
    try:
        if not FLAGS.model:
            raise TranslateError("--model is required: an export directory, its saved_model/, "
                                 "or its model.tflite")
        for text, out in zip(FLAGS.text or [], translate(FLAGS.model, FLAGS.text or [],
                                                         beam_width=FLAGS.beam_width)):
            print(f"{text} -> {out}")
    except TranslateError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=flags_util.flags_parser("python -m rnnzoo.translate --helpfull"))
