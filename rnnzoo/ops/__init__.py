"""rnnzoo's C++ TensorFlow ops, compiled on first use against the installed TensorFlow.

    ops = load_word2vec_ops()          # the loaded op library, or None (see unavailable_reason)
    loss = ops.rnnzoo_word2vec_negative_sgd(E.handle, W.handle, inputs, mask, labels, negs, lr)
    ops = load_recurrent_ops()         # the LSTM / GRU sequence ops (or None), recurrent_kernels.cc

The sources live beside this file. The first call compiles them with the system's C++ compiler
(`$CXX`, else `c++`) and `tf.sysconfig`'s flags into a cache directory (`$RNNZOO_CACHE_DIR`, else
`~/.cache/rnnzoo`), keyed by a hash of the source, the TensorFlow version and the flags, so a
new TensorFlow or a changed source rebuilds, and later processes load the cached library (the
library is written to a temporary name and renamed, so concurrent first uses cannot load half a
file). With no compiler, or if the build fails, the loader returns None and the callers use
their pure-TensorFlow path; `RNNZOO_OPS=off` forces that path.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile

import tensorflow as tf

SOURCE_DIR = pathlib.Path(__file__).resolve().parent
WORD2VEC_SOURCE = "word2vec_kernels.cc"
RECURRENT_SOURCE = "recurrent_kernels.cc"
ENV_SWITCH = "RNNZOO_OPS"  # "off": never build or load the ops


class OpsUnavailable(RuntimeError):
    """The C++ ops cannot be built or loaded here (the message says why)."""


def cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("RNNZOO_CACHE_DIR")
                        or pathlib.Path.home() / ".cache" / "rnnzoo") / "ops"


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")


def _flags() -> list[str]:
    return ["-std=c++17", "-shared", "-fPIC", "-O3", "-march=native", "-w",
            *[f for f in tf.sysconfig.get_compile_flags() if not f.startswith("--std")],
            *tf.sysconfig.get_link_flags()]


def _cpu() -> str:
    """The CPU's model and features (`-march=native` code may not run on another CPU)."""
    try:
        info = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return "\n".join(sorted({line for line in info
                             if line.startswith(("model name", "flags"))}))


def build(source: str, *, log=None) -> pathlib.Path:
    """Compiles `source` (a file beside this module) once; returns the shared library's path.

    Raises:
        OpsUnavailable: no C++ compiler, or the compiler failed (its last lines in the message).
    """
    compiler = _compiler()
    if compiler is None:
        raise OpsUnavailable("no C++ compiler found (set $CXX, or install g++)")
    path = SOURCE_DIR / source
    flags = _flags()
    key = hashlib.sha256(b"\0".join([path.read_bytes(), tf.__version__.encode(),
                                     " ".join(flags).encode(), sys.version.encode(),
                                     _cpu().encode()]))
    target = cache_dir() / f"{path.stem}-{key.hexdigest()[:16]}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if log is not None:
        log(f"compiling {source} (once per TensorFlow version) into {target.parent}")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = pathlib.Path(tmp) / target.name
        done = subprocess.run([compiler, str(path), "-o", str(partial), *flags],
                              capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            raise OpsUnavailable(f"compiling {source} failed ({compiler}):\n{tail}")
        os.replace(partial, target)
    return target


_FAILED: dict[str, str] = {}  # source -> why its build failed in this process (not retried)


@functools.cache
def _load(source: str):
    if source in _FAILED:
        raise OpsUnavailable(_FAILED[source])
    try:
        path = build(source, log=lambda m: print(m, file=sys.stderr))
    except OpsUnavailable as e:
        _FAILED[source] = str(e)
        raise
    return tf.load_op_library(str(path))


def _load_or_none(source: str, required: bool):
    try:
        if os.environ.get(ENV_SWITCH, "").lower() == "off":
            raise OpsUnavailable(f"${ENV_SWITCH} is 'off'")
        return _load(source)
    except OpsUnavailable:
        if required:
            raise
        return None


def load_word2vec_ops(*, required: bool = False):
    """The word2vec op library, or None when it cannot be had (`required`: raise instead).

    Raises:
        OpsUnavailable: `required` and the ops are switched off or cannot be built.
    """
    return _load_or_none(WORD2VEC_SOURCE, required)


def load_recurrent_ops(*, required: bool = False):
    """The recurrent sequence ops (`RnnzooLstmSequence`, `RnnzooGruSequence` and their
    gradients), or None when they cannot be had (`required`: raise instead)."""
    return _load_or_none(RECURRENT_SOURCE, required)


def unavailable_reason(loader=load_word2vec_ops) -> str | None:
    """Why `loader()` gives None, or None when its ops load."""
    try:
        loader(required=True)
    except OpsUnavailable as e:
        return str(e)
    return None
