"""The gather-with-grad path with two real processes (gloo): loss and gradients must equal one
process computing the loss on the concatenated batch."""

import torch
import torch.distributed as dist

from cl_core.distributed import gather_with_grad
from cl_core.losses import NTXentLoss

WORLD, BATCH, DIM, TEMPERATURE = 2, 4, 6, 0.3


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return (torch.randn(WORLD * BATCH, DIM, generator=generator, dtype=torch.float64),
            torch.randn(WORLD * BATCH, DIM, generator=generator, dtype=torch.float64))


def _worker(rank: int) -> dict:
    z1_all, z2_all = _inputs()
    rows = slice(rank * BATCH, (rank + 1) * BATCH)
    z1 = z1_all[rows].clone().requires_grad_()
    z2 = z2_all[rows].clone().requires_grad_()
    loss = NTXentLoss(TEMPERATURE, gather_distributed=True)(z1, z2)
    loss.backward()
    # DDP would average parameter gradients over ranks; do the same for the inputs.
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    gathered = gather_with_grad(z1.detach())
    return {
        "loss": (mean_loss / WORLD).item(),
        "grad_z1": (z1.grad / WORLD).clone(),
        "grad_z2": (z2.grad / WORLD).clone(),
        "gathered": gathered.clone(),
    }


def test_two_process_loss_and_gradients_equal_single_process(run_distributed):
    results = run_distributed(_worker, WORLD)

    z1_all, z2_all = _inputs()
    z1_all.requires_grad_()
    z2_all.requires_grad_()
    reference = NTXentLoss(TEMPERATURE, gather_distributed=False)(z1_all, z2_all)
    reference.backward()

    for rank in range(WORLD):
        rows = slice(rank * BATCH, (rank + 1) * BATCH)
        got = results[rank]
        assert abs(got["loss"] - reference.item()) < 1e-10
        assert torch.allclose(got["grad_z1"], z1_all.grad[rows], atol=1e-10)
        assert torch.allclose(got["grad_z2"], z2_all.grad[rows], atol=1e-10)
        assert torch.equal(got["gathered"], z1_all.detach())


def test_single_process_fallbacks_are_identity():
    tensor = torch.randn(3, 2)
    assert gather_with_grad(tensor) is tensor


def _hook_worker(rank: int) -> float:
    from cl_core.distributed import average_across_workers

    scale = torch.nn.Parameter(torch.tensor(2.0))
    scale.register_hook(average_across_workers)
    (scale * (rank + 1)).backward()  # local gradients 1 and 2
    return scale.grad.item()


def test_gradient_hook_averages_parameters_outside_ddp(run_distributed):
    assert run_distributed(_hook_worker, WORLD) == [1.5, 1.5]
