"""Real standing phases of labelled clips: the frames at a clip's start and end where the person barely moves.

The bag generator makes idle gaps of them (hetskel_ros.ros.bagtools.stream), and calibration learns the idle class
from them (hetskel_ros.model.calibration, training/calibrate.py): real sway, weight shifts and head turns rather
than a held pose with noise. Pure numpy, any topology (native joints and units).
"""

from __future__ import annotations

import numpy as np

MIN_PHASE_S = 0.3  # a standing phase shorter than this is not used
ACTING_MIN_S = 0.5  # a clip is acting throughout when less than this would be left between its standing phases
STILL_MAX = 0.1  # body heights/s of the fastest joints (90th percentile) a standing frame stays below
# (measured at the clip ends of UTD-MHAD and the Bandai mocap: 0.04-0.08; waving hands: > 0.5)


def standing_phase(clip: np.ndarray, fps: float, at_end: bool) -> np.ndarray:
    """The frames at the clip's start (or end) where the person barely moves: the speed of the fastest joints (90th
    percentile, smoothed over 0.2 s) below STILL_MAX body heights per second, so waving hands are never "still".
    Empty when shorter than MIN_PHASE_S."""
    if len(clip) < 3:
        return clip[:0]
    height = float(np.ptp(clip[0], axis=0).max()) or 1.0
    speed = np.percentile(np.linalg.norm(np.diff(clip, axis=0), axis=-1), 90, axis=-1) * fps / height
    width = max(1, round(0.2 * fps))
    speed = np.convolve(speed, np.ones(width) / width, mode="same")
    still = speed <= STILL_MAX
    order = still[::-1] if at_end else still
    count = int(np.argmin(order)) if not order.all() else len(order)
    if count < MIN_PHASE_S * fps:
        return clip[:0]
    return clip[len(clip) - count:] if at_end else clip[: count + 1]


def acting_span(clip: np.ndarray, fps: float) -> tuple[int, int]:
    """Frames [start, end) of a clip where its action happens: between its standing phases at the start and end,
    or the whole clip when less than ACTING_MIN_S would be left. The bag generator's ground truth and the window
    head's idle examples both cut clips so."""
    n = len(clip)
    head, tail = len(standing_phase(clip, fps, False)), len(standing_phase(clip, fps, True))
    if n - head - tail < ACTING_MIN_S * fps:
        return 0, n
    return head, n - tail


def standing_pool(clips: list[np.ndarray], fps: float) -> list[np.ndarray]:
    """Every standing phase (start and end) of a set's clips: what a clip without one borrows."""
    phases = [standing_phase(c, fps, at_end) for c in clips for at_end in (False, True)]
    return [p for p in phases if len(p)]


def ping_pong(phase: np.ndarray, count: int, end_at_first: bool = False) -> np.ndarray:
    """``count`` frames of ``phase`` played forwards, backwards, forwards...; starting at its first frame, or (with
    ``end_at_first``) ending at it, so the gap joins the clip it leads into."""
    if not len(phase):
        raise ValueError("ping_pong needs at least one frame of a standing phase")
    cycle = np.concatenate([phase, phase[-2:0:-1]]) if len(phase) > 2 else phase
    reps = -(-count // len(cycle)) + 1
    frames = np.concatenate([cycle] * reps)[:count]
    return frames[::-1] if end_at_first else frames
