"""Running an exported `model.tflite` the way a phone does: the stock LiteRT runtime and NumPy.

No TensorFlow here: `ai_edge_litert` (the runtime `tf.lite.Interpreter` became) runs the `step`
signature; `model.json` beside the file (`rnnzoo.export.metadata`) gives the vocabulary.
"""

from __future__ import annotations

import pathlib

import numpy as np

from rnnzoo.export import contract


class TFLiteStepModel:
    """The `step` signature of a `model.tflite` in the stock LiteRT runtime, batch 1.

    Args:
        model: the `.tflite` file, an export directory holding one, or the flatbuffer bytes.
        num_threads: interpreter threads.

    Example (the vocabulary comes from `model.json`, see `ExportMetadata`):
        lm = TFLiteStepModel("runs/lstm/export/model.tflite")
        state = lm.initial_state()
        for token_id in ExportMetadata.load("runs/lstm/export/model.json").encode("分开"):
            logits, state = lm.step(token_id, state)
    """

    def __init__(self, model, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(model, bytes):
            self.path = None
            self._interpreter = Interpreter(model_content=model, num_threads=num_threads)
        else:
            path = pathlib.Path(model)
            if path.is_dir():
                path = path / contract.TFLITE_FILE
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist")
            self.path = path
            self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self._runner = self._interpreter.get_signature_runner(contract.STEP)
        self.state_size = int(self._runner.get_input_details()["state"]["shape"][1])
        self.vocab_size = int(self._runner.get_output_details()["logits"]["shape"][1])

    def initial_state(self) -> np.ndarray:
        """Zeros, float32 `[1, state_size]`."""
        return np.zeros([1, self.state_size], np.float32)

    def step(self, token_id: int, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One character: `(logits float32 [vocab_size], new state float32 [1, state_size])`."""
        out = self._runner(token_ids=np.array([token_id], np.int32),
                           state=np.asarray(state, np.float32))
        return out["logits"][0], out["state"]
