"""Configs that are data: training recipes, pre-training defaults and demo / world sizes are
YAML files under negbench/data/, so a new preset is a new file, not a code change."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from negbench.core.errors import ConfigError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (an empty file is an empty mapping)."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    doc = {} if doc is None else doc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(doc).__name__}")
    return doc


def config_names(folder: str) -> list[str]:
    """The presets shipped in data/<folder>/ (file names without .yaml)."""
    return sorted(p.stem for p in (DATA_DIR / folder).glob("*.yaml"))


def load_named_config(folder: str, name_or_path: str | Path, what: str) -> dict[str, Any]:
    """A preset by name (data/<folder>/<name>.yaml) or any YAML file by path."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        if not Path(text).is_file():
            raise ConfigError(f"{what} file {text} does not exist")
        return read_yaml_mapping(text)
    path = DATA_DIR / folder / f"{text}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown {what} {text!r}; available: {config_names(folder)} (or a YAML file path)")
    return read_yaml_mapping(path)


def load_data_config(name: str) -> dict[str, Any]:
    """One of the package's fixed config files, data/<name>.yaml."""
    return read_yaml_mapping(DATA_DIR / f"{name}.yaml")
