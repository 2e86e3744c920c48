"""Exports a trained run: SavedModel, TFLite and model.json, rebuilt from the run directory alone.

The run's `config.json` names its task (`rnnzoo.zoo`), whose exporter writes the files: a
character LM's SavedModel, TFLite file and model.json, or a word2vec run's word vectors
(vectors.txt, vectors.bin, projector/, saved_model/, model.json; `rnnzoo.export.word_vectors`).

    python export.py --workdir=runs/lstm                       # -> runs/lstm/export/
    python export.py --workdir=runs/lstm --quantize=dynamic --output=exports/lstm_int8
    python export.py --workdir=runs/lstm --checkpoint=runs/lstm/checkpoints/ckpt-40
    python export.py --workdir=runs/skipgram --tsne            # word vectors, and tsne.png

The export is atomic: a failed export leaves nothing behind, and an existing export is replaced
only once the new one is complete. See `rnnzoo.export` and the README's "Exporting" section.
"""

import sys

from absl import app, flags, logging

from rnnzoo import flags_util
from rnnzoo.config import ConfigError
from rnnzoo.export.contract import QUANTIZE_MODES

flags.DEFINE_string("workdir", None, "Run directory to export (config.json, vocab.json, "
                    "checkpoints/).", required=True)
flags.DEFINE_string("output", None, "Export directory (default: <workdir>/export).")
flags.DEFINE_enum("quantize", "none", list(QUANTIZE_MODES), "Weights of model.tflite: none "
                  "(float32), dynamic (int8 dynamic-range) or float16. The SavedModel stays "
                  "float32.")
flags.DEFINE_string("checkpoint", None, "Checkpoint prefix or directory to export (default: the "
                    "run's latest).")
flags.DEFINE_bool("compute_val_perplexity", False, "Compute the validation perplexity from the "
                  "corpus instead of reading it from metrics.jsonl.")
flags.DEFINE_string("data_dir", None, "With --compute_val_perplexity: directory of the original "
                    "corpus files (default: $RNNZOO_DATA_DIR).")
flags.DEFINE_string("tfds_dir", None, "With --compute_val_perplexity: TFDS data directory.")
flags.DEFINE_bool("tsne", False, "word2vec runs: also draw tsne.png, the t-SNE map of the 500 "
                  "most frequent words (needs scikit-learn; takes some seconds).")
FLAGS = flags.FLAGS


def main(argv):
    del argv  # Only flags: flags_util.flags_parser refuses other arguments.
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines about saving

    # Bad input ends with one `error:` line; any other exception is a bug and keeps its traceback.
    try:
        flags_util.check_directory_flag("output", FLAGS.output)
        flags_util.check_directory_flag("tfds_dir", FLAGS.tfds_dir)
    except ConfigError as e:
        sys.exit(f"error: {e}")
    from rnnzoo import zoo  # TensorFlow
    from rnnzoo.data.errors import CorpusError
    from rnnzoo.export.exporter import ExportError
    from rnnzoo.run_dir import RunDirError

    try:
        zoo.export_run(FLAGS.workdir, FLAGS.output, quantize=FLAGS.quantize,
                       checkpoint=FLAGS.checkpoint,
                       compute_val_perplexity=FLAGS.compute_val_perplexity,
                       source_dir=FLAGS.data_dir, tfds_dir=FLAGS.tfds_dir, tsne=FLAGS.tsne)
    except (ConfigError, CorpusError, ExportError, RunDirError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    app.run(main, flags_parser=flags_util.flags_parser("python export.py --helpfull"))
