"""Metrics for frozen embeddings: kNN and linear-probe accuracy, alignment/uniformity, 2-D maps,
STS correlation and retrieval recall/MRR."""

from cl_core.evaluation.alignment_uniformity import alignment, uniformity
from cl_core.evaluation.knn import knn_predict, knn_top1
from cl_core.evaluation.linear_probe import linear_probe_accuracy
from cl_core.evaluation.projection_2d import project_2d
from cl_core.evaluation.retrieval import retrieval_scores
from cl_core.evaluation.sts import sts_correlation

__all__ = [
    "alignment",
    "knn_predict",
    "knn_top1",
    "linear_probe_accuracy",
    "project_2d",
    "retrieval_scores",
    "sts_correlation",
    "uniformity",
]
