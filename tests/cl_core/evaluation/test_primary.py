"""The primary metrics table: one row per modality, read by the protocols and the champion gate."""

import subprocess
import sys

import pytest

from cl_core.evaluation.primary import PRIMARY_METRICS, PrimaryMetric, primary_metric


def test_one_row_per_modality_with_its_name_and_direction():
    assert {kind: (entry.name, entry.higher_is_better, entry.fallback) for kind, entry in PRIMARY_METRICS.items()} == {
        "image": ("knn_top1", True, None),
        "text": ("sts_spearman", True, "mrr_at_10"),
        "interactions": ("ndcg_at_10", True, None),
    }
    with pytest.raises(TypeError):
        PRIMARY_METRICS["audio"] = PrimaryMetric("x")  # read-only: defined here, not patched elsewhere


def test_text_falls_back_to_mrr_without_gold_scores():
    assert primary_metric("text", {"sts_spearman": 0.8, "mrr_at_10": 0.5}) == "sts_spearman"
    assert primary_metric("text", {"mrr_at_10": 0.5, "recall_at_1": 0.4}) == "mrr_at_10"
    assert primary_metric("text") == "sts_spearman"
    assert primary_metric("image", {"linear_probe": 0.9}) == "knn_top1"  # no fallback: always its own
    assert primary_metric("interactions", {"ndcg_at_10": 0.3}) == "ndcg_at_10"


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="no primary metric for dataset kind 'audio'"):
        primary_metric("audio")


def test_beats_is_strict_and_follows_the_direction():
    higher, lower = PrimaryMetric("acc"), PrimaryMetric("loss", higher_is_better=False)
    assert higher.beats(0.9, 0.8) and not higher.beats(0.8, 0.9) and not higher.beats(0.8, 0.8)
    assert lower.beats(0.1, 0.2) and not lower.beats(0.2, 0.1) and not lower.beats(0.2, 0.2)


def test_the_table_loads_without_torch():
    """`clpipe compare` and the CLI summary read the table: it must not cost the metrics' imports."""
    code = ("import sys, cl_core.evaluation.primary\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'sklearn'}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"cl_core.evaluation.primary pulled in: {result.stdout.strip()}"
