"""`model.json`: what a runtime needs beside the graph (vocabulary, state layout, limits, quality).

A phone app reads it next to `model.tflite`: the vocabulary in id order to encode a prefix and
decode ids, `unk_id` for characters outside it, `state_size` to allocate the state. JSON escapes
control characters, so tokens such as "\\n" and " " round-trip exactly. Pure Python.

Three kinds of export write one: a character LM's (`ExportMetadata`, `"format":
"rnnzoo.export"`), a word2vec run's word vectors (`WordVectorsMetadata`, `"format":
"rnnzoo.word_vectors"`) and a seq2seq translator's (`TranslatorMetadata`, `"format":
"rnnzoo.translator"`); `read_any` reads any of them.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, ClassVar

from rnnzoo.data.vocab import Vocabulary
from rnnzoo.export import contract

FORMAT = "rnnzoo.export"
VERSION = 1


class MetadataError(ValueError):
    """`model.json` is missing, not an rnnzoo export's, or inconsistent."""


class _JsonRecord:
    """`to_json` / `from_json` of a metadata dataclass whose file says `FORMAT_NAME`."""

    FORMAT_NAME: ClassVar[str]

    def to_json(self) -> str:
        payload = {"format": self.FORMAT_NAME, "version": VERSION, **dataclasses.asdict(self)}
        return json.dumps(payload, ensure_ascii=False, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "model.json"):
        data = _parse(text, source, cls.FORMAT_NAME)
        fields = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in fields})
        except TypeError as e:
            raise MetadataError(f"{source}: {e}") from None


@dataclasses.dataclass
class ExportMetadata(_JsonRecord):
    """The content of `model.json`.

    Fields:
        model: the zoo entry (`rnnzoo.zoo.MODELS`); cell, inputs, impl, num_layers, units,
            embedding_dim: the architecture (`CharLMConfig` fields; exports older than `cell`
            named the cell in `model`).
        corpus: the TFDS name/config the model was trained on.
        vocab: the tokens in id order. vocab_size: `len(vocab)`.
        unk_token, unk_id: the unknown token and its id (None for a closed vocabulary).
        oov_policy, oov_policy_text: what an out-of-vocabulary prefix character becomes.
        state_size: width of the packed state; state_layout: its slices (`contract.state_layout`).
        max_num_chars, max_batch_size: the limits the signatures enforce.
        val_perplexity: validation perplexity of the exported checkpoint (None when unknown);
            val_perplexity_source says where it comes from.
        checkpoint, epoch, step: which checkpoint was exported, and its training epoch or step
            if known.
        quantize: the TFLite weights' quantization ("none", "dynamic", "float16").
        tflite: file name, signature, batch size, tensor names, size in bytes, and the largest
            logit difference from the SavedModel measured at export time.
        saved_model: directory name and signature names.
        files: every file and directory the export wrote, relative to the export directory, in
            POSIX form, directories ending in "/" (`model.json` included; None in exports
            written before it was recorded). A new export replaces an old one only if the old
            one holds nothing else (`rnnzoo.export.exporter`).
    """

    FORMAT_NAME: ClassVar[str] = FORMAT

    model: str
    impl: str
    num_layers: int
    units: int
    embedding_dim: int
    corpus: str | None
    vocab: list[str]
    vocab_size: int
    unk_token: str | None
    unk_id: int | None
    state_size: int
    state_layout: list[dict]
    val_perplexity: float | None = None
    val_perplexity_source: str | None = None
    checkpoint: str | None = None
    epoch: int | None = None
    step: int | None = None
    cell: str | None = None
    inputs: str = "chars"
    quantize: str = "none"
    tflite: dict[str, Any] = dataclasses.field(default_factory=dict)
    saved_model: dict[str, Any] = dataclasses.field(default_factory=dict)
    oov_policy: str = contract.OOV_POLICY
    oov_policy_text: str = contract.OOV_POLICY_TEXT
    max_num_chars: int = contract.MAX_NUM_CHARS
    max_batch_size: int = contract.MAX_BATCH_SIZE
    files: list[str] | None = None

    def __post_init__(self):
        if self.vocab_size != len(self.vocab):
            raise MetadataError(f"`vocab_size` is {self.vocab_size} but `vocab` holds "
                                f"{len(self.vocab)} tokens")
        if self.state_size != sum(s["size"] for s in self.state_layout):
            raise MetadataError(f"`state_size` {self.state_size} does not match "
                                f"`state_layout` {self.state_layout}")
        if self.unk_id is not None and self.vocab[self.unk_id] != self.unk_token:
            raise MetadataError(f"`unk_id` {self.unk_id} is not the unknown token "
                                f"{self.unk_token!r}")
        try:  # The vocabulary itself, with its unknown-token policy (NumPy only, no TF).
            self._vocabulary = Vocabulary(
                self.vocab, unk_token=self.unk_token if self.unk_id is not None else None)
        except ValueError as e:
            raise MetadataError(f"`vocab` is not a valid rnnzoo vocabulary: {e}") from e

    @classmethod
    def load(cls, path) -> ExportMetadata:
        path = pathlib.Path(path)
        if not path.is_file():
            raise MetadataError(f"{path} does not exist; an rnnzoo export keeps "
                                f"{contract.METADATA_FILE} beside {contract.TFLITE_FILE}")
        return cls.from_json(path.read_text(encoding="utf-8"), source=str(path))

    def encode(self, text: str) -> list[int]:
        """`text`, character by character, as ids; OOV characters follow `oov_policy`."""
        return self._vocabulary.encode(list(text)).tolist()

    def decode(self, ids) -> str:
        return "".join(self._vocabulary.decode(ids))


# ------------------------------------------------------------------------- word vectors

WORD_VECTORS_FORMAT = "rnnzoo.word_vectors"


@dataclasses.dataclass
class WordVectorsMetadata(_JsonRecord):
    """The content of a word-vector export's `model.json` (`"format": "rnnzoo.word_vectors"`).

    Fields:
        model: the zoo entry ("skipgram", "cbow"); architecture: the same, as trained.
        corpus: the TFDS name/config it was trained on.
        vocab_size: `V`, the rows of every file, in vocabulary order (id order).
        embedding_dim: `D`, the length of each vector.
        unk_token, unk_id: the unknown token and its id (0) when the files hold its row (its
            vector was trained on the words the vocabulary cut), else None.
        unk_row: whether the files hold the run's `<unk>` row, and why.
        unknown_words: what the SavedModel's `embed` does with a word outside the vocabulary.
        nearest_max_k: the largest `k` that the `nearest` signature accepts.
        checkpoint, epoch, step: which checkpoint was exported, and its epoch or step if known.
        metrics: the `metrics.jsonl` record of that checkpoint's report (None if there is none).
        saved_model: directory name and signature names.
        files: every file and directory the export wrote, relative, POSIX, directories ending
            in "/" (`model.json` included), as `ExportMetadata.files`.
    """

    FORMAT_NAME: ClassVar[str] = WORD_VECTORS_FORMAT

    model: str
    architecture: str
    corpus: str | None
    vocab_size: int
    embedding_dim: int
    unk_token: str | None
    unk_id: int | None
    unk_row: str
    unknown_words: str
    nearest_max_k: int
    checkpoint: str | None = None
    epoch: int | None = None
    step: int | None = None
    metrics: dict[str, Any] | None = None
    saved_model: dict[str, Any] = dataclasses.field(default_factory=dict)
    files: list[str] | None = None

    def __post_init__(self):
        for name in ("vocab_size", "embedding_dim"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise MetadataError(f"`{name}` must be a positive integer, got {value!r}")
        if (self.unk_id is None) != (self.unk_token is None) or self.unk_id not in (None, 0):
            raise MetadataError(f"`unk_id` must be 0 with an `unk_token`, or both null; got "
                                f"{self.unk_id!r} and {self.unk_token!r}")
        if not isinstance(self.files, list):
            raise MetadataError(f"`files` must be a list, got {self.files!r}")


TRANSLATOR_FORMAT = "rnnzoo.translator"


@dataclasses.dataclass
class TranslatorMetadata(_JsonRecord):
    """The content of a seq2seq export's `model.json` (`"format": "rnnzoo.translator"`).

    Fields:
        model: the zoo entry ("seq2seq"); corpus: the TFDS name/config it was trained on.
        vocab: the tokens in id order, source and target alike (the specials first);
            vocab_size: `len(vocab)`; special_ids: `{"<pad>": 0, "<bos>": 1, "<eos>": 2,
            "<unk>": 3}`; unk_char: how `<unk>` shows in a translation (U+FFFD).
        num_layers, num_hiddens, embedding_dim, attention: the architecture.
        reverse_source: the encoder reads the source's ids reversed (an app driving `encode`
            reverses them itself; `translate` does it).
        max_source_length: the longest text (characters) `translate` accepts, and the TFLite
            encoder's fixed source width; max_output_length: the most tokens a translation
            decodes, `<eos>` included.
        text_policy: what `translate` does to a text before encoding it (whitespace, unknown
            characters).
        state_size, state_layout: the packed decoder state (`contract.state_layout`).
        checkpoint, epoch, step: which checkpoint was exported; metrics: its report's
            `metrics.jsonl` record (None if none).
        tflite: file, signatures and their tensors, ops, parity with the SavedModel.
        saved_model: directory, signatures, vocabulary asset.
        files: every file and directory the export wrote (as `ExportMetadata.files`).
    """

    FORMAT_NAME: ClassVar[str] = TRANSLATOR_FORMAT

    model: str
    corpus: str | None
    vocab: list[str]
    vocab_size: int
    special_ids: dict[str, int]
    unk_char: str
    num_layers: int
    num_hiddens: int
    embedding_dim: int
    attention: str
    reverse_source: bool
    max_source_length: int
    max_output_length: int
    text_policy: str
    state_size: int
    state_layout: list[dict[str, Any]]
    checkpoint: str | None = None
    epoch: int | None = None
    step: int | None = None
    metrics: dict[str, Any] | None = None
    tflite: dict[str, Any] = dataclasses.field(default_factory=dict)
    saved_model: dict[str, Any] = dataclasses.field(default_factory=dict)
    files: list[str] | None = None

    def __post_init__(self):
        for name in ("vocab_size", "num_layers", "num_hiddens", "embedding_dim",
                     "max_source_length", "max_output_length", "state_size"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise MetadataError(f"`{name}` must be a positive integer, got {value!r}")
        if not isinstance(self.vocab, list) or len(self.vocab) != self.vocab_size:
            raise MetadataError(f"`vocab` must list vocab_size={self.vocab_size} tokens")
        if not isinstance(self.files, list):
            raise MetadataError(f"`files` must be a list, got {self.files!r}")


def _parse(text: str, source: str, fmt: str) -> dict:
    """`model.json`'s object, checked to be `fmt` at `VERSION`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise MetadataError(f"{source} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise MetadataError(f'{source} is not an {fmt!r} file (it has no "format": "{fmt}")')
    # `type(...) is int`: JSON's true and 1.0 compare equal to 1, but rnnzoo never wrote them.
    if type(data.get("version")) is not int or data["version"] != VERSION:
        raise MetadataError(f"{source} has version {data.get('version')!r}; this code reads "
                            f"version {VERSION}")
    return data


def read_any(text: str, *, source: str = "model.json"):
    """The `model.json` of any rnnzoo export: a `WordVectorsMetadata` when its format is
    "rnnzoo.word_vectors", else an `ExportMetadata` (whose errors name "rnnzoo.export")."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and data.get("format") == WORD_VECTORS_FORMAT:
        return WordVectorsMetadata.from_json(text, source=source)
    if isinstance(data, dict) and data.get("format") == TRANSLATOR_FORMAT:
        return TranslatorMetadata.from_json(text, source=source)
    return ExportMetadata.from_json(text, source=source)
