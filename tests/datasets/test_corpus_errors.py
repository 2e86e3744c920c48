"""Bad source files fail with a CorpusError naming the file, and leave nothing behind."""

import io
import shutil
import zipfile

import pytest
import tensorflow_datasets as tfds

from rnnzoo.data.corpora import load_text
from rnnzoo.data.errors import CorpusError

tfds.disable_progress_bar()

TIME_MACHINE_SHA256 = "8424dbd9532ac81f7e5f0b6add90e6952baea29158309d7d1bf3884f4e12c516"


@pytest.fixture
def bad_dir(tmp_path):
    """An empty-but-for-a-note source directory to put bad files in."""
    path = tmp_path / "source"
    path.mkdir()
    (path / "NOTE.txt").write_text("bad files for a test\n")
    return path


def _load(name, source, tmp_path):
    return load_text(name, source_dir=source, tfds_dir=tmp_path / "tfds")


def _assert_nothing_prepared(tfds_root, corpus, config=None):
    """No dataset, and no incomplete.* directory, is left where TFDS would look."""
    name = f"{corpus}/{config}" if config else corpus
    assert not tfds.builder(name, data_dir=tfds_root, try_gcs=False).is_prepared()
    assert not [p for p in tfds_root.rglob("*") if "incomplete" in p.name]
    versions = (tfds_root / name).glob("[0-9]*")  # e.g. time_machine/d2l/1.0.0
    assert not list(versions)


def test_missing_file(bad_dir, tmp_path):
    with pytest.raises(CorpusError, match=r"source/timemachine\.txt: file not found"):
        _load("time_machine/d2l", bad_dir, tmp_path)


def test_missing_or_empty_source_dir(tmp_path):
    with pytest.raises(CorpusError, match=r"nowhere: source directory not found"):
        _load("time_machine/d2l", tmp_path / "nowhere", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"empty: source directory is empty"):
        _load("time_machine/d2l", tmp_path / "empty", tmp_path)


def test_wrong_bytes_show_expected_and_actual_sha256(bad_dir, source_dir, tmp_path):
    data = bytearray((source_dir / "timemachine.txt").read_bytes())
    data[1000] ^= 0x20  # same size, one letter's case flipped
    (bad_dir / "timemachine.txt").write_bytes(bytes(data))
    with pytest.raises(CorpusError) as info:
        _load("time_machine/raw", bad_dir, tmp_path)
    message = str(info.value)
    assert str(bad_dir / "timemachine.txt") in message
    assert f"wrong sha256 checksum: expected {TIME_MACHINE_SHA256}, got " in message


def test_wrong_zip_content(bad_dir, source_dir, tmp_path):
    lyrics = zipfile.ZipFile(source_dir / "jaychou_lyrics.txt.zip").read("jaychou_lyrics.txt")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("jaychou_lyrics.txt", lyrics[:-100])
    (bad_dir / "jaychou_lyrics.txt.zip").write_bytes(buffer.getvalue())
    with pytest.raises(CorpusError, match=r"jaychou_lyrics\.txt\.zip: wrong size: expected 52,607"):
        _load("jaychou_lyrics/d2l_zh", bad_dir, tmp_path)


def test_truncated_text8_zip(bad_dir, source_dir, tmp_path):
    shutil.copy(source_dir / "text8.zip.partial", bad_dir / "text8.zip")
    with pytest.raises(CorpusError) as info:
        _load("text8/full", bad_dir, tmp_path)
    message = str(info.value)
    assert str(bad_dir / "text8.zip") in message
    assert "expected 31,344,016 bytes, got 3,973,120" in message and "truncated" in message
    _assert_nothing_prepared(tmp_path / "tfds", "text8", "full")


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_re_encoded_time_machine(encoding, bad_dir, source_dir, tmp_path):
    text = (source_dir / "timemachine.txt").read_text(encoding="utf-8")
    text = text.replace("Wells", "Wellś" if encoding == "utf-16" else "Wellé")
    (bad_dir / "timemachine.txt").write_bytes(text.encode(encoding))
    hint = "UTF-16" if encoding == "utf-16" else "wrong sha256 checksum"
    with pytest.raises(CorpusError, match=hint) as info:
        _load("time_machine/d2l", bad_dir, tmp_path)
    assert str(bad_dir / "timemachine.txt") in str(info.value)


def test_bad_tiny_shakespeare(bad_dir, source_dir, tmp_path):
    (bad_dir / "tinyshakespeare").mkdir()
    text = (source_dir / "tinyshakespeare" / "input.txt").read_bytes()
    (bad_dir / "tinyshakespeare" / "input.txt").write_bytes(text.replace(b"\n", b"\r\n"))
    with pytest.raises(CorpusError, match=r"tinyshakespeare/input\.txt: wrong size"):
        _load("tiny_shakespeare", bad_dir, tmp_path)
    _assert_nothing_prepared(tmp_path / "tfds", "tiny_shakespeare")


def test_prefix_without_a_network_says_how_to_build_offline(tmp_path, monkeypatch):
    """With no source directory the prefix is cut from a downloaded text8.zip; a failed
    download (the host answered the reachability check, then the download failed) names
    text8.zip and its URL, and prepares nothing. tests/datasets/test_offline.py: no network."""
    import requests

    from rnnzoo_datasets import sources

    urls = []

    def download(self, url):
        urls.append(url)
        raise requests.exceptions.ConnectionError("Failed to resolve 'mattmahoney.net'")

    monkeypatch.delenv("RNNZOO_DATA_DIR", raising=False)
    monkeypatch.setattr(sources, "_reachable", set())
    monkeypatch.setattr(sources, "_probe", lambda host, port, timeout: None)  # it answers
    monkeypatch.setattr(tfds.download.DownloadManager, "download", download)
    with pytest.raises(
        CorpusError,
        match=r"^http://mattmahoney\.net/dc/text8\.zip: could not download text8\.zip "
        r"\(ConnectionError.* set \$RNNZOO_DATA_DIR",
    ):
        load_text("text8/prefix", tfds_dir=tmp_path / "tfds")
    assert urls == ["http://mattmahoney.net/dc/text8.zip"]
    _assert_nothing_prepared(tmp_path / "tfds", "text8", "prefix")


def test_prefix_missing_locally_with_no_text8_zip(bad_dir, tmp_path):
    with pytest.raises(
        CorpusError,
        match=r"source/text8_prefix_12549840\.txt: file not found; .* or text8\.zip in the same",
    ):
        _load("text8/prefix_course", bad_dir, tmp_path)
    _assert_nothing_prepared(tmp_path / "tfds", "text8", "prefix_course")


@pytest.mark.parametrize(
    "name, filename",
    [("time_machine/d2l", "timemachine.txt"), ("jaychou_lyrics/full", "jaychou_lyrics.txt.zip")],
)
def test_failure_leaves_nothing_then_builds(name, filename, bad_dir, source_dir, tmp_path):
    good = (source_dir / filename).read_bytes()
    (bad_dir / filename).write_bytes(good[: len(good) // 2])
    with pytest.raises(CorpusError, match="truncated"):
        _load(name, bad_dir, tmp_path)
    corpus, config = name.split("/")
    _assert_nothing_prepared(tmp_path / "tfds", corpus, config)

    (bad_dir / filename).write_bytes(good)
    expected = load_text(name, "test", source_dir=source_dir, tfds_dir=tmp_path / "reference")
    assert load_text(name, "test", source_dir=bad_dir, tfds_dir=tmp_path / "tfds") == expected


@pytest.mark.parametrize(
    "name, split, match",
    [
        ("shakespeare", "train", r"unknown corpus 'shakespeare'; choose one of \[.*'text8/prefix'"),
        ("text8/prefix_full", "train", r"unknown config 'prefix_full' .*'prefix_course'\]"),
        ("tiny_shakespeare/default", "train", r"configs: none: use 'tiny_shakespeare'"),
        ("text8/course", "test", r"unknown split 'test' .*\['train', 'validation'\]"),
        ("time_machine/d2l", "valid", r"unknown split 'valid' .*'validation', 'test'\]"),
    ],
)
def test_unknown_names_list_the_choices(name, split, match, tmp_path):
    with pytest.raises(CorpusError, match=match):
        load_text(name, split, tfds_dir=tmp_path)
