"""benchmarks/word2vec.py: the table and ratios from fake records, reading an rnnzoo run
directory, gensim on a tiny synthetic text, and bad flags. Nothing here trains rnnzoo."""

import json
import os
import random

import pytest
import word2vec as bench

# ------------------------------------------------------------------------ tables, ratios


def _record(model, framework, seed, wps, accuracy, **more):
    return dict(model=model, framework=framework, seed=seed, words_per_sec=wps,
                train_seconds=1e7 / wps, wall_clock_seconds=1e7 / wps + 20.0,
                analogy_accuracy=accuracy, analogy_semantic=accuracy + 0.02,
                analogy_syntactic=accuracy - 0.01, **more)


def test_table_one_seed_ratio_and_points():
    records = [_record("skipgram", "gensim", 0, 591_000.0, 0.081, gensim="4.4.0"),
               _record("skipgram", "rnnzoo", 0, 300_000.0, 0.0834)]
    assert bench.table(records) == """\
| model | framework | words/s | train s | command s (wall-clock) | analogies: total / semantic / syntactic | words/s vs gensim | accuracy vs gensim |
|---|---|---|---|---|---|---|---|
| skipgram | gensim 4.4.0 | 591,000 | 16.9 | 36.9 | 8.1% / 10.1% / 7.1% | — | — |
| skipgram | rnnzoo | 300,000 | 33.3 | 53.3 | 8.3% / 10.3% / 7.3% | 0.51x | +0.2 points |"""  # noqa: E501
    assert bench.target_lines(records) == [
        "- skipgram: words/s 0.51x (met); analogy accuracy +0.2 points (met)"]


def test_table_several_seeds_median_min_max_and_a_failed_run():
    records = [_record("cbow", "gensim", s, wps, acc) for s, (wps, acc) in
               enumerate([(1.9e6, 0.046), (2.0e6, 0.049), (1.8e6, 0.043)])]
    records += [_record("cbow", "rnnzoo", 0, 5e5, 0.040), _record("cbow", "rnnzoo", 1, 7e5, 0.042),
                dict(model="cbow", framework="rnnzoo", seed=2, error="error: diverged")]
    lines = bench.table(records).splitlines()
    assert lines[2] == ("| cbow | gensim | 1,900,000 (1,800,000–2,000,000) | 5.3 | 25.3 | "
                        "4.6% (4.3%–4.9%) / 6.6% / 3.6% | — | — |")
    # rnnzoo: the median of its two finished seeds; ratio and points against gensim's medians.
    assert lines[3] == ("| cbow | rnnzoo | 600,000 (500,000–700,000) | 17.1 | 37.1 | "
                        "4.1% (4.0%–4.2%) / 6.1% / 3.1% | 0.32x | -0.5 points |")
    assert bench.target_lines(records) == [
        "- cbow: words/s 0.32x (NOT met); analogy accuracy -0.5 points (NOT met)"]
    text = bench.report(records, seeds=[0, 1, 2], epochs=5, corpus="text8/prefix",
                        words=1_925_000)
    assert "1,925,000 words; 5 epochs; seeds 0, 1, 2; median over the seeds" in text
    assert "- rnnzoo cbow seed 2: error: diverged" in text
    assert text.startswith("machine: ") and "gensim" in text.splitlines()[1]


def test_missing_side_is_not_measured():
    records = [dict(model="skipgram", framework="gensim", seed=0, error="boom"),
               _record("skipgram", "rnnzoo", 0, 3e5, 0.08)]
    assert bench.comparison(records, "skipgram") == (None, None)
    assert "| skipgram | gensim | — | — | — | — / — / — | — | — |" in bench.table(records)
    assert bench.target_lines(records) == [
        "- skipgram: words/s not measured; analogy accuracy not measured"]


def test_gensim_accuracy_splits_semantic_and_gram_sections():
    sections = [dict(section="capital-common-countries", correct=[1] * 3, incorrect=[1]),
                dict(section="family", correct=[], incorrect=[1] * 4),
                dict(section="gram1-adjective-to-adverb", correct=[1], incorrect=[1]),
                dict(section="Total accuracy", correct=[1] * 4, incorrect=[1] * 6)]
    assert bench.gensim_accuracy(sections) == dict(
        analogy_accuracy=0.4, analogy_semantic=3 / 8, analogy_syntactic=0.5,
        analogy_evaluated=10)


# ------------------------------------------------------------------- rnnzoo run directory


def _rnnzoo_run(path, epochs=2, seed=0, model="cbow", corpus="text8/prefix", clock=95.0):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(dict(
        seed=seed, num_epochs=epochs, corpus=corpus, architecture=model)))
    records = [dict(epoch=e, step=10 * e, loss=3.0, seconds=20.0 + e, words_per_sec=9e4,
                    analogy_accuracy=0.01 * e, analogy_semantic=0.02 * e,
                    analogy_syntactic=0.005 * e, analogy_evaluated=1000)
               for e in range(1, epochs + 1)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / bench.WALL_CLOCK).write_text(json.dumps(dict(wall_clock_seconds=clock,
                                                         returncode=0)))


def test_read_rnnzoo_words_over_the_epochs_seconds(tmp_path):
    _rnnzoo_run(tmp_path / "run")
    got = bench.read_rnnzoo(tmp_path / "run", words=2_000_000, epochs=2)
    assert got["words_per_sec"] == pytest.approx(4_000_000 / 43.0)
    assert got["train_seconds"] == 43.0
    assert got["reported_words_per_sec"] == pytest.approx(9e4)
    assert (got["analogy_accuracy"], got["analogy_semantic"]) == (0.02, 0.04)
    with pytest.raises(ValueError, match="epoch 2, not 3"):
        bench.read_rnnzoo(tmp_path / "run", words=2_000_000, epochs=3)


def test_reuse_reads_a_finished_run_back_without_training(tmp_path):
    path = bench.rnnzoo_dir(tmp_path, "cbow", 0)
    _rnnzoo_run(path)
    logged = []
    record = bench.run_rnnzoo("cbow", 0, 2, "text8/prefix", dict(words=1000), tmp_path,
                              logged.append, reuse=True)
    assert record["reused"] and record["wall_clock_seconds"] == 95.0
    assert record["words_per_sec"] == pytest.approx(2000 / 43.0)
    assert "reused" in logged[0]
    assert not bench.finished(path, "cbow", 1, 2, "text8/prefix")  # another seed
    assert not bench.finished(path, "skipgram", 0, 2, "text8/prefix")
    assert not bench.finished(path, "cbow", 0, 3, "text8/prefix")


# ---------------------------------------------------------------------- gensim, for real


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory):
    """A 6,000-word text of a small vocabulary, one line, and a questions file over it."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(40)]
    path = tmp_path_factory.mktemp("w2v") / "text.txt"
    path.write_text(" " + " ".join(rng.choice(words) for _ in range(6000)))
    questions = path.with_name("questions.txt")
    questions.write_text(": capital-common-countries\nw1 w2 w3 w4\nw5 w6 w7 nope\n"
                         ": gram1-adjective-to-adverb\nw8 w9 w10 w11\nw12 w13 w14 w15\n")
    return path, questions


def test_gensim_worker_on_a_tiny_text(tiny_text):
    pytest.importorskip("gensim")
    text, questions = tiny_text
    got = bench.train_gensim(text, questions, model="skipgram", seed=0, epochs=1, workers=1)
    assert got["words"] == 6000 and got["raw_words"] == 6000 and got["epochs"] == 1
    assert got["vocab_size"] == 40 and got["workers"] == 1 and got["alpha"] == 0.025
    assert got["words_per_sec"] == pytest.approx(6000 / got["train_seconds"])
    assert got["analogy_evaluated"] == 3  # the question with "nope" is skipped
    for key in ("analogy_accuracy", "analogy_semantic", "analogy_syntactic"):
        assert 0.0 <= got[key] <= 1.0
    assert got["gensim"].startswith("4.")


def test_gensim_worker_mode_writes_its_result(tiny_text, tmp_path):
    pytest.importorskip("gensim")
    text, questions = tiny_text
    result = tmp_path / "r.json"
    assert bench.main(["--worker=gensim", f"--result={result}", f"--text={text}",
                       f"--questions={questions}", "--models=cbow", "--seeds=1",
                       "--epochs=1"]) == 0
    got = json.loads(result.read_text())
    assert got["words"] == 6000 and got["workers"] == os.cpu_count()


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("argv, names", [
    (["--models=skipgram,glove"], "'glove'"),
    (["--seeds=0,x"], "--seeds"),
    (["--seeds=-1"], "--seeds"),
    (["--epochs=0"], "--epochs"),
    (["--corpus=text8/nope"], "text8/nope"),
    (["--bogus"], "--bogus"),
])
def test_bad_flags_one_error_line_exit_2(argv, names, capsys, tmp_path):
    assert _exit_status([*argv, f"--out_dir={tmp_path / 'out'}"]) == 2
    _assert_one_error(capsys, names)
    assert not (tmp_path / "out").exists()


def test_missing_questions_file(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("RNNZOO_DATA_DIR", str(tmp_path))
    assert _exit_status([f"--out_dir={tmp_path / 'out'}"]) == 2
    _assert_one_error(capsys, str(tmp_path / "questions-words.txt"))
    monkeypatch.delenv("RNNZOO_DATA_DIR")
    assert _exit_status([f"--out_dir={tmp_path / 'out'}"]) == 2
    _assert_one_error(capsys, "RNNZOO_DATA_DIR")


def test_missing_corpus_file(monkeypatch, capsys, tmp_path, source_dir):
    """No text8 prefix in the data directory (and none prepared): the text worker's error."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "questions-words.txt").write_text((source_dir / "questions-words.txt").read_text())
    monkeypatch.setenv("RNNZOO_DATA_DIR", str(data))
    monkeypatch.setenv("RNNZOO_TFDS_DIR", str(tmp_path / "tfds"))
    assert _exit_status([f"--out_dir={tmp_path / 'out'}", "--models=cbow"]) == 2
    _assert_one_error(capsys, "text8_prefix_12549840.txt")


def _exit_status(argv) -> int:
    """main's return value, or the status it exits with (argparse exits)."""
    try:
        return bench.main(argv)
    except SystemExit as e:
        return e.code


def _assert_one_error(capsys, names):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], err
    assert "Traceback" not in err
