"""sensor_msgs/Image and CompressedImage <-> numpy, without cv_bridge (it has no wheel for this ROS install).

Raw images are decoded with numpy for the 8-bit encodings cameras and video tools publish (``rgb8``, ``bgr8``,
``mono8``, ``rgba8``, ``bgra8``), honouring the row ``step`` (rows may be padded). Compressed images go through
``cv2.imdecode`` (JPEG, PNG, whatever OpenCV reads). Anything else raises :class:`RejectedImageError` with a stable
``reason`` a node counts in its diagnostics, so one bad frame never stops a node.
"""

from __future__ import annotations

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

# encoding -> channels in the message, and the OpenCV conversion to RGB (None: already RGB)
RAW_ENCODINGS: dict[str, tuple[int, int | None]] = {
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "mono8": (1, cv2.COLOR_GRAY2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
}

CORRUPT = "corrupt_image"
UNSUPPORTED = "unsupported_encoding"


class RejectedImageError(ValueError):
    """An image a node drops; ``reason`` is ``corrupt_image`` or ``unsupported_encoding`` (diagnostics keys)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def image_to_rgb(msg: Image) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array (contiguous, owned) from a raw Image message."""
    encoding = msg.encoding.strip().lower()
    if encoding not in RAW_ENCODINGS:
        raise RejectedImageError(
            UNSUPPORTED, f"image encoding '{msg.encoding}' is not supported (use one of {', '.join(RAW_ENCODINGS)})"
        )
    channels, conversion = RAW_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise RejectedImageError(CORRUPT, f"image is empty ({width}x{height})")
    if step < width * channels:
        raise RejectedImageError(CORRUPT, f"step {step} < width {width} * {channels} channels ({encoding})")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < step * height:
        raise RejectedImageError(
            CORRUPT, f"image data has {data.size} bytes, {encoding} {width}x{height} step {step} needs {step * height}"
        )
    pixels = data[: step * height].reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    if conversion is None:
        return np.ascontiguousarray(pixels)
    return cv2.cvtColor(np.ascontiguousarray(pixels) if channels > 1 else pixels[:, :, 0].copy(), conversion)


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array from a CompressedImage (any format cv2.imdecode reads)."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise RejectedImageError(CORRUPT, f"compressed image ('{msg.format}') has no data")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise RejectedImageError(CORRUPT, f"compressed image ('{msg.format}', {data.size} bytes) could not be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rgb_to_image(rgb: np.ndarray, encoding: str = "bgr8") -> Image:
    """An Image message (header left to the caller) from (H, W, 3) uint8 RGB pixels, as rgb8 or bgr8."""
    return _pixels_to_image(rgb if encoding == "rgb8" else rgb[:, :, ::-1], encoding)


def bgr_to_image(bgr: np.ndarray, encoding: str = "bgr8") -> Image:
    """An Image message (header left to the caller) from (H, W, 3) uint8 BGR pixels (OpenCV's order)."""
    return _pixels_to_image(bgr if encoding == "bgr8" else bgr[:, :, ::-1], encoding)


def _pixels_to_image(pixels: np.ndarray, encoding: str) -> Image:
    if encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"encoding must be 'rgb8' or 'bgr8', got '{encoding}'")
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8 pixels, got {pixels.shape} {pixels.dtype}")
    msg = Image()
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(pixels).tobytes()
    return msg
