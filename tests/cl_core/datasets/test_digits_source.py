"""sources/digits.py."""

from __future__ import annotations

from cl_core.datasets.decode import decode_image
from cl_core.datasets.sources.digits import read_digits


def test_digits_are_labelled_8x8_gray_pngs_scaled_to_255():
    records = list(read_digits())
    assert len(records) == 1797
    assert records[0].id == "digits-00000" and records[-1].id == "digits-01796"
    assert {r.label for r in records} == set(range(10))
    assert all(r.split is None for r in records)
    assert records[0].image.startswith(b"\x89PNG")
    pixels = [decode_image(r.image) for r in records[:50]]
    assert all(p.shape == (1, 8, 8) for p in pixels)
    assert max(int(p.max()) for p in pixels) == 255  # 16 in scikit-learn
