"""Exports shared by the export tests: each registry model is trained, checkpointed and exported
once per session (per quantization), on first use. A test that writes to a run or an export
works on its own copy (`copy_run`, `copy_export`): copying a directory takes milliseconds,
training or exporting seconds."""

import shutil

import pytest
from export_registry import EXPORT_MODELS, Exported, load_model, make_trained_run

from rnnzoo.run_dir import RunDir
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

    def copy_run(self, name, path) -> RunDir:
        """A copy at `path` of the shared run of `name` (run directories hold relative paths
        only), for a test that changes it or writes into it."""
        run, _ = self.run(name)
        shutil.copytree(run.path, path)
        return RunDir(path)

    def copy_export(self, name, path, quantize="none"):
        """A copy at `path` of the shared export of `name`: what `export_run(run, path)` of a
        copy of its run writes (model.json names no path), for a test that changes it."""
        shutil.copytree(self.get(name, quantize).path, path)
        return path


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    return ExportCache(tmp_path_factory.mktemp("exports"))


@pytest.fixture(params=sorted(EXPORT_MODELS))
def model_name(request):
    """Every model of the registry."""
    return request.param
