"""End to end: `train.py` against d2l's PyTorch script for the same run, epoch by epoch.

    python benchmarks/end_to_end.py [--runs=d2l_zh_lstm,...] [--rounds=3] [--epochs=30]
        [--threads=2] [--torch_python=PYTHON] [--against=OTHER_CHECKOUT] [--out=FILE]

What a user compares: the two programs they would run, each alone. For each run of `RUNS` (the
seed configurations at V=28 and V=1027), `--rounds` rounds; in each, in an order shuffled per
round, one after the other (never together), each in a fresh process of its own:

- rnnzoo: `python train.py --preset=P [flags] --num_epochs=E --workdir=<temporary>`;
- torch: `python benchmarks/d2l_torch.py --preset=P [flags] --num_epochs=E` (d2l's concise
  PyTorch model and training loop for the same settings: batch 32, 35 steps, hidden 256, the
  preset's layers, SGD learning rate and global-norm clip, sequential sampling);
- with `--against=PATH`, rnnzoo@other: `PATH/train.py` the same way (A/B of a change).

Both run with `--threads` threads (`TF_NUM_INTRAOP_THREADS`, `TF_NUM_INTEROP_THREADS`,
`OMP_NUM_THREADS`; `torch.set_num_threads`). An epoch's time is what each program reports for
it: rnnzoo's `seconds` in `metrics.jsonl` (from the start of the epoch's data pipeline to its
last step's loss on the host: data loading, every step, the per-epoch bookkeeping of the loop;
the reports, at `pred_period` and the last epoch, and checkpoints are not in it), d2l's the time
of its epoch loop (`train_epoch_ch8`'s timer: data iteration and steps). The first `--skip`
epochs of each process are left out (tracing, compiling, warming caches); the tokens/s of a
program is the median over the remaining epochs of all rounds, with the min and max of the
rounds' medians. The wall-clock time of each whole command (start-up, compile and the final
report included) is shown too.

Data: `$RNNZOO_DATA_DIR` (the offline corpora), passed through to both.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import harness

REPO = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    preset: str
    label: str
    flags: tuple[str, ...] = ()  # more flags for both programs


RUNS = {r.name: r for r in [
    Run("d2l_zh_lstm", "d2l_zh_lstm", "LSTM, Jay Chou, V=1027"),
    Run("d2l_zh_gru", "d2l_zh_gru", "GRU, Jay Chou, V=1027"),
    Run("d2l_time_machine_lstm", "d2l_time_machine_lstm2", "LSTM, Time Machine, V=28",
        ("--num_layers=1",)),
    Run("d2l_time_machine_lstm2", "d2l_time_machine_lstm2", "2-layer LSTM, Time Machine, V=28"),
    # No preset trains a GRU at V=28: the Time Machine run with d2l's GRU (reset-after, as
    # PyTorch's nn.GRU), the GRU target.
    Run("d2l_time_machine_gru", "d2l_time_machine_lstm2", "GRU, Time Machine, V=28",
        ("--num_layers=1", "--model=gru")),
]}
# The targets at V=28 (rnnzoo / PyTorch end to end), and the lead kept at V=1027.
TARGETS = {"d2l_time_machine_lstm": 1.0, "d2l_time_machine_lstm2": 1.0,
           "d2l_time_machine_gru": 1.3, "d2l_zh_lstm": 1.0, "d2l_zh_gru": 1.0}


def rnnzoo_command(python, checkout, run: Run, epochs: int, workdir) -> list[str]:
    return [python, str(pathlib.Path(checkout) / "train.py"), f"--preset={run.preset}",
            *run.flags, f"--num_epochs={epochs}", f"--workdir={workdir}"]


def torch_command(python, run: Run, epochs: int, threads: int) -> list[str]:
    return [python, str(REPO / "benchmarks" / "d2l_torch.py"), f"--preset={run.preset}",
            *run.flags, f"--num_epochs={epochs}", f"--threads={threads}"]


def run_rnnzoo(python, checkout, run: Run, epochs: int, threads: int) -> tuple[list[dict], float]:
    """`(per-epoch records, whole command's seconds)` of one `train.py` process."""
    workdir = tempfile.mkdtemp(prefix="rnnzoo-e2e-")
    try:
        env = dict(os.environ, **harness.thread_env(threads))
        env["PYTHONPATH"] = str(checkout)
        start = time.perf_counter()
        done = subprocess.run(rnnzoo_command(python, checkout, run, epochs, workdir), env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(f"train.py failed ({done.returncode}):\n{done.stderr[-3000:]}")
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return [{"epoch": r["epoch"], "seconds": r["seconds"],
             "tokens_per_sec": r["tokens_per_sec"]} for r in records], wall


def run_torch(python, run: Run, epochs: int, threads: int) -> tuple[list[dict], float]:
    """`(per-epoch records, whole command's seconds)` of one `d2l_torch.py` process."""
    env = dict(os.environ, **harness.thread_env(threads))
    start = time.perf_counter()
    done = subprocess.run(torch_command(python, run, epochs, threads), env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"d2l_torch.py failed ({done.returncode}):\n{done.stderr[-3000:]}")
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [{"epoch": r["epoch"], "seconds": r["seconds"],
             "tokens_per_sec": r["tokens"] / r["seconds"]} for r in records], wall


def aggregate(rounds: list[list[dict]], walls: list[float], skip: int) -> dict:
    """The median tokens/s over the epochs after `skip` of every round, the min-max of the
    rounds' medians, and the median wall-clock of the whole command."""
    per_round = [[r["tokens_per_sec"] for r in epochs if r["epoch"] > skip] for epochs in rounds]
    per_round = [v for v in per_round if v]
    if not per_round:
        raise ValueError(f"no epoch after the first {skip}: raise --epochs")
    medians = [statistics.median(v) for v in per_round]
    return {"tokens_per_sec": statistics.median([x for v in per_round for x in v]),
            "min": min(medians), "max": max(medians), "rounds": len(per_round),
            "epochs_timed": sum(map(len, per_round)), "wall_seconds": statistics.median(walls)}


def benchmark(args, log) -> list[dict]:
    programs = {"rnnzoo": lambda run: run_rnnzoo(sys.executable, REPO, run, args.epochs,
                                                 args.threads)}
    if args.against:
        programs["rnnzoo@other"] = lambda run: run_rnnzoo(sys.executable, args.against, run,
                                                          args.epochs, args.threads)
    if args.torch:
        programs["torch"] = lambda run: run_torch(args.torch_python, run, args.epochs,
                                                  args.threads)
    rng = random.Random(args.seed)
    records = []
    for name in args.runs:
        run = RUNS[name]
        results = {p: ([], []) for p in programs}
        for r in range(args.rounds):
            order = list(programs)
            rng.shuffle(order)
            for p in order:
                epochs, wall = programs[p](run)
                results[p][0].append(epochs)
                results[p][1].append(wall)
                log(f"{name} round {r + 1}/{args.rounds} {p}: {wall:.1f} s, median epoch "
                    f"{statistics.median(e['seconds'] for e in epochs[args.skip:] or epochs):.3f}"
                    " s")
        for p, (rounds, walls) in results.items():
            records.append({"run": name, "label": run.label, "preset": run.preset,
                            "flags": list(run.flags), "impl": p, "epochs": args.epochs,
                            "skip": args.skip, "threads": args.threads,
                            **aggregate(rounds, walls, args.skip)})
    return records


def table(records) -> str:
    by_key = {(r["run"], r["impl"]): r for r in records}
    impls = list(dict.fromkeys(r["impl"] for r in records))
    others = [i for i in impls if i != "rnnzoo"]
    head = ("| run | " + " | ".join(f"{i} tok/s" for i in impls) + " | "
            + " | ".join(f"rnnzoo/{i}" for i in others) + " | " + " | ".join(
                f"{i} command, s" for i in impls) + " |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name in dict.fromkeys(r["run"] for r in records):
        ours = by_key[(name, "rnnzoo")]
        cells = [f"{by_key[(name, i)]['tokens_per_sec']:,.0f} ({by_key[(name, i)]['min']:,.0f}-"
                 f"{by_key[(name, i)]['max']:,.0f})" for i in impls]
        ratios = [f"{ours['tokens_per_sec'] / by_key[(name, i)]['tokens_per_sec']:.2f}x"
                  for i in others]
        walls = [f"{by_key[(name, i)]['wall_seconds']:.1f}" for i in impls]
        lines.append(f"| {ours['label']} | " + " | ".join(cells + ratios + walls) + " |")
    return "\n".join(lines)


def target_lines(records) -> str:
    by_key = {(r["run"], r["impl"]): r for r in records}
    lines = []
    for name, want in TARGETS.items():
        if (name, "rnnzoo") not in by_key or (name, "torch") not in by_key:
            continue
        got = by_key[(name, "rnnzoo")]["tokens_per_sec"] / by_key[(name, "torch")][
            "tokens_per_sec"]
        lines.append(f"- {name}: {got:.2f}x PyTorch end to end (target >= {want}x): "
                     f"{'met' if got >= want else 'NOT met'}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=",".join(RUNS), help="comma list of " + str(list(RUNS)))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30, help="epochs of each process")
    parser.add_argument("--skip", type=int, default=2, help="first epochs not timed")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--torch_python", default=sys.executable)
    parser.add_argument("--no_torch", action="store_true")
    parser.add_argument("--against", type=pathlib.Path, default=None,
                        help="another checkout of rnnzoo whose train.py is timed as well (A/B)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the rounds' orders")
    parser.add_argument("--out", help="write the records to this JSON file")
    args = parser.parse_args(argv)
    args.runs = [r for r in args.runs.split(",") if r]
    unknown = [r for r in args.runs if r not in RUNS]
    if unknown:
        parser.error(f"--runs: unknown {unknown}; choose from {list(RUNS)}")
    if args.epochs <= args.skip or args.rounds < 1:
        parser.error("--epochs must be larger than --skip, and --rounds positive")
    if args.against is not None:
        args.against = args.against.resolve()
        if not (args.against / "train.py").is_file():
            parser.error(f"--against: {args.against} holds no train.py")
    for name in ("RNNZOO_DATA_DIR", "RNNZOO_TFDS_DIR"):  # the same data for every program
        if os.environ.get(name):
            os.environ[name] = os.path.abspath(os.environ[name])
    import throughput  # the versions line; imports TensorFlow in this parent only

    torch = None if args.no_torch else throughput.torch_version(args.torch_python)
    args.torch = torch is not None

    def log(message):
        print(message, file=sys.stderr, flush=True)

    print(f"machine: {harness.machine(throughput.versions(torch))}")
    print(f"end to end: each program in a fresh process, one at a time, {args.threads} threads, "
          f"{args.rounds} shuffled rounds of {args.epochs} epochs; tokens/s: median over the "
          f"epochs after the first {args.skip} (min-max of the rounds' medians)")
    if not args.torch:
        print("note: no PyTorch (--torch_python cannot import it, or --no_torch)")
    records = benchmark(args, log)
    print()
    print(table(records))
    print()
    print("targets:")
    print(target_lines(records) or "- not measured (no PyTorch)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(records, f, indent=2)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
