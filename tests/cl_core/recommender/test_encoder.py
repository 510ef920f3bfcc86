"""dataset.py, features.py and encoder.py on an ingested synthetic version: the training arrays
of the train split, raw feature values encoded as training encodes them, and the encoder that
embeds by source id (with the seen train and val items as history, from given inputs, saved and
loaded, unknown ids)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cl_core.datasets import UnknownIdError, load_interactions
from cl_core.embeddings.interaction_rows import entity_inputs
from cl_core.models.spec import TwoTowerModelSpec
from cl_core.models.two_tower import PAD
from cl_core.recommender import tower_vectors
from cl_core.recommender.dataset import (
    SEEN_BEFORE,
    SEEN_SPLITS,
    TRAIN_SPLITS,
    feature_codecs,
    seen_before,
    seen_interactions,
    training_arrays,
    training_interactions,
)
from cl_core.recommender.encoder import TwoTowerEncoder


def _trained_encoder(version, history_length=3) -> tuple[TwoTowerEncoder, object]:
    data = load_interactions(version)
    arrays = training_arrays(data, history_length)
    torch.manual_seed(0)
    spec = TwoTowerModelSpec(arrays.sizes, feature_dim=8, hidden=(16,), embedding_dim=8, history_length=history_length)
    model = spec.build()
    return TwoTowerEncoder.from_dataset(spec, model.state_dict(), data), arrays


def test_training_arrays_hold_the_train_interactions_with_encoded_features(synthetic_version):
    _, version, _ = synthetic_version
    data = load_interactions(version)
    arrays = training_arrays(data, history_length=3)
    assert TRAIN_SPLITS == ("train",) and SEEN_SPLITS == ("train", "val")
    assert dict(SEEN_BEFORE) == {"val": ("train",), "test": ("train", "val")} and seen_before("test") == SEEN_SPLITS
    with pytest.raises(ValueError, match="got 'train'"):
        seen_before("train")
    assert len(arrays) == len(data.train) == 40 * 4  # 6 interactions a user: 4 train, 1 val, 1 test
    assert len(seen_interactions(data)) == len(data.train) + len(data.val) == 40 * 5
    assert (arrays.num_users, arrays.num_items) == (40, len(data.items))
    # segment: 3 values and "missing"; genres: 3 values; a numeric column each.
    assert arrays.sizes.user.categorical == (4,) and arrays.sizes.user.numeric == 1
    assert arrays.sizes.item.multi_valued == (3,) and arrays.sizes.item.numeric == 1
    train = training_interactions(data)
    user = int(train.users[-1])
    mine = train.items[train.users == user]
    assert arrays.user_history[user].tolist() == mine[-3:].tolist()  # the last 3 train items, oldest first
    for held_out in (data.val, data.test):
        assert not np.isin(held_out.items[held_out.users == user], arrays.user_history[user]).any()


def test_raw_values_are_encoded_exactly_as_training_encodes_them(synthetic_version):
    _, version, _ = synthetic_version
    data = load_interactions(version)
    users_codec, items_codec = feature_codecs(data)
    for kind, codec, entities in (("users", users_codec, data.users), ("items", items_codec, data.items)):
        _, _, inputs = entity_inputs(version, kind)
        encoded, expected = codec.encode([row["features"] for row in inputs]), codec.from_entities(entities)
        for got, want in zip(
            [encoded.categorical, encoded.numeric, *encoded.multi_valued],
            [expected.categorical, expected.numeric, *expected.multi_valued], strict=True,
        ):
            np.testing.assert_array_equal(got, want)
    # Unknown values: "missing" (0), dropped from a list, a missing number the mean (0).
    odd = items_codec.encode([{"genres": ["g0", "nope"], "year": None}, None])
    assert odd.multi_valued[0].tolist() == [[0], [PAD]] and odd.numeric.tolist() == [[0.0], [0.0]]
    assert users_codec.encode([{"segment": "unheard-of"}]).categorical.tolist() == [[0]]
    with pytest.raises(ValueError, match="numeric feature must be a number"):
        users_codec.encode([{"score": "high"}])


def test_the_encoder_gives_the_vectors_the_model_is_evaluated_with_and_survives_a_round_trip(synthetic_version, tmp_path):
    _, version, _ = synthetic_version
    encoder, arrays = _trained_encoder(version)
    users, items = tower_vectors(encoder.model, arrays)  # train items as history: the val pass's vectors
    np.testing.assert_allclose(encoder.item_vectors(encoder.item_ids), items.numpy(), atol=1e-6)
    ids, _, inputs = entity_inputs(version, "users", TRAIN_SPLITS)  # what evaluation's val pass embeds
    given = encoder.user_vectors(ids, [row["history"] for row in inputs], [row["features"] for row in inputs])
    np.testing.assert_allclose(given, users.numpy(), atol=1e-6)
    # By default the encoder embeds a user with its seen items (train and val): the inputs the
    # embedding table gives and the test pass embeds.
    ids, _, inputs = entity_inputs(version, "users")
    assert all(row["history"] == encoder.seen_item_ids(row["user"]) for row in inputs)
    given = encoder.user_vectors(ids, [row["history"] for row in inputs], [row["features"] for row in inputs])
    np.testing.assert_allclose(encoder.user_vectors(encoder.user_ids), given, atol=1e-6)
    assert not np.allclose(given, users.numpy(), atol=1e-4)  # the val item moved every history
    ids, _, inputs = entity_inputs(version, "items")
    np.testing.assert_allclose(encoder.item_vectors(ids, [row["features"] for row in inputs]), items.numpy(), atol=1e-6)
    loaded = TwoTowerEncoder.load(encoder.save(tmp_path / "encoder"))
    np.testing.assert_array_equal(loaded.user_vectors(["0", "7"]), encoder.user_vectors(["0", "7"]))
    np.testing.assert_array_equal(loaded.item_vectors(["3"]), encoder.item_vectors(["3"]))
    assert loaded.seen_item_ids("0") == encoder.seen_item_ids("0") and len(encoder.seen_item_ids("0")) == 5


def test_unknown_ids_need_their_inputs_and_unknown_history_items_are_skipped(synthetic_version):
    _, version, _ = synthetic_version
    encoder, _ = _trained_encoder(version)
    with pytest.raises(UnknownIdError, match="user id 'newcomer' is not known to the model"):
        encoder.user_vectors(["newcomer"])
    with pytest.raises(UnknownIdError, match="item id 'x' is not known"):
        encoder.item_vectors(["x"])
    with pytest.raises(UnknownIdError):
        encoder.seen_item_ids("newcomer")
    cold = encoder.user_vectors(["newcomer"], histories=[["3", "4", "no-such-item"]], features=[{"segment": "s1"}])
    assert cold.shape == (1, 8) and np.isclose(np.linalg.norm(cold), 1.0, atol=1e-5)
    # The unknown item in the history is skipped: the same vector without it.
    same = encoder.user_vectors(["newcomer"], histories=[["3", "4"]], features=[{"segment": "s1"}])
    np.testing.assert_allclose(cold, same, atol=1e-6)
    # A new history changes a known user's vector; its stored one is what it had in training.
    known = encoder.user_vectors(["0"])
    assert not np.allclose(encoder.user_vectors(["0"], histories=[["1", "2"]]), known)
    with pytest.raises(ValueError, match="1 ids but 2 histories"):
        encoder.user_vectors(["0"], histories=[["1"], ["2"]])


def test_without_side_features_a_new_user_needs_only_its_history_and_a_new_item_its_id(synthetic_version, tmp_path):
    """What reembed gives a model trained on interactions alone (no users or items table): the
    input rows carry no "features", and a user or item of a later version is still embedded."""
    from cl_core.config import InteractionsSourceSpec
    from cl_core.datasets import DatasetStore

    _, _, paths = synthetic_version
    store = DatasetStore(tmp_path / "datasets")
    store.ingest_interactions(paths["interactions"], "bare", InteractionsSourceSpec())
    encoder, _ = _trained_encoder(store.resolve("bare"))
    cold = encoder.user_vectors(["newcomer"], histories=[["3", "4"]])
    assert cold.shape == (1, 8) and np.isclose(np.linalg.norm(cold), 1.0, atol=1e-5)
    np.testing.assert_allclose(encoder.user_vectors(["0"], histories=[encoder.seen_item_ids("0")]),
                               encoder.user_vectors(["0"]), atol=1e-6)  # a known user: as before
    new_item = encoder.item_vectors(["x", "3"])
    np.testing.assert_allclose(new_item[1:], encoder.item_vectors(["3"]), atol=1e-6)
    with pytest.raises(UnknownIdError, match="user id 'newcomer'"):
        encoder.user_vectors(["newcomer"])  # as of training: it had no history then
