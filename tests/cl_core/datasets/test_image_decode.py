"""decode_image / decode_images / image_channels / decoded_shape."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from cl_core.datasets.decode import decode_image, decode_images, decoded_shape, image_channels


def _save(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def gray():
    pixels = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10  # (H, W)
    return pixels, _save(Image.fromarray(pixels))


@pytest.fixture
def rgb():
    pixels = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)  # (H, W, 3)
    return pixels, _save(Image.fromarray(pixels))


def test_gray_png_round_trips_exactly(gray):
    pixels, data = gray
    out = decode_image(data)
    assert out.dtype == np.uint8 and out.shape == (1, 4, 5) and out.flags.c_contiguous
    np.testing.assert_array_equal(out[0], pixels)


def test_rgb_png_is_channels_first(rgb):
    pixels, data = rgb
    out = decode_image(data)
    assert out.shape == (3, 4, 5) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, pixels.transpose(2, 0, 1))


def test_forced_channels(gray, rgb):
    gray_pixels, gray_data = gray
    as_rgb = decode_image(gray_data, channels=3)
    assert as_rgb.shape == (3, 4, 5)
    for channel in as_rgb:
        np.testing.assert_array_equal(channel, gray_pixels)
    rgb_pixels, rgb_data = rgb
    expected = np.asarray(Image.fromarray(rgb_pixels).convert("L"))
    np.testing.assert_array_equal(decode_image(rgb_data, channels=1)[0], expected)


def test_resize_to_square(rgb):
    assert decode_image(rgb[1], size=7).shape == (3, 7, 7)


def test_sixteen_bit_gray_is_scaled_not_clipped():
    pixels = np.array([[0, 256 * 100, 65535]], dtype=np.uint16)
    out = decode_image(_save(Image.fromarray(pixels)))
    np.testing.assert_array_equal(out, [[[0, 100, 255]]])


def test_palette_and_rgba_become_rgb(rgb):
    palette = Image.fromarray(rgb[0]).convert("P")
    assert decode_image(_save(palette)).shape == (3, 4, 5)
    rgba = Image.fromarray(rgb[0]).convert("RGBA")
    np.testing.assert_array_equal(decode_image(_save(rgba)), rgb[0].transpose(2, 0, 1))


def test_jpeg_decodes(rgb):
    assert decode_image(_save(Image.fromarray(rgb[0]), "JPEG")).shape == (3, 4, 5)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "0 bytes"),
        (b"not an image at all", "cannot decode image"),
        ("cut", "cannot decode image"),
    ],
)
def test_undecodable_bytes_raise_value_error(rgb, data, reason):
    if data == "cut":
        data = _save(Image.fromarray(np.zeros((64, 64, 3), np.uint8) + rgb[0][0, 0]))[:-30]
    with pytest.raises(ValueError, match=reason):
        decode_image(data)


def test_bad_arguments_raise(gray):
    with pytest.raises(ValueError, match="channels"):
        decode_image(gray[1], channels=2)
    with pytest.raises(ValueError, match="size"):
        decode_image(gray[1], size=0)
    with pytest.raises(TypeError, match="bytes"):
        decode_image("a string")


@pytest.mark.parametrize("mode", ["1", "L", "LA", "I;16", "P", "RGB", "RGBA", "CMYK"])
def test_decoded_shape_matches_decode_image(mode):
    image = Image.fromarray(np.full((3, 4, 3), 90, np.uint8)).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "LA" else "PNG")
    data = _save(image, fmt)
    assert decoded_shape(data) == decode_image(data).shape
    assert image_channels(data) == decode_image(data).shape[0]


def test_decode_images_mixed_channels_stack_as_rgb(gray, rgb):
    batch = decode_images([gray[1], rgb[1]])
    assert batch.dtype == torch.uint8 and batch.shape == (2, 3, 4, 5)
    assert torch.equal(batch[0, 0], batch[0, 2])


def test_decode_images_accepts_arrow_and_resizes(gray):
    other = _save(Image.fromarray(np.zeros((9, 2), np.uint8)))
    batch = decode_images(pa.array([gray[1], other], pa.binary()), size=6, channels=1)
    assert batch.shape == (2, 1, 6, 6)


def test_decode_images_names_the_bad_image(gray):
    with pytest.raises(ValueError, match="image 1 of the batch"):
        decode_images([gray[1], b"junk"])
    other = _save(Image.fromarray(np.zeros((9, 2), np.uint8)))
    with pytest.raises(ValueError, match="image 1 has shape"):
        decode_images([gray[1], other])
    with pytest.raises(ValueError, match="at least one"):
        decode_images([])


def test_an_image_above_the_pixel_limit_is_refused_from_its_header(monkeypatch):
    """A small file may declare a huge image (a decompression bomb): PIL only warns between its
    limit and twice it, and decoding would allocate every pixel. Refused before decoding."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL's own setting, lowered for a small test
    data = _save(Image.new("L", (40, 30)))  # 1,200 pixels: above the limit, below twice it
    for check in (decoded_shape, image_channels, decode_image):
        with pytest.raises(ValueError, match="1200 pixels.*1000"):
            check(data)
    assert decoded_shape(_save(Image.new("L", (30, 30)))) == (1, 30, 30)
