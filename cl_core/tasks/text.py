"""What a worker trains on text data: its shard of the training examples, the pretrained
sentence encoder, the tokenizer and the objective (mnrl, simcse or cosent). The loop around it
is `flows.ray_edge.train_worker`, shared with images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cl_core.config import PipelineConfig
from cl_core.datasets import DatasetStore, DatasetVersion
from cl_core.losses import build_objective
from cl_core.models.spec import TextModelSpec
from cl_core.tasks.sharding import shard_rows
from cl_core.text_training import TextExamples, select_examples, text_train_step

TEXT_COLUMNS = ["id", "text1", "text2", "score", "negatives"]


def training_examples(dataset: DatasetVersion, cfg: PipelineConfig) -> TextExamples:
    """All training examples of the configured objective in the train split (every worker
    derives the same list, then keeps its shard)."""
    table = dataset.read(split="train", columns=TEXT_COLUMNS)
    return select_examples(table, cfg.loss.name, cfg.loss.positive_min_score, cfg.loss.hard_negatives)


class TextTask:
    """Fine-tunes the configured Hugging Face encoder (mean pooling, optional projection) on
    this worker's examples; bf16 autocast on a GPU."""

    def __init__(self, cfg: PipelineConfig, params: dict[str, Any], rank: int, world: int, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        dataset = DatasetStore(Path(params["dataset_root"])).resolve(params["dataset_name"], params["dataset_version"])
        examples = training_examples(dataset, cfg)
        self.examples = examples.take(shard_rows(len(examples), rank, world, cfg.train.seed))
        self.num_rows = len(self.examples)
        self.spec = TextModelSpec.from_config(cfg.model)
        self.model: nn.Module = self.spec.build()
        self.backbone: nn.Module = self.model.encoder  # learns at train.lr * train.backbone_lr_mult
        self.tokenizer = self.spec.build_tokenizer()
        self.loss_fn = build_objective(cfg.loss, "text").to(device)
        self.autocast_dtype = torch.bfloat16 if device.type == "cuda" else None

    def attach(self, model: nn.Module) -> None:
        self.prepared = model

    def step(self, rows: torch.Tensor, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, float]:
        return text_train_step(
            self.prepared, self.tokenizer, self.examples.take(rows), self.cfg.loss.name, self.loss_fn,
            optimizer, scheduler, device=self.device, autocast_dtype=self.autocast_dtype,
            chunk_size=self.cfg.train.grad_cache_chunk,
        )

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass
