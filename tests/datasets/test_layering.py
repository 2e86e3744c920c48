"""rnnzoo_datasets sits below rnnzoo: no module in it imports rnnzoo, and the one
CorpusError class is defined there and re-exported by rnnzoo.data.errors."""

import ast
import pathlib

import rnnzoo_datasets
import rnnzoo_datasets.errors
from rnnzoo.data import errors as rnnzoo_errors

PACKAGE_DIR = pathlib.Path(rnnzoo_datasets.__file__).parent


def rnnzoo_imports(source: str) -> list[str]:
    """The modules of package `rnnzoo` (not `rnnzoo_datasets`) that `source` imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [name for name in names if name == "rnnzoo" or name.startswith("rnnzoo.")]
    return found


def test_the_scan_finds_rnnzoo_imports():
    source = (
        "import os\nimport rnnzoo\nimport rnnzoo_datasets.text8\n"
        "from rnnzoo_datasets import sources\n"
        "def f():\n    from rnnzoo.data.errors import CorpusError\n"
    )
    assert rnnzoo_imports(source) == ["rnnzoo", "rnnzoo.data.errors"]


def test_rnnzoo_datasets_never_imports_rnnzoo():
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    names = {path.relative_to(PACKAGE_DIR).as_posix() for path in files}
    assert {"sources.py", "errors.py", "text8/text8_dataset_builder.py"} <= names
    offending = {
        path.relative_to(PACKAGE_DIR).as_posix(): rnnzoo_imports(path.read_text())
        for path in files
    }
    assert {name: found for name, found in offending.items() if found} == {}


def test_corpus_error_is_one_class():
    assert rnnzoo_errors.CorpusError is rnnzoo_datasets.errors.CorpusError
    assert issubclass(rnnzoo_errors.CorpusError, ValueError)
