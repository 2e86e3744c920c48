"""The seams: reading an export needs no TensorFlow; rnnzoo.export never imports training."""

import subprocess
import sys
import textwrap

_CHECK = textwrap.dedent("""
    import sys
    import rnnzoo.generate, rnnzoo.export, rnnzoo.export.contract, rnnzoo.export.metadata
    import rnnzoo.export.runtime, rnnzoo.translate
    assert "tensorflow" not in sys.modules, "the TFLite path imported TensorFlow"
    import rnnzoo.export.exporter, rnnzoo.export.parity, rnnzoo.export.quality
    import rnnzoo.export.serving, rnnzoo.export.tflite
    import rnnzoo.export.word_vectors, rnnzoo.export.word_vectors_serving
    import rnnzoo.export.translator
    rnnzoo.export.export_model_atomic, rnnzoo.export.TFLiteStepModel
    training = sorted(m for m in sys.modules if m.startswith("rnnzoo.training"))
    assert not training, training
    print("ok")
""")


def test_import_seams():
    proc = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
