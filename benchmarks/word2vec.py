"""Word2vec speed and analogy accuracy of rnnzoo against gensim, measured in the same run.

    python benchmarks/word2vec.py                            # skip-gram and CBOW, seed 0
    python benchmarks/word2vec.py --seeds=0,1,2 --markdown=word2vec.md
    python benchmarks/word2vec.py --models=cbow --epochs=1   # a quick check

Issue 10's speed benchmark. For each seed of `--seeds` and each model of `--models` (skipgram,
cbow), one at a time and alternately, so that a drifting machine slows both alike:

1. gensim, in a fresh Python process (this script's hidden `--worker=gensim`):
   `Word2Vec(vector_size=100, window=5, negative=5, sample=1e-3, min_count=5, sg=1 or 0,
   epochs=5, workers=os.cpu_count(), seed=S)` with every other argument at gensim's default
   (alpha 0.025 for both models, decayed linearly to min_alpha 1e-4; the `gensim_cbow` preset
   starts at word2vec.c's CBOW rate, 0.05); `build_vocab` is timed apart, then `train` is the
   training time;
2. rnnzoo: `python train.py --preset=gensim_skipgram|gensim_cbow --seed=S
   --workdir=<out_dir>/<preset>-s<S>` (output in `<run dir>/train.log`), in a fresh run directory
   unless `--reuse` (then a finished run of the same seed, epochs and corpus is read back).

The text is the same for both: the training split of `--corpus` (default `text8/prefix`, the
first 90% of the characters of the 2,139,749-word text8 prefix in `$RNNZOO_DATA_DIR`, about
1.93 M words) exactly as `rnnzoo.data.corpora.load_text` gives it to rnnzoo, written once per
invocation by a worker process (`--worker=text`) to `<out_dir>/text/<corpus>.train.txt` as its
whitespace-separated words joined by single spaces; gensim reads that file with `Text8Corpus`
(sentences of 10,000 words).

Measured:

- words/s, one definition for both: the training text's words (all of its tokens, rare words
  included) x epochs over the training time. gensim: the time of `model.train`. rnnzoo: the sum
  of the epochs' `seconds` in `metrics.jsonl` (each epoch from the start of its pipeline to its
  last step; evaluation and checkpoints excluded). rnnzoo's own `words_per_sec` field is kept
  in the records as `reported_words_per_sec` (total over seconds of its epochs); it counts the
  words left once the rare ones are dropped (1,838,844 of text8/prefix's 1,926,899), so it
  reads about 5% lower;
- train seconds (as above) and the whole command's wall-clock (process start to exit);
- analogy accuracy on `$RNNZOO_DATA_DIR/questions-words.txt` restricted to the 30,000 most
  frequent words: gensim's `evaluate_word_analogies(restrict_vocab=30000)`, rnnzoo's last
  `metrics.jsonl` record (`rnnzoo.analogy`, which scores as gensim does); semantic = the
  sections not named `gram*` (the first 5), syntactic = the `gram*` ones, each correct /
  answered over its sections.

The table goes to stdout (and `--markdown=FILE`, written atomically): per model and framework
the median over the seeds (words/s and accuracy with their min-max when there are several
seeds), and rnnzoo's ratio to gensim's median words/s and its accuracy difference in points
against issue 10's targets (>= 0.5x; >= 0 points). Each run's raw record is appended to
`<out_dir>/word2vec_bench.jsonl` as soon as it ends; progress goes to stderr. Exit status: 0,
1 if any run failed (shown as "—"), 2 for bad flags or a corpus or questions file that cannot
be had (one `error:` line on stderr).

`--epochs=N` trains both N epochs instead of 5 (`--num_epochs=N` for `train.py`), for a quick
check. The environment is passed through (`RNNZOO_DATA_DIR`, `RNNZOO_TFDS_DIR`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
# The rnnzoo next to this script, the one `train.py` below runs (not another installed copy).
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = {"skipgram": "gensim_skipgram", "cbow": "gensim_cbow"}  # model -> rnnzoo preset
FRAMEWORKS = ("gensim", "rnnzoo")
QUESTIONS_FILE = "questions-words.txt"
RESULTS_FILE = "word2vec_bench.jsonl"
WALL_CLOCK = "wall_clock.json"  # in an rnnzoo run directory: how long train.py took
EPOCHS = 5
RESTRICT_VOCAB = 30_000
SENTENCE_LENGTH = 10_000  # gensim's Text8Corpus (and rnnzoo's `sentence_length`)
# gensim's Word2Vec defaults, as the presets copy them (alpha and min_alpha stay gensim's own).
GENSIM_ARGS = dict(vector_size=100, window=5, negative=5, sample=1e-3, min_count=5)
TARGET_SPEED = 0.5  # rnnzoo words/s >= this x gensim's
TARGET_POINTS = 0.0  # rnnzoo accuracy - gensim's, in points, >= this
NONE = "—"
# Measured by issue 10 with gensim 4.4 on two idle cores, the whole 2,139,749-word prefix.
REFERENCE = ("issue 10 (gensim 4.4, two idle cores, the whole 2.14 M-word prefix): skip-gram "
             "591k words/s (18.1 s), 8.1%; CBOW 1.92M words/s (5.6 s), 4.6% (+-0.3 points "
             "between seeds)")


class BadInput(Exception):
    """A flag, corpus or file that cannot be used: one `error:` line, exit status 2."""


# ----------------------------------------------------------------------------- the workers


def write_text(corpus: str, path) -> dict:
    """Writes the training split of `corpus`, as rnnzoo reads it, to `path` (its words joined by
    single spaces); returns `{"words", "chars"}`. Imports TensorFlow (through TFDS)."""
    from rnnzoo.data import corpora
    from rnnzoo.data.tokenize import word_tokens

    words = word_tokens(corpora.load_text(corpus, "train"))
    text = " ".join(words)
    _write_atomic(path, text)
    return dict(words=len(words), chars=len(text))


def train_gensim(text_path, questions_path, *, model: str, seed: int, epochs: int = EPOCHS,
                 workers: int | None = None, restrict_vocab: int = RESTRICT_VOCAB,
                 sentence_length: int = SENTENCE_LENGTH) -> dict:
    """gensim's Word2Vec on `text_path` (text8-like: words separated by spaces), timed: the
    vocabulary, then training alone; then the analogy accuracy. Returns the record's fields."""
    import gensim
    import numpy as np
    from gensim.models.word2vec import Text8Corpus, Word2Vec

    sentences = Text8Corpus(str(text_path), max_sentence_length=sentence_length)
    w2v = Word2Vec(**GENSIM_ARGS, sg=1 if model == "skipgram" else 0, epochs=epochs,
                   workers=workers or os.cpu_count(), seed=seed)
    start = time.perf_counter()
    w2v.build_vocab(sentences)
    vocab_seconds = time.perf_counter() - start
    words = w2v.corpus_total_words
    start = time.perf_counter()
    trained, raw = w2v.train(sentences, total_examples=w2v.corpus_count,
                             total_words=words, epochs=w2v.epochs)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    _, sections = w2v.wv.evaluate_word_analogies(str(questions_path),
                                                 restrict_vocab=restrict_vocab)
    eval_seconds = time.perf_counter() - start
    return dict(
        words=words, epochs=epochs, words_per_sec=words * epochs / train_seconds,
        train_seconds=train_seconds, vocab_seconds=vocab_seconds, eval_seconds=eval_seconds,
        trained_words=trained, raw_words=raw, vocab_size=len(w2v.wv),
        workers=w2v.workers, alpha=w2v.alpha, min_alpha=w2v.min_alpha,
        **gensim_accuracy(sections), gensim=gensim.__version__, numpy=np.__version__)


def gensim_accuracy(sections: list[dict]) -> dict:
    """Total, semantic (sections not named `gram*`) and syntactic (`gram*`) accuracy of
    `evaluate_word_analogies`' sections, each correct / answered (0.0 when none was)."""
    sections = [s for s in sections if s["section"] != "Total accuracy"]
    groups = {"analogy_accuracy": sections,
              "analogy_semantic": [s for s in sections if not s["section"].startswith("gram")],
              "analogy_syntactic": [s for s in sections if s["section"].startswith("gram")]}
    result = {}
    for key, group in groups.items():
        correct = sum(len(s["correct"]) for s in group)
        answered = correct + sum(len(s["incorrect"]) for s in group)
        result[key] = correct / answered if answered else 0.0
    result["analogy_evaluated"] = sum(len(s["correct"]) + len(s["incorrect"]) for s in sections)
    return result


def worker(args) -> int:
    """`--worker=text|gensim`: the job, its result written as JSON to `--result`."""
    from rnnzoo.data.errors import CorpusError

    try:
        if args.worker == "text":
            result = write_text(args.corpus, args.text)
        else:
            result = train_gensim(args.text, args.questions, model=args.models, seed=args.seeds,
                                  epochs=args.epochs, workers=args.workers)
    except (CorpusError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _write_atomic(args.result, json.dumps(result) + "\n")
    return 0


# ------------------------------------------------------------------------------------ runs


def _subprocess(argv: list[str], log_path: pathlib.Path) -> tuple[int, float]:
    """Runs `argv` with the environment passed through, its output appended to `log_path`;
    returns `(exit status, wall-clock seconds)`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as out:
        out.write("$ " + " ".join(argv) + "\n")
        out.flush()
        start = time.perf_counter()
        returncode = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=os.environ,
                                    check=False).returncode
    return returncode, time.perf_counter() - start


def _error_line(log_path: pathlib.Path, returncode: int) -> str:
    """The last `error:` line of a log, else its last line, else the exit status."""
    lines = [line for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors[-1] if errors else lines[-1] if lines else "") or f"exit status {returncode}"


def _worker_argv(mode: str, result: pathlib.Path, **flags) -> list[str]:
    return [sys.executable, str(pathlib.Path(__file__).resolve()), f"--worker={mode}",
            f"--result={result}", *(f"--{k}={v}" for k, v in flags.items())]


def prepare_text(corpus: str, out_dir: pathlib.Path, log) -> dict:
    """The training text of `corpus`, written by `--worker=text`; raises BadInput when the
    corpus cannot be had (the worker's `error:` line)."""
    text = out_dir / "text" / f"{corpus.replace('/', '_')}.train.txt"
    result = out_dir / "text" / f"{corpus.replace('/', '_')}.json"
    log_path = out_dir / "logs" / "text.log"
    result.unlink(missing_ok=True)
    returncode, _ = _subprocess(_worker_argv("text", result, corpus=corpus, text=text), log_path)
    if returncode != 0 or not result.exists():
        message = _error_line(log_path, returncode)
        raise BadInput(message.removeprefix("error:").strip())
    info = json.loads(result.read_text(encoding="utf-8"))
    log(f"text: the train split of {corpus} as rnnzoo reads it, {info['words']:,} words -> "
        f"{text}")
    return dict(info, path=str(text))


def run_gensim(model: str, seed: int, epochs: int, text: dict, questions, out_dir, log, *,
               workers: int | None = None) -> dict:
    name = f"gensim-{model}-s{seed}"
    result = out_dir / "gensim" / f"{model}-s{seed}.json"
    log_path = out_dir / "gensim" / f"{model}-s{seed}.log"
    log(f"{name}: training (log: {log_path})")
    result.unlink(missing_ok=True)
    argv = _worker_argv("gensim", result, text=text["path"], questions=questions, models=model,
                        seeds=seed, epochs=epochs, workers=workers or os.cpu_count())
    returncode, seconds = _subprocess(argv, log_path)
    record = dict(framework="gensim", log=str(log_path), wall_clock_seconds=seconds,
                  returncode=returncode)
    if returncode != 0 or not result.exists():
        record["error"] = _error_line(log_path, returncode)
    else:
        record.update(json.loads(result.read_text(encoding="utf-8")))
        if record["words"] != text["words"]:
            log(f"{name}: warning: gensim read {record['words']:,} words, rnnzoo's text has "
                f"{text['words']:,}")
    return record


def rnnzoo_dir(out_dir, model: str, seed: int) -> pathlib.Path:
    return pathlib.Path(out_dir) / f"{MODELS[model]}-s{seed}"


def run_rnnzoo(model: str, seed: int, epochs: int, corpus: str, text: dict, out_dir, log, *,
               reuse: bool = False, workers: int | None = None) -> dict:
    path = rnnzoo_dir(out_dir, model, seed)
    argv = [f"--preset={MODELS[model]}", f"--seed={seed}", f"--workdir={path}",
            f"--workers={workers or os.cpu_count()}"]
    if epochs != EPOCHS:
        argv.append(f"--num_epochs={epochs}")
    if corpus != "text8/prefix":
        argv.append(f"--corpus={corpus}")
    record = dict(framework="rnnzoo", workdir=str(path), command="python train.py " + " ".join(
        argv))
    if reuse and finished(path, model, seed, epochs, corpus):
        log(f"{path.name}: finished, reused (--reuse)")
        record.update(json.loads((path / WALL_CLOCK).read_text(encoding="utf-8")), reused=True)
    else:
        if path.exists():
            log(f"{path.name}: removing the old run directory {path}")
            shutil.rmtree(path)
        path.mkdir(parents=True)
        log(f"{path.name}: training: {record['command']} (log: {path / 'train.log'})")
        returncode, seconds = _subprocess([sys.executable, str(REPO / "train.py"), *argv],
                                          path / "train.log")
        clock = dict(wall_clock_seconds=seconds, returncode=returncode)
        _write_atomic(path / WALL_CLOCK, json.dumps(clock) + "\n")
        record.update(clock)
        if returncode != 0:
            record["error"] = _error_line(path / "train.log", returncode)
            return record
    try:
        record.update(read_rnnzoo(path, text["words"], epochs))
    except (OSError, ValueError, KeyError) as e:
        record["error"] = f"{path}: {e}"
    return record


def finished(path: pathlib.Path, model: str, seed: int, epochs: int, corpus: str) -> bool:
    """True if `path` holds a finished rnnzoo run of this model, seed, epochs and corpus that
    this script trained (its wall-clock recorded)."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        clock = json.loads((path / WALL_CLOCK).read_text(encoding="utf-8"))
        epochs_done = [r.get("epoch") for r in _read_jsonl(path / "metrics.jsonl")]
    except (OSError, ValueError):
        return False
    return (clock.get("returncode") == 0 and config.get("seed") == seed
            and config.get("num_epochs") == epochs and config.get("corpus") == corpus
            and config.get("architecture") == model and epochs in epochs_done)


def read_rnnzoo(path, words: int, epochs: int) -> dict:
    """The record fields of a finished rnnzoo run: words/s over the epochs' seconds (the
    training text's `words`), rnnzoo's own words/s, and the last record's analogies."""
    records = [r for r in _read_jsonl(pathlib.Path(path) / "metrics.jsonl") if "epoch" in r]
    if not records or records[-1]["epoch"] < epochs:
        raise ValueError(f"metrics.jsonl reaches epoch {records[-1]['epoch'] if records else 0}"
                         f", not {epochs}")
    records = records[-epochs:]
    seconds = sum(r["seconds"] for r in records)
    last = records[-1]
    if "analogy_accuracy" not in last:
        raise ValueError("no analogy accuracy in the last record (is questions-words.txt in "
                         "$RNNZOO_DATA_DIR?)")
    return dict(
        words=words, epochs=len(records), words_per_sec=words * len(records) / seconds,
        train_seconds=seconds,
        reported_words_per_sec=sum(r["words_per_sec"] * r["seconds"] for r in records) / seconds,
        loss=last.get("loss"),
        **{k: last[k] for k in ("analogy_accuracy", "analogy_semantic", "analogy_syntactic",
                                "analogy_evaluated") if k in last})


def _read_jsonl(path) -> list[dict]:
    lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# --------------------------------------------------------------------------------- tables


def _median(records: list[dict], key: str) -> float | None:
    values = [r[key] for r in records if r.get(key) is not None]
    return statistics.median(values) if values else None


def _spread(records: list[dict], key: str, fmt) -> str:
    """The median over the records, with `(min–max)` when there are several values."""
    values = [r[key] for r in records if r.get(key) is not None]
    if not values:
        return NONE
    text = fmt(statistics.median(values))
    if len(values) > 1:
        text += f" ({fmt(min(values))}–{fmt(max(values))})"
    return text


def _count(x: float) -> str:
    return f"{x:,.0f}"


def _seconds(x: float | None) -> str:
    return NONE if x is None else f"{x:.1f}"


def _percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def comparison(records: list[dict], model: str) -> tuple[float | None, float | None]:
    """rnnzoo's median words/s over gensim's, and its median analogy accuracy minus gensim's in
    points (None where either side has no value)."""
    by = {f: [r for r in records if r["model"] == model and r["framework"] == f]
          for f in FRAMEWORKS}
    speed = [_median(by[f], "words_per_sec") for f in FRAMEWORKS]
    accuracy = [_median(by[f], "analogy_accuracy") for f in FRAMEWORKS]
    ratio = speed[1] / speed[0] if None not in speed and speed[0] else None
    points = 100 * (accuracy[1] - accuracy[0]) if None not in accuracy else None
    return ratio, points


def table(records: list[dict]) -> str:
    """The markdown table of the runs' records (fields as `word2vec_bench.jsonl`'s)."""
    header = ["model", "framework", "words/s", "train s", "command s (wall-clock)",
              "analogies: total / semantic / syntactic", "words/s vs gensim",
              "accuracy vs gensim"]
    lines = [_row(*header), "|" + "---|" * len(header)]
    models = list(dict.fromkeys(r["model"] for r in records))
    for model in models:
        ratio, points = comparison(records, model)
        for framework in FRAMEWORKS:
            runs = [r for r in records if r["model"] == model and r["framework"] == framework]
            if not runs:
                continue
            label = framework
            if framework == "gensim" and any(r.get("gensim") for r in runs):
                label += " " + next(r["gensim"] for r in runs if r.get("gensim"))
            accuracy = " / ".join([_spread(runs, "analogy_accuracy", _percent)] + [
                _percent(v) if v is not None else NONE
                for v in (_median(runs, "analogy_semantic"), _median(runs, "analogy_syntactic"))])
            versus = [NONE, NONE]
            if framework == "rnnzoo":
                versus = [NONE if ratio is None else f"{ratio:.2f}x",
                          NONE if points is None else f"{points:+.1f} points"]
            lines.append(_row(model, label, _spread(runs, "words_per_sec", _count),
                              _seconds(_median(runs, "train_seconds")),
                              _seconds(_median(runs, "wall_clock_seconds")), accuracy, *versus))
    return "\n".join(lines)


def target_lines(records: list[dict]) -> list[str]:
    lines = []
    for model in dict.fromkeys(r["model"] for r in records):
        ratio, points = comparison(records, model)
        speed = ("not measured" if ratio is None else
                 f"{ratio:.2f}x ({'met' if ratio >= TARGET_SPEED else 'NOT met'})")
        accuracy = ("not measured" if points is None else
                    f"{points:+.1f} points ({'met' if points >= TARGET_POINTS else 'NOT met'})")
        lines.append(f"- {model}: words/s {speed}; analogy accuracy {accuracy}")
    return lines


def report(records: list[dict], *, seeds: list[int], epochs: int, corpus: str,
           words: int | None, workers: int | None = None) -> str:
    """The whole printed text: machine, settings, table, targets, failures."""
    failed = [r for r in records if r.get("error")]
    text = [f"machine: {machine()}", f"versions: {versions()}",
            f"text: the train split of {corpus} as rnnzoo reads it"
            + (f", {words:,} words" if words else "")
            + f"; {epochs} epoch{'s' if epochs > 1 else ''}; seed"
            + ("s " if len(seeds) > 1 else " ") + ", ".join(map(str, seeds))
            + ("; median over the seeds (min–max)" if len(seeds) > 1 else ""),
            f"words/s: the text's words x epochs / train s (gensim: model.train; rnnzoo: the "
            f"epochs' seconds in metrics.jsonl); both with {workers or os.cpu_count()} "
            f"worker threads (gensim's workers, rnnzoo's --workers); "
            f"analogies: restrict_vocab={RESTRICT_VOCAB:,}",
            "", table(records), "",
            f"targets (issue 10): rnnzoo words/s >= {TARGET_SPEED}x gensim's, analogy accuracy "
            ">= gensim's",
            *target_lines(records),
            f"reference, {REFERENCE}"]
    if failed:
        text += ["", "failed runs (shown as —):"]
        text += [f"- {r['framework']} {r['model']} seed {r['seed']}: {r['error']}"
                 for r in failed]
    return "\n".join(text) + "\n"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    return f"{cpu}, {os.cpu_count()} cores; {platform.platform()}"


def versions() -> str:
    """Python and the installed tensorflow, gensim and numpy (without importing them)."""
    found = [f"Python {platform.python_version()}"]
    for label, names in (("TensorFlow", ("tensorflow", "tensorflow-cpu")), ("gensim", ("gensim",)),
                         ("NumPy", ("numpy",))):
        version = "not installed"
        for name in names:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                version = importlib.metadata.version(name)
                break
        found.append(f"{label} {version}")
    return ", ".join(found)


# ------------------------------------------------------------------------------------ main


class _Parser(argparse.ArgumentParser):
    """Bad flags: one `error:` line on stderr, exit status 2 (no usage block)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def parse(argv) -> argparse.Namespace:
    parser = _Parser(description=__doc__.split("\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="skipgram,cbow",
                        help=f"comma list of {', '.join(MODELS)}")
    parser.add_argument("--seeds", default="0", help="comma list of seeds (integers >= 0)")
    parser.add_argument("--epochs", default=str(EPOCHS),
                        help=f"epochs for both (default {EPOCHS}: the presets')")
    parser.add_argument("--corpus", default="text8/prefix", help="rnnzoo corpus name")
    parser.add_argument("--workers", default=str(os.cpu_count()),
                        help="threads of both: gensim's workers, rnnzoo's --workers "
                             "(default: the machine's cores)")
    parser.add_argument("--out_dir", default="runs/word2vec_bench",
                        help="run directories, logs, the text and word2vec_bench.jsonl")
    parser.add_argument("--markdown", default=None, help="also write the report to this file")
    parser.add_argument("--reuse", action="store_true",
                        help="read back a finished rnnzoo run instead of training it again")
    # The workers (one process per job): --worker=text|gensim --result=FILE and --text;
    # gensim also reads --questions, --models (one), --seeds (one) and --epochs.
    parser.add_argument("--worker", choices=("text", "gensim"), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--text", help=argparse.SUPPRESS)
    parser.add_argument("--questions", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    args.models = [m for m in args.models.split(",") if m]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown or not args.models:
        parser.error(f"--models: unknown model(s) {', '.join(map(repr, unknown)) or 'none'}; "
                     f"choose from {', '.join(MODELS)}, got {','.join(args.models)!r}")
    args.seeds = [_int_flag(parser, "seeds", s, 0, args.seeds) for s in args.seeds.split(",")]
    args.epochs = _int_flag(parser, "epochs", args.epochs, 1)
    args.workers = _int_flag(parser, "workers", args.workers, 1)
    if args.worker == "gensim":
        if len(args.models) != 1 or len(args.seeds) != 1:
            parser.error("a worker runs one model and one seed")
        args.models, args.seeds = args.models[0], args.seeds[0]
    return args


def _int_flag(parser, name: str, text: str, minimum: int, whole: str | None = None) -> int:
    """`text` as an integer >= `minimum`, else the parser's one-line error naming the flag and
    its value (`whole`: the full flag value, when `text` is one item of a comma list)."""
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        kind = "a comma list of integers" if whole is not None else "an integer"
        parser.error(f"--{name} must be {kind} >= {minimum}, got {whole or text!r}")
    return value


def check_inputs(corpus: str) -> pathlib.Path:
    """The questions file; raises BadInput for an unknown corpus or a missing questions file
    (rnnzoo reads questions-words.txt from $RNNZOO_DATA_DIR, and so does this script)."""
    from rnnzoo.data import corpora  # no TensorFlow yet

    if corpus not in corpora.corpus_names():
        raise BadInput(f"--corpus: unknown corpus {corpus!r}; choose one of "
                       f"{', '.join(corpora.corpus_names())}")
    data_dir = os.environ.get("RNNZOO_DATA_DIR")
    if not data_dir:
        raise BadInput(f"$RNNZOO_DATA_DIR is not set: the benchmark needs {QUESTIONS_FILE} "
                       "there (rnnzoo reads its analogy questions from it)")
    questions = pathlib.Path(data_dir).resolve() / QUESTIONS_FILE
    if not questions.is_file():
        raise BadInput(f"{questions}: file not found ($RNNZOO_DATA_DIR must hold "
                       f"{QUESTIONS_FILE}, the analogy questions)")
    return questions


def main(argv=None) -> int:
    args = parse(argv)
    if args.worker:
        return worker(args)
    log = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    out_dir = pathlib.Path(args.out_dir).resolve()
    try:
        questions = check_inputs(args.corpus)
        if out_dir.exists() and not out_dir.is_dir():
            raise BadInput(f"--out_dir: {out_dir} is not a directory")
        out_dir.mkdir(parents=True, exist_ok=True)
        text = prepare_text(args.corpus, out_dir, log)
    except BadInput as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    records = []
    for seed in args.seeds:
        for model in args.models:
            for framework in FRAMEWORKS:
                if framework == "gensim":
                    record = run_gensim(model, seed, args.epochs, text, questions, out_dir, log,
                                        workers=args.workers)
                else:
                    record = run_rnnzoo(model, seed, args.epochs, args.corpus, text, out_dir,
                                        log, reuse=args.reuse, workers=args.workers)
                record = dict(model=model, seed=seed, corpus=args.corpus, started=started,
                              **record)
                records.append(record)
                with open(out_dir / RESULTS_FILE, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
                log(_summary(record))

    text = report(records, seeds=args.seeds, epochs=args.epochs, corpus=args.corpus,
                  words=text["words"], workers=args.workers)
    print(text, end="")
    if args.markdown:
        _write_atomic(args.markdown, text)
    return 1 if any(r.get("error") for r in records) else 0


def _summary(record: dict) -> str:
    name = f"{record['framework']} {record['model']} seed {record['seed']}"
    if record.get("error"):
        return f"{name}: failed: {record['error']}"
    return (f"{name}: {record['words_per_sec']:,.0f} words/s, train {record['train_seconds']:.1f}"
            f" s, command {record['wall_clock_seconds']:.1f} s, analogies "
            f"{record['analogy_accuracy']:.1%}")


def _write_atomic(path, text: str) -> None:
    """Writes `text` to `path` through a temporary file in the same directory."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


if __name__ == "__main__":
    sys.exit(main())
