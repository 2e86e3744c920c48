"""Exporting a trained run: the model rebuilt from its run directory, written out atomically.

    <output>/saved_model/   SavedModel: generate (= serving_default), step, initial_state
    <output>/model.tflite   the batch-1 `step` signature, builtin LiteRT ops only
    <output>/model.json     vocabulary, state layout, limits, quality (`ExportMetadata`)

Everything is written into a hidden staging directory beside `<output>` and moved into place
only once complete and checked (TFLite ops, logit parity with the SavedModel). A failed export
removes its staging directory; an existing export is swapped out in one `renameat2` exchange on
Linux (two renames elsewhere), so readers see the old export or the new one, never a mix.

What may be replaced (`check_replaceable`): nothing but an empty directory or an rnnzoo export
that holds only what rnnzoo wrote: its `model.json` must parse as an export's (`"format":
"rnnzoo.export"`, or `"rnnzoo.word_vectors"` for word vectors, `"version": 1`, checked
strictly), and every file and directory in it must
be one the export recorded in `model.json`'s `files` (exports older than that list: the known
layout). Anything else is refused with an `ExportError` naming the directory and the files,
and nothing is deleted.

The staging directory `.<output name>.tmp-<12 hex digits>/` holds the export being written
(`export/`), the temporary files of the conversion (`tmp/`) and a lock file that the export
holds (`flock`) until it ends. An export killed on the way leaves its staging directory; the
next export to the same output removes each one whose lock it can take (the OS releases a dead
process's lock) and leaves everything else alone: a live export's staging directory, and any
name or directory it did not make.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import pathlib
import re
import secrets
import shutil
import stat
import sys

try:
    import fcntl
except ImportError:  # not POSIX: no locks, so no staging directory is ever provably stale
    fcntl = None

import tensorflow as tf

from rnnzoo.data.vocab import Vocabulary
from rnnzoo.export import contract, parity, tflite
from rnnzoo.export import metadata as metadata_module
from rnnzoo.export.metadata import ExportMetadata, MetadataError
from rnnzoo.export.serving import GenerationModule, save_with_vocab_asset
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
                 val_perplexity_source: str | None = None, scratch_dir=None) -> ExportResult:
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
        scratch_dir: an existing directory for temporary files (removed before returning);
            default the system's temporary directory.

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

    save_with_vocab_asset(lambda asset: GenerationModule(model, vocab, asset), vocab,
                          saved_model_dir, scratch_dir=scratch_dir)

    try:
        flatbuffer = tflite.convert_step(model, quantize, scratch_dir=scratch_dir)
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
                     "vocab_asset": f"assets/{contract.VOCAB_ASSET}"},
        files=written_files(directory))
    (directory / contract.METADATA_FILE).write_text(metadata.to_json(), encoding="utf-8")
    return ExportResult(directory, metadata, report)


def check_quantize(quantize: str) -> None:
    if quantize not in contract.QUANTIZE_MODES:
        raise ExportError(f"`quantize` must be one of {list(contract.QUANTIZE_MODES)}, "
                          f"got {quantize!r}")


def export_model_atomic(model, vocab: Vocabulary, output, **kwargs) -> ExportResult:
    """`export_model` into a staging directory, moved to `output` once complete and checked.

    An existing export at `output` that holds only what rnnzoo wrote is replaced; anything else
    is refused (`check_replaceable`).
    """
    output = pathlib.Path(output)
    with staged_directory(output) as staging:
        result = export_model(model, vocab, staging.export, scratch_dir=staging.scratch,
                              **kwargs)
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


STAGING_LOCK = "lock"  # the lock file inside a staging directory
_STAGING_SUFFIX = re.compile(r"\.tmp-[0-9a-f]{12}")  # after ".<output name>"

# The files of an export written before `model.json` recorded them (`ExportMetadata.files`).
_KNOWN_LAYOUT = tuple(re.compile(p) for p in (
    re.escape(contract.METADATA_FILE), re.escape(contract.TFLITE_FILE),
    re.escape(contract.SAVED_MODEL_DIR) + r"/(|saved_model\.pb|fingerprint\.pb|variables/|"
    r"variables/variables\.index|variables/variables\.data-\d{5}-of-\d{5}|assets/|"
    + re.escape(f"assets/{contract.VOCAB_ASSET}") + ")"))


@dataclasses.dataclass(frozen=True)
class Staging:
    """Where an export is being written: `export` (not created yet) and `scratch` (exists)."""

    export: pathlib.Path
    scratch: pathlib.Path


@contextlib.contextmanager
def staged_directory(output):
    """Yields a `Staging` beside `output`; moves its `export` to `output` on success.

    `output` must be absent, an empty directory or a replaceable export (`check_replaceable`,
    checked before and again just before the move). Stale staging directories of earlier
    exports to `output` are removed first (`remove_stale_staging`). On an exception the staging
    directory is removed and `output` is left as it was.
    """
    output = pathlib.Path(output).absolute()
    check_replaceable(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(output)
    staging, lock = _make_staging(output)
    try:
        scratch = staging / "tmp"
        scratch.mkdir()
        yield Staging(export=staging / "export", scratch=scratch)
        shutil.rmtree(scratch, ignore_errors=True)
        check_replaceable(output)  # again: files may have arrived during the export
        _move_into_place(staging / "export", output, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if lock is not None:
            os.close(lock)  # only now: the directory must not look stale while it exists


def check_replaceable(output) -> None:
    """Raises `ExportError` unless an export may be written to `output`.

    Allowed: `output` does not exist, or is an empty directory, or is an rnnzoo export that
    holds only what rnnzoo wrote: a `model.json` that parses as an export's (format and version
    checked strictly, `ExportMetadata.from_json`, or `WordVectorsMetadata.from_json` for an
    export of word vectors: `metadata.read_any`), and nothing but the files and directories
    that it lists in `files` (the known layout for exports older than that list); a symbolic
    link is never rnnzoo's. The error names `output` and what is in the way.
    """
    output = pathlib.Path(output)
    if not os.path.lexists(output):
        return
    refuse = f"refusing to replace {output}"
    if output.is_symlink() or not output.is_dir():
        what = "a symbolic link" if output.is_symlink() else "not a directory"
        raise ExportError(f"{output} exists and is not an rnnzoo export (it is {what}); {refuse}")
    try:
        top = sorted(e.name + ("/" if e.is_dir(follow_symlinks=False) else "")
                     for e in os.scandir(output))
        if not top:
            return
        metadata_path = output / contract.METADATA_FILE
        if (contract.METADATA_FILE not in top or metadata_path.is_symlink()
                or not metadata_path.is_file()):
            raise ExportError(f"{output} exists and is not an rnnzoo export (no "
                              f"{contract.METADATA_FILE}; it holds {', '.join(_shown(top))}); "
                              f"{refuse}")
        try:
            metadata = metadata_module.read_any(metadata_path.read_text(encoding="utf-8"),
                                                source=str(metadata_path))
        except (MetadataError, UnicodeDecodeError) as e:
            raise ExportError(f"{output} exists and is not an rnnzoo export ({e}; it holds "
                              f"{', '.join(_shown(top))}); {refuse}") from None
        recorded = _recorded(metadata.files, metadata_path)

        def is_ours(rel: str) -> bool:
            if recorded is None:
                return any(pattern.fullmatch(rel) for pattern in _KNOWN_LAYOUT)
            return rel in recorded

        # A foreign directory is named, not walked.
        foreign = [rel for rel, kind in _entries(output, descend=is_ours)
                   if kind == "other" or not is_ours(rel)]
    except OSError as e:
        raise ExportError(f"cannot read {output} to check it is an rnnzoo export: {e}; "
                          f"{refuse}") from None
    if foreign:
        raise ExportError(f"{output} is an rnnzoo export, but holds files that rnnzoo did not "
                          f"write: {', '.join(_shown(foreign))}; {refuse} (move them out of "
                          "it, or export elsewhere)")


def _recorded(files, source) -> set[str] | None:
    """The entries `model.json` lists in `files` (None: not recorded); refuses a bad list."""
    if files is None:
        return None
    if not isinstance(files, list) or not all(
            isinstance(f, str) and f and not f.startswith("/")
            and all(part not in ("", ".", "..") for part in f.removesuffix("/").split("/"))
            for f in files):
        raise ExportError(f"{source}: `files` must be a list of relative paths, got {files!r}; "
                          f"refusing to replace {pathlib.Path(source).parent}")
    return set(files)


def written_files(directory) -> list[str]:
    """What an export records in `model.json`'s `files`: everything under `directory` and
    `model.json` itself (written last), sorted."""
    return sorted([*(rel for rel, _ in _entries(pathlib.Path(directory))),
                   contract.METADATA_FILE])


def _entries(root: pathlib.Path, descend=lambda rel: True) -> list[tuple[str, str]]:
    """`(relative POSIX path, kind)` of everything under `root`, in order; kind: "file", "dir"
    (the path ends in "/") or "other" (a symbolic link, a socket...: an export writes none).
    Walks into a directory only if `descend(its path)`."""
    found = []

    def walk(directory: pathlib.Path, prefix: str) -> None:
        with os.scandir(directory) as it:
            for entry in sorted(it, key=lambda e: e.name):
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    found.append((rel + "/", "dir"))
                    if descend(rel + "/"):
                        walk(pathlib.Path(entry.path), rel + "/")
                else:
                    found.append((rel, "file" if entry.is_file(follow_symlinks=False)
                                  else "other"))

    walk(root, "")
    return found


def _shown(names: list[str], limit: int = 10) -> list[str]:
    return names if len(names) <= limit else [*names[:limit], f"and {len(names) - limit} more"]


def remove_stale_staging(output) -> list[pathlib.Path]:
    """Removes the staging directories of exports to `output` that were killed; returns them.

    A directory beside `output` is removed only if its name is `.<output name>.tmp-<12 hex
    digits>`, it is a directory (not a link), it holds the regular file `lock`, and that lock
    can be taken: an export holds it until it ends, and the OS releases it when the process
    dies. Anything else, a live export's staging directory included, is left alone. When the
    killed export had already moved the old export aside but not yet the new one into place
    (the two-renames path), the old export is moved back to `output` first.
    """
    if fcntl is None:
        return []
    output = pathlib.Path(output).absolute()
    prefix = f".{output.name}"
    removed = []
    try:
        candidates = [e for e in os.scandir(output.parent) if e.name.startswith(prefix)
                      and _STAGING_SUFFIX.fullmatch(e.name[len(prefix):])
                      and e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    for entry in candidates:
        staging = pathlib.Path(entry.path)
        try:
            lock = os.open(staging / STAGING_LOCK, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue  # no lock file: not made by this code, or not finished being made
        try:
            if not stat.S_ISREG(os.fstat(lock).st_mode):
                continue
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live export holds it
            previous = staging / "previous"
            if previous.is_dir() and not previous.is_symlink() and not os.path.lexists(output):
                try:
                    os.rename(previous, output)
                except OSError:
                    continue  # keep it all rather than lose the old export
            shutil.rmtree(staging, ignore_errors=True)
            removed.append(staging)
        finally:
            os.close(lock)
    return removed


def _make_staging(output: pathlib.Path) -> tuple[pathlib.Path, int | None]:
    """Creates a private staging directory beside `output` and takes its lock.

    Returns `(path, lock fd)`; the lock is held until the fd is closed. A concurrent
    `remove_stale_staging` may take the lock of a directory just made, before this does, and
    remove it: then this tries again with a new name.
    """
    for _ in range(100):
        staging = output.parent / f".{output.name}.tmp-{secrets.token_hex(6)}"
        try:
            os.mkdir(staging, 0o700)
        except FileExistsError:
            continue
        except OSError as e:
            raise ExportError(f"cannot create a staging directory beside {output}: {e}") from None
        if fcntl is None:
            return staging, None
        lock_path = staging / STAGING_LOCK
        try:
            lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileNotFoundError:
            continue  # removed under us
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = os.stat(lock_path, follow_symlinks=False)
            mine = os.fstat(lock)
            if (held.st_dev, held.st_ino) == (mine.st_dev, mine.st_ino):
                return staging, lock
        except OSError:
            pass  # locked or removed by a cleaner: it removes the directory
        os.close(lock)
    raise ExportError(f"cannot create a staging directory beside {output}")


def _move_into_place(export: pathlib.Path, output: pathlib.Path,
                     staging: pathlib.Path) -> None:
    """Renames `export` to `output`; an existing `output` ends up in `staging` (then deleted).

    With `renameat2(RENAME_EXCHANGE)` the old export lands at `export`'s path; otherwise it is
    first renamed to `staging/previous` (which `remove_stale_staging` puts back if the process
    dies before the second rename).
    """
    if not output.exists():
        os.rename(export, output)
        return
    if _exchange(export, output):
        return
    previous = staging / "previous"
    os.rename(output, previous)
    try:
        os.rename(export, output)
    except BaseException:
        os.rename(previous, output)
        raise


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
