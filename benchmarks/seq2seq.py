"""seq2seq: accuracy by input length, and training throughput against Keras layers and PyTorch.

    python benchmarks/seq2seq.py accuracy runs/seq2seq runs/seq2seq_noattn --beam_widths=1,4
    python benchmarks/seq2seq.py throughput --rounds=5

`accuracy RUN_DIR...`: each run's latest checkpoint on pairs of its corpus' validation split
(`mirror_pairs` with the run's seed, spans of up to `--max_length` = 40 characters, so longer
than any training span of the default preset), grouped by source length (1-5, 6-10, 11-15,
16-20, 21-30, 31-40), decoded by greedy search and by beam search of each `--beam_widths`
(up to the target's length + 1 tokens): per group the character accuracy (per target character,
position by position) and the sequence accuracy (exact output), at most `--pairs` pairs a group.

`throughput`: target tokens per second of a training step (forward, backward, global-norm clip
5, Adam) of the default preset's model (2 layers of 128, Luong attention, embeddings of 32,
batch 64 of the course bucket: sources padded to 20, targets to 21, real lengths of text8's
spans) built three ways, each in its own worker process (`harness.py`: started once, warmed
up, timed in shuffled rounds, medians and ranges): rnnzoo's `Seq2Seq` in the shared `Trainer`;
the same maths from `keras.layers.LSTM` (masked encoder, Keras' fused LSTM kernels); PyTorch's
`nn.LSTM` (packed encoder) when torch is installed (or under `--torch_python=PYTHON`). Same
batches for all three, the counts of real target tokens as the unit. Prints a table and the
ratios to rnnzoo.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import harness  # noqa: E402

BINS = ((1, 5), (6, 10), (11, 15), (16, 20), (21, 30), (31, 40))
THREADS = 2
BATCH, SOURCE, TARGET = 64, 20, 21
VOCAB, EMBED, HIDDEN, LAYERS = 31, 32, 128, 2


# ----------------------------------------------------------------------------- accuracy


def accuracy_table(run_dirs, *, beam_widths=(1, 4), pairs_per_bin=300, max_length=40,
                   source_dir=None, log=print) -> str:
    import tensorflow as tf

    from rnnzoo.data import corpora
    from rnnzoo.data import seq2seq as s2s
    from rnnzoo.evaluation import decoding_accuracy
    from rnnzoo.tasks import seq2seq as task
    from rnnzoo.tasks.seq2seq_export import load_trained

    rows = []
    header = ["run", "attention", "search"] + [f"{a}-{b} chars" for a, b in BINS]
    for run_dir in run_dirs:
        trained = load_trained(run_dir)
        config, vocab, model = trained.config, trained.vocab, trained.model
        text = corpora.load_text(config.corpus, "validation", source_dir=source_dir)
        pairs = s2s.mirror_pairs(text, max_length=max_length, seed=config.seed)
        binned = [[p for p in pairs if a <= len(p[0]) <= b][:pairs_per_bin] for a, b in BINS]
        for width in beam_widths:
            cells = []
            for (_, b), group in zip(BINS, binned, strict=True):
                if not group:
                    cells.append("—")
                    continue
                outputs = []
                for start in range(0, len(group), 256):
                    chunk = group[start:start + 256]
                    ids = tf.constant(task.source_ids([s for s, _ in chunk], vocab,
                                                      reverse=config.reverse_source))
                    if width == 1:
                        out = model.greedy_decode(ids, b + 1, s2s.BOS_ID, s2s.EOS_ID)
                    else:
                        out, _ = model.beam_search_decode(ids, b + 1, s2s.BOS_ID, s2s.EOS_ID,
                                                          width)
                    outputs += [vocab.decode(r) for r in out.numpy()]
                acc = decoding_accuracy(outputs, [t for _, t in group])
                cells.append(f"{acc['char_accuracy']:.1%} / {acc['sequence_accuracy']:.1%}")
            search = "greedy" if width == 1 else f"beam {width}"
            rows.append([pathlib.Path(run_dir).name, config.attention, search] + cells)
            log(" | ".join(rows[-1]))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    note = (f"Cells: character accuracy / sequence accuracy on up to {pairs_per_bin} validation "
            f"pairs per length group; training spans are at most the run's max_length.")
    return "\n".join(lines) + "\n\n" + note


# ---------------------------------------------------------------------------- throughput


def batches(seed: int = 0, count: int = 8):
    """`count` batches of (source [B, 20], decoder inputs [B, 21], targets [B, 21]) int32 of
    text8-like spans: real lengths uniform in 1..20, random characters, padded with 0."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        lengths = rng.integers(1, SOURCE + 1, BATCH)
        src = np.zeros((BATCH, SOURCE), np.int32)
        dec = np.zeros((BATCH, TARGET), np.int32)
        tgt = np.zeros((BATCH, TARGET), np.int32)
        for i, n in enumerate(lengths):
            chars = rng.integers(4, VOCAB, n)
            src[i, :n] = chars
            dec[i, 0], dec[i, 1:n + 1] = 1, chars[::-1]
            tgt[i, :n], tgt[i, n] = chars[::-1], 2
        out.append((src, dec, tgt))
    return out


def _tf_threads():
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)


def _train_runner(model):
    """`(run, units)`: `run(n)` does `n` training steps of `model` (rnnzoo's `Trainer`: the
    task's loss, global-norm clip 5, Adam) over the benchmark's batches."""
    import keras
    import tensorflow as tf

    from rnnzoo.tasks.seq2seq import pair_loss
    from rnnzoo.training.trainer import Trainer

    trainer = Trainer(model, keras.optimizers.Adam(0.003), clip_norm=5.0, loss_fn=pair_loss)
    data = [tuple(tf.constant(x) for x in b) for b in batches()]

    def run(n):
        for i in range(n):
            out = trainer.train_step(data[i % len(data)], ())
        float(out[0])

    return run, _units()


def rnnzoo_runner(spec):
    _tf_threads()
    from rnnzoo.models.seq2seq import Seq2Seq

    return _train_runner(Seq2Seq(VOCAB, EMBED, HIDDEN, LAYERS, attention="luong", seed=0))


def keras_runner(spec):
    _tf_threads()
    return _train_runner(keras_layers_model())


def keras_layers_model():
    """The default preset's model from `keras.layers`: masked 2-layer LSTM encoder, 2-layer
    LSTM decoder from its final states, Luong "general" attention, the head."""
    import keras

    src = keras.Input((None,), dtype="int32")
    dec = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(VOCAB, EMBED, mask_zero=True)(src)
    states = []
    for _ in range(LAYERS):
        x, h, c = keras.layers.LSTM(HIDDEN, return_sequences=True, return_state=True)(x)
        states.append([h, c])
    memory = x
    y = keras.layers.Embedding(VOCAB, EMBED)(dec)
    for layer_states in states:
        y = keras.layers.LSTM(HIDDEN, return_sequences=True)(y, initial_state=layer_states)
    keys = keras.layers.Dense(HIDDEN, use_bias=False)(memory)
    context = keras.layers.Attention()([y, memory, keys])
    combined = keras.layers.Dense(HIDDEN, use_bias=False, activation="tanh")(
        keras.layers.Concatenate()([context, y]))
    return keras.Model([src, dec], keras.layers.Dense(VOCAB)(combined))


def torch_runner(spec):
    import torch
    from torch import nn

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.src_embed, self.tgt_embed = nn.Embedding(VOCAB, EMBED), nn.Embedding(VOCAB,
                                                                                     EMBED)
            self.encoder = nn.LSTM(EMBED, HIDDEN, LAYERS, batch_first=True)
            self.decoder = nn.LSTM(EMBED, HIDDEN, LAYERS, batch_first=True)
            self.w_a = nn.Linear(HIDDEN, HIDDEN, bias=False)
            self.w_c = nn.Linear(2 * HIDDEN, HIDDEN, bias=False)
            self.head = nn.Linear(HIDDEN, VOCAB)

        def forward(self, src, dec):
            lengths = (src != 0).sum(1)
            packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(src), lengths.cpu(),
                                                       batch_first=True, enforce_sorted=False)
            out, state = self.encoder(packed)
            memory, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                         total_length=src.shape[1])
            h, _ = self.decoder(self.tgt_embed(dec), state)
            scores = torch.bmm(self.w_a(h), memory.transpose(1, 2))
            scores = scores.masked_fill((src == 0)[:, None, :], -1e9)
            context = torch.bmm(torch.softmax(scores, -1), memory)
            return self.head(torch.tanh(self.w_c(torch.cat([context, h], -1))))

    model = Model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    loss_fn = nn.CrossEntropyLoss(ignore_index=0, reduction="sum")
    data = [tuple(torch.from_numpy(x.astype(np.int64)) for x in b) for b in batches()]

    def run(n):
        for i in range(n):
            src, dec, tgt = data[i % len(data)]
            optimizer.zero_grad()
            logits = model(src, dec)
            loss = loss_fn(logits.reshape(-1, VOCAB), tgt.reshape(-1)) / (tgt != 0).sum()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()

    return run, _units()


def _units() -> float:
    """Real target tokens per step (mean over the batches)."""
    return float(np.mean([(t != 0).sum() for _, _, t in batches()]))


RUNNERS = {"rnnzoo": rnnzoo_runner, "keras_layers": keras_runner, "pytorch": torch_runner}


def throughput(rounds: int, steps: int, *, torch_python: str | None = None, log=print) -> str:
    """The throughput table; PyTorch runs under `torch_python` (default this Python) when
    that Python has torch."""
    import importlib.util

    kinds = ["rnnzoo", "keras_layers"]
    if torch_python or importlib.util.find_spec("torch") is not None:
        kinds.append("pytorch")
    else:
        log("torch is not installed: no PyTorch line (pip install torch, or --torch_python)")
    script = str(pathlib.Path(__file__).resolve())
    python = {k: sys.executable for k in kinds}
    python["pytorch"] = torch_python or sys.executable
    workers = [harness.Worker(k, [python[k], script, f"--worker={json.dumps({'kind': k})}"],
                              threads=THREADS) for k in kinds]
    log(f"starting {', '.join(kinds)} ...")
    harness.start_all(workers)
    try:
        samples = harness.timed_rounds(workers, {k: steps for k in kinds}, rounds, log=log)
    finally:
        harness.close_all(workers)
    units = workers[0].info.get("units", _units())
    rate = {k: harness.summary([units / s for s in v]) for k, v in samples.items()}
    base = rate["rnnzoo"]["median"]
    lines = ["| implementation | target tokens/s (median, min-max) | vs rnnzoo |", "|---|---|---|"]
    for k in kinds:
        r = rate[k]
        lines.append(f"| {k} | {r['median']:,.0f} ({r['min']:,.0f}-{r['max']:,.0f}) | "
                     f"{r['median'] / base:.2f}x |")
    return "\n".join(lines) + f"\n\n{harness.machine()}; {rounds} rounds of {steps} steps"


def main(argv=None) -> int:
    spec = harness.worker_spec(sys.argv[1:] if argv is None else argv)
    if spec is not None:
        harness.serve(RUNNERS[spec["kind"]], spec)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    acc = sub.add_parser("accuracy")
    acc.add_argument("run_dirs", nargs="+")
    acc.add_argument("--beam_widths", default="1,4")
    acc.add_argument("--pairs", type=int, default=300)
    acc.add_argument("--data_dir", default=None)
    thr = sub.add_parser("throughput")
    thr.add_argument("--rounds", type=int, default=5)
    thr.add_argument("--steps", type=int, default=20)
    thr.add_argument("--torch_python", default=None,
                     help="a Python with torch (and numpy) for the PyTorch worker")
    args = parser.parse_args(argv)
    if args.mode == "accuracy":
        try:
            widths = [int(w) for w in args.beam_widths.split(",")]
        except ValueError:
            parser.error(f"--beam_widths must be a comma list of integers, got "
                         f"{args.beam_widths!r}")
        if any(w < 1 for w in widths) or args.pairs < 1:
            parser.error("--beam_widths and --pairs must be >= 1")
        print(accuracy_table(args.run_dirs, beam_widths=widths, pairs_per_bin=args.pairs,
                             source_dir=args.data_dir, log=lambda s: print(s, file=sys.stderr)))
    else:
        if args.rounds < 1 or args.steps < 1:
            parser.error("--rounds and --steps must be >= 1")
        print(throughput(args.rounds, args.steps, torch_python=args.torch_python,
                         log=lambda s: print(s, file=sys.stderr)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
