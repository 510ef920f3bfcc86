"""Images: a version of labelled images, an image backbone trained on two augmented views (or
fine-tuned from pretrained weights), scored by kNN and a linear probe on the test split."""

from types import MappingProxyType

from cl_core.modalities.record import Modality, PrimaryMetric

IMAGE = Modality(
    name="image",
    noun="images",
    primary=PrimaryMetric("knn_top1"),  # kNN top-1 accuracy on the test split
    input_column="image",
    forms=("two_view", "momentum"),
    # The config's own defaults are image-first (ntxent, lr 2e-3, 30 epochs): nothing to add.
    image_backbone=True,
    parts=MappingProxyType({
        "schema": "cl_core.datasets.records:IMAGE_SCHEMA",
        "spec": "cl_core.models.spec:ImageModelSpec",
        "task": "cl_core.tasks.image:ImageTask",
        "rows": "cl_core.embeddings.image_rows",
        "protocol": "cl_core.evaluation.image_protocol",
    }),
)
