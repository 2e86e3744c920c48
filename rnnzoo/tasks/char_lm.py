"""The character language model task: config, data, model, training plan, report and export.

d2l's RNN/GRU/LSTM (one-hot input, d2l's samplers, runs measured in epochs) and the TensorFlow
course's character and bigram LSTMs on text8 (the course's batch generator, runs measured in
steps) are entries of this one task (`rnnzoo.zoo`). The training loop is the shared one
(`rnnzoo.training.loop`): the state carries from batch to batch for the consecutive and course
samplers and is reset per batch for the random one; the loss is the summed next-character NLL
over the global count of predicted characters; perplexity is `exp(total NLL / characters)`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os

import keras
import tensorflow as tf

from rnnzoo.config import ConfigError, TrainConfig, field
from rnnzoo.data import course_batches
from rnnzoo.data.char_data import CharData, load_char_data
from rnnzoo.data.lm_pipeline import SAMPLERS as D2L_SAMPLERS
from rnnzoo.data.lm_pipeline import as_numpy_corpus, carries_state, lm_batches, min_tokens
from rnnzoo.evaluation import perplexity_evaluator, sequence_evaluator
from rnnzoo.models import CELLS, IMPLS, INITS, INPUTS, CharLM
from rnnzoo.models.generation import TextGenerator
from rnnzoo.run_dir import RunDir
from rnnzoo.training import distribute
from rnnzoo.training.checkpoints import Checkpoints
from rnnzoo.training.loop import TrainingPlan, fit
from rnnzoo.training.optim import make_optimizer
from rnnzoo.training.trainer import Trainer

TASK = "char_lm"
SAMPLERS = (*D2L_SAMPLERS, course_batches.SAMPLER)
# windows: d2l-zh's consecutive layout, `batch_size` rows of `num_steps` windows, state carried;
# sequence: the whole text as one stream from a zero state (the TensorFlow course's validation).
VAL_SCORINGS = ("windows", "sequence")


@dataclasses.dataclass
class CharLMConfig(TrainConfig):
    """A character-language-model run.

    The defaults reproduce d2l-zh (1st ed.) section 6.8, the LSTM from scratch on the Jay Chou
    lyrics: hidden 256, 35 steps, batch 32, SGD with lr 100 and global-norm clipping at 0.01,
    consecutive sampling, 160 epochs, a report every 40 epochs.
    """

    TASK = TASK

    # Shared fields with this task's defaults.
    model: str = field("lstm", "The zoo entry (`rnnzoo.zoo.MODELS`).")
    corpus: str = field("jaychou_lyrics/d2l_zh", "TFDS name/config of the corpus.")
    batch_size: int = field(32, "Sequences per batch.", minimum=1)
    lr: float = field(100.0, "Initial learning rate (of the mean per-character loss).")
    clip_norm: float = field(0.01, "Global gradient-norm clip (d2l's clipping_theta), > 0.")
    num_epochs: int = field(160, "Passes over the training text (when train_steps is 0).",
                            resumable=True, minimum=1)
    pred_period: int = field(40, "Report, sample and checkpoint every this many epochs (or "
                             "steps, with train_steps).", resumable=True, minimum=1)
    # Model.
    cell: str = field("lstm", "Recurrent cell: rnn, gru or lstm.", choices=CELLS)
    impl: str = field("rnnzoo", "rnnzoo (cells written from scratch) or keras "
                      "(keras.layers.*).", choices=IMPLS)
    num_layers: int = field(1, "Stacked recurrent layers (a deep RNN when > 1).", minimum=1)
    num_hiddens: int = field(256, "Units per recurrent layer.", minimum=1)
    inputs: str = field("chars", "chars: one character per input; bigrams: the pair (previous, "
                        "current) character, embedded.", choices=INPUTS)
    embedding_dim: int = field(0, "0: one-hot input (as d2l); > 0: a learned embedding of that "
                               "size.", minimum=0)
    dropout: float = field(0.0, "Dropout rate on each recurrent layer's input and output "
                           "(training only).")
    init: str = field("d2l", "d2l: N(0, 0.01) weights; keras: Keras' initialisers; course: "
                      "truncated normal, mean -0.1, std 0.1.", choices=INITS)
    forget_bias: float = field(0.0, "Initial LSTM forget-gate bias (d2l 0; Keras "
                               "unit_forget_bias 1).")
    reset_after: bool = field(True, "GRU: reset gate after the recurrent matmul (d2l-zh); "
                              "False: before.")
    # Data.
    vocab_max_size: int = field(0, "0: keep every training character.", minimum=0)
    vocab_min_count: int = field(1, "Rarer characters map to <unk>.", minimum=1)
    sampler: str = field("consecutive", "consecutive (state carries over), random (state "
                         "reset) or course (the TensorFlow course's batch generator; needs "
                         "train_steps).", choices=SAMPLERS)
    sampler_edition: int = field(1, "d2l-zh 1st edition (1) or d2l 2nd edition (2) samplers.",
                                 choices=(1, 2))
    num_steps: int = field(35, "Time steps per sequence (truncated backpropagation length; the "
                           "course's num_unrollings).", minimum=1)
    val_scoring: str = field("windows", "Validation perplexity over windows: d2l-zh's "
                             "consecutive rows of num_steps (windows) or the whole text as one "
                             "stream from a reset state (sequence, the course's).",
                             choices=VAL_SCORINGS)
    # Reporting.
    pred_len: int = field(50, "Characters generated after each prefix.", resumable=True,
                          minimum=0)
    prefixes: tuple[str, ...] = field(("分开", "不分开"), "Text to continue at each report "
                                      "(comma list).", resumable=True)
    temperature: float = field(0.0, "0: greedy (as d2l); > 0: sample from "
                               "softmax(logits / T).", resumable=True)
    top_k: int = field(0, "With temperature > 0, sample among the k likeliest characters "
                       "(0: all).", resumable=True, minimum=0)

    def validate(self) -> CharLMConfig:
        super().validate()
        if self.vocab_max_size == 1:
            raise ConfigError("`vocab_max_size` must be 0 (no limit) or >= 2, got 1")
        if not self.clip_norm > 0:
            raise ConfigError(f"`clip_norm` must be positive, got {self.clip_norm}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"`dropout` must be in [0, 1), got {self.dropout}")
        if self.inputs == "bigrams" and not self.embedding_dim:
            raise ConfigError("`inputs=bigrams` needs an embedding: `embedding_dim` must be "
                              f"positive, got {self.embedding_dim}")
        if self.sampler == course_batches.SAMPLER and not self.by_steps:
            raise ConfigError("`sampler=course` is an endless stream: set `train_steps` > 0")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ConfigError(f"`temperature` must be a finite number >= 0 (0 means greedy), "
                              f"got {self.temperature}")
        if any(not p for p in self.prefixes):
            raise ConfigError(f"`prefixes` must be non-empty strings, got {list(self.prefixes)}")
        return self


Config = CharLMConfig  # the task's config class, as `rnnzoo.zoo` looks it up


def build_model(config: CharLMConfig, vocab_size: int) -> CharLM:
    """The `CharLM` a config describes."""
    model = CharLM(vocab_size, cell=config.cell, num_layers=config.num_layers,
                   units=config.num_hiddens, embedding_dim=config.embedding_dim,
                   impl=config.impl, init=config.init, forget_bias=config.forget_bias,
                   reset_after=config.reset_after, inputs=config.inputs,
                   dropout=config.dropout, seed=config.seed)
    model.fused_recurrence = not config.jit_compile  # XLA cannot compile rnnzoo's C++ ops
    return model


def load_data(config: CharLMConfig, *, vocab=None, source_dir=None, tfds_dir=None) -> CharData:
    return load_char_data(config.corpus, vocab=vocab, max_size=config.vocab_max_size,
                          min_count=config.vocab_min_count, source_dir=source_dir,
                          tfds_dir=tfds_dir)


@dataclasses.dataclass
class TrainResult:
    record: dict  # the last metrics record
    model: CharLM  # the trained model, as training left it
    data: CharData
    run: RunDir


def train(config: CharLMConfig, workdir, *, resume: bool = False, data: CharData | None = None,
          source_dir=None, tfds_dir=None, log=print) -> TrainResult:
    """Trains (or resumes) a run in `workdir`.

    `data` (the splits as ids, and the vocabulary) defaults to `config.corpus` loaded from
    `source_dir` / `tfds_dir`; tests and users with their own text pass it directly.

    Under `config.distribute` (`rnnzoo.training.distribute`) the model and optimizer live in
    the strategy's scope, each replica trains on its rows of every global batch (carrying
    their state), and only the chief writes `workdir`.
    """
    config.validate()
    strategy = distribute.make_strategy(config.distribute, worker_timeout=config.worker_timeout)
    distribute.check_batch_size(strategy, config.batch_size)
    chief = distribute.is_chief(strategy)
    run = RunDir(workdir)
    keras.utils.set_random_seed(config.seed)

    if data is None:
        data = load_data(config, source_dir=source_dir, tfds_dir=tfds_dir)
    _check_batches(config, len(data.train_ids))
    # Checks the directory and locks it for this process; nothing is written until the loop
    # begins (see RunDir): a run that fails before that leaves the directory as it was.
    with (run.start(config, data.vocab, resume=resume) if chief else contextlib.nullcontext(),
          distribute.stop_on_lost_worker(strategy)):
        log(f"corpus {config.corpus}: {len(data.train_ids)} training and {len(data.val_ids)} "
            f"validation characters, vocabulary of {len(data.vocab)}")

        with strategy.scope():
            model = build_model(config, len(data.vocab))
            optimizer = make_optimizer(config, _total_steps(config, len(data.train_ids)))
        train_corpus = as_numpy_corpus(data.train_ids)  # Shared by every epoch's batches.
        trainer = Trainer(model, optimizer, clip_norm=config.clip_norm,
                          jit_compile=config.jit_compile, strategy=strategy)
        carries = _carries_state(config)
        initial_carry = lambda: model.initial_state(config.batch_size)  # noqa: E731
        checkpoints = Checkpoints(run, model, optimizer, max_to_keep=config.keep_checkpoints,
                                  carry=initial_carry() if config.by_steps and carries else None,
                                  strategy=strategy)
        plan = TrainingPlan(
            trainer=trainer, initial_carry=initial_carry, carries_state=carries,
            epoch_batches=lambda epoch: _epoch_dataset(train_corpus, config, epoch),
            stream=lambda first: _stream(train_corpus, config, first),
            evaluate=_validation(model, data, config),
            on_report=_reporter(model, data, config, run, log))
        record = fit(plan, config, run, checkpoints, resume=resume, log=log)
    return TrainResult(record=record, model=model, data=data, run=run)


# ------------------------------------------------------------------------------- data


def _check_batches(config: CharLMConfig, num_train_ids: int) -> None:
    """A ConfigError (a ValueError) for a training text too short for one batch, raised before
    the run directory is touched (the data pipelines raise a ValueError too, but only once
    training began)."""
    if config.sampler == course_batches.SAMPLER:
        need = config.batch_size + 1
    else:
        need = min_tokens(batch_size=config.batch_size, num_steps=config.num_steps,
                          sampler=config.sampler, edition=config.sampler_edition)
    if num_train_ids < need:
        raise ConfigError(
            f"the training text of {num_train_ids} characters is too short for one batch of "
            f"batch_size={config.batch_size}, num_steps={config.num_steps} (sampler="
            f"{config.sampler!r}, sampler_edition={config.sampler_edition}): need at least "
            f"{need} characters")


def _carries_state(config: CharLMConfig) -> bool:
    return config.sampler == course_batches.SAMPLER or carries_state(config.sampler)


def _epoch_dataset(corpus, config: CharLMConfig, epoch: int):
    """One epoch's `(X, Y)` batches of a d2l sampler (`lm_batches`: no `tf.data` pipeline to
    build and tear down per epoch, which took about as long as a 10,000-character epoch's
    training steps on two CPU cores)."""
    return lm_batches(corpus, batch_size=config.batch_size, num_steps=config.num_steps,
                      sampler=config.sampler, edition=config.sampler_edition, seed=config.seed,
                      epoch=epoch)


def _stream(corpus, config: CharLMConfig, first_batch: int):
    """`(batch, starts_sequence)` from global batch `first_batch` on, for a run in steps."""
    if config.sampler == course_batches.SAMPLER:
        dataset = course_batches.course_dataset(
            corpus, batch_size=config.batch_size, num_unrollings=config.num_steps,
            first_batch=first_batch)
        for k, batch in enumerate(dataset, start=first_batch):
            yield batch, k == 0
        return
    seen = 0  # d2l's samplers: epoch after epoch, the state starting again at each.
    for epoch in itertools.count(1):
        dataset = _epoch_dataset(corpus, config, epoch)
        n = len(dataset)
        if seen + n <= first_batch:
            seen += n
            continue
        skip = max(0, first_batch - seen)
        for i, batch in enumerate(dataset.skip(skip), start=skip):
            yield batch, i == 0
        seen += n


def _total_steps(config: CharLMConfig, num_train_ids: int) -> int:
    """Optimizer steps of the whole run (for a linear learning-rate decay)."""
    if config.by_steps:
        return config.train_steps
    from rnnzoo.data.lm_pipeline import num_batches
    per_epoch = num_batches(num_train_ids, batch_size=config.batch_size,
                            num_steps=config.num_steps, sampler=config.sampler,
                            edition=config.sampler_edition)
    return per_epoch * config.num_epochs


# ------------------------------------------------------------------- evaluation, reports


def _validation(model, data: CharData, config: CharLMConfig):
    unk_id = data.vocab.unk_id
    if config.val_scoring == "sequence":
        score = sequence_evaluator(model, unk_id=unk_id)
        x, y = course_batches.course_validation_pairs(data.val_ids)
        evaluate = lambda: score(x, y)  # noqa: E731
    else:
        score = perplexity_evaluator(model, batch_size=config.batch_size,
                                     num_steps=config.num_steps, unk_id=unk_id)
        evaluate = lambda: score(data.val_ids)  # noqa: E731
    return lambda: {f"val_{k}": v for k, v in evaluate().items()}


def _reporter(model, data: CharData, config: CharLMConfig, run: RunDir, log):
    generator = TextGenerator(model, data.vocab)
    writers = []  # Made at the first report: nothing is written before training begins.

    def on_report(record: dict) -> None:
        position = (f"step {record['step']}" if config.by_steps
                    else f"epoch {record['epoch']}")
        unk = (f" ({record['val_perplexity_known']:f} on known characters, "
               f"{record['val_unk_rate']:.1%} <unk>)" if record.get("val_unk_rate") else "")
        log(f"{position}, perplexity {record['train_perplexity']:f}, val perplexity "
            f"{record['val_perplexity']:f}{unk}, {record['tokens_per_sec']:.0f} tokens/sec, "
            f"time {record['seconds']:.2f} sec")
        number = record["step"] if config.by_steps else record["epoch"]
        samples = [generator(p, config.pred_len, temperature=config.temperature,
                             top_k=config.top_k, seed=config.seed + number)
                   for p in config.prefixes]
        for s in samples:
            log(f" - {s}")
        run.append_samples(f"{position}\n" + "\n".join(samples))
        if not writers:
            writers.append(tf.summary.create_file_writer(str(run.tensorboard_dir)))
        with writers[0].as_default(step=number):
            tf.summary.text("samples", "\n\n".join(samples))
        writers[0].flush()

    return on_report


@dataclasses.dataclass
class Trained:
    """A model rebuilt from its run directory alone, with the checkpoint's weights."""

    run: RunDir
    config: CharLMConfig
    vocab: object  # rnnzoo.data.vocab.Vocabulary
    model: CharLM
    checkpoint: str  # the checkpoint prefix it was restored from


def load_trained(workdir, checkpoint=None) -> Trained:
    """The model of a run directory: config, vocabulary, and the weights of `checkpoint` (a
    prefix or a directory; default the latest). Raises `RunDirError` / `ExportError`."""
    from rnnzoo.export import exporter

    run = RunDir(workdir)
    config = run.read_config(CharLMConfig)
    vocab = run.read_vocab()
    checkpoint = exporter.resolve_checkpoint(run, checkpoint)
    model = build_model(config, len(vocab))
    exporter.restore_model(run, model, checkpoint)
    return Trained(run, config, vocab, model, checkpoint)


def evaluate_run(workdir, *, corpus: str | None = None, split: str = "validation",
                 scoring: str | None = None, checkpoint=None, source_dir=None,
                 tfds_dir=None) -> dict:
    """Perplexity of a run's checkpoint on a split of a corpus (default: the run's own).

    The text is encoded with the run's vocabulary (characters outside it are `<unk>`), and
    scored by `scoring` ("windows" or "sequence"; default the run's `val_scoring`). Returns
    `perplexity`, `perplexity_known`, `unk_rate`, the number of characters and the checkpoint.
    """
    from rnnzoo.data import corpora
    from rnnzoo.data.tokenize import char_tokens

    trained = load_trained(workdir, checkpoint)
    config, vocab, model = trained.config, trained.vocab, trained.model
    text = corpora.load_text(corpus or config.corpus, split, source_dir=source_dir,
                             tfds_dir=tfds_dir)
    ids = vocab.encode(char_tokens(text))
    data = CharData(vocab=vocab, train_ids=ids[:0], val_ids=ids)
    if scoring is not None:
        config = dataclasses.replace(config, val_scoring=scoring)
    result = {k.removeprefix("val_"): v for k, v in _validation(model, data, config)().items()}
    return {**result, "num_chars": len(ids),
            "checkpoint": os.path.basename(trained.checkpoint)}


# ---------------------------------------------------------------------------- export


def export_run(workdir, output=None, *, quantize: str = "none", checkpoint=None,
               compute_val_perplexity: bool = False, source_dir=None, tfds_dir=None,
               tsne: bool = False, log=print):
    """Rebuilds the model of a run directory and exports it atomically (`rnnzoo.export`).

    Args:
        workdir: the run directory: config, vocabulary, checkpoints.
        output: the export directory; default `<workdir>/export`. An existing export there is
            replaced once the new one is complete; any other non-empty directory is refused.
        quantize: TFLite weights, "none", "dynamic" or "float16".
        checkpoint: a checkpoint prefix (`.../ckpt-40`) or a directory of checkpoints; default
            the run's latest.
        compute_val_perplexity: compute the validation perplexity from the corpus instead of
            reading it from `metrics.jsonl` (`source_dir`, `tfds_dir`: where the corpus is).
        tsne: word2vec's (a t-SNE map of word vectors); True is an `ExportError`.

    Returns an `rnnzoo.export.exporter.ExportResult`; raises `ExportError` or `RunDirError`
    naming the file or value at fault.
    """
    from rnnzoo.export import exporter

    exporter.check_quantize(quantize)
    if tsne:
        raise exporter.ExportError("--tsne maps the word vectors of a word2vec run; a "
                                   "character LM has none")
    trained = load_trained(workdir, checkpoint)
    run, config, vocab, model = trained.run, trained.config, trained.vocab, trained.model
    checkpoint = trained.checkpoint
    epoch = exporter.checkpoint_epoch(checkpoint)
    # ckpt-<step> in a run measured in steps, ckpt-<epoch> otherwise.
    position = (("step", exporter.checkpoint_number(checkpoint)) if config.by_steps
                else ("epoch", epoch))
    if compute_val_perplexity:
        data = load_data(config, vocab=vocab, source_dir=source_dir, tfds_dir=tfds_dir)
        val_ppl = _validation(model, data, config)()["val_perplexity"]
        source = (f"computed at export on the {len(data.val_ids)} validation characters "
                  f"({config.val_scoring} scoring, batch {config.batch_size}, num_steps "
                  f"{config.num_steps})")
    else:
        val_ppl, source = exporter.val_perplexity_from_metrics(run, *position)

    output = os.fspath(output) if output else run.path / "export"
    result = exporter.export_model_atomic(
        model, vocab, output, quantize=quantize, model_name=config.model, corpus=config.corpus,
        checkpoint=os.path.basename(checkpoint), epoch=epoch if not config.by_steps else None,
        step=position[1] if config.by_steps else None, val_perplexity=val_ppl,
        val_perplexity_source=source)
    log(exporter.summary(run, checkpoint, result, quantize))
    return result
