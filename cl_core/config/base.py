"""What every config section shares: the error a bad config raises, the frozen base model that
forbids unknown keys, and how a source spec names a column (a 0-based position or a name)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A configuration file or override that does not validate; the message names each field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ColumnKey = str | int


def _column_key(key: object, role: str) -> str | int:
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise ValueError(
            f"the {role} column must be a 0-based column position (int) or a column name (str), got {key!r}"
        )
    if isinstance(key, int) and key < 0:
        raise ValueError(f"the {role} column must be a 0-based column position >= 0, got {key}")
    if isinstance(key, str) and not key.strip():
        raise ValueError(f"the {role} column must not be an empty name")
    return key


def _column_tuple(value: object, what: str) -> tuple:
    # A bare string would otherwise be taken as a sequence of one-letter column names.
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise ValueError(f"{what} must be a tuple of columns, e.g. ({value!r},), got {value!r}")
    return tuple(value)
