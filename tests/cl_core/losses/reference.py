"""The harness the reference-loss tests share: seeded inputs, the comparison with a naive
reference, the scale and batch-permutation checks, and the two-view indexing (each view's
positive, which views share a sample). Each naive reference loss stays written out, loop by loop,
in its own test file; only what feeds and checks it lives here."""

import pytest
import torch
import torch.nn.functional as F

REFERENCE_ATOL = 1e-10  # float64 inputs: ours and the naive loops agree to rounding


def seeded_randn(seed: int, *shapes: tuple[int, ...], dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    """One standard-normal tensor per shape, drawn in order from a generator seeded with `seed`."""
    return randn_from(torch.Generator().manual_seed(seed), *shapes, dtype=dtype)


def randn_from(generator: torch.Generator, *shapes: tuple[int, ...], dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    return [torch.randn(*shape, generator=generator, dtype=dtype) for shape in shapes]


def assert_matches_reference(ours: torch.Tensor, reference: torch.Tensor) -> None:
    assert torch.allclose(ours, reference, atol=REFERENCE_ATOL)


def exp_cosine(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """e^{s(a, b)} with s = cosine similarity / T, for one pair of vectors."""
    return torch.exp(F.cosine_similarity(a, b, dim=0) / temperature)


def two_view_anchors(z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """The 2N views stacked as SimCLR does ([z1; z2]) and, for each view i, (i, its pair's index)."""
    n = z1.shape[0]
    return torch.cat([z1, z2]), [(i, (i + n) % (2 * n)) for i in range(2 * n)]


def same_sample(i: int, k: int, n: int, ids=None, labels=None) -> bool:
    """Whether views i and k of the 2n share an id, or a label when labels are given."""
    same_id = ids is not None and ids[i % n] == ids[k % n]
    same_label = labels is not None and labels[i % n] == labels[k % n]
    return bool(same_id or same_label)


def assert_invariant_to_scale_and_permutation(
    loss, inputs, scales, generator, symmetric: bool = False, atol: float = 1e-5
) -> torch.Tensor:
    """The loss is unchanged when each input is scaled (cosine losses), when the batch is permuted
    (the permutation drawn from `generator`) and, for a `symmetric` loss of two inputs, when they
    swap places; returns the unscaled, unpermuted value."""
    base = loss(*inputs)
    permutation = torch.randperm(inputs[0].shape[0], generator=generator)
    assert torch.allclose(loss(*(scale * x for scale, x in zip(scales, inputs, strict=True))), base, atol=atol)
    assert torch.allclose(loss(*(x[permutation] for x in inputs)), base, atol=atol)
    if symmetric:
        assert torch.allclose(loss(*reversed(inputs)), base, atol=atol)
    return base


def assert_rejects_non_positive_temperature(make_loss, temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        make_loss(temperature)


def parametrize_grid(**grid):
    """Every combination of the named values, as stacked `pytest.mark.parametrize` decorators
    written in the same order would give (the last name varies fastest)."""

    def decorate(test):
        for name, values in reversed(grid.items()):
            test = pytest.mark.parametrize(name, values)(test)
        return test

    return decorate
