"""The fixed contract of an exported model: file names, signature names, limits, state layout.

Everything a caller of an export may rely on is named here once, and used by the exporter, the
readers (`rnnzoo.export.runtime`, `rnnzoo.generate`) and the tests. Pure Python: importing it
needs no TensorFlow.

The recurrent state travels as ONE float32 tensor `[batch, state_size]`: the model's flat state
list concatenated along axis 1, layer by layer from the input upwards; inside a layer an LSTM
puts `h` (the hidden state, the layer's output) before `c` (the memory cell), a GRU or a simple
RNN has `h` only. `state_layout` spells the slices out.
"""

from __future__ import annotations

import pathlib

# Files of an export directory.
SAVED_MODEL_DIR = "saved_model"
TFLITE_FILE = "model.tflite"
METADATA_FILE = "model.json"
# The vocabulary asset inside the SavedModel (saved_model/assets/): one token per line, its UTF-8
# bytes in web-safe base64 without padding (`tf.io.encode_base64`), so that "\n", " " and any
# other character survive a line-based table initialiser.
VOCAB_ASSET = "vocab.tokens.b64"

# Signatures of the SavedModel; the TFLite file has STEP only.
GENERATE = "generate"
STEP = "step"
INITIAL_STATE = "initial_state"
SERVING_DEFAULT = "serving_default"  # the same function as GENERATE
SIGNATURES = (GENERATE, SERVING_DEFAULT, STEP, INITIAL_STATE)

# Limits, checked by the signatures (InvalidArgumentError) and by `rnnzoo.generate` alike.
MAX_NUM_CHARS = 10_000  # the most characters one `generate` call adds after each prefix
MAX_BATCH_SIZE = 65_536  # the largest `initial_state(batch_size)`

# What happens to a prefix character that is not in the vocabulary.
OOV_POLICY = "unk"
OOV_POLICY_TEXT = ("a prefix character that is not in the vocabulary is read as the unknown token "
                   "(id `unk_id`); with a vocabulary that has no unknown token it is an error. "
                   "Generation never chooses the unknown token (its logit is masked), so the "
                   "text after the prefix holds only real characters")

QUANTIZE_MODES = ("none", "dynamic", "float16")

# An export of word vectors (a word2vec run, `rnnzoo.export.word_vectors`): its files beside
# METADATA_FILE and SAVED_MODEL_DIR, and the SavedModel's signatures.
VECTORS_TEXT_FILE = "vectors.txt"  # word2vec.c's text format
VECTORS_BINARY_FILE = "vectors.bin"  # word2vec.c's binary format
PROJECTOR_DIR = "projector"  # TensorBoard's embedding projector: `tensorboard --logdir=` it
PROJECTOR_VECTORS_FILE = "vectors.tsv"
PROJECTOR_METADATA_FILE = "metadata.tsv"
PROJECTOR_CONFIG_FILE = "projector_config.pbtxt"  # the name TensorBoard's projector reads
PROJECTOR_CHECKPOINT = "embedding.ckpt"  # tf.train.Checkpoint(embedding=...).save(...)
PROJECTOR_TENSOR = "embedding/.ATTRIBUTES/VARIABLE_VALUE"  # the checkpointed tensor's name
TSNE_FILE = "tsne.png"  # only with `export.py --tsne`
EMBED = "embed"
NEAREST = "nearest"
WORD_VECTOR_SIGNATURES = (EMBED, SERVING_DEFAULT, NEAREST)  # serving_default is EMBED

# Names of each layer's state tensors, in order, per recurrent cell type.
_STATE_NAMES = {"rnn": ("h",), "gru": ("h",), "lstm": ("h", "c")}


def state_layout(cell: str, num_layers: int, units: int, inputs: str = "chars") -> list[dict]:
    """The slices of the packed state: `[{"layer", "name", "offset", "size"}, ...]` in order.

    Example: a 2-layer LSTM of 32 units packs `[h0 | c0 | h1 | c1]`, 128 floats per row. A
    bigram model (`inputs="bigrams"`) ends with one more float, `prev_char` (layer `None`): the
    id of the last character read, which its next input pairs with (0, `<unk>`, at the start).
    """
    if cell not in _STATE_NAMES:
        raise ValueError(f"`cell` must be one of {sorted(_STATE_NAMES)}, got {cell!r}")
    layout, offset = [], 0
    for layer in range(num_layers):
        for name in _STATE_NAMES[cell]:
            layout.append({"layer": layer, "name": name, "offset": offset, "size": units})
            offset += units
    if inputs == "bigrams":
        layout.append({"layer": None, "name": "prev_char", "offset": offset, "size": 1})
    return layout


def find_exported_model(path) -> tuple[str, pathlib.Path] | None:
    """`("saved_model" | "tflite", path)` for a SavedModel directory, an export directory holding
    `SAVED_MODEL_DIR`, or a `.tflite` file; None for anything else (each CLI says so its way)."""
    path = pathlib.Path(path)
    if path.is_file() and path.suffix == ".tflite":
        return "tflite", path
    if (path / "saved_model.pb").is_file():
        return "saved_model", path
    if (path / SAVED_MODEL_DIR / "saved_model.pb").is_file():
        return "saved_model", path / SAVED_MODEL_DIR
    return None
