"""What a worker trains on interaction data: its shard of the training interactions, the two
towers and the in-batch sampled softmax with the logQ correction (`sampled_softmax`). The loop
around it (optimizer, schedule, checkpoints, resume, logging) is `flows.ray_edge.train_worker`, shared
with images and text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cl_core.config import PipelineConfig
from cl_core.datasets import DatasetStore
from cl_core.datasets.sources.interactions.data import load_interactions
from cl_core.losses import build_objective
from cl_core.models.spec import TwoTowerModelSpec
from cl_core.recommender.dataset import training_arrays
from cl_core.recommender.training_data import InteractionsData, TowerInputs
from cl_core.tasks.sharding import shard_rows
from cl_core.training_step import optimizer_step


class InteractionsTask:
    """Trains a two-tower model on this worker's shard of `data`'s interactions.

    A step embeds B (user, item) rows in one forward of the (DDP-wrapped) model, each user with
    the history it had before that interaction, and scores each user against the items of the
    global batch: logits u.v / temperature - log q(item), the popularity q counted over all
    training interactions (the same on every worker). Duplicates of a row's item, and the other
    items of the same user, in the global batch are masked, not negatives.

    Args:
        data: all training interactions (each worker derives its shard from the same data).
        spec: the model; its `sizes` must be `data.sizes`.
        loss: the objective, a `LossConfig` or its fields (name "sampled_softmax", temperature).
        rank, world: this worker and the number of workers; seed: the sharding seed.
        device: where the model trains.
    """

    def __init__(
        self,
        data: InteractionsData,
        spec: TwoTowerModelSpec,
        loss: Mapping[str, Any] | Iterable[tuple[str, Any]],
        rank: int,
        world: int,
        seed: int,
        device: torch.device,
    ) -> None:
        if spec.sizes != data.sizes:
            raise ValueError(f"the model spec is for {spec.sizes}, but the data has {data.sizes}")
        self.device = device
        self.inputs = TowerInputs(data)
        self.shard = torch.as_tensor(shard_rows(len(data), rank, world, seed), dtype=torch.long)
        self.num_rows = len(self.shard)
        self.spec = spec
        self.model: nn.Module = spec.build()
        # Nothing here is pretrained: the config keeps train.backbone_lr_mult at 1, so the whole
        # model learns at train.lr in one parameter group.
        self.backbone: nn.Module = self.model
        self.loss_fn: nn.Module = build_objective(loss, "interactions").to(device)

    def attach(self, model: nn.Module) -> None:
        """Called with the prepared (possibly DDP-wrapped) model before training starts."""
        self.prepared = model

    def step(self, rows: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, float]:
        """One optimisation step on `rows` (B,) of this worker's shard. Returns {"loss", "lr"}."""
        interactions = self.shard[rows]
        users, items = self.inputs.interaction_batch(interactions)
        log_q = self.inputs.log_q[items.item]
        self.prepared.train()
        user_vectors, item_vectors = self.prepared(users.to(self.device), items.to(self.device))  # (B, D) each
        loss = self.loss_fn(
            user_vectors, item_vectors, log_q.to(self.device),
            item_ids=items.item.to(self.device), user_ids=users.user.to(self.device),
        )
        return optimizer_step(loss, optimizer, scheduler)

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass


def interactions_task(cfg: PipelineConfig, params: dict[str, Any], rank: int, world: int,
                      device: torch.device) -> InteractionsTask:
    """The task of a training run: the train interactions (val is what the gate scores) of the dataset version
    `params` names ("dataset_root", "dataset_name", "dataset_version"), the towers of
    `model.two_tower`, the objective of `loss`. Every worker reads the whole version (the
    popularity and the histories need every interaction) and keeps its shard."""
    dataset = DatasetStore(Path(params["dataset_root"])).resolve(params["dataset_name"], params["dataset_version"])
    data = training_arrays(load_interactions(dataset), cfg.model.two_tower.history_length)
    spec = TwoTowerModelSpec.from_config(cfg.model, data.sizes)  # the history length travels with the model
    return InteractionsTask(data, spec, cfg.loss, rank, world, cfg.train.seed, device)
