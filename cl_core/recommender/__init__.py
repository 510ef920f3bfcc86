"""Recommendation from user-item interactions: the two-tower model's training data as arrays
(`training_data`), built from a stored version (`dataset`: the splits it trains on and those seen
before each scored split, `features`: the
codecs of side features), users' histories (`history`), the vectors of every user and item
(`vectors`), the trained model embedding by source id (`encoder`) and synthetic interactions
(`synthetic`). The model is `cl_core.models.two_tower`,
its loss `cl_core.losses.sampled_softmax`, its training task `cl_core.tasks.interactions`, the
ranking metrics and baselines `cl_core.evaluation.ranking` and
`cl_core.evaluation.recommender_baselines`."""

from __future__ import annotations

from cl_core.recommender.history import interaction_histories
from cl_core.recommender.training_data import EntityFeatures, InteractionsData, TowerInputs
from cl_core.recommender.vectors import tower_vectors, vector_scorer

__all__ = ["EntityFeatures", "InteractionsData", "TowerInputs", "interaction_histories", "tower_vectors", "vector_scorer"]
