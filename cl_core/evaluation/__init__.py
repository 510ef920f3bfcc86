"""Metrics for frozen embeddings: kNN and linear-probe accuracy, alignment/uniformity, 2-D maps,
STS correlation and retrieval recall/MRR. The evaluation protocols that score a model with them
are `image_protocol`, `text_protocol` and `ranking_protocol`; the promotion gate's metric per
modality is `primary.PRIMARY_METRICS`.

The names below load on first use (PEP 562), so that the primary metrics table, which the CLI's
summary and `clpipe compare` read, can be imported without torch or scikit-learn.
"""

from __future__ import annotations

from cl_core.lazy_names import lazy_exports

# Each public name -> the module of this package that defines it.
_HOMES = {
    "alignment": "alignment_uniformity",
    "knn_predict": "knn",
    "knn_top1": "knn",
    "linear_probe_accuracy": "linear_probe",
    "project_2d": "projection_2d",
    "retrieval_scores": "retrieval",
    "sts_correlation": "sts",
    "uniformity": "alignment_uniformity",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
