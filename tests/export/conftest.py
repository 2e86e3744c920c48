"""Exports shared by the export tests: each registry model is trained, checkpointed and exported
once per session (per quantization), on first use."""

import pytest
from export_registry import EXPORT_MODELS, Exported, load_model, make_trained_run

from rnnzoo.zoo import export_run


class ExportCache:
    def __init__(self, root):
        self.root = root
        self._runs = {}
        self._exports = {}

    def run(self, name):
        if name not in self._runs:
            self._runs[name] = make_trained_run(self.root / name, name)
        return self._runs[name]

    def get(self, name, quantize="none") -> Exported:
        key = (name, quantize)
        if key not in self._exports:
            run, trained = self.run(name)
            output = self.root / f"{name}-export-{quantize}"
            export_run(run.path, output, quantize=quantize, log=lambda *_: None)
            restored, vocab = load_model(run)
            self._exports[key] = Exported(name, run, output, trained, restored, vocab)
        return self._exports[key]


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    return ExportCache(tmp_path_factory.mktemp("exports"))


@pytest.fixture(params=sorted(EXPORT_MODELS))
def model_name(request):
    """Every model of the registry."""
    return request.param
