"""Training a character language model, d2l style: config -> data -> model -> loop.

The loop follows d2l-zh's `train_and_predict_rnn` (1st ed.) and d2l's `train_ch8` (2nd ed.):

- consecutive sampling: the state starts at zero each epoch and carries from batch to batch,
  detached (each compiled step returns plain tensors, so no gradient crosses batches);
- random sampling: the state is reset to zero for every batch;
- the loss is the mean next-character NLL, gradients are clipped to a global norm, then SGD;
- perplexity is `exp(total NLL / predicted characters)` over the epoch (training) and over the
  held-out validation text (which d2l never reports).
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np
import tensorflow as tf

from rnnzoo.config import TrainConfig
from rnnzoo.data.char_data import load_char_data
from rnnzoo.data.lm_pipeline import carries_state, lm_dataset
from rnnzoo.models import char_lm_from_config
from rnnzoo.models.generation import TextGenerator
from rnnzoo.run_dir import RunDir
from rnnzoo.training.checkpoints import Checkpoints
from rnnzoo.training.trainer import Trainer

# Epochs with at least this many batches get a progress bar.
PROGBAR_MIN_BATCHES = 200


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


def train(config: TrainConfig, workdir, *, resume: bool = False, source_dir=None, tfds_dir=None,
          log=print) -> dict:
    """Trains (or resumes) a run; returns the last metrics record."""
    config.validate()
    run = RunDir(workdir)
    keras.utils.set_random_seed(config.seed)

    # Data: the corpus splits, a vocabulary of the training text, token ids.
    data = load_char_data(config.corpus, max_size=config.vocab_max_size,
                          min_count=config.vocab_min_count, source_dir=source_dir,
                          tfds_dir=tfds_dir)
    run.start(config, data.vocab, resume=resume)
    log(f"corpus {config.corpus}: {len(data.train_ids)} training and {len(data.val_ids)} "
        f"validation characters, vocabulary of {len(data.vocab)}")

    # Model, optimizer, trainer, checkpoints.
    model = char_lm_from_config(config, len(data.vocab))
    optimizer = keras.optimizers.SGD(learning_rate=config.lr)
    trainer = Trainer(model, optimizer, clip_norm=config.clip_norm,
                      jit_compile=config.jit_compile)
    checkpoints = Checkpoints(run, model, optimizer, max_to_keep=config.keep_checkpoints)
    start_epoch = checkpoints.restore_latest() if resume else 0
    if resume:
        run.truncate_metrics(start_epoch)
        log(f"resumed {run.path} at epoch {start_epoch}")
    generator = TextGenerator(model, data.vocab)
    evaluate = perplexity_evaluator(model, config, data.vocab.unk_id)
    writer = tf.summary.create_file_writer(str(run.tensorboard_dir))

    train_corpus = tf.constant(data.train_ids)  # One copy for all epochs.
    record = {}
    for epoch in range(start_epoch + 1, config.num_epochs + 1):
        start = time.perf_counter()
        train_ppl, tokens = _train_epoch(trainer, model, train_corpus, config, epoch)
        seconds = time.perf_counter() - start
        record = {"epoch": epoch, "train_perplexity": train_ppl,
                  "tokens_per_sec": tokens / seconds, "seconds": seconds}
        if not math.isfinite(train_ppl):
            last = checkpoints.latest or "none yet"
            log(f"error: the training loss became {train_ppl} at epoch {epoch}; stopping. "
                f"The last good checkpoint is kept: {last}")
            run.append_metrics({**record, "train_perplexity": str(train_ppl), "diverged": True})
            raise TrainingDiverged(f"training loss is {train_ppl} at epoch {epoch} "
                                   f"(last good checkpoint: {last})")
        report = epoch % config.pred_period == 0 or epoch == config.num_epochs
        if report:
            val = evaluate(data.val_ids)
            record.update({f"val_{k}": v for k, v in val.items()})
        run.append_metrics(record)
        with writer.as_default(step=epoch):
            for key in ("train_perplexity", "val_perplexity", "val_perplexity_known",
                        "tokens_per_sec"):
                if key in record:
                    tf.summary.scalar(key, record[key])
        if report:
            unk = (f" ({record['val_perplexity_known']:f} on known characters, "
                   f"{record['val_unk_rate']:.1%} <unk>)" if record.get("val_unk_rate") else "")
            log(f"epoch {epoch}, perplexity {train_ppl:f}, val perplexity "
                f"{record['val_perplexity']:f}{unk}, {record['tokens_per_sec']:.0f} tokens/sec, "
                f"time {seconds:.2f} sec")
            samples = [generator(p, config.pred_len, temperature=config.temperature,
                                 top_k=config.top_k, seed=config.seed + epoch)
                       for p in config.prefixes]
            for s in samples:
                log(f" - {s}")
            run.append_samples(f"epoch {epoch}\n" + "\n".join(samples))
            with writer.as_default(step=epoch):
                tf.summary.text("samples", "\n\n".join(samples))
        if report or epoch % config.checkpoint_every == 0:
            checkpoints.save(epoch)
    writer.flush()
    return record


def _train_epoch(trainer, model, train_corpus, config: TrainConfig, epoch: int):
    """One pass over the training text; returns (perplexity, predicted tokens)."""
    dataset = lm_dataset(train_corpus, batch_size=config.batch_size,
                         num_steps=config.num_steps, sampler=config.sampler,
                         edition=config.sampler_edition, seed=config.seed, epoch=epoch)
    carry = carries_state(config.sampler)
    zeros = model.initial_state(config.batch_size)
    states = zeros
    num_batches = int(dataset.cardinality())
    progbar = (keras.utils.Progbar(num_batches, unit_name="batch")
               if num_batches >= PROGBAR_MIN_BATCHES else None)
    nll_sums, counts = [], []
    for i, batch in enumerate(dataset):
        nll_sum, count, _, new_states = trainer.train_step(batch, states if carry else zeros)
        states = new_states
        nll_sums.append(nll_sum)
        counts.append(count)
        if progbar is not None and (i + 1) % 50 == 0:
            progbar.update(i + 1, [("perplexity", math.exp(float(nll_sum) / float(count)))])
    total = float(tf.add_n(nll_sums))
    count = float(tf.add_n(counts))
    return math.exp(total / count) if math.isfinite(total) else total, count


def perplexity_evaluator(model, config: TrainConfig, unk_id=None):
    """Returns `evaluate(ids) -> dict`, compiled once: perplexity `exp(total NLL / tokens)`.

    `ids` is read with the state carried.

    The text is cut into `b` rows (d2l-zh's consecutive layout, no randomness) with
    `b = min(batch_size, (len(ids) - 1) // num_steps)`, and every `num_steps` window of each
    row is scored; at most `b * num_steps` trailing characters go unscored.

    Returns `perplexity` over every scored character and, when the vocabulary has an unknown
    token, `perplexity_known` over the targets that are not `<unk>` and `unk_rate`, the share
    of `<unk>` targets. A character missing from the training text is an `<unk>` target the
    model never saw, so its NLL is large: on d2l-zh's Jay Chou split (12% of validation
    characters unseen) it dominates `perplexity`.
    """
    unk = -1 if unk_id is None else unk_id

    @tf.function
    def score(x, y, states):
        logits, states = model(x, states, training=False)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        known = tf.cast(tf.not_equal(y, unk), tf.float32)
        return (tf.reduce_sum(nll), tf.cast(tf.size(y), tf.float32),
                tf.reduce_sum(nll * known), tf.reduce_sum(known), states)

    def evaluate(ids: np.ndarray) -> dict:
        batch = max(1, min(config.batch_size, (len(ids) - 1) // config.num_steps))
        dataset = lm_dataset(ids, batch_size=batch, num_steps=config.num_steps,
                             sampler="consecutive", edition=1, seed=0, epoch=0)
        states = model.initial_state(batch)
        sums = np.zeros(4)
        for x, y in dataset:
            *values, states = score(x, y, states)
            sums += [float(v) for v in values]
        total, count, known_total, known_count = sums
        result = {"perplexity": math.exp(total / count)}
        if unk_id is not None:
            result["perplexity_known"] = (math.exp(known_total / known_count)
                                          if known_count else float("nan"))
            result["unk_rate"] = 1 - known_count / count
        return result

    return evaluate
