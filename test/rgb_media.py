"""Real images and a real video for the RGB-path tests, all available offline.

The photo is scikit-image's ``astronaut`` (Eileen Collins, NASA, public domain), shipped inside the scikit-image
wheel. The video is made from it: the photo moved and scaled over a grey background, written by cv2.VideoWriter as
MPEG-4 (a real encode/decode round trip through the codec OpenCV's wheel carries).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

VIDEO_SIZE = (640, 480)  # width, height
VIDEO_FPS = 30.0


def astronaut_rgb() -> np.ndarray:
    """The 512x512 RGB astronaut photo (a person facing the camera, head to waist)."""
    import skimage.data

    return np.ascontiguousarray(skimage.data.astronaut())


def astronaut_frame(index: int, size: tuple[int, int] = VIDEO_SIZE) -> np.ndarray:
    """Frame ``index`` (BGR) of the test video: the photo moving right, slowly scaled, near the top of a grey canvas."""
    width, height = size
    scale = 0.72 + 0.08 * np.sin(index / 8.0)  # 0.64 .. 0.80 of the frame height, room below for the hips
    side = int(height * scale)
    photo = cv2.resize(astronaut_rgb()[:, :, ::-1], (side, side), interpolation=cv2.INTER_AREA)
    canvas = np.full((height, width, 3), 96, np.uint8)
    x = min(width - side, 20 + 3 * index)
    y = 10
    canvas[y : y + side, x : x + side] = photo
    return canvas


def write_astronaut_video(path: Path, frames: int, fps: float = VIDEO_FPS, size: tuple[int, int] = VIDEO_SIZE) -> Path:
    """Write ``frames`` frames of :func:`astronaut_frame` as an MPEG-4 file and return its path."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), f"cv2.VideoWriter could not open {path} with mp4v"
    try:
        for index in range(frames):
            writer.write(astronaut_frame(index, size))
    finally:
        writer.release()
    return path


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
