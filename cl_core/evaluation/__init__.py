"""Metrics for frozen embeddings: kNN and linear-probe accuracy, alignment/uniformity, 2-D maps."""

from cl_core.evaluation.alignment_uniformity import alignment, uniformity
from cl_core.evaluation.knn import knn_predict, knn_top1
from cl_core.evaluation.linear_probe import linear_probe_accuracy
from cl_core.evaluation.projection_2d import project_2d

__all__ = [
    "alignment",
    "knn_predict",
    "knn_top1",
    "linear_probe_accuracy",
    "project_2d",
    "uniformity",
]
