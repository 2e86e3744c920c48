"""Exporting word vectors (a word2vec run's `E [V, D]`): the files, written atomically.

    <output>/vectors.txt      word2vec.c's text format
    <output>/vectors.bin      word2vec.c's binary format
    <output>/projector/       TensorBoard's embedding projector: vectors.tsv, metadata.tsv,
                              projector_config.pbtxt and a checkpoint of the vectors
    <output>/saved_model/     SavedModel: embed (= serving_default), nearest
                              (`word_vectors_serving.WordVectorsModule`)
    <output>/tsne.png         a t-SNE map of the most frequent words (only when asked)
    <output>/model.json       `WordVectorsMetadata` ("format": "rnnzoo.word_vectors")

Every file has one row per token of the vocabulary it is given, in id order (the most frequent
words first). Which vocabulary is the task's choice (`rnnzoo.tasks.word2vec_export`): a run that
read cut words as `<unk>` keeps its `<unk>` row at id 0, a trained vector like any other; a run
that dropped them (`drop_unknown`) never trained that row, and its export leaves it out.

Text format: a header line `V D`, then per token a line `word v_1 ... v_D`, the values written
with `%.9g` (nine significant digits: every float32 reads back to itself), separated by single
spaces, lines ending in "\\n". Binary format (word2vec.c's `-binary 1`, gensim's `binary=True`):
the header line `V D\\n`, then per token its UTF-8 bytes, a space, `D` little-endian float32
values and "\\n". Both are read by `gensim.models.KeyedVectors.load_word2vec_format(path,
binary=...)`. A word holding whitespace could not be written in either format (nor in the TSV
files); `word_tokens` never makes one, and such a vocabulary is refused (`ExportError`).

Projector: `vectors.tsv` (one row of `D` tab-separated values per token, for the standalone
projector at projector.tensorflow.org) and `metadata.tsv` (a header `word<TAB>count`, then each
token and its corpus count; a vocabulary without counts gives one column and no header, as the
projector reads a single-column file), and a `tf.train.Checkpoint(embedding=...)` of the vectors
named in `projector_config.pbtxt`, so that `tensorboard --logdir=<output>/projector` shows them.
Every path in it is relative, so the directory can be moved.

The export is staged as a character LM's is (`exporter.staged_directory`: written beside the
output, checked, moved into place in one rename; an existing rnnzoo export is replaced, anything
else is refused). The check: the SavedModel, loaded back, embeds every word to its row exactly.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import tensorflow as tf

from rnnzoo.export import contract
from rnnzoo.export.exporter import ExportError, staged_directory, written_files
from rnnzoo.export.metadata import WordVectorsMetadata
from rnnzoo.export.serving import save_with_vocab_asset
from rnnzoo.export.word_vectors_serving import WordVectorsModule, nearest_max_k

FLOAT_FORMAT = "%.9g"  # enough digits for a float32 to read back to itself


@dataclasses.dataclass
class WordVectorsExport:
    path: pathlib.Path
    metadata: WordVectorsMetadata


def unknown_words_policy(vocab) -> str:
    """What `embed` does with a word outside the vocabulary, in words (for `model.json`)."""
    if vocab.unk_id is not None:
        return (f"embed: a word outside the vocabulary gets the row of {vocab.unk_token!r} (id "
                f"{vocab.unk_id}); nearest: such a query word is an error")
    return ("embed: a word outside the vocabulary gets a zero vector (the vocabulary has no "
            "unknown token: the run dropped the words it cut); nearest: such a query word is "
            "an error")


# ------------------------------------------------------------------------------ the files


def check_words(tokens) -> None:
    """Raises `ExportError` if a token is empty or holds whitespace (no line format holds it)."""
    bad = [t for t in tokens if not t or any(c.isspace() for c in t)]
    if bad:
        shown = ", ".join(repr(t) for t in bad[:5])
        raise ExportError(f"the vocabulary holds {len(bad)} token(s) that are empty or contain "
                          f"whitespace ({shown}); word vector files cannot hold them")


def _rows(vectors: np.ndarray, separator: str):
    fmt = separator.join([FLOAT_FORMAT] * vectors.shape[1])
    for row in vectors.tolist():
        yield fmt % tuple(row)


def write_text(path, tokens, vectors) -> None:
    """word2vec.c's text format (see the module docstring)."""
    vectors = np.asarray(vectors, np.float32)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(f"{vectors.shape[0]} {vectors.shape[1]}\n")
        for token, row in zip(tokens, _rows(vectors, " ")):
            f.write(f"{token} {row}\n")


def write_binary(path, tokens, vectors) -> None:
    """word2vec.c's binary format: `V D\\n`, then per token `word`, a space, `D` little-endian
    float32 and "\\n"."""
    vectors = np.asarray(vectors, dtype="<f4")
    with open(path, "wb") as f:
        f.write(f"{vectors.shape[0]} {vectors.shape[1]}\n".encode())
        for token, row in zip(tokens, vectors):
            f.write(token.encode("utf-8") + b" " + row.tobytes() + b"\n")


def write_projector(directory, tokens, vectors, counts=None) -> None:
    """TensorBoard's projector files in `directory` (which must exist); see the module docstring.

    Uses `tensorboard.plugins.projector` when it is installed (it comes with TensorFlow's
    `tf.summary`), else writes the same `projector_config.pbtxt` text itself.
    """
    directory = pathlib.Path(directory)
    vectors = np.asarray(vectors, np.float32)
    with open(directory / contract.PROJECTOR_VECTORS_FILE, "w", encoding="utf-8",
              newline="\n") as f:
        f.writelines(row + "\n" for row in _rows(vectors, "\t"))
    with open(directory / contract.PROJECTOR_METADATA_FILE, "w", encoding="utf-8",
              newline="\n") as f:
        if counts is None:  # one column: the projector then expects no header
            f.writelines(f"{t}\n" for t in tokens)
        else:
            f.write("word\tcount\n")
            f.writelines(f"{t}\t{int(c)}\n" for t, c in zip(tokens, counts))
    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(vectors, name="embedding"))
    # save(): also the `checkpoint` state file, with a relative path, which the projector reads.
    checkpoint.save(str(directory / contract.PROJECTOR_CHECKPOINT))
    try:
        from tensorboard.plugins import projector
    except ImportError:
        (directory / contract.PROJECTOR_CONFIG_FILE).write_text(
            f'embeddings {{\n  tensor_name: "{contract.PROJECTOR_TENSOR}"\n'
            f'  metadata_path: "{contract.PROJECTOR_METADATA_FILE}"\n}}\n', encoding="utf-8")
        return
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = contract.PROJECTOR_TENSOR
    embedding.metadata_path = contract.PROJECTOR_METADATA_FILE
    projector.visualize_embeddings(str(directory), config)


# ------------------------------------------------------------------------------ export


def export_word_vectors(embeddings, vocab, directory, *, model_name: str, architecture: str,
                        corpus: str | None = None, checkpoint: str | None = None,
                        epoch: int | None = None, step: int | None = None,
                        metrics: dict | None = None, unk_row: str = "",
                        tsne_png: bytes | None = None,
                        scratch_dir=None) -> WordVectorsExport:
    """Writes the files of the module docstring for `embeddings` into `directory`.

    `directory` must not exist or be empty. Not atomic: `export_word_vectors_atomic` stages it.

    Args:
        embeddings: float32 `[V, D]`, row `i` the vector of `vocab`'s token `i`.
        vocab: the run's `WordVocabulary` (a plain `Vocabulary`: no counts in `metadata.tsv`).
        directory: where to write.
        model_name, architecture, corpus, checkpoint, epoch, step, metrics, unk_row: recorded
            in `model.json` as they are.
        tsne_png: the bytes of `tsne.png` (`rnnzoo.plot.word_map_png`), or None for none.
        scratch_dir: an existing directory for temporary files; default the system's.

    Raises:
        ExportError: a token no format can hold, or the SavedModel does not give back the
            vectors.
    """
    embeddings = np.asarray(embeddings, np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(vocab):
        raise ExportError(f"the vectors have shape {list(embeddings.shape)}, not [{len(vocab)}, "
                          f"D] (one row per token of the vocabulary)")
    tokens = list(vocab.tokens)
    check_words(tokens)
    directory = pathlib.Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise ExportError(f"{directory} is not empty")
    directory.mkdir(parents=True, exist_ok=True)

    write_text(directory / contract.VECTORS_TEXT_FILE, tokens, embeddings)
    write_binary(directory / contract.VECTORS_BINARY_FILE, tokens, embeddings)
    (directory / contract.PROJECTOR_DIR).mkdir()
    write_projector(directory / contract.PROJECTOR_DIR, tokens, embeddings,
                    getattr(vocab, "counts", None))
    saved_model_dir = directory / contract.SAVED_MODEL_DIR
    save_with_vocab_asset(lambda asset: WordVectorsModule(embeddings, vocab, asset), vocab,
                          saved_model_dir, scratch_dir=scratch_dir)
    check_saved_model(saved_model_dir, tokens, embeddings)
    if tsne_png is not None:
        (directory / contract.TSNE_FILE).write_bytes(tsne_png)

    metadata = WordVectorsMetadata(
        model=model_name, architecture=architecture, corpus=corpus, vocab_size=len(vocab),
        embedding_dim=int(embeddings.shape[1]), unk_token=vocab.unk_token, unk_id=vocab.unk_id,
        unk_row=unk_row, unknown_words=unknown_words_policy(vocab),
        nearest_max_k=nearest_max_k(vocab),
        checkpoint=checkpoint, epoch=epoch, step=step, metrics=metrics,
        saved_model={"dir": contract.SAVED_MODEL_DIR,
                     "signatures": list(contract.WORD_VECTOR_SIGNATURES),
                     "vocab_asset": f"assets/{contract.VOCAB_ASSET}"},
        files=written_files(directory))
    (directory / contract.METADATA_FILE).write_text(metadata.to_json(), encoding="utf-8")
    return WordVectorsExport(directory, metadata)


def check_saved_model(saved_model_dir, tokens, embeddings) -> None:
    """Raises `ExportError` unless the SavedModel's `embed` gives back every row exactly."""
    loaded = tf.saved_model.load(str(saved_model_dir))
    got = loaded.signatures[contract.EMBED](words=tf.constant(tokens, tf.string))["vectors"]
    if not np.array_equal(got.numpy(), embeddings):
        diff = np.abs(got.numpy() - embeddings).max() if got.shape == embeddings.shape else None
        raise ExportError(f"the SavedModel's {contract.EMBED} does not give back the vectors "
                          f"(shape {list(got.shape)}, largest difference {diff})")


def export_word_vectors_atomic(embeddings, vocab, output, **kwargs) -> WordVectorsExport:
    """`export_word_vectors` into a staging directory, moved to `output` once complete and
    checked; an existing rnnzoo export at `output` is replaced, anything else is refused
    (`exporter.check_replaceable`)."""
    output = pathlib.Path(output)
    with staged_directory(output) as staging:
        result = export_word_vectors(embeddings, vocab, staging.export,
                                     scratch_dir=staging.scratch, **kwargs)
    result.path = output
    return result


def summary(run_path, checkpoint: str, result: WordVectorsExport) -> str:
    """The one line `export.py` prints about a finished export of word vectors."""
    m = result.metadata
    extra = f", {contract.TSNE_FILE}" if contract.TSNE_FILE in m.files else ""
    return (f"exported {run_path} ({pathlib.Path(checkpoint).name}) to {result.path}: "
            f"{m.vocab_size:,} words x {m.embedding_dim}: {contract.VECTORS_TEXT_FILE}, "
            f"{contract.VECTORS_BINARY_FILE}, {contract.PROJECTOR_DIR}/, "
            f"{contract.SAVED_MODEL_DIR}/ ({', '.join(contract.WORD_VECTOR_SIGNATURES)})"
            f"{extra}, {contract.METADATA_FILE}")
