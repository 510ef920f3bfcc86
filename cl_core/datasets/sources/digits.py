"""scikit-learn's bundled 8x8 handwritten digits: the data set the default run uses, since it
ships with a dependency and needs no download."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
from PIL import Image

from cl_core.datasets.records import ImageRecord

DESCRIPTION = "sklearn:digits"


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def read_digits() -> Iterator[ImageRecord]:
    """Yield the 1,797 digits as grayscale PNGs with labels 0..9.

    Pixels are 0..16 in scikit-learn; they are scaled to 0..255 so the images look like any other
    8-bit source. Ids are `digits-00000`...; the split is left to the store's id hash.
    """
    # Imported here: scikit-learn takes about a second to import and only this source needs it.
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # (N, 8, 8)
    for index, (image, label) in enumerate(zip(pixels, digits.target, strict=True)):
        yield ImageRecord(id=f"digits-{index:05d}", image=_png(image), label=int(label), split=None)
