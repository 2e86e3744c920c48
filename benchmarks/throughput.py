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

Bigram LSTMs (the TensorFlow course's LSTM problem 2): `bigram_lstm` is the step `train.py
--preset=course_bigram_lstm` runs and `bigram_lstm512` that of `course_bigram_lstm_large`, the
model, optimizer and trainer built from the preset's config as `train.py` builds them: V=28
(text8's characters), the input at time `t` the bigram id `x_{t-1} * V + x_t` embedded in 128,
batch 64, 10 steps, 64 units (512 units and dropout 0.4 on the LSTM's input and output for
`bigram_lstm512`), SGD (lr 10, the course's staircase decay) with the gradients clipped to a
global norm of 1.25, the state (and the previous character) carried from batch to batch.

- `rnnzoo`: `CharLM(V, cell="lstm", units=H, inputs="bigrams", embedding_dim=128, dropout=D)`;
- `keras`: the same `CharLM` with `impl="keras"`, i.e. `keras.layers.Embedding(V * V, 128)` ->
  (`keras.layers.Dropout`) -> `keras.layers.LSTM(H, return_sequences=True, return_state=True)`
  -> (`keras.layers.Dropout`) -> `keras.layers.Dense(V)`, the same bigram ids, loss, clip and
  SGD in the same compiled `tf.GradientTape` step (`Trainer.train_step`).

No PyTorch baseline for them. `--vocab_sizes` does not apply (always V=28), and a round times
`--steps` x 2 of their steps, about as many tokens as the other lines' `--steps`.

Generation: microseconds per character at batch 1 (LSTM, V=1027, H=256) of the exported
SavedModel's `generate` signature (the loop inside one graph) and of the exported TFLite `step`
called once per character from Python (the LiteRT runtime), as `rnnzoo.export` writes them.

`--out=FILE` writes the records as JSON: `{"model", "vocab_size", "impl", "tokens_per_sec", "min",
"max", "batch_size", "num_steps", "units"}` per training configuration (plus `"threads"` for torch,
`"preset"` and `"dropout"` for the bigram lines) and `{"impl": "savedmodel" | "tflite",
"us_per_char", "min", "max"}` for generation.
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

from rnnzoo import zoo  # noqa: E402
from rnnzoo.models import CharLM  # noqa: E402
from rnnzoo.tasks import char_lm  # noqa: E402
from rnnzoo.training.optim import make_optimizer  # noqa: E402
from rnnzoo.training.trainer import Trainer  # noqa: E402

BATCH, STEPS, UNITS = 32, 35, 256
# Bigram LSTM lines: model name -> the preset whose training step they time.
BIGRAM_PRESETS = {"bigram_lstm": "course_bigram_lstm",
                  "bigram_lstm512": "course_bigram_lstm_large"}
BIGRAM_VOCAB_SIZE = 28  # text8's characters (a-z, space, <unk>): 784 bigram ids.
MODELS = ("rnn", "gru", "lstm", "lstm2", *BIGRAM_PRESETS)
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


def is_bigram(model_name):
    return model_name in BIGRAM_PRESETS


def bigram_config(model_name, impl="rnnzoo"):
    """The config `train.py --preset=<the model's preset> [--impl=keras]` trains with."""
    return zoo.make_config(preset=BIGRAM_PRESETS[model_name], impl=impl)


def vocab_sizes_of(model_name, vocab_sizes):
    """The vocabularies a model is measured at: `--vocab_sizes`, or V=28 for a bigram line."""
    return [BIGRAM_VOCAB_SIZE] if is_bigram(model_name) else list(vocab_sizes)


def shape_of(model_name):
    """`(batch_size, num_steps, units)` of a model's training step."""
    if is_bigram(model_name):
        config = bigram_config(model_name)
        return config.batch_size, config.num_steps, config.num_hiddens
    return BATCH, STEPS, UNITS


def random_batches(vocab_size, seed=0, batch_size=BATCH, num_steps=STEPS):
    """`NUM_BATCHES` consecutive `(x, y)` batches of random text, each int32
    `[batch_size, num_steps]`."""
    rng = np.random.default_rng(seed)
    b, t = batch_size, num_steps
    text = rng.integers(0, vocab_size, (b, NUM_BATCHES * t + 1))
    return [(text[:, i * t:(i + 1) * t], text[:, i * t + 1:(i + 1) * t + 1])
            for i in range(NUM_BATCHES)]


# -------------------------------------------------------------------------------- runners
# A runner is `run(n)`: n training steps, blocking until the last one has finished.


def tf_trainer(model_name, vocab_size, impl):
    """The `Trainer` (holding its `CharLM`) whose `train_step` a TensorFlow runner times.

    A bigram line builds the model, the optimizer and the trainer from its preset's config as
    `train.py` does (`impl` replacing the config's); the others build `CharLM` with hidden
    `UNITS`, SGD(`LR`) and the global-norm clip `CLIP`.
    """
    if is_bigram(model_name):
        config = bigram_config(model_name, impl)
        model = char_lm.build_model(config, vocab_size)
        return Trainer(model, make_optimizer(config, config.train_steps),
                       clip_norm=config.clip_norm, jit_compile=config.jit_compile)
    cell, num_layers = split_model(model_name)
    model = CharLM(vocab_size, cell=cell, num_layers=num_layers, units=UNITS, impl=impl, seed=0)
    return Trainer(model, keras.optimizers.SGD(LR), clip_norm=CLIP)


def tf_runner(model_name, vocab_size, impl):
    trainer = tf_trainer(model_name, vocab_size, impl)
    model = trainer.model
    batch_size, num_steps, _ = shape_of(model_name)
    batches = [tuple(tf.constant(a, tf.int32) for a in b)
               for b in random_batches(vocab_size, batch_size=batch_size, num_steps=num_steps)]
    state = {"states": model.initial_state(batch_size), "i": 0}

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


def steps_per_round(model_name, steps):
    """Training steps a round times: `steps`, times what it takes a smaller step (a bigram
    line's 64 x 10 tokens) to cover about as many tokens as `steps` of `BATCH x STEPS`."""
    batch_size, num_steps, _ = shape_of(model_name)
    return steps * max(1, round(BATCH * STEPS / (batch_size * num_steps)))


def benchmark_training(args, log):
    runners = {}
    for model_name in args.models:
        for vocab_size in vocab_sizes_of(model_name, args.vocab_sizes):
            for impl in ("rnnzoo", "keras"):
                key = (model_name, vocab_size, impl)
                start = time.perf_counter()
                runners[key] = tf_runner(model_name, vocab_size, impl)
                runners[key](2)  # Trace, compile, warm up.
                log(f"  warm-up {model_name:14s} V={vocab_size:<5d} {impl:6s} "
                    f"{time.perf_counter() - start:5.1f} s")
            if args.torch and not is_bigram(model_name):
                # PyTorch at 1 thread and at all cores, both timed in every round; the record
                # is the faster of the two medians.
                for threads in sorted({1, os.cpu_count() or 1}):
                    run = torch_runner(model_name, vocab_size, threads)
                    run(2)
                    runners[(model_name, vocab_size, f"torch/{threads}")] = run
                log(f"  warm-up {model_name:14s} V={vocab_size:<5d} torch")
    samples = {key: [] for key in runners}
    for r in range(args.reps):
        for key, run in runners.items():
            batch_size, num_steps, _ = shape_of(key[0])
            n = steps_per_round(key[0], args.steps)
            samples[key].append(batch_size * num_steps * n / timed(run, n))
        log(f"  round {r + 1}/{args.reps} done")
    records = {}
    for (model_name, vocab_size, impl), s in samples.items():
        impl, _, threads = impl.partition("/")
        batch_size, num_steps, units = shape_of(model_name)
        record = {"model": model_name, "vocab_size": vocab_size, "impl": impl,
                  "tokens_per_sec": statistics.median(s), "min": min(s), "max": max(s),
                  "batch_size": batch_size, "num_steps": num_steps, "units": units}
        if threads:
            record["threads"] = int(threads)
        if is_bigram(model_name):
            record.update(preset=BIGRAM_PRESETS[model_name],
                          dropout=bigram_config(model_name).dropout)
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
    """A Markdown row per (model, V) measured; "—" where an impl was not (torch for bigrams)."""
    training = [r for r in records if "tokens_per_sec" in r]
    by_key = {(r["model"], r["vocab_size"], r["impl"]): r for r in training}
    models = list(dict.fromkeys(r["model"] for r in training))
    vocab_sizes = list(dict.fromkeys(r["vocab_size"] for r in training))
    impls = ["rnnzoo", "keras"] + (["torch"] if has_torch else [])
    head = "| model | V | " + " | ".join(f"{i} tok/s" for i in impls) + " | rnnzoo/keras |"
    head += " rnnzoo/torch |" if has_torch else ""
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for model in models:
        for v in vocab_sizes:
            if (model, v, "rnnzoo") not in by_key:
                continue
            rnnzoo = by_key[(model, v, "rnnzoo")]["tokens_per_sec"]
            cells, ratios = [], []
            for i in impls:
                r = by_key.get((model, v, i))
                cells.append("—" if r is None else f"{r['tokens_per_sec']:,.0f}"
                             + (f" ({r['threads']})" if "threads" in r else ""))
                if i != "rnnzoo":
                    ratios.append("—" if r is None else f"{rnnzoo / r['tokens_per_sec']:.2f}x")
            lines.append(f"| {model} | {v} | " + " | ".join(cells) + " | "
                         + " | ".join(ratios) + " |")
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
    parser.add_argument("--vocab_sizes", default=",".join(map(str, VOCAB_SIZES)),
                        help="comma list (not for the bigram lines: always V=28)")
    parser.add_argument("--generate_chars", type=int, default=500,
                        help="characters per generation call")
    parser.add_argument("--no_torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--no_generation", action="store_true", help="skip generation")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {list(MODELS)}")
    args.vocab_sizes = [int(v) for v in args.vocab_sizes.split(",") if v]
    args.torch = not args.no_torch and torch_available()

    def log(message):
        print(message, file=sys.stderr, flush=True)

    print(f"machine: {machine()}")
    print(f"training: batch {BATCH}, {STEPS} steps, hidden {UNITS}, SGD with global-norm clip; "
          f"median tokens/s of {args.reps} interleaved rounds of {args.steps} steps")
    for model_name in filter(is_bigram, args.models):
        c = bigram_config(model_name)
        print(f"{model_name}: the step of train.py --preset={BIGRAM_PRESETS[model_name]}: "
              f"bigrams of V={BIGRAM_VOCAB_SIZE} embedded in {c.embedding_dim}, batch "
              f"{c.batch_size}, {c.num_steps} steps, hidden {c.num_hiddens}, dropout "
              f"{c.dropout:g}, SGD lr {c.lr:g} ({c.lr_schedule}), clip {c.clip_norm:g}; "
              f"{steps_per_round(model_name, args.steps)} steps a round; no PyTorch baseline")
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
        if any(map(is_bigram, args.models)):
            print("(bigram lines: no PyTorch comparison, torch columns —)")
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
