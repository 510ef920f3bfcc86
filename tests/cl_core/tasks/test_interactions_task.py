"""interactions.py: an InteractionsTask on synthetic clustered interactions, stepped without Ray:
a step lowers the loss, the shards split the rows, two DDP workers take the step one process
takes on the global batch, and a few epochs beat most-popular."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.parallel import DistributedDataParallel

from cl_core.config import build_config
from cl_core.evaluation.ranking import ranking_metrics
from cl_core.evaluation.recommender_baselines import MostPopular
from cl_core.losses import SampledSoftmaxLoss
from cl_core.models.spec import TwoTowerModelSpec, model_spec_from_dict
from cl_core.models.two_tower import TwoTowerSizes
from cl_core.recommender import tower_vectors, vector_scorer
from cl_core.recommender.synthetic import clustered_interactions
from cl_core.tasks.interactions import InteractionsTask

CPU = torch.device("cpu")
LOSS = {"name": "sampled_softmax", "temperature": 0.1}
SYNTHETIC = clustered_interactions(num_users=120, num_items=60, clusters=4, per_user=10, seed=1)


def _task(rank: int = 0, world: int = 1, loss=LOSS) -> InteractionsTask:
    torch.manual_seed(0)
    data = SYNTHETIC.training_data(history_length=5)
    spec = TwoTowerModelSpec(data.sizes, feature_dim=16, hidden=(32,), embedding_dim=16)
    return InteractionsTask(data, spec, loss, rank, world, seed=3, device=CPU)


def _batch_loss(task: InteractionsTask, rows: torch.Tensor) -> float:
    users, items = task.inputs.interaction_batch(task.shard[rows])
    with torch.no_grad():
        u, v = task.model(users, items)
        return float(task.loss_fn(u, v, task.inputs.log_q[items.item], item_ids=items.item, user_ids=users.user))


def test_one_step_lowers_the_loss_of_its_batch_and_moves_both_towers():
    task = _task()
    task.attach(task.model)
    rows = torch.arange(64)
    before_loss = _batch_loss(task, rows)
    before = {name: value.clone() for name, value in task.model.state_dict().items()}
    optimizer = torch.optim.AdamW(task.model.parameters(), lr=1e-2)
    metrics = task.step(rows, optimizer, None)
    assert metrics["loss"] == pytest.approx(before_loss, rel=1e-5) and metrics["lr"] == 1e-2
    assert _batch_loss(task, rows) < before_loss
    moved = {name.split(".")[0] for name, value in task.model.state_dict().items() if not torch.equal(value, before[name])}
    assert {"user_id", "item_id", "user_features", "item_features", "user_tower", "item_tower"} <= moved


def test_the_workers_split_the_interactions_and_share_the_popularity():
    rank0, rank1 = _task(0, 2), _task(1, 2)
    total = len(SYNTHETIC.train_users)
    assert rank0.num_rows == rank1.num_rows == total // 2
    assert not set(rank0.shard.tolist()) & set(rank1.shard.tolist())
    assert torch.equal(rank0.inputs.log_q, rank1.inputs.log_q)


def test_the_loss_comes_from_the_config_and_the_spec_from_the_data():
    cfg = build_config({"data": {"modality": "interactions"}, "loss": {"name": "sampled_softmax", "temperature": 0.07}})
    task = _task(loss=cfg.loss)
    assert isinstance(task.loss_fn, SampledSoftmaxLoss) and task.loss_fn.temperature == 0.07
    assert model_spec_from_dict(task.spec.to_dict()) == task.spec
    other = TwoTowerModelSpec(TwoTowerSizes(120, 61), feature_dim=4)
    with pytest.raises(ValueError, match="the model spec is for"):
        InteractionsTask(SYNTHETIC.training_data(5), other, LOSS, 0, 1, 0, CPU)


BATCH = 16


def _ddp_step(rank: int) -> dict:
    task = _task(rank, 2)
    model = DistributedDataParallel(task.model)
    task.attach(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    metrics = task.step(torch.arange(BATCH), optimizer, None)
    return {"loss": metrics["loss"], "rows": task.shard[:BATCH],
            "grads": {name: p.grad.clone() for name, p in task.model.named_parameters()}}


@pytest.mark.slow  # two spawned interpreters, and DDP loads torch._dynamo (~10 s)
def test_two_ddp_workers_take_the_step_of_one_process_on_the_global_batch(run_distributed):
    """Through DDP as Ray Train's prepare_model wraps it: the (user, item) batches are dataclasses,
    the items are gathered across the workers, and DDP averages the gradients."""
    results = run_distributed(_ddp_step, 2)
    task = _task()  # one worker: its shard is every row, in order
    task.attach(task.model)
    global_rows = torch.cat([results[0]["rows"], results[1]["rows"]])
    metrics = task.step(global_rows, torch.optim.SGD(task.model.parameters(), lr=0.1), None)
    assert (results[0]["loss"] + results[1]["loss"]) / 2 == pytest.approx(metrics["loss"], abs=1e-6)
    for name, parameter in task.model.named_parameters():
        for result in results:
            torch.testing.assert_close(result["grads"][name], parameter.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_a_few_epochs_beat_most_popular_on_clustered_interactions():
    task = _task()
    task.attach(task.model)
    optimizer = torch.optim.AdamW(task.model.parameters(), lr=1e-2, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        order = torch.randperm(task.num_rows, generator=generator)
        for start in range(0, task.num_rows - 63, 64):
            task.step(order[start : start + 64], optimizer, None)
    users, items = tower_vectors(task.model, task.inputs)
    assert users.shape == (120, 16) and items.shape == (60, 16)
    train, test = (SYNTHETIC.train_users, SYNTHETIC.train_items), (SYNTHETIC.test_users, SYNTHETIC.test_items)
    model = ranking_metrics(vector_scorer(users, items), 120, 60, train, test)
    popular = ranking_metrics(MostPopular(60).fit(*train).scores, 120, 60, train, test)
    assert model["ndcg_at_10"] > 2 * popular["ndcg_at_10"] and model["recall_at_10"] > popular["recall_at_10"] + 0.2
    assert np.isclose(popular["users"], 120)
