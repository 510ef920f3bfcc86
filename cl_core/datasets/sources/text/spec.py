"""`TextSourceSpec`: how to read sentence pairs out of a TSV, CSV, JSONL or Parquet source.

A column is named by a 0-based position (int) or a name (str): a header name in a TSV/CSV whose
first line is a header, a JSON field name, a Parquet column name. JSON objects have no order, so
JSONL needs names; a TSV/CSV without a header has no names, so it needs positions.
"""

from __future__ import annotations

from dataclasses import dataclass

FORMATS = ("auto", "tsv", "csv", "jsonl", "parquet")

ColumnKey = str | int


def _check_key(key: object, what: str) -> None:
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise ValueError(
            f"{what} must be a 0-based column position (int) or a column name (str), got {key!r}"
        )
    if isinstance(key, int) and key < 0:
        raise ValueError(f"{what} must be a 0-based column position >= 0, got {key}")
    if isinstance(key, str) and not key.strip():
        raise ValueError(f"{what} must not be an empty name")


def _as_tuple(value: object, what: str) -> tuple:
    # A bare string would otherwise be taken as a sequence of one-letter column names.
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise ValueError(f"{what} must be a tuple of columns, e.g. ({value!r},), got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class TextSourceSpec:
    """Where the fields of a `TextPairRecord` are in each row of a text source.

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
        split_column: "train", "val"/"valid"/"validation"/"dev" or "test"; None to take the
            split from the file name, else from the store's id hash.
        header: TSV/CSV only: the first line holds column names (and no data).

    Raises:
        ValueError: a malformed column, or columns the format cannot name (positions for
            JSONL, names for a TSV/CSV without header), or one column given two roles.
    """

    format: str = "auto"
    text_columns: tuple[ColumnKey, ...] = (0, 1)
    score_column: ColumnKey | None = None
    label_column: ColumnKey | None = None
    negative_columns: tuple[ColumnKey, ...] = ()
    id_column: ColumnKey | None = None
    split_column: ColumnKey | None = None
    header: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")
        if not isinstance(self.header, bool):
            raise ValueError(f"header must be True or False, got {self.header!r}")
        # Lists are accepted and frozen into tuples, so the spec stays hashable.
        object.__setattr__(self, "text_columns", _as_tuple(self.text_columns, "text_columns"))
        object.__setattr__(
            self, "negative_columns", _as_tuple(self.negative_columns, "negative_columns")
        )
        if len(self.text_columns) not in (1, 2):
            raise ValueError(
                "text_columns must name 1 column (text1) or 2 (text1, text2), got "
                f"{self.text_columns!r}"
            )
        roles = self.roles()
        for role, key in roles:
            _check_key(key, f"the {role} column")
        self._check_distinct(roles)
        self._check_format(roles)

    def roles(self) -> list[tuple[str, ColumnKey]]:
        """(role, column) for every column the spec names, in record field order; the roles
        are "text1", "text2", "score", "label", "negative 1", ..., "id", "split"."""
        roles = list(zip(("text1", "text2"), self.text_columns))
        optional = [("score", self.score_column), ("label", self.label_column)]
        roles += [(role, key) for role, key in optional if key is not None]
        roles += [(f"negative {i}", key) for i, key in enumerate(self.negative_columns, 1)]
        optional = [("id", self.id_column), ("split", self.split_column)]
        roles += [(role, key) for role, key in optional if key is not None]
        return roles

    @staticmethod
    def _check_distinct(roles: list[tuple[str, ColumnKey]]) -> None:
        first_role: dict[tuple[type, ColumnKey], str] = {}
        for role, key in roles:
            earlier = first_role.setdefault((type(key), key), role)
            if earlier != role:
                raise ValueError(f"column {key!r} is given as both {earlier} and {role}")

    def _check_format(self, roles: list[tuple[str, ColumnKey]]) -> None:
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
