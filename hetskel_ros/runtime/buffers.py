"""Bounded per-track frame buffers: the recent unified skeletons of one person from one input.

A buffer holds only what the next window needs (its span plus one frame before it, for interpolation) and never
more than a fixed number of frames, so a publisher that floods the node cannot grow its memory.
"""

from __future__ import annotations

import numpy as np

from hetskel_ros.topology.window import interpolate_frames


class TrackBuffer:
    """Time-ordered frames in preallocated arrays; reads are contiguous slices (no copy per window).

    Frames are appended at ``end``; when the arrays fill up, the live frames move to the front. The live count is
    at most ``capacity`` (the oldest frame is dropped first).
    """

    def __init__(self, capacity: int, joints: int, dims: int):
        if capacity < 2:
            raise ValueError(f"a track buffer needs room for at least 2 frames, got capacity {capacity}")
        self.capacity = capacity
        size = 2 * capacity
        self._stamps = np.zeros(size, np.float64)
        self._frames = np.zeros((size, joints, dims), np.float32)
        self._masks = np.zeros((size, joints), bool)
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays (fixed at construction)."""
        return self._stamps.nbytes + self._frames.nbytes + self._masks.nbytes

    @property
    def first_stamp(self) -> float:
        return float(self._stamps[self._start])

    @property
    def last_stamp(self) -> float:
        return float(self._stamps[self._end - 1])

    def push(self, stamp: float, positions: np.ndarray, mask: np.ndarray) -> None:
        """Append one frame (stamps must increase; the caller checks)."""
        if len(self) == self.capacity:
            self._start += 1
        if self._end == len(self._stamps):
            live = slice(self._start, self._end)
            count = self._end - self._start
            self._stamps[:count] = self._stamps[live]
            self._frames[:count] = self._frames[live]
            self._masks[:count] = self._masks[live]
            self._start, self._end = 0, count
        self._stamps[self._end] = stamp
        self._frames[self._end] = positions
        self._masks[self._end] = mask
        self._end += 1

    def drop_before(self, time: float) -> None:
        """Forget frames not needed to sample at ``time`` or later (the last one before it stays)."""
        stamps = self._stamps[self._start:self._end]
        keep_from = int(np.searchsorted(stamps, time, side="right")) - 1
        if keep_from > 0:
            self._start += min(keep_from, len(stamps) - 1)

    def latest(self) -> tuple[np.ndarray, np.ndarray]:
        """The newest frame (J, C) and its mask (J,), as views."""
        return self._frames[self._end - 1], self._masks[self._end - 1]

    def sample(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frames linearly interpolated at ``times`` (hetskel_ros.topology.window: the same as training)."""
        live = slice(self._start, self._end)
        return interpolate_frames(self._stamps[live], self._frames[live], self._masks[live], times)

    def resized(self, capacity: int) -> TrackBuffer:
        """A buffer of ``capacity`` holding this one's newest frames (a model swap re-cuts for its window span)."""
        other = TrackBuffer(capacity, self._frames.shape[1], self._frames.shape[2])
        for i in range(max(self._start, self._end - capacity), self._end):
            other.push(float(self._stamps[i]), self._frames[i], self._masks[i])
        return other

    def clear(self) -> None:
        self._start = self._end = 0
