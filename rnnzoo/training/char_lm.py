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
import tensorflow as tf

from rnnzoo.config import TrainConfig
from rnnzoo.data.char_data import load_char_data
from rnnzoo.data.lm_pipeline import carries_state, lm_dataset
from rnnzoo.evaluation import perplexity_evaluator
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
    evaluate = perplexity_evaluator(model, batch_size=config.batch_size,
                                    num_steps=config.num_steps, unk_id=data.vocab.unk_id)
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
