"""TFLite conversion of the batch-1 `step` signature, builtin LiteRT ops only, weights frozen.

How (each step is there because a shorter route failed on TF 2.21 / Keras 3):

1. `TFLiteStepModule` (no string tables: a table would drag its initializer into the
   conversion) is saved as a SavedModel in a scratch directory.
2. That SavedModel is loaded back, and the loaded object saved again with its `step` signature.
   Converting the first SavedModel directly, or the fresh module's concrete function with the
   module as trackable object, keeps the Keras 3 weights as resource variables (VAR_HANDLE /
   READ_VARIABLE ops and no weights in the file); without a trackable object the weights are
   frozen but the file has no signature. The reloaded object's variables are plain
   `tf.Variable`s, which the converter freezes into constants, and the signature keeps its name.
3. `TFLiteConverter.from_saved_model(..., signature_keys=["step"])` with
   `supported_ops = [TFLITE_BUILTINS]` only, so the stock runtime runs it (no Flex delegate).

`check_builtin_only` then reads the operator codes of the flatbuffer and refuses anything else.
"""

from __future__ import annotations

import pathlib
import tempfile

import tensorflow as tf

from rnnzoo.export import contract
from rnnzoo.export.serving import TFLiteStepModule

# Ops that mean the weights were not frozen: the file would need variables initialised at run
# time, which nothing in a plain `step` call does.
VARIABLE_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE",
                          "HASHTABLE", "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE"})


class TFLiteExportError(RuntimeError):
    """The TFLite conversion failed or produced a file the stock runtime cannot run."""


def convert_step(model, quantize: str = "none", *, scratch_dir=None) -> bytes:
    """The `.tflite` flatbuffer of `model`'s batch-1 `step` signature.

    Args:
        model: a `CharLM`.
        quantize: "none" (float32), "dynamic" (int8 weights, float activations: dynamic-range
            quantization) or "float16" (float16 weights, computed in float32).
        scratch_dir: an existing directory for the two intermediate SavedModels (removed before
            returning); default the system's temporary directory. An export passes its staging
            directory, so that a killed export leaves nothing elsewhere.
    """
    if quantize not in contract.QUANTIZE_MODES:
        raise ValueError(f"`quantize` must be one of {list(contract.QUANTIZE_MODES)}, "
                         f"got {quantize!r}")
    module = TFLiteStepModule(model)
    return convert_module(module, {contract.STEP: module.step}, quantize,
                          scratch_dir=scratch_dir, what="the step function")


def convert_module(module, signatures: dict, quantize: str = "none", *, scratch_dir=None,
                   what: str = "the model") -> bytes:
    """The `.tflite` flatbuffer of `module`'s `signatures` (name -> `tf.function` with a pinned
    batch-1 input signature), builtin ops only, weights frozen (the module docstring's route);
    `quantize` and `scratch_dir` as `convert_step`'s. Raises `TFLiteExportError`."""
    if quantize not in contract.QUANTIZE_MODES:
        raise ValueError(f"`quantize` must be one of {list(contract.QUANTIZE_MODES)}, "
                         f"got {quantize!r}")
    keys = sorted(signatures)
    with tempfile.TemporaryDirectory(prefix="rnnzoo-tflite-", dir=scratch_dir) as scratch:
        first, second = pathlib.Path(scratch, "module"), pathlib.Path(scratch, "reloaded")
        tf.saved_model.save(module, str(first), signatures=signatures)
        reloaded = tf.saved_model.load(str(first))
        tf.saved_model.save(reloaded, str(second),
                            signatures={k: reloaded.signatures[k] for k in keys})
        converter = tf.lite.TFLiteConverter.from_saved_model(str(second), signature_keys=keys)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        try:
            flatbuffer = converter.convert()
        except Exception as e:  # the converter raises several private error types
            raise TFLiteExportError(f"TFLite conversion of {what} failed: {e}") from e
    check_builtin_only(flatbuffer, keys)
    return flatbuffer


def op_names(flatbuffer: bytes) -> list[str]:
    """The operators a `.tflite` file uses: builtin names, or `CUSTOM:<code>` (Flex ops too)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(flatbuffer, 0)
    ops = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        # Codes < 127 are also kept in the deprecated int8 field; the larger of the two is real.
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.CustomCode()
            ops.append("CUSTOM:" + (custom.decode() if custom else "?"))
        else:
            ops.append(names.get(builtin, f"UNKNOWN_BUILTIN_{builtin}"))
    return ops


def signature_keys(flatbuffer: bytes) -> list[str]:
    """The signature keys a `.tflite` file declares."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(flatbuffer, 0)
    return [model.SignatureDefs(i).SignatureKey().decode()
            for i in range(model.SignatureDefsLength())]


def check_builtin_only(flatbuffer: bytes, keys=(contract.STEP,)) -> None:
    """Raises `TFLiteExportError` unless the file is builtin ops only, with the signatures
    `keys` (default: a character LM's one `step`)."""
    ops = op_names(flatbuffer)
    custom = [op for op in ops if op.startswith(("CUSTOM:", "UNKNOWN_BUILTIN_"))]
    variables = sorted(VARIABLE_OPS.intersection(ops))
    if custom or variables:
        raise TFLiteExportError(
            "the TFLite file needs more than the builtin LiteRT ops: "
            + "; ".join(filter(None, [custom and f"custom/Flex ops {custom}",
                                      variables and f"variable/table ops {variables}"])))
    found = signature_keys(flatbuffer)
    if sorted(found) != sorted(keys):
        raise TFLiteExportError(f"the TFLite file must have the signatures {sorted(keys)}, "
                                f"got {found}")
