"""Exporting a trained run: the model rebuilt from its run directory, written out atomically.

    <output>/saved_model/   SavedModel: generate (= serving_default), step, initial_state
    <output>/model.tflite   the batch-1 `step` signature, builtin LiteRT ops only
    <output>/model.json     vocabulary, state layout, limits, quality (`ExportMetadata`)

Everything is written into a hidden staging directory beside `<output>` and moved into place
only once complete and checked (TFLite ops, logit parity with the SavedModel). A failed export
removes its staging directory; an existing export is swapped out in one `renameat2` exchange on
Linux (two renames elsewhere), so readers see the old export or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import pathlib
import shutil
import sys
import tempfile

import tensorflow as tf

from rnnzoo.data.vocab import Vocabulary
from rnnzoo.export import contract, parity, tflite
from rnnzoo.export.metadata import ExportMetadata
from rnnzoo.export.serving import GenerationModule, write_vocab_asset
from rnnzoo.run_dir import RunDir


class ExportError(RuntimeError):
    """The run cannot be exported, or the export failed a check; nothing was written."""


@dataclasses.dataclass
class ExportResult:
    path: pathlib.Path
    metadata: ExportMetadata
    parity: parity.ParityReport


def export_model(model, vocab: Vocabulary, directory, *, quantize: str = "none",
                 model_name: str | None = None, corpus: str | None = None,
                 checkpoint: str | None = None, epoch: int | None = None,
                 step: int | None = None, val_perplexity: float | None = None,
                 val_perplexity_source: str | None = None) -> ExportResult:
    """Writes the SavedModel, `model.tflite` and `model.json` of `model` into `directory`.

    `directory` must not exist or be empty. Not atomic: `export_run` stages it.

    Args:
        model: a `CharLM`, with its trained weights.
        vocab: its vocabulary.
        directory: where to write.
        quantize: TFLite weights: "none", "dynamic" or "float16" (the SavedModel stays float32).
        model_name: the zoo entry (default: the model's cell type).
        corpus, checkpoint, epoch, step, val_perplexity, val_perplexity_source: recorded in
            `model.json` as they are.

    Raises:
        ExportError: the TFLite file needs non-builtin ops, or a float export's logits differ
            from the SavedModel's by more than `parity.FLOAT_EXPORT_TOLERANCE`.
    """
    if quantize not in contract.QUANTIZE_MODES:
        raise ValueError(f"`quantize` must be one of {list(contract.QUANTIZE_MODES)}, "
                         f"got {quantize!r}")
    directory = pathlib.Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise ExportError(f"{directory} is not empty")
    directory.mkdir(parents=True, exist_ok=True)
    saved_model_dir = directory / contract.SAVED_MODEL_DIR
    tflite_path = directory / contract.TFLITE_FILE

    with tempfile.TemporaryDirectory(prefix="rnnzoo-vocab-") as scratch:
        asset = pathlib.Path(scratch, contract.VOCAB_ASSET)
        write_vocab_asset(vocab, asset)  # tf.saved_model.save copies it into assets/
        module = GenerationModule(model, vocab, str(asset))
        tf.saved_model.save(module, str(saved_model_dir), signatures=module.signatures())

    try:
        flatbuffer = tflite.convert_step(model, quantize)
    except tflite.TFLiteExportError as e:
        raise ExportError(str(e)) from e
    tflite_path.write_bytes(flatbuffer)

    report = parity.compare(model, saved_model_dir, tflite_path, parity.parity_ids(len(vocab)))
    bound = parity.FLOAT_EXPORT_TOLERANCE * max(1.0, report.max_abs_logit)
    # A quantized file differs by its rounding of the weights; a float one must not.
    if report.keras_vs_saved_model > bound or (
            quantize == "none" and report.tflite_vs_saved_model > bound):
        raise ExportError(
            f"exported logits differ: Keras vs SavedModel {report.keras_vs_saved_model:.3g}, "
            f"TFLite ({quantize}) vs SavedModel {report.tflite_vs_saved_model:.3g} over "
            f"{report.num_steps} steps (largest |logit| {report.max_abs_logit:.3g})")

    metadata = ExportMetadata(
        model=model_name or model.cell_type, cell=model.cell_type, inputs=model.inputs,
        impl=model.impl, num_layers=model.num_layers, units=model.units,
        embedding_dim=model.embedding_dim, corpus=corpus, vocab=vocab.tokens,
        vocab_size=len(vocab), unk_token=vocab.unk_token, unk_id=vocab.unk_id,
        state_size=sum(model.state_sizes),
        state_layout=contract.state_layout(model.cell_type, model.num_layers, model.units,
                                           inputs=model.inputs),
        val_perplexity=val_perplexity, val_perplexity_source=val_perplexity_source,
        checkpoint=checkpoint, epoch=epoch, step=step, quantize=quantize,
        tflite={"file": contract.TFLITE_FILE, "signature": contract.STEP, "batch_size": 1,
                "inputs": {"token_ids": "int32 [1]", "state": "float32 [1, state_size]"},
                "outputs": {"logits": "float32 [1, vocab_size]",
                            "state": "float32 [1, state_size]"},
                "bytes": len(flatbuffer), "ops": sorted(set(tflite.op_names(flatbuffer))),
                "max_abs_logit_diff_vs_saved_model": report.tflite_vs_saved_model,
                "parity_steps": report.num_steps},
        saved_model={"dir": contract.SAVED_MODEL_DIR, "signatures": list(contract.SIGNATURES),
                     "vocab_asset": f"assets/{contract.VOCAB_ASSET}"})
    (directory / contract.METADATA_FILE).write_text(metadata.to_json(), encoding="utf-8")
    return ExportResult(directory, metadata, report)


def check_quantize(quantize: str) -> None:
    if quantize not in contract.QUANTIZE_MODES:
        raise ExportError(f"`quantize` must be one of {list(contract.QUANTIZE_MODES)}, "
                          f"got {quantize!r}")


def export_model_atomic(model, vocab: Vocabulary, output, **kwargs) -> ExportResult:
    """`export_model` into a staging directory, moved to `output` once complete and checked.

    An existing export at `output` is replaced; any other non-empty directory is refused.
    """
    output = pathlib.Path(output)
    with staged_directory(output) as staging:
        result = export_model(model, vocab, staging, **kwargs)
    result.path = output
    return result


def summary(run: RunDir, checkpoint: str, result: ExportResult, quantize: str) -> str:
    """The one line `export.py` prints about a finished export."""
    return (f"exported {run.path} ({os.path.basename(checkpoint)}) to {result.path}: "
            f"{contract.SAVED_MODEL_DIR}/, {contract.TFLITE_FILE} ({quantize}, "
            f"{result.metadata.tflite['bytes']:,} bytes), {contract.METADATA_FILE}; max |logit "
            f"diff| vs SavedModel: Keras {result.parity.keras_vs_saved_model:.2g}, TFLite "
            f"{result.parity.tflite_vs_saved_model:.2g}")


# ------------------------------------------------------------------------ run directory


def resolve_checkpoint(run: RunDir, checkpoint=None) -> str:
    """The checkpoint prefix to export: `checkpoint` (a prefix or a directory) or the latest."""
    if checkpoint is None:
        found = run.latest_checkpoint()
        if found is None:
            raise ExportError(f"{run.checkpoint_dir} holds no checkpoint; train the run first, "
                              "or pass --checkpoint")
        return found
    checkpoint = os.fspath(checkpoint)
    if os.path.isdir(checkpoint):
        found = tf.train.latest_checkpoint(checkpoint)
        if found is None:
            raise ExportError(f"--checkpoint directory {checkpoint} holds no checkpoint")
        return found
    if not os.path.exists(checkpoint + ".index"):
        raise ExportError(f"--checkpoint {checkpoint} is not a checkpoint ({checkpoint}.index "
                          "does not exist); give a prefix such as <workdir>/checkpoints/ckpt-40")
    return checkpoint


def restore_model(run: RunDir, model, checkpoint: str) -> None:
    """Loads every weight of `model` from a training checkpoint (object key "model").

    The optimizer and epoch in the checkpoint are not read (`expect_partial`); every weight of
    the model must be found there (`assert_existing_objects_matched`), else the checkpoint does
    not belong to this config and vocabulary.
    """
    try:
        status = run.checkpoint(model).restore(checkpoint).expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise ExportError(f"cannot restore the model of {run.config_path} from {checkpoint}; "
                          f"the checkpoint does not match the config and vocabulary: {e}") from e


def checkpoint_epoch(checkpoint: str) -> int | None:
    """The training epoch a checkpoint was taken at (its `epoch` variable), if it has one."""
    try:
        reader = tf.train.load_checkpoint(checkpoint)
    except (ValueError, tf.errors.OpError):
        return None
    key = "epoch/.ATTRIBUTES/VARIABLE_VALUE"
    return int(reader.get_tensor(key)) if reader.has_tensor(key) else None


def checkpoint_number(checkpoint: str) -> int | None:
    """N of a checkpoint prefix `.../ckpt-N` (training's epoch or step), if it has one."""
    _, _, number = os.path.basename(checkpoint).rpartition("-")
    return int(number) if number.isdigit() else None


def val_perplexity_from_metrics(run: RunDir, key: str = "epoch",
                                value: int | None = None) -> tuple[float | None, str]:
    """The `val_perplexity` that `metrics.jsonl` holds where `key` ("epoch" or "step") is
    `value` (the last one if `value` is unknown)."""
    records = [r for r in run.read_metrics() if "val_perplexity" in r]
    if value is not None:
        records = [r for r in records if r.get(key) == value]
    if not records:
        which = f"{key} {value}" if value is not None else f"any {key}"
        return None, f"{run.metrics_path.name} has no val_perplexity for {which}"
    record = records[-1]
    return float(record["val_perplexity"]), (
        f"{run.metrics_path.name}, {key} {record.get(key)}")


# ---------------------------------------------------------------------------- atomicity


@contextlib.contextmanager
def staged_directory(output):
    """Yields an empty staging directory beside `output`; moves it to `output` on success.

    On an exception the staging directory is removed and `output` is left as it was.
    """
    output = pathlib.Path(output).absolute()
    if output.exists() and not _is_replaceable(output):
        raise ExportError(f"{output} exists and is not an rnnzoo export (no "
                          f"{contract.METADATA_FILE}); refusing to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private (0700)
        yield staging
        _move_into_place(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _is_replaceable(path: pathlib.Path) -> bool:
    if not path.is_dir():
        return False
    return (path / contract.METADATA_FILE).is_file() or not any(path.iterdir())


def _move_into_place(staging: pathlib.Path, output: pathlib.Path) -> None:
    """Renames `staging` to `output`; an existing `output` ends up in `staging` (then deleted)."""
    if not output.exists():
        os.rename(staging, output)
        return
    if _exchange(staging, output):
        return
    old = pathlib.Path(tempfile.mkdtemp(prefix=f".{output.name}.old-", dir=output.parent))
    os.rename(output, old / "export")
    try:
        os.rename(staging, output)
    except BaseException:
        os.rename(old / "export", output)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _exchange(a: pathlib.Path, b: pathlib.Path) -> bool:
    """Atomically swaps two paths (Linux `renameat2(RENAME_EXCHANGE)`); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
