"""Typed experiment configs: a preset name or a Python file, plus `key=value` command-line overrides.

`load_config(name_or_path)` takes either: the path of a config file, or the name of a preset shipped
in coderl_jax/configs/ (`default_cpu`, `tiny_cpu`, `grpo_cpu`, the paper-scale `qwen25_coder_*`).
A config file defines `config` (or `get_config()`) returning a dataclass instance. Overrides use
dotted paths into nested dataclasses (`optim.learning_rate=1e-5`, `steps=20`); values are parsed
according to the field's annotation (int, float, bool, str, None-able, tuples of these). An unknown
key or a value of the wrong type is a `ConfigOverrideError` that names the key.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import importlib.util
import types
import typing
from pathlib import Path
from typing import Any

from coderl_jax.errors import UserError


# the embedded default: `coderl train` (and `coderl ablate`) with no --config
DEFAULT_CONFIG = "default_cpu"

# the presets' package; imported by name at run time (it sits above train/: its presets build TrainConfigs)
PRESETS_PACKAGE = "coderl_jax.configs"


class ConfigOverrideError(UserError, ValueError):
    """A config that cannot be loaded, or an override that names no field or does not parse."""


def preset_names() -> list[str]:
    """The names `load_config` accepts besides a path."""
    return importlib.import_module(PRESETS_PACKAGE).preset_names()


def load_config(name_or_path: str | Path):
    """The config a file defines (an existing path, or anything ending in .py), else the preset of
    that name. Neither: a ConfigOverrideError listing the presets."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file() or path.suffix == ".py" or isinstance(name_or_path, Path):
        if not path.exists():
            raise ConfigOverrideError(f"{path}: config file not found (presets: {', '.join(preset_names())})")
        return load_config_file(path)
    presets = importlib.import_module(PRESETS_PACKAGE)
    try:
        return presets.get_preset(text)
    except KeyError:
        names = presets.preset_names()
        close = difflib.get_close_matches(text, names, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigOverrideError(f"--config {text!r}: neither a config file nor a preset; {hint}"
                                  f"presets: {', '.join(names)}") from None


def load_config_file(path: str | Path):
    path = Path(path)
    if not path.exists():
        raise ConfigOverrideError(f"{path}: config file not found")
    spec = importlib.util.spec_from_file_location(f"coderl_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # a trusted, user-written experiment file
    if hasattr(module, "get_config"):
        cfg = module.get_config()
    elif hasattr(module, "config"):
        cfg = module.config
    else:
        raise ConfigOverrideError(f"{path}: defines neither `config` nor `get_config()`")
    if not dataclasses.is_dataclass(cfg):
        raise ConfigOverrideError(f"{path}: `config` must be a dataclass instance, got {type(cfg).__name__}")
    return cfg


def _parse_value(key: str, text: str, annotation) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _parse_value(key, text, arg)
            except ConfigOverrideError as e:
                errors.append(str(e))
        raise ConfigOverrideError(f"override {key}={text!r}: does not parse as {annotation}")
    if annotation is bool:
        low = text.lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ConfigOverrideError(f"override {key}={text!r}: expected a bool (true/false)")
    if annotation is int:
        try:
            return int(text.replace("_", ""))
        except ValueError:
            raise ConfigOverrideError(f"override {key}={text!r}: expected an int") from None
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigOverrideError(f"override {key}={text!r}: expected a float") from None
    if annotation is str:
        return text
    if origin in (tuple, list):
        try:
            raw = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raw = [part for part in text.split(",") if part]
        if not isinstance(raw, (list, tuple)):
            raw = [raw]
        inner = args[0] if args else str
        items = [_parse_value(key, str(x), inner) for x in raw]
        return tuple(items) if origin is tuple else items
    if annotation is Any:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    raise ConfigOverrideError(f"override {key}: fields of type {annotation} cannot be set from the command line")


def apply_overrides(cfg, overrides: list[str]):
    """A copy of `cfg` with each `dotted.key=value` applied (type-checked)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigOverrideError(f"override {item!r}: expected key=value")
        key, text = item.split("=", 1)
        cfg = _set(cfg, key.strip().split("."), text.strip(), key.strip())
    return cfg


def _set(obj, path: list[str], text: str, full_key: str):
    fields = {f.name: f for f in dataclasses.fields(obj)}
    name = path[0]
    if name not in fields:
        close = difflib.get_close_matches(name, fields, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; fields: {', '.join(sorted(fields))}"
        raise ConfigOverrideError(f"override {full_key}: unknown key {name!r} in {type(obj).__name__}{hint}")
    current = getattr(obj, name)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigOverrideError(f"override {full_key}: {name!r} is not a nested config")
        return dataclasses.replace(obj, **{name: _set(current, path[1:], text, full_key)})
    hints = typing.get_type_hints(type(obj))
    if dataclasses.is_dataclass(current):
        raise ConfigOverrideError(f"override {full_key}: {name!r} is a nested config; set one of its fields")
    return dataclasses.replace(obj, **{name: _parse_value(full_key, text, hints[name])})

