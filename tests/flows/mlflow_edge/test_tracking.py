from flows.mlflow_edge.tracking import flatten


def test_flatten_nested_config_into_dotted_params():
    assert flatten({"train": {"lr": 0.1, "epochs": 3}, "model": {"widths": (8, 16)}, "name": None}) == {
        "train.lr": 0.1, "train.epochs": 3, "model.widths": "[8, 16]", "name": None,
    }
