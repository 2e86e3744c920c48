"""Fair timing of several implementations: each in its own long-lived worker process.

A parent process starts one worker per implementation (`Worker`), waits until every worker has
built its model and warmed up, then times them in rounds (`timed_rounds`): in each round every
worker runs the same amount of work once, one worker at a time, in an order shuffled per round,
while the others wait blocked on their standard input. So no framework's thread pools,
allocator or import side effects share a process with another's, a machine that drifts slows
them alike, and the record of each is the median over the rounds, with the min and max.

The protocol is one JSON object per line. A worker is

    python SCRIPT --worker='{"kind": ..., "threads": 2, ...}'

where SCRIPT calls `serve(make_runner)` for that flag; `make_runner(spec)` returns `(run,
units)`: `run(n)` does `n` calls of the work, blocking until the last has finished, and `units`
is what one call counts (tokens of a training step, characters of a generation call). The
worker warms up (`spec["warmup"]` calls, default 2), then writes `{"ready": true, "units": u,
...}`, and answers each `{"run": n}` with `{"seconds": s, "cpu_seconds": c}` (the wall-clock
time of `run(n)`, and the CPU time the worker's threads spent in it) until `{"quit": true}` or
the end of its input. Anything the libraries print goes to the worker's stderr (a log file the
parent shows when a worker fails), not into the protocol.

`python benchmarks/harness.py --worker='{"kind": "sleep", "seconds": 0.01}'` is a worker that
sleeps, for the harness's own tests.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time

# Seconds the parent waits after a worker's run before starting the next worker's, so that
# threads still spinning after a run (OpenMP's, the executor's) do not overlap the next one.
SETTLE_SECONDS = 0.1


class WorkerError(RuntimeError):
    """A worker exited or answered something else than the protocol's next line."""


def thread_env(threads: int) -> dict:
    """Environment variables that fix a worker's thread pools to `threads` before any library
    reads them (the workers also set the frameworks' own settings)."""
    n = str(threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "TF_NUM_INTRAOP_THREADS": n,
            "TF_NUM_INTEROP_THREADS": n}


class Worker:
    """A worker process (see the module docstring): `start`, `wait_ready`, `run`, `close`."""

    def __init__(self, name: str, argv: list[str], *, threads: int | None = None,
                 env: dict | None = None):
        self.name, self.argv = name, argv
        self.env = dict(os.environ, **(env or {}))
        if threads:
            self.env.update(thread_env(threads))
        self.info: dict = {}  # the worker's ready message
        self.last: dict = {}  # its last answer to a run
        self.proc = None
        self._log = None

    def start(self) -> Worker:
        self._log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, env=self.env, text=True, bufsize=1)
        return self

    def _send(self, message: dict) -> None:
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise self._error(f"could not send {message}: {e}") from None

    def _receive(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise self._error("exited" if self.proc.poll() is not None else "closed its output")
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise self._error(f"answered {line!r}") from None

    def _error(self, what: str) -> WorkerError:
        tail = ""
        if self._log is not None:
            self._log.seek(0)
            tail = "".join(self._log.read().splitlines(keepends=True)[-20:])
        status = self.proc.poll()
        return WorkerError(f"worker {self.name} ({' '.join(self.argv[:2])}) {what}"
                           f"{f' with status {status}' if status is not None else ''}; "
                           f"its last output:\n{tail}")

    def wait_ready(self) -> dict:
        answer = self._receive()
        if not answer.get("ready"):
            raise self._error(f"answered {answer} instead of ready")
        self.info = answer
        return answer

    def run(self, n: int) -> float:
        """Seconds of `n` calls of the worker's work."""
        self._send({"run": n})
        answer = self._receive()
        if "seconds" not in answer:
            raise self._error(f"answered {answer}")
        self.last = answer
        return float(answer["seconds"])

    def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self._send({"quit": True})
                self.proc.wait(timeout=30)
            except (WorkerError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            stream.close()
        self._log.close()
        self.proc = None


def start_all(workers: list[Worker]) -> list[Worker]:
    """Starts the workers together (their warm-ups overlap; none is timed) and waits for each
    to be ready; on any failure closes them all and raises."""
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_ready()
    except BaseException:
        close_all(workers)
        raise
    return workers


def close_all(workers: list[Worker]) -> None:
    for w in workers:
        w.close()


def timed_rounds(workers: list[Worker], calls: dict[str, int], reps: int, *, seed: int = 0,
                 settle: float = SETTLE_SECONDS, log=None, cpu=None) -> dict[str, list[float]]:
    """`reps` rounds; in each every worker runs `calls[name]` calls once, one at a time, in a
    shuffled order. Returns the seconds per call of each worker, one sample per round (and
    fills `cpu`, when given, with the CPU seconds per call the same way)."""
    rng = random.Random(seed)
    samples = {w.name: [] for w in workers}
    for r in range(reps):
        order = list(workers)
        rng.shuffle(order)
        for w in order:
            time.sleep(settle)
            n = calls[w.name]
            samples[w.name].append(w.run(n) / n)
            if cpu is not None:
                cpu.setdefault(w.name, []).append(w.last.get("cpu_seconds", float("nan")) / n)
        if log:
            log(f"  round {r + 1}/{reps}: " + ", ".join(w.name for w in order))
    return samples


def summary(values: list[float]) -> dict:
    """`{"median", "min", "max", "n"}` of the samples."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def machine(versions: str = "") -> str:
    """The CPU, its cores, Python and `versions`, for the report's header."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average {:.2f} {:.2f} {:.2f} at the start".format(*os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores{load}; Python {platform.python_version()}"
            + (f", {versions}" if versions else ""))


# ------------------------------------------------------------------------------- worker side


def worker_spec(argv: list[str]) -> dict | None:
    """The spec of `--worker=JSON` in `argv`, or None when this is not a worker."""
    for i, arg in enumerate(argv):
        if arg.startswith("--worker="):
            return json.loads(arg.split("=", 1)[1])
        if arg == "--worker" and i + 1 < len(argv):
            return json.loads(argv[i + 1])
    return None


def serve(make_runner, spec: dict) -> None:
    """The worker's side of the protocol (module docstring)."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # Whatever the libraries print goes to stderr, not into the protocol.
    sys.stdout = sys.stderr
    run, units = make_runner(spec)
    warmup = int(spec.get("warmup", 2))
    if warmup:
        run(warmup)
    protocol.write(json.dumps({"ready": True, "units": units, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("quit"):
            break
        start, cpu = time.perf_counter(), time.process_time()
        run(int(message["run"]))
        seconds = time.perf_counter() - start
        protocol.write(json.dumps({"seconds": seconds, "cpu_seconds": time.process_time() - cpu,
                                   "start": start, "end": start + seconds}) + "\n")
    protocol.close()


def _sleep_runner(spec):
    """A worker that sleeps `spec["seconds"]` per call (the harness's tests)."""
    def run(n):
        for _ in range(n):
            time.sleep(spec["seconds"])
    return run, 1


if __name__ == "__main__":
    spec = worker_spec(sys.argv[1:])
    if spec is None or spec.get("kind") != "sleep":
        sys.exit("usage: harness.py --worker='{\"kind\": \"sleep\", \"seconds\": S}'")
    serve(_sleep_runner, spec)
