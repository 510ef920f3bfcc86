import numpy as np
import pytest
import torch

from cl_core.evaluation.linear_probe import fit_linear_probe, linear_probe_accuracy


def separable_problem(n_train, n_test, dim, n_classes, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 10
    train_y = rng.integers(0, n_classes, size=n_train)
    test_y = rng.integers(0, n_classes, size=n_test)
    train_x = centres[train_y] + rng.normal(size=(n_train, dim))
    test_x = centres[test_y] + rng.normal(size=(n_test, dim))
    return train_x.astype(np.float32), train_y, test_x.astype(np.float32), test_y


@pytest.mark.parametrize("n_classes", [2, 5, 10])
def test_separable_data_is_classified_perfectly(n_classes):
    train_x, train_y, test_x, test_y = separable_problem(600, 300, 32, n_classes, seed=n_classes)
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y) >= 0.99


def test_random_labels_are_near_chance():
    rng = np.random.default_rng(0)
    n_classes = 4
    train_x = rng.normal(size=(800, 16)).astype(np.float32)
    test_x = rng.normal(size=(2000, 16)).astype(np.float32)
    train_y = rng.integers(0, n_classes, size=800)
    test_y = rng.integers(0, n_classes, size=2000)
    accuracy = linear_probe_accuracy(train_x, train_y, test_x, test_y)
    # Chance is 0.25; the binomial standard error on 2000 test points is about 0.01.
    assert abs(accuracy - 1 / n_classes) < 0.05


def test_tiny_scale_informative_feature_is_found_after_standardising():
    # The label lives in one feature of scale 1e-4 among unit-scale noise. Unstandardised, C=1's L2
    # penalty forbids the ~1e4 weight it needs (sklearn alone scores ~0.5 here); standardised, it
    # is an ordinary well-separated feature.
    rng = np.random.default_rng(1)

    def sample(n):
        y = rng.integers(0, 2, size=n)
        x = rng.normal(size=(n, 16))
        x[:, 0] = ((2 * y - 1) * 3 + rng.normal(size=n) * 0.5) * 1e-4
        return x.astype(np.float32), y

    train_x, train_y = sample(600)
    test_x, test_y = sample(300)
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y) >= 0.99


def test_standardisation_uses_train_statistics_only():
    # A test split shifted far away along the informative axis: if the scaler were refitted on the
    # test features the shift would vanish and accuracy would stay high; fitted on train it
    # pushes every test point to one side of the boundary, so only one class is right.
    rng = np.random.default_rng(4)
    train_y = rng.integers(0, 2, size=400)
    test_y = rng.integers(0, 2, size=400)

    def features(y, shift):
        informative = (2 * y - 1) * 3 + rng.normal(size=400) + shift  # (400,)
        return np.stack([informative, rng.normal(size=400)], axis=1)  # (400, 2)

    train_x, test_x = features(train_y, 0.0), features(test_y, 100.0)
    assert linear_probe_accuracy(train_x, train_y, test_x - [100, 0], test_y) >= 0.99
    all_class_1 = np.mean(test_y == 1)
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y) == pytest.approx(all_class_1)


def test_torch_inputs_match_numpy_and_result_is_repeatable():
    rng = np.random.default_rng(2)
    train_x = rng.normal(size=(300, 8)).astype(np.float32)
    test_x = rng.normal(size=(200, 8)).astype(np.float32)
    # Labels from a noisy linear rule, so the accuracy is neither 1 nor chance and would move if
    # anything about the fit changed.
    w = rng.normal(size=(8, 3))
    train_y = np.argmax(train_x @ w + rng.normal(size=(300, 3)) * 2, axis=1)
    test_y = np.argmax(test_x @ w + rng.normal(size=(200, 3)) * 2, axis=1)

    from_numpy = linear_probe_accuracy(train_x, train_y, test_x, test_y, seed=3)
    from_torch = linear_probe_accuracy(
        torch.from_numpy(train_x), torch.from_numpy(train_y), torch.from_numpy(test_x).bfloat16(),
        torch.from_numpy(test_y), seed=3,
    )
    assert 0.4 < from_numpy < 0.95
    assert from_numpy == linear_probe_accuracy(train_x, train_y, test_x, test_y, seed=3)
    assert from_torch == pytest.approx(from_numpy, abs=0.02)  # bf16 test features round a little


def test_rejects_bad_inputs():
    x, y = np.zeros((10, 3), np.float32), np.arange(10) % 2
    with pytest.raises(ValueError, match="single class"):
        linear_probe_accuracy(x, np.zeros(10), x, y)
    with pytest.raises(ValueError, match="width"):
        linear_probe_accuracy(x, y, np.zeros((10, 4)), y)
    with pytest.raises(ValueError, match="test_y"):
        linear_probe_accuracy(x, y, x, y[:5])
    with pytest.raises(ValueError, match="max_iter"):
        linear_probe_accuracy(x, y, x, y, max_iter=0)
    with pytest.raises(ValueError, match="C must be"):
        linear_probe_accuracy(x, y, x, y, C=0.0)


def test_one_fitted_probe_scores_each_split_as_a_fit_per_split_would():
    train_x, train_y, test_x, test_y = separable_problem(300, 200, 8, 4, seed=7)
    rng = np.random.default_rng(1)
    noisy_x = test_x + rng.normal(size=test_x.shape).astype(np.float32) * 8  # a harder second split
    probe = fit_linear_probe(train_x, train_y, seed=3)
    assert probe.width == 8
    assert probe.accuracy(test_x, test_y) == linear_probe_accuracy(train_x, train_y, test_x, test_y, seed=3)
    assert probe.accuracy(noisy_x, test_y) == linear_probe_accuracy(train_x, train_y, noisy_x, test_y, seed=3)
    assert probe.accuracy(noisy_x, test_y) < probe.accuracy(test_x, test_y)


def test_a_fitted_probe_rejects_other_widths_and_empty_splits():
    x, y = np.eye(4, dtype=np.float32)[[0, 1] * 5], np.arange(10) % 2
    probe = fit_linear_probe(x, y)
    with pytest.raises(ValueError, match="fitted on width 4"):
        probe.accuracy(np.zeros((3, 5)), y[:3])
    with pytest.raises(ValueError, match="empty"):
        probe.accuracy(np.zeros((0, 4)), y[:0])
    with pytest.raises(ValueError, match="single class"):
        fit_linear_probe(x, np.zeros(10))
