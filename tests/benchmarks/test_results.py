"""benchmarks/results.py: the tables from hand-written run directories, finished / partial /
missing detection, and one real tiny run through train.py."""

import dataclasses
import json
import math

import pytest
import results

EVAL = dict(corpus="text8/prefix", split="validation", scoring="windows")
RUN = {r.name: r for r in results.RUNS}


def _write_run(out_dir, run, seed, records, *, config=None, wall_clock=(), evaluation=None):
    """A run directory as train.py (and results.py) leave it, with `records` as metrics."""
    path = results.run_dir(out_dir, run, seed)
    path.mkdir(parents=True)
    config = config or run.config(seed)
    (path / "config.json").write_text(config.to_json() + "\n", encoding="utf-8")
    (path / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    if wall_clock:
        (path / results.WALL_CLOCK).write_text(
            "".join(json.dumps(dict(seconds=s, resumed=i > 0, returncode=0, argv=[])) + "\n"
                    for i, s in enumerate(wall_clock)), encoding="utf-8")
    if evaluation is not None:
        (path / results.EVAL_CACHE).write_text(json.dumps(dict(
            key=dict(EVAL, checkpoint=None), result=evaluation)), encoding="utf-8")
    return path


def _epochs(train, val=None, known=None, last=160, period=40):
    """Report records at every `period` epochs (train perplexities in order), val at the last."""
    records = [dict(epoch=e, step=e * 8, train_perplexity=t, val_perplexity=50.0)
               for e, t in zip(range(period, last + 1, period), train)]
    if val is not None:
        records[-1].update(val_perplexity=val, val_perplexity_known=known, val_unk_rate=0.12)
    return records


# -------------------------------------------------------------------------------- tables


def test_fmt_follows_the_readme():
    assert [results.fmt(x) for x in (3214.3, 10737.0, 213.26, 64.71, 15.68, 4.049, 1.4409)] == [
        "3,214", "10,737", "213.3", "64.7", "15.7", "4.05", "1.44"]
    assert results.fmt(1.0271, 3) == "1.027"
    assert results.fmt(None) == "—"
    assert results.fmt(math.inf) == "inf" and results.fmt(math.nan) == "nan"


def test_d2l_zh_table_with_reference_seed_rows_missing_seed_and_times(tmp_path):
    run = RUN["d2l_zh_lstm"]
    _write_run(tmp_path, run, 0, _epochs([213.26, 64.71, 15.68, 4.049], 3214.3, 1614.2),
               wall_clock=[812.3])
    _write_run(tmp_path, run, 1, _epochs([214.3, 66.0, 15.3, 4.0], 2807.4, 1511.0),
               wall_clock=[50.0, 20.4])
    text = results.report(results.collect([run], [0, 1, 2], tmp_path, log=lambda _: None),
                          [0, 1, 2])
    assert text == """\
**d2l-zh (1st ed.) on the Jay Chou lyrics**

| run | command | training perplexity at epoch 40 / 80 / 120 / 160 | validation perplexity at 160 (on known characters) |
|---|---|---|---|
| d2l-zh LSTM from scratch (reference) | — | 211.4 / 67.0 / 15.6 / 4.27 | not reported |
| rnnzoo LSTM, seed 0 | `python train.py --preset=d2l_zh_lstm` | 213.3 / 64.7 / 15.7 / **4.05** | 3,214 (1,614) |
| rnnzoo LSTM, seeds 1, 2 | `python train.py --preset=d2l_zh_lstm --seed=S` | 214.3 / 66.0 / 15.3 / **4.00**; — / — / — / — | 2,807 (1,511); — |

**Training time** (wall clock of `train.py` as this script ran it)

| run | seed 0 / 1 / 2 |
|---|---|
| d2l_zh_lstm | 13.5 min / 70 s (2 sessions) / — |
"""  # noqa: E501


def test_extra_flags_are_in_the_command_and_the_config(tmp_path):
    run = RUN["d2l_zh_gru_reset_before"]
    assert run.config(2).reset_after is False and run.config(2).seed == 2
    _write_run(tmp_path, run, 3, _epochs([150.0, 30.0, 5.0, 1.724], 10556.4))
    [result] = results.collect([run], [3], tmp_path)
    assert results.rows(run, {3: result}, results.GROUPS["d2l_zh"]) == [
        "| rnnzoo GRU, reset-before candidate (d2l 2nd ed.), seed 3 | `python train.py "
        "--preset=d2l_zh_gru --reset_after=false --seed=3` | 150.0 / 30.0 / 5.00 / **1.72** | "
        "10,556 |"]


def test_time_machine_row(tmp_path):
    run = RUN["d2l_time_machine_lstm2"]
    records = [dict(epoch=e, train_perplexity=t, val_perplexity=v) for e, t, v in
               [(100, 6.7, 7.382), (200, 2.0, 20.0), (300, 1.2, 40.0), (400, 1.0234, 50.0),
                (500, 1.0271, 52.24)]]
    _write_run(tmp_path, run, 0, records)
    text = results.report(results.collect([run], [0], tmp_path), [0])
    assert ("| run | command | training perplexity at epoch 500 | validation perplexity at "
            "100 / 500 |") in text
    assert ("| rnnzoo, seed 0 | `python train.py --preset=d2l_time_machine_lstm2` | "
            "**1.027** (1.023 at 400) | 7.38 / 52.2 |") in text.splitlines()


def test_course_rows_use_the_baseline_of_the_same_seed_and_the_cached_evaluation(tmp_path):
    lstm, bigram = RUN["course_lstm"], RUN["course_bigram_lstm"]

    def steps(train, val):
        return [dict(step=7000, train_perplexity=5.0, val_perplexity=5.0),
                dict(step=7001, train_perplexity=train, val_perplexity=val)]

    _write_run(tmp_path, lstm, 0, steps(4.1, 4.25), evaluation=dict(perplexity=5.0))
    _write_run(tmp_path, bigram, 0, steps(3.9, 4.0), evaluation=dict(perplexity=4.5))
    # Only the bigram run asked for: its baseline is read from its directory all the same.
    lines = results.report(results.collect([bigram], [0], tmp_path), [0]).splitlines()
    assert lines[2] == (
        "| run | command | training perplexity at step 7001 | validation perplexity at 7001 "
        "(the course's: first 1,000 characters, one stream) | validation perplexity, 5% split "
        "of text8/prefix (windows) | vs course_lstm (1,000 characters / 5% split) |")
    assert lines[4] == ("| rnnzoo bigram LSTM, 64 units, seed 0 | `python train.py "
                        "--preset=course_bigram_lstm` | 3.90 | 4.00 | 4.50 | 0.94x / 0.90x |")
    lines = results.report(results.collect([lstm], [0, 1], tmp_path), [0, 1]).splitlines()
    assert lines[4] == ("| TensorFlow course 6_lstm.ipynb (reference) | — | — | 4.25 at its "
                        "step 7000 (public reruns 4.23-4.32) | not reported | — |")
    assert lines[5] == ("| rnnzoo LSTM, 64 units, seed 0 | `python train.py --preset=course_lstm` "
                        "| 4.10 | 4.25 | 5.00 | — |")
    assert lines[6] == ("| rnnzoo LSTM, 64 units, seed 1 | `python train.py --preset=course_lstm "
                        "--seed=1` | — | — | — | — |")


def test_every_reference_row_fits_its_table():
    for run in results.RUNS:
        if run.reference:
            assert len(run.reference) == 1 + len(results.GROUPS[run.group].columns), run.name
        assert run.config(0).seed == 0  # every recipe is a valid config


# ------------------------------------------------------------------------------- status


def test_status_missing_finished_partial_diverged_mismatch(tmp_path):
    run = RUN["d2l_zh_lstm"]
    expected = run.config(0)
    path = results.run_dir(tmp_path, run, 0)
    assert results.run_status(path, expected)[0] == results.MISSING
    path.mkdir(parents=True)
    (path / "train.log").write_text("a failed start\n")
    assert results.run_status(path, expected)[0] == results.MISSING

    def status(records, **config):
        for name in ("config.json", "metrics.jsonl"):
            (path / name).unlink(missing_ok=True)
        (path / "config.json").write_text(dataclasses.replace(expected, **config).to_json())
        (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        return results.run_status(path, expected)

    full = [dict(epoch=e, train_perplexity=10.0) for e in range(1, 161)]
    assert status(full) == (results.FINISHED, "")
    assert status(full[:100]) == (results.PARTIAL, f"{path} is at epoch 100 of 160")
    assert status([])[0] == results.PARTIAL  # killed before its first epoch
    # A shorter run of the same recipe is resumed to the full length (num_epochs is resumable).
    assert status(full[:20], num_epochs=20)[0] == results.PARTIAL
    assert status(full[:100] + [dict(epoch=101, train_perplexity="nan", diverged=True)]) == (
        results.DIVERGED, f"{path} diverged at epoch 101")
    state, detail = status(full, lr=50.0)
    assert state == results.MISMATCH and "lr: 50.0 there, 100.0 here" in detail
    assert status(full[:10], seed=1)[0] == results.MISMATCH
    # Resumable fields that differ in a finished run: resuming would not redo its reports.
    assert status(full, pred_period=20)[0] == results.MISMATCH
    (path / "config.json").write_text("{not json")
    assert results.run_status(path, expected)[0] == results.MISMATCH


def test_step_runs_are_finished_at_their_last_step(tmp_path):
    run = RUN["course_lstm"]
    path = _write_run(tmp_path, run, 0, [dict(step=s, epoch=1) for s in (6900, 7000)])
    assert results.run_status(path, run.config(0)) == (
        results.PARTIAL, f"{path} is at step 7000 of 7001")
    with open(path / "metrics.jsonl", "a") as f:
        f.write(json.dumps(dict(step=7001, epoch=1)) + "\n")
    assert results.run_status(path, run.config(0))[0] == results.FINISHED


def test_train_reuses_a_finished_run_and_leaves_a_mismatched_one(tmp_path, monkeypatch):
    monkeypatch.setattr(results.subprocess, "run", lambda *a, **k: pytest.fail("trained"))
    run = RUN["d2l_zh_gru"]
    logs = []
    _write_run(tmp_path, run, 0, [dict(epoch=160, train_perplexity=1.44)])
    assert results.train(run, 0, tmp_path, log=logs.append)
    path = _write_run(tmp_path, run, 1, [dict(epoch=160)],
                      config=dataclasses.replace(run.config(1), lr=1.0))
    assert not results.train(run, 1, tmp_path, log=logs.append)
    assert (path / "config.json").exists()  # untouched without --rerun
    assert logs[0].endswith("finished, reused") and "--rerun" in logs[1]


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        results.main(["--runs=d2l_zh_lstm,nope"])
    assert "unknown runs ['nope']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        results.main(["--seeds=0,x"])


# ------------------------------------------------------------- a real run through train.py


@pytest.mark.slow
def test_tiny_time_machine_run_end_to_end(tmp_path, monkeypatch, capsys, source_dir, tfds_dir):
    monkeypatch.setenv("RNNZOO_DATA_DIR", str(source_dir))
    monkeypatch.setenv("RNNZOO_TFDS_DIR", str(tfds_dir))
    tiny = dict(num_layers=1, num_hiddens=16, num_epochs=1, pred_period=1, pred_len=10)
    run = results.Run("tiny", "time_machine", "tiny LSTM", "d2l_time_machine_lstm2", tiny)
    monkeypatch.setattr(results, "RUNS", [run])
    out = tmp_path / "out"
    argv = ["--runs=tiny", "--seeds=0", f"--out_dir={out}", f"--markdown={tmp_path / 't.md'}"]
    assert results.main(argv) == 0
    path = out / "tiny-s0"
    assert "training: python train.py --preset=d2l_time_machine_lstm2" in capsys.readouterr().err

    # The recipe grows to 2 epochs: the run directory is partial and is resumed.
    run = dataclasses.replace(run, flags=dict(tiny, num_epochs=2))
    monkeypatch.setattr(results, "RUNS", [run])
    assert results.main(argv) == 0
    printed = capsys.readouterr()
    assert "tiny-s0: resuming" in printed.err
    sessions = [json.loads(line) for line in (path / results.WALL_CLOCK).read_text().splitlines()]
    assert [(s["resumed"], s["returncode"]) for s in sessions] == [(False, 0), (True, 0)]
    assert "--resume" in sessions[1]["argv"] and all(s["seconds"] > 0 for s in sessions)

    metrics = {r["epoch"]: r for r in map(json.loads, (path / "metrics.jsonl").open())}
    assert sorted(metrics) == [1, 2]
    t1, t2 = metrics[1]["train_perplexity"], metrics[2]["train_perplexity"]
    v1, v2 = metrics[1]["val_perplexity"], metrics[2]["val_perplexity"]
    row = (f"| tiny LSTM, seed 0 | `python train.py --preset=d2l_time_machine_lstm2 "
           f"--num_layers=1 --num_hiddens=16 --num_epochs=2 --pred_period=1 --pred_len=10` | "
           f"**{t2:.3f}** ({t1:.3f} at 1) | {results.fmt(v1)} / {results.fmt(v2)} |")
    assert row in printed.out.splitlines()
    assert "| training perplexity at epoch 2 | validation perplexity at 1 / 2 |" in printed.out
    assert (tmp_path / "t.md").read_text(encoding="utf-8") == printed.out

    # Finished: reused, not trained again.
    assert results.main(argv) == 0
    again = capsys.readouterr()
    assert "tiny-s0: finished, reused" in again.err and again.out == printed.out
    assert len((path / results.WALL_CLOCK).read_text().splitlines()) == 2

    # A group's evaluation (evaluate_run) on the last checkpoint: the run's own validation
    # split scored as training scores it gives its last val_perplexity; then it is cached.
    [result] = results.collect([run], [0], out)
    kwargs = dict(corpus="time_machine/d2l", split="validation", scoring="windows")
    value = results.evaluate(result, kwargs)
    assert value["checkpoint"] == "ckpt-2"
    assert value["perplexity"] == pytest.approx(v2, rel=1e-4)
    monkeypatch.setattr("rnnzoo.tasks.char_lm.evaluate_run", lambda *a, **k: pytest.fail())
    assert results.evaluate(result, kwargs) == value
