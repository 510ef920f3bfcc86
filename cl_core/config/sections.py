"""The run-config sections other than the model's: data, views, loss, train, eval, ingest, export
and registry. Each validates its own fields; checks across sections are `PipelineConfig`'s."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field, model_validator

from cl_core.config.base import _Section, one_of
from cl_core.config.interactions_source import InteractionsSourceSpec
from cl_core.config.text_source import TextSourceSpec
from cl_core.defaults import EXACT_SEARCH_MAX_ROWS, MAX_MEMBER_BYTES, SNAPSHOT_GRACE_S, VAL_FRACTION
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
from cl_core.modalities import MODALITIES

# One of the records' names ("image", "text", "interactions"), as pydantic names them in its error.
ModalityName = Literal[tuple(MODALITIES)]  # type: ignore[valid-type]
# A data section that says how a modality's source reads (a record's `source_section`); images
# need none. A modality with a source section of its own adds its spec here and to `DataConfig`.
SourceSection = TextSourceSpec | InteractionsSourceSpec


class DataConfig(_Section):
    modality: ModalityName = "image"
    source: str = "digits"
    name: str = Field("digits", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str | None = None  # None = the latest ingested version
    limit: int | None = Field(None, ge=1)  # ingest only the first N good records
    max_bad_fraction: float = Field(0.05, ge=0.0, le=1.0)
    # tar shards: a member larger than this is refused unread and quarantined with its name and
    # size (cl_core/defaults.py); 64 MiB by default.
    max_member_bytes: int = Field(MAX_MEMBER_BYTES, ge=1)
    image_size: int = Field(8, ge=4, le=1024)  # digits' native size
    # A source that names no validation split (CIFAR-10's train/test shards) gets one at ingest:
    # this fraction of its train rows, chosen by a hash of the row id, so the same rows each time.
    val_fraction: float = Field(VAL_FRACTION, ge=0.0, lt=1.0)
    text: TextSourceSpec = TextSourceSpec()
    interactions: InteractionsSourceSpec = InteractionsSourceSpec()

    def source_section(self) -> SourceSection | None:
        """The section that says how `source` reads: the modality record's `source_section`
        (`text`, `interactions`), or None for a modality without one (images)."""
        section = MODALITIES[self.modality].source_section
        return getattr(self, section) if section else None


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
    # GradCache: the encoder runs on at most this many rows per worker at a time (view images,
    # texts) while the loss still reads the whole global batch: big batches on small memory, at
    # the price of a second forward pass (cl_core.grad_cache.chunked_backward). Off when None.
    grad_cache_chunk: int | None = Field(None, ge=1)

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
    # Every protocol scores both the val split (what the gate reads) and the test split
    # (reported once); the key that chose one split for text is refused with why.
    split: None = None
    retrieval_min_score: float | None = None  # text: pairs scoring below this are not retrieval queries
    knn_k: int = Field(20, ge=1)
    knn_temperature: float = Field(0.07, gt=0.0)
    probe_max_iter: int = Field(1000, ge=10)
    map_method: Literal["pca", "tsne"] = "pca"
    batch_size: int = Field(1024, ge=1)
    mf: MFBaselineConfig = MFBaselineConfig()  # interactions: the BPR-MF baseline

    @model_validator(mode="before")
    @classmethod
    def _no_split(cls, values: Any) -> Any:
        if isinstance(values, dict) and values.get("split") is not None:
            raise ValueError(
                f"eval.split ({values['split']!r}) is no longer read: every evaluation scores the val split, which the "
                "promotion gate reads, and the test split, which is only reported; remove the key")
        return values


IngestEngine = Literal["local", "ray"]


class IngestConfig(_Section):
    """How `ingest` runs (data says what it reads)."""

    # local: one process reads, checks and sorts every row (small sources). ray: Ray Data tasks
    # read the shards and files across the cluster's nodes and write one bucket each; the same
    # version id. Images and text only; the store's folder must be reachable from every node.
    engine: IngestEngine = "local"


ExportEngine = Literal["local", "ray"]
EXPORT_ENGINES: tuple[str, ...] = get_args(ExportEngine)


class ExportConfig(_Section):
    """The embedding table that `export` and `reembed` write (see cl_core.embeddings)."""

    keep_snapshots: int = Field(3, ge=1)  # older snapshots are removed once CURRENT moved on
    # ... but never one superseded less than this many seconds ago: a reader that opened it
    # (a batch job's scan, a notebook, a serving replica switching over) finishes on it.
    snapshot_grace: float = Field(SNAPSHOT_GRACE_S, ge=0)
    batch_size: int = Field(1024, ge=1)  # rows embedded per model call
    # local: one process embeds; ray: Ray Data reads the dataset's parts and an actor pool of
    # `actors` embeds (each loads the model once; `num_gpus` per actor on GPU nodes).
    engine: Annotated[ExportEngine, one_of("engine", EXPORT_ENGINES)] = "local"
    actors: int = Field(2, ge=1)
    num_gpus: float = Field(0.0, ge=0)
    # Each snapshot carries a nearest-neighbour index: a graph per group of rows larger than this,
    # exact search for smaller ones (cl_core/embeddings/snapshot_index.py).
    exact_search_max_rows: int = Field(EXACT_SEARCH_MAX_ROWS, ge=0)



class RegistryConfig(_Section):
    # None: "<dataset>-<loss>" for images (digits-ntxent), "<dataset>-text" for text
    model_name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    experiment: str | None = None  # None: the model name
    # The gate promotes a challenger whose validation metric beats the champion's by at least
    # this much (in the metric's own units; 0: any strict improvement).
    min_improvement: float = Field(0.0, ge=0.0)
