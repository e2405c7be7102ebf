"""Fixed-length windows at the model's frame rate, from frames stamped at any rate.

Training, offline evaluation and the ROS node all cut windows with these functions, so the model sees the same
thing in each: frames linearly interpolated at the model's frame times, the stream's first frame repeated before it
starts (a short clip looks like a person standing still, then acting).
"""

from __future__ import annotations

import numpy as np


def window_times(end: float, count: int, fps: float) -> np.ndarray:
    """The `count` frame times of a window ending at `end`, oldest first."""
    return end - (np.arange(count - 1, -1, -1, dtype=np.float64) / fps)


def track_window_times(end: float, first: float, count: int, fps: float, stretch: bool) -> np.ndarray:
    """The frame times of a track's window ending at ``end`` (the track began at ``first``): ``window_times``, or,
    with ``stretch`` and a track younger than one window span, its whole life resampled to ``count`` frames. Why:
    a 1 s gesture in a 2 s window otherwise sits behind a second of its own first frame; stretched, it fills the
    window as it fills a whole-clip training crop (training.views ``whole_clip``), played slower."""
    if stretch and first < end < first + (count - 1) / fps:
        return np.linspace(first, end, count)
    return window_times(end, count, fps)


def interpolate_frames(
    stamps: np.ndarray, frames: np.ndarray, mask: np.ndarray, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sample (T, J, C) frames stamped `stamps` (seconds, increasing) at `times`.

    A joint is present at a sampled time when it is present in both neighbouring frames; times outside the stamps
    take the nearest end frame. Returns (len(times), J, C) float32 and its (len(times), J) mask.
    """
    stamps = np.asarray(stamps, dtype=np.float64)
    if stamps.ndim != 1 or len(stamps) != len(frames) or len(frames) == 0:
        raise ValueError(
            f"need one stamp per frame and at least one frame, got {len(stamps)} stamps, {len(frames)} frames"
        )
    times = np.clip(np.asarray(times, dtype=np.float64), stamps[0], stamps[-1])
    upper = np.clip(np.searchsorted(stamps, times, side="left"), 0, len(stamps) - 1)
    lower = np.clip(upper - 1, 0, len(stamps) - 1)
    span = stamps[upper] - stamps[lower]
    weight = np.where(span > 0, (times - stamps[lower]) / np.where(span > 0, span, 1.0), 1.0)
    weight = weight[:, None, None].astype(np.float32)
    out = (1.0 - weight) * frames[lower] + weight * frames[upper]
    present = mask[lower] & mask[upper]
    out = np.where(present[..., None], out, 0.0).astype(np.float32)
    return out, present


def next_due(due: float, end: float, stride: float, tolerance: float = 1e-6) -> float:
    """The first time on the grid ``due + k * stride`` after a window that ended at ``end`` (k >= 1)."""
    return due + stride * (np.floor((end - due + tolerance) / stride) + 1)


def window_ends(stamps: np.ndarray, span: float, stride: float, min_fill: float, phase: float = 0.0,
                tolerance: float = 1e-6) -> list[float]:
    """The stamps at which the ROS node cuts a track's windows (runtime.recognizer schedules them so, frame by
    frame): the first at least ``min_fill`` of a window ``span`` after the track began (plus ``phase``), then the
    first frame at or after each further ``stride``. Empty when the track ends before its first window."""
    stamps = np.asarray(stamps, dtype=np.float64)
    if not len(stamps):
        return []
    due = float(stamps[0] + min_fill * span + phase)
    ends = []
    for stamp in stamps:
        if stamp >= due - tolerance:
            ends.append(float(stamp))
            due = float(next_due(due, stamp, stride, tolerance))
    return ends
