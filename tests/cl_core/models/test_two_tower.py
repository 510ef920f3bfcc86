"""two_tower.py and its spec: output shapes, unit vectors, padding ignored, every parameter
reached by a backward pass, and the spec's round trip through the registry's dict."""

from __future__ import annotations

import json

import pytest
import torch

from cl_core.models.spec import TwoTowerModelSpec, model_spec_from_dict
from cl_core.models.two_tower import (
    PAD,
    ItemBatch,
    SideFeatureBatch,
    SideFeatureSizes,
    TwoTowerModel,
    TwoTowerSizes,
    UserBatch,
    id_embedding,
    masked_mean_embedding,
)

SIZES = TwoTowerSizes(
    num_users=6, num_items=9,
    user=SideFeatureSizes(categorical=(3, 2), multi_valued=(4,), numeric=2),
    item=SideFeatureSizes(categorical=(), multi_valued=(5,), numeric=1),
)
META = {
    "modality": "interactions",
    "sizes": {"num_users": 6, "num_items": 9, "user": {"categorical": [3, 2], "multi_valued": [4], "numeric": 2},
              "item": {"categorical": [], "multi_valued": [5], "numeric": 1}},
    "feature_dim": 8, "hidden": [16, 12], "embedding_dim": 5, "dropout": 0.1, "history_length": 7,
}


def _batches() -> tuple[UserBatch, ItemBatch]:
    users = UserBatch(
        user=torch.tensor([0, 5, 2]),
        history=torch.tensor([[PAD, 3, 8], [PAD, PAD, PAD], [1, 1, 2]]),
        features=SideFeatureBatch(
            categorical=torch.tensor([[0, 1], [2, 0], [1, 1]]),
            multi_valued=(torch.tensor([[3, PAD], [PAD, PAD], [0, 1]]),),
            numeric=torch.randn(3, 2),
        ),
    )
    items = ItemBatch(
        item=torch.tensor([8, 0, 4]),
        features=SideFeatureBatch(multi_valued=(torch.tensor([[4, 0, PAD], [PAD, PAD, PAD], [1, PAD, PAD]]),),
                                  numeric=torch.randn(3, 1)),
    )
    return users, items


def test_both_towers_give_unit_vectors_of_the_embedding_dim_and_train_every_parameter():
    torch.manual_seed(0)
    model = TwoTowerModel(SIZES, feature_dim=8, hidden=(16,), embedding_dim=5)
    users, items = _batches()
    user_vectors, item_vectors = model(users, items)
    assert user_vectors.shape == item_vectors.shape == (3, 5)
    assert torch.isfinite(user_vectors).all() and torch.isfinite(item_vectors).all()
    assert torch.allclose(user_vectors.norm(dim=1), torch.ones(3)) and torch.allclose(item_vectors.norm(dim=1), torch.ones(3))
    (user_vectors * item_vectors).sum().backward()
    unreached = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert unreached == []
    assert torch.allclose(model.embed_users(users), user_vectors) and torch.allclose(model.embed_items(items), item_vectors)


def test_the_history_mean_skips_padding_and_an_empty_history_is_zero():
    table = torch.nn.Embedding(4, 3)
    got = masked_mean_embedding(table, torch.tensor([[PAD, 1, 3], [PAD, PAD, PAD], [2, 2, PAD]]))
    weight = table.weight
    assert torch.allclose(got[0], (weight[1] + weight[3]) / 2)
    assert torch.equal(got[1], torch.zeros(3))
    assert torch.allclose(got[2], weight[2])


def test_a_user_vector_depends_on_its_history_but_not_on_where_the_padding_is():
    torch.manual_seed(1)
    model = TwoTowerModel(TwoTowerSizes(2, 5), feature_dim=4, hidden=(8,), embedding_dim=3).eval()

    def vector(history):
        return model.embed_users(UserBatch(torch.tensor([1]), torch.tensor([history])))

    assert torch.allclose(vector([PAD, 2, 4]), vector([4, PAD, 2]))
    assert not torch.allclose(vector([PAD, 2, 4]), vector([PAD, PAD, 4]))


def test_an_unknown_id_gets_the_mean_id_embedding_in_eval_mode_only():
    table = torch.nn.Embedding(4, 3)
    got = id_embedding(table, torch.tensor([2, PAD]), cold_start=True)
    assert torch.equal(got[0], table.weight[2]) and torch.allclose(got[1], table.weight.mean(dim=0))
    model = TwoTowerModel(TwoTowerSizes(2, 5), feature_dim=4, hidden=(8,), embedding_dim=3)
    unknown = UserBatch(torch.tensor([PAD]), torch.tensor([[1, 2]]))
    assert torch.isfinite(model.eval().embed_users(unknown)).all()
    with pytest.raises(IndexError):  # training never sees an unknown id
        model.train().embed_users(unknown)


def test_side_features_that_do_not_fit_the_sizes_are_refused():
    model = TwoTowerModel(SIZES, feature_dim=4, hidden=(), embedding_dim=3)
    users, items = _batches()
    with pytest.raises(ValueError, match=r"categorical side features must be \(3, 2\)"):
        model.embed_users(UserBatch(users.user, users.history, SideFeatureBatch(None, users.features.multi_valued,
                                                                                users.features.numeric)))
    with pytest.raises(ValueError, match="expected 1 multi-valued columns, got 0"):
        model.embed_items(ItemBatch(items.item, SideFeatureBatch(numeric=items.features.numeric)))
    with pytest.raises(ValueError, match=r"history must be \(3, L\)"):
        model.embed_users(UserBatch(users.user, users.history[0], users.features))


def test_the_spec_round_trips_through_json_and_builds_the_model_it_describes():
    spec = model_spec_from_dict(META)
    assert isinstance(spec, TwoTowerModelSpec) and spec.sizes == SIZES and spec.hidden == (16, 12)
    assert json.dumps(spec.to_dict()) == json.dumps(META)
    assert model_spec_from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.pyfunc_config() == {key: value for key, value in META.items() if key != "modality"}
    assert TwoTowerModelSpec.from_dict({**spec.pyfunc_config(), "batch_size": 64}) == spec
    model = spec.build()
    users, items = _batches()
    assert model(users, items)[0].shape == (3, spec.embedding_dim)
    assert model.state_dict().keys() == spec.build().state_dict().keys()


@pytest.mark.parametrize("bad,match", [
    ({"feature_dim": 0}, "feature_dim, hidden, embedding_dim and history_length must be >= 1"),
    ({"history_length": 0}, "history_length must be >= 1"),
    ({"dropout": 1.0}, "dropout must be in"),
    ({"sizes": {"num_users": 3, "num_items": 1}}, ">= 2 items"),
    ({"sizes": {"num_users": 3, "num_items": 4, "user": {"categorical": [0]}}}, "categorical cardinalities must be >= 1"),
])
def test_an_impossible_spec_is_refused_naming_the_field(bad, match):
    with pytest.raises(ValueError, match=match):
        TwoTowerModelSpec.from_dict({**META, **bad})
