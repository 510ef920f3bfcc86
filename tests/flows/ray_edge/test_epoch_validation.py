"""A sweep's per-epoch score (`flows/ray_edge/epoch_validation.py`) is the promotion gate's: the
final checkpoint of the session's digits run, scored in memory, gives the val kNN top-1 and
interval its registered model was evaluated with. The text and recommender runs check the same
in their own modules (`epoch_score_is_the_gates`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cl_core.config import load_config
from flows.ray_edge.epoch_validation import val_scores


def epoch_score_is_the_gates(summary: dict, config: Path, workspace: Path, metric: str) -> None:
    """`clpipe run`'s `summary`: its final checkpoint, scored as a sweep's trial scores each epoch,
    against what its evaluation logged for the val split."""
    train, ingested = summary["train"], summary["ingest"]
    state = torch.load(Path(train["checkpoint_dir"]) / "state.pt", map_location="cpu", weights_only=True)
    scores = val_scores(state, load_config(config), str(workspace / "datasets"), ingested["name"], ingested["version"])
    evaluated = summary["evaluate"]
    key = f"val.{metric}"
    assert scores[key] == pytest.approx(evaluated["metrics"][key], abs=1e-6)
    low, high = evaluated["intervals"][key]
    assert scores[f"{key}.ci_low"] == pytest.approx(low, abs=1e-6) and scores[f"{key}.ci_high"] == pytest.approx(high, abs=1e-6)


@pytest.mark.slow
@pytest.mark.integration
def test_a_sweeps_epoch_score_of_the_final_checkpoint_is_what_the_gate_read(digits_run):
    epoch_score_is_the_gates(digits_run.summary, digits_run.config, digits_run.workspace, "knn_top1")
