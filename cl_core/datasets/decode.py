"""Decode stored image bytes (PNG, JPEG, BMP, GIF, ...) into uint8 arrays and tensors.

The same function validates records at ingest and feeds training, so an image that ingests is
an image that trains.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

# Modes that carry one intensity channel, and the colour modes PIL can convert to RGB. Anything
# else (LAB, HSV, ...) is rejected up front so that an image that validates always converts.
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})
_COLOR_MODES = frozenset({"RGB", "RGBA", "RGBa", "RGBX", "P", "PA", "CMYK", "YCbCr"})
_BUFFER_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def _is_gray(mode: str) -> bool:
    return mode in _GRAY_MODES or mode.startswith("I;16")


def _check_pixels(image: Image.Image) -> None:
    """Refuse, from the header, an image above PIL's pixel limit: PIL itself refuses only above
    twice it and merely warns below that, and decoding allocates every pixel."""
    width, height = image.size
    if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
        raise ValueError(f"{width}x{height} = {width * height} pixels, above the limit of {Image.MAX_IMAGE_PIXELS} "
                         "pixels (PIL.Image.MAX_IMAGE_PIXELS; a decompression bomb?)")


def _open(data: bytes, load: bool) -> Image.Image:
    """Open `data` with PIL; any failure becomes a ValueError saying why."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"image data must be bytes, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError("cannot decode image: 0 bytes")
    try:
        image = Image.open(io.BytesIO(data))
        _check_pixels(image)
        if load:
            image.load()  # Image.open only parses the header; truncation shows up here
    # PIL reports damage through many types (OSError, SyntaxError, struct.error, EOFError,
    # DecompressionBombError, ...): for untrusted bytes every one of them means "undecodable".
    except Exception as error:  # noqa: BLE001
        kind = type(error).__name__
        # PIL names the buffer by its memory address: the same bytes would get a different
        # reason in every process, and quarantine files of two ingests would not compare.
        why = _BUFFER_REPR.sub("the image bytes", str(error))
        raise ValueError(f"cannot decode image ({len(data)} bytes): {kind}: {why}") from error
    if not (_is_gray(image.mode) or image.mode in _COLOR_MODES):
        raise ValueError(f"cannot decode image: unsupported {image.format} mode {image.mode!r}")
    return image


def _to_8bit_gray(image: Image.Image) -> Image.Image:
    """Wide grayscale modes to "L" by scaling, because PIL's convert("L") clips 16-bit values."""
    if image.mode.startswith("I;16") or image.mode == "I":
        pixels = np.asarray(image).astype(np.int64)
        # 32-bit "I" is how some PIL versions load 16-bit PNGs; values <= 255 are already 8-bit.
        if image.mode.startswith("I;16") or pixels.max(initial=0) > 255:
            pixels = pixels >> 8
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if image.mode == "F":
        return Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8))
    return image.convert("L")


def image_channels(data: bytes) -> int:
    """1 for grayscale encodings, 3 for everything else; reads only the header."""
    return 1 if _is_gray(_open(data, load=False).mode) else 3


def decoded_shape(data: bytes) -> tuple[int, int, int]:
    """`decode_image(data).shape`, found by fully decoding the pixels but not copying them out.

    This is the ingest check: it fails exactly when `decode_image` would, at a fraction less work.

    Raises:
        ValueError: the bytes are not a decodable image.
    """
    image = _open(data, load=True)
    width, height = image.size
    return (1 if _is_gray(image.mode) else 3), height, width


def decode_image(data: bytes, size: int | None = None, channels: int | None = None) -> np.ndarray:
    """Decode one encoded image.

    Args:
        data: the encoded file bytes.
        size: if given, resize to (size, size) with bilinear filtering.
        channels: 1 (luma) or 3 (RGB); None keeps 1 for grayscale encodings, else 3.

    Returns:
        uint8 array (C, H, W), C-contiguous.

    Raises:
        ValueError: the bytes are not a decodable image, or an argument is out of range.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    if size is not None and size < 1:
        raise ValueError(f"size must be >= 1, got {size!r}")
    image = _open(data, load=True)
    if channels is None:
        channels = 1 if _is_gray(image.mode) else 3
    if channels == 1:
        image = _to_8bit_gray(image) if _is_gray(image.mode) else image.convert("L")
    elif image.mode != "RGB":
        # Gray goes through "L" first so 16-bit values are scaled, not clipped.
        image = (_to_8bit_gray(image) if _is_gray(image.mode) else image).convert("RGB")
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        return pixels[None].copy()  # (1, H, W)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))  # (H, W, 3) -> (3, H, W)


def decode_images(
    images: Iterable[bytes] | pa.Array | pa.ChunkedArray,
    size: int | None = None,
    channels: int | None = None,
) -> torch.Tensor:
    """Decode a batch into one uint8 tensor (N, C, H, W).

    With `channels=None` the batch is 1-channel only if every image is grayscale; otherwise
    grayscale images are repeated to RGB so the batch stacks. Without `size` every image must
    already have the same height and width.
    """
    if isinstance(images, (pa.Array, pa.ChunkedArray)):
        images = images.to_pylist()
    arrays = []
    for index, data in enumerate(images):
        try:
            arrays.append(decode_image(data, size=size, channels=channels))
        except ValueError as error:
            raise ValueError(f"image {index} of the batch: {error}") from error
    if not arrays:
        raise ValueError("decode_images needs at least one image")
    if channels is None and any(a.shape[0] == 3 for a in arrays):
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
    first = arrays[0].shape
    for index, array in enumerate(arrays):
        if array.shape != first:
            raise ValueError(
                f"image {index} has shape {array.shape}, image 0 has {first}; pass size= to resize"
            )
    return torch.from_numpy(np.stack(arrays))  # (N, C, H, W)
