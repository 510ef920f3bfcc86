import pytest
import torch

from cl_core.models import build_embedder, build_simclr


@pytest.mark.parametrize("channels,size,depths,widths", [
    (1, 8, (1,), (8,)),
    (1, 16, (1, 1, 1), (16, 32, 64)),
    (3, 32, (2, 2, 2, 2), (8, 16, 32, 64)),
])
def test_shapes_no_nan_and_backward_reaches_every_parameter(channels, size, depths, widths):
    model = build_simclr(channels, size, depths, widths, proj_hidden=32, proj_dim=16)
    images = torch.randint(0, 256, (4, channels, size, size), dtype=torch.uint8)
    projections = model(images)
    assert projections.shape == (4, 16)
    assert torch.isfinite(projections).all()
    features = model.embedder(images)
    assert features.shape == (4, widths[-1])
    assert model.embedder.embedding_dim == widths[-1]
    projections.pow(2).sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no gradient reached {missing}"
    assert all(p.grad.abs().sum() > 0 for p in model.parameters())


def test_uint8_and_unit_float_inputs_embed_identically():
    embedder = build_embedder(1, 8, (1,), (8,)).eval()
    images = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    assert torch.allclose(embedder(images), embedder(images.float() / 255), atol=1e-6)


def test_mismatched_stages_are_rejected():
    with pytest.raises(ValueError, match="depths"):
        build_embedder(1, 8, (1, 1), (8,))


def test_stem_stride_two_halves_resolution_but_keeps_the_feature_size():
    strided = build_embedder(1, 28, (1, 1), (8, 16), stem_stride=2).eval()
    images = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    assert strided(images).shape == (2, 16)
    assert strided.encoder.stem(images.float())[0].shape[-1] == 14
