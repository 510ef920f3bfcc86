import math

import numpy as np
import pytest
import torch

from cl_core.evaluation.knn import knn_hits, knn_predict, knn_top1


def naive_knn_predict(train_x, train_y, test_x, k, temperature):
    """One query at a time: cosine to every train row, sort, weighted vote, smallest id on ties."""
    train_x = np.asarray(train_x, dtype=np.float64)
    test_x = np.asarray(test_x, dtype=np.float64)
    train_unit = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    predictions = []
    for query in test_x:
        query = query / np.linalg.norm(query)
        sims = [float(query @ row) for row in train_unit]
        order = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        votes = {}
        for i in order:
            label = int(train_y[i])
            votes[label] = votes.get(label, 0.0) + math.exp(sims[i] / temperature)
        best = max(votes.values())
        predictions.append(min(label for label, v in votes.items() if v == best))
    return np.array(predictions)


def random_problem(n_train, n_test, dim, n_classes, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    train_y = rng.integers(0, n_classes, size=n_train)
    test_y = rng.integers(0, n_classes, size=n_test)
    # Noise of the same size as the centres: neighbours are informative but not always right,
    # so the vote weighting matters and accuracy is strictly between chance and 1.
    train_x = centres[train_y] + rng.normal(size=(n_train, dim))
    test_x = centres[test_y] + rng.normal(size=(n_test, dim))
    return train_x, train_y, test_x, test_y


@pytest.mark.parametrize("k", [1, 5, 20, 200])
@pytest.mark.parametrize("n_train", [7, 50, 300])
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_matches_naive_reference(k, n_train, temperature):
    train_x, train_y, test_x, test_y = random_problem(n_train, 40, 16, 4, seed=n_train + k)
    expected = naive_knn_predict(train_x, train_y, test_x, k, temperature)

    predicted = knn_predict(
        torch.from_numpy(train_x), torch.from_numpy(train_y), torch.from_numpy(test_x),
        k=k, temperature=temperature, batch_size=16,
    )
    np.testing.assert_array_equal(predicted.numpy(), expected)
    accuracy = knn_top1(train_x, train_y, test_x, test_y, k=k, temperature=temperature)
    assert accuracy == pytest.approx(float(np.mean(expected == test_y)))


def test_float32_numpy_inputs_match_reference():
    train_x, train_y, test_x, _ = random_problem(200, 50, 32, 5, seed=3)
    expected = naive_knn_predict(train_x, train_y, test_x, 20, 0.07)
    predicted = knn_predict(
        train_x.astype(np.float32), train_y.astype(np.int32), test_x.astype(np.float32)
    )
    np.testing.assert_array_equal(predicted.numpy(), expected)


def test_two_clusters_exact_answer():
    # Class 0 points along +x, class 1 along +y; queries near each axis must take that axis' label.
    train_x = torch.tensor(
        [[1.0, 0.0], [0.9, 0.1], [1.0, -0.1], [0.0, 1.0], [0.1, 0.9], [-0.1, 1.0]]
    )
    train_y = torch.tensor([0, 0, 0, 1, 1, 1])
    test_x = torch.tensor([[2.0, 0.1], [0.1, 3.0], [5.0, -1.0], [-0.2, 0.5]])
    test_y = torch.tensor([0, 1, 0, 1])

    assert knn_predict(train_x, train_y, test_x, k=3).tolist() == [0, 1, 0, 1]
    assert knn_top1(train_x, train_y, test_x, test_y, k=3) == 1.0
    assert knn_top1(train_x, train_y, test_x, 1 - test_y, k=3) == 0.0
    # One hit per query, in query order: the values an interval resamples.
    mixed = torch.tensor([0, 0, 0, 1])
    np.testing.assert_array_equal(knn_hits(train_x, train_y, test_x, mixed, k=3), [True, False, True, True])
    assert knn_top1(train_x, train_y, test_x, mixed, k=3) == 0.75


def test_weighting_beats_majority():
    # Query at angle 0: one very close class-1 neighbour vs two far class-0 neighbours (at 90 deg).
    # A plain majority of k=3 says 0; with T=0.07 exp(1/T) dwarfs 2 * exp(0/T), so 1 wins.
    train_x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    train_y = torch.tensor([1, 0, 0])
    query = torch.tensor([[1.0, 0.0]])
    assert knn_predict(train_x, train_y, query, k=3, temperature=0.07).tolist() == [1]
    # With a huge temperature every weight is ~1, which is a majority vote.
    assert knn_predict(train_x, train_y, query, k=3, temperature=1e6).tolist() == [0]


def test_non_contiguous_labels_are_returned_as_given():
    train_x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    train_y = torch.tensor([42, -3])
    test_x = torch.tensor([[1.0, 0.2], [0.1, 1.0]])
    assert knn_predict(train_x, train_y, test_x, k=1).tolist() == [42, -3]


def test_invariant_to_scaling_embeddings():
    train_x, train_y, test_x, test_y = random_problem(150, 60, 8, 3, seed=1)
    train_x, test_x = torch.from_numpy(train_x), torch.from_numpy(test_x)
    reference = knn_predict(train_x, train_y, test_x, k=10)
    row_scales = torch.rand(train_x.shape[0], 1, dtype=torch.float64) * 100 + 0.01
    scaled = knn_predict(train_x * row_scales, train_y, test_x * 0.001, k=10)
    assert torch.equal(reference, scaled)
    assert knn_top1(train_x * 7.0, train_y, test_x * 3.0, test_y, k=10) == knn_top1(
        train_x, train_y, test_x, test_y, k=10
    )


@pytest.mark.parametrize("batch_size", [1, 3, 64, 10_000])
def test_chunking_matches_single_chunk(batch_size):
    train_x, train_y, test_x, _ = random_problem(120, 97, 12, 5, seed=2)
    one_chunk = knn_predict(train_x, train_y, test_x, k=15, batch_size=len(test_x))
    chunked = knn_predict(train_x, train_y, test_x, k=15, batch_size=batch_size)
    assert torch.equal(one_chunk, chunked)


def test_k_above_train_size_uses_all():
    train_x, train_y, test_x, _ = random_problem(9, 20, 4, 3, seed=4)
    assert torch.equal(
        knn_predict(train_x, train_y, test_x, k=9), knn_predict(train_x, train_y, test_x, k=1000)
    )


def test_small_temperature_does_not_overflow():
    train_x, train_y, test_x, _ = random_problem(100, 30, 8, 3, seed=5)
    expected = naive_knn_predict(train_x, train_y, test_x, 1, 1.0)  # T -> 0 is a 1-NN vote
    predicted = knn_predict(
        train_x.astype(np.float32), train_y, test_x.astype(np.float32), k=20, temperature=1e-4
    )
    np.testing.assert_array_equal(predicted.numpy(), expected)


def test_does_not_track_gradients():
    train_x = torch.randn(30, 4, requires_grad=True)
    out = knn_predict(train_x, torch.randint(0, 2, (30,)), torch.randn(5, 4))
    assert not out.requires_grad


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 0}, "k must be"),
        ({"temperature": 0.0}, "temperature must be"),
        ({"batch_size": 0}, "batch_size must be"),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        knn_predict(
            torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(2, 3), **kwargs
        )


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="width"):
        knn_predict(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(2, 4))
    with pytest.raises(ValueError, match="train_labels"):
        knn_predict(torch.randn(5, 3), torch.zeros(4, dtype=torch.long), torch.randn(2, 3))
    with pytest.raises(ValueError, match="test_labels"):
        knn_top1(
            torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(2, 3), torch.zeros(3)
        )
    with pytest.raises(ValueError, match="integer"):
        knn_predict(torch.randn(5, 3), torch.zeros(5), torch.randn(2, 3))
