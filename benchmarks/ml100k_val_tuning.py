"""MovieLens 100k: the recommender's `history_length` and softmax temperature, and BPR-MF's `reg`,
chosen by NDCG@10 on the val split alone, then the chosen settings' test numbers, reported once
(issue #25).

    .venv/bin/python benchmarks/ml100k_val_tuning.py [--part model|mf|all] [--history 5 10 20]
                                                     [--temperature 0.025 0.05 0.1]
                                                     [--reg 1e-4 3e-4 1e-3 3e-3 1e-2] [--threads 1]
                                                     [--epochs N] [--mf-epochs N]

Single-process runs, no Ray, MLflow or Prefect: the two towers train as one Ray worker would
train on the global batch (`InteractionsTask` with world 1, `configs/ml100k.yaml`'s optimizer,
schedule, batch and seeds), and are scored through the registered model's encoder on the
version's own inputs, exactly as `clpipe evaluate` scores them (`ranking_protocol`):

- val: the model trained on train, each user's history its train items, its train items left
  out of the ranking; BPR-MF fitted on train, one fit per `reg`.
- test (the chosen settings only): the same model, each user's history and the left-out items
  its train and val items; most-popular and BPR-MF (chosen `reg`) fitted on train and val, as
  the protocol reports them.

`--part model` and `--part mf` run the two searches on their own (e.g. side by side, one core
each). Needs the recbole wheel (`make install`) for the "ml-100k" source.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cl_core.config import load_config
from cl_core.datasets import DatasetStore, load_interactions
from cl_core.evaluation import ranking_protocol as protocol
from cl_core.evaluation.intervals import mean_interval
from cl_core.evaluation.ranking import Ranking, rank_users
from cl_core.evaluation.recommender_baselines import BPRMF
from cl_core.recommender.dataset import TRAIN_SPLITS, seen_before
from cl_core.recommender.encoder import TwoTowerEncoder
from cl_core.tasks.interactions import interactions_task
from cl_core.tasks.optimizer import build_optimizer
from cl_core.tasks.schedule import warmup_cosine

from _common import REPO, table

PRIMARY = protocol.PRIMARY


def _ndcg(ranking: Ranking) -> str:
    interval = mean_interval(ranking.per_user[PRIMARY])
    return f"{ranking.metrics[PRIMARY]:.4f} [{interval.low:.4f}, {interval.high:.4f}]"


def _train(cfg, params: dict[str, Any]) -> tuple[Any, float, float]:
    """The two towers trained in this process as one worker over the global batch, as
    `flows.ray_edge.train_worker` trains them: (the task, the last epoch's mean loss, seconds)."""
    torch.manual_seed(cfg.train.seed)
    task = interactions_task(cfg, params, 0, 1, torch.device("cpu"))
    task.attach(task.model)
    batch = cfg.train.batch_size
    steps = task.num_rows // batch
    optimizer = build_optimizer(task.model, task.loss_fn, task.backbone, cfg.train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(steps * cfg.train.epochs, steps * cfg.train.warmup_epochs))
    generator, started, losses = torch.Generator(), time.perf_counter(), []
    for epoch in range(cfg.train.epochs):
        generator.manual_seed(cfg.train.seed * 1000 + epoch)
        order = torch.randperm(task.num_rows, generator=generator)
        losses = [task.step(order[i * batch : (i + 1) * batch], optimizer, scheduler)["loss"] for i in range(steps)]
    return task, float(np.mean(losses)), time.perf_counter() - started


def _embed(encoder: TwoTowerEncoder):
    """What the registered pyfunc does with the protocol's inputs (one dict per user or item)."""

    def embed(inputs: list[dict[str, Any]]) -> np.ndarray:
        features = [row.get("features") for row in inputs]
        if "user" in inputs[0]:
            return encoder.user_vectors([row["user"] for row in inputs], [row["history"] for row in inputs], features)
        return encoder.item_vectors([row["item"] for row in inputs], features)

    return embed


def _model_rankings(embed, dataset, data, splits: tuple[str, ...]) -> dict[str, Ranking]:
    items = protocol.item_vectors(embed, dataset)
    return {split: protocol.vector_ranking(protocol.user_vectors(embed, dataset, seen_before(split)), items, data, split)
            for split in splits}


def _with(cfg, history_length: int, temperature: float):
    towers = cfg.model.two_tower.model_copy(update={"history_length": history_length})
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"two_tower": towers}),
                                  "loss": cfg.loss.model_copy(update={"temperature": temperature})})


def tune_model(cfg, params: dict[str, Any], dataset, data, lengths: list[int], temperatures: list[float]) -> None:
    """history_length first (at the config's temperature), then the temperature at the chosen
    length (coordinate search: one setting at a time)."""
    rows: list[tuple] = []
    val: dict[tuple[int, float], tuple[float, Any]] = {}

    def run(length: int, temperature: float) -> None:
        task, loss, seconds = _train(_with(cfg, length, temperature), params)
        encoder = TwoTowerEncoder.from_dataset(task.spec, task.model.state_dict(), data)
        ranking = _model_rankings(_embed(encoder), dataset, data, ("val",))["val"]
        val[length, temperature] = (ranking.metrics[PRIMARY], encoder)
        rows.append((length, temperature, _ndcg(ranking), f"{ranking.metrics['recall_at_20']:.4f}", f"{loss:.4f}",
                     f"{seconds:.0f}"))
        print(f"history {length}, temperature {temperature:g}: val NDCG@10 {_ndcg(ranking)} ({seconds:.0f} s)", flush=True)

    for length in lengths:
        run(length, cfg.loss.temperature)
    length = max(lengths, key=lambda n: val[n, cfg.loss.temperature][0])
    for temperature in temperatures:
        if (length, temperature) not in val:
            run(length, temperature)
    print(table(rows, ("history_length", "temperature", "val NDCG@10 [95 %]", "val recall@20", "final loss", "train s")))
    chosen = max(val, key=lambda setting: val[setting][0])
    rankings = _model_rankings(_embed(val[chosen][1]), dataset, data, ("val", "test"))
    print(f"chosen on val: history_length {chosen[0]}, temperature {chosen[1]:g}")
    print(table([(split, _ndcg(r), f"{r.metrics['recall_at_20']:.4f}", f"{r.metrics['mrr']:.4f}",
                  f"{r.metrics['coverage_at_10']:.2f}", int(r.metrics["users"])) for split, r in rankings.items()],
                ("two-tower split", "NDCG@10 [95 %]", "recall@20", "MRR", "coverage@10", "users")))


def tune_mf(cfg, data, regs: list[float]) -> None:
    mf = cfg.eval.mf.model_dump()
    num_users, num_items = len(data.users), len(data.items)
    (train_users, train_items), (val_users, val_items) = protocol.evaluation_pairs(data, "val")
    assert seen_before("val") == TRAIN_SPLITS
    rows, val = [], {}
    for reg in regs:
        started = time.perf_counter()
        model = BPRMF(num_users, num_items, **{**mf, "reg": reg}).fit(train_users, train_items)
        ranking = rank_users(model.scores, num_users, num_items, (train_users, train_items), (val_users, val_items))
        val[reg] = ranking.metrics[PRIMARY]
        seconds = time.perf_counter() - started
        rows.append((f"{reg:g}", _ndcg(ranking), f"{ranking.metrics['recall_at_20']:.4f}", f"{seconds:.0f}"))
        print(f"BPR-MF reg {reg:g}: val NDCG@10 {_ndcg(ranking)} ({seconds:.0f} s)", flush=True)
    print(table(rows, ("BPR-MF reg", "val NDCG@10 [95 %]", "val recall@20", "fit + rank s")))
    chosen = max(val, key=val.get)
    print(f"chosen on val: reg {chosen:g} (other settings: {mf})")
    chosen_cfg = cfg.eval.model_copy(update={"mf": cfg.eval.mf.model_copy(update={"reg": chosen})})
    rankings = protocol.baseline_rankings(data, chosen_cfg)
    print(table([(name, _ndcg(r), f"{r.metrics['recall_at_20']:.4f}", f"{r.metrics['mrr']:.4f}",
                  f"{r.metrics['coverage_at_10']:.2f}", int(r.metrics["users"])) for name, r in rankings.items()],
                ("baseline (train+val) on test", "NDCG@10 [95 %]", "recall@20", "MRR", "coverage@10", "users")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "ml100k.yaml"))
    parser.add_argument("--part", choices=("model", "mf", "all"), default="all")
    parser.add_argument("--history", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--temperature", type=float, nargs="+", default=[0.025, 0.05, 0.1],
                        help="the sampled softmax's temperatures, tried at the chosen history_length")
    parser.add_argument("--reg", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one core per part)")
    parser.add_argument("--epochs", type=int, help="train.epochs instead of the config's (a quick check)")
    parser.add_argument("--mf-epochs", type=int, help="eval.mf.epochs instead of the config's (a quick check)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {"train.epochs": args.epochs, "eval.mf.epochs": args.mf_epochs}
    cfg = load_config(args.config, {key: value for key, value in overrides.items() if value is not None})
    with tempfile.TemporaryDirectory() as folder:
        store = DatasetStore(Path(folder) / "datasets")
        ingested = store.ingest_interactions(cfg.data.source, cfg.data.name, cfg.data.interactions)
        dataset = store.resolve(cfg.data.name, ingested.version)
        data = load_interactions(dataset)
        print(f"{dataset.name}@{dataset.version}: {dataset.splits} ({len(data.users)} users, {len(data.items)} items)")
        params = {"dataset_root": str(store.root), "dataset_name": dataset.name, "dataset_version": dataset.version}
        if args.part in ("model", "all"):
            tune_model(cfg, params, dataset, data, args.history, args.temperature)
        if args.part in ("mf", "all"):
            tune_mf(cfg, data, args.reg)


if __name__ == "__main__":
    main()
