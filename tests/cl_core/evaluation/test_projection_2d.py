import numpy as np
import pytest
import torch

from cl_core.evaluation.projection_2d import project_2d


def blobs(n_per_class=40, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 10
    labels = np.repeat(np.arange(3), n_per_class)
    return (centres[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32), labels


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_shape_dtype_and_finite(method):
    x, _ = blobs()
    coords = project_2d(x, method=method)
    assert coords.shape == (120, 2)
    assert coords.dtype == np.float32
    assert np.isfinite(coords).all()


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_deterministic_for_a_seed(method):
    x, _ = blobs()
    first = project_2d(x, method=method, seed=3)
    np.testing.assert_array_equal(first, project_2d(x, method=method, seed=3))


def test_tensor_input_matches_numpy():
    x, _ = blobs()
    np.testing.assert_allclose(project_2d(torch.from_numpy(x)), project_2d(x), rtol=1e-5, atol=1e-5)


def test_pca_matches_top_two_principal_directions():
    # Variance only along two known axes: PCA must recover exactly that plane (up to sign/rotation
    # within it, so compare pairwise distances, which PCA onto the true plane preserves).
    rng = np.random.default_rng(1)
    plane = rng.normal(size=(50, 2)) * [5.0, 2.0]
    x = np.zeros((50, 10), np.float32)
    x[:, 3], x[:, 7] = plane[:, 0], plane[:, 1]
    coords = project_2d(x)

    def pairwise(a):
        return np.linalg.norm(a[:, None] - a[None], axis=-1)

    np.testing.assert_allclose(pairwise(coords), pairwise(plane), atol=1e-4)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_clusters_stay_separated(method):
    x, labels = blobs()
    coords = project_2d(x, method=method)
    centroids = np.stack([coords[labels == c].mean(axis=0) for c in range(3)])
    # Every point is nearer its own cluster's centroid than any other's.
    nearest = np.argmin(np.linalg.norm(coords[:, None] - centroids[None], axis=-1), axis=1)
    assert (nearest == labels).all()


def test_tsne_on_tiny_input_caps_perplexity():
    coords = project_2d(np.random.default_rng(0).normal(size=(5, 4)), method="tsne")
    assert coords.shape == (5, 2)


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="method must be one of"):
        project_2d(np.zeros((5, 4)), method="umap")
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        project_2d(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        project_2d(np.zeros(8))
