"""The registered two-tower recommender as an MLflow pyfunc ("models from code": nothing is pickled).

    model = mlflow.pyfunc.load_model("models:/ml-100k-two-tower@champion")
    model.predict(pd.DataFrame({"user": ["196", "186"]}))     # float32 (2, D) user vectors
    model.predict(pd.DataFrame({"item": ["50", "181"]}))      # float32 (2, D) item vectors

Ids are the source's, as strings. A user is embedded with its history and side features as of
training, which the model carries (`cl_core.recommender.encoder.TwoTowerEncoder`: weights, id
vocabularies, feature codecs, every user's and item's features, each user's seen items), so it
needs no dataset. Optional columns give newer inputs instead: "history" (a user's items, source
ids, oldest first) and "features" (a dict of raw feature values by name); with both, an id the
model was not trained on is embedded too (the mean id embedding). The score of a user for an
item is the dot product of their vectors (both unit length).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from cl_core.recommender.encoder import TwoTowerEncoder


def _column(frame: pd.DataFrame, name: str, convert) -> list | None:
    if name not in frame.columns:
        return None
    return [None if value is None else convert(value) for value in frame[name].tolist()]


class RecommenderModel(mlflow.pyfunc.PythonModel):
    modality = "interactions"

    def load_context(self, context) -> None:
        self.configure(context.model_config, context.artifacts["encoder"])

    def configure(self, meta: Mapping[str, Any], folder: str | Path) -> RecommenderModel:
        """Load the encoder folder (`TwoTowerEncoder.save`) with the model config's batch_size;
        callable without MLflow. Returns self."""
        self.encoder = TwoTowerEncoder.load(folder, batch_size=int(meta.get("batch_size", 1024)))
        return self

    @property
    def embedding_dim(self) -> int:
        return self.encoder.embedding_dim

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        has_user, has_item = "user" in model_input.columns, "item" in model_input.columns
        if has_user == has_item:
            columns = list(model_input.columns)
            raise ValueError(f"the input needs a 'user' or an 'item' column (one of them), got columns {columns}")
        features = _column(model_input, "features", dict)
        if has_item:
            if "history" in model_input.columns:
                raise ValueError("'history' applies to users, not items")
            return self.encoder.item_vectors(model_input["item"].astype(str).tolist(), features)
        histories = _column(model_input, "history", lambda items: [str(i) for i in items])
        return self.encoder.user_vectors(model_input["user"].astype(str).tolist(), histories, features)

    def seen_item_ids(self, user: str) -> list[str]:
        """The items `user` had in training (train and val), oldest first: its history as of
        training (`clpipe recommend` leaves out every item of the user's in the table's dataset
        version, `cl_core.embeddings.recommend`)."""
        return self.encoder.seen_item_ids(user)


mlflow.models.set_model(RecommenderModel())
