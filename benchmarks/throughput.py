"""Training and generation speed of rnnzoo cells against keras.layers and PyTorch, here.

    python benchmarks/throughput.py [--out=FILE] [--reps=5] [--steps=4] [--no_generation]

Training: tokens per second of one training step as `train.py` runs it (`CharLM` +
`Trainer.train_step`: forward, mean next-character NLL, gradients clipped to a global norm, SGD),
batch 32, 35 steps, hidden 256, one-hot input, the state carried from batch to batch, for

- `rnnzoo`: `CharLM(impl="rnnzoo")`, rnnzoo's cells (the default fast path);
- `keras`: `CharLM(impl="keras")`, `keras.layers.SimpleRNN / GRU / LSTM` in the same compiled
  `tf.GradientTape` step;
- `torch`: d2l's concise PyTorch model (`nn.RNN / nn.GRU / nn.LSTM` over one-hot input, a
  `nn.Linear` head, `cross_entropy`, `clip_grad_norm_`, `SGD`), when `torch` is installed
  (`pip install -e ".[torch]"`). PyTorch runs with 1 thread or with all cores, whichever was
  faster (both are timed in every round; on a shared two-core machine its OpenMP threads can
  be much slower than one thread), and the record says which.

for `rnn`, `gru`, `lstm` and a 2-layer `lstm2`, at vocabulary 28 (The Time Machine) and 1027
(Jay Chou). All of them run in one process and the repetitions are interleaved (round `r` runs
every configuration once), so that a noisy machine slows them alike; each record is the median
over the rounds, with the min and max. Ratios measured in one run are what to compare.

Generation: microseconds per character at batch 1 (LSTM, V=1027, H=256) of the exported
SavedModel's `generate` signature (the loop inside one graph) and of the exported TFLite `step`
called once per character from Python (the LiteRT runtime), as `rnnzoo.export` writes them.

`--out=FILE` writes the records as JSON: `{"model", "vocab_size", "impl", "tokens_per_sec", "min",
"max"}` per training configuration (plus `"threads"` for torch) and `{"impl": "savedmodel" |
"tflite", "us_per_char", "min", "max"}` for generation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

try:
    # PyTorch first, and its optimizers' lazy imports (torch._dynamo pulls in triton) too: both
    # triton and TensorFlow bundle LLVM, and whichever loads second aborts the process with
    # "Option ... registered more than once" unless triton's comes first.
    import torch
    import torch._dynamo  # noqa: F401
except ImportError:
    torch = None

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from rnnzoo.models import CharLM  # noqa: E402
from rnnzoo.training.trainer import Trainer  # noqa: E402

BATCH, STEPS, UNITS = 32, 35, 256
MODELS = ("rnn", "gru", "lstm", "lstm2")
VOCAB_SIZES = (28, 1027)
LR, CLIP = 1.0, 1.0
NUM_BATCHES = 4  # Distinct batches cycled through (consecutive text, the state carried).

# The targets: (model, vocab_size, baseline impl, minimum ratio rnnzoo / baseline).
TARGETS = [
    ("lstm", 28, "torch", 1.0), ("lstm", 28, "keras", 2.5), ("lstm", 1027, "torch", 2.0),
    ("gru", 28, "torch", 1.3), ("gru", 1027, "torch", 1.3),
    ("lstm2", 28, "torch", 1.0), ("lstm2", 1027, "torch", 1.0),
]
GENERATION_TARGET_US = 100.0


def split_model(model):
    """`"lstm2"` -> `("lstm", 2)`."""
    return (model[:-1], int(model[-1])) if model[-1].isdigit() else (model, 1)


def random_batches(vocab_size, seed=0):
    """`NUM_BATCHES` consecutive `(x, y)` batches of random text, int32 `[BATCH, STEPS]`."""
    rng = np.random.default_rng(seed)
    text = rng.integers(0, vocab_size, (BATCH, NUM_BATCHES * STEPS + 1))
    return [(text[:, i * STEPS:(i + 1) * STEPS], text[:, i * STEPS + 1:(i + 1) * STEPS + 1])
            for i in range(NUM_BATCHES)]


# -------------------------------------------------------------------------------- runners
# A runner is `run(n)`: n training steps, blocking until the last one has finished.


def tf_runner(model_name, vocab_size, impl):
    cell, num_layers = split_model(model_name)
    model = CharLM(vocab_size, cell=cell, num_layers=num_layers, units=UNITS, impl=impl, seed=0)
    trainer = Trainer(model, keras.optimizers.SGD(LR), clip_norm=CLIP)
    batches = [tuple(tf.constant(a, tf.int32) for a in b) for b in random_batches(vocab_size)]
    state = {"states": model.initial_state(BATCH), "i": 0}

    def run(n):
        for _ in range(n):
            batch = batches[state["i"] % NUM_BATCHES]
            state["i"] += 1
            loss, _, _, state["states"] = trainer.train_step(batch, state["states"])
        loss.numpy()

    return run


def torch_runner(model_name, vocab_size, threads):
    from torch import nn
    from torch.nn import functional as F

    cell, num_layers = split_model(model_name)
    torch.manual_seed(0)
    rnn = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell](vocab_size, UNITS, num_layers)
    head = nn.Linear(UNITS, vocab_size)
    params = list(rnn.parameters()) + list(head.parameters())
    optimizer = torch.optim.SGD(params, lr=LR)
    batches = [tuple(torch.as_tensor(a.T.copy(), dtype=torch.long) for a in b)
               for b in random_batches(vocab_size)]  # time-major, as nn.RNN wants
    state = {"states": None, "i": 0}

    def detach(s):
        return None if s is None else tuple(t.detach() for t in s) if isinstance(s, tuple) \
            else s.detach()

    def run(n):
        torch.set_num_threads(threads)
        for _ in range(n):
            x, y = batches[state["i"] % NUM_BATCHES]
            state["i"] += 1
            outputs, new_states = rnn(F.one_hot(x, vocab_size).float(), detach(state["states"]))
            loss = F.cross_entropy(head(outputs.reshape(-1, UNITS)), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, CLIP)
            optimizer.step()
            state["states"] = new_states
        float(loss.detach())

    return run


def timed(run, n):
    start = time.perf_counter()
    run(n)
    return time.perf_counter() - start


def torch_available():
    return torch is not None


def benchmark_training(args, log):
    runners = {}
    for model_name in args.models:
        for vocab_size in args.vocab_sizes:
            for impl in ("rnnzoo", "keras"):
                key = (model_name, vocab_size, impl)
                start = time.perf_counter()
                runners[key] = tf_runner(model_name, vocab_size, impl)
                runners[key](2)  # Trace, compile, warm up.
                log(f"  warm-up {model_name:5s} V={vocab_size:<5d} {impl:6s} "
                    f"{time.perf_counter() - start:5.1f} s")
            if args.torch:
                # PyTorch at 1 thread and at all cores, both timed in every round; the record
                # is the faster of the two medians.
                for threads in sorted({1, os.cpu_count() or 1}):
                    run = torch_runner(model_name, vocab_size, threads)
                    run(2)
                    runners[(model_name, vocab_size, f"torch/{threads}")] = run
                log(f"  warm-up {model_name:5s} V={vocab_size:<5d} torch")
    samples = {key: [] for key in runners}
    for r in range(args.reps):
        for key, run in runners.items():
            samples[key].append(BATCH * STEPS * args.steps / timed(run, args.steps))
        log(f"  round {r + 1}/{args.reps} done")
    records = {}
    for (model_name, vocab_size, impl), s in samples.items():
        impl, _, threads = impl.partition("/")
        record = {"model": model_name, "vocab_size": vocab_size, "impl": impl,
                  "tokens_per_sec": statistics.median(s), "min": min(s), "max": max(s)}
        if threads:
            record["threads"] = int(threads)
        key = (model_name, vocab_size, impl)
        if key not in records or record["tokens_per_sec"] > records[key]["tokens_per_sec"]:
            records[key] = record
    return list(records.values())


# ------------------------------------------------------------------------------ generation


def benchmark_generation(args, log):
    """us/char of the exported SavedModel `generate` and of the TFLite `step` loop."""
    from rnnzoo.data.vocab import Vocabulary
    from rnnzoo.export.exporter import export_model
    from rnnzoo.export.runtime import TFLiteStepModel

    vocab_size = 1027
    model = CharLM(vocab_size, cell="lstm", units=UNITS, seed=0)
    vocab = Vocabulary(["<unk>"] + [chr(0x4E00 + i) for i in range(vocab_size - 1)],
                       unk_token="<unk>")
    records = []
    with tempfile.TemporaryDirectory(prefix="rnnzoo-bench-") as tmp:
        export_model(model, vocab, os.path.join(tmp, "export"))
        loaded = tf.saved_model.load(os.path.join(tmp, "export", "saved_model"))
        generate = loaded.signatures["generate"]
        tflite = TFLiteStepModel(os.path.join(tmp, "export"))

        num_chars = args.generate_chars
        prefix = tf.constant([vocab.tokens[1]])

        def savedmodel_us():
            start = time.perf_counter()
            generate(prefix=prefix, num_chars=tf.constant(num_chars),
                     temperature=tf.constant(0.0), seed=tf.constant(0))["text"].numpy()
            return (time.perf_counter() - start) / num_chars * 1e6

        def tflite_us():
            state, token = tflite.initial_state(), 1
            start = time.perf_counter()
            for _ in range(num_chars):  # greedy, one character per call, as a phone would
                logits, state = tflite.step(token, state)
                token = int(np.argmax(logits))
            return (time.perf_counter() - start) / num_chars * 1e6

        runs = {"savedmodel": savedmodel_us, "tflite": tflite_us}
        for run in runs.values():
            run()
        samples = {impl: [] for impl in runs}
        for _ in range(args.reps):
            for impl, run in runs.items():
                samples[impl].append(run())
        for impl, s in samples.items():
            records.append({"impl": impl, "model": "lstm", "vocab_size": vocab_size,
                            "batch_size": 1, "us_per_char": statistics.median(s),
                            "min": min(s), "max": max(s)})
    log(f"  generation: {num_chars} characters per call, {args.reps} calls each")
    return records


# ---------------------------------------------------------------------------------- report


def table(records, has_torch):
    by_key = {(r["model"], r["vocab_size"], r["impl"]): r for r in records if "tokens_per_sec" in r}
    models = list(dict.fromkeys(r["model"] for r in records if "tokens_per_sec" in r))
    vocab_sizes = list(dict.fromkeys(r["vocab_size"] for r in records if "tokens_per_sec" in r))
    impls = ["rnnzoo", "keras"] + (["torch"] if has_torch else [])
    head = "| model | V | " + " | ".join(f"{i} tok/s" for i in impls) + " | rnnzoo/keras |"
    head += " rnnzoo/torch |" if has_torch else ""
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for model in models:
        for v in vocab_sizes:
            rnnzoo = by_key[(model, v, "rnnzoo")]["tokens_per_sec"]
            cells = [f"{by_key[(model, v, i)]['tokens_per_sec']:,.0f}"
                     + (f" ({by_key[(model, v, i)]['threads']})" if i == "torch" else "")
                     for i in impls]
            ratios = [rnnzoo / by_key[(model, v, i)]["tokens_per_sec"] for i in impls[1:]]
            lines.append(f"| {model} | {v} | " + " | ".join(cells) + " | "
                         + " | ".join(f"{x:.2f}x" for x in ratios) + " |")
    return "\n".join(lines)


def target_lines(records):
    by_key = {(r["model"], r["vocab_size"], r["impl"]): r for r in records if "tokens_per_sec" in r}
    lines = []
    for model, v, baseline, want in TARGETS:
        if (model, v, "rnnzoo") not in by_key or (model, v, baseline) not in by_key:
            lines.append(f"- {model} V={v}: >= {want}x {baseline}: not measured")
            continue
        got = by_key[(model, v, "rnnzoo")]["tokens_per_sec"] / by_key[(model, v, baseline)][
            "tokens_per_sec"]
        lines.append(f"- {model} V={v}: {got:.2f}x {baseline} (target >= {want}x): "
                     f"{'met' if got >= want else 'NOT met'}")
    for r in records:
        if r.get("impl") == "savedmodel":
            us = r["us_per_char"]
            lines.append(f"- generation (SavedModel, batch 1, V={r['vocab_size']}): {us:.0f} "
                         f"us/char (target <= {GENERATION_TARGET_US:.0f}): "
                         f"{'met' if us <= GENERATION_TARGET_US else 'NOT met'}")
    return "\n".join(lines)


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    if torch_available():
        versions += f", PyTorch {torch.__version__}"
    return f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, {versions}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the records to this JSON file")
    parser.add_argument("--reps", type=int, default=5, help="interleaved rounds (median over them)")
    parser.add_argument("--steps", type=int, default=4, help="training steps timed per round")
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of " + str(MODELS))
    parser.add_argument("--vocab_sizes", default=",".join(map(str, VOCAB_SIZES)))
    parser.add_argument("--generate_chars", type=int, default=500,
                        help="characters per generation call")
    parser.add_argument("--no_torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--no_generation", action="store_true", help="skip generation")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.vocab_sizes = [int(v) for v in args.vocab_sizes.split(",") if v]
    args.torch = not args.no_torch and torch_available()

    def log(message):
        print(message, file=sys.stderr, flush=True)

    print(f"machine: {machine()}")
    print(f"training: batch {BATCH}, {STEPS} steps, hidden {UNITS}, SGD with global-norm clip; "
          f"median tokens/s of {args.reps} interleaved rounds of {args.steps} steps")
    if not args.torch:
        print("note: PyTorch is not installed (pip install -e '.[torch]'); torch columns skipped"
              if not args.no_torch else "note: PyTorch skipped (--no_torch)")
    records = benchmark_training(args, log)
    if not args.no_generation:
        records += benchmark_generation(args, log)
    print()
    print(table(records, args.torch))
    if args.torch:
        print("(torch tok/s: the number of threads it ran with in brackets)")
    for r in records:
        if "us_per_char" in r:
            print(f"generation {r['impl']:10s} batch 1, lstm V={r['vocab_size']} H={UNITS}: "
                  f"{r['us_per_char']:.0f} us/char (min {r['min']:.0f}, max {r['max']:.0f})")
    print()
    print("targets:")
    print(target_lines(records))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(records, f, indent=2)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
