"""Export of trained runs: serving modules, SavedModel, TFLite, parity and quality checks.

    contract   file and signature names, limits, the packed state layout (pure Python)
    metadata   model.json (pure Python)
    runtime    model.tflite in the stock LiteRT runtime (NumPy + ai_edge_litert, no TensorFlow)
    serving    the tf.Modules behind the signatures
    tflite     conversion of the batch-1 step, builtin-op check
    parity     Keras vs SavedModel vs TFLite logits
    quality    perplexity of an exported model on held-out ids
    exporter   export_model(_atomic): a model -> an export directory, atomically (a task's
               export_run rebuilds the model from its run directory: `rnnzoo.zoo.export_run`)
    word_vectors          a word2vec run's vectors -> word2vec text / binary files, TensorBoard
                          projector files, a SavedModel, atomically (the exporter's staging)
    word_vectors_serving  the tf.Module behind that SavedModel's `embed` and `nearest`

Never imports `rnnzoo.training`. The names below load their module (and TensorFlow) on first
use, so that reading an export with `runtime` needs no TensorFlow.
"""

import importlib

_LAZY = {
    "ExportError": "exporter", "ExportResult": "exporter", "export_model": "exporter",
    "export_model_atomic": "exporter", "ExportMetadata": "metadata", "MetadataError": "metadata",
    "TFLiteStepModel": "runtime", "tflite_perplexity": "quality",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"rnnzoo.export.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'rnnzoo.export' has no attribute {name!r}")
