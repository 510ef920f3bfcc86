"""The modality-specific part of training on one data-parallel worker, and how it is chosen."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from cl_core.config import PipelineConfig
from cl_core.modalities import modality
from cl_core.models.spec import ModelSpec


class WorkerTask(Protocol):
    """What a training loop needs from a modality: the model, the objective, this worker's
    rows and one optimisation step over some of them."""

    model: nn.Module  # before the loop wraps it (DDP)
    backbone: nn.Module  # the part of `model` that learns at train.lr * train.backbone_lr_mult
    loss_fn: nn.Module
    num_rows: int  # this worker's training examples
    spec: ModelSpec  # what the registry needs to rebuild the model

    def attach(self, model: nn.Module) -> None: ...  # the prepared (DDP) model
    def step(self, rows: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, float]: ...
    def extra_state(self) -> dict[str, Any]: ...  # e.g. MoCo's key encoder
    def load_extra_state(self, state: dict[str, Any]) -> None: ...


def build_task(cfg: PipelineConfig, params: dict[str, Any], rank: int, world: int, device: torch.device) -> WorkerTask:
    """The task for `cfg.data.modality`, the "task" part of its record. `params` names the dataset: "dataset_root",
    "dataset_name" and "dataset_version"."""
    # The record names its task as text: transformers loads only for text runs, the towers only
    # for interactions.
    return modality(cfg.data.modality).part("task")(cfg, params, rank, world, device)
