"""Interactions: (user, item) rows split by time, two towers trained from scratch on train, scored
by NDCG@10 of each user's held-out item (val decides, test is reported) beside most-popular and
BPR-MF baselines."""

from types import MappingProxyType
from typing import Any

from cl_core.modalities.record import Modality, PrimaryMetric


def architecture(config: Any) -> str:
    """The two towers' widths: feature, hidden layers, output, history length."""
    towers = config.model.two_tower
    hidden = "-".join(map(str, towers.hidden)) or "0"
    return f"two-tower-f{towers.feature_dim}-h{hidden}-d{towers.embedding_dim}-l{towers.history_length}"


INTERACTIONS = Modality(
    name="interactions",
    noun="interactions",
    primary=PrimaryMetric("ndcg_at_10"),  # NDCG@10 of the held-out item
    input_column="input",  # a user's or an item's row, as JSON (`cl_core.embeddings.interaction_rows`)
    evaluation="recall, NDCG, MRR and coverage at 10 and 20 on the val and test splits, next to most-popular and BPR-MF (test)",
    forms=("user_item",),
    # The two towers train from scratch on (user, item) rows: many small steps per epoch.
    defaults=MappingProxyType({
        "loss": {"name": "sampled_softmax", "temperature": 0.05},
        "train": {"epochs": 10, "batch_size": 512, "lr": 2e-3, "weight_decay": 0.0, "warmup_epochs": 0},
    }),
    backbone_lr_mult=False,
    trains="the two towers train from scratch",
    local_ingest_only="interactions are split by time over all their rows at once",
    rows_from_whole_version=True,
    source_section="interactions",
    model_noun="towers",
    architecture=architecture,
    parts=MappingProxyType({
        "schema": "cl_core.datasets.sources.interactions.records:INTERACTIONS_SCHEMA",
        "spec": "cl_core.models.spec:TwoTowerModelSpec",
        "task": "cl_core.tasks.interactions:interactions_task",
        "rows": "cl_core.embeddings.interaction_rows",
        "training_data": "cl_core.tasks.training_data:interactions",
        "check_source": "cl_core.datasets.sources.source_checks:interactions",
        "ingest": "cl_core.datasets.sources.interactions.ingest:ingest_source",
        "protocol": "cl_core.evaluation.ranking_protocol",
    }),
)
