"""Where a corpus file comes from, and making sure it is the right file.

A `Source` is one original file: its name, size, sha256 and upstream URL. `fetch`
returns a path to it that has been checked, from one of two places:

* a local source directory (offline): TFDS's `download_config.manual_dir`, else the
  `RNNZOO_DATA_DIR` environment variable. When one is set it is authoritative: a
  file missing there is an error, not a reason to go online.
* the upstream URL (online), through TFDS's download manager, which checks the
  sha256 listed in the builder's `checksums.tsv`. Before a download (unless TFDS's
  download cache already holds the URL), `check_reachable` connects to the host (or
  the HTTP(S) proxy the environment names) with a short timeout, so that offline a
  build fails in seconds, naming `RNNZOO_DATA_DIR`, instead of after minutes of TFDS's
  download retries.

Either way the file then goes through `verify_file` (size, and sha256 where one is
known), so both paths share one check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import threading
import urllib.parse

from etils import epath

from rnnzoo_datasets.errors import CorpusError

SOURCE_DIR_ENV = "RNNZOO_DATA_DIR"

# Seconds `check_reachable` waits for a host (name lookup and TCP connection together).
PROBE_TIMEOUT = 5.0

_CHUNK = 1 << 20
_BOMS = {
    b"\xff\xfe": "a UTF-16 (little-endian) byte-order mark",
    b"\xfe\xff": "a UTF-16 (big-endian) byte-order mark",
    b"\xef\xbb\xbf": "a UTF-8 byte-order mark",
}

logger = logging.getLogger(__name__)

_reachable: set[tuple[str, int]] = set()  # (host, port) that answered in this process


@dataclasses.dataclass(frozen=True)
class Source:
    """One original corpus file.

    Attributes:
      filename: the file's name in a local source directory (as in `checksums.tsv`).
      size: its size in bytes.
      sha256: its sha256 hex digest, or None where no trusted digest is known; the
        reader must then check the content another way (text8.zip: zip CRC-32).
      url: the upstream address, or None for a derived file that is only accepted
        from a local source directory.
    """

    filename: str
    size: int
    sha256: str | None
    url: str | None = None


def read_checksums(path: epath.PathLike) -> dict[str, Source]:
    """Reads a TFDS `checksums.tsv` (url, size, sha256, filename) into Sources by filename."""
    sources = {}
    for line in epath.Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        url, size, sha256, filename = line.split("\t")
        sources[filename] = Source(filename=filename, size=int(size), sha256=sha256, url=url)
    return sources


def file_sha256(path: epath.PathLike) -> str:
    """Returns the sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with epath.Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: epath.PathLike, source: Source) -> epath.Path:
    """Checks that `path` is `source`'s file: it exists, has its size and its sha256.

    Returns:
      The path, as an `epath.Path`.

    Raises:
      CorpusError: naming the path and what is wrong (with expected and actual values).
    """
    path = epath.Path(path)
    if not path.is_file():
        where = f" (upstream: {source.url})" if source.url else ""
        raise CorpusError(
            f"{path}: file not found; expected {source.filename}, {source.size:,} bytes{where}"
        )
    size = path.stat().length
    if size != source.size:
        raise CorpusError(
            f"{path}: wrong size: expected {source.size:,} bytes, got {size:,}"
            f"{_size_hint(path, size, source.size)}"
        )
    if source.sha256 is not None:
        actual = file_sha256(path)
        if actual != source.sha256:
            raise CorpusError(
                f"{path}: wrong sha256 checksum: expected {source.sha256}, got {actual}"
            )
    return path


def verify_bytes(data: bytes, source: Source, where: str) -> bytes:
    """Checks that `data`, read out of `where`, is `source`'s content: size and sha256.

    For a file cut out of another one (text8's prefix out of text8.zip).

    Returns:
      The data.

    Raises:
      CorpusError: naming `where` and what is wrong (with expected and actual values).
    """
    if len(data) != source.size:
        raise CorpusError(
            f"{where}: wrong size for {source.filename}: expected {source.size:,} bytes, "
            f"got {len(data):,}"
        )
    if source.sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != source.sha256:
            raise CorpusError(
                f"{where}: wrong sha256 checksum for {source.filename}: expected "
                f"{source.sha256}, got {actual}"
            )
    return data


def local_source_dir(dl_manager) -> epath.Path | None:
    """The local directory to take original files from, or None to download them.

    TFDS's `download_config.manual_dir` wins (TFDS treats a missing or empty one as not
    given); otherwise `$RNNZOO_DATA_DIR`.
    """
    try:
        return epath.Path(dl_manager.manual_dir)
    except (AssertionError, ValueError):  # manual dir not given, missing or empty
        pass
    env = os.environ.get(SOURCE_DIR_ENV)
    return epath.Path(env) if env else None


def fetch(dl_manager, source: Source) -> epath.Path:
    """Returns a verified local path to `source`, from a local directory or its URL.

    Args:
      dl_manager: the builder's `tfds.download.DownloadManager`.
      source: the file wanted.

    Raises:
      CorpusError: the file is missing locally, has no URL and no local directory is
        set, or fails `verify_file`. A downloaded file that fails is deleted from
        TFDS's download cache, so that the next run fetches it again.
    """
    local_dir = local_source_dir(dl_manager)
    if local_dir is not None:
        logger.info("Using local %s (no download)", local_dir / source.filename)
        return verify_file(local_dir / source.filename, source)
    if source.url is None:
        raise CorpusError(
            f"{source.filename}: has no download URL (it is a derived file); put it in a "
            f"local source directory: set ${SOURCE_DIR_ENV}, pass "
            "download_config.manual_dir, or load_text(..., source_dir=...)"
        )
    path = _download(dl_manager, source)
    try:
        return verify_file(path, source)
    except CorpusError:
        for stale in (path, path.parent / f"{path.name}.INFO"):
            stale.unlink(missing_ok=True)
        raise


def _download(dl_manager, source: Source) -> epath.Path:
    """Downloads `source.url`; TFDS checks the sha256 from the builder's checksums.tsv."""
    # Imported here: not part of TFDS's public API, and only needed online.
    from tensorflow_datasets.core.download.download_manager import (
        NonMatchingChecksumError,
    )

    check_reachable(source, getattr(dl_manager, "download_dir", None))
    logger.info("Downloading %s", source.url)
    try:
        return epath.Path(dl_manager.download(source.url))
    except NonMatchingChecksumError as err:
        raise CorpusError(
            f"{source.url}: downloaded {source.filename} has the wrong checksum: {err}"
        ) from err
    except OSError as err:  # requests' connection errors are OSErrors too.
        raise CorpusError(
            f"{source.url}: could not download {source.filename} ({type(err).__name__}: "
            f"{err}). {_OFFLINE_HINT}"
        ) from err


_OFFLINE_HINT = (
    f"Offline, put the original file in a directory and set ${SOURCE_DIR_ENV} to it "
    "(train.py / export.py --data_dir, load_text(..., source_dir=...))"
)


def check_reachable(source: Source, download_dir: epath.PathLike | None = None) -> None:
    """Fails fast when `source.url` cannot be downloaded: the network does not answer.

    Connects to the URL's host and port, or to the proxy that `requests` (TFDS's
    downloader) would use for it (`http_proxy`, `https_proxy`, `no_proxy`), within
    `PROBE_TIMEOUT` seconds; nothing is sent. TFDS's download manager retries a failed
    connection ten times with growing pauses (minutes offline); this answers in
    seconds. Nothing is checked when TFDS's download cache `download_dir` already
    holds the URL (TFDS then needs no network), or when a connection to the same host
    succeeded before in this process.

    Raises:
      CorpusError: naming the URL, the unreachable host and `$RNNZOO_DATA_DIR`.
    """
    if source.url is None or (download_dir is not None and _is_cached(download_dir, source.url)):
        return
    url = urllib.parse.urlsplit(source.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        return  # TFDS copies other URLs (gs://, file paths) with tf.io.gfile.
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    what = ""
    proxy = _proxy_for(source.url)
    if proxy is not None:
        proxy_url = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if proxy_url.hostname:
            host, port, what = proxy_url.hostname, proxy_url.port or 80, "the proxy "
    if (host, port) in _reachable:
        return
    problem = _probe(host, port, PROBE_TIMEOUT)
    if problem is not None:
        raise CorpusError(
            f"{source.url}: cannot download {source.filename}: {what}{host}:{port} does not "
            f"answer ({problem}); no network? {_OFFLINE_HINT}"
        )
    _reachable.add((host, port))


def _proxy_for(url: str) -> str | None:
    """The proxy `requests` takes for `url` from the environment, or None."""
    try:
        import requests.utils
    except ImportError:  # TFDS depends on requests; without it there is no download anyway.
        return None
    return requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))


def _probe(host: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection to `host:port` opens within `timeout` seconds, else why not.

    Runs in a daemon thread, so that a name lookup stuck on an unreachable DNS server
    (which socket timeouts do not bound) cannot hold the caller past `timeout`.
    """
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(f"{type(err).__name__}: {err}")

    thread = threading.Thread(target=connect, name=f"probe {host}:{port}", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} seconds"


def _is_cached(download_dir: epath.PathLike, url: str) -> bool:
    """Whether TFDS's download directory holds a finished download of `url`.

    TFDS writes `<file>.INFO` (JSON with the file's "urls") beside each download, in the
    download directory or a per-dataset folder of it.
    """
    root = epath.Path(download_dir)
    try:
        infos = [*root.glob("*.INFO"), *root.glob("*/*.INFO")]
    except OSError:
        return False
    for info in infos:
        try:
            urls = json.loads(info.read_text()).get("urls", [])
        except (OSError, ValueError, AttributeError):
            continue
        if url in urls and info.with_name(info.name.removesuffix(".INFO")).is_file():
            return True
    return False


def _size_hint(path: epath.Path, size: int, expected: int) -> str:
    """A short guess at why a file has the wrong size."""
    with path.open("rb") as f:
        head = f.read(3)
    for bom, what in _BOMS.items():
        if head.startswith(bom):
            return f" (it starts with {what}: re-encoded? the original is UTF-8 without one)"
    if size < expected:
        return f" (truncated: only {size / expected:.1%} of the file; download it again)"
    return ""
