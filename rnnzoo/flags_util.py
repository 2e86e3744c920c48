"""absl flags generated from `TrainConfig`: one flag per field, same name, same help."""

from __future__ import annotations

import dataclasses
import inspect

from absl import flags

from rnnzoo.config import IMPLS, INITS, MODELS, PRESETS, SAMPLERS, TrainConfig

_ENUMS = {"model": MODELS, "sampler": SAMPLERS, "impl": IMPLS, "init": INITS}


def _field_help() -> dict[str, str]:
    """The trailing comment of each field in TrainConfig's source, used as the flag's help."""
    helps = {}
    for line in inspect.getsource(TrainConfig).splitlines():
        line = line.strip()
        if ":" in line and "=" in line and "#" in line and not line.startswith("#"):
            name = line.split(":", 1)[0].strip()
            helps[name] = line.split("#", 1)[1].strip()
    return helps


def define_config_flags(flag_values=flags.FLAGS) -> None:
    helps = _field_help()
    for field in dataclasses.fields(TrainConfig):
        name, default = field.name, field.default
        help_ = helps.get(name, name.replace("_", " ").capitalize() + ".")
        if name in _ENUMS:
            flags.DEFINE_enum(name, default, list(_ENUMS[name]), help_, flag_values=flag_values)
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


def config_from_flags(preset: str | None, flag_values=flags.FLAGS) -> TrainConfig:
    """Defaults, then the preset, then every flag given on the command line."""
    values = dataclasses.asdict(TrainConfig())
    values.update(PRESETS[preset] if preset else {})
    for field in dataclasses.fields(TrainConfig):
        if flag_values[field.name].present:
            values[field.name] = flag_values[field.name].value
    values["prefixes"] = tuple(values["prefixes"])
    return TrainConfig(**values)


__all__ = ["define_config_flags", "config_from_flags"]
