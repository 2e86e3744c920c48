"""benchmarks/harness.py: workers in their own processes, timed one at a time in shuffled rounds."""

import json
import os
import sys

import harness
import pytest

HARNESS = os.path.join(os.path.dirname(harness.__file__), "harness.py")


def _sleeper(name, seconds=0.01, **spec):
    spec = {"kind": "sleep", "seconds": seconds, "warmup": 1, **spec}
    return harness.Worker(name, [sys.executable, HARNESS, "--worker=" + json.dumps(spec)],
                          threads=2)


def test_rounds_time_every_worker_once_per_round_one_at_a_time():
    workers = harness.start_all([_sleeper("a", 0.01), _sleeper("b", 0.03), _sleeper("c")])
    intervals, orders = [], []
    try:
        pids = {w.info["pid"] for w in workers}
        assert len(pids) == 3 and os.getpid() not in pids  # one process each
        assert all(w.info["units"] == 1 for w in workers)
        original_run = harness.Worker.run

        def run(self, n):
            seconds = original_run(self, n)
            intervals.append((self.last["start"], self.last["end"]))
            orders.append(self.name)
            return seconds

        harness.Worker.run = run
        try:
            samples = harness.timed_rounds(workers, {"a": 2, "b": 1, "c": 3}, reps=4, seed=1,
                                           settle=0.0)
        finally:
            harness.Worker.run = original_run
    finally:
        harness.close_all(workers)
    assert all(w.proc is None for w in workers)
    assert {k: len(v) for k, v in samples.items()} == {"a": 4, "b": 4, "c": 4}
    # Seconds per call: b sleeps 0.03 s a call, a and c 0.01 s.
    assert min(samples["b"]) >= 0.03 and min(samples["a"]) >= 0.01
    assert harness.summary(samples["b"])["median"] > harness.summary(samples["a"])["median"]
    # Each round runs every worker once; the orders are shuffled (not all the same).
    rounds = [tuple(orders[i:i + 3]) for i in range(0, 12, 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert len(set(rounds)) > 1
    # One worker at a time: no two runs overlap (CLOCK_MONOTONIC is shared by the processes).
    intervals.sort()
    assert all(end <= next_start for (_, end), (next_start, _) in zip(intervals, intervals[1:]))


def test_workers_get_the_thread_count_in_their_environment():
    w = _sleeper("a")
    assert w.env["OMP_NUM_THREADS"] == w.env["TF_NUM_INTRAOP_THREADS"] == "2"
    assert w.env["TF_NUM_INTEROP_THREADS"] == "2"


def test_a_failing_worker_raises_with_its_output():
    bad = harness.Worker("bad", [sys.executable, "-c",
                                 "import sys; sys.stderr.write('boom here\\n'); sys.exit(3)"])
    with pytest.raises(harness.WorkerError, match=r"(?s)bad .*exited with status 3.*boom here"):
        harness.start_all([_sleeper("ok"), bad])
    # A worker that prints something else than the protocol.
    chatty = harness.Worker("chatty", [sys.executable, "-c", "print('hello')"])
    with pytest.raises(harness.WorkerError, match="answered 'hello"):
        harness.start_all([chatty])


def test_worker_spec_and_summary():
    assert harness.worker_spec(["--x", "--worker={\"kind\": \"sleep\"}"]) == {"kind": "sleep"}
    assert harness.worker_spec(["--worker", "{\"a\": 1}"]) == {"a": 1}
    assert harness.worker_spec(["--preset=x"]) is None
    assert harness.summary([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
