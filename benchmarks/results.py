"""Reruns the seed runs and prints the README's Results tables, so the README cannot drift.

    python benchmarks/results.py                          # every run, seeds 0, 1, 2
    python benchmarks/results.py --runs=d2l_zh_lstm,d2l_zh_gru --seeds=0 --markdown=results.md

A run is a recipe of `RUNS`: a preset of `rnnzoo.zoo.PRESETS` plus extra `train.py` flags. Each
(run, seed) trains, one at a time, as

    python train.py --preset=P [flags] --seed=S --workdir=<out_dir>/<run>-s<S>

with the environment passed through (`RNNZOO_DATA_DIR`, `RNNZOO_TFDS_DIR`); its output goes to
`<run dir>/train.log` and the wall-clock time of each `train.py` to `<run dir>/wall_clock.jsonl`.
A run directory that already holds the finished run (same config, `metrics.jsonl` at the final
epoch or step) is reused, a partial one is resumed (`--resume`); one holding another config or a
diverged run is left alone, and `--rerun` trains any of them again from scratch. The tables are
then read from the run directories (`metrics.jsonl`; the course runs are also scored on the 5%
validation split of text8/prefix, cached in `<run dir>/results_eval.json`) and printed to stdout,
and to `--markdown=FILE`; progress goes to stderr. A value a run lacks is shown as "—", and the
exit status is 1 if any run is not finished.

The recipes and the reference figures live here only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
# The rnnzoo next to this script, the one `train.py` below runs (not another installed copy).
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rnnzoo import zoo  # noqa: E402
from rnnzoo.config import ConfigError, TrainConfig  # noqa: E402
from rnnzoo.run_dir import RunDir, RunDirError  # noqa: E402

MISSING, PARTIAL, FINISHED, DIVERGED, MISMATCH = (
    "missing", "partial", "finished", "diverged", "mismatch")
NONE = "—"  # a value a run does not have (yet)
WALL_CLOCK = "wall_clock.jsonl"
EVAL_CACHE = "results_eval.json"


@dataclasses.dataclass(frozen=True)
class Run:
    """A seed run's recipe and its rows in the tables."""

    name: str  # run directories <out_dir>/<name>-s<seed>
    group: str  # the table (a key of GROUPS)
    label: str  # the row's label; ", seed 0" / ", seeds 1, 2" is added
    preset: str
    flags: dict[str, Any] = dataclasses.field(default_factory=dict)  # more train.py flags
    reference: tuple[str, ...] = ()  # a reference row above it: label, then the group's cells
    baseline: str | None = None  # the run of the same seed the "vs" column divides by

    def argv(self) -> list[str]:
        """`train.py` flags: the preset, then the extra flags."""
        return [f"--preset={self.preset}"] + [f"--{k}={_flag_value(v)}"
                                              for k, v in self.flags.items()]

    def config(self, seed: int) -> TrainConfig:
        """The config `train.py` builds for this run and seed."""
        return zoo.make_config(preset=self.preset, seed=seed, **self.flags)


RUNS = [
    Run("d2l_zh_lstm", "d2l_zh", "rnnzoo LSTM", "d2l_zh_lstm",
        reference=("d2l-zh LSTM from scratch (reference)", "211.4 / 67.0 / 15.6 / 4.27",
                   "not reported")),
    Run("d2l_zh_gru", "d2l_zh", "rnnzoo GRU", "d2l_zh_gru",
        reference=("d2l-zh GRU from scratch (reference)", "about 1.44 at 160", "not reported")),
    Run("d2l_zh_gru_reset_before", "d2l_zh", "rnnzoo GRU, reset-before candidate (d2l 2nd ed.)",
        "d2l_zh_gru", dict(reset_after=False)),
    Run("d2l_time_machine_lstm2", "time_machine", "rnnzoo", "d2l_time_machine_lstm2",
        reference=("d2l (reference)", "about 1.0", "not reported")),
    Run("course_lstm", "course", "rnnzoo LSTM, 64 units", "course_lstm",
        reference=("TensorFlow course 6_lstm.ipynb (reference)", NONE,
                   "4.25 at its step 7000 (public reruns 4.23-4.32)", "not reported", NONE)),
    Run("course_bigram_lstm", "course", "rnnzoo bigram LSTM, 64 units", "course_bigram_lstm",
        baseline="course_lstm"),
    Run("course_bigram_lstm_dropout", "course", "rnnzoo bigram LSTM, 64 units, dropout 0.4",
        "course_bigram_lstm", dict(dropout=0.4), baseline="course_lstm"),
    Run("course_bigram_lstm_large", "course", "rnnzoo bigram LSTM, 512 units, dropout 0.4, Adam",
        "course_bigram_lstm_large", baseline="course_lstm"),
    Run("course_bigram_lstm_large_nodropout", "course", "rnnzoo bigram LSTM, 512 units, Adam",
        "course_bigram_lstm_large", dict(dropout=0.0), baseline="course_lstm"),
]


# ----------------------------------------------------------------------- a run's results


@dataclasses.dataclass
class Result:
    """What one (run, seed) directory holds."""

    run: Run
    seed: int
    path: pathlib.Path
    status: str
    detail: str  # why it is not finished
    config: TrainConfig  # the run's own config, else the one it would be trained with
    records: dict[int, dict]  # metrics.jsonl by epoch (or by step, for a run in steps)
    evaluation: dict | None = None  # the group's extra evaluation (`Group.evaluate`)
    baseline: Result | None = None  # the result of `run.baseline`, same seed

    @property
    def positions(self) -> list[int]:
        """Epochs (or steps) at which the run reports validation: every `pred_period`, and
        the last."""
        return report_positions(self.config)

    def value(self, position: int, key: str) -> float | None:
        value = self.records.get(position, {}).get(key)
        return None if value is None else float(value)


def report_positions(config: TrainConfig) -> list[int]:
    final = final_position(config)
    return sorted({*range(config.pred_period, final + 1, config.pred_period), final})


def final_position(config: TrainConfig) -> int:
    return config.train_steps if config.by_steps else config.num_epochs


def run_dir(out_dir, run: Run, seed: int) -> pathlib.Path:
    return pathlib.Path(out_dir) / f"{run.name}-s{seed}"


def run_status(path, expected: TrainConfig) -> tuple[str, str]:
    """`(status, detail)` of a run directory against the config it should have been run with.

    missing: no run there; finished: same config, metrics at the final epoch (or step);
    partial: same config but for fields `--resume` may change, not at the final one yet;
    diverged: it stopped on a non-finite loss; mismatch: anything else (`--rerun` replaces it).
    """
    run = RunDir(path)
    if not run.exists():
        return MISSING, f"{path} holds no run"
    try:
        saved = zoo.config_from_dict(run.read_config_dict()).to_dict()
        records = run.read_metrics()
    except (RunDirError, ConfigError, TypeError, ValueError) as e:
        return MISMATCH, f"{path}: {e}"
    key = "step" if expected.by_steps else "epoch"
    final = final_position(expected)
    differing = sorted(k for k, v in expected.to_dict().items() if saved.get(k) != v)
    frozen = [k for k in differing if k not in expected.resumable_fields()]
    done = bool(records) and records[-1].get(key, 0) >= final
    if frozen or (differing and done):
        return MISMATCH, f"{path} holds another run: " + "; ".join(
            f"{k}: {saved.get(k)!r} there, {expected.to_dict()[k]!r} here" for k in differing)
    if records and records[-1].get("diverged"):
        return DIVERGED, f"{path} diverged at {key} {records[-1].get(key)}"
    if done:
        return FINISHED, ""
    return PARTIAL, f"{path} is at {key} {records[-1].get(key, 0) if records else 0} of {final}"


def read_result(out_dir, run: Run, seed: int) -> Result:
    """A run directory's status, config and metrics (no records for a mismatched one)."""
    path = run_dir(out_dir, run, seed)
    expected = run.config(seed)
    status, detail = run_status(path, expected)
    records = {}
    config = expected
    if status not in (MISSING, MISMATCH):
        config = zoo.config_from_dict(RunDir(path).read_config_dict())
        key = "step" if config.by_steps else "epoch"
        records = {r[key]: r for r in RunDir(path).read_metrics() if key in r}
    return Result(run, seed, path, status, detail, config, records)


def wall_clock(path) -> tuple[float, int] | None:
    """`(seconds, sessions)`: the wall-clock time of the `train.py` runs that made a run
    directory, as this script recorded it (None if it did not train it)."""
    file = pathlib.Path(path) / WALL_CLOCK
    if not file.exists():
        return None
    entries = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    return sum(e["seconds"] for e in entries), len(entries)


# -------------------------------------------------------------------------------- training


def train(run: Run, seed: int, out_dir, *, rerun: bool = False, log=print) -> bool:
    """Makes sure the run directory holds the finished run; True if it does afterwards."""
    path = run_dir(out_dir, run, seed)
    status, detail = run_status(path, run.config(seed))
    name = path.name
    if rerun and status != MISSING:
        log(f"{name}: --rerun, removing {path}")
        shutil.rmtree(path)
        status = MISSING
    if status == FINISHED:
        log(f"{name}: finished, reused")
        return True
    if status in (MISMATCH, DIVERGED):
        log(f"{name}: not trained: {detail} (--rerun trains it again from scratch)")
        return False
    path.mkdir(parents=True, exist_ok=True)
    argv = [*run.argv(), f"--seed={seed}", f"--workdir={path}"]
    if status == PARTIAL:
        argv.append("--resume")
    log(f"{name}: {'resuming' if status == PARTIAL else 'training'}: python train.py "
        f"{' '.join(argv)} (log: {path / 'train.log'})")
    start = time.time()
    with open(path / "train.log", "a", encoding="utf-8") as out:
        out.write(f"$ python train.py {' '.join(argv)}\n")
        out.flush()
        returncode = subprocess.run([sys.executable, str(REPO / "train.py"), *argv],
                                    stdout=out, stderr=subprocess.STDOUT, env=os.environ,
                                    check=False).returncode
    seconds = time.time() - start
    with open(path / WALL_CLOCK, "a", encoding="utf-8") as f:
        f.write(json.dumps(dict(seconds=round(seconds, 1), resumed=status == PARTIAL,
                                returncode=returncode, argv=argv)) + "\n")
    status, detail = run_status(path, run.config(seed))
    log(f"{name}: train.py exited with {returncode} after {seconds:.0f} s; {status}"
        + (f" ({detail})" if detail else ""))
    if returncode != 0:
        tail = (path / "train.log").read_text(encoding="utf-8").splitlines()[-15:]
        log("\n".join("    " + line for line in tail))
    return status == FINISHED


# --------------------------------------------------------------------------------- tables


def fmt(value: float | None, digits: int | None = None) -> str:
    """The README's numbers: thousands as integers with commas, else 1 decimal from 10 up and
    2 below (or `digits` decimals)."""
    if value is None:
        return NONE
    if not math.isfinite(value):
        return str(value)
    if digits is not None:
        return f"{value:.{digits}f}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _bold(text: str) -> str:
    return text if text == NONE else f"**{text}**"


def d2l_zh_cells(r: Result) -> tuple[str, ...]:
    """Training perplexity at every report (the last in bold); validation perplexity at the
    last, with the perplexity on known characters."""
    *before, last = r.positions
    train = [fmt(r.value(p, "train_perplexity")) for p in before]
    train.append(_bold(fmt(r.value(last, "train_perplexity"))))
    val = fmt(r.value(last, "val_perplexity"))
    known = r.value(last, "val_perplexity_known")
    return " / ".join(train), val + (f" ({fmt(known)})" if known is not None else "")


def time_machine_cells(r: Result) -> tuple[str, ...]:
    """Training perplexity at the last report (and the one before); validation perplexity at
    the first report and the last."""
    positions = r.positions
    last = positions[-1]
    train = _bold(fmt(r.value(last, "train_perplexity"), 3))
    if len(positions) > 1:
        train += f" ({fmt(r.value(positions[-2], 'train_perplexity'), 3)} at {positions[-2]})"
    vals = [fmt(r.value(p, "val_perplexity")) for p in dict.fromkeys([positions[0], last])]
    return train, " / ".join(vals)


def course_cells(r: Result) -> tuple[str, ...]:
    """Training and validation (the course's) perplexity at the last step, the perplexity on
    the 5% split, and both validation figures over the baseline run's."""
    last = r.positions[-1]
    val = r.value(last, "val_perplexity")
    split = (r.evaluation or {}).get("perplexity")
    versus = NONE
    base = r.baseline
    if base is not None and base.status == FINISHED:
        base_val = base.value(base.positions[-1], "val_perplexity")
        base_split = (base.evaluation or {}).get("perplexity")
        versus = " / ".join(f"{a / b:.2f}x" if a is not None and b else NONE
                            for a, b in ((val, base_val), (split, base_split)))
    return fmt(r.value(last, "train_perplexity")), fmt(val), fmt(split), versus


@dataclasses.dataclass(frozen=True)
class Group:
    """A table: its title, its columns after "run" and "command" (`{all}`, `{first}` and
    `{last}` are the report epochs or steps of its first run), the cells of one seed, and an
    evaluation to run on each finished run's last checkpoint (`evaluate_run` keywords)."""

    title: str
    columns: tuple[str, ...]
    cells: Callable[[Result], tuple[str, ...]]
    evaluate: dict | None = None


GROUPS = {
    "d2l_zh": Group(
        "**d2l-zh (1st ed.) on the Jay Chou lyrics**",
        ("training perplexity at epoch {all}", "validation perplexity at {last} (on known "
         "characters)"), d2l_zh_cells),
    "time_machine": Group(
        "**d2l (2nd ed.) 9.3: 2-layer LSTM on The Time Machine**",
        ("training perplexity at epoch {last}", "validation perplexity at {first} / {last}"),
        time_machine_cells),
    "course": Group(
        "**The TensorFlow course's character LSTM on text8** (the first 12,549,840 "
        "characters)",
        ("training perplexity at step {last}", "validation perplexity at {last} (the "
         "course's: first 1,000 characters, one stream)", "validation perplexity, 5% split "
         "of text8/prefix (windows)", "vs course_lstm (1,000 characters / 5% split)"),
        course_cells, evaluate=dict(corpus="text8/prefix", split="validation",
                                    scoring="windows")),
}


def command(run: Run, seeds: list[int]) -> str:
    seed = [] if seeds == [0] else ["--seed=S" if len(seeds) > 1 else f"--seed={seeds[0]}"]
    return "`" + " ".join(["python train.py", *run.argv(), *seed]) + "`"


def rows(run: Run, results: dict[int, Result], group: Group) -> list[str]:
    """The reference row, then one row for seed 0 and one for the other seeds (their values
    separated by "; "), as the README has them."""
    lines = []
    if run.reference:
        lines.append(_row(run.reference[0], NONE, *run.reference[1:]))
    seeds = sorted(results)
    for part in ([s for s in seeds if s == 0], [s for s in seeds if s != 0]):
        if not part:
            continue
        label = (f"{run.label}, seed{'s' if len(part) > 1 else ''} "
                 + ", ".join(map(str, part)))
        cells = [group.cells(results[s]) for s in part]
        lines.append(_row(label, command(run, part),
                          *("; ".join(column) for column in zip(*cells))))
    return lines


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def table(group: Group, results: dict[str, dict[int, Result]]) -> str:
    """The markdown table of a group: `results` maps each of its runs' name to its seeds."""
    first = next(iter(next(iter(results.values())).values()))
    positions = first.positions
    where = dict(all=" / ".join(map(str, positions)), first=positions[0], last=positions[-1])
    header = ["run", "command", *(c.format(**where) for c in group.columns)]
    lines = [group.title, "", _row(*header), "|" + "---|" * len(header)]
    for by_seed in results.values():
        lines += rows(next(iter(by_seed.values())).run, by_seed, group)
    return "\n".join(lines)


def timing_table(results: list[Result], seeds: list[int]) -> str:
    """The wall-clock time of each run's `train.py` (all its sessions), seed by seed."""
    lines = ["**Training time** (wall clock of `train.py` as this script ran it)", "",
             _row("run", "seed " + " / ".join(map(str, seeds))), "|---|---|"]
    by_run: dict[str, list[str]] = {}
    for r in results:
        timing = wall_clock(r.path)
        cell = NONE
        if timing is not None:
            seconds, sessions = timing
            cell = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
            cell += f" ({sessions} sessions)" if sessions > 1 else ""
        by_run.setdefault(r.run.name, []).append(cell)
    lines += [_row(name, " / ".join(cells)) for name, cells in by_run.items()]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- evaluation


def evaluate(result: Result, kwargs: dict) -> dict | None:
    """`evaluate_run(path, **kwargs)` on the run's last checkpoint, cached in the run
    directory (recomputed when the checkpoint or the arguments change)."""
    run = RunDir(result.path)
    checkpoint = run.latest_checkpoint()
    key = dict(kwargs, checkpoint=os.path.basename(checkpoint) if checkpoint else None)
    cache = result.path / EVAL_CACHE
    if cache.exists():
        saved = json.loads(cache.read_text(encoding="utf-8"))
        if saved.get("key") == key:
            return saved["result"]
    if checkpoint is None:
        return None
    from rnnzoo.tasks.char_lm import evaluate_run

    value = evaluate_run(result.path, **kwargs)
    cache.write_text(json.dumps(dict(key=key, result=value), sort_keys=True) + "\n",
                     encoding="utf-8")
    return value


def collect(runs: list[Run], seeds: list[int], out_dir, log=print) -> list[Result]:
    """Every (run, seed) result, with its group's evaluation and its baseline."""
    results = {(r.name, s): read_result(out_dir, r, s) for r in runs for s in seeds}
    by_name = {r.name: r for r in RUNS + runs}

    def baseline(name: str, seed: int) -> Result:
        if (name, seed) not in results:
            results[(name, seed)] = read_result(out_dir, by_name[name], seed)
        return results[(name, seed)]

    for result in list(results.values()):
        if result.run.baseline:
            result.baseline = baseline(result.run.baseline, result.seed)
    for result in results.values():
        group = GROUPS[result.run.group]
        if group.evaluate and result.status == FINISHED:
            log(f"{result.path.name}: evaluating on {group.evaluate}")
            result.evaluation = evaluate(result, group.evaluate)
    return [results[(r.name, s)] for r in runs for s in seeds]


def report(results: list[Result], seeds: list[int]) -> str:
    """The tables of every group that has runs in `results`, then the training times."""
    tables = []
    for key, group in GROUPS.items():
        by_run: dict[str, dict[int, Result]] = {}
        for r in results:
            if r.run.group == key:
                by_run.setdefault(r.run.name, {})[r.seed] = r
        if by_run:
            tables.append(table(group, by_run))
    tables.append(timing_table(results, seeds))
    return "\n\n".join(tables) + "\n"


# ------------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default=None,
                        help="comma list of runs (default: all): " + ", ".join(
                            r.name for r in RUNS))
    parser.add_argument("--seeds", default="0,1,2", help="comma list of seeds")
    parser.add_argument("--out_dir", default="runs/results", help="where the runs live")
    parser.add_argument("--rerun", action="store_true",
                        help="train again from scratch even where a run is finished")
    parser.add_argument("--markdown", default=None, help="also write the tables to this file")
    args = parser.parse_args(argv)

    by_name = {r.name: r for r in RUNS}
    names = args.runs.split(",") if args.runs else list(by_name)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        parser.error(f"unknown runs {unknown}; known: {', '.join(by_name)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds must be a comma list of integers, got {args.seeds!r}")
    runs = [by_name[n] for n in names]
    out_dir = pathlib.Path(args.out_dir).resolve()
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731

    failed = [f"{r.name}-s{s}" for r in runs for s in seeds
              if not train(r, s, out_dir, rerun=args.rerun, log=log)]
    text = report(collect(runs, seeds, out_dir, log=log), seeds)
    print(text, end="")
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text, encoding="utf-8")
    if failed:
        log(f"not finished: {', '.join(failed)} (shown as {NONE})")
    return 1 if failed else 0


def _flag_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
