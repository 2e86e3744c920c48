"""Training and validation perplexity curves of one or several training runs, drawn into a PNG;
or the t-SNE map of a word2vec run's word vectors (`--tsne`).

    python -m rnnzoo.plot runs/lstm --output=curves.png
    python -m rnnzoo.plot runs/rnn runs/gru runs/lstm --labels=RNN,GRU,LSTM --output=curves.png
    python -m rnnzoo.plot runs/lstm --linear --title="LSTM, Jay Chou lyrics" --output=lstm.png

Each RUN_DIR is a run directory holding `metrics.jsonl` (one JSON record per line, see
`rnnzoo.run_dir`). Records with `train_perplexity` give the training curve (solid), records with
`val_perplexity` the validation curve (dashed, a dot at each evaluation); each run has one colour
and is labelled by its directory name, or by `--labels`. The y axis is logarithmic unless
`--linear`; `--title` adds a title.

The x axis of a run is `step` (the global training step) when every record that carries a
perplexity has one, else `epoch`. Runs whose x units differ are drawn side by side, one subplot
per unit, each with its own x label; the colours and labels stay those of the runs.

Values that are not finite numbers — the `"nan"` or `"inf"` string of a `"diverged": true`
record, or a JSON `NaN` / `Infinity` — are skipped. A point whose x is not past the previous
point of its curve (a resumed run that redid epochs or steps) replaces the points from that x on,
as the resumed run did. A last line without its newline that is not valid JSON is taken for a
record still being written (plotting a run that is training) and skipped; any other line that is
not a JSON object is an error naming the file and the line.

Word vectors: `--tsne` draws instead the t-SNE map of the `--num_words` (500) most frequent
words of one word2vec run, as the TensorFlow course's word2vec assignment did (`word_map_png`):

    python -m rnnzoo.plot runs/skipgram --tsne --output=words.png

It reads the run's latest checkpoint (TensorFlow is imported for that alone), leaves `<unk>`
out, and takes every word when the vocabulary has fewer. `python export.py --tsne` puts the same
map in the export as `tsne.png`.

The PNG is written atomically (a temporary file, then `os.replace`). Bad input ends with one
`error: ...` line and exit code 1. Drawing needs matplotlib, and t-SNE scikit-learn:
`pip install -e ".[plot]"`; `read_curves` needs neither.
"""

from __future__ import annotations

import inspect
import io
import json
import math
import os
import pathlib
import sys

from absl import app, flags

from rnnzoo import flags_util
from rnnzoo.files import write_bytes_atomic

METRICS_FILE = "metrics.jsonl"
TSNE_WORDS = 500  # the words of a t-SNE map (the TensorFlow course's)
TSNE_ITERATIONS = 5000
_X_LABELS = {"step": "training step", "epoch": "epoch"}
_SPLITS = ("train", "val")
FLAGS = flags.FLAGS


class PlotError(ValueError):
    """A run directory or its metrics cannot be plotted, or the PNG cannot be written."""


# ---------------------------------------------------------------------------- reading


def read_curves(run_dir) -> dict:
    """The perplexity curves of one run, read from `<run_dir>/metrics.jsonl`.

    Returns `{"x_unit": "step" or "epoch", "train_xs": [...], "train_ys": [...],
    "val_xs": [...], "val_ys": [...]}`: the finite `train_perplexity` and `val_perplexity`
    values in file order, each against the run's x unit (see the module docstring).
    Raises PlotError when the directory or its metrics file is missing, a line is malformed,
    or no finite perplexity is left.
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.exists():
        raise PlotError(f"{run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise PlotError(f"{run_dir} is not a run directory")
    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise PlotError(f"{run_dir} holds no {METRICS_FILE}; is it a training run directory?")

    records = [(n, r) for n, r in _read_records(path)
               if any(f"{split}_perplexity" in r for split in _SPLITS)]
    x_unit = "step" if records and all("step" in r for _, r in records) else "epoch"
    curves = {"x_unit": x_unit}
    for split in _SPLITS:
        curves[f"{split}_xs"], curves[f"{split}_ys"] = [], []
    for n, record in records:
        if x_unit not in record:
            raise PlotError(f"{path}:{n}: the record has a perplexity but no epoch (and not "
                            "every record has a step)")
        x = _x_value(record[x_unit], path, n, x_unit)
        for split in _SPLITS:
            key = f"{split}_perplexity"
            if key not in record:
                continue
            y = _perplexity(record[key], path, n, key)
            if math.isfinite(y):
                _append(curves[f"{split}_xs"], curves[f"{split}_ys"], x, y)
    if not curves["train_ys"] and not curves["val_ys"]:
        raise PlotError(f"{path} holds no finite train_perplexity or val_perplexity")
    return curves


def _read_records(path: pathlib.Path) -> list[tuple[int, dict]]:
    """(line number, record) of each non-blank line of a metrics file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PlotError(f"{path} is not UTF-8 text: {e.reason} at byte {e.start}") from e
    except OSError as e:
        raise PlotError(f"cannot read {path}: {e.strerror or e}") from e
    lines = text.split("\n")  # Not splitlines(): JSON strings may hold U+2028 and the like.
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines):  # The last line has no newline: a record still being written.
                continue
            raise PlotError(f"{path}:{n}: not valid JSON ({e.msg}, column {e.colno})") from e
        if not isinstance(record, dict):
            raise PlotError(f"{path}:{n}: not a JSON object")
        records.append((n, record))
    return records


def _x_value(value, path, n: int, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PlotError(f"{path}:{n}: {key} is {json.dumps(value)}, not a finite number")
    return value


def _perplexity(value, path, n: int, key: str) -> float:
    """A perplexity as a float: a JSON number, or a string such as "nan", "inf" or "12.5"."""
    if not isinstance(value, bool):
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    raise PlotError(f"{path}:{n}: {key} is {json.dumps(value)}, not a number")


def _append(xs: list, ys: list, x, y: float) -> None:
    """Appends (x, y); a resumed run's x at or before earlier points replaces them."""
    while xs and xs[-1] >= x:
        xs.pop()
        ys.pop()
    xs.append(x)
    ys.append(y)


# ---------------------------------------------------------------------------- drawing


def plot_runs(run_dirs, output, *, labels=None, title: str | None = None,
              log_y: bool = True, dpi: int = 150) -> pathlib.Path:
    """Draws the curves of `run_dirs` into the PNG file `output` (written atomically).

    `labels`: the legend label of each run (default: each directory's name). Runs whose x
    units differ get one subplot per unit. Returns the output path. Raises PlotError for bad
    input, when matplotlib is missing, or when the PNG cannot be written.
    """
    run_dirs = [pathlib.Path(d) for d in run_dirs]
    if not run_dirs:
        raise PlotError("no run directory given")
    if labels is None:
        labels = [os.path.basename(os.path.abspath(d)) or str(d) for d in run_dirs]
    labels = list(labels)
    if len(labels) != len(run_dirs):
        raise PlotError(f"{len(labels)} labels for {len(run_dirs)} run directories")
    all_curves = [read_curves(d) for d in run_dirs]

    try:  # The object-oriented API with the Agg canvas: no pyplot, no display, no global state.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.ticker import FuncFormatter, LogFormatter, MaxNLocator
    except ImportError as e:
        raise PlotError('matplotlib is not installed; install it with pip install -e ".[plot]"'
                        ) from e

    units = list(dict.fromkeys(c["x_unit"] for c in all_curves))  # In order of appearance.
    fig = Figure(figsize=(7.0 * len(units), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = dict(zip(units, fig.subplots(1, len(units), squeeze=False)[0]))
    legends = {unit: [] for unit in units}
    styles = {unit: set() for unit in units}
    for i, (curves, label) in enumerate(zip(all_curves, labels)):
        unit, color = curves["x_unit"], f"C{i}"
        ax = axes[unit]
        if curves["train_xs"]:
            ax.plot(curves["train_xs"], curves["train_ys"], "-", color=color, linewidth=1.6,
                    marker="o" if len(curves["train_xs"]) == 1 else None, markersize=3)
            styles[unit].add("train")
        if curves["val_xs"]:
            ax.plot(curves["val_xs"], curves["val_ys"], "--", color=color, linewidth=1.6,
                    marker="o", markersize=3)
            styles[unit].add("val")
        legends[unit].append(Line2D([], [], color=color, linewidth=1.6, label=label))

    for unit, ax in axes.items():
        handles = legends[unit]
        if "train" in styles[unit]:
            handles.append(Line2D([], [], color="0.35", linestyle="-", label="training"))
        if "val" in styles[unit]:
            handles.append(Line2D([], [], color="0.35", linestyle="--", marker="o",
                                  markersize=3, label="validation"))
        ax.legend(handles=handles, loc="best", fontsize="small")
        ax.set_xlabel(_X_LABELS[unit])
        ax.set_ylabel("perplexity")
        if log_y:  # Plain numbers (60, not 6x10^1) on the major and the labelled minor ticks.
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
            ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
        ax.xaxis.set_major_locator(MaxNLocator("auto", integer=True, steps=[1, 2, 2.5, 5, 10]))
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.12)
    if title:
        fig.suptitle(title)

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    output = pathlib.Path(output)
    try:
        write_bytes_atomic(output, buffer.getvalue())
    except OSError as e:
        raise PlotError(f"cannot write {output}: {e.strerror or e}") from e
    return output


# ------------------------------------------------------------------ word vectors: t-SNE


def frequent_ids(vocab, num_words: int = TSNE_WORDS) -> list[int]:
    """The ids of the `num_words` most frequent words of `vocab` (all if it has fewer), by count
    descending then id, never the unknown token; in id order for a vocabulary without counts."""
    counts = getattr(vocab, "counts", None)
    ids = [i for i in range(len(vocab)) if i != vocab.unk_id]
    if counts is not None:
        ids.sort(key=lambda i: (-int(counts[i]), i))
    return ids[:num_words]


def tsne_points(vectors, *, seed: int = 0):
    """float `[n, 2]`: the t-SNE map of `vectors` `[n, D]`, as the TensorFlow course drew its
    word vectors: `sklearn.manifold.TSNE(perplexity=30, n_components=2, init="pca",
    max_iter=5000)`, with `random_state=seed`. Fewer than 31 points lower the perplexity to
    `n - 1` (scikit-learn needs it below `n`); vectors of one dimension start from a random
    map (PCA cannot make two components from one). It runs on one thread: scikit-learn's
    OpenMP threads spin against any other work on the machine (500 words of 128 dimensions:
    8 s on one thread, 42 s on two of a busy 2-core machine)."""
    import numpy as np

    try:
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits  # a dependency of scikit-learn
    except ImportError as e:
        raise PlotError('scikit-learn is not installed; install it with pip install -e '
                        '".[plot]"') from e
    vectors = np.asarray(vectors, np.float64)
    n = len(vectors)
    if n < 3:
        raise PlotError(f"a t-SNE map needs at least 3 words, got {n}")
    kwargs = dict(n_components=2, perplexity=min(30.0, n - 1.0),
                  init="pca" if vectors.shape[1] >= 2 else "random", random_state=seed)
    # scikit-learn 1.5 renamed n_iter to max_iter (and 1.7 removed n_iter).
    iterations = "max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter"
    with threadpool_limits(limits=1):
        return TSNE(**kwargs, **{iterations: TSNE_ITERATIONS}).fit_transform(vectors)


def word_map_png(embeddings, vocab, *, num_words: int = TSNE_WORDS, title: str | None = None,
                 dpi: int = 100) -> bytes:
    """A PNG of the t-SNE map (`tsne_points`) of the `num_words` most frequent words
    (`frequent_ids`; `<unk>` left out), each a dot labelled with its word, as the TensorFlow
    course's word2vec assignment drew it (15 x 15 inches).

    Args:
        embeddings: `[V, D]`, row `i` the vector of `vocab`'s token `i`.
        vocab: a `WordVocabulary` (or any `Vocabulary`: then the first words by id).
        num_words: how many words (>= 3).
        title: the figure's title, if any.

    Raises PlotError for bad input, or when matplotlib or scikit-learn is missing.
    """
    if isinstance(num_words, bool) or not isinstance(num_words, int) or num_words < 3:
        raise PlotError(f"`num_words` must be an integer >= 3, got {num_words!r}")
    if len(embeddings) != len(vocab):
        raise PlotError(f"{len(embeddings)} vectors for a vocabulary of {len(vocab)} words")
    ids = frequent_ids(vocab, num_words)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise PlotError('matplotlib is not installed; install it with pip install -e ".[plot]"'
                        ) from e
    points = tsne_points([embeddings[i] for i in ids])

    fig = Figure(figsize=(15, 15), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.scatter(points[:, 0], points[:, 1], s=12)
    for (x, y), i in zip(points, ids):
        ax.annotate(vocab.tokens[i], xy=(x, y), xytext=(5, 2), textcoords="offset points",
                    ha="right", va="bottom")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"t-SNE of the {len(ids)} most frequent words")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def plot_word_map(run_dir, output, *, num_words: int = TSNE_WORDS, title: str | None = None,
                  checkpoint=None) -> pathlib.Path:
    """Draws `word_map_png` of a word2vec run's vectors (its latest checkpoint, or
    `checkpoint`) into the PNG file `output`, atomically. Raises PlotError when `run_dir` is
    not a trained word2vec run, for bad input, or when matplotlib or scikit-learn is missing.
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.exists():
        raise PlotError(f"{run_dir}: no such run directory")
    # TensorFlow: only here, so that plotting curves never imports it.
    from rnnzoo.config import ConfigError
    from rnnzoo.export.exporter import ExportError
    from rnnzoo.run_dir import RunDirError
    from rnnzoo.tasks import word2vec_export

    try:
        trained = word2vec_export.load_trained(run_dir, checkpoint)
    except (ConfigError, ExportError, RunDirError) as e:
        raise PlotError(f"--tsne draws a trained word2vec run: {e}") from e
    vocab, vectors, _ = word2vec_export.exported_rows(trained.config, trained.vocab,
                                                      trained.model.embeddings.numpy())
    png = word_map_png(vectors, vocab, num_words=num_words, title=title or (
        f"{trained.config.model} ({run_dir.name}): t-SNE of the "
        f"{len(frequent_ids(vocab, num_words))} most frequent words"))
    output = pathlib.Path(output)
    try:
        write_bytes_atomic(output, png)
    except OSError as e:
        raise PlotError(f"cannot write {output}: {e.strerror or e}") from e
    return output


# ---------------------------------------------------------------------------- command line


def _define_flags() -> None:
    """Defined only when run as a program, so that importing this module defines no flags."""
    flags.DEFINE_string("output", None, "PNG file to write, e.g. curves.png.")
    flags.DEFINE_list("labels", None, "Legend label of each run, comma-separated, in the order "
                      "of the run directories (default: the directories' names).")
    flags.DEFINE_bool("linear", False, "Linear y axis (default: logarithmic).")
    flags.DEFINE_string("title", None, "Title of the figure.")
    flags.DEFINE_bool("tsne", False, "Instead of curves: the t-SNE map of the --num_words most "
                      "frequent words of one word2vec run (needs scikit-learn).")
    flags.DEFINE_integer("num_words", TSNE_WORDS, "With --tsne: how many words.", lower_bound=3)


def main(argv) -> None:
    run_dirs = argv[1:]
    if not run_dirs:
        sys.exit("error: no run directory given; usage: python -m rnnzoo.plot RUN_DIR "
                 "[RUN_DIR ...] --output=curves.png")
    if not FLAGS.output:
        sys.exit("error: --output is required, e.g. --output=curves.png")
    if FLAGS.tsne:
        if len(run_dirs) != 1:
            sys.exit(f"error: --tsne maps the words of one run, got {len(run_dirs)} run "
                     "directories")
        try:
            output = plot_word_map(run_dirs[0], FLAGS.output, num_words=FLAGS.num_words,
                                   title=FLAGS.title)
        except PlotError as e:
            sys.exit(f"error: {e}")
        print(f"wrote {output}")
        return
    try:
        output = plot_runs(run_dirs, FLAGS.output, labels=FLAGS.labels,
                           title=FLAGS.title, log_y=not FLAGS.linear)
    except PlotError as e:
        sys.exit(f"error: {e}")
    print(f"wrote {output}")


if __name__ == "__main__":
    _define_flags()
    app.run(main, flags_parser=flags_util.flags_parser("python -m rnnzoo.plot --helpfull",
                                                       positional=True))
