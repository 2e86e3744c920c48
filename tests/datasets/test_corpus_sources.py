"""The pieces under the builders: file verification, fetching, zip / UTF-8 reading, splits.

The download path is exercised without a network through a stand-in download manager:
`fetch` verifies a "downloaded" file with the same `verify_file` as a local one.
"""

import functools
import hashlib
import io
import logging
import shutil
import zipfile
import zlib

import pytest
from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

from rnnzoo.data.errors import CorpusError
from rnnzoo_datasets import sources, splits, text_files, tiny_shakespeare_offline
from rnnzoo_datasets.jaychou_lyrics import jaychou_lyrics_dataset_builder as jaychou
from rnnzoo_datasets.text8 import text8_dataset_builder as text8
from rnnzoo_datasets.time_machine import time_machine_dataset_builder as time_machine

DATA = b"The Time Traveller (for so it will be convenient to speak of him)\n"
SOURCE = sources.Source(
    filename="data.txt",
    size=len(DATA),
    sha256=hashlib.sha256(DATA).hexdigest(),
    url="https://example.invalid/data.txt",
)


class StandInDownloadManager:
    """Just what `fetch` uses of a tfds DownloadManager: `manual_dir` and `download`."""

    def __init__(self, downloaded=None, manual_dir=None, error=None):
        self.downloaded, self._manual_dir, self.error = downloaded, manual_dir, error
        self.urls = []

    @property
    def manual_dir(self):
        if self._manual_dir is None:
            raise AssertionError("Manual directory not enabled.")  # as TFDS does
        return self._manual_dir

    def download(self, url):
        self.urls.append(url)
        if self.error:
            raise self.error
        return self.downloaded


@pytest.fixture(autouse=True)
def no_env_source_dir(monkeypatch):
    monkeypatch.delenv(sources.SOURCE_DIR_ENV, raising=False)


@pytest.fixture(autouse=True)
def upstream_answers(monkeypatch):
    """Every host answers `check_reachable`'s probe (tests/datasets/test_offline.py: none)."""
    probes = []
    monkeypatch.setattr(sources, "_reachable", set())
    monkeypatch.setattr(sources, "_probe", lambda host, port, timeout: probes.append(host))
    return probes


def test_verify_file_accepts_the_right_file(tmp_path):
    (tmp_path / "data.txt").write_bytes(DATA)
    assert sources.verify_file(tmp_path / "data.txt", SOURCE) == tmp_path / "data.txt"


@pytest.mark.parametrize(
    "content, match",
    [
        (None, r"data\.txt: file not found; expected data\.txt, 66 bytes"),
        (DATA[:30], r"data\.txt: wrong size: expected 66 bytes, got 30 \(truncated"),
        (DATA.upper(), rf"wrong sha256 checksum: expected {SOURCE.sha256}, got [0-9a-f]{{64}}"),
    ],
)
def test_verify_file_names_file_and_fault(content, match, tmp_path):
    if content is not None:
        (tmp_path / "data.txt").write_bytes(content)
    with pytest.raises(CorpusError, match=match) as info:
        sources.verify_file(tmp_path / "data.txt", SOURCE)
    assert str(tmp_path / "data.txt") in str(info.value)


def test_fetch_downloads_and_verifies(tmp_path):
    (tmp_path / "downloaded").write_bytes(DATA)
    manager = StandInDownloadManager(downloaded=tmp_path / "downloaded")
    assert sources.fetch(manager, SOURCE) == tmp_path / "downloaded"
    assert manager.urls == [SOURCE.url]


def test_fetch_checks_the_host_answers_before_downloading(tmp_path, monkeypatch,
                                                         upstream_answers):
    (tmp_path / "downloaded").write_bytes(DATA)
    manager = StandInDownloadManager(downloaded=tmp_path / "downloaded")
    sources.fetch(manager, SOURCE)
    sources.fetch(manager, SOURCE)
    assert upstream_answers == ["example.invalid"]  # once per host and process
    monkeypatch.setattr(sources, "_reachable", set())
    monkeypatch.setattr(sources, "_probe", lambda host, port, timeout: "refused")
    with pytest.raises(CorpusError, match=r"^https://example\.invalid/data\.txt: cannot download "
                                          r"data\.txt: example\.invalid:443 does not answer "
                                          r"\(refused\); no network\? .*\$RNNZOO_DATA_DIR"):
        sources.fetch(manager, SOURCE)
    assert manager.urls == [SOURCE.url] * 2  # the third time, no download was tried


def test_fetch_deletes_a_bad_download(tmp_path):
    (tmp_path / "downloaded").write_bytes(DATA[:-1])
    (tmp_path / "downloaded.INFO").write_text("{}")
    manager = StandInDownloadManager(downloaded=tmp_path / "downloaded")
    with pytest.raises(CorpusError, match="wrong size"):
        sources.fetch(manager, SOURCE)
    assert not (tmp_path / "downloaded").exists()
    assert not (tmp_path / "downloaded.INFO").exists()


def test_fetch_turns_tfds_checksum_error_into_corpus_error(tmp_path):
    manager = StandInDownloadManager(error=NonMatchingChecksumError("Artifact has wrong checksum"))
    with pytest.raises(CorpusError, match=r"example\.invalid/data\.txt: downloaded data\.txt"):
        sources.fetch(manager, SOURCE)


def test_fetch_without_a_network_says_how_to_build_offline():
    import requests

    error = requests.exceptions.ConnectionError("Failed to resolve 'example.invalid'")
    manager = StandInDownloadManager(error=error)
    with pytest.raises(CorpusError, match=r"could not download data\.txt \(ConnectionError.*"
                                          rf"set \${sources.SOURCE_DIR_ENV}"):
        sources.fetch(manager, SOURCE)


def test_fetch_prefers_a_local_dir_and_never_downloads(tmp_path, monkeypatch):
    local = tmp_path / "local"
    local.mkdir()
    (local / "data.txt").write_bytes(DATA)
    manager = StandInDownloadManager(manual_dir=local)
    assert sources.fetch(manager, SOURCE) == local / "data.txt"
    monkeypatch.setenv(sources.SOURCE_DIR_ENV, str(local))
    assert sources.fetch(StandInDownloadManager(), SOURCE) == local / "data.txt"
    (local / "data.txt").unlink()
    with pytest.raises(CorpusError, match="file not found"):
        sources.fetch(manager, SOURCE)
    assert manager.urls == []


def test_fetch_refuses_to_download_a_derived_file():
    with pytest.raises(CorpusError, match=r"text8_prefix_12549840\.txt: has no download URL"):
        sources.fetch(StandInDownloadManager(), text8.PREFIX)


def test_checksums_match_the_shared_files(source_dir):
    for source in [jaychou.SOURCE, time_machine.SOURCE, text8.PREFIX]:
        sources.verify_file(source_dir / source.filename, source)
    shakespeare = tiny_shakespeare_offline.source()
    assert shakespeare.filename == "input.txt"
    sources.verify_file(source_dir / "tinyshakespeare" / "input.txt", shakespeare)
    assert tiny_shakespeare_offline.manual_dir(source_dir) == source_dir / "tinyshakespeare"


# A stand-in text8: 4,000 bytes, of which the "prefix" is the first 1,234.
TEXT8 = (b" anarchism originated as a term of abuse first used against early" * 70)[:4_000]
STAND_IN_PREFIX = sources.Source(
    "text8_prefix_1234.txt", 1_234, hashlib.sha256(TEXT8[:1_234]).hexdigest(), None
)


def _text8_zip(path, member_data=TEXT8):
    """Writes a stand-in text8.zip; returns its Source and a read_prefix for it."""
    path.write_bytes(_zip("text8", member_data))
    zip_source = sources.Source("text8.zip", path.stat().st_size, None, text8.TEXT8_ZIP.url)
    read = functools.partial(
        text8.read_prefix,
        prefix=STAND_IN_PREFIX,
        size=len(member_data),
        crc32=zlib.crc32(member_data),
    )
    return zip_source, read


def test_prefix_configs_fetch_and_read_the_prefix():
    for name in ("prefix", "prefix_course"):
        config = text8.Builder.builder_configs[name]
        assert config.source is text8.PREFIX
        assert config.fetch is text8.fetch_prefix and config.read is text8.read_prefix
    for name in ("full", "course"):
        assert text8.Builder.builder_configs[name].fetch is sources.fetch


def test_prefix_is_cut_from_a_downloaded_text8_zip(tmp_path, caplog):
    zip_source, read = _text8_zip(tmp_path / "downloaded")
    manager = StandInDownloadManager(downloaded=tmp_path / "downloaded")
    with caplog.at_level(logging.INFO, logger="rnnzoo_datasets"):
        path = text8.fetch_prefix(manager, STAND_IN_PREFIX, zip_source)
    assert path == tmp_path / "downloaded"
    assert manager.urls == ["http://mattmahoney.net/dc/text8.zip"]
    assert f"Cutting text8_prefix_1234.txt (the first 1,234 bytes of text8) from {path}" in (
        caplog.messages
    )
    text = read(path)
    assert len(text) == 1_234
    assert text == TEXT8[:1_234].decode("ascii")
    assert text.startswith(" anarchism originated as a term of abuse first used")


def test_prefix_cut_with_the_wrong_sha256_is_refused(tmp_path):
    flipped = bytearray(TEXT8)
    flipped[600] ^= 0x20  # inside the prefix: the zip's own size and CRC-32 still match
    zip_source, read = _text8_zip(tmp_path / "downloaded", bytes(flipped))
    manager = StandInDownloadManager(downloaded=tmp_path / "downloaded")
    path = text8.fetch_prefix(manager, STAND_IN_PREFIX, zip_source)
    with pytest.raises(CorpusError) as info:
        read(path)
    actual = hashlib.sha256(bytes(flipped[:1_234])).hexdigest()
    assert str(info.value) == (
        f"{path}[text8][:1234]: wrong sha256 checksum for text8_prefix_1234.txt: "
        f"expected {STAND_IN_PREFIX.sha256}, got {actual}"
    )


def test_prefix_cut_from_a_text8_that_is_too_short_is_refused(tmp_path):
    _, read = _text8_zip(tmp_path / "text8.zip", TEXT8[:1_000])
    with pytest.raises(
        CorpusError, match=r"\[:1234\]: wrong size .* expected 1,234 bytes, got 1,000"
    ):
        read(tmp_path / "text8.zip")


def test_prefix_keeps_text8_zip_checks(tmp_path):
    _text8_zip(tmp_path / "text8.zip")
    with pytest.raises(
        CorpusError, match=r"\[text8\]: wrong uncompressed size: expected 100,000,000"
    ):
        text8.read_prefix(tmp_path / "text8.zip", STAND_IN_PREFIX)


def test_prefix_from_a_local_dir_never_downloads(tmp_path, monkeypatch):
    local = tmp_path / "local"
    local.mkdir()
    zip_source, read = _text8_zip(local / "text8.zip")
    manager = StandInDownloadManager(manual_dir=local)
    # Only text8.zip there: the prefix is cut from it.
    assert text8.fetch_prefix(manager, STAND_IN_PREFIX, zip_source) == local / "text8.zip"
    assert read(local / "text8.zip") == TEXT8[:1_234].decode("ascii")
    # The prefix file there too: it is the one used (and it is checked).
    (local / "text8_prefix_1234.txt").write_bytes(TEXT8[:1_234])
    path = text8.fetch_prefix(manager, STAND_IN_PREFIX, zip_source)
    assert path == local / "text8_prefix_1234.txt"
    assert read(path) == TEXT8[:1_234].decode("ascii")
    (local / "text8_prefix_1234.txt").write_bytes(TEXT8[1:1_235])
    with pytest.raises(CorpusError, match="text8_prefix_1234.txt: wrong sha256 checksum"):
        text8.fetch_prefix(manager, STAND_IN_PREFIX, zip_source)
    # Neither: an error naming both, still no download (also with $RNNZOO_DATA_DIR).
    (local / "text8_prefix_1234.txt").unlink()
    (local / "text8.zip").unlink()
    monkeypatch.setenv(sources.SOURCE_DIR_ENV, str(local))
    for neither in (manager, StandInDownloadManager(downloaded=tmp_path / "never")):
        with pytest.raises(
            CorpusError,
            match=r"local/text8_prefix_1234\.txt: file not found; expected .*1,234 bytes\), "
            r"or text8\.zip in the same directory",
        ):
            text8.fetch_prefix(neither, STAND_IN_PREFIX, zip_source)
        assert neither.urls == []


def test_real_prefix_offline(source_dir):
    manager = StandInDownloadManager(manual_dir=source_dir)
    path = text8.fetch_prefix(manager, text8.PREFIX)
    assert path == source_dir / "text8_prefix_12549840.txt"
    text = text8.read_prefix(path)
    assert len(text) == 12_549_840
    assert text.startswith(" anarchism originated as a term of abuse first used against early")
    assert text.encode("ascii") == (source_dir / "text8_prefix_12549840.txt").read_bytes()
    assert manager.urls == []


def test_real_truncated_local_text8_zip_is_not_cut(source_dir, tmp_path):
    shutil.copy(source_dir / "text8.zip.partial", tmp_path / "text8.zip")
    manager = StandInDownloadManager(manual_dir=tmp_path)
    with pytest.raises(CorpusError, match=r"text8\.zip: wrong size: .* \(truncated"):
        text8.fetch_prefix(manager, text8.PREFIX)
    assert manager.urls == []


def test_read_checksums(tmp_path):
    (tmp_path / "checksums.tsv").write_text(
        "# a comment\n\nhttps://a.invalid/x.zip\t12\t" + "ab" * 32 + "\tx.zip\n"
    )
    assert sources.read_checksums(tmp_path / "checksums.tsv") == {
        "x.zip": sources.Source("x.zip", 12, "ab" * 32, "https://a.invalid/x.zip")
    }


def _zip(member, data, method=zipfile.ZIP_DEFLATED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr(member, data)
    return buffer.getvalue()


def test_truncated_text8_zip_is_refused(source_dir, tmp_path):
    shutil.copy(source_dir / "text8.zip.partial", tmp_path / "text8.zip")
    with pytest.raises(CorpusError, match=r"text8\.zip: truncated or corrupt zip archive"):
        text_files.read_zip_member(tmp_path / "text8.zip", "text8")


def test_zip_member_checks(tmp_path):
    path = tmp_path / "text8.zip"
    path.write_bytes(_zip("text8", b" anarchism originated"))
    assert text_files.read_zip_text(path, "text8") == " anarchism originated"
    with pytest.raises(CorpusError, match=r"has no member 'text9'; it holds \['text8'\]"):
        text_files.read_zip_member(path, "text9")
    with pytest.raises(
        CorpusError, match=r"\[text8\]: wrong uncompressed size: expected 100,000,000"
    ):
        text_files.read_zip_member(path, "text8", size=text8.TEXT8_SIZE)
    with pytest.raises(CorpusError, match=r"\[text8\]: wrong CRC-32: expected 0x7d6be66f"):
        text_files.read_zip_member(path, "text8", crc32=text8.TEXT8_CRC32)


def test_zip_with_corrupt_data_is_refused(tmp_path):
    data = bytearray(_zip("text8", b"x" * 1000, zipfile.ZIP_STORED))
    data[100] ^= 0xFF  # inside the stored member: its CRC-32 no longer matches
    (tmp_path / "text8.zip").write_bytes(bytes(data))
    with pytest.raises(CorpusError, match=r"truncated or corrupt zip archive: Bad CRC-32"):
        text_files.read_zip_member(tmp_path / "text8.zip", "text8")


@pytest.mark.parametrize(
    "text, encoding", [("H. G. Wellé", "latin-1"), ("Wells", "utf-16"), ("想要", "gb18030")]
)
def test_non_utf8_text_is_refused(text, encoding, tmp_path):
    (tmp_path / "timemachine.txt").write_bytes(text.encode(encoding))
    with pytest.raises(CorpusError, match=r"timemachine\.txt: not UTF-8 text: byte 0x"):
        text_files.read_text(tmp_path / "timemachine.txt")


def test_non_utf8_zip_member_is_refused(tmp_path):
    (tmp_path / "lyrics.zip").write_bytes(_zip("jaychou_lyrics.txt", "想要".encode("gb18030")))
    with pytest.raises(CorpusError, match=r"lyrics\.zip\[jaychou_lyrics\.txt\]: not UTF-8"):
        text_files.read_zip_text(tmp_path / "lyrics.zip", "jaychou_lyrics.txt")


def test_ninety_five_five():
    assert splits.NinetyFiveFive().bounds(100_000_000) == {
        "train": (0, 90_000_000),
        "validation": (90_000_000, 95_000_000),
        "test": (95_000_000, 100_000_000),
    }
    pieces = splits.split_text("abcdefghijklmnopqrstuvw", splits.NinetyFiveFive())
    assert pieces == {"train": "abcdefghijklmnopqrst", "validation": "u", "test": "vw"}


def test_leading_and_validation_first():
    leading = splits.Leading((("train", 3), ("validation", 2), ("test", 1)))
    assert leading.names == ("train", "validation", "test")
    assert splits.split_text("abcdefgh", leading) == {
        "train": "abc",
        "validation": "de",
        "test": "f",
    }
    with pytest.raises(CorpusError, match=r"split 'test' wants characters \[5, 6\) .* only 5"):
        splits.split_text("abcde", leading)
    course = splits.ValidationFirst(2)
    assert splits.split_text("abcde", course) == {"train": "cde", "validation": "ab"}
    assert course.names == ("train", "validation")
