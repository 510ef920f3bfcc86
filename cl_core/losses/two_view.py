"""The objectives the image training step can use on two augmented views of a batch, behind
one call: `objective(z1, z2, labels=None) -> scalar`.

Each loss keeps its own natural signature; this adapter maps the two views (and the labels of
the batch, where the objective uses them) onto it, so the training step and the config need
to know only a name.

MoCo is the one loss of the library that is not here: it needs a momentum key encoder, i.e. a
second network, so it trains through `cl_core.training_step.momentum_train_step` with
`MoCoLoss` and `cl_core.models.momentum.MomentumEncoder` (MOMENTUM_OBJECTIVES).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from cl_core import distributed
from cl_core.losses import build_loss
from cl_core.losses.distances import DISTANCES, pairwise_distance
from cl_core.losses.masking import gather_no_grad

TWO_VIEW_OBJECTIVES = ("ntxent", "dcl", "supcon", "mnrl", "clip", "infonce", "triplet", "contrastive")
MOMENTUM_OBJECTIVES = ("moco",)

TRIPLET_MINING = ("batch_hard", "semi_hard")
# Defaults of the margin losses' options when the caller passes None.
DEFAULT_MARGIN = {"triplet": 0.2, "contrastive": 0.5}
DEFAULT_DISTANCE = {"triplet": "cosine", "contrastive": "cosine"}
DEFAULT_MINING = "semi_hard"

_MASKABLE = ("ntxent", "dcl", "mnrl", "infonce", "triplet", "contrastive")
_OPTION_LOSSES = {
    "margin": ("triplet", "contrastive"),
    "distance": ("triplet", "contrastive"),
    "mining": ("triplet",),
    "use_labels": ("triplet", "contrastive"),
    "learnable_temperature": ("clip",),
}


class TwoViewObjective(nn.Module):
    """`objective(z1, z2, labels=None)`: z1, z2 (B, P) the projections of the two views of B
    images, labels (B,) integer classes or None (needed only when `uses_labels`).

    `name` in TWO_VIEW_OBJECTIVES; the mappings:
    - "ntxent", "dcl": the loss on (z1, z2) as its two views.
    - "supcon": the (B, 2, P) stack of the views with the labels (without labels it is SimCLR).
    - "mnrl": anchors z1, positives z2, symmetric, scale = 1 / temperature.
    - "clip": z1 as images, z2 as texts.
    - "infonce": query z1_i, positive z2_i, negatives the other samples' second views z2_j
      (j != i) of the global batch: the `InfoNCELoss` form
          l(i) = -log( exp(s(z1_i, z2_i)) / sum_j exp(s(z1_i, z2_j)) ),  s = cosine / temperature,
      computed as one (B, W*B) logits matrix rather than materialising (B, W*B-1, P) negatives.
      One-directional (z1 queries, z2 keys), unlike "mnrl" which adds the z2 -> z1 term.
    - "triplet": `TripletMarginLoss` with in-batch mining on the 2B embeddings [z1; z2], labels
      the sample index (the two views of an image are each other's only positive, every other
      image's views are negatives): every view is an anchor. With `use_labels=True` the class
      labels define positives (same class, any view) and negatives (other classes); with only
      `mask_same_label=True` the positive stays the other view and same-class views are
      neither positive nor negative. `mining` "semi_hard" (default, FaceNet's, less prone to
      collapse early in training than the hardest negative) or "batch_hard".
    - "contrastive": Hadsell et al.'s pairwise loss over all cross-view pairs (z1_i, z2_j):
      similar pairs (z1_i, z2_i) (or same class, with `use_labels`), dissimilar pairs j != i
      (or another class when labels are used; with only `mask_same_label`, same-class pairs
      j != i are dropped). There are B similar pairs for B*(B-1) dissimilar ones, so the loss
      is balanced: mean of d^2 over similar pairs + mean of max(0, margin - d)^2 over
      dissimilar pairs (each term as `PairwiseContrastiveLoss` defines it). Default distance
      cosine (1 - cos, scale invariant: the projections are not L2-normalised by the model) and
      margin 0.5: a dissimilar pair stops contributing at cos <= 0.5, i.e. euclidean distance
      1.0 between the unit vectors; the margin stays reachable for every pair of a large batch
      in P dimensions, which a margin of 1 (all pairs orthogonal or worse) is not.

    Options (ValueError naming the option and the loss when given to a loss that ignores it):
    - `temperature`: the softmax temperature of ntxent, dcl, supcon, mnrl, clip, infonce (MNRL's
      scale is its inverse); ignored by the margin losses (triplet, contrastive).
    - `mask_same_label`: same-label samples are never negatives (ntxent, dcl, mnrl, infonce,
      triplet, contrastive); needs labels. SupCon always uses labels when the batch has them.
    - `learnable_temperature`: clip only.
    - `margin` (>= 0 for triplet, > 0 for contrastive), `distance` ("cosine" | "euclidean"; the
      euclidean distance is on the raw projections), `use_labels`: triplet and contrastive;
      `mining`: triplet. None means the defaults above (DEFAULT_MARGIN, DEFAULT_DISTANCE,
      DEFAULT_MINING).

    Distributed (`gather_distributed=True` and an initialised process group): every loss with
    in-batch negatives compares this worker's rows with the global batch, gathered with
    gradients (labels without), and returns a value whose mean over the workers is the
    single-process loss on the concatenated batch (DDP's gradient average then optimises it
    exactly). For triplet, the mining is over the global batch for each local anchor (local x
    global distances, nothing O(global^2)); triplet and contrastive normalise their sums by
    global counts (one all_reduce of an integer count per term), so uneven numbers of valid
    anchors / pairs across workers (labels) stay exact. Every rank must pass the same B.
    """

    def __init__(
        self,
        name: str,
        temperature: float,
        mask_same_label: bool = False,
        learnable_temperature: bool = False,
        gather_distributed: bool = True,
        *,
        margin: float | None = None,
        distance: str | None = None,
        mining: str | None = None,
        use_labels: bool = False,
    ) -> None:
        super().__init__()
        if name in MOMENTUM_OBJECTIVES:
            raise ValueError(
                f"loss {name!r} needs a momentum key encoder, so it is not a two-view objective: train it with "
                "cl_core.training_step.momentum_train_step (MoCoLoss + cl_core.models.momentum.MomentumEncoder)"
            )
        if name not in TWO_VIEW_OBJECTIVES:
            raise ValueError(
                f"loss {name!r} does not train on two views of an image; use one of {TWO_VIEW_OBJECTIVES}, "
                f"or {MOMENTUM_OBJECTIVES} with momentum_train_step"
            )
        if mask_same_label and name not in _MASKABLE:
            raise ValueError(f"mask_same_label applies to {', '.join(_MASKABLE)}, not {name!r}")
        given = {
            "margin": margin is not None, "distance": distance is not None, "mining": mining is not None,
            "use_labels": use_labels, "learnable_temperature": learnable_temperature,
        }
        for option, losses in _OPTION_LOSSES.items():
            if given[option] and name not in losses:
                raise ValueError(f"{option} applies to {' and '.join(losses)}, not {name!r}")
        self.name = name
        self.mask_same_label = mask_same_label
        self.use_labels = use_labels

        if name in ("triplet", "contrastive"):
            margin = DEFAULT_MARGIN[name] if margin is None else float(margin)
            if name == "triplet" and not margin >= 0:
                raise ValueError(f"margin of triplet must be >= 0, got {margin}")
            if name == "contrastive" and not margin > 0:
                raise ValueError(f"margin of contrastive must be > 0, got {margin}")
            distance = DEFAULT_DISTANCE[name] if distance is None else distance
            if distance not in DISTANCES:
                raise ValueError(f"distance of {name} must be one of {DISTANCES}, got {distance!r}")
            if name == "triplet":
                mining = DEFAULT_MINING if mining is None else mining
                if mining not in TRIPLET_MINING:
                    raise ValueError(f"mining of triplet must be one of {TRIPLET_MINING}, got {mining!r}")
                self.loss = _TwoViewTriplet(margin, distance, mining, gather_distributed)
            else:
                self.loss = _TwoViewPairwise(margin, distance, gather_distributed)
            return

        if not temperature > 0:
            raise ValueError(f"temperature of {name} must be > 0, got {temperature}")
        if name == "infonce":
            self.loss = _TwoViewInfoNCE(temperature, gather_distributed)
            return
        if name == "mnrl":
            params = {"scale": 1.0 / temperature, "symmetric": True, "mask_same_label": mask_same_label}
        elif name == "clip":
            params = {"temperature": temperature, "learnable_temperature": learnable_temperature}
        elif name == "supcon":
            params = {"temperature": temperature}
        else:
            params = {"temperature": temperature, "mask_same_label": mask_same_label}
        self.loss = build_loss(name, gather_distributed=gather_distributed, **params)

    @property
    def uses_labels(self) -> bool:
        return self.name == "supcon" or self.mask_same_label or self.use_labels

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z1, z2: (B, D) projections of the two views; labels: (B,) or None."""
        if self.name == "supcon":
            return self.loss(torch.stack([z1, z2], dim=1), labels)  # (B, 2, D)
        if self.name == "clip":
            return self.loss(z1, z2)
        if self.name in ("infonce", "triplet", "contrastive"):
            if self.uses_labels and labels is None:
                raise ValueError(
                    f"{self.name} with mask_same_label / use_labels needs labels in forward(..., labels=...)"
                )
            return self.loss(z1, z2, labels if self.uses_labels else None, use_labels=self.use_labels)
        if self.mask_same_label:
            return self.loss(z1, z2, labels=labels)
        return self.loss(z1, z2)


# --- the in-batch forms of InfoNCE, triplet and pairwise contrastive on two views -------------


def _check_views(z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor | None) -> None:
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"views must both be (B, D); got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if labels is not None:
        if labels.shape != z1.shape[:1]:
            raise ValueError(f"labels must have shape ({z1.shape[0]},), got {tuple(labels.shape)}")
        if labels.is_floating_point() or labels.is_complex():
            raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")


def _gather_views(z1: torch.Tensor, z2: torch.Tensor, gather: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(W*B, D) global z1 and z2 (one all_gather, with gradients) and this worker's row offset."""
    batch = z1.shape[0]
    if not gather or distributed.world_size() == 1:
        return z1, z2, 0
    both = distributed.gather_with_grad(torch.stack([z1, z2], dim=1))  # (W*B, 2, D)
    return both[:, 0], both[:, 1], distributed.rank() * batch


def _keys(
    batch: int, offset: int, global_batch: int, labels: torch.Tensor | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local (B,) and global (W*B,) integer keys: the labels (gathered) or the sample index."""
    if labels is None:
        everyone = torch.arange(global_batch, device=device)
        return everyone[offset : offset + batch], everyone
    labels = labels.to(device=device, dtype=torch.long)
    return labels, (gather_no_grad(labels) if global_batch != batch else labels)


def _global_count(count: torch.Tensor, gathered: bool) -> torch.Tensor:
    """Sum of integer counts over the workers (one all_reduce, no host sync); unchanged in one
    process."""
    if gathered and distributed.world_size() > 1:
        count = count.clone()
        dist.all_reduce(count)
    return count


class _TwoViewInfoNCE(nn.Module):
    """InfoNCE, query z1_i, positive z2_i, negatives z2_j (j != i) of the global batch."""

    def __init__(self, temperature: float, gather_distributed: bool) -> None:
        super().__init__()
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(
        self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor | None = None, *, use_labels: bool = False
    ) -> torch.Tensor:
        _check_views(z1, z2, labels)
        batch = z1.shape[0]
        query = F.normalize(z1, dim=-1)
        _, keys, offset = _gather_views(query, F.normalize(z2, dim=-1), self.gather_distributed)
        targets = torch.arange(batch, device=z1.device) + offset
        logits = query @ keys.T / self.temperature  # (B, W*B): column targets[i] is the positive
        if labels is not None:  # mask_same_label: a same-label z2_j is not a negative
            local, candidates = _keys(batch, offset, keys.shape[0], labels, z1.device)
            excluded = local[:, None] == candidates[None, :]
            excluded[torch.arange(batch, device=z1.device), targets] = False
            logits = logits.masked_fill(excluded, float("-inf"))
        return F.cross_entropy(logits, targets)


class _TwoViewTriplet(nn.Module):
    """TripletMarginLoss's mining on [z1; z2] with sample-index (or class) labels, local anchors
    against the global candidates."""

    def __init__(self, margin: float, distance: str, mining: str, gather_distributed: bool) -> None:
        super().__init__()
        self.margin = margin
        self.distance = distance
        self.mining = mining
        self.gather_distributed = gather_distributed

    def forward(
        self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor | None = None, *, use_labels: bool = False
    ) -> torch.Tensor:
        _check_views(z1, z2, labels)
        batch, device = z1.shape[0], z1.device
        all_z1, all_z2, offset = _gather_views(z1, z2, self.gather_distributed)
        global_batch = all_z1.shape[0]
        anchors = torch.cat([z1, z2])  # (2B, D), view-major
        candidates = torch.cat([all_z1, all_z2])  # (2WB, D)
        distances = pairwise_distance(anchors, candidates, self.distance)  # (2B, 2WB)

        local = torch.arange(batch, device=device) + offset
        rows = torch.arange(2 * batch, device=device)
        self_cols = torch.cat([local, local + global_batch])
        partner_cols = torch.cat([local + global_batch, local])  # the other view of the same image
        sample, all_samples = _keys(batch, offset, global_batch, None, device)
        label, all_labels = _keys(batch, offset, global_batch, labels, device)
        # Negatives: another image (another class when labels are given).
        negative_mask = (label.repeat(2)[:, None] != all_labels.repeat(2)[None, :])  # (2B, 2WB)
        has_negative = negative_mask.any(dim=1)  # (2B,)
        if use_labels:
            positive_mask = label.repeat(2)[:, None] == all_labels.repeat(2)[None, :]
        else:
            positive_mask = sample.repeat(2)[:, None] == all_samples.repeat(2)[None, :]
        positive_mask[rows, self_cols] = False

        if self.mining == "batch_hard":
            hardest_positive = distances.masked_fill(~positive_mask, float("-inf")).amax(dim=1)  # (2B,)
            hardest_negative = distances.masked_fill(~negative_mask, float("inf")).amin(dim=1)  # (2B,)
            # Every anchor has its other view as a positive; it is valid when it has a negative.
            valid = has_negative
            losses = F.relu(hardest_positive - hardest_negative.where(valid, hardest_positive) + self.margin)
        else:
            if use_labels:  # every (anchor, positive) pair of the class: a data-dependent count
                anchor_rows, positive_cols = torch.nonzero(positive_mask, as_tuple=True)  # (P,)
            else:  # the one positive of each anchor, without a host sync
                anchor_rows, positive_cols = rows, partner_cols
            positive_distance = distances[anchor_rows, positive_cols]  # (P,)
            anchor_distances = distances[anchor_rows]  # (P, 2WB)
            negatives = negative_mask[anchor_rows]  # (P, 2WB)
            farther = negatives & (anchor_distances > positive_distance[:, None])
            closest_farther = anchor_distances.masked_fill(~farther, float("inf")).amin(dim=1)  # (P,)
            farthest = anchor_distances.masked_fill(~negatives, float("-inf")).amax(dim=1)  # (P,)
            valid = has_negative[anchor_rows]
            negative_distance = torch.where(farther.any(dim=1), closest_farther, farthest)
            losses = F.relu(positive_distance - negative_distance.where(valid, positive_distance) + self.margin)

        gathered = all_z1.shape[0] != batch
        count = _global_count(valid.sum(), gathered)
        workers = global_batch // batch
        # No valid anchor anywhere: every term is 0 and the clamp keeps a graph-connected 0.
        return losses.where(valid, 0.0).sum() * workers / count.clamp(min=1)


class _TwoViewPairwise(nn.Module):
    """Hadsell et al.'s pairwise loss over the cross-view pairs (local z1_i, global z2_j), mean of
    the similar term + mean of the dissimilar term."""

    def __init__(self, margin: float, distance: str, gather_distributed: bool) -> None:
        super().__init__()
        self.margin = margin
        self.distance = distance
        self.gather_distributed = gather_distributed

    def forward(
        self, z1: torch.Tensor, z2: torch.Tensor, labels: torch.Tensor | None = None, *, use_labels: bool = False
    ) -> torch.Tensor:
        _check_views(z1, z2, labels)
        batch, device = z1.shape[0], z1.device
        _, all_z2, offset = _gather_views(z1, z2, self.gather_distributed)
        global_batch = all_z2.shape[0]
        # For euclidean, cdist's backward is 0 at d = 0, so d^2 keeps a finite gradient there.
        distances = pairwise_distance(z1, all_z2, self.distance)  # (B, WB)
        sample, all_samples = _keys(batch, offset, global_batch, None, device)
        label, all_labels = _keys(batch, offset, global_batch, labels, device)
        similar = (label if use_labels else sample)[:, None] == (all_labels if use_labels else all_samples)[None, :]
        dissimilar = label[:, None] != all_labels[None, :]  # another image, or another class
        similar_sum = distances.pow(2).where(similar, 0.0).sum()
        dissimilar_sum = F.relu(self.margin - distances).pow(2).where(dissimilar, 0.0).sum()

        gathered = global_batch != batch
        similar_count, dissimilar_count = _global_count(torch.stack([similar.sum(), dissimilar.sum()]), gathered)
        workers = global_batch // batch
        return workers * (similar_sum / similar_count.clamp(min=1) + dissimilar_sum / dissimilar_count.clamp(min=1))
