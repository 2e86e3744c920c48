"""rnnzoo.plot: reading metrics.jsonl into curves, drawing them into a PNG, and the CLI's errors."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from rnnzoo.plot import PlotError, plot_runs, read_curves

REPO = pathlib.Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _run_dir(root: pathlib.Path, name: str, *lines) -> pathlib.Path:
    """A run directory whose metrics.jsonl holds `lines` (dicts as JSON, strings as written)."""
    path = root / name
    path.mkdir()
    text = "".join((json.dumps(line) if isinstance(line, dict) else line) + "\n"
                   for line in lines)
    (path / "metrics.jsonl").write_text(text, encoding="utf-8")
    return path


def _epoch_run(root, name="lstm"):
    return _run_dir(root, name,
                    {"epoch": 1, "train_perplexity": 30.0, "tokens_per_sec": 1000.0},
                    {"epoch": 2, "train_perplexity": 12.5, "val_perplexity": 15.0},
                    {"epoch": 3, "train_perplexity": 6.0},
                    {"epoch": 4, "train_perplexity": 4.0, "val_perplexity": 8.0})


def _step_run(root, name="steps"):
    return _run_dir(root, name,
                    {"step": 100, "epoch": 1, "train_perplexity": 20.0},
                    {"step": 200, "epoch": 1, "train_perplexity": 10.0, "val_perplexity": 11.0},
                    {"step": 300, "epoch": 2, "train_perplexity": 5.0})


# ------------------------------------------------------------------------ read_curves


def test_read_curves_epoch_based(tmp_path):
    assert read_curves(_epoch_run(tmp_path)) == {
        "x_unit": "epoch",
        "train_xs": [1, 2, 3, 4], "train_ys": [30.0, 12.5, 6.0, 4.0],
        "val_xs": [2, 4], "val_ys": [15.0, 8.0],
    }


def test_read_curves_step_based(tmp_path):
    assert read_curves(_step_run(tmp_path)) == {
        "x_unit": "step",
        "train_xs": [100, 200, 300], "train_ys": [20.0, 10.0, 5.0],
        "val_xs": [200], "val_ys": [11.0],
    }


def test_read_curves_uses_epoch_unless_every_record_has_a_step(tmp_path):
    run = _run_dir(tmp_path, "mixed",
                   {"step": 100, "epoch": 1, "train_perplexity": 20.0},
                   {"epoch": 2, "train_perplexity": 10.0, "val_perplexity": 12.0},
                   {"note": "a record without perplexity does not count", "epoch": 9})
    assert read_curves(run) == {"x_unit": "epoch", "train_xs": [1, 2], "train_ys": [20.0, 10.0],
                                "val_xs": [2], "val_ys": [12.0]}


def test_read_curves_skips_non_finite_values(tmp_path):
    run = _run_dir(tmp_path, "diverged",
                   {"epoch": 1, "train_perplexity": 50.0, "val_perplexity": "inf"},
                   '{"epoch": 2, "train_perplexity": NaN, "val_perplexity": 40.0}',
                   {"epoch": 3, "train_perplexity": "25.5", "val_perplexity": float("inf")},
                   "",
                   {"epoch": 4, "train_perplexity": "inf", "diverged": True},
                   {"epoch": 5, "train_perplexity": "nan", "diverged": True})
    assert read_curves(run) == {"x_unit": "epoch", "train_xs": [1, 3], "train_ys": [50.0, 25.5],
                                "val_xs": [2], "val_ys": [40.0]}


def test_read_curves_resumed_run_replaces_redone_points(tmp_path):
    run = _run_dir(tmp_path, "resumed",
                   {"step": 100, "train_perplexity": 9.0},
                   {"step": 200, "train_perplexity": 8.0, "val_perplexity": 8.5},
                   {"step": 300, "train_perplexity": 7.0},
                   {"step": 200, "train_perplexity": 7.5},  # resumed from the step-100 checkpoint
                   {"step": 300, "train_perplexity": 6.5, "val_perplexity": 7.0})
    assert read_curves(run) == {"x_unit": "step", "train_xs": [100, 200, 300],
                                "train_ys": [9.0, 7.5, 6.5], "val_xs": [200, 300],
                                "val_ys": [8.5, 7.0]}


def test_read_curves_skips_a_last_line_still_being_written(tmp_path):
    run = _epoch_run(tmp_path)
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"epoch": 5, "train_perp')  # no newline: the writer is not done yet
    assert read_curves(run)["train_xs"] == [1, 2, 3, 4]


@pytest.mark.parametrize("lines, message", [
    ([{"epoch": 1, "train_perplexity": 3.0}, '{"epoch": 2, "train_perp'], ":2: not valid JSON"),
    (['{"epoch": 1, "train_perplexity": 3.0}  trailing', ""], ":1: not valid JSON"),
    ([{"epoch": 1, "train_perplexity": 3.0}, "[1, 2]"], ":2: not a JSON object"),
    ([{"epoch": 1, "train_perplexity": "low"}], ':1: train_perplexity is "low", not a number'),
    ([{"epoch": 1, "val_perplexity": True}], ":1: val_perplexity is true, not a number"),
    ([{"epoch": "one", "train_perplexity": 3.0}], ':1: epoch is "one", not a finite number'),
    ([{"epoch": 1, "train_perplexity": 3.0}, {"train_perplexity": 2.0}], ":2: the record has a "
     "perplexity but no epoch"),
    ([], "holds no finite train_perplexity or val_perplexity"),
    ([{"epoch": 1, "train_perplexity": "nan", "diverged": True}, {"epoch": 1, "seconds": 3}],
     "holds no finite train_perplexity or val_perplexity"),
])
def test_read_curves_rejects_bad_metrics(tmp_path, lines, message):
    run = _run_dir(tmp_path, "bad", *lines)
    with pytest.raises(PlotError, match="metrics.jsonl") as info:
        read_curves(run)
    assert message in str(info.value)


def test_read_curves_rejects_missing_directories(tmp_path):
    with pytest.raises(PlotError, match="no such run directory"):
        read_curves(tmp_path / "nope")
    with pytest.raises(PlotError, match="holds no metrics.jsonl"):
        read_curves(tmp_path)


# ------------------------------------------------------------------------ plot_runs


def _assert_png(path: pathlib.Path, min_width: int = 400):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert width >= min_width and height >= 300, image.shape
    assert image.std() > 0.01  # Not a blank canvas.
    return image


def test_plot_runs_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    runs = [_epoch_run(tmp_path, "lstm"), _epoch_run(tmp_path, "gru")]
    out = tmp_path / "figures" / "curves.png"
    assert plot_runs(runs, out, labels=["LSTM", "GRU"], title="Two runs") == out
    single = _assert_png(out)
    assert sorted(os.listdir(out.parent)) == ["curves.png"]  # No temporary file left behind.

    # Epoch and step runs in one figure: one subplot per x unit, side by side.
    mixed_out = tmp_path / "mixed.png"
    plot_runs([runs[0], _step_run(tmp_path)], mixed_out, log_y=False)
    mixed = _assert_png(mixed_out)
    assert mixed.shape[1] > 1.5 * single.shape[1]


def test_plot_runs_rejects_a_wrong_number_of_labels(tmp_path):
    with pytest.raises(PlotError, match="1 labels for 2 run directories"):
        plot_runs([_epoch_run(tmp_path, "a"), _epoch_run(tmp_path, "b")], tmp_path / "x.png",
                  labels=["a"])


# ------------------------------------------------------------------------ command line


def _plot_cli(*args, python_code=None):
    command = ([sys.executable, "-c", python_code, *args] if python_code
               else [sys.executable, "-m", "rnnzoo.plot", *args])
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_cli_draws_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    runs = [_epoch_run(tmp_path, "lstm"), _epoch_run(tmp_path, "gru")]
    out = tmp_path / "curves.png"
    result = _plot_cli(*map(str, runs), f"--output={out}", "--labels=LSTM,GRU", "--linear",
                       "--title=Two runs")
    assert result.returncode == 0, result.stderr
    _assert_png(out)


def _bad_runs(tmp_path):
    """Name -> (run directory, what its `error:` line must say)."""
    (tmp_path / "empty").mkdir()
    return {
        "missing dir": (tmp_path / "missing", "missing: no such run directory"),
        "no metrics": (tmp_path / "empty", "empty holds no metrics.jsonl"),
        "no finite perplexity": (
            _run_dir(tmp_path, "diverged", {"epoch": 1, "train_perplexity": "nan",
                                            "diverged": True}),
            "holds no finite train_perplexity or val_perplexity"),
        "malformed json": (
            _run_dir(tmp_path, "broken", {"epoch": 1, "train_perplexity": 3.0}, "{oops",
                     {"epoch": 2, "train_perplexity": 2.0}),
            f"{tmp_path / 'broken' / 'metrics.jsonl'}:2: not valid JSON"),
    }


@pytest.mark.parametrize("case", ["missing dir", "no metrics", "no finite perplexity",
                                  "malformed json"])
def test_cli_reports_bad_runs(tmp_path, case):
    run, message = _bad_runs(tmp_path)[case]
    good = _epoch_run(tmp_path, "good")
    out = tmp_path / "curves.png"
    result = _plot_cli(str(good), str(run), f"--output={out}")
    _assert_one_error(result, message)
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    ([], "error: no run directory given"),
    (["RUN"], "error: --output is required"),
    (["RUN", "--output=OUT", "--labels=a,b"], "error: 2 labels for 1 run directories"),
])
def test_cli_reports_bad_arguments(tmp_path, args, message):
    run = _epoch_run(tmp_path)
    args = [a.replace("RUN", str(run)).replace("OUT", str(tmp_path / "x.png")) for a in args]
    _assert_one_error(_plot_cli(*args), message)


def test_cli_says_how_to_install_matplotlib(tmp_path):
    run = _epoch_run(tmp_path)
    hide_matplotlib = ("import runpy, sys; sys.modules['matplotlib'] = None; "
                       "sys.argv[0] = 'rnnzoo.plot'; "
                       "runpy.run_module('rnnzoo.plot', run_name='__main__', alter_sys=True)")
    result = _plot_cli(str(run), f"--output={tmp_path / 'x.png'}", python_code=hide_matplotlib)
    _assert_one_error(result, 'matplotlib is not installed; install it with '
                              'pip install -e ".[plot]"')
    assert not (tmp_path / "x.png").exists()


def _assert_one_error(result, message):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert message.removeprefix("error: ") in errors[0], result.stderr
