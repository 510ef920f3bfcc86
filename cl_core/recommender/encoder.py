"""A trained two-tower model with everything it needs to embed users and items by their source
ids, without the dataset: the ids it was trained on, its feature codecs, every user's and
item's encoded side features, and each user's seen items (train and val, in time order: the
model is fitted on train, and val is the user's latest history before its test interaction) as
of the training version. It is what the registry logs (`flows/mlflow_edge/recommender_pyfunc.py`) and what evaluation,
export and reembed embed with (`clpipe recommend` reads the vectors they wrote).

    encoder = TwoTowerEncoder.from_dataset(spec, weights, load_interactions(version))
    encoder.user_vectors(["196", "186"])                     # float32 (2, D), as of training
    encoder.user_vectors(["196"], histories=[["242", "302"]], features=[{"age": 49, "gender": "M"}])
    encoder.item_vectors(["50"])                             # float32 (1, D)
    encoder.save(folder); TwoTowerEncoder.load(folder)

By default a user is embedded with its stored history (its last `spec.history_length` seen items)
and features, exactly the vector the model's test split was scored with (and the embedding table
serves). Given `histories` and/or
`features` (raw values, encoded by the codecs the model was trained with), those are used
instead, so a newer dataset version can be embedded with the same model: items in a history
that the model does not know are skipped, and an id the model was not trained on gets the mean
id embedding (`cl_core.models.two_tower.id_embedding`). Such an id needs its inputs given;
without them it is an `UnknownIdError`. A model trained without side features of a kind needs
none: a new user then needs only its history, a new item nothing but its id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from cl_core.datasets.sources.interactions.data import InteractionData, UnknownIdError
from cl_core.models.spec import TwoTowerModelSpec
from cl_core.models.two_tower import PAD, ItemBatch, UserBatch
from cl_core.recommender.dataset import feature_codecs, seen_interactions
from cl_core.recommender.features import FeatureCodec
from cl_core.recommender.training_data import EntityFeatures

WEIGHTS_FILE, ARRAYS_FILE, META_FILE = "weights.safetensors", "entities.npz", "encoder.json"


def _feature_arrays(prefix: str, features: EntityFeatures) -> dict[str, np.ndarray]:
    arrays = {f"{prefix}multi_{m}": values for m, values in enumerate(features.multi_valued)}
    if features.categorical is not None:
        arrays[f"{prefix}categorical"] = features.categorical
    if features.numeric is not None:
        arrays[f"{prefix}numeric"] = features.numeric
    return arrays


def _features_from(prefix: str, arrays: Mapping[str, np.ndarray], codec: FeatureCodec) -> EntityFeatures:
    sizes = codec.sizes
    return EntityFeatures(
        sizes,
        arrays.get(f"{prefix}categorical"),
        tuple(arrays[f"{prefix}multi_{m}"] for m in range(len(sizes.multi_valued))),
        arrays.get(f"{prefix}numeric"),
    )


class TwoTowerEncoder:
    """See the module docstring. `user_ids` / `item_ids`: the source ids, index order;
    `seen_offsets` (U + 1,) and `seen_items` (M,): each user's seen item indices in time order
    (CSR)."""

    def __init__(
        self,
        spec: TwoTowerModelSpec,
        weights: Mapping[str, torch.Tensor],
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        codecs: tuple[FeatureCodec, FeatureCodec],
        features: tuple[EntityFeatures, EntityFeatures],
        seen_offsets: np.ndarray,
        seen_items: np.ndarray,
        batch_size: int = 1024,
    ) -> None:
        self.spec = spec
        self.model = spec.build()
        self.model.load_state_dict(dict(weights))
        self.model.eval()
        self.user_ids, self.item_ids = [str(i) for i in user_ids], [str(i) for i in item_ids]
        if (len(self.user_ids), len(self.item_ids)) != (spec.sizes.num_users, spec.sizes.num_items):
            raise ValueError(f"{len(self.user_ids)} user and {len(self.item_ids)} item ids for a model of "
                             f"{spec.sizes.num_users} users and {spec.sizes.num_items} items")
        self.user_index = {value: i for i, value in enumerate(self.user_ids)}
        self.item_index = {value: i for i, value in enumerate(self.item_ids)}
        self.user_codec, self.item_codec = codecs
        self.user_features, self.item_features = features
        self.user_features.check(len(self.user_ids), "user")
        self.item_features.check(len(self.item_ids), "item")
        self._user_tensors, self._item_tensors = self.user_features.tensors(), self.item_features.tensors()
        self.seen_offsets = np.asarray(seen_offsets, dtype=np.int64)
        self.seen_items = np.asarray(seen_items, dtype=np.int64)
        if len(self.seen_offsets) != len(self.user_ids) + 1 or self.seen_offsets[-1] != len(self.seen_items):
            raise ValueError("seen_offsets must be (num_users + 1,) offsets into seen_items")
        self.history_length = spec.history_length
        self.batch_size = int(batch_size)

    @classmethod
    def from_dataset(cls, spec: TwoTowerModelSpec, weights: Mapping[str, torch.Tensor],
                     data: InteractionData) -> TwoTowerEncoder:
        """The encoder of a model trained on `data` (`cl_core.recommender.dataset.training_arrays`)."""
        codecs = feature_codecs(data)
        offsets, items = seen_interactions(data).by_user(len(data.users))
        features = (codecs[0].from_entities(data.users), codecs[1].from_entities(data.items))
        return cls(spec, weights, data.users.ids, data.items.ids, codecs, features, offsets, items)

    @property
    def embedding_dim(self) -> int:
        return self.spec.embedding_dim

    # -- by source id ---------------------------------------------------------------------------

    def user_vectors(self, ids: Sequence[str], histories: Sequence[Sequence[str] | None] | None = None,
                     features: Sequence[Mapping[str, Any] | None] | None = None) -> np.ndarray:
        """float32 (N, D) unit vectors of users `ids`; `histories`: each user's items (source ids,
        oldest first); `features`: each user's raw feature values by name."""
        ids = [str(i) for i in ids]
        _same_length(ids, histories, "histories")
        _same_length(ids, features, "features")
        if features is None and not self.user_codec.names:  # no side features: an id and a history are all the inputs
            features = [None] * len(ids) if histories is not None else None
        index = self._indices(ids, self.user_index, "user", given=histories is not None and features is not None)
        chunks = []
        for start in range(0, len(ids), self.batch_size):
            part = slice(start, start + self.batch_size)
            users = torch.as_tensor(index[part])
            history = (self._stored_history(index[part]) if histories is None
                       else self._history_of(histories[part]))
            side = (self._user_tensors.take(users) if features is None
                    else self.user_codec.encode(features[part]).tensors())
            chunks.append(self._embed_users(UserBatch(users, torch.as_tensor(history), side)))
        return _stacked(chunks, self.embedding_dim)

    def item_vectors(self, ids: Sequence[str], features: Sequence[Mapping[str, Any] | None] | None = None) -> np.ndarray:
        """float32 (N, D) unit vectors of items `ids`; `features`: each item's raw feature values."""
        ids = [str(i) for i in ids]
        _same_length(ids, features, "features")
        given = features is not None or not self.item_codec.names  # without side features the id is the whole input
        index = self._indices(ids, self.item_index, "item", given=given)
        chunks = []
        for start in range(0, len(ids), self.batch_size):
            part = slice(start, start + self.batch_size)
            items = torch.as_tensor(index[part])
            side = (self._item_tensors.take(items) if features is None
                    else self.item_codec.encode(features[part]).tensors())
            chunks.append(self._embed_items(ItemBatch(items, side)))
        return _stacked(chunks, self.embedding_dim)

    def seen_item_ids(self, user: str) -> list[str]:
        """The items user `user` had seen in the training version (train and val), oldest first.

        Raises:
            UnknownIdError: a user the model was not trained on.
        """
        u = self._indices([str(user)], self.user_index, "user", given=False)[0]
        return [self.item_ids[i] for i in self.seen_items[self.seen_offsets[u] : self.seen_offsets[u + 1]]]

    # -- internals ------------------------------------------------------------------------------

    def _indices(self, ids: list[str], positions: dict[str, int], kind: str, given: bool) -> np.ndarray:
        """int64 (N,) indices, PAD for unknown ids when their inputs are `given`."""
        found = np.fromiter((positions.get(value, PAD) for value in ids), np.int64, len(ids))
        if not given and (found == PAD).any():
            unknown = ids[int(np.flatnonzero(found == PAD)[0])]
            raise UnknownIdError(f"{kind} id {unknown!r} is not known to the model ({len(positions)} {kind}s)")
        return found

    def _stored_history(self, users: np.ndarray) -> np.ndarray:
        """(B, L) each user's last L seen items, right-aligned, PAD-filled."""
        length = self.history_length
        out = np.full((len(users), length), PAD, dtype=np.int64)
        for row, user in enumerate(users):
            items = self.seen_items[self.seen_offsets[user] : self.seen_offsets[user + 1]][-length:]
            out[row, length - len(items):] = items
        return out

    def _history_of(self, histories: Sequence[Sequence[str] | None]) -> np.ndarray:
        length = self.history_length
        out = np.full((len(histories), length), PAD, dtype=np.int64)
        for row, items in enumerate(histories):
            known = [self.item_index[i] for i in (items if items is not None else ()) if i in self.item_index][-length:]
            out[row, length - len(known):] = known
        return out

    @torch.no_grad()
    def _embed_users(self, batch: UserBatch) -> np.ndarray:
        return self.model.embed_users(batch).float().numpy()

    @torch.no_grad()
    def _embed_items(self, batch: ItemBatch) -> np.ndarray:
        return self.model.embed_items(batch).float().numpy()

    # -- files ----------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write the weights (safetensors), the arrays (npz) and the rest (JSON) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}, str(folder / WEIGHTS_FILE))
        np.savez(folder / ARRAYS_FILE, seen_offsets=self.seen_offsets, seen_items=self.seen_items,
                 **_feature_arrays("user_", self.user_features), **_feature_arrays("item_", self.item_features))
        meta = {
            "spec": self.spec.to_dict(),
            "user_ids": self.user_ids, "item_ids": self.item_ids,
            "user_codec": self.user_codec.to_dict(), "item_codec": self.item_codec.to_dict(),
        }
        (folder / META_FILE).write_text(json.dumps(meta))
        return folder

    @classmethod
    def load(cls, folder: str | Path, batch_size: int = 1024) -> TwoTowerEncoder:
        folder = Path(folder)
        meta = json.loads((folder / META_FILE).read_text())
        codecs = FeatureCodec.from_dict(meta["user_codec"]), FeatureCodec.from_dict(meta["item_codec"])
        with np.load(folder / ARRAYS_FILE) as stored:
            arrays = dict(stored)
        return cls(
            TwoTowerModelSpec.from_dict(meta["spec"]), load_file(str(folder / WEIGHTS_FILE)),
            meta["user_ids"], meta["item_ids"], codecs,
            (_features_from("user_", arrays, codecs[0]), _features_from("item_", arrays, codecs[1])),
            arrays["seen_offsets"], arrays["seen_items"], batch_size,
        )


def _same_length(ids: list[str], values: Sequence | None, what: str) -> None:
    if values is not None and len(values) != len(ids):
        raise ValueError(f"{len(ids)} ids but {len(values)} {what}")


def _stacked(chunks: list[np.ndarray], dim: int) -> np.ndarray:
    return np.concatenate(chunks) if chunks else np.zeros((0, dim), dtype=np.float32)
