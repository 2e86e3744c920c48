"""Offline, preparing a corpus fails in seconds, names $RNNZOO_DATA_DIR and leaves nothing; a file
TFDS has already downloaded needs no network.

The network is simulated, never used: a name lookup that fails or never answers, or an HTTP(S)
proxy on a closed localhost port (or on a local server that plays the upstream host).
"""

from __future__ import annotations

import http.server
import pathlib
import socket
import threading
import time

import pytest
import tensorflow_datasets as tfds

from rnnzoo.data.corpora import load_text
from rnnzoo.data.errors import CorpusError
from rnnzoo_datasets import sources

tfds.disable_progress_bar()

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
UPSTREAM_HOSTS = {
    "time_machine/d2l": "d2l-data.s3-accelerate.amazonaws.com",
    "text8/prefix": "mattmahoney.net",  # the prefix is cut from text8.zip
    "tiny_shakespeare": "raw.githubusercontent.com",
    "jaychou_lyrics/full": "raw.githubusercontent.com",
}


@pytest.fixture(autouse=True)
def no_source_dir_nor_proxy(monkeypatch):
    """No local source directory, no proxy from the environment, no host known to answer."""
    monkeypatch.delenv(sources.SOURCE_DIR_ENV, raising=False)
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setattr(sources, "_reachable", set(), raising=False)


@pytest.fixture
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set_proxy(monkeypatch, url: str) -> None:
    for name in ("http_proxy", "https_proxy"):
        monkeypatch.setenv(name, url)
        monkeypatch.setenv(name.upper(), url)


def _no_network(way: str, monkeypatch, closed_port: int) -> None:
    real_getaddrinfo = socket.getaddrinfo

    def no_dns(host, *args, **kwargs):
        if host in ("127.0.0.1", "localhost"):
            return real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def silent_dns(host, *args, **kwargs):  # a DNS server that never answers
        if host in ("127.0.0.1", "localhost"):
            return real_getaddrinfo(host, *args, **kwargs)
        time.sleep(20)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    if way == "no_dns":
        monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    elif way == "silent_dns":
        monkeypatch.setattr(socket, "getaddrinfo", silent_dns)
        monkeypatch.setattr(sources, "PROBE_TIMEOUT", 1.0, raising=False)
    else:  # every request goes to a proxy that refuses connections
        _set_proxy(monkeypatch, f"http://127.0.0.1:{closed_port}")


def _within(seconds: float, fn, *args, **kwargs):
    """`(exception or None, elapsed)` of `fn(...)`; fails the test if it takes over `seconds`
    (the call is left running in a daemon thread: TFDS's retries take minutes)."""
    outcome = []

    def target():
        try:
            fn(*args, **kwargs)
            outcome.append(None)
        except Exception as e:  # noqa: BLE001 - handed to the test
            outcome.append(e)

    start = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"no answer after {seconds} s offline: still waiting on download retries")
    return outcome[0], time.monotonic() - start


def _half_prepared(tfds_root: pathlib.Path) -> list[str]:
    """What a failed preparation must not leave: TFDS's incomplete.* and download *.tmp.*
    directories, and dataset version directories."""
    return sorted(str(p.relative_to(tfds_root)) for p in tfds_root.rglob("*")
                  if "incomplete" in p.name or ".tmp." in p.name
                  or (p.is_dir() and p.name[:1].isdigit()))


@pytest.mark.parametrize("way", ["no_dns", "proxy_refuses", "silent_dns"])
@pytest.mark.parametrize("name", sorted(UPSTREAM_HOSTS))
def test_offline_load_text_fails_fast_naming_the_remedy(name, way, tmp_path, monkeypatch,
                                                        closed_port):
    _no_network(way, monkeypatch, closed_port)
    error, elapsed = _within(20, load_text, name, tfds_dir=tmp_path / "tfds")
    assert isinstance(error, CorpusError), repr(error)
    assert elapsed < 8, f"took {elapsed:.1f} s"
    message = str(error)
    assert "$RNNZOO_DATA_DIR" in message and "cannot download" in message, message
    assert (f"127.0.0.1:{closed_port}" if way == "proxy_refuses"
            else UPSTREAM_HOSTS[name]) in message, message
    # Checked before TFDS starts: nothing at all is written.
    written = [p for p in (tmp_path / "tfds").rglob("*") if p.is_file()]
    assert not written and not _half_prepared(tmp_path / "tfds")


@pytest.mark.parametrize("way", ["no_dns", "proxy_refuses"])
def test_offline_tfds_builder_fails_fast_too(way, tmp_path, monkeypatch, closed_port):
    """Through TFDS alone (tfds.load, no rnnzoo.data.corpora), the builder's own download
    step checks first."""
    _no_network(way, monkeypatch, closed_port)
    builder = tfds.builder("time_machine/raw", data_dir=tmp_path / "tfds", try_gcs=False)
    config = tfds.download.DownloadConfig(try_download_gcs=False)
    error, elapsed = _within(20, builder.download_and_prepare, download_config=config)
    assert isinstance(error, CorpusError) and "$RNNZOO_DATA_DIR" in str(error), repr(error)
    assert elapsed < 8, f"took {elapsed:.1f} s"
    assert not _half_prepared(tmp_path / "tfds")
    assert not builder.is_prepared()


class _Upstream(http.server.BaseHTTPRequestHandler):
    """A proxy that answers every GET with the file of that name from `server.files`."""

    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.requests.append(self.path)
        path = self.server.files / self.path.rsplit("/", 1)[-1]
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream(source_dir):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.files, server.requests = source_dir, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_download_tfds_has_cached_needs_no_network(upstream, source_dir, tmp_path,
                                                     monkeypatch, closed_port):
    # Online (through a proxy that plays the upstream host): downloaded once, into the cache.
    _set_proxy(monkeypatch, f"http://127.0.0.1:{upstream.server_address[1]}")
    assert load_text("time_machine/d2l", tfds_dir=tmp_path / "tfds")
    assert upstream.requests == ["http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"]

    # Offline: another config of the same file is built from TFDS's download cache.
    _set_proxy(monkeypatch, f"http://127.0.0.1:{closed_port}")
    monkeypatch.setattr(sources, "_reachable", set(), raising=False)
    raw = load_text("time_machine/raw", "validation", tfds_dir=tmp_path / "tfds")
    assert raw == load_text("time_machine/raw", "validation", source_dir=source_dir,
                            tfds_dir=tmp_path / "reference")
    assert len(upstream.requests) == 1
