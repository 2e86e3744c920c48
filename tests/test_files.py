"""rnnzoo.files: atomic writes of bytes and text."""

import os
import stat

import pytest

from rnnzoo.files import write_bytes_atomic, write_text_atomic


def test_write_bytes_atomic_replaces_the_file_with_umask_permissions(tmp_path):
    path = tmp_path / "sub" / "out.bin"
    old_umask = os.umask(0o027)
    try:
        write_bytes_atomic(path, b"old")
        write_bytes_atomic(path, b"\x89PNG\r\n\x00new")
    finally:
        os.umask(old_umask)
    assert path.read_bytes() == b"\x89PNG\r\n\x00new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(path.parent) == ["out.bin"]


def test_write_text_atomic_writes_utf8_without_newline_translation(tmp_path):
    path = tmp_path / "out.txt"
    write_text_atomic(path, "分开\r\nline\n")
    assert path.read_bytes() == "分开\r\nline\n".encode()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    write_text_atomic(path, "old")
    with pytest.raises(TypeError):
        write_bytes_atomic(path, "not bytes")
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(path, "\ud800")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]
