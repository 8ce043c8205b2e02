"""PNG bytes without TensorFlow, and resampling.

TFDS encodes numpy images with TensorFlow, so the builders hand `tfds.features.Image` ready PNG
bytes instead. Encoding uses a minimal standard-library writer (8-bit, filter type 0, one IDAT
chunk, zlib): it is ~3x faster than Pillow's `Image.save` on 32×32 images, where Pillow's per-call
overhead dominates, and its bytes are fully determined by the pixels. Decoding uses Pillow (as
TFDS does when it reads the images back).
"""
from __future__ import annotations

import io
import struct
import zlib
from concurrent import futures

import numpy as np
from PIL import Image

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> grey, grey+alpha, RGB, RGBA
_ZLIB_LEVEL = 1  # images are prepared once and are small; level 6 is ~3x slower for ~10% smaller files


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_png(image: np.ndarray) -> bytes:
    """Encodes a uint8 image of shape (H, W, C) with C in {1, 2, 3, 4}, or (H, W), as PNG bytes."""
    if image.dtype != np.uint8:
        raise ValueError(f"PNG images must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in _PNG_COLOUR_TYPE:
        raise ValueError(f"PNG images must be (H, W, C) with C in 1..4, got shape {image.shape}")
    height, width, channels = image.shape
    scanlines = np.zeros((height, 1 + width * channels), dtype=np.uint8)  # filter byte 0 per row
    scanlines[:, 1:] = image.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOUR_TYPE[channels], 0, 0, 0)
    return b"".join((_PNG_SIGNATURE, _png_chunk(b"IHDR", header),
                     _png_chunk(b"IDAT", zlib.compress(scanlines.tobytes(), _ZLIB_LEVEL)),
                     _png_chunk(b"IEND", b"")))


def encode_png_batch(images: np.ndarray, executor: futures.Executor | None = None) -> list[bytes]:
    """Encodes images of shape (N, H, W, C) uint8; zlib releases the GIL, so threads help."""
    if executor is None:
        return [encode_png(image) for image in images]
    return list(executor.map(encode_png, images))


def decode_png(data: bytes) -> np.ndarray:
    """Decodes PNG bytes to a uint8 array (H, W, C)."""
    with Image.open(io.BytesIO(data)) as image:
        array = np.asarray(image)
    return array[..., None] if array.ndim == 2 else array


def resampling_matrix(size_in: int, size_out: int) -> np.ndarray:
    """Linear-interpolation weights of shape (size_out, size_in), pixel centres at i + 0.5.

    Upsampling is plain bilinear interpolation (`align_corners=False`); downsampling widens the
    triangle filter by the scale factor (antialiased, as Pillow's BILINEAR does). Rows sum to 1.
    """
    scale = size_in / size_out
    support = max(scale, 1.0)
    centres = (np.arange(size_out) + 0.5) * scale  # output centres in input coordinates
    inputs = np.arange(size_in) + 0.5
    weights = np.clip(1.0 - np.abs(inputs[None, :] - centres[:, None]) / support, 0.0, None)
    # Edge pixels: weight that would fall outside the image is renormalised onto the inside.
    weights /= weights.sum(axis=1, keepdims=True)
    return weights


def resize_uint8(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resizes uint8 images (N, H, W) or (N, H, W, C) with separable linear filtering, rounding."""
    rows = resampling_matrix(images.shape[1], height)
    cols = resampling_matrix(images.shape[2], width)
    values = images.astype(np.float64)
    if images.ndim == 3:
        out = np.einsum("ih,nhw,jw->nij", rows, values, cols, optimize=True)
    else:
        out = np.einsum("ih,nhwc,jw->nijc", rows, values, cols, optimize=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
