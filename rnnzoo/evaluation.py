"""Held-out perplexity of a language model, shared by training and export.

It lives outside `rnnzoo.training` so that `rnnzoo.export` (which never imports training) scores
an exported model exactly as training scored it.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from rnnzoo.data.lm_pipeline import lm_dataset


def perplexity(mean_nll: float) -> float:
    """`exp(mean_nll)` as a Python float: `inf` where that overflows a float (never an
    `OverflowError`), NaN for NaN."""
    mean_nll = float(mean_nll)
    if math.isnan(mean_nll):
        return mean_nll
    return math.exp(mean_nll) if mean_nll < 709.0 else math.inf


def _perplexities(total, count, known_total, known_count, unk_id) -> dict:
    result = {"perplexity": perplexity(total / count)}
    if unk_id is not None:
        result["perplexity_known"] = (perplexity(known_total / known_count)
                                      if known_count else float("nan"))
        result["unk_rate"] = float(1 - known_count / count)
    return result


def _scorer(model, unk_id):
    unk = -1 if unk_id is None else unk_id

    @tf.function
    def score(x, y, states):
        logits, states = model(x, states, training=False)
        nll = tf.cast(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits),
                      tf.float64)
        known = tf.cast(tf.not_equal(y, unk), tf.float64)
        return (tf.reduce_sum(nll), tf.cast(tf.size(y), tf.float64),
                tf.reduce_sum(nll * known), tf.reduce_sum(known), states)

    return score


def sequence_evaluator(model, *, unk_id=None, chunk: int = 1000):
    """Returns `evaluate(x, y) -> dict`: perplexity of ONE stream read from a zero state.

    `x`, `y`: int32 `[1, n]`, the inputs and the next-character targets (e.g.
    `rnnzoo.data.course_batches.course_validation_pairs`). The model reads `x` in chunks of
    `chunk` characters with its state carried, which is the same maths as one character at a
    time from a reset state, the TensorFlow course's validation. Keys as `perplexity_evaluator`.
    """
    score = _scorer(model, unk_id)

    def evaluate(x, y) -> dict:
        x, y = np.asarray(x, np.int32), np.asarray(y, np.int32)
        states = model.initial_state(x.shape[0])
        sums = np.zeros(4)
        for start in range(0, x.shape[1], chunk):
            *values, states = score(x[:, start:start + chunk], y[:, start:start + chunk],
                                    states)
            sums += [float(v) for v in values]
        return _perplexities(*sums, unk_id)

    return evaluate


def perplexity_evaluator(model, *, batch_size: int, num_steps: int, unk_id=None):
    """Returns `evaluate(ids) -> dict`, compiled once: perplexity `exp(total NLL / tokens)`.

    `ids` (int32 `[num_tokens]`) is read with the state carried: the text is cut into `b` rows
    (d2l-zh's consecutive layout, no randomness) with
    `b = min(batch_size, (len(ids) - 1) // num_steps)`, and every `num_steps` window of each
    row is scored; at most `b * num_steps` trailing characters go unscored. Too short a text is
    a ValueError naming the sizes.

    Returns `perplexity` over every scored character and, when `unk_id` is given,
    `perplexity_known` over the targets that are not `<unk>` and `unk_rate`, the share of
    `<unk>` targets. A character missing from the training text is an `<unk>` target the model
    never saw, so its NLL is large: on d2l-zh's Jay Chou split (12% of validation characters
    unseen) it dominates `perplexity`.
    """
    score = _scorer(model, unk_id)

    def evaluate(ids) -> dict:
        ids = np.asarray(ids, np.int32)
        batch = max(1, min(batch_size, (len(ids) - 1) // num_steps))
        dataset = lm_dataset(ids, batch_size=batch, num_steps=num_steps,
                             sampler="consecutive", edition=1, seed=0, epoch=0)
        states = model.initial_state(batch)
        sums = np.zeros(4)
        for x, y in dataset:
            *values, states = score(x, y, states)
            sums += [float(v) for v in values]
        return _perplexities(*sums, unk_id)

    return evaluate


def decoding_accuracy(outputs, targets) -> dict:
    """Accuracy of decoded strings against their targets.

    `char_accuracy`: per target character, aligned position by position,
        sum_i #{p < len(t_i): p < len(o_i) and o_i[p] == t_i[p]}  /  sum_i len(t_i)
    (a missing character is an error; characters past the target's end count only in
    `sequence_accuracy`). `sequence_accuracy`: the share of outputs equal to their target.
    """
    outputs, targets = list(outputs), list(targets)
    if len(outputs) != len(targets):
        raise ValueError(f"{len(outputs)} outputs for {len(targets)} targets")
    if not targets:
        raise ValueError("no targets to score")
    chars = sum(len(t) for t in targets)
    right = sum(sum(a == b for a, b in zip(o, t)) for o, t in zip(outputs, targets))
    exact = sum(o == t for o, t in zip(outputs, targets))
    return {"char_accuracy": right / chars if chars else float("nan"),
            "sequence_accuracy": exact / len(targets)}
