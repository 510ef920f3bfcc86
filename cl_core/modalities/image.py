"""Images: a version of labelled images, an image backbone trained on two augmented views (or
fine-tuned from pretrained weights), scored by kNN and a linear probe on the validation split (what
decides) and the test split (reported)."""

from types import MappingProxyType
from typing import Any

from cl_core.modalities.record import Modality, PrimaryMetric


def architecture(config: Any) -> str:
    """The backbone: ResNet-style stages, or a pretrained backbone's name and where it started."""
    if config.model.backbone != "resnet":
        start = "pretrained" if config.model.uses_pretrained_weights else "scratch"
        return f"{config.model.backbone}-{start}"
    depths = "-".join(map(str, config.model.depths))
    widths = "-".join(map(str, config.model.widths))
    return f"resnet-d{depths}-w{widths}"


IMAGE = Modality(
    name="image",
    noun="images",
    primary=PrimaryMetric("knn_top1"),  # kNN top-1 accuracy; the gate reads it on the validation split
    input_column="image",
    evaluation="kNN top-1 (with a bootstrap interval) and linear probe on the val split (what the gate reads) and the test "
               "split (reported), alignment and uniformity on test, next to the raw-pixel baseline",
    forms=("two_view", "momentum"),
    # The config's own defaults are image-first (ntxent, lr 2e-3, 30 epochs): nothing to add.
    image_backbone=True,
    architecture=architecture,
    query="image",
    query_in_base64=True,
    parts=MappingProxyType({
        "schema": "cl_core.datasets.records:IMAGE_SCHEMA",
        "spec": "cl_core.models.spec:ImageModelSpec",
        "task": "cl_core.tasks.image:ImageTask",
        "rows": "cl_core.embeddings.image_rows",
        "training_data": "cl_core.tasks.training_data:image",
        "check_source": "cl_core.datasets.sources.source_checks:image",
        "ingest": "cl_core.datasets.sources.image_ingest:ingest_source",
        "protocol": "cl_core.evaluation.image_protocol",
    }),
)
