"""The word2vec task: skip-gram and CBOW word vectors, trained by the shared loop.

Two ways to make examples (`rnnzoo.data.skipgram`): the TensorFlow course's `generate_batch`
(`pairs="course"`: one endless sequential stream, a run measured in steps, UNK kept) and
word2vec.c / gensim's (`pairs="word2vec"`: epochs, frequent-word subsampling, a window shrunk at
random, rare words dropped; as there, a skip-gram pair trains the context word's vector to
predict the center word, where the course's center predicts the context). The loss
(`rnnzoo.models.word2vec`) is sampled softmax, NCE or negative sampling, its sampler seeded by
`[seed, global step]` so a resumed run repeats the uninterrupted one. Negative sampling with SGD
runs word2vec.c's per-example update in a C++ op (`rnnzoo.training.fused_word2vec`) where it
builds (`update`). At each report: the mean loss since the last report, words per second, the
analogy accuracy on questions-words.txt (`rnnzoo.analogy`, restricted to the 30,000 most
frequent words as gensim's `evaluate_word_analogies`) and the nearest neighbours of a few words.
`export_run` (`rnnzoo.tasks.word2vec_export`) writes the vectors in word2vec.c's text and binary
formats, TensorBoard projector files and a SavedModel with `embed` and `nearest` signatures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib

import keras
import numpy as np
import tensorflow as tf

from rnnzoo import analogy, ops
from rnnzoo.config import ConfigError, TrainConfig, field
from rnnzoo.data import corpora, skipgram
from rnnzoo.data.tokenize import word_tokens
from rnnzoo.data.vocab import WordVocabulary
from rnnzoo.models.word2vec import ARCHITECTURES, COMBINES, INITS, LOSSES, SAMPLERS, Word2Vec
from rnnzoo.run_dir import RunDir
from rnnzoo.training import distribute, fused_word2vec
from rnnzoo.training.checkpoints import Checkpoints
from rnnzoo.training.loop import TrainingPlan, fit
from rnnzoo.training.optim import make_optimizer
from rnnzoo.training.trainer import Trainer

TASK = "word2vec"
PAIRS = ("course", "word2vec")
UPDATES = ("auto", "fused", "tape")
QUESTIONS_FILE = "questions-words.txt"


@dataclasses.dataclass
class Word2VecConfig(TrainConfig):
    """A word2vec run. The defaults are the TensorFlow course's skip-gram (assignment 5)."""

    TASK = TASK

    model: str = field("skipgram", "The zoo entry (`rnnzoo.zoo.MODELS`).")
    corpus: str = field("text8/prefix", "TFDS name/config of the corpus (words split on "
                        "whitespace).")
    batch_size: int = field(128, "Examples (pairs, or CBOW windows) per batch.", minimum=1)
    optimizer: str = field("adagrad", "Optimizer: sgd, adagrad or adam.",
                           choices=("sgd", "adagrad", "adam"))
    lr: float = field(1.0, "Initial learning rate (of the mean per-example loss).")
    clip_norm: float = field(0.0, "Global gradient-norm clip (0: none, as the course and "
                             "word2vec.c).", minimum=0.0)
    train_steps: int = field(100_001, "Train for this many steps (the course's pairs); 0: "
                             "train by epochs.", resumable=True, minimum=0)
    num_epochs: int = field(5, "Passes over the corpus (word2vec pairs, train_steps 0).",
                            resumable=True, minimum=1)
    pred_period: int = field(2000, "Report (loss, analogies, neighbours) and checkpoint every "
                             "this many steps (or epochs).", resumable=True, minimum=1)
    checkpoint_every: int = field(10_000, "Also checkpoint every this many steps (or epochs).",
                                  resumable=True, minimum=1)
    # Model.
    architecture: str = field("skipgram", "skipgram or cbow.", choices=ARCHITECTURES)
    embedding_dim: int = field(128, "Size of the word vectors.", minimum=1)
    loss: str = field("sampled_softmax", "sampled_softmax (the course), nce, or negative "
                      "(negative sampling, word2vec.c).", choices=LOSSES)
    num_sampled: int = field(64, "Sampled classes per batch (sampled_softmax, nce) or "
                             "negatives per example (negative).", minimum=1)
    sampler: str = field("log_uniform", "Distribution of the sampled classes: log_uniform "
                         "(TF's default, the course) or unigram (counts ** 0.75, word2vec.c).",
                         choices=SAMPLERS)
    combine: str = field("sum", "CBOW: sum (the course) or mean (word2vec.c) of the context "
                         "vectors.", choices=COMBINES)
    init: str = field("course", "course: vectors uniform(-1, 1); word2vec: uniform(-0.5/D, "
                      "0.5/D), output weights zero; gensim: uniform(-1/D, 1/D), output weights "
                      "zero.", choices=INITS)
    max_logit: float = field(0.0, "Negative sampling: no update from a target whose logit "
                             "reaches +-this (gensim's MAX_EXP, 6); 0: none.", minimum=0.0)
    # Data.
    vocab_max_size: int = field(50_000, "Keep the most frequent words, <unk> included (0: no "
                                "limit).", minimum=0)
    vocab_min_count: int = field(1, "Words seen fewer times are <unk> (or dropped).", minimum=1)
    drop_unknown: bool = field(False, "Drop the words outside the vocabulary from the text "
                               "(word2vec.c, gensim) instead of reading them as <unk> (the "
                               "course).")
    pairs: str = field("course", "course: the course's generate_batch, sequential, in steps; "
                       "word2vec: word2vec.c's subsampling and shrunk windows, in epochs.",
                       choices=PAIRS)
    skip_window: int = field(1, "course: context words on each side.", minimum=1)
    num_skips: int = field(2, "course skip-gram: contexts drawn per center word.", minimum=1)
    window: int = field(5, "word2vec: the largest window (shrunk at random per word).",
                        minimum=1)
    sample: float = field(1e-3, "word2vec: the subsampling threshold of frequent words "
                          "(0: none).", minimum=0.0)
    sentence_length: int = field(10_000, "word2vec: no window crosses a multiple of this "
                                 "position (gensim's Text8Corpus: 10,000; 0: one text).",
                                 minimum=0)
    # The update.
    update: str = field("auto", "fused: word2vec.c's per-example SGD in rnnzoo's C++ op "
                        "(negative loss, unigram sampler, sgd; compiled on first use); tape: "
                        "one GradientTape step per batch (any loss and optimizer); auto: fused "
                        "where it applies and builds, else tape.", choices=UPDATES)
    workers: int = field(1, "Threads of the fused update (word2vec.c and gensim's Hogwild "
                         "workers); more than 1 is faster but not bitwise reproducible.",
                         resumable=True, minimum=1)
    # Reporting.
    analogy_restrict: int = field(30_000, "Analogies: answer among this many most frequent "
                                  "words (gensim's restrict_vocab).", resumable=True, minimum=1)
    nearest: tuple[str, ...] = field(("three", "would", "american", "king", "city", "war"),
                                     "Words whose nearest neighbours each report prints.",
                                     resumable=True)

    def validate(self) -> Word2VecConfig:
        super().validate()
        if self.pairs == "course" and not self.by_steps:
            raise ConfigError("`pairs=course` is an endless stream: set `train_steps` > 0")
        if self.pairs == "word2vec" and self.by_steps:
            raise ConfigError("`pairs=word2vec` is read in epochs: set `train_steps=0` and "
                              "`num_epochs`")
        if self.pairs == "course" and self.architecture == "skipgram":
            if self.num_skips > 2 * self.skip_window:
                raise ConfigError(f"`num_skips` ({self.num_skips}) must be <= 2 * skip_window "
                                  f"({2 * self.skip_window})")
            if self.batch_size % self.num_skips:
                raise ConfigError(f"`batch_size` ({self.batch_size}) must be a multiple of "
                                  f"num_skips ({self.num_skips})")
        if self.vocab_max_size == 1:
            raise ConfigError("`vocab_max_size` must be 0 (no limit) or >= 2, got 1")
        return self


Config = Word2VecConfig  # the task's config class, as `rnnzoo.zoo` looks it up


@dataclasses.dataclass
class WordData:
    vocab: WordVocabulary
    ids: np.ndarray  # int32 [n], the training text as ids
    questions: list | None  # analogy sections, or None when the file is not found
    corpus_words: int | None = None  # the text's words, dropped ones included (default: n)

    @property
    def words(self) -> int:
        return len(self.ids) if self.corpus_words is None else self.corpus_words


def load_data(config: Word2VecConfig, *, vocab=None, source_dir=None, tfds_dir=None) -> WordData:
    """The training split as word ids, its vocabulary (with counts) and the analogy questions."""
    words = word_tokens(corpora.load_text(config.corpus, "train", source_dir=source_dir,
                                          tfds_dir=tfds_dir))
    if vocab is None:
        vocab = WordVocabulary.build(words, max_size=config.vocab_max_size or None,
                                     min_count=config.vocab_min_count)
    ids = vocab.encode(words, oov="skip" if config.drop_unknown else "unk").astype(np.int32)
    return WordData(vocab=vocab, ids=ids, questions=find_questions(source_dir),
                    corpus_words=len(words))


# At most this many context slots (batch_size x 2 x window) in a CBOW batch: about 1 GB of ids.
MAX_CBOW_SLOTS = 1 << 27


def check_data(config: Word2VecConfig, data: WordData) -> None:
    """Raises ConfigError, naming the values, when the text or its vocabulary cannot train
    `config`: no words left, too few words for the sampled classes or the window, a window
    across whole sentences, CBOW batches too large to hold."""
    known = len(data.vocab) - (1 if config.drop_unknown and data.vocab.unk_id is not None else 0)
    if known < 2 or len(data.ids) == 0:
        raise ConfigError(
            f"the vocabulary keeps {known} word(s) of {config.corpus} (vocab_min_count="
            f"{config.vocab_min_count}, vocab_max_size={config.vocab_max_size}) and the text "
            f"{len(data.ids):,} words: nothing to train; lower vocab_min_count")
    if config.loss != "negative" and config.num_sampled >= len(data.vocab):
        raise ConfigError(
            f"`num_sampled` ({config.num_sampled}) must be smaller than the vocabulary "
            f"({len(data.vocab):,} words) for the {config.loss} loss; lower num_sampled or "
            f"keep more words (vocab_max_size, vocab_min_count)")
    name, span = (("window", config.window) if config.pairs == "word2vec"
                  else ("skip_window", config.skip_window))
    if 2 * span + 1 > len(data.ids):
        raise ConfigError(f"`{name}` ({span}) is too large for the text: {len(data.ids):,} "
                          f"words, fewer than the {2 * span + 1} a window spans")
    if config.pairs == "word2vec" and span >= (config.sentence_length or len(data.ids)):
        raise ConfigError(f"`window` ({span}) must be smaller than sentence_length "
                          f"({config.sentence_length}): no window crosses a sentence")
    if config.architecture == "cbow" and config.batch_size * 2 * span > MAX_CBOW_SLOTS:
        raise ConfigError(
            f"CBOW batches of batch_size x 2 x {name} = {config.batch_size} x 2 x {span} = "
            f"{config.batch_size * 2 * span:,} context slots are too large (at most "
            f"{MAX_CBOW_SLOTS:,}); lower {name} or batch_size")


def _batches_per_epoch(data: WordData, config: Word2VecConfig) -> int:
    """Batches in an epoch of word2vec pairs (epoch 1's plan); ConfigError if none."""
    plan = _plan(data, config, 1)
    count = plan.num_batches(config.batch_size, config.architecture)
    if count == 0:
        what = "pairs" if config.architecture == "skipgram" else "CBOW examples"
        have = plan.num_pairs if config.architecture == "skipgram" else len(plan.cbow_targets)
        raise ConfigError(f"an epoch has {have:,} {what} ({plan.words:,} words, "
                          f"{plan.kept_words:,} kept after subsampling), fewer than batch_size="
                          f"{config.batch_size}; lower batch_size")
    return count


def find_questions(source_dir=None):
    """questions-words.txt from `source_dir` or `$RNNZOO_DATA_DIR`, or None if absent."""
    for where in (source_dir, os.environ.get("RNNZOO_DATA_DIR")):
        if where and (pathlib.Path(where) / QUESTIONS_FILE).is_file():
            return analogy.read_questions(pathlib.Path(where) / QUESTIONS_FILE)
    return None


def build_model(config: Word2VecConfig, vocab: WordVocabulary) -> Word2Vec:
    counts = skipgram.unigram_counts(vocab, unk=not config.drop_unknown)
    return Word2Vec(len(vocab), config.embedding_dim, architecture=config.architecture,
                    loss=config.loss, num_sampled=config.num_sampled, combine=config.combine,
                    counts=counts if config.sampler == "unigram" else None,
                    sampler=config.sampler, init=config.init, seed=config.seed,
                    max_logit=config.max_logit)


@dataclasses.dataclass
class TrainResult:
    record: dict
    model: Word2Vec
    data: WordData
    run: RunDir


def train(config: Word2VecConfig, workdir, *, resume: bool = False, data: WordData | None = None,
          source_dir=None, tfds_dir=None, log=print) -> TrainResult:
    """Trains (or resumes) a word2vec run in `workdir`; `data` defaults to `config.corpus`.

    Under `config.distribute` (`rnnzoo.training.distribute`) the update is the tape trainer's,
    each replica taking its rows of every global batch; only the chief writes `workdir`."""
    config.validate()
    strategy = distribute.make_strategy(config.distribute, worker_timeout=config.worker_timeout)
    distribute.check_batch_size(strategy, config.batch_size)
    chief = distribute.is_chief(strategy)
    run = RunDir(workdir)
    keras.utils.set_random_seed(config.seed)
    if data is None:
        data = load_data(config, source_dir=source_dir, tfds_dir=tfds_dir)
    check_data(config, data)
    total = config.train_steps or config.num_epochs * _batches_per_epoch(data, config)
    # Locks; writes once training begins. Another worker than the chief writes nothing there.
    with (run.start(config, data.vocab, resume=resume) if chief else contextlib.nullcontext(),
          distribute.stop_on_lost_worker(strategy)):
        log(f"corpus {config.corpus}: {len(data.ids):,} training words, vocabulary of "
            f"{len(data.vocab):,}")
        with strategy.scope():
            model = build_model(config, data.vocab)
            optimizer = make_optimizer(config, total)
        trainer = make_trainer(config, model, optimizer, log=log, strategy=strategy)
        checkpoints = Checkpoints(run, model, optimizer, max_to_keep=config.keep_checkpoints,
                                  strategy=strategy)
        plan = TrainingPlan(
            trainer=trainer, initial_carry=lambda: (), carries_state=False,
            epoch_batches=lambda epoch: _epoch_dataset(data, config, epoch),
            stream=lambda first: _stream(data, config, first),
            evaluate=_evaluator(model, data, config),
            train_metrics=lambda mean: {"loss": mean},
            annotate=_words_per_sec(data, config),
            on_report=_reporter(model, data, config, run, log))
        record = fit(plan, config, run, checkpoints, resume=resume, log=log)
    return TrainResult(record=record, model=model, data=data, run=run)


def make_trainer(config: Word2VecConfig, model: Word2Vec, optimizer, *, log=print,
                 strategy=None):
    """The fused word2vec.c step where `config.update` allows it, else the shared `Trainer`
    (always under a strategy other than the default one: the op updates one copy)."""
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    why_not = fused_word2vec.supports(model, config.optimizer, replicas)
    if why_not is None and distribute.mirrors_variables(strategy):
        why_not = f"distribute={config.distribute} (the fused step updates one copy)"
    if why_not is None and config.clip_norm:
        why_not = "gradient clipping (word2vec.c does not clip)"
    if config.update != "tape" and why_not is None:
        try:
            library = ops.load_word2vec_ops(required=True)
        except ops.OpsUnavailable as e:
            why_not = f"this machine: the C++ op is unavailable ({e})"
        else:
            log(f"update: fused (word2vec.c's per-example SGD, {config.workers} worker"
                f"{'s' if config.workers > 1 else ''})")
            return fused_word2vec.FusedWord2VecTrainer(
                model, optimizer, library, seed=config.seed, workers=config.workers,
                predict_center=config.pairs == "word2vec")
    if config.update == "fused":
        raise ConfigError(f"`update=fused` does not support {why_not}; use update=tape")
    log("update: tape (the batch's mean-loss gradient, one optimizer step)"
        + (f"; not fused: {why_not}" if config.update == "auto" else ""))
    return Trainer(model, optimizer, clip_norm=config.clip_norm or None,
                   loss_fn=_loss_fn(config, optimizer), jit_compile=config.jit_compile,
                   strategy=strategy)


# ------------------------------------------------------------------------------- data


def _plan(data: WordData, config: Word2VecConfig, epoch: int) -> skipgram.Word2VecPlan:
    counts = skipgram.unigram_counts(data.vocab, unk=not config.drop_unknown)
    return skipgram.word2vec_plan(data.ids, counts, window=config.window, sample=config.sample,
                                  seed=config.seed, epoch=epoch,
                                  sentence_length=config.sentence_length or None)


def _epoch_dataset(data: WordData, config: Word2VecConfig, epoch: int) -> tf.data.Dataset:
    plan = _plan(data, config, epoch)
    if config.architecture == "skipgram":
        return skipgram.word2vec_skipgram_dataset(plan, batch_size=config.batch_size)
    return skipgram.word2vec_cbow_dataset(plan, batch_size=config.batch_size)


def _stream(data: WordData, config: Word2VecConfig, first_batch: int):
    if config.architecture == "skipgram":
        dataset = skipgram.course_skipgram_dataset(
            data.ids, batch_size=config.batch_size, num_skips=config.num_skips,
            skip_window=config.skip_window, num_batches=config.train_steps - first_batch,
            seed=config.seed, first_batch=first_batch)
    else:
        dataset = skipgram.course_cbow_dataset(
            data.ids, batch_size=config.batch_size, skip_window=config.skip_window,
            first_batch=first_batch)
    for k, batch in enumerate(dataset, start=first_batch):
        yield batch, k == 0


def _loss_fn(config: Word2VecConfig, optimizer):
    """`loss_fn(model, batch, carry, training)` for the trainer: summed loss over the batch.

    The sampler's seed is `[config.seed, global step]` (the optimizer's iteration count)."""

    def loss_fn(model, batch, carry, training):
        seed = tf.stack([tf.constant(config.seed, tf.int32),
                         tf.cast(optimizer.iterations, tf.int32)])
        if config.architecture == "skipgram":
            inputs, labels = batch
            if config.pairs == "word2vec":  # word2vec.c: the context predicts the center
                inputs, labels = tf.reshape(labels, [-1]), tf.reshape(inputs, [-1, 1])
        else:
            contexts, mask, labels = batch
            inputs = (contexts, mask)
        hidden = model(inputs, training=training)
        count = tf.cast(tf.shape(hidden)[0], tf.float32)
        return model.sampled_loss(hidden, labels, seed), count, carry

    return loss_fn


def _words_per_sec(data: WordData, config: Word2VecConfig):
    """Corpus words read per second: an epoch's words (all the text's words, those dropped as
    rare or subsampled included, as gensim counts them) over its time, or, for the course's
    pairs, the center words of the steps since the last report."""
    centers = (config.batch_size // config.num_skips if config.architecture == "skipgram"
               else config.batch_size)

    def annotate(record: dict, num_batches: int) -> dict:
        words = data.words if not config.by_steps else num_batches * centers
        return {"words_per_sec": words / record["seconds"]}

    return annotate


# ------------------------------------------------------------------- evaluation, reports


def nearest_words(model: Word2Vec, vocab: WordVocabulary, words, k: int = 8) -> dict:
    """The `k` nearest words (cosine) of each of `words` found in the vocabulary, never the
    word itself nor `<unk>`; the exported SavedModel's `nearest` signature lists the same."""
    unit = model.unit_vectors().numpy()
    found = [w for w in words if w in vocab]
    result = {}
    for word in found:
        scores = unit @ unit[vocab.token_to_id(word)]
        scores[vocab.token_to_id(word)] = -np.inf
        if vocab.unk_id is not None:
            scores[vocab.unk_id] = -np.inf
        top = np.argsort(-scores)[:k]
        result[word] = [vocab.id_to_token(int(i)) for i in top]
    return result


def _evaluator(model: Word2Vec, data: WordData, config: Word2VecConfig):
    if data.questions is None:
        return None
    words = data.vocab.tokens

    def evaluate() -> dict:
        result = analogy.evaluate_analogies(model.embeddings.numpy(), words, data.questions,
                                            restrict_vocab=config.analogy_restrict)
        return result.to_metrics()

    return evaluate


def _reporter(model, data: WordData, config: Word2VecConfig, run: RunDir, log):
    def on_report(record: dict) -> None:
        position = (f"step {record['step']}" if config.by_steps
                    else f"epoch {record['epoch']}")
        accuracy = (f", analogies {record['analogy_accuracy']:.1%} (semantic "
                    f"{record['analogy_semantic']:.1%}, syntactic "
                    f"{record['analogy_syntactic']:.1%})" if "analogy_accuracy" in record
                    else "")
        log(f"{position}, average loss {record['loss']:.3f}{accuracy}, "
            f"{record['words_per_sec']:,.0f} words/sec")
        neighbours = nearest_words(model, data.vocab, config.nearest)
        lines = [f"Nearest to {w}: {', '.join(n)}" for w, n in neighbours.items()]
        for line in lines:
            log(f" - {line}")
        run.append_samples(f"{position}\n" + "\n".join(lines))

    return on_report


# ---------------------------------------------------------------------------- export


def export_run(workdir, output=None, **kwargs):
    """Exports the word vectors of a run directory: `vectors.txt`, `vectors.bin`, `projector/`,
    `saved_model/` (`embed`, `nearest`), `model.json`, and `tsne.png` with `tsne=True`
    (`rnnzoo.tasks.word2vec_export.export_run`, which documents the arguments)."""
    from rnnzoo.tasks import word2vec_export  # it imports this module

    return word2vec_export.export_run(workdir, output, **kwargs)
