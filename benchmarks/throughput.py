"""Training and generation speed of rnnzoo cells against keras.layers and PyTorch, measured fairly.

    python benchmarks/throughput.py [--out=FILE] [--reps=7] [--steps=8] [--threads=2]
        [--models=lstm,lstm2] [--vocab_sizes=28] [--no_generation] [--no_torch]
        [--torch_python=PYTHON] [--against=OTHER_CHECKOUT]

Every implementation runs in its own long-lived worker process (`benchmarks/harness.py`): the
workers of one configuration (model, vocabulary) are started together, each builds its model
and warms up (tracing, compiling), then the parent times them in `--reps` rounds; in a round
each worker runs `--steps` training steps, one worker at a time in an order shuffled per round,
the others waiting idle. Each record is the median over the rounds, with the min and max; the
ratios of one run are what to compare. Every worker runs with the same number of threads,
`--threads` (default: the machine's cores; TensorFlow's intra- and inter-op pools,
`torch.set_num_threads`, `OMP_NUM_THREADS`). Then the next configuration's workers start.

Training: tokens per second of one training step as `train.py` runs it (`CharLM` +
`Trainer.train_step`: forward, mean next-character NLL, gradients clipped to a global norm, SGD),
batch 32, 35 steps, hidden 256, one-hot input, the state carried from batch to batch, for

- `rnnzoo`: `CharLM(impl="rnnzoo")`, rnnzoo's cells (the default fast path);
- `keras`: `CharLM(impl="keras")`, `keras.layers.SimpleRNN / GRU / LSTM` in the same compiled
  `tf.GradientTape` step;
- `torch`: d2l's concise PyTorch model (`benchmarks/d2l_torch.py`: `nn.RNN / nn.GRU / nn.LSTM`
  over one-hot input, a `nn.Linear` head, `cross_entropy`, `clip_grad_norm_`, `SGD`), when
  PyTorch can be imported by `--torch_python` (default: this Python; `pip install -e
  ".[torch]"`). Its worker imports no TensorFlow.
- `rnnzoo@other`, with `--against=PATH`: rnnzoo's line again, importing `rnnzoo` from another
  checkout (e.g. `git worktree add ../base main`), to measure a change A/B in the same rounds.

for `rnn`, `gru`, `lstm` and a 2-layer `lstm2`, at vocabulary 28 (The Time Machine) and 1027
(Jay Chou).

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
called once per character from Python (the LiteRT runtime), as `rnnzoo.export` writes them, each
in its own worker.

The end-to-end comparison (`train.py` against d2l's PyTorch script, per epoch) is
`benchmarks/end_to_end.py`.

`--out=FILE` writes the records as JSON: `{"model", "vocab_size", "impl", "tokens_per_sec", "min",
"max", "rounds", "threads", "batch_size", "num_steps", "units", "cpu_ms_per_step"}` per training
configuration (the last: the median CPU time of the worker's process per step, a check on a busy
machine)
(plus `"preset"` and `"dropout"` for the bigram lines) and `{"impl": "savedmodel" | "tflite",
"us_per_char", "min", "max"}` for generation.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import harness

REPO = pathlib.Path(__file__).resolve().parents[1]
# A worker of `--against` imports rnnzoo from that checkout; anything else the one next to this
# script. Decided before rnnzoo is imported.
_SPEC = harness.worker_spec(sys.argv[1:]) if __name__ == "__main__" else None
sys.path.insert(0, str((_SPEC or {}).get("rnnzoo_path") or REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
    """`(run, tokens per step)` of a TensorFlow line."""
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

    return run, batch_size * num_steps


def torch_spec(model_name, vocab_size, threads):
    """The `benchmarks/d2l_torch.py` worker spec of a PyTorch line."""
    cell, num_layers = split_model(model_name)
    return {"kind": "train", "cell": cell, "num_layers": num_layers, "vocab_size": vocab_size,
            "batch_size": BATCH, "num_steps": STEPS, "units": UNITS, "lr": LR, "clip": CLIP,
            "num_batches": NUM_BATCHES, "threads": threads}


def steps_per_round(model_name, steps):
    """Training steps a round times: `steps`, times what it takes a smaller step (a bigram
    line's 64 x 10 tokens) to cover about as many tokens as `steps` of `BATCH x STEPS`."""
    batch_size, num_steps, _ = shape_of(model_name)
    return steps * max(1, round(BATCH * STEPS / (batch_size * num_steps)))


def torch_version(python):
    """PyTorch's version as `python` imports it, or None when it cannot."""
    try:
        done = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                              capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


# ------------------------------------------------------------------------------- the workers


def set_tf_threads(threads):
    """TensorFlow's intra- and inter-op pools to `threads` (before any op runs)."""
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def worker_runner(spec):
    """A TensorFlow worker's `(run, units)` (see `harness.serve`)."""
    set_tf_threads(spec.get("threads", 0))
    if spec["kind"] == "train":
        return tf_runner(spec["model"], spec["vocab_size"], spec["impl"])
    if spec["kind"] == "generate":
        return generation_runner(spec["impl"], spec["chars"])
    raise ValueError(f"unknown worker kind {spec['kind']!r}")


def tf_worker(args, name, spec):
    spec = dict(spec, threads=args.threads, rnnzoo_path=None)
    if name.startswith("rnnzoo@"):
        spec.update(impl="rnnzoo", rnnzoo_path=str(args.against))
    return harness.Worker(name, [sys.executable, __file__, "--worker=" + json.dumps(spec)],
                          threads=args.threads)


def benchmark_training(args, log):
    """The records of every training configuration, one group of workers at a time."""
    records = []
    for model_name in args.models:
        for vocab_size in vocab_sizes_of(model_name, args.vocab_sizes):
            spec = {"kind": "train", "model": model_name, "vocab_size": vocab_size}
            names = ["rnnzoo", "keras"] + (["rnnzoo@other"] if args.against else [])
            workers = [tf_worker(args, n, dict(spec, impl=n)) for n in names]
            if args.torch and not is_bigram(model_name):
                workers.append(harness.Worker(
                    "torch", [args.torch_python, str(REPO / "benchmarks" / "d2l_torch.py"),
                              "--worker=" + json.dumps(torch_spec(model_name, vocab_size,
                                                                  args.threads))],
                    threads=args.threads))
            start = time.perf_counter()
            harness.start_all(workers)
            try:
                log(f"{model_name} V={vocab_size}: {len(workers)} workers ready in "
                    f"{time.perf_counter() - start:.0f} s")
                n = steps_per_round(model_name, args.steps)
                cpu = {}
                samples = harness.timed_rounds(workers, {w.name: n for w in workers}, args.reps,
                                               seed=args.seed, log=log, cpu=cpu)
            finally:
                harness.close_all(workers)
            for w in workers:
                tokens = w.info["units"]
                records.append(training_record(model_name, vocab_size, w.name,
                                               [tokens / s for s in samples[w.name]],
                                               args.threads))
                records[-1]["cpu_ms_per_step"] = 1e3 * statistics.median(cpu[w.name])
    return records


def training_record(model_name, vocab_size, impl, rates, threads):
    batch_size, num_steps, units = shape_of(model_name)
    stats = harness.summary(rates)
    record = {"model": model_name, "vocab_size": vocab_size, "impl": impl,
              "tokens_per_sec": stats["median"], "min": stats["min"], "max": stats["max"],
              "rounds": stats["n"], "threads": threads, "batch_size": batch_size,
              "num_steps": num_steps, "units": units}
    if is_bigram(model_name):
        record.update(preset=BIGRAM_PRESETS[model_name],
                      dropout=bigram_config(model_name).dropout)
    return record


# ------------------------------------------------------------------------------ generation

GENERATION_VOCAB = 1027


def generation_runner(impl, num_chars):
    """`(run, characters per call)`: `run(n)` makes `n` generation calls of `num_chars`
    characters at batch 1 (LSTM, V=1027) through the exported SavedModel's `generate` signature
    or the exported TFLite `step`, called once per character from Python."""
    from rnnzoo.data.vocab import Vocabulary
    from rnnzoo.export.exporter import export_model
    from rnnzoo.export.runtime import TFLiteStepModel

    model = CharLM(GENERATION_VOCAB, cell="lstm", units=UNITS, seed=0)
    vocab = Vocabulary(["<unk>"] + [chr(0x4E00 + i) for i in range(GENERATION_VOCAB - 1)],
                       unk_token="<unk>")
    tmp = tempfile.mkdtemp(prefix="rnnzoo-bench-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    export_model(model, vocab, os.path.join(tmp, "export"))
    if impl == "savedmodel":
        generate = tf.saved_model.load(os.path.join(tmp, "export", "saved_model")).signatures[
            "generate"]
        prefix = tf.constant([vocab.tokens[1]])

        def run(n):
            for _ in range(n):
                generate(prefix=prefix, num_chars=tf.constant(num_chars),
                         temperature=tf.constant(0.0), seed=tf.constant(0))["text"].numpy()

        return run, num_chars
    tflite = TFLiteStepModel(os.path.join(tmp, "export"))

    def run(n):
        for _ in range(n):
            state, token = tflite.initial_state(), 1
            for _ in range(num_chars):  # greedy, one character per call, as a phone would
                logits, state = tflite.step(token, state)
                token = int(np.argmax(logits))

    return run, num_chars


def benchmark_generation(args, log):
    """us/char of the exported SavedModel `generate` and of the TFLite `step` loop."""
    workers = [tf_worker(args, impl, {"kind": "generate", "impl": impl,
                                      "chars": args.generate_chars, "warmup": 1})
               for impl in ("savedmodel", "tflite")]
    harness.start_all(workers)
    try:
        samples = harness.timed_rounds(workers, {w.name: 1 for w in workers}, args.reps,
                                       seed=args.seed)
    finally:
        harness.close_all(workers)
    records = []
    for w in workers:
        stats = harness.summary([s / w.info["units"] * 1e6 for s in samples[w.name]])
        records.append({"impl": w.name, "model": "lstm", "vocab_size": GENERATION_VOCAB,
                        "batch_size": 1, "us_per_char": stats["median"], "min": stats["min"],
                        "max": stats["max"], "threads": args.threads})
    log(f"  generation: {args.generate_chars} characters per call, {args.reps} calls each")
    return records


# ---------------------------------------------------------------------------------- report


def table(records, has_torch):
    """A Markdown row per (model, V) measured; "—" where an impl was not (torch for bigrams).
    Each cell is the median tokens/s and, in brackets, the min-max over the rounds."""
    training = [r for r in records if "tokens_per_sec" in r]
    by_key = {(r["model"], r["vocab_size"], r["impl"]): r for r in training}
    models = list(dict.fromkeys(r["model"] for r in training))
    vocab_sizes = list(dict.fromkeys(r["vocab_size"] for r in training))
    others = [i for i in dict.fromkeys(r["impl"] for r in training) if i.startswith("rnnzoo@")]
    impls = ["rnnzoo", "keras"] + (["torch"] if has_torch else []) + others
    head = "| model | V | " + " | ".join(f"{i} tok/s" for i in impls) + " | " + " | ".join(
        f"rnnzoo/{i}" for i in impls[1:]) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for model in models:
        for v in vocab_sizes:
            if (model, v, "rnnzoo") not in by_key:
                continue
            rnnzoo = by_key[(model, v, "rnnzoo")]["tokens_per_sec"]
            cells, ratios = [], []
            for i in impls:
                r = by_key.get((model, v, i))
                cells.append("—" if r is None else
                             f"{r['tokens_per_sec']:,.0f} ({r['min']:,.0f}-{r['max']:,.0f})")
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


def versions(torch=None):
    text = f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    return text + (f", PyTorch {torch}" if torch else "")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    spec = harness.worker_spec(argv)
    if spec is not None:
        return harness.serve(worker_runner, spec)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the records to this JSON file")
    parser.add_argument("--reps", type=int, default=7, help="timed rounds (median over them)")
    parser.add_argument("--steps", type=int, default=8, help="training steps a worker runs "
                        "per round")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads of every worker (default: the machine's cores)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma list of " + str(MODELS))
    parser.add_argument("--vocab_sizes", default=",".join(map(str, VOCAB_SIZES)),
                        help="comma list (not for the bigram lines: always V=28)")
    parser.add_argument("--generate_chars", type=int, default=500,
                        help="characters per generation call")
    parser.add_argument("--no_torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--torch_python", default=sys.executable,
                        help="the Python that runs the PyTorch worker (default: this one)")
    parser.add_argument("--against", type=pathlib.Path, default=None,
                        help="another checkout of rnnzoo, timed as rnnzoo@other (A/B)")
    parser.add_argument("--no_generation", action="store_true", help="skip generation")
    parser.add_argument("--seed", type=int, default=0, help="seeds the rounds' orders")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {list(MODELS)}")
    args.vocab_sizes = [int(v) for v in args.vocab_sizes.split(",") if v]
    if args.reps < 1 or args.steps < 1 or args.threads < 1:
        parser.error("--reps, --steps and --threads must be positive")
    if args.against is not None and not (args.against / "rnnzoo").is_dir():
        parser.error(f"--against: {args.against} holds no rnnzoo package")
    torch = None if args.no_torch else torch_version(args.torch_python)
    args.torch = torch is not None

    def log(message):
        print(message, file=sys.stderr, flush=True)

    print(f"machine: {harness.machine(versions(torch))}")
    print(f"training: batch {BATCH}, {STEPS} steps, hidden {UNITS}, SGD with global-norm clip; "
          f"each implementation in its own worker process with {args.threads} threads; median "
          f"tokens/s (min-max) of {args.reps} shuffled rounds of {args.steps} steps each")
    for model_name in filter(is_bigram, args.models):
        c = bigram_config(model_name)
        print(f"{model_name}: the step of train.py --preset={BIGRAM_PRESETS[model_name]}: "
              f"bigrams of V={BIGRAM_VOCAB_SIZE} embedded in {c.embedding_dim}, batch "
              f"{c.batch_size}, {c.num_steps} steps, hidden {c.num_hiddens}, dropout "
              f"{c.dropout:g}, SGD lr {c.lr:g} ({c.lr_schedule}), clip {c.clip_norm:g}; "
              f"{steps_per_round(model_name, args.steps)} steps a round; no PyTorch baseline")
    if args.against:
        print(f"rnnzoo@other: rnnzoo imported from {args.against}")
    if not args.torch:
        print("note: PyTorch skipped (--no_torch)" if args.no_torch else
              f"note: {args.torch_python} cannot import PyTorch (pip install -e '.[torch]', "
              f"or --torch_python); torch columns skipped")
    records = benchmark_training(args, log)
    if not args.no_generation:
        records += benchmark_generation(args, log)
    print()
    print(table(records, args.torch))
    if args.torch and any(map(is_bigram, args.models)):
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
