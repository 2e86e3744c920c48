"""Scaling of multi-worker training: 2 workers on this machine against 1 process, same run.

    python benchmarks/distribute.py                       # --model=lstm, 20 epochs
    python benchmarks/distribute.py --num_epochs=3        # a quick check

Runs `train.py --model=MODEL --num_epochs=N --seed=S` twice, one after the other, with the same
global batch: once alone (`--distribute=one_device`) and once as two worker processes on
localhost (`--distribute=multi_worker`, TF_CONFIG with two free ports; worker 0 is the chief and
writes the run directory). From each run's `metrics.jsonl` (the chief's):

- tokens/s: the median over the epochs after the first (which compiles) of `tokens_per_sec`,
  the global batch's characters over the epoch's time;
- the last epoch's training perplexity.

Prints one line per run and the line

    scaling: 2 workers / 1 process = R (efficiency R / 2), train perplexity differs by D%

R is the speed-up of the job; efficiency = R / 2 is the share of ideal linear scaling. On one
machine with 2 shared cores the two workers split the same cores and add an all-reduce of every
gradient per step, so R < 1 is expected; on separate machines (or GPUs) with a fast network R
approaches 2 for steps whose compute outweighs the all-reduce (large hidden sizes, long
`num_steps`). The environment is passed through (`RNNZOO_DATA_DIR`, `RNNZOO_TFDS_DIR`). Exit
status 1 if a run fails (its output tail is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _train(flags: list[str], workdir: str, workers: int) -> dict:
    """Runs train.py alone (workers=1) or as `workers` processes; the chief's metrics."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, os.path.join(REPO, "train.py"), *flags]
    if workers == 1:
        procs = [subprocess.Popen([*command, "--distribute=one_device", f"--workdir={workdir}"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)]
    else:
        cluster = {"worker": [f"localhost:{p}" for p in _free_ports(workers)]}
        procs = []
        for i in range(workers):
            tf_config = {"cluster": cluster, "task": {"type": "worker", "index": i}}
            procs.append(subprocess.Popen(
                [*command, "--distribute=multi_worker", f"--workdir={workdir}-{i}"],
                env={**env, "TF_CONFIG": json.dumps(tf_config)}, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True))
        workdir = f"{workdir}-0"
    outputs = [p.communicate()[0] for p in procs]
    for p, out in zip(procs, outputs):
        if p.returncode:
            print(out[-3000:], file=sys.stderr)
            sys.exit(1)
    with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    speeds = [r["tokens_per_sec"] for r in records[1:]] or [records[-1]["tokens_per_sec"]]
    return {"tokens_per_sec": statistics.median(speeds),
            "train_perplexity": records[-1]["train_perplexity"], "epochs": len(records)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--num_epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out_dir", default=None, help="Run directories (default: a temp dir).")
    args = parser.parse_args()
    if args.num_epochs < 2:
        parser.error(f"--num_epochs must be >= 2 (the first epoch compiles), got "
                     f"{args.num_epochs}")
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="rnnzoo-distribute-")
    flags = [f"--model={args.model}", f"--num_epochs={args.num_epochs}", f"--seed={args.seed}",
             f"--pred_period={args.num_epochs}"]
    one = _train(flags, os.path.join(out_dir, "one"), 1)
    two = _train(flags, os.path.join(out_dir, "two"), 2)
    for name, r in (("1 process", one), ("2 workers", two)):
        print(f"{name}: {r['tokens_per_sec']:,.0f} tokens/s, train perplexity "
              f"{r['train_perplexity']:.4f} after {r['epochs']} epochs")
    ratio = two["tokens_per_sec"] / one["tokens_per_sec"]
    drift = 100 * (two["train_perplexity"] / one["train_perplexity"] - 1)
    print(f"scaling: 2 workers / 1 process = {ratio:.2f} (efficiency {ratio / 2:.2f}), train "
          f"perplexity differs by {drift:+.4f}%")


if __name__ == "__main__":
    main()
