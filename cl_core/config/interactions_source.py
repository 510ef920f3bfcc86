"""The interactions source spec (`data.interactions`): where user-item interactions are in a file,
its side tables of user and item attributes, and how the interactions are split by time."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, get_args

from pydantic import ValidationInfo, field_validator, model_validator

from cl_core.config.base import (
    ColumnKey,
    OptionalRoleColumn,
    RoleColumn,
    StrictHeader,
    _column_key,
    _column_tuple,
    _Section,
    one_of,
)
from cl_core.modalities.interactions import INTERACTIONS

InteractionsFormat = Literal["auto", "tsv", "csv", "parquet", "atomic"]
INTERACTIONS_FORMATS: tuple[str, ...] = get_args(InteractionsFormat)
KnownInteractionsFormat = Annotated[InteractionsFormat, one_of("format", INTERACTIONS_FORMATS)]
# Names an entity table gives its own columns (cl_core.datasets.sources.interactions.records).
RESERVED_FEATURE_NAMES = ("id", "title")


def _columns_fit_the_format(roles: list[tuple[str, ColumnKey]], fmt: str, header: bool) -> None:
    """One column, one role; names need a header line to be looked up in."""
    first_role: dict[tuple[type, ColumnKey], str] = {}
    for role, key in roles:
        earlier = first_role.setdefault((type(key), key), role)
        if earlier != role:
            raise ValueError(f"column {key!r} is given as both {earlier} and {role}")
    if fmt == "atomic" and not header:
        raise ValueError("atomic files (RecBole) always start with a header line: header must be True")
    if fmt in ("tsv", "csv") and not header:
        names = [f"{role}={key!r}" for role, key in roles if isinstance(key, str)]
        if names:
            raise ValueError(
                f"a {fmt.upper()} without a header line has no column names: use 0-based positions or "
                f"header=True, got {', '.join(names)}"
            )


class SideTableSpec(_Section):
    """A table of user or item attributes, one row per id (`data.interactions.users` / `.items`).

    Columns are 0-based positions or names, as in `TextSourceSpec`; in an "atomic" file (RecBole's
    tab-separated files whose header cells read `name:type`) a name may leave out its `:type`.
    A feature is stored under its column's name up to any ":" (so "class:token_seq" is "class"),
    or as `column_<N>` for position N.

    Attributes:
        path: the file: .csv/.tsv (gzipped too), .parquet, or an atomic .user/.item file.
        format, header: as for the interactions file.
        id_column: the user or item id, as the interactions file writes it.
        title_column: a display name kept as text (e.g. a movie title), not a feature.
        categorical_columns: one value per row (e.g. gender, occupation).
        multi_valued_columns: several values per row, split on `separator` (e.g. genres); a
            Parquet list column is taken as it is.
        numeric_columns: numbers (e.g. age, release year).
        separator: between the values of a multi-valued cell.
        missing_values: cells that mean "unknown" (after stripping spaces): stored as null (an
            empty list for a multi-valued column) instead of as a value.

    Raises:
        ValueError (pydantic's ValidationError, naming the field): a malformed column, one
            column given two roles, names without a header line, an empty separator, or a
            feature named like an entity column ("id", "title").
    """

    path: str
    format: KnownInteractionsFormat = "auto"
    header: StrictHeader = True
    id_column: RoleColumn
    title_column: OptionalRoleColumn = None
    categorical_columns: tuple[ColumnKey, ...] = ()
    multi_valued_columns: tuple[ColumnKey, ...] = ()
    numeric_columns: tuple[ColumnKey, ...] = ()
    separator: str = "|"
    missing_values: tuple[str, ...] = ("",)

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"path must be a file path, got {value!r}")
        return value

    @field_validator("categorical_columns", "multi_valued_columns", "numeric_columns", mode="before")
    @classmethod
    def _feature_columns(cls, value: object, info: ValidationInfo) -> tuple:
        columns = _column_tuple(value, info.field_name)
        kind = info.field_name.removesuffix("_columns").replace("_", "-")
        return tuple(_column_key(key, f"{kind} feature") for key in columns)

    @field_validator("separator", mode="before")
    @classmethod
    def _separator(cls, value: object) -> object:
        if not isinstance(value, str) or value == "":
            raise ValueError(f"separator must be a non-empty string, got {value!r}")
        return value

    @field_validator("missing_values", mode="before")
    @classmethod
    def _missing(cls, value: object) -> tuple:
        values = _column_tuple(value, "missing_values")
        if not all(isinstance(v, str) for v in values):
            raise ValueError(f"missing_values must be strings, got {values!r}")
        return tuple(v.strip() for v in values)

    @model_validator(mode="after")
    def _columns_fit(self) -> SideTableSpec:
        _columns_fit_the_format(self.roles(), self.format, self.header)
        names = [self.feature_name(key) for _, key in self.features()]
        reserved = [n for n in names if n in RESERVED_FEATURE_NAMES]
        if reserved:
            raise ValueError(f"features cannot be named {reserved}: those names are the entity table's own columns")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"two feature columns would both be stored as {repeated}")
        return self

    def features(self) -> list[tuple[str, ColumnKey]]:
        """(type, column) per feature: "categorical", "multi_valued" or "numeric"."""
        return (
            [("categorical", key) for key in self.categorical_columns]
            + [("multi_valued", key) for key in self.multi_valued_columns]
            + [("numeric", key) for key in self.numeric_columns]
        )

    def roles(self) -> list[tuple[str, ColumnKey]]:
        """(role, column) for every column the spec names: "id", "title", then the features."""
        roles: list[tuple[str, ColumnKey]] = [("id", self.id_column)]
        if self.title_column is not None:
            roles.append(("title", self.title_column))
        return roles + [(f"{kind} feature", key) for kind, key in self.features()]

    @staticmethod
    def feature_name(key: ColumnKey) -> str:
        """The name a feature is stored under: the column name (an atomic one without `:type`),
        or `column_<N>` for position N."""
        return f"column_{key}" if isinstance(key, int) else key.split(":", 1)[0]


class InteractionSplitSpec(_Section):
    """How interactions are split by time (`data.interactions.split`).

    "leave_last_out" (leave-two-out): per user, ordered by (timestamp, item id), the last
    interaction is test and the one before it val, the rest train; a user with two interactions
    has a train and a test one and no val one, a user with one keeps it in train. "time_cutoff":
    two global cutoffs: timestamp >= test_from is test, val_from <= timestamp < test_from is val,
    the rest train. Both cutoffs are required, val_from < test_from: the model trains on train,
    the promotion gate and any tuning read val, and test is only reported.
    """

    method: Literal["leave_last_out", "time_cutoff"] = "leave_last_out"
    test_from: float | None = None
    val_from: float | None = None

    @model_validator(mode="after")
    def _cutoffs_fit_the_method(self) -> InteractionSplitSpec:
        if self.method == "leave_last_out":
            given = [f for f in ("test_from", "val_from") if getattr(self, f) is not None]
            if given:
                verb = "apply" if len(given) > 1 else "applies"
                raise ValueError(f"{' and '.join(given)} {verb} to method 'time_cutoff', not 'leave_last_out'")
            return self
        if self.test_from is None:
            raise ValueError("method 'time_cutoff' needs test_from: the timestamp from which interactions are test")
        if self.val_from is None:
            raise ValueError("method 'time_cutoff' needs val_from: the timestamp from which interactions are val "
                             "(before test_from); the promotion gate and tuning read the val split, the model "
                             "trains on what comes before it")
        if self.val_from >= self.test_from:
            raise ValueError(f"val_from {self.val_from} must be < test_from {self.test_from}: "
                             "an empty val split leaves the promotion gate nothing to read")
        return self


class InteractionsSourceSpec(_Section):
    """Where user-item interactions are in a source file, and its side tables (`data.interactions`).

    Columns are 0-based positions or names as in `TextSourceSpec` ("atomic": RecBole's typed
    headers, matched with or without `:type`). Timestamps are numbers (e.g. Unix seconds); the
    rating is any number (a rating, a weight, a count).

    Attributes:
        format: "auto" (from the extension: .tsv, .csv (tab-separated when its first line has a
            tab), .parquet, .inter/.user/.item (atomic); the text ones also gzipped), "tsv",
            "csv", "parquet" or "atomic".
        header: TSV/CSV only: the first line holds column names (and no data).
        user_column, item_column, timestamp_column: the required fields.
        rating_column: an optional rating or weight.
        users, items: side tables of attributes (`SideTableSpec`), or None.
        split: how interactions are split by time (`InteractionSplitSpec`).
    """

    modality: ClassVar[str] = INTERACTIONS.name  # the kind of data it reads

    format: KnownInteractionsFormat = "auto"
    header: StrictHeader = True
    user_column: RoleColumn = "user"
    item_column: RoleColumn = "item"
    timestamp_column: RoleColumn = "timestamp"
    rating_column: OptionalRoleColumn = None
    users: SideTableSpec | None = None
    items: SideTableSpec | None = None
    split: InteractionSplitSpec = InteractionSplitSpec()

    @model_validator(mode="after")
    def _columns_fit(self) -> InteractionsSourceSpec:
        _columns_fit_the_format(self.roles(), self.format, self.header)
        return self

    def roles(self) -> list[tuple[str, ColumnKey]]:
        """(role, column): "user", "item", "timestamp", and "rating" when there is one."""
        roles = [("user", self.user_column), ("item", self.item_column), ("timestamp", self.timestamp_column)]
        return roles + ([("rating", self.rating_column)] if self.rating_column is not None else [])

    def side_tables(self) -> dict[str, SideTableSpec]:
        """{"users": ..., "items": ...} for the side tables given."""
        return {entity: spec for entity, spec in (("users", self.users), ("items", self.items)) if spec is not None}
