"""Shared fixtures: where the real corpora live, and a scratch TFDS data directory."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _source_dir() -> pathlib.Path:
    env = os.environ.get("RNNZOO_DATA_DIR")
    # Absolute: tests run CLIs from other working directories.
    return (pathlib.Path(env) if env else REPO_ROOT.parent / "shared" / "datasets").resolve()


@pytest.fixture(scope="session")
def source_dir() -> pathlib.Path:
    """The directory holding the original corpus files (../shared/datasets by default)."""
    path = _source_dir()
    if not (path / "timemachine.txt").exists():
        pytest.fail(f"real corpora not found in {path}; set RNNZOO_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory) -> pathlib.Path:
    """A TFDS data_dir shared by the whole session, so each corpus is prepared once."""
    return tmp_path_factory.mktemp("tfds")
