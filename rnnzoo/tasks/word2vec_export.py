"""Export of a word2vec run: its word vectors rebuilt from the run directory alone.

    python export.py --workdir=runs/skipgram             # -> runs/skipgram/export/
    python export.py --workdir=runs/skipgram --tsne      # ... and export/tsne.png

writes `vectors.txt`, `vectors.bin`, `projector/`, `saved_model/` (`embed`, `nearest`) and
`model.json` (`rnnzoo.export.word_vectors` describes each), atomically, where and as a character
LM's export goes (`--output`, default `<workdir>/export`; `--checkpoint`, default the latest).
The vectors are the input vectors `E` (word2vec.c's syn0), of the checkpoint's model.

The `<unk>` row. A run that reads the words its vocabulary cut as `<unk>` (the course) trains
`<unk>`'s vector like any word's: the export keeps it, at id 0, and `embed` gives it to every
word outside the vocabulary. A run that drops them (`drop_unknown`, word2vec.c and gensim), or
whose vocabulary cut nothing (`<unk>` counted 0 times), never reads `<unk>`, so its row holds
only its random initial values: the export leaves it out (row `i` of the files is then the run's
id `i + 1`, as word2vec.c, whose files have no `<unk>`), and `embed` gives an unknown word a
zero vector. `model.json`'s `unk_row` says which.

`--quantize` and `--compute_val_perplexity` are the character LMs' (their TFLite file and
perplexity): given for a word2vec run, they are an error. `--tsne` draws `tsne.png` with
`rnnzoo.plot.word_map_png` (needs matplotlib and scikit-learn: `pip install -e ".[plot]"`); the
same map is drawn from a run by `python -m rnnzoo.plot RUN_DIR --tsne --output=words.png`.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from rnnzoo.data.vocab import WordVocabulary
from rnnzoo.run_dir import RunDir, RunDirError
from rnnzoo.tasks.word2vec import Word2VecConfig, build_model


@dataclasses.dataclass
class Trained:
    """A word2vec model rebuilt from its run directory alone, with the checkpoint's weights."""

    run: RunDir
    config: Word2VecConfig
    vocab: WordVocabulary
    model: object  # rnnzoo.models.word2vec.Word2Vec
    checkpoint: str  # the checkpoint prefix it was restored from


def load_trained(workdir, checkpoint=None) -> Trained:
    """The model of a word2vec run directory: config, vocabulary, and every weight of
    `checkpoint` (a prefix or a directory; default the latest). Raises `RunDirError` (not a
    word2vec run, files missing) or `ExportError` (no checkpoint, or one that does not match)."""
    from rnnzoo.export import exporter

    run = RunDir(workdir)
    config = run.read_config(Word2VecConfig)
    vocab = run.read_vocab()
    if not isinstance(vocab, WordVocabulary):
        raise RunDirError(f"{run.vocab_path} is not a word vocabulary (no word counts); a "
                          "word2vec run writes an 'rnnzoo.word_vocabulary' file")
    checkpoint = exporter.resolve_checkpoint(run, checkpoint)
    model = build_model(config, vocab)
    exporter.restore_model(run, model, checkpoint)
    return Trained(run, config, vocab, model, checkpoint)


def exported_rows(config: Word2VecConfig, vocab: WordVocabulary,
                  embeddings) -> tuple[WordVocabulary, np.ndarray, str]:
    """`(vocabulary, vectors, unk_row note)` of the export: the run's, less the `<unk>` row
    when the run never trained it (see the module docstring)."""
    embeddings = np.asarray(embeddings, np.float32)
    unk = vocab.unk_id
    if unk is None:
        return vocab, embeddings, "none: the vocabulary has no unknown token"
    if not config.drop_unknown and vocab.counts[unk] > 0:
        return vocab, embeddings, (
            f"kept: {vocab.unk_token!r} (id {unk}) is the vector trained on the "
            f"{int(vocab.counts[unk]):,} corpus words the vocabulary cut")
    why = ("the run dropped the words its vocabulary cut (drop_unknown)" if config.drop_unknown
           else "the vocabulary cut no word")
    keep = [i for i in range(len(vocab)) if i != unk]
    rows = WordVocabulary([vocab.tokens[i] for i in keep], vocab.counts[keep].tolist(),
                          unk_token=None)
    return rows, embeddings[keep], (
        f"left out: {why}, so {vocab.unk_token!r} was never trained; row i of the files is the "
        f"run's id i + 1")


def checkpoint_metrics(run: RunDir, key: str, value: int | None) -> dict | None:
    """The last `metrics.jsonl` record whose `key` ("step" or "epoch") is `value`, if any."""
    if value is None:
        return None
    records = [r for r in run.read_metrics() if r.get(key) == value]
    return records[-1] if records else None


def export_run(workdir, output=None, *, quantize: str = "none", checkpoint=None,
               compute_val_perplexity: bool = False, source_dir=None, tfds_dir=None,
               tsne: bool = False, log=print):
    """Exports the word vectors of a word2vec run directory, atomically.

    Args:
        workdir: the run directory: config, vocabulary, checkpoints.
        output: the export directory; default `<workdir>/export`. An existing rnnzoo export
            there is replaced once the new one is complete; anything else is refused.
        quantize, compute_val_perplexity: the character LMs' flags; anything but their
            defaults is an `ExportError`. source_dir, tfds_dir: unused (no corpus is read).
        checkpoint: a checkpoint prefix (`.../ckpt-40`) or a directory of checkpoints; default
            the run's latest.
        tsne: also draw `tsne.png`, the t-SNE map of the 500 most frequent words.

    Returns an `rnnzoo.export.word_vectors.WordVectorsExport`; raises `ExportError` or
    `RunDirError` naming the file or value at fault.
    """
    del source_dir, tfds_dir  # the export reads no corpus
    from rnnzoo.export import exporter, word_vectors

    if quantize != "none":
        raise exporter.ExportError(f"--quantize={quantize} sets the weights of a character "
                                   f"LM's model.tflite; a word2vec export has no TFLite file")
    if compute_val_perplexity:
        raise exporter.ExportError("--compute_val_perplexity is a character LM's; a word2vec "
                                   "run has no validation perplexity")
    trained = load_trained(workdir, checkpoint)
    run, config, checkpoint = trained.run, trained.config, trained.checkpoint
    vocab, vectors, unk_row = exported_rows(config, trained.vocab,
                                            trained.model.embeddings.numpy())
    # ckpt-<step> in a run measured in steps, ckpt-<epoch> otherwise.
    epoch = exporter.checkpoint_epoch(checkpoint)
    position = (("step", exporter.checkpoint_number(checkpoint)) if config.by_steps
                else ("epoch", epoch))
    tsne_png = None
    if tsne:
        from rnnzoo import plot

        try:
            tsne_png = plot.word_map_png(vectors, vocab, title=_title(run, config, checkpoint))
        except plot.PlotError as e:
            raise exporter.ExportError(f"--tsne: {e}") from e
    output = os.fspath(output) if output else run.path / "export"
    result = word_vectors.export_word_vectors_atomic(
        vectors, vocab, output, model_name=config.model, architecture=config.architecture,
        corpus=config.corpus, checkpoint=os.path.basename(checkpoint),
        epoch=epoch if not config.by_steps else None,
        step=position[1] if config.by_steps else None,
        metrics=checkpoint_metrics(run, *position), unk_row=unk_row, tsne_png=tsne_png)
    log(word_vectors.summary(run.path, checkpoint, result))
    return result


def _title(run: RunDir, config: Word2VecConfig, checkpoint: str) -> str:
    return f"{config.model} ({run.path.name}, {os.path.basename(checkpoint)})"
