"""d2l's concise PyTorch RNN language model, the baseline of rnnzoo's speed benchmarks.

    python benchmarks/d2l_torch.py --preset=d2l_time_machine_lstm2 [--num_layers=1]
        [--num_epochs=N] [--threads=2] [--seed=0]

Trains as d2l's "concise implementation" (`d2l.RNNModel` + `train_ch8`, 2nd edition; the same
recipe as d2l-zh 1st edition's `train_and_predict_rnn_pytorch`): `nn.RNN / nn.GRU / nn.LSTM` over
one-hot input, an `nn.Linear` head, the mean cross-entropy, SGD, the gradients clipped to a
global norm (`clip_grad_norm_`, one fused call; d2l's own `grad_clipping` loops over the
parameters and is a little slower), the state carried from batch to batch and detached
(sequential sampling). The run's settings are those of the rnnzoo preset of the same name
(`PRESETS`, checked against `rnnzoo.zoo.PRESETS` by the tests): batch, steps, hidden units,
layers, learning rate and clip.

The data are d2l's: the Jay Chou lyrics of d2l-zh (newlines as spaces, the first 10,000
characters, one id per distinct character; vocabulary 1027) with d2l-zh's
`data_iter_consecutive`, and The Time Machine of d2l (letters only, lower case, the first
10,000 characters; `<unk>`, space and 26 letters) with d2l's `seq_data_iter_sequential` (a random
offset each epoch), both read from `$RNNZOO_DATA_DIR` (`jaychou_lyrics.txt.zip`,
`timemachine.txt`). This script needs PyTorch only (no TensorFlow).

Each epoch prints one JSON line to stdout: `{"epoch", "seconds", "tokens", "perplexity"}`, the
seconds timed as d2l's `train_epoch_ch8` does (the epoch's data iteration and training steps;
d2l's sample predictions every 10 epochs are left out, as rnnzoo's reports are from its
`seconds`). `benchmarks/end_to_end.py` runs it against `train.py`.

With `--worker=JSON` it is a worker of `benchmarks/harness.py` timing training steps on random
batches (`benchmarks/throughput.py`'s PyTorch line).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
import zipfile

import harness

# The rnnzoo presets this script reproduces: corpus and the settings of the run.
PRESETS = {
    "d2l_zh_lstm": dict(corpus="jaychou", cell="lstm", num_layers=1, lr=100.0, clip=0.01),
    "d2l_zh_gru": dict(corpus="jaychou", cell="gru", num_layers=1, lr=100.0, clip=0.01),
    "d2l_zh_rnn": dict(corpus="jaychou", cell="rnn", num_layers=1, lr=100.0, clip=0.01),
    "d2l_time_machine_lstm2": dict(corpus="time_machine", cell="lstm", num_layers=2, lr=2.0,
                                   clip=1.0),
}
BATCH_SIZE, NUM_STEPS, NUM_HIDDENS, MAX_TOKENS = 32, 35, 256, 10000


def _import_torch(threads):
    import torch

    if threads:
        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:  # Only allowed before any parallel work.
            pass
    return torch


# ------------------------------------------------------------------------------------- data


def load_corpus(corpus: str, data_dir: str, max_tokens: int = MAX_TOKENS):
    """`(ids, vocab_size)` of d2l's corpus: a list of ints, the first `max_tokens`."""
    if corpus == "jaychou":  # d2l-zh 1st ed. `load_data_jay_lyrics`
        with zipfile.ZipFile(os.path.join(data_dir, "jaychou_lyrics.txt.zip")) as z:
            text = z.read("jaychou_lyrics.txt").decode("utf-8")
        text = text.replace("\n", " ").replace("\r", " ")[:max_tokens]
        idx_to_char = sorted(set(text))
        char_to_idx = {c: i for i, c in enumerate(idx_to_char)}
        return [char_to_idx[c] for c in text], len(idx_to_char)
    if corpus == "time_machine":  # d2l 2nd ed. `load_corpus_time_machine`
        with open(os.path.join(data_dir, "timemachine.txt")) as f:
            lines = [re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in f]
        tokens = [c for line in lines for c in line]
        counts = {}
        for c in tokens:
            counts[c] = counts.get(c, 0) + 1
        idx_to_token = ["<unk>"] + sorted(counts, key=lambda c: -counts[c])
        token_to_idx = {c: i for i, c in enumerate(idx_to_token)}
        return [token_to_idx[c] for c in tokens][:max_tokens], len(idx_to_token)
    raise ValueError(f"`corpus` must be jaychou or time_machine, got {corpus!r}")


def consecutive_batches(torch, ids, batch_size, num_steps, edition):
    """d2l's sequential sampler: edition 1 `data_iter_consecutive`, edition 2
    `seq_data_iter_sequential` (a random offset in [0, num_steps])."""
    if edition == 1:
        data = torch.tensor(ids)
        batch_len = len(ids) // batch_size
        indices = data[:batch_size * batch_len].view(batch_size, batch_len)
        for i in range((batch_len - 1) // num_steps):
            i *= num_steps
            yield indices[:, i:i + num_steps], indices[:, i + 1:i + num_steps + 1]
        return
    offset = random.randint(0, num_steps)
    num_tokens = ((len(ids) - offset - 1) // batch_size) * batch_size
    xs = torch.tensor(ids[offset:offset + num_tokens]).reshape(batch_size, -1)
    ys = torch.tensor(ids[offset + 1:offset + 1 + num_tokens]).reshape(batch_size, -1)
    for i in range(0, num_steps * (xs.shape[1] // num_steps), num_steps):
        yield xs[:, i:i + num_steps], ys[:, i:i + num_steps]


# ------------------------------------------------------------------------------------ model


def make_model(torch, cell, vocab_size, num_hiddens, num_layers):
    """d2l's `RNNModel` around `nn.RNN / nn.GRU / nn.LSTM`."""
    from torch import nn
    from torch.nn import functional as F

    class RNNModel(nn.Module):
        def __init__(self, rnn_layer, vocab_size):
            super().__init__()
            self.rnn, self.vocab_size = rnn_layer, vocab_size
            self.num_hiddens = rnn_layer.hidden_size
            self.linear = nn.Linear(self.num_hiddens, vocab_size)

        def forward(self, inputs, state):
            x = F.one_hot(inputs.T.long(), self.vocab_size).to(torch.float32)
            y, state = self.rnn(x, state)
            return self.linear(y.reshape((-1, y.shape[-1]))), state

        def begin_state(self, batch_size):
            shape = (self.rnn.num_layers, batch_size, self.num_hiddens)
            if isinstance(self.rnn, nn.LSTM):
                return torch.zeros(shape), torch.zeros(shape)
            return torch.zeros(shape)

    layer = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
    return RNNModel(layer(vocab_size, num_hiddens, num_layers), vocab_size)


def make_step(torch, net, lr, clip):
    """`step(x, y, state) -> (loss sum, new state)`: d2l's training step (state detached)."""
    from torch import nn

    loss = nn.CrossEntropyLoss()
    updater = torch.optim.SGD(net.parameters(), lr)
    params = list(net.parameters())

    def step(x, y, state):
        if isinstance(state, tuple):
            for s in state:
                s.detach_()
        else:
            state.detach_()
        y = y.T.reshape(-1)
        y_hat, state = net(x, state)
        mean = loss(y_hat, y.long()).mean()
        updater.zero_grad()
        mean.backward()
        nn.utils.clip_grad_norm_(params, clip)
        updater.step()
        return float(mean.detach()) * y.numel(), state

    return step


def train(preset: str, *, num_epochs: int, num_layers: int | None = None, threads: int = 0,
          seed: int = 0, data_dir: str | None = None, model: str | None = None,
          out=sys.stdout) -> list[dict]:
    """d2l's `train_ch8` for `preset` (`model`: another cell, as `train.py --model`); one
    record (and JSON line on `out`) per epoch."""
    torch = _import_torch(threads)
    settings = dict(PRESETS[preset])
    if num_layers:
        settings["num_layers"] = num_layers
    if model:
        settings["cell"] = model
    torch.manual_seed(seed)
    random.seed(seed)
    data_dir = data_dir or os.environ.get("RNNZOO_DATA_DIR", "")
    ids, vocab_size = load_corpus(settings["corpus"], data_dir)
    edition = 1 if settings["corpus"] == "jaychou" else 2
    net = make_model(torch, settings["cell"], vocab_size, NUM_HIDDENS, settings["num_layers"])
    step = make_step(torch, net, settings["lr"], settings["clip"])
    records = []
    for epoch in range(1, num_epochs + 1):
        start = time.perf_counter()
        state, total, count = None, 0.0, 0
        for x, y in consecutive_batches(torch, ids, BATCH_SIZE, NUM_STEPS, edition):
            if state is None:
                state = net.begin_state(x.shape[0])
            loss_sum, state = step(x, y, state)
            total, count = total + loss_sum, count + y.numel()
        seconds = time.perf_counter() - start
        record = {"epoch": epoch, "seconds": seconds, "tokens": count,
                  "perplexity": math.exp(total / count), "vocab_size": vocab_size}
        records.append(record)
        out.write(json.dumps(record) + "\n")
        out.flush()
    return records


# --------------------------------------------------------------------------- step worker


def step_runner(spec):
    """A harness runner: d2l's training step on `NUM_BATCHES` cycled random batches of
    `spec` (`cell`, `num_layers`, `vocab_size`, `batch_size`, `num_steps`, `units`, `lr`,
    `clip`, `threads`). Returns `(run, tokens per step)`."""
    torch = _import_torch(spec.get("threads", 0))
    torch.manual_seed(0)
    v, b, t = spec["vocab_size"], spec["batch_size"], spec["num_steps"]
    net = make_model(torch, spec["cell"], v, spec["units"], spec["num_layers"])
    step = make_step(torch, net, spec.get("lr", 1.0), spec.get("clip", 1.0))
    gen = torch.Generator().manual_seed(0)
    num_batches = spec.get("num_batches", 4)
    text = torch.randint(0, v, (b, num_batches * t + 1), generator=gen)
    batches = [(text[:, i * t:(i + 1) * t], text[:, i * t + 1:(i + 1) * t + 1])
               for i in range(num_batches)]
    state = {"state": net.begin_state(b), "i": 0}

    def run(n):
        for _ in range(n):
            x, y = batches[state["i"] % num_batches]
            state["i"] += 1
            _, state["state"] = step(x, y, state["state"])

    return run, b * t


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    spec = harness.worker_spec(argv)
    if spec is not None:
        return harness.serve(step_runner, spec)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--num_epochs", type=int, default=20)
    parser.add_argument("--num_layers", type=int, default=0, help="0: the preset's")
    parser.add_argument("--model", choices=["rnn", "gru", "lstm"], default=None,
                        help="the cell (default: the preset's), as train.py's --model")
    parser.add_argument("--threads", type=int, default=0, help="0: PyTorch's default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data_dir", default=None, help="default: $RNNZOO_DATA_DIR")
    args = parser.parse_args(argv)
    train(args.preset, num_epochs=args.num_epochs, num_layers=args.num_layers or None,
          threads=args.threads, seed=args.seed, data_dir=args.data_dir, model=args.model)


if __name__ == "__main__":
    main()
