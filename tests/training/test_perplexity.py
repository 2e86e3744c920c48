"""Validation perplexity = exp(total NLL / tokens), against a NumPy computation."""

import math

import numpy as np

from rnnzoo.evaluation import perplexity_evaluator
from rnnzoo.models import CharLM


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_perplexity_is_exp_of_total_nll_over_tokens_with_state_carried():
    vocab_size, batch, steps = 11, 3, 4
    model = CharLM(vocab_size, cell="gru", units=8, init="keras", seed=0)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab_size, 3 * 4 * 5 + 2).astype(np.int32)
    ids[::7] = 0  # Some <unk> targets.
    result = perplexity_evaluator(model, batch_size=batch, num_steps=steps, unk_id=0)(ids)

    # NumPy: d2l-zh's consecutive layout, the whole rows run through the model at once
    # (equivalent to carrying the state window to window).
    row_len = len(ids) // batch
    rows = ids[: batch * row_len].reshape(batch, row_len)
    windows = (row_len - 1) // steps
    x, y = rows[:, : windows * steps], rows[:, 1: windows * steps + 1]
    logits, _ = model(x)
    nll = -np.take_along_axis(_log_softmax(logits.numpy().astype(np.float64)),
                              y[..., None], -1)[..., 0]
    known = y != 0
    assert math.isclose(result["perplexity"], math.exp(nll.mean()), rel_tol=1e-5)
    assert math.isclose(result["perplexity_known"], math.exp(nll[known].mean()), rel_tol=1e-5)
    assert math.isclose(result["unk_rate"], 1 - known.mean(), rel_tol=1e-9)
    # Not a mean of per-batch perplexities:
    per_window = [math.exp(nll[:, i * steps:(i + 1) * steps].mean()) for i in range(windows)]
    assert not math.isclose(np.mean(per_window), result["perplexity"], rel_tol=1e-4)
