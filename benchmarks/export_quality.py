"""Size and validation perplexity of model.tflite, float32 vs dynamic-range vs float16 weights.

    python benchmarks/export_quality.py --workdir=runs/lstm --data_dir=../shared/datasets
    python benchmarks/export_quality.py --workdir=runs/lstm --text_file=heldout.txt

Restores the run's model from its directory (as export.py does), converts its `step` once per
quantization, and runs each file in the stock LiteRT runtime over the held-out characters one
step at a time, the way a phone would. Prints a markdown table with the ratios against the
float32 file measured in the same run; the run's own `metrics.jsonl` validation perplexity
(batched, consecutive rows) is printed beside it for reference.
"""

import time

from absl import app, flags, logging

from rnnzoo.export.contract import QUANTIZE_MODES

flags.DEFINE_string("workdir", None, "Run directory.", required=True)
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix (default: the run's latest).")
flags.DEFINE_string("data_dir", None, "Directory of the original corpus files (default: "
                    "$RNNZOO_DATA_DIR); the corpus' validation split is the held-out text.")
flags.DEFINE_string("tfds_dir", None, "TFDS data directory.")
flags.DEFINE_string("text_file", None, "Held-out text to use instead of the validation split.")
flags.DEFINE_integer("max_chars", 0, "Score at most this many characters (0: all).")
flags.DEFINE_list("quantize", list(QUANTIZE_MODES), "Modes to compare; the first is the "
                  "baseline.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    from rnnzoo.export import exporter, quality
    from rnnzoo.tasks.char_lm import load_trained

    trained = load_trained(FLAGS.workdir, FLAGS.checkpoint)
    run, config, vocab, model = trained.run, trained.config, trained.vocab, trained.model
    checkpoint = trained.checkpoint
    if FLAGS.text_file:
        with open(FLAGS.text_file, encoding="utf-8") as f:
            ids, source = vocab.encode(list(f.read())), FLAGS.text_file
    else:
        from rnnzoo.data.char_data import load_char_data

        data = load_char_data(config.corpus, vocab=vocab, source_dir=FLAGS.data_dir,
                              tfds_dir=FLAGS.tfds_dir)
        ids, source = data.val_ids, f"{config.corpus} validation split"
    ids = ids[:FLAGS.max_chars or None]

    start = time.perf_counter()
    rows = quality.compare_quantizations(model, ids, modes=FLAGS.quantize)
    seconds = time.perf_counter() - start
    position = (("step", exporter.checkpoint_number(checkpoint)) if config.by_steps
                else ("epoch", exporter.checkpoint_epoch(checkpoint)))
    metrics, where = exporter.val_perplexity_from_metrics(run, *position)
    print(f"{run.path} ({checkpoint}), {config.model} ({config.cell}) x{config.num_layers}, "
          f"{config.num_hiddens} units, vocabulary {len(vocab)}; held-out: {source}")
    print(quality.format_table(rows, len(ids)))
    print(f"metrics.jsonl val_perplexity: {metrics} ({where}); measured in {seconds:.1f} s")


if __name__ == "__main__":
    app.run(main)
