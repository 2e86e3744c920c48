"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import os
import pathlib
import tempfile


def write_bytes_atomic(path, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file in the same folder, flushed to disk and
    then renamed over `path`: a crash leaves the old file or the new one, never a mix. The file
    gets the usual `0o666 & ~umask` permissions."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path, text: str) -> None:
    """Writes `text` as UTF-8 with `\\n` newlines (no translation), atomically and with the
    usual permissions, like `write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))
