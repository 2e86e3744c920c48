"""absl flags of the command lines: a task's config as flags, and one way to report bad ones.

`train.py` reads `--model` and `--preset` first (`peek`), then defines only the flags of that
model's task (`define_config_flags`), with the entry's and preset's values as the defaults
`--helpfull` shows; a flag of another task is then an unknown flag.

Every CLI (`train.py`, `export.py`, `python -m rnnzoo.generate`, `python -m rnnzoo.plot`) parses
with `flags_parser(...)`: a bad flag or an unexpected argument ends with one `error: ...` line and
a pointer to `--helpfull`, exit status 1, instead of absl's page of flag help.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys
from collections.abc import Callable

from absl import flags

from rnnzoo.config import ConfigError, TrainConfig

# Fields that are not flags: `task` follows from the model, and `--model` picks the zoo entry.
NOT_FLAGS = ("task", "model")


def peek(argv: list[str], name: str) -> str | None:
    """The value of `--name=V` or `--name V` in `argv` (the last one wins), before parsing."""
    value = None
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "--":
            break
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def define_config_flags(config_class: type[TrainConfig], defaults: dict | None = None,
                        flag_values=flags.FLAGS) -> None:
    """One flag per field of `config_class` (but `NOT_FLAGS`), help from the field's metadata."""
    defaults = defaults or {}
    for field in dataclasses.fields(config_class):
        name = field.name
        if name in NOT_FLAGS:
            continue
        default = defaults.get(name, field.default if field.default is not dataclasses.MISSING
                               else field.default_factory())
        help_ = field.metadata.get("help") or name.replace("_", " ").capitalize() + "."
        choices = field.metadata.get("choices")
        if choices and all(isinstance(c, str) for c in choices):
            flags.DEFINE_enum(name, default, list(choices), help_, flag_values=flag_values)
        elif isinstance(default, bool):
            flags.DEFINE_bool(name, default, help_, flag_values=flag_values)
        elif isinstance(default, int):
            flags.DEFINE_integer(name, default, help_, flag_values=flag_values)
        elif isinstance(default, float):
            flags.DEFINE_float(name, default, help_, flag_values=flag_values)
        elif isinstance(default, tuple):
            flags.DEFINE_list(name, list(default), help_, flag_values=flag_values)
        else:
            flags.DEFINE_string(name, default, help_, flag_values=flag_values)


def explicit_values(config_class: type[TrainConfig], flag_values=flags.FLAGS) -> dict:
    """The fields given explicitly on the command line, with their values."""
    values = {}
    for field in dataclasses.fields(config_class):
        if field.name not in NOT_FLAGS and flag_values[field.name].present:
            value = flag_values[field.name].value
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return values


def check_directory_flag(name: str, path) -> None:
    """Raises `ConfigError` when `--name=path` cannot be a directory: the path, or a folder
    above it, exists and is not a directory. A missing path is fine (it is created)."""
    if path is None:
        return
    path = pathlib.Path(path)
    for where in (path, *path.parents):
        if where.exists() or where.is_symlink():
            if not where.is_dir():
                what = "is" if where == path else f"is inside {where}, which is"
                raise ConfigError(f"--{name}={path} {what} not a directory")
            return


def flags_parser(help_command: str | Callable[[list[str]], str], *, lists: str = "the flags",
                 positional: bool = False, flag_values=flags.FLAGS):
    """A `flags_parser` for `absl.app.run`: bad input ends with one `error:` line.

    Args:
        help_command: the command that lists the flags, e.g. "python export.py --helpfull", or a
            function of argv returning it (train.py's depends on `--model`).
        lists: what that command lists, for the pointer line.
        positional: whether arguments that are not flags are allowed (they are passed to main);
            if not, one is an error.

    Returns a function `argv -> argv left after the flags`. A flag absl cannot parse (unknown,
    of the wrong type, out of its enum, a required one missing) or an unexpected argument exits
    with status 1 and two lines on stderr: `error: <what and which flag>`, then where the flags
    are listed. `--help` and `--helpfull` still print absl's help.
    """

    def parse(argv: list[str]) -> list[str]:
        command = help_command(argv) if callable(help_command) else help_command
        hint = f"(`{command}` lists {lists})"
        try:
            rest = flag_values(argv)
        except flags.Error as e:
            sys.exit(f"error: {e}\n{hint}")
        if not positional and len(rest) > 1:
            sys.exit(f"error: unexpected arguments {rest[1:]}: every argument is a --flag\n{hint}")
        return rest

    return parse


__all__ = ["NOT_FLAGS", "check_directory_flag", "define_config_flags", "explicit_values",
           "flags_parser", "peek"]
