"""Export of a seq2seq run: a translator an app can call without rnnzoo.

    python export.py --workdir=runs/seq2seq        # -> runs/seq2seq/export/

writes, atomically (a staging directory moved into place once complete and checked, as the
other exports):

    saved_model/   `translate` (= `serving_default`), `translate_beam`, `encode`, `decode_step`
                   (`rnnzoo.export.translator` documents each)
    model.tflite   `encode` and `decode_step` at batch 1, builtin LiteRT ops only
    model.json     vocabulary, special ids, state layout, limits, the checkpoint's metrics
                   (`rnnzoo.export.metadata.TranslatorMetadata`)

and checks, before anything is moved into place, that the Keras model, the SavedModel and the
TFLite file agree: the decoder's logits along each check text's greedy path (float32 files:
within `parity.FLOAT_EXPORT_TOLERANCE` of the largest logit), and the greedy translations
themselves, identical from all three.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np
import tensorflow as tf

from rnnzoo.data.seq2seq import BOS_ID, SPECIAL_TOKENS, UNK_CHAR, Seq2SeqVocabulary
from rnnzoo.run_dir import RunDir, RunDirError
from rnnzoo.tasks.seq2seq import Seq2SeqConfig, build_model, source_ids

# Texts whose translations the export compares across Keras, SavedModel and TFLite.
CHECK_TEXTS = ("the quick brown fox", "sequence to sequence", "a", "anarchism originated")
TEXT_POLICY = ("runs of whitespace become one space and the ends are stripped (as training "
               "spans); a character outside the vocabulary is read as <unk>; an <unk> output "
               "shows as U+FFFD; empty text or text longer than max_source_length is an error")


@dataclasses.dataclass
class Trained:
    run: RunDir
    config: Seq2SeqConfig
    vocab: Seq2SeqVocabulary
    model: object  # rnnzoo.models.seq2seq.Seq2Seq
    checkpoint: str


@dataclasses.dataclass
class TranslatorExport:
    path: pathlib.Path
    metadata: object  # TranslatorMetadata
    max_logit_diff: dict  # "keras_vs_saved_model", "tflite_vs_saved_model"


def load_trained(workdir, checkpoint=None) -> Trained:
    """The model of a seq2seq run directory with the weights of `checkpoint` (default the
    latest). Raises `RunDirError` or `ExportError`."""
    from rnnzoo.export import exporter

    run = RunDir(workdir)
    config = run.read_config(Seq2SeqConfig)
    vocab = run.read_vocab()
    if not isinstance(vocab, Seq2SeqVocabulary):
        raise RunDirError(f"{run.vocab_path} is not a seq2seq vocabulary; a seq2seq run writes "
                          f"an 'rnnzoo.seq2seq_vocabulary' file")
    checkpoint = exporter.resolve_checkpoint(run, checkpoint)
    model = build_model(config, len(vocab))
    exporter.restore_model(run, model, checkpoint)
    return Trained(run, config, vocab, model, checkpoint)


def export_run(workdir, output=None, *, quantize: str = "none", checkpoint=None,
               compute_val_perplexity: bool = False, source_dir=None, tfds_dir=None,
               tsne: bool = False, log=print) -> TranslatorExport:
    """Exports a seq2seq run directory (module docstring).

    Args:
        workdir: the run directory. output: the export directory (default
            `<workdir>/export`); an existing rnnzoo export there is replaced, anything else
            refused. checkpoint: a prefix or a directory (default: the latest).
        quantize: the TFLite weights, "none", "dynamic" or "float16" (a quantized file is
            checked for builtin ops and identical greedy outputs, not for logit parity).
        compute_val_perplexity, tsne: other tasks' flags; True is an `ExportError`.
        source_dir, tfds_dir: unused (no corpus is read).
    """
    del source_dir, tfds_dir
    from rnnzoo.export import exporter
    from rnnzoo.tasks.word2vec_export import checkpoint_metrics

    exporter.check_quantize(quantize)
    if compute_val_perplexity:
        raise exporter.ExportError("--compute_val_perplexity is a character LM's; a seq2seq "
                                   "export records its run's validation metrics instead")
    if tsne:
        raise exporter.ExportError("--tsne maps the word vectors of a word2vec run; a seq2seq "
                                   "run has none")
    trained = load_trained(workdir, checkpoint)
    run, config, checkpoint = trained.run, trained.config, trained.checkpoint
    epoch = exporter.checkpoint_epoch(checkpoint)
    position = (("step", exporter.checkpoint_number(checkpoint)) if config.by_steps
                else ("epoch", epoch))
    output = pathlib.Path(os.fspath(output) if output else run.path / "export")
    with exporter.staged_directory(output) as staging:
        result = export_translator(
            trained.model, trained.vocab, staging.export, config=config, quantize=quantize,
            checkpoint=os.path.basename(checkpoint),
            epoch=epoch if not config.by_steps else None,
            step=position[1] if config.by_steps else None,
            metrics=checkpoint_metrics(run, *position), scratch_dir=staging.scratch)
    result.path = output
    log(f"exported {run.path} ({os.path.basename(checkpoint)}) to {output}: saved_model/ "
        f"(translate, translate_beam, encode, decode_step), model.tflite ({quantize}; "
        f"{result.metadata.tflite['bytes']:,} bytes), model.json; logits agree within "
        f"{max(result.max_logit_diff.values()):.2g}")
    return result


def export_translator(model, vocab: Seq2SeqVocabulary, directory, *, config: Seq2SeqConfig,
                      quantize: str = "none", checkpoint=None, epoch=None, step=None,
                      metrics=None, scratch_dir=None) -> TranslatorExport:
    """Writes and checks `saved_model/`, `model.tflite` and `model.json` in `directory` (not
    atomic: `export_run` stages it)."""
    from rnnzoo.export import contract, exporter, parity, serving, tflite, translator
    from rnnzoo.export.metadata import TranslatorMetadata

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    max_source = config.bucket_sizes[-1][0]
    max_output = config.decode_length
    saved_model_dir = directory / contract.SAVED_MODEL_DIR
    serving.save_with_vocab_asset(
        lambda asset: translator.TranslatorModule(
            model, vocab, asset, reverse_source=config.reverse_source,
            max_source_length=max_source, max_output_length=max_output),
        vocab, saved_model_dir, scratch_dir=scratch_dir)
    module = translator.TFLiteTranslatorModule(model, max_source)
    try:
        flatbuffer = tflite.convert_module(module, module.signatures(), quantize,
                                           scratch_dir=scratch_dir, what="the translator")
    except tflite.TFLiteExportError as e:
        raise exporter.ExportError(str(e)) from e
    tflite_path = directory / contract.TFLITE_FILE
    tflite_path.write_bytes(flatbuffer)

    H = model.num_hiddens
    state_size = 2 * model.num_layers * H
    metadata = TranslatorMetadata(
        model=config.model, corpus=config.corpus, vocab=vocab.tokens, vocab_size=len(vocab),
        special_ids={t: i for i, t in enumerate(SPECIAL_TOKENS)}, unk_char=UNK_CHAR,
        num_layers=model.num_layers, num_hiddens=H, embedding_dim=model.embedding_dim,
        attention=model.attention, reverse_source=config.reverse_source,
        max_source_length=max_source, max_output_length=max_output, text_policy=TEXT_POLICY,
        state_size=state_size, state_layout=contract.state_layout("lstm", model.num_layers, H),
        checkpoint=checkpoint, epoch=epoch, step=step, metrics=metrics,
        tflite={"file": contract.TFLITE_FILE, "signatures": list(translator.TFLITE_SIGNATURES),
                "batch_size": 1, "quantize": quantize,
                "encode": {"inputs": {"source_ids": f"int32 [1, {max_source}], <pad> after "
                                                    f"the text"},
                           "outputs": {"state": f"float32 [1, {state_size}]",
                                       "memory": f"float32 [1, {max_source}, {H}]",
                                       "memory_mask": f"float32 [1, {max_source}]"}},
                "decode_step": {"inputs": {"token_ids": "int32 [1]",
                                           "state": f"float32 [1, {state_size}]",
                                           "memory": f"float32 [1, {max_source}, {H}]",
                                           "memory_mask": f"float32 [1, {max_source}]"},
                                "outputs": {"logits": f"float32 [1, {len(vocab)}]",
                                            "state": f"float32 [1, {state_size}]"}},
                "bytes": len(flatbuffer), "ops": sorted(set(tflite.op_names(flatbuffer)))},
        saved_model={"dir": contract.SAVED_MODEL_DIR, "signatures": list(translator.SIGNATURES),
                     "vocab_asset": f"assets/{contract.VOCAB_ASSET}"},
        files=[])
    diffs, largest = check_parity(model, vocab, saved_model_dir, tflite_path, metadata,
                                  config=config)
    bound = parity.FLOAT_EXPORT_TOLERANCE * max(1.0, largest)
    if diffs["keras_vs_saved_model"] > bound or (
            quantize == "none" and diffs["tflite_vs_saved_model"] > bound):
        raise exporter.ExportError(f"exported logits differ: {diffs} (largest |logit| "
                                   f"{largest:.3g}, bound {bound:.3g})")
    metadata.tflite["max_abs_logit_diff_vs_saved_model"] = diffs["tflite_vs_saved_model"]
    metadata.files = exporter.written_files(directory)
    (directory / contract.METADATA_FILE).write_text(metadata.to_json(), encoding="utf-8")
    return TranslatorExport(directory, metadata, diffs)


# ------------------------------------------------------------------------------ parity


def check_parity(model, vocab, saved_model_dir, tflite_path, metadata, *,
                 config) -> tuple[dict, float]:
    """`({"keras_vs_saved_model": d1, "tflite_vs_saved_model": d2}, largest |logit|)` along
    the TFLite greedy path of each of `CHECK_TEXTS` (`rnnzoo.translate.translate_tflite`, an
    app's loop); raises `ExportError` when the three do not translate them identically."""
    from ai_edge_litert.interpreter import Interpreter

    from rnnzoo.export import exporter
    from rnnzoo.tasks.seq2seq import greedy_translator
    from rnnzoo.translate import translate_tflite

    loaded = tf.saved_model.load(str(saved_model_dir))
    interpreter = Interpreter(model_path=str(tflite_path))
    translate = greedy_translator(model, config)
    diffs = {"keras_vs_saved_model": 0.0, "tflite_vs_saved_model": 0.0}
    largest = 0.0
    for text in CHECK_TEXTS:
        text = text[:metadata.max_source_length].strip()
        lite_text, lite_logits = translate_tflite(interpreter, metadata, text)
        saved_text = loaded.translate(tf.constant([text]))["translation"].numpy()[0].decode()
        ids = tf.constant(source_ids([text], vocab, reverse=config.reverse_source))
        keras_text = vocab.decode(translate(ids).numpy()[0])
        if not lite_text == saved_text == keras_text:
            raise exporter.ExportError(
                f"greedy translations of {text!r} differ: Keras {keras_text!r}, SavedModel "
                f"{saved_text!r}, TFLite {lite_text!r}")
        # The decoder's logits along the TFLite path, from Keras and the SavedModel.
        encoded = loaded.encode(source_ids=ids)
        memory, mask, keras_states = model.encode(ids)
        state = encoded["state"]
        tokens = [BOS_ID] + [int(np.argmax(v)) for v in lite_logits[:-1]]
        for t, token in enumerate(tokens):
            step = loaded.decode_step(token_ids=tf.constant([token]), state=state,
                                      memory=encoded["memory"],
                                      memory_mask=encoded["memory_mask"])
            keras_logits, keras_states = model.decode_step(tf.constant([token]), keras_states,
                                                           memory, mask)
            state, saved_logits = step["state"], step["logits"].numpy()[0]
            diffs["keras_vs_saved_model"] = max(diffs["keras_vs_saved_model"], float(
                np.abs(keras_logits.numpy()[0] - saved_logits).max()))
            diffs["tflite_vs_saved_model"] = max(diffs["tflite_vs_saved_model"], float(
                np.abs(lite_logits[t] - saved_logits).max()))
            largest = max(largest, float(np.abs(saved_logits).max()))
    return diffs, largest
