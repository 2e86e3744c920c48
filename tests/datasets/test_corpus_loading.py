"""Every corpus, config and split loads offline from the source directory.

Expected text comes from an independent read of the raw files with plain Python
(zipfile, bytes.decode, re), not from rnnzoo's own readers.
"""

import functools
import hashlib
import logging
import re
import zipfile
import zlib

import pytest
import tensorflow_datasets as tfds

from rnnzoo.data import corpora
from rnnzoo.data.corpora import CORPORA, load_text
from rnnzoo_datasets import jaychou_lyrics, sources, text8, time_machine
from rnnzoo_datasets.text8 import text8_dataset_builder as text8_builder

tfds.disable_progress_bar()

D2L = {"train": (0, 10_000), "validation": (10_000, 15_000), "test": (15_000, 20_000)}


def _raw_texts(source_dir):
    """The original files' text, read without rnnzoo."""
    lyrics = zipfile.ZipFile(source_dir / "jaychou_lyrics.txt.zip").read("jaychou_lyrics.txt")
    lyrics = lyrics.decode("utf-8").replace("\n", " ").replace("\r", " ")
    time_machine_raw = (source_dir / "timemachine.txt").read_bytes().decode("utf-8")
    cleaned = re.sub("[^A-Za-z]+", " ", time_machine_raw).lower()
    return {
        "jaychou_lyrics": lyrics,
        "time_machine_raw": time_machine_raw,
        "time_machine_d2l": cleaned,
        "text8_prefix": (source_dir / "text8_prefix_12549840.txt").read_bytes().decode("ascii"),
        "tiny_shakespeare": (source_dir / "tinyshakespeare" / "input.txt").read_bytes().decode(),
    }


# name -> (raw text key, expected [start, end) of each split, in text order).
EXPECTED = {
    "jaychou_lyrics/d2l_zh": ("jaychou_lyrics", D2L),
    "jaychou_lyrics/full": (
        "jaychou_lyrics",
        {"train": (0, 56_953), "validation": (56_953, 60_117), "test": (60_117, 63_282)},
    ),
    "time_machine/d2l": ("time_machine_d2l", D2L),
    "time_machine/d2l_full": (
        "time_machine_d2l",
        {"train": (0, 156_085), "validation": (156_085, 164_756), "test": (164_756, 173_428)},
    ),
    "time_machine/raw": (
        "time_machine_raw",
        {"train": (0, 161_081), "validation": (161_081, 170_030), "test": (170_030, 178_979)},
    ),
    "text8/prefix": (
        "text8_prefix",
        {
            "train": (0, 11_294_856),
            "validation": (11_294_856, 11_922_348),
            "test": (11_922_348, 12_549_840),
        },
    ),
    "text8/prefix_course": (
        "text8_prefix",
        {"validation": (0, 1_000), "train": (1_000, 12_549_840)},
    ),
    "tiny_shakespeare": (
        "tiny_shakespeare",
        {
            "train": (0, 1_003_854),
            "validation": (1_003_854, 1_059_624),
            "test": (1_059_624, 1_115_394),
        },
    ),
}


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="session")
def text8_prefix_log(source_dir, tfds_dir):
    """Prepares text8/prefix once for the session; returns rnnzoo's log lines meanwhile."""
    handler, logger = _Records(), logging.getLogger("rnnzoo_datasets")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        load_text("text8/prefix", source_dir=source_dir, tfds_dir=tfds_dir)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return handler.messages


@pytest.fixture(scope="session")
def raw_texts(source_dir):
    return _raw_texts(source_dir)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_splits_match_raw_file(name, raw_texts, source_dir, tfds_dir, text8_prefix_log):
    key, bounds = EXPECTED[name]
    text = raw_texts[key]
    loaded = {
        split: load_text(name, split, source_dir=source_dir, tfds_dir=tfds_dir) for split in bounds
    }
    for split, (start, end) in bounds.items():
        assert len(loaded[split]) == end - start, split
        assert loaded[split][:50] == text[start : start + 50], split
        assert loaded[split] == text[start:end], split
    # Contiguous, non-overlapping, and together they give back the (cleaned) text.
    ends = sorted(bounds.values())
    assert ends[0][0] == 0
    assert all(a[1] == b[0] for a, b in zip(ends, ends[1:]))
    joined = "".join(loaded[split] for split in sorted(bounds, key=bounds.get))
    assert joined == text[: ends[-1][1]]
    if ends[-1][1] != 20_000:  # every config except d2l's uses the whole text
        assert joined == text


def test_d2l_zh_train_has_d2l_vocab_size(source_dir, tfds_dir):
    train = load_text("jaychou_lyrics/d2l_zh", source_dir=source_dir, tfds_dir=tfds_dir)
    assert len(set(train)) == 1027


def test_time_machine_d2l_starts_as_d2l(source_dir, tfds_dir):
    train = load_text("time_machine/d2l", source_dir=source_dir, tfds_dir=tfds_dir)
    assert train.startswith("the time machine by h g wells i the time traveller")


def test_bare_corpus_name_is_its_first_config(source_dir, tfds_dir):
    assert load_text("time_machine", source_dir=source_dir, tfds_dir=tfds_dir) == load_text(
        "time_machine/d2l", source_dir=source_dir, tfds_dir=tfds_dir
    )


def test_text8_prefix_says_it_is_a_prefix(tfds_dir, text8_prefix_log):
    prefix = tfds.builder("text8/prefix", data_dir=tfds_dir, try_gcs=False)
    full = tfds.builder("text8/full", data_dir=tfds_dir, try_gcs=False)
    assert prefix.is_prepared()
    assert "Config `prefix`: Built from a text8 PREFIX" in prefix.info.description
    assert "NOT the full 100,000,000" in prefix.info.description
    assert "Config `full`: Built from the FULL text8" in full.info.description
    (line,) = [m for m in text8_prefix_log if m.startswith("Building text8/prefix")]
    assert "text8_prefix_12549840.txt" in line and "PREFIX" in line


def test_corpora_lists_every_builder_config():
    for corpus, module in [
        ("jaychou_lyrics", jaychou_lyrics),
        ("time_machine", time_machine),
        ("text8", text8),
    ]:
        assert CORPORA[corpus] == tuple(c.name for c in module.Builder.BUILDER_CONFIGS)
    assert not tfds.builder_cls("tiny_shakespeare").BUILDER_CONFIGS
    assert CORPORA["tiny_shakespeare"] == ()
    assert "text8/prefix_course" in corpora.corpus_names()


def test_env_vars_are_the_defaults(source_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("RNNZOO_DATA_DIR", str(source_dir))
    monkeypatch.setenv("RNNZOO_TFDS_DIR", str(tmp_path))
    text = load_text("time_machine/d2l", "validation")
    assert len(text) == 5_000
    assert (tmp_path / "time_machine" / "d2l" / "1.0.0" / "dataset_info.json").exists()


def test_plain_tfds_load_with_manual_dir(source_dir, tmp_path):
    config = tfds.download.DownloadConfig(manual_dir=str(source_dir), try_download_gcs=False)
    dataset = tfds.load(
        "jaychou_lyrics/d2l_zh",
        split="test",
        data_dir=str(tmp_path),
        try_gcs=False,
        download_and_prepare_kwargs={"download_config": config},
    )
    (example,) = list(dataset.as_numpy_iterator())
    assert len(example["text"].decode("utf-8")) == 5_000


def test_text8_full_reads_the_pinned_zip_member(tmp_path, monkeypatch):
    """text8/full and /course, run on a small stand-in for text8.zip (the real one is
    not in the shared data): same builder and member check, smaller size and CRC-32."""
    full = text8.Builder.builder_configs["full"]
    assert full.read.keywords == {"member": "text8", "size": 100_000_000, "crc32": 0x7D6BE66F}
    assert full.source.size == 31_344_016 and full.source.sha256 is None

    data = (b" anarchism originated as a term of abuse" * 50)[:2_000]
    (tmp_path / "src").mkdir()
    with zipfile.ZipFile(tmp_path / "src" / "text8.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("text8", data)
    size = (tmp_path / "src" / "text8.zip").stat().st_size
    stand_in = sources.Source("text8.zip", size, None, full.source.url)
    read = functools.partial(full.read, size=len(data), crc32=zlib.crc32(data))
    for name in ("full", "course"):
        config = text8.Builder.builder_configs[name]
        monkeypatch.setattr(config, "source", stand_in)
        monkeypatch.setattr(config, "read", read)

    def load(name, split):
        return load_text(name, split, source_dir=tmp_path / "src", tfds_dir=tmp_path / "tfds")

    text = data.decode("ascii")
    assert load("text8/full", "train") == text[:1_800]
    assert load("text8/full", "test") == text[1_900:]
    assert load("text8/course", "validation") == text[:1_000]
    assert load("text8/course", "train") == text[1_000:]


def test_text8_prefix_online_is_cut_from_downloaded_text8_zip(tmp_path, monkeypatch):
    """text8/prefix and /prefix_course with no source directory: text8.zip is
    "downloaded" (a stand-in download manager hands over a small stand-in zip) and the
    prefix cut from its member, with smaller sizes, CRC-32 and sha256."""
    data = (b" anarchism originated as a term of abuse" * 100)[:4_000]
    prefix = data[:2_000]
    (tmp_path / "downloads").mkdir()
    downloaded = tmp_path / "downloads" / "mattmahoney.net_dc_text8.zip"
    with zipfile.ZipFile(downloaded, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("text8", data)
    url = text8_builder.TEXT8_ZIP.url
    zip_source = sources.Source("text8.zip", downloaded.stat().st_size, None, url)
    prefix_source = sources.Source(
        "text8_prefix_2000.txt", 2_000, hashlib.sha256(prefix).hexdigest(), None
    )
    fetch = functools.partial(text8_builder.fetch_prefix, text8_zip=zip_source)
    read = functools.partial(
        text8_builder.read_prefix, prefix=prefix_source, size=len(data), crc32=zlib.crc32(data)
    )
    for name in ("prefix", "prefix_course"):
        config = text8.Builder.builder_configs[name]
        monkeypatch.setattr(config, "source", prefix_source)
        monkeypatch.setattr(config, "fetch", fetch)
        monkeypatch.setattr(config, "read", read)
    urls = []

    def download(self, url):
        urls.append(url)
        return downloaded

    # The network "answers" the reachability probe that precedes every download.
    monkeypatch.setattr(sources, "_reachable", set())
    monkeypatch.setattr(sources, "_probe", lambda host, port, timeout: None)
    monkeypatch.delenv("RNNZOO_DATA_DIR", raising=False)
    monkeypatch.setattr(tfds.download.DownloadManager, "download", download)
    handler, logger = _Records(), logging.getLogger("rnnzoo_datasets")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        train = load_text("text8/prefix", tfds_dir=tmp_path / "tfds")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)

    def load(name, split):
        return load_text(name, split, tfds_dir=tmp_path / "tfds")

    text = prefix.decode("ascii")
    assert train == text[:1_800]
    assert load("text8/prefix", "test") == text[1_900:]
    assert load("text8/prefix_course", "validation") == text[:1_000]
    assert load("text8/prefix_course", "train") == text[1_000:]
    assert urls == ["http://mattmahoney.net/dc/text8.zip"] * 2
    (line,) = [m for m in handler.messages if m.startswith("Building text8/prefix")]
    assert line.startswith(f"Building text8/prefix from {downloaded}: ")
    assert "cut from text8.zip" in line
    assert f"Cutting text8_prefix_2000.txt (the first 2,000 bytes of text8) from {downloaded}" in (
        handler.messages
    )
