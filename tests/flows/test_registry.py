import pytest

from flows.registry import ModelRef, embedder_state


@pytest.mark.parametrize("text,expected", [
    ("digits-simclr", ModelRef("digits-simclr")),
    ("digits-simclr@champion", ModelRef("digits-simclr", alias="champion")),
    ("digits-simclr/3", ModelRef("digits-simclr", version="3")),
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
