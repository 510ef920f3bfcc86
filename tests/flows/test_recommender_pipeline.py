"""End to end for recommendation: synthetic interaction files (with user and item side tables)
-> `clpipe run` (the two towers on 2 Ray workers) -> registry -> evaluation against most-popular
and BPR-MF -> the user/item embedding table; then the registered pyfunc against the table,
`clpipe recommend` and `clpipe reembed`; last, a new user and a new interaction added to the
source, `clpipe refresh`, and recommendations from the refreshed table with no retraining. One run,
shared by every test of the module (the refresh test, which changes the workspace, comes last)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest
from mlflow import MlflowClient

from cl_core.embeddings import open_current
from cl_core.recommender.synthetic import clustered_interactions
from tests.conftest import clpipe, clpipe_together, last_json
from tests.flows.ray_edge.test_epoch_validation import epoch_score_is_the_gates

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MODEL = "clusters-two-tower"
CONFIG = """
data:
  modality: interactions
  source: {interactions}
  name: clusters
  interactions:
    users: {{path: {users}, id_column: user_id, categorical_columns: [segment], numeric_columns: [score]}}
    items: {{path: {items}, id_column: item_id, title_column: title, multi_valued_columns: [genres],
             numeric_columns: [year]}}
model:
  two_tower: {{feature_dim: 16, hidden: [32], embedding_dim: 16, history_length: 4}}
loss: {{name: sampled_softmax, temperature: 0.1}}
train: {{epochs: 3, batch_size: 64, lr: 0.01, workers: 2}}
eval:
  mf: {{epochs: 10, dim: 16}}
registry: {{model_name: {model}}}
"""
USERS, ITEMS, PER_USER = 60, 40, 8


@pytest.fixture(scope="module")
def recommender_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("recommender")
    paths = clustered_interactions(num_users=USERS, num_items=ITEMS, clusters=4, per_user=PER_USER, seed=3).write_csv(
        root / "source")
    config = root / "clusters.yaml"
    config.write_text(CONFIG.format(model=MODEL, **{key: str(path) for key, path in paths.items()}))
    workspace = root / "workspace"
    summary = last_json(clpipe("run", "--config", str(config), "--json", workspace=workspace))
    mlflow.set_tracking_uri(f"sqlite:///{workspace / 'mlflow.db'}")
    table = open_current(workspace / "embeddings", MODEL, "clusters").to_table()
    yield {"summary": summary, "workspace": workspace, "table": table, "config": config, "paths": paths}
    mlflow.set_tracking_uri(None)


def _rows(table, entity: str) -> tuple[list[str], np.ndarray, list[str | None]]:
    rows = table.filter(pc.equal(table.column("entity"), entity))
    vectors = np.stack(rows.column("embedding").to_numpy(zero_copy_only=False))  # (N, D)
    return rows.column("id").to_pylist(), vectors, rows.column("title").to_pylist()


def test_training_on_two_workers_registers_the_champion(recommender_run):
    summary = recommender_run["summary"]
    assert summary["ingest"]["splits"] == {"train": USERS * (PER_USER - 2), "val": USERS, "test": USERS}
    train = summary["train"]
    assert train["train_metrics"]["world_size"] == 2 and train["embedding_dim"] == 16
    client = MlflowClient()
    assert sorted(m.step for m in client.get_metric_history(train["run_id"], "loss")) == [0, 1, 2]
    params = client.get_run(train["run_id"]).data.params
    assert params["loss.name"] == "sampled_softmax" and params["model.two_tower.history_length"] == "4"
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == train["model_version"] == "1"


def test_evaluation_scores_val_and_test_and_both_baselines_on_test(recommender_run):
    evaluated = recommender_run["summary"]["evaluate"]
    assert evaluated["splits"] == ["val", "test"] and evaluated["primary_metric"] == "ndcg_at_10"
    metrics, baseline = evaluated["metrics"], evaluated["baseline"]
    keys = ("recall_at_10", "recall_at_20", "ndcg_at_10", "ndcg_at_20", "mrr", "coverage_at_10", "coverage_at_20")
    for key in keys:
        for split in ("val", "test"):
            assert 0.0 <= metrics[f"{split}.{key}"] <= 1.0, (split, key)
        assert f"popular_{key}" in baseline and f"mf_{key}" in baseline, key
    assert metrics["val.users"] == metrics["test.users"] == USERS
    for split in ("val", "test"):
        low, high = evaluated["intervals"][f"{split}.ndcg_at_10"]
        assert low <= metrics[f"{split}.ndcg_at_10"] <= high
    logged = MlflowClient().get_run(recommender_run["summary"]["train"]["run_id"]).data.metrics
    assert logged["eval.val.ndcg_at_10"] == pytest.approx(metrics["val.ndcg_at_10"])
    assert logged["eval.test.ndcg_at_10"] == pytest.approx(metrics["test.ndcg_at_10"])
    assert logged["eval.baseline_popular.ndcg_at_10"] == pytest.approx(baseline["popular_ndcg_at_10"])
    assert logged["eval.baseline_mf.recall_at_20"] == pytest.approx(baseline["mf_recall_at_20"])
    assert evaluated["promotion"]["reason"].startswith("no champion yet; v1 val ndcg_at_10=")
    assert evaluated["promotion"]["promoted"]


def test_the_table_holds_every_user_and_item_and_the_pyfunc_gives_its_vectors(recommender_run):
    table, exported = recommender_run["table"], recommender_run["summary"]["reembed"]
    assert table.num_rows == exported["rows"] == USERS + ITEMS
    user_ids, user_vectors, _ = _rows(table, "user")
    item_ids, item_vectors, titles = _rows(table, "item")
    assert len(user_ids) == USERS and len(item_ids) == ITEMS and set(user_ids) & set(item_ids)  # "0" is both
    assert all(title.startswith("Item ") for title in titles)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    np.testing.assert_allclose(model.predict(pd.DataFrame({"user": user_ids})), user_vectors, atol=1e-5)
    np.testing.assert_allclose(model.predict(pd.DataFrame({"item": item_ids})), item_vectors, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(item_vectors, axis=1), 1.0, atol=1e-5)


READS = {  # the module's calls that only read the workspace, before the refresh test changes it
    "top5": ("recommend", "--model", f"{MODEL}@champion", "--user", "7", "-k", "5"),
    "top10": ("recommend", "--model", f"{MODEL}@champion", "--user", "7", "--json"),
    "all": ("recommend", "--model", f"{MODEL}@champion", "--user", "7", "-k", str(ITEMS), "--json"),
    "unknown": ("recommend", "--model", f"{MODEL}@champion", "--user", "nobody"),
    "reembed": ("reembed", "--model", MODEL, "--dataset", "clusters", "--json"),
    "search_user": ("search", "--model", MODEL, "--user", "7", "--json"),
    "search_item": ("search", "--model", MODEL, "--id", "3", "-k", "4", "--json"),
}


@pytest.fixture(scope="module")
def reads(recommender_run) -> dict:
    """What each of READS printed: they were started together (each is mostly one busy core)."""
    return dict(zip(READS, clpipe_together(*READS.values(), workspace=recommender_run["workspace"]), strict=True))


def test_recommend_lists_k_unseen_items_with_titles(reads):
    shown = reads["top5"]
    assert shown.returncode == 0, shown.stderr[-3000:]
    listed = [line for line in shown.stdout.splitlines() if "Item " in line]
    assert len(listed) == 5
    result = last_json(reads["top10"])
    items = result["items"]
    assert len(items) == 10 and [item["rank"] for item in items] == list(range(1, 11))
    assert [item["score"] for item in items] == sorted((item["score"] for item in items), reverse=True)
    assert all(item["title"] in line for item, line in zip(items, listed, strict=False))  # the same top 5
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    seen = set(model.unwrap_python_model().seen_item_ids("7"))
    assert len(seen) == PER_USER - 1 and not seen & {item["id"] for item in items}


def test_an_unknown_user_fails_in_one_line(reads):
    failed = reads["unknown"]
    assert failed.returncode == 1 and failed.stdout == ""
    errors = [line for line in failed.stderr.splitlines() if line.strip()]
    assert errors[-1].startswith("clpipe recommend failed: user 'nobody' has no row in snapshot ")
    for named in (MODEL, "v1", "clusters@", "clpipe refresh"):  # the model, its version, the dataset, the fix
        assert named in errors[-1], errors[-1]
    assert sum(line.startswith("clpipe recommend failed") for line in errors) == 1


def test_search_for_a_user_is_recommend_and_an_item_finds_other_items(reads):
    recommended, searched = last_json(reads["top10"]), last_json(reads["search_user"])
    assert searched["snapshot"] == recommended["snapshot"] and searched["model"] == recommended["model"]
    assert searched["masked_items"] == recommended["masked_items"]
    assert [(h["id"], h["title"]) for h in searched["hits"]] == [(i["id"], i["title"]) for i in recommended["items"]]
    assert [h["score"] for h in searched["hits"]] == pytest.approx([i["score"] for i in recommended["items"]])
    similar = last_json(reads["search_item"])["hits"]
    assert len(similar) == 4 and {h["entity"] for h in similar} == {"item"} and "3" not in {h["id"] for h in similar}


def test_reembed_finds_the_table_up_to_date(reads):
    reembedded = last_json(reads["reembed"])
    assert reembedded["action"] == "up_to_date" and reembedded["rows"] == USERS + ITEMS
    assert reembedded["rows_embedded"] == 0


def _interactions(path) -> dict[str, list[tuple[str, int]]]:
    """Every user's (item, timestamp) in the source file, in any split."""
    by_user: dict[str, list[tuple[str, int]]] = {}
    for line in path.read_text().splitlines()[1:]:
        user, item, timestamp = line.split(",")
        by_user.setdefault(user, []).append((item, int(timestamp)))
    return by_user


def _check_from_table(result: dict, table, user: str, masked: set[str]) -> None:
    """The listing is exact search with the table's own user row: every item not in `masked`,
    scored by its dot product with the user's vector, best first."""
    user_ids, user_vectors, _ = _rows(table, "user")
    item_ids, item_vectors, _ = _rows(table, "item")
    scores = dict(zip(item_ids, item_vectors @ user_vectors[user_ids.index(user)], strict=True))
    listed = [item["id"] for item in result["items"]]
    assert not set(listed) & masked and len(listed) == min(result["k"], ITEMS - len(masked))
    assert [item["score"] for item in result["items"]] == pytest.approx([scores[i] for i in listed], abs=1e-5)
    best_left_out = max((score for item, score in scores.items() if item not in masked and item not in listed),
                        default=-np.inf)
    assert min(item["score"] for item in result["items"]) >= best_left_out - 1e-6


def test_recommend_leaves_out_every_item_of_the_user_in_any_split(recommender_run, reads):
    """Under leave-last-out the test item is the user's last interaction: it is left out too."""
    workspace, table = recommender_run["workspace"], recommender_run["table"]
    had = {item for item, _ in _interactions(recommender_run["paths"]["interactions"])["7"]}
    assert len(had) == PER_USER
    result = last_json(reads["all"])
    assert result["masked_items"] == PER_USER and len(result["items"]) == ITEMS - PER_USER
    _check_from_table(result, table, "7", had)
    current = (workspace / "embeddings" / MODEL / "clusters" / "CURRENT").read_text().strip()
    assert result["snapshot"] == current and result["model"] == {"name": MODEL, "version": "1"}
    assert result["dataset"] == {"name": "clusters", "version": recommender_run["summary"]["ingest"]["version"]}


def test_a_user_new_in_the_source_gets_recommendations_after_refresh_without_retraining(recommender_run):
    """A new user (and a new interaction of user 7) appended to the source, `clpipe refresh`: the
    new user's row is embedded by the user tower from its history, and `recommend` ranks from that
    row, leaving out every item the user has; user 7's row follows its new history. Runs last: it
    adds a dataset version and a snapshot to the module's workspace."""
    workspace, paths = recommender_run["workspace"], recommender_run["paths"]
    before = _interactions(paths["interactions"])
    mine = [item for item, _ in before["7"]]
    new_user, new_items = "1000", mine[:4]
    extra_for_7 = next(str(i) for i in range(ITEMS) if str(i) not in mine)
    with paths["interactions"].open("a") as source:
        source.writelines(f"{new_user},{item},{t}\n" for t, item in enumerate(new_items))
        source.write(f"7,{extra_for_7},{PER_USER + 5}\n")
    users = paths["users"].read_text().splitlines()
    segment = next(line.split(",")[1] for line in users if line.startswith("7,"))
    paths["users"].write_text("\n".join([*users, f"{new_user},{segment},0.5"]) + "\n")

    refreshed = last_json(clpipe("refresh", "--config", str(recommender_run["config"]), "--json", workspace=workspace))
    reembedded = refreshed["reembed"]
    assert reembedded["action"] == "incremental" and reembedded["model_version"] == "1"
    table = open_current(workspace / "embeddings", MODEL, "clusters").to_table()

    users_had = ((new_user, set(new_items)), ("7", {*mine, extra_for_7}))
    listings = clpipe_together(*(("recommend", "--model", f"{MODEL}@champion", "--user", user, "-k", "5", "--json")
                                 for user, _ in users_had), workspace=workspace)
    for (user, had), listing in zip(users_had, listings, strict=True):
        result = last_json(listing)
        assert result["snapshot"] == reembedded["snapshot"] and result["model"]["version"] == "1"
        assert result["dataset"]["version"] == refreshed["ingest"]["version"] == reembedded["dataset_version"]
        assert result["masked_items"] == len(had)
        _check_from_table(result, table, user, had)
    assert [str(v.version) for v in MlflowClient().search_model_versions(f"name='{MODEL}'")] == ["1"]  # no retraining


def test_a_sweeps_epoch_score_of_the_final_checkpoint_is_what_the_gate_read(recommender_run):
    """What a sweep's trial reports after each epoch (`epoch_validation`, the towers built in memory
    from the checkpoint and the dataset) equals the gate's val NDCG@10 of the registered model."""
    epoch_score_is_the_gates(recommender_run["summary"], recommender_run["config"], recommender_run["workspace"],
                             "ndcg_at_10")
