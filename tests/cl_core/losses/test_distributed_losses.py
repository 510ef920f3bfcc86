"""Every loss that gathers in-batch negatives, run on two real processes (gloo): the mean of the
workers' losses and their DDP-averaged gradients must equal one process computing the loss on
the concatenated batch. One spawn checks all of them, to keep the test fast."""

import torch
import torch.distributed as dist

from cl_core.losses import (
    CLIPLoss,
    CoSENTLoss,
    DCLLoss,
    MultipleNegativesRankingLoss,
    NTXentLoss,
    SampledSoftmaxLoss,
    SupConLoss,
)

WORLD, BATCH, DIM = 2, 4, 5


def _cases() -> dict[str, tuple]:
    """name -> (loss factory taking gather_distributed, positional tensors, keyword tensors), all
    over the global batch (W*B rows first). Ids and labels repeat across the two ranks' halves so
    that masking and label positives cross the worker boundary."""
    generator = torch.Generator().manual_seed(11)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(WORLD * BATCH, *shape, generator=generator, dtype=torch.float64)

    ids = torch.tensor([0, 1, 2, 3, 4, 1, 5, 6])
    labels = torch.tensor([0, 1, 0, 2, 3, 1, 3, 4])
    uneven = torch.tensor([0, 1, 2, 3, 0, 5, 5, 6])  # rank 0 has 1 anchor with a positive, rank 1 has 3
    gold = torch.tensor([0.0, 2.5, 1.0, 2.5, 4.0, 1.0, 0.0, 3.0], dtype=torch.float64)  # ties across ranks
    return {
        "ntxent_masked": (lambda g: NTXentLoss(0.3, gather_distributed=g, mask_same_label=True),
                          (randn(DIM), randn(DIM)), {"ids": ids, "labels": labels}),
        "dcl_masked": (lambda g: DCLLoss(0.4, gather_distributed=g),
                       (randn(DIM), randn(DIM)), {"ids": ids}),
        "supcon_views": (lambda g: SupConLoss(0.2, gather_distributed=g), (randn(3, DIM), labels), {}),
        "supcon_one_view_uneven": (lambda g: SupConLoss(0.5, gather_distributed=g), (randn(DIM), uneven), {}),
        "supcon_unlabelled": (lambda g: SupConLoss(0.5, gather_distributed=g), (randn(2, DIM),), {}),
        "clip_learnable": (lambda g: CLIPLoss(0.1, learnable_temperature=True, gather_distributed=g),
                           (randn(DIM), randn(DIM)), {}),
        "mnrl_symmetric_masked": (
            lambda g: MultipleNegativesRankingLoss(10.0, symmetric=True, gather_distributed=g, mask_same_label=True),
            (randn(DIM), randn(DIM), randn(2, DIM)), {"ids": ids, "labels": labels}),
        # Every rank computes the global-batch loss; its gold scores pass as a keyword so that
        # `_run` does not ask for a gradient it never gets.
        "cosent": (lambda g: CoSENTLoss(5.0, gather_distributed=g), (randn(DIM), randn(DIM)), {"scores": gold}),
        # Item 1 is in both ranks' halves, user 3 has items 3 and 6 on different ranks.
        "sampled_softmax_logq_masked": (
            lambda g: SampledSoftmaxLoss(0.2, gather_distributed=g), (randn(DIM), randn(DIM)),
            {"log_q": torch.log(torch.rand(WORLD * BATCH, generator=generator, dtype=torch.float64)),
             "item_ids": ids, "user_ids": torch.tensor([0, 1, 2, 3, 4, 5, 3, 7])}),
    }


def _run(factory, args, kwargs, gather: bool) -> tuple[torch.Tensor, torch.nn.Module, list[torch.Tensor]]:
    inputs = [a.clone().requires_grad_() if a.is_floating_point() else a for a in args]
    loss_fn = factory(gather).double()
    loss = loss_fn(*inputs, **kwargs)
    loss.backward()
    return loss.detach(), loss_fn, [a.grad for a in inputs if a.is_floating_point()]


def _worker(rank: int) -> dict:
    by_name = {}
    rows = slice(rank * BATCH, (rank + 1) * BATCH)
    for name, (factory, args, kwargs) in _cases().items():
        loss, loss_fn, grads = _run(factory, [a[rows] for a in args], {k: v[rows] for k, v in kwargs.items()}, gather=True)
        # DDP averages parameter gradients over ranks; do the same for the loss and the inputs.
        dist.all_reduce(loss)
        parameter_grads = [p.grad.clone() for p in loss_fn.parameters()]
        for grad in parameter_grads:
            dist.all_reduce(grad)
        by_name[name] = {
            "loss": loss / WORLD,
            "grads": [g / WORLD for g in grads],
            "parameter_grads": [g / WORLD for g in parameter_grads],
        }
    return by_name


def test_gathered_losses_on_two_processes_equal_single_process(run_distributed):
    results = run_distributed(_worker, WORLD)

    for name, (factory, args, kwargs) in _cases().items():
        reference, loss_fn, reference_grads = _run(factory, args, kwargs, gather=False)
        reference_parameter_grads = [p.grad for p in loss_fn.parameters()]
        for rank in range(WORLD):
            rows = slice(rank * BATCH, (rank + 1) * BATCH)
            got = results[rank][name]
            assert torch.allclose(got["loss"], reference, atol=1e-10), name
            assert len(got["grads"]) == len(reference_grads)
            for grad, expected in zip(got["grads"], reference_grads, strict=True):
                assert torch.allclose(grad, expected[rows], atol=1e-10), name
            for grad, expected in zip(got["parameter_grads"], reference_parameter_grads, strict=True):
                assert torch.allclose(grad, expected, atol=1e-10), name
