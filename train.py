"""Trains a model of the zoo.

    python train.py --model=lstm                       # d2l-zh's LSTM on the Jay Chou lyrics
    python train.py --preset=d2l_time_machine_lstm2    # d2l's 2-layer LSTM on The Time Machine
    python train.py --preset=course_lstm               # the TensorFlow course's LSTM on text8
    python train.py --model=gru --workdir=runs/gru --num_epochs=20

`--model` names an entry of `rnnzoo.zoo.MODELS` and `--preset` a seed run of
`rnnzoo.zoo.PRESETS`; the flags are the fields of that model's task config (`--helpfull` with the
same `--model` / `--preset` lists them). Flags given on the command line override the preset.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Before TensorFlow is first imported.

from absl import app, flags, logging  # noqa: E402

from rnnzoo import flags_util, zoo  # noqa: E402
from rnnzoo.config import ConfigError  # noqa: E402

FLAGS = flags.FLAGS


def define_flags(argv) -> None:
    """`--model`, `--preset`, the run flags, then the chosen task's config flags."""
    model, preset = flags_util.peek(argv, "model"), flags_util.peek(argv, "preset")
    try:
        config_class = zoo.config_class(model, preset)
        defaults = zoo.base_values(model, preset)
    except ConfigError:  # Reported with the flags' own message once parsed.
        config_class, defaults = zoo.config_class(), zoo.base_values()
    flags.DEFINE_enum("model", defaults["model"], sorted(zoo.MODELS),
                      "The zoo entry to train: " + "; ".join(
                          f"{name}: {e.description}" for name, e in zoo.MODELS.items()))
    flags.DEFINE_enum("preset", None, sorted(zoo.PRESETS), "A seed run's settings (flags "
                      "override it); it names its model.")
    flags.DEFINE_string("workdir", None, "Run directory (default: runs/<preset or model>).")
    flags.DEFINE_bool("resume", False, "Continue the run in --workdir from its last checkpoint.")
    flags.DEFINE_string("data_dir", None, "Directory holding the original corpus files, for "
                        "offline use (default: $RNNZOO_DATA_DIR; else they are downloaded).")
    flags.DEFINE_string("tfds_dir", None, "TFDS data directory for prepared corpora "
                        "(default: $RNNZOO_TFDS_DIR, else ~/tensorflow_datasets).")
    flags_util.define_config_flags(config_class, defaults)


def _help_command(argv) -> str:
    """The `--helpfull` command for the model (or preset) on the command line, if it is one."""
    model, preset = flags_util.peek(argv, "model"), flags_util.peek(argv, "preset")
    if model not in zoo.MODELS and preset in zoo.PRESETS:
        return f"python train.py --preset={preset} --helpfull"
    return f"python train.py --model={model if model in zoo.MODELS else 'lstm'} --helpfull"


def main(argv):
    del argv  # Only flags: flags_util.flags_parser refuses other arguments.
    logging.set_verbosity(logging.WARNING)  # TF's and TFDS' INFO lines drown the report lines.
    from rnnzoo.data.errors import CorpusError
    from rnnzoo.run_dir import RunDirError
    from rnnzoo.training.distribute import WorkerLost
    from rnnzoo.training.loop import TrainingDiverged

    # Bad input ends with one `error:` line; any other exception is a bug and keeps its traceback.
    try:
        config = zoo.make_config(FLAGS.model, FLAGS.preset,
                                 **flags_util.explicit_values(zoo.config_class(
                                     FLAGS.model, FLAGS.preset)))
        workdir = FLAGS.workdir or f"runs/{FLAGS.preset or config.model}"
        flags_util.check_directory_flag("workdir", workdir)
        flags_util.check_directory_flag("tfds_dir", FLAGS.tfds_dir)
        zoo.task_of(config.task).train(config, workdir, resume=FLAGS.resume,
                                       source_dir=FLAGS.data_dir, tfds_dir=FLAGS.tfds_dir)
    except (ConfigError, CorpusError, RunDirError) as e:
        sys.exit(f"error: {e}")
    except (TrainingDiverged, WorkerLost) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    define_flags(sys.argv)
    app.run(main, flags_parser=flags_util.flags_parser(_help_command,
                                                       lists="the flags of that model"))
