"""Linear-probe accuracy: a logistic-regression classifier trained on frozen embeddings.

The linear evaluation protocol of Zhang, Isola & Efros 2016 ("Colorful Image Colorization") and
Oord et al. 2018 (CPC), made standard for contrastive methods by SimCLR (Chen et al. 2020, sec.
4): the encoder stays frozen, a linear classifier is fitted on its features of the labelled
train split, and the test-split accuracy measures how linearly separable the representation is.
We fit the classifier with L-BFGS (as CLIP's linear probes do, Radford et al. 2021, appendix
A.3) instead of SGD with augmentations: cheaper, deterministic, and good enough to rank
checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from cl_core.evaluation.embeddings import ArrayLike, check_labels_shape, check_same_width


def _as_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        # numpy has no bfloat16; float32 is what the classifier uses anyway.
        x = x.float() if x.is_floating_point() and x.dtype != torch.float64 else x
        return x.numpy()
    return np.asarray(x)


def _features(x: ArrayLike, name: str) -> np.ndarray:
    x = _as_numpy(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be (N, D); got shape {x.shape}")
    # float32 halves memory and time against sklearn's float64 default (60k x 512 is 120 MB
    # instead of 240 MB); L-BFGS keeps float32 inputs as they are.
    return x if x.dtype == np.float64 else x.astype(np.float32, copy=False)


def _labels(y: ArrayLike, name: str, length: int) -> np.ndarray:
    y = _as_numpy(y)
    check_labels_shape(y, name, length)
    return y


@dataclass(frozen=True)
class LinearProbe:
    """A multinomial logistic regression fitted on standardised train features (`fit_linear_probe`):
    fitted once, scored on any split of the same width (the validation and the test split)."""

    scaler: StandardScaler
    classifier: LogisticRegression
    width: int  # D of the features it was fitted on

    def accuracy(self, x: ArrayLike, y: ArrayLike) -> float:
        """Accuracy in [0, 1] on features `x` (M, D), M >= 1, and class ids `y` (M,)."""
        x = _features(x, "x")
        y = _labels(y, "y", x.shape[0])
        if x.shape[1] != self.width:
            raise ValueError(f"features have width {x.shape[1]}; the probe was fitted on width {self.width}")
        if x.shape[0] == 0:
            raise ValueError("x is empty; accuracy is undefined")
        return float(self.classifier.score(self.scaler.transform(x), y))


def fit_linear_probe(train_x: ArrayLike, train_y: ArrayLike, max_iter: int = 1000, C: float = 1.0,
                     seed: int = 0) -> LinearProbe:
    """The probe of `linear_probe_accuracy`, fitted on `train_x` (N, D) and `train_y` (N,) (at
    least two classes); the arguments are that function's."""
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if not C > 0:
        raise ValueError(f"C must be > 0, got {C}")
    train_x = _features(train_x, "train_x")
    train_y = _labels(train_y, "train_y", train_x.shape[0])
    if np.unique(train_y).size < 2:
        raise ValueError("train_y holds a single class; a linear probe needs at least two")
    scaler = StandardScaler().fit(train_x)
    # lbfgs fits the multinomial (softmax) loss whenever there are more than two classes; sklearn
    # >= 1.7 removed the `multi_class` argument because multinomial is the only behaviour left.
    classifier = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, random_state=seed)
    classifier.fit(scaler.transform(train_x), train_y)
    return LinearProbe(scaler, classifier, train_x.shape[1])


def linear_probe_accuracy(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    max_iter: int = 1000,
    C: float = 1.0,
    seed: int = 0,
) -> float:
    """Test accuracy in [0, 1] of a multinomial logistic regression fitted on `train_x`.

    Args:
        train_x: (N, D) float features of the labelled train split (tensor or numpy).
        train_y: (N,) class ids, at least two distinct classes.
        test_x: (M, D) float features; test_y: (M,) class ids, M >= 1.
        max_iter: L-BFGS iteration cap (1000 is CLIP's setting). One iteration is one or a few
            passes of (N, D) x (D, C) products: for 60,000 x 512 float32 features and 10 classes,
            0.1-0.5 s on two busy CPU cores. Standardised embeddings usually converge in tens of
            iterations (3-11 s end to end on synthetic 60,000 x 512 data), so the cap only
            matters for hard problems, where it bounds the fit to about 5 minutes. Lower it
            (e.g. 100) for a quick score during training; sklearn warns when the cap is hit.
        C: inverse L2 regularisation strength (sklearn's convention; larger = weaker).
        seed: passed as the classifier's random_state. L-BFGS itself is deterministic, so today
            it changes nothing; it is kept so a switch to a stochastic solver (saga) stays
            reproducible without changing callers.

    Features are standardised with statistics of the train split only, so that nothing about the
    test split leaks into the classifier, and so that L-BFGS sees a well-conditioned problem
    (raw embeddings can have dimensions whose scales differ by orders of magnitude). To score
    several splits with one fit, use `fit_linear_probe` and `LinearProbe.accuracy`.
    """
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if not C > 0:
        raise ValueError(f"C must be > 0, got {C}")
    # The cheap checks of both sides before the fit, so a bad test split fails at once.
    train_x = _features(train_x, "train_x")
    test_x = _features(test_x, "test_x")
    _labels(train_y, "train_y", train_x.shape[0])
    test_y = _labels(test_y, "test_y", test_x.shape[0])
    check_same_width(train_x, test_x, "train and test features")
    if test_x.shape[0] == 0:
        raise ValueError("test_x is empty; accuracy is undefined")
    return fit_linear_probe(train_x, train_y, max_iter=max_iter, C=C, seed=seed).accuracy(test_x, test_y)
