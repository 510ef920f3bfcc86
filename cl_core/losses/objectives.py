"""The objectives a run can train with: one row per name, read by the config validation
(`cl_core.config.LossConfig`), `build_loss`, `build_objective` and the two-view adapter.

A row names the forms the objective trains in ("two_view": the loss of two augmented views of
each image, `cl_core.losses.two_view`; "momentum": MoCo, with a momentum key encoder,
`cl_core.training_step.momentum_train_step`; "pairs", "scored_pairs", "sentences": the text
batches of `cl_core.text_training`; "user_item": (user, item) interactions scored by the two
towers of `cl_core.models.two_tower`, `cl_core.tasks.interactions`), the options of the `loss`
config section it reads with their defaults and allowed ranges, and how its training loss module
is built from them. Which modalities it trains follows from the forms: modality m in form f when
f is among both the row's forms and m's record's (`cl_core.modalities`).

Adding a loss: its file in this package (the loss, and its two-view / global-batch form if it
needs one), then one row in OBJECTIVES below.

The table names its loss classes as text, imported on first use, so that reading it (the config
validation, the CLI's checks) does not load torch.
"""

from __future__ import annotations

import importlib
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cl_core.losses.margin_choices import DISTANCES, MINING
from cl_core.modalities import MODALITIES

if TYPE_CHECKING:
    from torch import nn

TRIPLET_MINING = MINING[1:]  # the two-view form always mines

# How a caller leaves each optional option out (the config's defaults). Setting one for an
# objective that does not read it is an error.
LEFT_OUT: dict[str, Any] = {
    "mask_same_label": False,
    "use_labels": False,
    "learnable_temperature": False,
    "margin": None,
    "distance": None,
    "mining": None,
    "positive_min_score": None,
    "hard_negatives": 0,
}
# Options every config holds a value for: an objective that does not read one ignores it.
CARRIED = ("temperature", "momentum", "queue_size", "symmetric")

_BOUNDS = {"gt": (">", operator.gt), "ge": (">=", operator.ge), "lt": ("<", operator.lt)}


@dataclass(frozen=True)
class Option:
    """How an objective reads one option of the `loss` config: the value it trains with when the
    option is left out, the values it allows (a bound is None when open), and in which of its
    forms it reads it (None: in all)."""

    default: Any = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None
    forms: tuple[str, ...] | None = None

    @property
    def bounds(self) -> dict[str, float]:
        """The numeric bounds, as pydantic's `Field(gt=..., ge=..., lt=...)` takes them."""
        return {key: getattr(self, key) for key in _BOUNDS if getattr(self, key) is not None}

    def check(self, objective: str, option: str, value: Any) -> None:
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"{option} of {objective} must be one of {self.choices}, got {value!r}")
        for key, bound in self.bounds.items():
            symbol, holds = _BOUNDS[key]
            if not holds(value, bound):
                raise ValueError(f"{option} of {objective} must be {symbol} {bound:g}, got {value}")


TEMPERATURE = Option(gt=0.0)
MASK_SAME_LABEL = Option(False, forms=("two_view",))  # text masks duplicates by their text
USE_LABELS = Option(False)
DISTANCE = Option("cosine", choices=DISTANCES)
SYMMETRIC = Option(True)
MOMENTUM = Option(ge=0.0, lt=1.0)
QUEUE_SIZE = Option(ge=1)
HARD_NEGATIVES = Option(0, ge=0, forms=("pairs",))

@dataclass(frozen=True)
class LossClass:
    """A loss class named by where it lives, "module:Class" in this package, imported the first
    time it is called or loaded."""

    path: str

    @property
    def module(self) -> str:
        return self.path.partition(":")[0]

    @property
    def name(self) -> str:
        return self.path.partition(":")[2]

    def load(self) -> type[nn.Module]:
        return getattr(importlib.import_module(f"cl_core.losses.{self.module}"), self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> nn.Module:
        return self.load()(*args, **kwargs)


CLIP = LossClass("clip:CLIPLoss")
COSENT = LossClass("cosent:CoSENTLoss")
DCL = LossClass("dcl:DCLLoss")
INFONCE = LossClass("infonce:InfoNCELoss")
IN_BATCH_INFONCE = LossClass("infonce:InBatchInfoNCELoss")
MNRL = LossClass("mnrl:MultipleNegativesRankingLoss")
MOCO = LossClass("moco:MoCoLoss")
NTXENT = LossClass("ntxent:NTXentLoss")
PAIRWISE_CONTRASTIVE = LossClass("contrastive:PairwiseContrastiveLoss")
TWO_VIEW_CONTRASTIVE = LossClass("contrastive:TwoViewContrastiveLoss")
SAMPLED_SOFTMAX = LossClass("sampled_softmax:SampledSoftmaxLoss")
SUPCON = LossClass("supcon:SupConLoss")
TRIPLET = LossClass("triplet:TripletMarginLoss")
TWO_VIEW_TRIPLET = LossClass("triplet:TwoViewTripletLoss")

# build(options, gather_distributed, dim): the training loss module from the settled options.
Build = Callable[[Mapping[str, Any], bool, int | None], "nn.Module"]


@dataclass(frozen=True)
class Objective:
    """One objective: its name, the forms it trains in ("two_view", "momentum", "pairs",
    "scored_pairs", "sentences" or "user_item"; at most one of each modality's), the options it
    reads, how its training loss module is built, and the loss class `build_loss(name)`
    instantiates (None when the objective is another loss used another way), imported when
    `loss` is first read."""

    name: str
    forms: tuple[str, ...]
    options: Mapping[str, Option]
    build: Build
    loss_class: LossClass | None = None
    labels: bool = False  # reads the batch labels whatever its options (SupCon)
    stacked_views: bool = False  # takes two views as one (B, 2, D) tensor (SupCon's multi-view form)

    @property
    def loss(self) -> type[nn.Module] | None:
        return None if self.loss_class is None else self.loss_class.load()

    @property
    def trains(self) -> Mapping[str, str]:
        """How it trains each modality it serves: modality -> the form both offer."""
        return {record.name: form for record in MODALITIES.values() for form in self.forms if form in record.forms}

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.trains)

    def form(self, modality: str) -> str:
        """How the objective trains `modality` data; ValueError when it does not."""
        if modality not in self.trains:
            raise ValueError(
                f"loss {self.name!r} does not train {modality} data; use one of {objective_names(modality)}"
            )
        return self.trains[modality]

    def reads(self, option: str, modality: str | None = None) -> bool:
        """Whether the objective reads `option` (on `modality` data; None: on any)."""
        spec = self.options.get(option)
        if spec is None or modality is None:
            return spec is not None
        form = self.trains.get(modality)
        return form is not None and (spec.forms is None or form in spec.forms)

    def settle(self, values: Mapping[str, Any], modality: str | None = None) -> dict[str, Any]:
        """The options the objective trains with: each of `values` it reads (on `modality`)
        checked against its range, the others at their defaults. A value that is None, or equal
        to how LEFT_OUT leaves its option out, counts as not given. ValueError, naming the
        option, for a value out of range or given to an objective that does not read it."""
        given = {}
        for option, value in values.items():
            if option not in LEFT_OUT and option not in CARRIED:
                raise ValueError(f"unknown loss option {option!r}")
            if value is None or (option in LEFT_OUT and value == LEFT_OUT[option]):
                continue
            if self.reads(option, modality):
                self.options[option].check(self.name, option, value)
                given[option] = value
            elif option not in CARRIED:
                raise ValueError(_not_read(option, self.name, modality))
        return {option: given.get(option, spec.default) for option, spec in self.options.items()}

    def uses_labels(self, options: Mapping[str, Any]) -> bool:
        """Whether training with these options reads the labels of the batch."""
        return self.labels or bool(options.get("mask_same_label")) or bool(options.get("use_labels"))


def _not_read(option: str, name: str, modality: str | None) -> str:
    readers = [o.name for o in OBJECTIVES.values() if o.reads(option, modality)]
    if not readers:
        return f"{option} does not apply to {modality} data"
    listing = readers[0] if len(readers) == 1 else f"{', '.join(readers[:-1])} and {readers[-1]}"
    return f"{option} applies to {listing}, not {name!r}"


def _scale(options: Mapping[str, Any]) -> float:
    """MNRL, SimCSE and CoSENT take a scale: 1 / temperature."""
    return 1.0 / options["temperature"]


# The forms whose loss is a function of the step's embeddings alone, so its gradient reaches the
# encoder through them and train.grad_cache_chunk can run the encoder in chunks; why the others
# cannot.
EMBEDDINGS_ONLY_FORMS = frozenset({"two_view", "pairs", "scored_pairs", "sentences"})
EMBEDDINGS_ONLY_FORMS_NOT = {
    "momentum": "a momentum encoder's keys and a queue of earlier batches",
    "user_item": "two towers over users and items, and each item's popularity",
}

OBJECTIVES: dict[str, Objective] = {objective.name: objective for objective in (
    Objective(
        "ntxent", ("two_view",), {"temperature": TEMPERATURE, "mask_same_label": MASK_SAME_LABEL},
        lambda o, gather, dim: NTXENT(o["temperature"], gather, o["mask_same_label"]), NTXENT,
    ),
    Objective(
        "dcl", ("two_view",), {"temperature": TEMPERATURE, "mask_same_label": MASK_SAME_LABEL},
        lambda o, gather, dim: DCL(o["temperature"], gather, o["mask_same_label"]), DCL,
    ),
    Objective(
        "supcon", ("two_view",), {"temperature": TEMPERATURE},
        lambda o, gather, dim: SUPCON(o["temperature"], gather), SUPCON, labels=True, stacked_views=True,
    ),
    Objective(
        "mnrl", ("two_view", "pairs"),
        {
            "temperature": TEMPERATURE, "symmetric": SYMMETRIC, "mask_same_label": MASK_SAME_LABEL,
            "positive_min_score": Option(forms=("pairs",)), "hard_negatives": HARD_NEGATIVES,
        },
        lambda o, gather, dim: MNRL(_scale(o), o["symmetric"], gather, o["mask_same_label"]),
        MNRL,
    ),
    Objective(
        "clip", ("two_view",), {"temperature": TEMPERATURE, "learnable_temperature": Option(False)},
        lambda o, gather, dim: CLIP(o["temperature"], o["learnable_temperature"], gather_distributed=gather),
        CLIP,
    ),
    Objective(
        "infonce", ("two_view",), {"temperature": TEMPERATURE, "mask_same_label": MASK_SAME_LABEL},
        lambda o, gather, dim: IN_BATCH_INFONCE(o["temperature"], gather), INFONCE,
    ),
    Objective(
        "triplet", ("two_view",),
        {
            "margin": Option(0.2, ge=0.0), "distance": DISTANCE, "mining": Option("semi_hard", choices=TRIPLET_MINING),
            "use_labels": USE_LABELS, "mask_same_label": MASK_SAME_LABEL,
        },
        lambda o, gather, dim: TWO_VIEW_TRIPLET(o["margin"], o["distance"], o["mining"], o["use_labels"], gather),
        TRIPLET,
    ),
    Objective(
        "contrastive", ("two_view",),
        {"margin": Option(0.5, gt=0.0), "distance": DISTANCE, "use_labels": USE_LABELS, "mask_same_label": MASK_SAME_LABEL},
        lambda o, gather, dim: TWO_VIEW_CONTRASTIVE(o["margin"], o["distance"], o["use_labels"], gather),
        PAIRWISE_CONTRASTIVE,
    ),
    Objective(
        "moco", ("momentum",),
        {"temperature": TEMPERATURE, "momentum": MOMENTUM, "queue_size": QUEUE_SIZE},
        lambda o, gather, dim: MOCO(o["temperature"], o["queue_size"], dim, gather), MOCO,
    ),
    # SimCSE is MNRL with each sentence as its own positive: one direction is the whole loss.
    Objective(
        "simcse", ("sentences",), {"temperature": TEMPERATURE},
        lambda o, gather, dim: MNRL(_scale(o), False, gather),
    ),
    Objective(
        "cosent", ("scored_pairs",), {"temperature": TEMPERATURE},
        lambda o, gather, dim: COSENT(_scale(o), gather), COSENT,
    ),
    # In-batch softmax over the global batch's items with the logQ popularity correction.
    Objective(
        "sampled_softmax", ("user_item",), {"temperature": TEMPERATURE},
        lambda o, gather, dim: SAMPLED_SOFTMAX(o["temperature"], gather), SAMPLED_SOFTMAX,
    ),
)}


def get_objective(name: str) -> Objective:
    try:
        return OBJECTIVES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; available: {sorted(OBJECTIVES)}") from None


def objective_names(modality: str | None = None, form: str | None = None) -> tuple[str, ...]:
    """The names that train `modality` data (None: any) in the way `form` (None: any), in table
    order."""
    names = []
    for objective in OBJECTIVES.values():
        forms = [how for where, how in objective.trains.items() if modality in (None, where)]
        if forms and (form is None or form in forms):
            names.append(objective.name)
    return tuple(names)
