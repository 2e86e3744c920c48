"""The seq2seq task: the course's word mirror (`the quick brown fox` -> `eht kciuq nworb xof`).

Data (`rnnzoo.data.seq2seq`): pairs of whole-word spans of at most `max_length` characters and
their mirror, drawn anew each epoch from the training split (seeded by `[seed, epoch]`), and a
fixed set of `val_pairs` pairs from the validation split; one character vocabulary with
`<pad>`/`<bos>`/`<eos>`/`<unk>`; batches by length (`bucket_by_sequence_length`, padded to the
bucket's sizes so each bucket compiles once). Model (`rnnzoo.models.seq2seq.Seq2Seq`): stacked
LSTM encoder and decoder with Luong or Bahdanau attention, trained with teacher forcing by the
shared loop; the loss is the summed NLL over the real target tokens (`<eos>` included, padding
never), divided by their global count.

At each report, on the validation pairs:

    val_perplexity         exp(total NLL / real target tokens), teacher forcing
    val_char_accuracy      greedy decoding, per target character, position by position
    val_sequence_accuracy  greedy decoding, whole output equal to the target

and a few decoded samples in the log. `lr_schedule="plateau"` multiplies the learning rate by
`lr_decay_rate` whenever the validation loss is no better than the best before it (the legacy
translate model's rule; `rnnzoo.training.optim.PlateauDecay`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math

import keras
import numpy as np
import tensorflow as tf

from rnnzoo.config import LR_SCHEDULES, PLATEAU, ConfigError, TrainConfig, field
from rnnzoo.data import corpora
from rnnzoo.data import seq2seq as s2s
from rnnzoo.evaluation import decoding_accuracy, perplexity
from rnnzoo.models.seq2seq import ATTENTIONS, Seq2Seq, sequence_loss
from rnnzoo.run_dir import RunDir
from rnnzoo.training import distribute
from rnnzoo.training.checkpoints import Checkpoints
from rnnzoo.training.loop import TrainingPlan, fit
from rnnzoo.training.optim import PlateauDecay, make_optimizer
from rnnzoo.training.trainer import Trainer

TASK = "seq2seq"
BUCKET_PRESETS = {"course": s2s.COURSE_BUCKETS, "legacy": s2s.LEGACY_BUCKETS}


def parse_buckets(text: str) -> tuple[tuple[int, int], ...]:
    """`"course"`, `"legacy"`, or `"S:T,S:T,..."` (source and target sizes, the target size
    counting `<eos>`) -> the buckets; ConfigError naming the text if it is not one of those."""
    if text in BUCKET_PRESETS:
        return BUCKET_PRESETS[text]
    try:
        buckets = tuple(tuple(int(x) for x in part.split(":")) for part in text.split(","))
        return s2s.check_buckets(buckets)
    except ValueError as e:
        raise ConfigError(f"`buckets` must be 'course', 'legacy' or 'S:T,S:T,...' with sizes "
                          f"increasing, got {text!r} ({e})") from None


@dataclasses.dataclass
class Seq2SeqConfig(TrainConfig):
    """A seq2seq run. The defaults are the fast preset: 2 layers of 128 with Luong attention,
    Adam at 0.003 decayed linearly to 5% over 3,000 steps of 64 pairs, clip 5, spans of up to
    20 characters in the course's single bucket."""

    TASK = TASK

    model: str = field("seq2seq", "The zoo entry (`rnnzoo.zoo.MODELS`).")
    corpus: str = field("text8/prefix", "TFDS name/config of the corpus (any character "
                        "corpus of the zoo).")
    batch_size: int = field(64, "Pairs per batch.", minimum=1)
    optimizer: str = field("adam", "Optimizer: sgd, adagrad or adam.",
                           choices=("sgd", "adagrad", "adam"))
    lr: float = field(0.003, "Initial learning rate (of the mean per-token loss).")
    lr_schedule: str = field("linear", "constant, exponential, linear, or plateau (x "
                             "lr_decay_rate when the validation loss stops improving).",
                             choices=(*LR_SCHEDULES, PLATEAU))
    lr_min_fraction: float = field(0.05, "linear: the final rate as a fraction of lr.")
    lr_decay_rate: float = field(0.9, "exponential / plateau: the decay factor.")
    clip_norm: float = field(5.0, "Global gradient-norm clip (0: none).", minimum=0.0)
    train_steps: int = field(3000, "Train for this many steps (0: by epochs).",
                             resumable=True, minimum=0)
    pred_period: int = field(500, "Report (validation, samples) and checkpoint every this "
                             "many steps (or epochs).", resumable=True, minimum=1)
    checkpoint_every: int = field(1000, "Also checkpoint every this many steps (or epochs).",
                                  resumable=True, minimum=1)
    # Model.
    embedding_dim: int = field(32, "Width of the source and target character embeddings.",
                               minimum=1)
    num_hiddens: int = field(128, "Units of every LSTM layer.", minimum=1)
    num_layers: int = field(2, "Stacked LSTM layers in the encoder and in the decoder.",
                            minimum=1)
    attention: str = field("luong", "luong (multiplicative), bahdanau (additive) or none.",
                           choices=ATTENTIONS)
    # Data.
    max_length: int = field(20, "Longest span in characters (source = target length).",
                            minimum=1)
    buckets: str = field("course", "Length buckets: course ((20, 21)), legacy ((5, 10), (10, "
                         "15), (20, 25), (40, 50)), or S:T,S:T,... (target sizes count "
                         "<eos>).")
    reverse_source: bool = field(False, "Feed the source reversed (the legacy model did).")
    val_pairs: int = field(1000, "Validation pairs (the first of the validation split's).",
                           minimum=1)
    # Reporting.
    samples: tuple[str, ...] = field(("the quick brown fox", "sequence to sequence"),
                                     "Texts translated at each report, besides three "
                                     "validation pairs.", resumable=True)

    def validate(self) -> Seq2SeqConfig:
        super().validate()
        buckets = parse_buckets(self.buckets)
        if self.max_length > buckets[-1][0] or self.max_length + 1 > buckets[-1][1]:
            raise ConfigError(
                f"`max_length` ({self.max_length}) does not fit the largest bucket "
                f"{buckets[-1]} (source <= {buckets[-1][0]}, target + <eos> <= "
                f"{buckets[-1][1]}); lower max_length or add a larger bucket")
        if self.lr_schedule == PLATEAU and not 0 < self.lr_decay_rate <= 1:
            raise ConfigError(f"`lr_decay_rate` must be in (0, 1], got {self.lr_decay_rate}")
        if any(not s.strip() for s in self.samples):
            raise ConfigError(f"`samples` must be non-blank texts, got {list(self.samples)}")
        return self

    @property
    def bucket_sizes(self) -> tuple[tuple[int, int], ...]:
        return parse_buckets(self.buckets)

    @property
    def decode_length(self) -> int:
        """The most tokens greedy decoding emits (`<eos>` included): the largest target."""
        return self.bucket_sizes[-1][1]


Config = Seq2SeqConfig  # the task's config class, as `rnnzoo.zoo` looks it up


@dataclasses.dataclass
class PairData:
    vocab: s2s.Seq2SeqVocabulary
    train_text: str
    val_pairs: list  # [(source, target)], fixed


def load_data(config: Seq2SeqConfig, *, vocab=None, source_dir=None, tfds_dir=None) -> PairData:
    """The training text (pairs are drawn from it per epoch), the vocabulary built from it and
    the validation pairs."""
    train_text = corpora.load_text(config.corpus, "train", source_dir=source_dir,
                                   tfds_dir=tfds_dir)
    val_text = corpora.load_text(config.corpus, "validation", source_dir=source_dir,
                                 tfds_dir=tfds_dir)
    return make_data(config, train_text, val_text, vocab=vocab)


def make_data(config: Seq2SeqConfig, train_text: str, val_text: str, *, vocab=None) -> PairData:
    """`PairData` from the two texts; ConfigError when either yields no pair that fits."""
    if vocab is None:
        vocab = s2s.Seq2SeqVocabulary.build(train_text)
    pairs = s2s.mirror_pairs(val_text, max_length=config.max_length, seed=config.seed)
    fits = s2s.assign_buckets(pairs, config.bucket_sizes) >= 0 if pairs else np.zeros(0, bool)
    val_pairs = [p for p, ok in zip(pairs, fits) if ok][:config.val_pairs]
    if not val_pairs:
        raise ConfigError(f"the validation split of {config.corpus} has no span of whole words "
                          f"of at most max_length={config.max_length} characters")
    if not s2s.mirror_pairs(train_text[:100_000], max_length=config.max_length, seed=0):
        raise ConfigError(f"the training split of {config.corpus} has no span of whole words "
                          f"of at most max_length={config.max_length} characters")
    return PairData(vocab=vocab, train_text=train_text, val_pairs=val_pairs)


def build_model(config: Seq2SeqConfig, vocab_size: int) -> Seq2Seq:
    model = Seq2Seq(vocab_size, embedding_dim=config.embedding_dim,
                    num_hiddens=config.num_hiddens, num_layers=config.num_layers,
                    attention=config.attention, seed=config.seed)
    model.fused_recurrence = not config.jit_compile  # XLA cannot compile rnnzoo's C++ ops
    return model


def pair_loss(model, batch, carry, training):
    """The trainer's loss: summed NLL over the batch's real target tokens, and their count."""
    source_ids, decoder_inputs, targets = batch
    logits = model((source_ids, decoder_inputs), training=training)
    loss_sum, count = sequence_loss(logits, targets)
    return loss_sum, count, carry


@dataclasses.dataclass
class TrainResult:
    record: dict
    model: Seq2Seq
    data: PairData
    run: RunDir


def train(config: Seq2SeqConfig, workdir, *, resume: bool = False, data: PairData | None = None,
          source_dir=None, tfds_dir=None, log=print) -> TrainResult:
    """Trains (or resumes) a seq2seq run in `workdir`; `data` defaults to `config.corpus`.

    Under `config.distribute` (`rnnzoo.training.distribute`) the model and optimizer live in
    the strategy's scope, each replica trains on its rows of every global batch, and only the
    chief writes `workdir`. `lr_schedule=plateau` is decided by the chief's validation, so it
    is refused across several workers (use linear or exponential there).
    """
    config.validate()
    strategy = distribute.make_strategy(config.distribute, worker_timeout=config.worker_timeout)
    distribute.check_batch_size(strategy, config.batch_size)
    if config.lr_schedule == PLATEAU and distribute.is_multi_worker(strategy):
        raise ConfigError("`lr_schedule=plateau` follows the chief's validation, which the "
                          "other workers do not see: use linear or exponential with "
                          "distribute=multi_worker")
    chief = distribute.is_chief(strategy)
    run = RunDir(workdir)
    keras.utils.set_random_seed(config.seed)
    if data is None:
        data = load_data(config, source_dir=source_dir, tfds_dir=tfds_dir)
    with (run.start(config, data.vocab, resume=resume) if chief else contextlib.nullcontext(),
          distribute.stop_on_lost_worker(strategy)):
        log(f"corpus {config.corpus}: {len(data.train_text):,} training characters, "
            f"{len(data.val_pairs):,} validation pairs, vocabulary of {len(data.vocab)}")
        total = config.train_steps or config.num_epochs * _epoch_dataset(
            data, config, 1).cardinality().numpy()
        with strategy.scope():
            model = build_model(config, len(data.vocab))
            optimizer = make_optimizer(config, int(total))
        trainer = Trainer(model, optimizer, clip_norm=config.clip_norm or None,
                          loss_fn=pair_loss, jit_compile=config.jit_compile, strategy=strategy)
        checkpoints = Checkpoints(run, model, optimizer, max_to_keep=config.keep_checkpoints,
                                  strategy=strategy)
        translate = greedy_translator(model, config)  # validation's and the samples' decoding
        plan = TrainingPlan(
            trainer=trainer, initial_carry=lambda: (), carries_state=False,
            epoch_batches=lambda epoch: _epoch_dataset(data, config, epoch),
            stream=lambda first: _stream(data, config, first),
            evaluate=_evaluator(model, data, config, translate),
            train_metrics=lambda mean: {"loss": mean, "train_perplexity": perplexity(mean)},
            on_report=_reporter(optimizer, data, config, run, translate, log))
        record = fit(plan, config, run, checkpoints, resume=resume, log=log)
    return TrainResult(record=record, model=model, data=data, run=run)


# ------------------------------------------------------------------------------- data


def _epoch_dataset(data: PairData, config: Seq2SeqConfig, epoch: int) -> tf.data.Dataset:
    """Epoch `epoch`'s batches (1-based): its own spans, shuffled, padded to the buckets."""
    pairs = s2s.mirror_pairs(data.train_text, max_length=config.max_length, seed=config.seed,
                             epoch=epoch)
    return s2s.seq2seq_dataset(pairs, data.vocab, batch_size=config.batch_size,
                               bucket_boundaries=config.bucket_sizes,
                               reverse_source=config.reverse_source, shuffle_seed=config.seed,
                               epoch=epoch, drop_remainder=True, pad_to_bucket=True)


def _stream(data: PairData, config: Seq2SeqConfig, first_batch: int):
    """`(batch, starts_sequence)` from global batch `first_batch` on: epoch after epoch."""
    seen = 0
    for epoch in itertools.count(1):
        dataset = _epoch_dataset(data, config, epoch)
        n = int(dataset.cardinality())
        if n == 0:
            raise ConfigError(f"an epoch of {config.corpus} has fewer pairs than batch_size="
                              f"{config.batch_size} in every bucket; lower batch_size")
        if seen + n <= first_batch:
            seen += n
            continue
        for batch in dataset.skip(max(0, first_batch - seen)):
            yield batch, False
        seen += n


# ------------------------------------------------------------------- evaluation, reports


def greedy_translator(model: Seq2Seq, config: Seq2SeqConfig):
    """`translate(source_ids [B, S]) -> ids [B, <= decode_length]`, compiled once."""
    return tf.function(
        lambda source_ids: model.greedy_decode(source_ids, config.decode_length, s2s.BOS_ID,
                                               s2s.EOS_ID),
        input_signature=[tf.TensorSpec([None, None], tf.int32)])


def source_ids(texts, vocab: s2s.Seq2SeqVocabulary, *, reverse: bool) -> np.ndarray:
    """int32 `[len(texts), longest]`: each text's ids (reversed if `reverse`), `<pad>` after."""
    rows = [vocab.encode(t)[::-1] if reverse else vocab.encode(t) for t in texts]
    out = np.zeros((len(rows), max(1, max(map(len, rows), default=1))), np.int32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def evaluate_pairs(model: Seq2Seq, vocab: s2s.Seq2SeqVocabulary, pairs, config: Seq2SeqConfig,
                   *, translate=None, score=None, batch_size: int = 256) -> dict:
    """Perplexity (teacher forcing) and greedy-decoding accuracy of `model` on `pairs`: keys
    `perplexity`, `char_accuracy`, `sequence_accuracy`, `outputs` (the decoded strings, in the
    order of `pairs`)."""
    translate = translate or greedy_translator(model, config)
    score = score or tf.function(lambda s, d, t: sequence_loss(model((s, d)), t))
    total = count = 0.0
    outputs = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        src = source_ids([p[0] for p in chunk], vocab, reverse=config.reverse_source)
        tgt = [vocab.encode(p[1]) for p in chunk]
        width = max(map(len, tgt)) + 1
        dec = np.zeros((len(chunk), width), np.int32)
        lab = np.zeros((len(chunk), width), np.int32)
        for i, t in enumerate(tgt):
            dec[i, 0], dec[i, 1:len(t) + 1] = s2s.BOS_ID, t
            lab[i, :len(t)], lab[i, len(t)] = t, s2s.EOS_ID
        loss, n = score(tf.constant(src), tf.constant(dec), tf.constant(lab))
        total, count = total + float(loss), count + float(n)
        outputs += [vocab.decode(row) for row in translate(tf.constant(src)).numpy()]
    accuracy = decoding_accuracy(outputs, [p[1] for p in pairs])
    return {"perplexity": perplexity(total / count), **accuracy, "outputs": outputs}


def _evaluator(model: Seq2Seq, data: PairData, config: Seq2SeqConfig, translate):
    score = tf.function(lambda s, d, t: sequence_loss(model((s, d)), t), reduce_retracing=True)

    def evaluate() -> dict:
        result = evaluate_pairs(model, data.vocab, data.val_pairs, config, translate=translate,
                                score=score)
        evaluate.outputs = result.pop("outputs")
        return {f"val_{k}": v for k, v in result.items()}

    evaluate.outputs = []
    return evaluate


def _reporter(optimizer, data: PairData, config: Seq2SeqConfig, run: RunDir, translate, log):
    plateau = PlateauDecay(optimizer, config.lr_decay_rate) if config.lr_schedule == PLATEAU \
        else None

    def on_report(record: dict) -> None:
        position = (f"step {record['step']}" if config.by_steps
                    else f"epoch {record['epoch']}")
        log(f"{position}, loss {record['loss']:.4f}, perplexity "
            f"{record['train_perplexity']:.4f}, val perplexity {record['val_perplexity']:.4f}, "
            f"val char accuracy {record['val_char_accuracy']:.2%}, val sequence accuracy "
            f"{record['val_sequence_accuracy']:.2%}, {record['tokens_per_sec']:,.0f} target "
            f"tokens/sec")
        texts = [p[0] for p in data.val_pairs[:3]] + list(config.samples)
        ids = translate(tf.constant(source_ids(texts, data.vocab,
                                               reverse=config.reverse_source)))
        lines = [f"{t} -> {data.vocab.decode(row)}" for t, row in zip(texts, ids.numpy())]
        for line in lines:
            log(f" - {line}")
        run.append_samples(f"{position}\n" + "\n".join(lines))
        if plateau is not None:
            history = [math.log(r["val_perplexity"]) for r in run.read_metrics()
                       if "val_perplexity" in r]
            if plateau.update(history):
                log(f" - validation loss did not improve: learning rate now "
                    f"{float(optimizer.learning_rate):.4g}")

    return on_report


# ---------------------------------------------------------------------------- export


def export_run(workdir, output=None, **kwargs):
    """Exports a seq2seq run (`rnnzoo.tasks.seq2seq_export.export_run`)."""
    from rnnzoo.tasks import seq2seq_export  # it imports this module

    return seq2seq_export.export_run(workdir, output, **kwargs)
