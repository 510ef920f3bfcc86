"""What a trained model is, as frozen dataclasses: enough to rebuild it anywhere.

A training checkpoint stores `spec.to_dict()` under "model_meta", and the registry logs part of
it as the pyfunc's model config; only the dict crosses Ray and MLflow, and
`model_spec_from_dict` turns it back into a spec. The dict keys are the registry format: a
model registered before these classes existed reads back the same. `from_config` takes the
config's model section (and the few other values a spec holds, passed as such), so this module
sits below `cl_core.config` and imports it for type annotations only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from cl_core.modalities import MODALITIES, modality
from cl_core.modalities.image import IMAGE
from cl_core.modalities.interactions import INTERACTIONS
from cl_core.modalities.text import TEXT
from cl_core.models.backbones import SCRATCH_MEAN, SCRATCH_STD, get_backbone
from cl_core.models.projection import ProjectionHead
from cl_core.models.simclr import ImageEmbedder, SimCLRModel
from cl_core.models.text import TextEmbedder, TextTokenizer, resolve_text_encoder
from cl_core.models.two_tower import TwoTowerModel, TwoTowerSizes

if TYPE_CHECKING:
    from cl_core.config import ModelConfig


def _known_fields(cls: type, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of `meta` that are fields of `cls`; others (e.g. "modality", an inference
    batch_size) belong to the reader."""
    names = {field.name for field in fields(cls)}
    return {key: value for key, value in meta.items() if key in names}


# Fields added after the first registered models; `to_dict` leaves each out while it holds its
# default, so a from-scratch ResNet is described by exactly the keys it always was.
_LATER_FIELDS = ("backbone", "pretrained", "freeze_stages", "freeze_bn", "pixel_mean", "pixel_std")
# What the registered pyfunc needs to rebuild the encoder and feed it (no head, no fine-tuning controls).
_PYFUNC_KEYS = ("channels", "image_size", "depths", "widths", "stem_stride", "backbone", "pretrained", "pixel_mean",
                "pixel_std")


@dataclass(frozen=True)
class ImageModelSpec:
    """An image encoder (a backbone of `cl_core.models.backbones`) with its input size and pixel
    normalisation and, for training, its projection head and fine-tuning controls.

    `proj_hidden` and `proj_dim` are None where only the encoder is described: the registered
    pyfunc's model config carries no head, since the head never leaves training. `depths`,
    `widths` and `stem_stride` shape the `resnet` backbone only. `pretrained`: training starts
    from the backbone's pretrained weights (and evaluation scores those weights too)."""

    modality: ClassVar[str] = IMAGE.name

    channels: int
    image_size: int
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    stem_stride: int = 1  # models registered before it existed use 1
    proj_hidden: int | None = None
    proj_dim: int | None = None
    # The defaults below are what every model registered before them was.
    backbone: str = "resnet"
    pretrained: bool = False
    freeze_stages: int = 0
    freeze_bn: bool = False
    pixel_mean: tuple[float, ...] = SCRATCH_MEAN
    pixel_std: tuple[float, ...] = SCRATCH_STD

    def __post_init__(self) -> None:
        # Lists come back from JSON and torch.load; tuples keep the spec hashable.
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "pixel_mean", tuple(float(v) for v in self.pixel_mean))
        object.__setattr__(self, "pixel_std", tuple(float(v) for v in self.pixel_std))

    @classmethod
    def from_config(cls, model: ModelConfig, image_size: int, channels: int) -> ImageModelSpec:
        """The model a config's `model` section trains on images of `image_size` (its
        `data.image_size`) and `channels` channels (the dataset's; a backbone that needs RGB gets
        3, and grayscale images are replicated to fill them)."""
        backbone = get_backbone(model.backbone)
        return cls(
            backbone.channels or channels, image_size, model.depths, model.widths, model.stem_stride,
            model.proj_hidden, model.proj_dim, backbone=backbone.name, pretrained=model.uses_pretrained_weights,
            freeze_stages=model.freeze_stages, freeze_bn=model.freeze_bn, pixel_mean=backbone.pixel_mean,
            pixel_std=backbone.pixel_std,
        )

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any]) -> ImageModelSpec:
        return cls(**_known_fields(cls, meta))

    @property
    def embedding_dim(self) -> int:
        return get_backbone(self.backbone).feature_dim or self.widths[-1]

    def _embedder(self, pretrained_weights: bool, freeze_stages: int = 0, freeze_bn: bool = False) -> ImageEmbedder:
        encoder = get_backbone(self.backbone).build(self, pretrained_weights)
        return ImageEmbedder(encoder, self.image_size, self.channels, self.pixel_mean, self.pixel_std,
                             freeze_stages=freeze_stages, freeze_bn=freeze_bn)

    def build(self, pretrained_weights: bool = False) -> ImageEmbedder:
        """The encoder that is registered and embeds images: freshly initialised, for weights to
        be loaded into, or with the backbone's pretrained weights (`pretrained_weights`)."""
        return self._embedder(pretrained_weights)

    def build_training_model(self) -> SimCLRModel:
        """The encoder with its projection head, as trained: from the pretrained weights when
        `pretrained`, with the stages and BatchNorm statistics the spec freezes frozen."""
        if self.proj_hidden is None or self.proj_dim is None:
            raise ValueError(f"{self} describes no projection head to train with")
        embedder = self._embedder(self.pretrained, self.freeze_stages, self.freeze_bn)
        return SimCLRModel(embedder, ProjectionHead(embedder.embedding_dim, self.proj_hidden, self.proj_dim))

    def pyfunc_config(self) -> dict[str, Any]:
        """The registered pyfunc's model config: the encoder and its input only."""
        return {key: value for key, value in self.to_dict().items() if key in _PYFUNC_KEYS}

    def to_dict(self) -> dict[str, Any]:
        # Lists, as JSON and the checkpoints written before this class hold them.
        described = {"modality": self.modality, **asdict(self), "depths": list(self.depths), "widths": list(self.widths),
                     "pixel_mean": list(self.pixel_mean), "pixel_std": list(self.pixel_std)}
        defaults = {field.name: field.default for field in fields(self)}
        for key in _LATER_FIELDS:
            if getattr(self, key) == defaults[key]:
                del described[key]
        return described


@dataclass(frozen=True)
class TextModelSpec:
    """A pretrained Hugging Face sentence encoder (mean pooling, optional projection), and the
    WiSE-FT weight its fine-tuned weights are registered with (cl_core/models/merge.py)."""

    modality: ClassVar[str] = TEXT.name

    text_encoder: str
    max_length: int
    projection_dim: int | None = None
    finetuned_weight: float = 1.0  # models registered before it existed kept the fine-tuned weights

    @classmethod
    def from_config(cls, model: ModelConfig) -> TextModelSpec:
        """The encoder a config's `model` section fine-tunes."""
        return cls(model.text_encoder, model.max_length, model.text_projection_dim, model.finetuned_weight)

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any]) -> TextModelSpec:
        return cls(**_known_fields(cls, meta))

    def build(self) -> TextEmbedder:
        """The pretrained encoder (with a fresh projection when `projection_dim` is set): the
        model fine-tuned in training, and the base the registry blends and loads weights into."""
        return TextEmbedder.from_pretrained(resolve_text_encoder(self.text_encoder), projection_dim=self.projection_dim)

    def build_tokenizer(self) -> TextTokenizer:
        """The base encoder's tokenizer, truncating at `max_length`."""
        return TextTokenizer(resolve_text_encoder(self.text_encoder), max_length=self.max_length)

    def pyfunc_config(self) -> dict[str, Any]:
        """The registered pyfunc's model config."""
        return asdict(self)

    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality, **asdict(self)}


@dataclass(frozen=True)
class TwoTowerModelSpec:
    """A two-tower recommender (`cl_core.models.two_tower`): the users, items and side features
    it was built for and its widths: `feature_dim` of the id and side-feature embeddings, the
    towers' `hidden` layers and their output, `embedding_dim`. The outputs are L2-normalised; a
    score is their dot product. `history_length`: how many of a user's latest items the user
    tower averages (the model takes any length; this is the one it was trained and is served
    with)."""

    modality: ClassVar[str] = INTERACTIONS.name

    sizes: TwoTowerSizes
    feature_dim: int = 64
    hidden: tuple[int, ...] = (128,)
    embedding_dim: int = 64
    dropout: float = 0.0
    history_length: int = 20

    def __post_init__(self) -> None:
        # A nested dict and a list come back from JSON and torch.load.
        if isinstance(self.sizes, Mapping):
            object.__setattr__(self, "sizes", TwoTowerSizes.from_dict(self.sizes))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if min(self.feature_dim, self.embedding_dim, self.history_length, *self.hidden) < 1:
            raise ValueError(
                f"feature_dim, hidden, embedding_dim and history_length must be >= 1, got {self.feature_dim}, "
                f"{self.hidden}, {self.embedding_dim}, {self.history_length}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def from_config(cls, model: ModelConfig, sizes: TwoTowerSizes) -> TwoTowerModelSpec:
        """The widths of a config's `model.two_tower` for data of `sizes`."""
        tower = model.two_tower
        return cls(sizes, tower.feature_dim, tower.hidden, tower.embedding_dim, tower.dropout, tower.history_length)

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any]) -> TwoTowerModelSpec:
        return cls(**_known_fields(cls, meta))

    def build(self) -> TwoTowerModel:
        """Both towers: the model trained, registered and embedding users and items."""
        return TwoTowerModel(self.sizes, self.feature_dim, self.hidden, self.embedding_dim, self.dropout)

    def pyfunc_config(self) -> dict[str, Any]:
        """The registered pyfunc's model config."""
        return {key: value for key, value in self.to_dict().items() if key != "modality"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality, "sizes": self.sizes.to_dict(), "feature_dim": self.feature_dim,
            "hidden": list(self.hidden), "embedding_dim": self.embedding_dim, "dropout": self.dropout,
            "history_length": self.history_length,
        }


ModelSpec = ImageModelSpec | TextModelSpec | TwoTowerModelSpec  # for annotations; each record names its own


def model_spec_from_dict(meta: Mapping[str, Any]) -> ModelSpec:
    """The spec a checkpoint's "model_meta" describes (its record's "spec" part); image when it
    names no modality."""
    kind = meta.get("modality", IMAGE.name)
    if kind not in MODALITIES:
        raise ValueError(f"model modality must be one of {sorted(MODALITIES)}, got {kind!r}")
    return modality(kind).part("spec").from_dict(meta)
