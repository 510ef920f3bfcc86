"""The text source spec (`data.text`): where a `TextPairRecord`'s fields are in each row."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, get_args

from pydantic import field_validator, model_validator

from cl_core.config.base import ColumnKey, OptionalRoleColumn, StrictHeader, _column_key, _column_tuple, _Section, one_of
from cl_core.modalities.text import TEXT

TextFormat = Literal["auto", "tsv", "csv", "jsonl", "parquet"]
TEXT_FORMATS: tuple[str, ...] = get_args(TextFormat)


class TextSourceSpec(_Section):
    """Where the fields of a `TextPairRecord` are in each row of a text source (`data.text`).

    It is both the config section and what `cl_core.datasets.open_text_source` reads with: it
    lives here, beside the other sections, so that validating a config imports no dataset code.
    A column is a 0-based position (int; `cut -f` numbers minus one) or a name (str): a header
    name in a TSV/CSV whose first line is a header, a JSON field name, a Parquet column name.
    JSON objects have no order, so JSONL needs names; a TSV/CSV without a header has no names,
    so it needs positions.

    Attributes:
        format: "auto" (from the file extension: .tsv, .csv (tab-separated when its first line
            has a tab), .jsonl/.json, .parquet; the text ones also gzipped, e.g. .tsv.gz), "tsv",
            "csv", "jsonl" or "parquet".
        text_columns: (text1,) for a sentence list, or (text1, text2) for pairs.
        score_column: a float column (e.g. STS similarity), or None.
        label_column: an int column (e.g. NLI class), or None.
        negative_columns: hard-negative sentences for text1: one column each; a JSON field
            or Parquet column may also hold a list of them.
        id_column: the record id; None for "<file stem>:<line or row, 6 digits>" (files of
            one source sharing a stem use their full names instead).
        split_column: a split name (see `cl_core.datasets.splits`); None to take the split
            from the file name, else from the store's id hash.
        header: TSV/CSV only: the first line holds column names (and no data).

    Raises:
        ValueError (pydantic's ValidationError, naming the field): a malformed column, columns
            the format cannot name (positions for JSONL, names for a TSV/CSV without header),
            or one column given two roles.
    """

    modality: ClassVar[str] = TEXT.name  # the kind of data it reads

    format: Annotated[TextFormat, one_of("format", TEXT_FORMATS)] = "auto"
    # Lists (YAML, JSON) are accepted and frozen into tuples, so the spec stays hashable.
    text_columns: tuple[ColumnKey, ...] = (0, 1)
    score_column: OptionalRoleColumn = None
    label_column: OptionalRoleColumn = None
    negative_columns: tuple[ColumnKey, ...] = ()
    id_column: OptionalRoleColumn = None
    split_column: OptionalRoleColumn = None
    header: StrictHeader = False

    @field_validator("text_columns", mode="before")
    @classmethod
    def _one_or_two_texts(cls, value: object) -> tuple:
        columns = _column_tuple(value, "text_columns")
        if len(columns) not in (1, 2):
            raise ValueError(f"text_columns must name 1 column (text1) or 2 (text1, text2), got {columns!r}")
        return tuple(_column_key(key, role) for role, key in zip(("text1", "text2"), columns, strict=False))

    @field_validator("negative_columns", mode="before")
    @classmethod
    def _negatives(cls, value: object) -> tuple:
        columns = _column_tuple(value, "negative_columns")
        return tuple(_column_key(key, f"negative {i}") for i, key in enumerate(columns, 1))

    @model_validator(mode="after")
    def _columns_fit(self) -> TextSourceSpec:
        roles = self.roles()
        first_role: dict[tuple[type, ColumnKey], str] = {}
        for role, key in roles:
            earlier = first_role.setdefault((type(key), key), role)
            if earlier != role:
                raise ValueError(f"column {key!r} is given as both {earlier} and {role}")
        if self.format == "jsonl":
            positions = [f"{role}={key}" for role, key in roles if isinstance(key, int)]
            if positions:
                raise ValueError(
                    "JSONL fields have no order: name them (e.g. text_columns=('sentence1', "
                    f"'sentence2')), got positions {', '.join(positions)}"
                )
        if self.format in ("tsv", "csv") and not self.header:
            names = [f"{role}={key!r}" for role, key in roles if isinstance(key, str)]
            if names:
                raise ValueError(
                    f"a {self.format.upper()} without a header line has no column names: use "
                    f"0-based positions or header=True, got {', '.join(names)}"
                )
        return self

    def roles(self) -> list[tuple[str, ColumnKey]]:
        """(role, column) for every column the spec names, in record field order; the roles
        are "text1", "text2", "score", "label", "negative 1", ..., "id", "split"."""
        roles = list(zip(("text1", "text2"), self.text_columns, strict=False))
        optional = [("score", self.score_column), ("label", self.label_column)]
        roles += [(role, key) for role, key in optional if key is not None]
        roles += [(f"negative {i}", key) for i, key in enumerate(self.negative_columns, 1)]
        optional = [("id", self.id_column), ("split", self.split_column)]
        roles += [(role, key) for role, key in optional if key is not None]
        return roles
