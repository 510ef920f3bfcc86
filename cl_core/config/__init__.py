"""Typed configuration of a pipeline run, parsed once at the edge from YAML and CLI flags.

Every section forbids unknown keys and states its allowed ranges, so a typo or an impossible
value fails here, naming the field, before any worker starts. Validated once, the object itself
travels: flows and tasks take the frozen `PipelineConfig` or one of its sections (`cfg.eval`,
`cfg.views`, `cfg.export`, `cfg.data.text`), Ray Train's workers receive it pickled, and a
deployment's JSON parameters become one when Prefect validates them against the flow's type hints,
at that edge. No dict is validated back into a section after that: `model_dump()` goes outward only
(MLflow's params, the logged resolved config, keyword arguments of plain classes).

The package, from the bottom up: `base` (ConfigError, the frozen section base, column keys),
`text_source` and `interactions_source` (the source specs of `data.text` and
`data.interactions`, which the dataset readers use too), `model` (the model section),
`sections` (data, views, loss, train, eval, ingest, export, registry), `pipeline`
(`PipelineConfig`: the sections together, per-modality defaults, cross-section checks) and
`loading` (YAML files and dotted overrides -> a validated `PipelineConfig`). Every name below
is importable from `cl_core.config` itself.
"""

from cl_core.config.base import ColumnKey, ConfigError
from cl_core.config.interactions_source import (
    INTERACTIONS_FORMATS,
    RESERVED_FEATURE_NAMES,
    InteractionsFormat,
    InteractionSplitSpec,
    InteractionsSourceSpec,
    SideTableSpec,
)
from cl_core.config.loading import build_config, load_config, read_config_file
from cl_core.config.model import ModelConfig, TwoTowerConfig
from cl_core.config.pipeline import INTERACTIONS_DEFAULTS, MODALITY_DEFAULTS, TEXT_DEFAULTS, PipelineConfig
from cl_core.config.sections import (
    EXPORT_ENGINES,
    DataConfig,
    EvalConfig,
    ExportConfig,
    ExportEngine,
    IngestConfig,
    IngestEngine,
    LossConfig,
    MFBaselineConfig,
    RegistryConfig,
    SourceSection,
    TrainConfig,
    ViewsConfig,
)
from cl_core.config.text_source import TEXT_FORMATS, TextFormat, TextSourceSpec

__all__ = [
    "EXPORT_ENGINES",
    "INTERACTIONS_DEFAULTS",
    "INTERACTIONS_FORMATS",
    "MODALITY_DEFAULTS",
    "RESERVED_FEATURE_NAMES",
    "TEXT_DEFAULTS",
    "TEXT_FORMATS",
    "ColumnKey",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "ExportConfig",
    "ExportEngine",
    "IngestConfig",
    "IngestEngine",
    "InteractionSplitSpec",
    "InteractionsFormat",
    "InteractionsSourceSpec",
    "LossConfig",
    "MFBaselineConfig",
    "ModelConfig",
    "PipelineConfig",
    "RegistryConfig",
    "SideTableSpec",
    "SourceSection",
    "TextFormat",
    "TextSourceSpec",
    "TrainConfig",
    "TwoTowerConfig",
    "ViewsConfig",
    "build_config",
    "load_config",
    "read_config_file",
]
