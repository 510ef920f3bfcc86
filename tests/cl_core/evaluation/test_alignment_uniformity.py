import math

import numpy as np
import pytest
import torch

from cl_core.evaluation.alignment_uniformity import alignment, uniformity


def unit(v):
    return v / np.linalg.norm(v)


def naive_alignment(x, y, alpha):
    total = 0.0
    for a, b in zip(np.asarray(x, np.float64), np.asarray(y, np.float64), strict=True):
        total += np.linalg.norm(unit(a) - unit(b)) ** alpha
    return total / len(x)


def naive_uniformity(x, t):
    rows = [unit(r) for r in np.asarray(x, np.float64)]
    potentials = []
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            potentials.append(math.exp(-t * float(np.sum((rows[i] - rows[j]) ** 2))))
    return math.log(sum(potentials) / len(potentials))


def test_identical_pairs_have_zero_alignment():
    x = torch.randn(32, 8)
    assert alignment(x, x) == pytest.approx(0.0, abs=1e-6)
    assert alignment(x, 5.0 * x) == pytest.approx(0.0, abs=1e-6)  # same directions


def test_antipodal_pairs_have_maximal_alignment():
    x = torch.randn(16, 4, dtype=torch.float64)
    assert alignment(x, -x) == pytest.approx(4.0)  # ||u - (-u)||^2 = 4
    assert alignment(x, -x, alpha=1) == pytest.approx(2.0)


def test_two_antipodal_points_exact_uniformity():
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    assert uniformity(x, t=2) == pytest.approx(-8.0)  # log(exp(-2 * 4))
    assert uniformity(x, t=0.5) == pytest.approx(-2.0)


def test_collapsed_embeddings_have_zero_uniformity():
    x = torch.ones(10, 6)
    assert uniformity(x) == pytest.approx(0.0, abs=1e-6)


def test_orthonormal_basis_exact_uniformity():
    # Every pair of distinct basis vectors is at squared distance 2.
    assert uniformity(torch.eye(5, dtype=torch.float64), t=2) == pytest.approx(-4.0)


@pytest.mark.parametrize("n, dim", [(2, 3), (17, 5), (60, 32)])
@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_alignment_matches_naive_reference(n, dim, alpha):
    rng = np.random.default_rng(n * dim)
    x = rng.normal(size=(n, dim))
    y = x + 0.5 * rng.normal(size=(n, dim))
    assert alignment(torch.from_numpy(x), torch.from_numpy(y), alpha=alpha) == pytest.approx(
        naive_alignment(x, y, alpha), rel=1e-10
    )
    assert alignment(x.astype(np.float32), y.astype(np.float32), alpha=alpha) == pytest.approx(
        naive_alignment(x, y, alpha), rel=1e-5
    )


@pytest.mark.parametrize("n, dim", [(2, 3), (17, 5), (60, 32)])
@pytest.mark.parametrize("t", [0.5, 2.0, 10.0])
def test_uniformity_matches_naive_reference(n, dim, t):
    rng = np.random.default_rng(n + dim)
    x = rng.normal(size=(n, dim))
    assert uniformity(torch.from_numpy(x), t=t) == pytest.approx(naive_uniformity(x, t), rel=1e-10)
    assert uniformity(x.astype(np.float32), t=t) == pytest.approx(naive_uniformity(x, t), rel=1e-5)


def test_large_t_does_not_underflow():
    # exp(-1000 * 2) is 0 in float64; the logsumexp keeps the exact value -2000.
    assert uniformity(torch.eye(4, dtype=torch.float64), t=1000.0) == pytest.approx(-2000.0)


def test_invariant_to_input_scaling():
    x = torch.randn(40, 16, dtype=torch.float64)
    y = x + 0.3 * torch.randn(40, 16, dtype=torch.float64)
    scales = torch.rand(40, 1, dtype=torch.float64) * 1000 + 1e-3
    assert alignment(x * scales, y * 0.01) == pytest.approx(alignment(x, y), rel=1e-12)
    assert uniformity(x * scales) == pytest.approx(uniformity(x), rel=1e-12)


def test_uniformity_orders_spread_above_clustered():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(200, 16, generator=g)
    clustered = torch.randn(1, 16, generator=g) + 0.1 * torch.randn(200, 16, generator=g)
    assert uniformity(spread) < uniformity(clustered)


def test_subsampling_is_deterministic_and_close_to_full():
    x = torch.randn(1200, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    full = uniformity(x)  # below the 5000 default: every pair
    sub = uniformity(x, max_samples=400)
    assert sub == uniformity(x, max_samples=400)
    assert sub != uniformity(x, max_samples=400, seed=1)
    assert sub == pytest.approx(full, abs=0.05)
    # A random subset, not a prefix: a prefix here would see one cluster only.
    clustered = torch.cat([torch.eye(8, dtype=torch.float64)[i].repeat(150, 1) for i in range(8)])
    assert uniformity(clustered, max_samples=150) < -0.5
    assert uniformity(clustered[:150]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: alignment(torch.randn(4, 3), torch.randn(5, 3)), "same shape"),
        (lambda: alignment(torch.randn(4, 3), torch.randn(4, 3), alpha=0), "alpha must be"),
        (lambda: alignment(torch.randn(4), torch.randn(4)), r"\(N, D\)"),
        (lambda: uniformity(torch.randn(1, 3)), "at least two"),
        (lambda: uniformity(torch.randn(4, 3), t=-1), "t must be"),
        (lambda: uniformity(torch.randn(4, 3), max_samples=1), "max_samples must be"),
    ],
)
def test_rejects_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()
