"""Reading a config: a YAML file of sections, dotted overrides on top (CLI flags), validated once;
a failure is a `ConfigError` naming each field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cl_core.config.base import ConfigError
from cl_core.config.pipeline import PipelineConfig


def _describe(error: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<root>"
        lines.append(f"  {field}: {item['msg']}")
    return "\n".join(lines)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted}: {part} is not a section")
    node[leaf] = value


def build_config(
    raw: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None, origin: str = "defaults"
) -> PipelineConfig:
    """Validate `raw` (nested dict) with dotted `overrides` ({"train.epochs": 3}) applied on top.

    None-valued overrides are ignored, so CLI flags that were not given change nothing.
    """
    tree: dict[str, Any] = dict(raw or {})
    tree = {key: dict(value) if isinstance(value, dict) else value for key, value in tree.items()}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(tree, dotted, value)
    try:
        return PipelineConfig.model_validate(tree)
    except ValidationError as error:
        raise ConfigError(_describe(error, origin)) from None


def read_yaml_mapping(path: str | Path, what: str, holds: str) -> dict[str, Any]:
    """The mapping a YAML file holds (empty: {}), unvalidated; a ConfigError naming `what` ("config
    file") and the path when it is missing, not YAML, or not a mapping (of `holds`)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of {holds}, got {type(raw).__name__}")
    return raw


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The sections of a YAML config file, unvalidated."""
    return read_yaml_mapping(path, "config file", "sections")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read a YAML file (or the defaults when `path` is None) and validate it with `overrides`."""
    if path is None:
        return build_config({}, overrides)
    return build_config(read_config_file(path), overrides, origin=str(path))
