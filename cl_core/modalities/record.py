"""What a modality is to the pipeline: one frozen record per kind of data, read wherever the
pipeline used to ask "image, text or interactions?".

A record holds its light facts as values (name, config defaults, the objective forms it offers,
the primary metric, the model's input column) and names its heavy parts (the dataset schema, the
model spec, the worker task, the embedding-row builder, the evaluation protocol, the source
ingest) as "module:attribute" text, imported on first use by `Modality.part`. So reading the
table loads neither torch nor pandas (the config validation reads it), and the parts, which
import the lower layers of `cl_core`, can themselves read the table without an import cycle:
the same rule as the objectives table (`cl_core.losses.objectives`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class PrimaryMetric:
    """The promotion gate's metric: its key in an evaluation's `metrics`, its direction, and the
    metric it falls back to when a split cannot give it (text without gold scores has no STS
    correlation: MRR@10 of its pair retrieval)."""

    name: str  # the key in the protocol's `metrics`, e.g. "knn_top1" (logged as "eval.knn_top1")
    higher_is_better: bool = True
    fallback: str | None = None  # the key used when `metrics` has no `name`

    def choose(self, metrics: Mapping[str, float] | None = None) -> str:
        """The gate's key for these metrics: `name`, else `fallback` when `metrics` lacks `name`."""
        if metrics is None or self.name in metrics or self.fallback is None:
            return self.name
        return self.fallback

    def beats(self, challenger: float, champion: float, margin: float = 0.0) -> bool:
        """Whether the challenger's value is better than the champion's by at least `margin`
        (in the metric's units); with no margin, strictly better (a tie keeps the champion)."""
        gain = challenger - champion if self.higher_is_better else champion - challenger
        # A margin read from YAML (0.01) and a difference of two scores are both rounded: allow
        # for the last bits, or a gain of exactly the margin would be refused.
        return gain > 0 if margin <= 0 else gain >= margin - 1e-12


# The heavy parts a record names, as "module:attribute" (or "module" for a whole module).
PARTS = ("schema", "spec", "task", "rows", "protocol", "ingest", "training_data", "check_source")


@dataclass(frozen=True)
class Modality:
    name: str  # the `data.modality` value and a dataset manifest's `kind`
    noun: str  # what a version holds, in messages: "images", "text", "interactions"
    primary: PrimaryMetric
    input_column: str  # the column the model embeds (the registered pyfunc's input)
    evaluation: str  # what its protocol scores, in `clpipe evaluate --help`
    forms: tuple[str, ...]  # how the objectives train this data (`cl_core.losses.objectives`)
    # Config values for the sections a config leaves out, on top of the image-first defaults.
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    # What the config's cross-section checks allow (`cl_core.config.PipelineConfig`):
    image_backbone: bool = False  # model.backbone, pretrained, freeze_*, data.image_size apply; finetuned_weight does not
    backbone_lr_mult: bool = True  # the model has a pretrained part for train.backbone_lr_mult to scale
    trains: str = ""  # how its model trains, told to a config that sets a field it has no use for
    local_ingest_only: str | None = None  # why ingest.engine 'ray' cannot ingest it; None: it can
    model_name_suffix: str | None = None  # the registered model's default name ends with it, else with the loss name
    # Its embedding-table rows are built from the whole version (a user's history spans the parts),
    # not from one batch of Parquet parts at a time; the `ray` export engine builds them in the driver.
    rows_from_whole_version: bool = False
    # The `data` config section that says how its source reads (`data.text`, ...); None: the source
    # alone says it. The ingest flow takes that section as its `<section>_spec` argument, the
    # "check_source" part as its second argument.
    source_section: str | None = None
    # How a training run names its model (`flows.run_description`): the noun of its description
    # ("backbone: resnet-d1-w8"), the tag that holds the architecture, and the architecture in one
    # word from the run config (a `PipelineConfig`; attributes only, so the table stays light).
    model_noun: str = "backbone"
    model_tag: str = "backbone"
    architecture: Callable[[Any], str] = field(default=lambda config: config.model.backbone)
    # What `clpipe search` and the search service embed with its model: "image" (a file's bytes;
    # base64 in JSON) or "text" (a sentence), the name of the query's flag and field. None: its
    # table is searched through its own rows only (by id, or a user's row for their items).
    query: str | None = None
    query_in_base64: bool = False
    parts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        unknown = set(self.parts) - set(PARTS)
        if unknown:
            raise ValueError(f"modality {self.name!r} names unknown parts {sorted(unknown)} (known: {PARTS})")

    def part(self, name: str) -> Any:
        """The part `name` (one of PARTS), imported on first use."""
        try:
            target = self.parts[name]
        except KeyError:
            raise LookupError(f"modality {self.name!r} has no {name!r} part") from None
        module, _, attribute = target.partition(":")
        loaded = importlib.import_module(module)
        return getattr(loaded, attribute) if attribute else loaded
