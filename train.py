"""Trains a character language model.

    python train.py --model=lstm                       # d2l-zh's LSTM on the Jay Chou lyrics
    python train.py --preset=d2l_time_machine_lstm2    # d2l's 2-layer LSTM on The Time Machine
    python train.py --model=gru --workdir=runs/gru --num_epochs=20

Every field of `rnnzoo.config.TrainConfig` is a flag of the same name (see --helpfull). A preset
sets several fields at once; flags given on the command line override it.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow is first imported.

from absl import app, flags, logging  # noqa: E402

from rnnzoo import flags_util  # noqa: E402
from rnnzoo.config import PRESETS, ConfigError  # noqa: E402

flags_util.define_config_flags()
flags.DEFINE_enum("preset", None, sorted(PRESETS), "A seed run's settings (flags override it).")
flags.DEFINE_string("workdir", None, "Run directory (default: runs/<preset or model>).")
flags.DEFINE_bool("resume", False, "Continue the run in --workdir from its last checkpoint.")
flags.DEFINE_string("data_dir", None, "Directory holding the original corpus files, for offline "
                    "use (default: $RNNZOO_DATA_DIR; else they are downloaded).")
flags.DEFINE_string("tfds_dir", None, "TFDS data directory for prepared corpora "
                    "(default: $RNNZOO_TFDS_DIR, else ~/tensorflow_datasets).")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # TF's and TFDS' INFO lines drown the epoch lines.
    from rnnzoo.data.errors import CorpusError
    from rnnzoo.run_dir import RunDirError
    from rnnzoo.training.char_lm import TrainingDiverged, train

    try:
        config = flags_util.config_from_flags(FLAGS.preset).validate()
    except ConfigError as e:
        raise app.UsageError(str(e)) from None
    workdir = FLAGS.workdir or f"runs/{FLAGS.preset or config.model}"
    try:
        train(config, workdir, resume=FLAGS.resume, source_dir=FLAGS.data_dir,
              tfds_dir=FLAGS.tfds_dir)
    except (CorpusError, RunDirError, ValueError) as e:
        sys.exit(f"error: {e}")
    except TrainingDiverged:
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
