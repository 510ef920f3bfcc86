"""What every config section shares: the error a bad config raises, the frozen base model that
forbids unknown keys, and how a source spec names a column (a 0-based position or a name)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo


class ConfigError(ValueError):
    """A configuration file or override that does not validate; the message names each field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


ColumnKey = str | int


def one_of(field: str, choices: tuple[str, ...]) -> BeforeValidator:
    """A field's before-validator: the value must be one of `choices`, else a message naming them."""

    def check(value: object) -> object:
        if value not in choices:
            raise ValueError(f"{field} must be one of {choices}, got {value!r}")
        return value

    return BeforeValidator(check)


def _strict_header(value: object) -> object:
    # Stricter than pydantic's bool: "yes" or 1 in a spec is more likely a mistake.
    if not isinstance(value, bool):
        raise ValueError(f"header must be True or False, got {value!r}")
    return value


# Whether a source file's first line names its columns: True or False only.
StrictHeader = Annotated[bool, BeforeValidator(_strict_header)]


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


def _role_column(value: object, info: ValidationInfo) -> object:
    # A field named "<role>_column": None, or a column key checked under its role's name.
    role = info.field_name.removesuffix("_column")
    return None if value is None else _column_key(value, role)


# A source spec's "<role>_column" field, e.g. user_column: role "user".
RoleColumn = Annotated[ColumnKey, BeforeValidator(_role_column)]
OptionalRoleColumn = Annotated[ColumnKey | None, BeforeValidator(_role_column)]


def _column_tuple(value: object, what: str) -> tuple:
    # A bare string would otherwise be taken as a sequence of one-letter column names.
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise ValueError(f"{what} must be a tuple of columns, e.g. ({value!r},), got {value!r}")
    return tuple(value)
