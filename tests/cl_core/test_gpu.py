"""CUDA checks of the training pieces the GPU benchmark relies on (skipped without a GPU).

Run on a GPU machine with `pytest -m gpu tests/cl_core/test_gpu.py`; `benchmarks/gpu_check.sh`
does so before the SimCLR CIFAR-10 benchmark. Everything here imports only torch and cl_core
(kornia only in the views test), never Ray, Prefect or MLflow.
"""

from __future__ import annotations

import pytest
import torch

from cl_core.evaluation import knn_predict
from cl_core.losses import NTXentLoss
from cl_core.models import build_simclr
from cl_core.training_step import train_step

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)"),
]

CUDA = torch.device("cuda")


def _noisy_views(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two noisy copies, channels-last as the benchmark feeds them (no kornia needed)."""
    x = images.float() / 255
    views = (x + 0.05 * torch.randn_like(x), x + 0.05 * torch.randn_like(x))
    return tuple(v.contiguous(memory_format=torch.channels_last) for v in views)


def test_bf16_channels_last_train_step_gives_a_finite_loss_and_updates_every_parameter():
    torch.manual_seed(0)
    model = build_simclr(3, 16, (1, 1), (8, 16), proj_hidden=32, proj_dim=16).to(CUDA, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8, device=CUDA)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    metrics = train_step(model, _noisy_views, images, NTXentLoss(0.2), optimizer, autocast_dtype=torch.bfloat16)
    assert torch.isfinite(torch.tensor(metrics["loss"]))
    unchanged = [name for name, p in model.named_parameters() if torch.equal(before[name], p.detach())]
    assert unchanged == [], f"parameters not updated by the step: {unchanged}"
    assert all(p.device.type == "cuda" and torch.isfinite(p).all() for p in model.parameters())
    conv = model.embedder.encoder.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)



def test_a_bf16_step_in_grad_cache_chunks_gives_the_unchunked_gradients():
    """train.grad_cache_chunk under bf16 autocast: the chunked step's gradients match the one-pass
    step's to bf16 rounding (the model has no BatchNorm, which would normalise per chunk), and
    every gradient is finite."""
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 64), nn.GELU(), nn.Linear(64, 16)).to(CUDA)
    images = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8, device=CUDA)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    views = lambda x: (x.float() / 255, x.float().flip(-1) / 255)  # noqa: E731 - deterministic views
    grads = []
    for chunk in (None, 12):
        metrics = train_step(model, views, images, NTXentLoss(0.2), optimizer, autocast_dtype=torch.bfloat16,
                             chunk_size=chunk)
        assert torch.isfinite(torch.tensor(metrics["loss"]))
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    plain, chunked = grads
    assert torch.isfinite(chunked).all() and plain.norm() > 0
    assert ((chunked - plain).norm() / plain.norm()).item() < 2e-2

def test_simclr_views_on_cuda_give_each_sample_its_own_crop():
    pytest.importorskip("kornia", reason="cl_core.views needs kornia (carried as a wheel on the GPU machine)")
    from cl_core.views import SimCLRViews

    torch.manual_seed(0)
    # One image repeated: only per-sample random parameters can make the outputs differ.
    image = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8, device=CUDA)
    batch = image.repeat(16, 1, 1, 1)
    views = SimCLRViews(24, 3, crop_scale=(0.08, 1.0), flip_p=0.0, jitter_p=0.0, gray_p=0.0).to(CUDA)
    view1, view2 = views(batch)
    assert view1.device.type == view2.device.type == "cuda"
    assert view1.shape == view2.shape == (16, 3, 24, 24) and view1.dtype == torch.float32
    assert 0.0 <= view1.min().item() and view1.max().item() <= 1.0
    flat = view1.flatten(1)
    distinct = torch.cdist(flat, flat) > 1e-4  # (16, 16): pairs of samples whose crops differ
    off_diagonal = ~torch.eye(16, dtype=torch.bool, device=CUDA)
    assert distinct[off_diagonal].float().mean().item() > 0.9  # nearly every pair differs
    assert not torch.allclose(view1, view2)


@pytest.mark.parametrize("mask_same_label", [False, True])
def test_ntxent_forward_on_cuda_matches_the_cpu(mask_same_label):
    generator = torch.Generator().manual_seed(0)
    z1 = torch.randn(64, 32, generator=generator)
    z2 = torch.randn(64, 32, generator=generator)
    labels = torch.randint(0, 8, (64,), generator=generator)
    loss = NTXentLoss(0.2, gather_distributed=False, mask_same_label=mask_same_label)
    kwargs = {"labels": labels} if mask_same_label else {}
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 on both sides, not TF32
    try:
        on_cuda = loss(z1.to(CUDA), z2.to(CUDA), **{k: v.to(CUDA) for k, v in kwargs.items()})
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    on_cpu = loss(z1, z2, **kwargs)
    assert on_cuda.dtype == torch.float32 and on_cuda.device.type == "cuda"
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=1e-5, atol=1e-5)


def test_knn_on_cuda_matches_the_cpu():
    generator = torch.Generator().manual_seed(0)
    bank = torch.randn(500, 16, generator=generator)
    labels = torch.randint(0, 10, (500,), generator=generator)
    queries = torch.randn(100, 16, generator=generator)
    on_cpu = knn_predict(bank.double(), labels, queries.double(), k=50, temperature=0.1)
    on_cuda = knn_predict(bank.double().to(CUDA), labels.to(CUDA), queries.double().to(CUDA), k=50, temperature=0.1)
    assert on_cuda.device.type == "cpu"
    assert torch.equal(on_cuda, on_cpu)
