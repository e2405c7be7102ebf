"""Untrimmed multi-person streams from labelled clips: what a sensor would see, with per-frame ground truth.

Each person performs a share of the clips one after the other, with idle gaps between them. With ``idle="real"``
(the default) a gap is made of the real standing phases of the data: the frames at the end of the previous clip and
at the start of the next one where the person barely moves (``standing_phase``), played forwards and backwards in
turn (real sway, weight shifts and head turns, never a frozen pose), with a short blend from one into the other. A
clip without a standing phase of at least ``MIN_PHASE_S`` borrows one of another clip of the same set (moved on the
ground to where the person stands, blended in and out; counted in ``Stream.idle_borrowed``); only a set without any
standing phase falls back to the pose held with sensor noise (counted in ``Stream.idle_fallbacks``; the shipped
mocap sample's tightly trimmed clips have none). ``idle="hold"``: the last pose held with noise, then a short blend
into the next clip's first pose. Every clip continues where the previous one ended (translated on the ground plane,
so a walk does not teleport the person back), and people stand ``spacing`` apart sideways. All
people share one clock; a person whose clips end early stands idle until the stream ends. Frames of clips carry
their action label, all others ``BACKGROUND`` ("idle"); with ``clip_standing="idle"`` (the default) so do a clip's
own standing phases at its start and end (the person has not begun, or has finished: the same phases the idle gaps
and calibration's idle class are made of), unless less than ``ACTING_MIN_S`` of the clip would stay labelled.
Pure numpy: no ROS, deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetskel_ros.runtime.detection_metrics import BACKGROUND
from hetskel_ros.topology import Topology
from hetskel_ros.topology.sequences import SequenceSet
from hetskel_ros.topology.standing import acting_span, ping_pong, standing_phase, standing_pool

BLEND_S = 0.5  # the move from one clip's last pose to the next one's first pose, inside an idle gap
IDLE_KINDS = ("real", "hold")
CLIP_STANDING = ("idle", "action")  # what a clip's own standing phases at its start and end are labelled


@dataclass(frozen=True)
class StreamSegment:
    """One clip in the stream: frames [start, end) of a person."""

    track_id: int
    label: str
    start: int
    end: int
    sequence: str

    def as_dict(self, fps: float) -> dict:
        return {"track_id": self.track_id, "label": self.label, "start_s": round(self.start / fps, 6),
                "end_s": round(self.end / fps, 6), "sequence": self.sequence}


@dataclass
class PersonStream:
    track_id: int
    positions: np.ndarray  # (F, N, dims) float32, native joints and units
    confidence: np.ndarray | None  # (F, N) float32, or None when the source has none
    labels: list[str]  # (F,)


@dataclass
class Stream:
    topology: str
    dims: int
    fps: float
    people: list[PersonStream]
    segments: list[StreamSegment]
    label_names: tuple[str, ...]  # the source's action vocabulary
    idle_fallbacks: int = 0  # idle gap halves without any real standing phase: a held pose with noise
    idle_borrowed: int = 0  # idle gap halves made of another clip's standing phase

    @property
    def num_frames(self) -> int:
        return len(self.people[0].labels) if self.people else 0

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps


@dataclass(frozen=True)
class StreamOptions:
    people: int = 3
    idle_s: tuple[float, float] = (1.0, 2.0)  # each idle gap's length is drawn uniformly from this range
    spacing: float | None = None  # sideways distance between people (native units); None: 2 m (3D), 300 px (2D)
    noise: float | None = None  # std of the idle jitter (native units); None: 2 mm (3D), 1 px (2D)
    seed: int = 0
    idle: str = "real"  # "real": standing phases of the data; "hold": the last pose held with noise
    clip_standing: str = "idle"  # a clip's own standing start and end: "idle", or "action" (the clip's label)

    def __post_init__(self) -> None:
        low, high = self.idle_s
        if self.people < 1:
            raise ValueError(f"people must be >= 1, got {self.people}")
        if not 0 < low <= high:
            raise ValueError(f"idle gap range must satisfy 0 < min <= max, got {self.idle_s}")
        if self.idle not in IDLE_KINDS:
            raise ValueError(f"idle must be one of {IDLE_KINDS}, got {self.idle!r}")
        if self.clip_standing not in CLIP_STANDING:
            raise ValueError(f"clip_standing must be one of {CLIP_STANDING}, got {self.clip_standing!r}")


def clip_labels(clip: np.ndarray, fps: float, label: str, standing_idle: bool = True) -> list[str]:
    """Per-frame ground truth of one clip: its label, but ``BACKGROUND`` on its own standing phases at the start and
    end (``standing_idle``), unless less than ACTING_MIN_S would stay between them."""
    n = len(clip)
    if not standing_idle:
        return [label] * n
    start, end = acting_span(clip, fps)
    return [BACKGROUND] * start + [label] * (end - start) + [BACKGROUND] * (n - end)


def ground_axes(topology: Topology) -> list[int]:
    """Axes of the ground plane (3D) or the image's horizontal axis (2D): what a person moves along."""
    up = "xyz".index(topology.up[1])
    return [axis for axis in range(topology.dims) if axis != up]


def assign_clips(lengths: list[int], people: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffle the clips, then give each to the person with the least to do so far (similar stream lengths)."""
    order = rng.permutation(len(lengths))
    shares: list[list[int]] = [[] for _ in range(people)]
    totals = [0] * people
    for index in order:
        person = int(np.argmin(totals))
        shares[person].append(int(index))
        totals[person] += lengths[index]
    return shares


class _PersonBuilder:
    """Appends clips and idle gaps for one person, keeping the ground position continuous."""

    def __init__(self, track_id: int, axes: list[int], offset: np.ndarray, noise: float, fps: float,
                 rng: np.random.Generator, with_confidence: bool, pool: list[np.ndarray] | None = None,
                 standing_idle: bool = True):
        self.track_id = track_id
        self.standing_idle = standing_idle
        self.axes = axes
        self.offset = offset
        self.noise = noise
        self.fps = fps
        self.rng = rng
        self.with_confidence = with_confidence
        self.frames: list[np.ndarray] = []
        self.confidence: list[np.ndarray] = []
        self.labels: list[str] = []
        self.segments: list[StreamSegment] = []
        self.last: np.ndarray | None = None  # the last pose so far
        self.last_confidence: np.ndarray | None = None
        self.real_idle = pool is not None
        self.pool = pool or []
        self.last_clip: np.ndarray | None = None
        self.fallbacks = 0
        self.borrowed = 0

    @property
    def length(self) -> int:
        return len(self.labels)

    def _place(self, clip: np.ndarray) -> np.ndarray:
        """Translate a clip on the ground so it starts where the person is (the first clip: at the person's offset
        from the origin, the clip's own height kept)."""
        clip = clip.astype(np.float32, copy=True)
        anchor = self.last.mean(axis=0) if self.last is not None else self.offset
        shift = np.zeros(clip.shape[-1], np.float32)
        shift[self.axes] = (anchor - clip[0].mean(axis=0))[self.axes]
        return clip + shift

    def _hold(self, pose: np.ndarray, confidence: np.ndarray | None, count: int) -> None:
        if count <= 0:
            return
        jitter = self.rng.normal(0.0, self.noise, (count, *pose.shape)).astype(np.float32)
        self.frames.append(pose[None] + jitter)
        self.labels += [BACKGROUND] * count
        if self.with_confidence:
            self.confidence.append(np.repeat(confidence[None], count, axis=0))

    def _append_idle(self, frames: np.ndarray, confidence: np.ndarray | None) -> None:
        self.frames.append(frames.astype(np.float32))
        self.labels += [BACKGROUND] * len(frames)
        if self.with_confidence:
            self.confidence.append(np.repeat(confidence[None], len(frames), axis=0))

    def real_idle_gap(self, seconds: float, next_clip: np.ndarray | None,
                      next_confidence: np.ndarray | None) -> None:
        """Idle from real standing phases: the previous clip's end phase, then the next clip's start phase (each
        played to and fro), blended over BLEND_S; a side without a phase holds its pose with noise."""
        count = max(1, round(seconds * self.fps))
        before_phase = standing_phase(self.last_clip, self.fps, True) if self.last_clip is not None else None
        after_phase = standing_phase(next_clip, self.fps, False) if next_clip is not None else None
        if next_clip is None:  # the stream's end: only the end phase
            first, second = count, 0
        elif self.last_clip is None:  # the stream's start: only the start phase
            first, second = 0, count
        else:
            first = count // 2
            second = count - first
        parts = []
        if first:
            if before_phase is not None and len(before_phase):
                part = ping_pong(before_phase[::-1], first)  # from the clip's last frame back into the phase
            else:
                part = self._borrowed(self.last, first, at_start=True)
            parts.append(part)
        if second:
            if after_phase is not None and len(after_phase):
                part = ping_pong(after_phase, second, end_at_first=True)
            else:
                part = self._borrowed(next_clip[0], second, at_start=False)
            parts.append(part)
        if first and second:  # the second phase starts where the first ended, the offset fading over BLEND_S
            blend = min(round(BLEND_S * self.fps), second)
            offset = parts[1][0] - parts[0][-1]
            fade = 0.5 + 0.5 * np.cos(np.pi * np.arange(blend) / max(blend - 1, 1))
            parts[1] = parts[1].copy()
            parts[1][:blend] -= fade[:, None, None] * offset[None]
        frames = np.concatenate(parts).astype(np.float32)
        conf = self.last_confidence if self.last_confidence is not None else next_confidence
        if self.with_confidence and self.last_confidence is not None and next_confidence is not None:
            conf = np.minimum(self.last_confidence, next_confidence)
        self._append_idle(frames, conf)

    def _borrowed(self, pose: np.ndarray, count: int, at_start: bool) -> np.ndarray:
        """``count`` frames of another clip's standing phase, moved on the ground to ``pose`` and blended from it
        (``at_start``) or into it; the pose held with noise when the set has no standing phase at all."""
        if not self.pool:
            self.fallbacks += 1
            return pose[None] + self.rng.normal(0.0, self.noise, (count, *pose.shape))
        self.borrowed += 1
        phase = self.pool[int(self.rng.integers(len(self.pool)))]
        frames = ping_pong(phase, count).astype(np.float32)
        shift = np.zeros(frames.shape[-1], np.float32)
        shift[self.axes] = (pose.mean(axis=0) - frames[0].mean(axis=0))[self.axes]
        frames = frames + shift
        blend = min(round(BLEND_S * self.fps), count)
        fade = 0.5 + 0.5 * np.cos(np.pi * np.arange(blend) / max(blend - 1, 1))
        if at_start:
            frames[:blend] -= fade[:, None, None] * (frames[0] - pose)[None]
        else:
            frames[count - blend:] -= fade[::-1][:, None, None] * (frames[-1] - pose)[None]
        return frames

    def idle(self, seconds: float, next_pose: np.ndarray | None = None,
             next_confidence: np.ndarray | None = None, next_clip: np.ndarray | None = None) -> None:
        """Stand for ``seconds`` (real standing phases or a held pose, see the module doc); when a next pose is
        given, move into it."""
        if self.real_idle:
            self.real_idle_gap(seconds, next_clip, next_confidence)
            return
        count = max(1, round(seconds * self.fps))
        assert self.last is not None or next_pose is not None
        if next_pose is None or self.last is None:
            pose = self.last if self.last is not None else next_pose
            conf = self.last_confidence if self.last is not None else next_confidence
            self._hold(pose, conf, count)
            return
        blend = min(round(BLEND_S * self.fps), count)
        before = (count - blend) // 2
        self._hold(self.last, self.last_confidence, before)
        weights = (0.5 - 0.5 * np.cos(np.pi * (np.arange(1, blend + 1) / (blend + 1))))[:, None, None]
        moving = ((1 - weights) * self.last[None] + weights * next_pose[None]).astype(np.float32)
        moving += self.rng.normal(0.0, self.noise, moving.shape).astype(np.float32)
        self.frames.append(moving)
        self.labels += [BACKGROUND] * blend
        if self.with_confidence:
            both = np.minimum(self.last_confidence, next_confidence)
            self.confidence.append(np.repeat(both[None], blend, axis=0))
        self._hold(next_pose, next_confidence, count - blend - before)

    def clip(self, clip: np.ndarray, confidence: np.ndarray | None, label: str, name: str) -> None:
        start = self.length
        self.frames.append(clip)
        self.labels += clip_labels(clip, self.fps, label, self.standing_idle)
        if self.with_confidence:
            self.confidence.append(confidence)
        self.segments.append(StreamSegment(self.track_id, label, start, self.length, name))
        self.last = clip[-1]
        self.last_clip = clip
        self.last_confidence = confidence[-1] if confidence is not None else None

    def finish(self) -> PersonStream:
        return PersonStream(self.track_id, np.concatenate(self.frames).astype(np.float32),
                            np.concatenate(self.confidence).astype(np.float32) if self.with_confidence else None,
                            self.labels)


def compose_stream(data: SequenceSet, topology: Topology, options: StreamOptions | None = None,
                   confidence: list[np.ndarray] | None = None, indices: list[int] | None = None,
                   idle_clips: list[int] | None = None) -> Stream:
    """An untrimmed stream of ``options.people`` people performing the clips ``indices`` (default: all); a clip
    without a standing phase of its own borrows one of the clips ``idle_clips`` (default: the performed ones)."""
    options = options or StreamOptions()
    indices = list(range(len(data))) if indices is None else [int(i) for i in indices]
    if not indices:
        raise ValueError("no clips to compose a stream from")
    if len(indices) < options.people:
        raise ValueError(f"{options.people} people need at least as many clips, got {len(indices)}")
    rng = np.random.default_rng(options.seed)
    dims = topology.dims
    spacing = options.spacing if options.spacing is not None else (2.0 if dims == 3 else 300.0)
    noise = options.noise if options.noise is not None else (0.002 if dims == 3 else 1.0)
    axes = ground_axes(topology)
    def positions(chosen: list[int]) -> list[np.ndarray]:
        return [np.asarray(data.sequences[i], np.float32)[..., :dims] for i in chosen]

    clips = positions(indices)
    shares = assign_clips([len(c) for c in clips], options.people, rng)
    donors = clips if idle_clips is None else positions(idle_clips)
    pool = standing_pool(donors, data.fps) if options.idle == "real" else None
    builders = []
    for person, share in enumerate(shares):
        offset = np.zeros(dims, np.float32)
        offset[axes[0]] = (person - (options.people - 1) / 2.0) * spacing
        builder = _PersonBuilder(person + 1, axes, offset, noise, data.fps, rng, confidence is not None, pool,
                                 options.clip_standing == "idle")
        for position, k in enumerate(share):
            clip = builder._place(clips[k])
            conf = confidence[indices[k]].astype(np.float32) if confidence is not None else None
            builder.idle(rng.uniform(*options.idle_s), clip[0], conf[0] if conf is not None else None, clip)
            builder.clip(clip, conf, data.label_names[int(data.labels[indices[k]])], data.names[indices[k]])
            if position == len(share) - 1:
                builder.idle(rng.uniform(*options.idle_s))
        builders.append(builder)
    end = max(b.length for b in builders)
    for builder in builders:
        if builder.length < end:
            builder.idle((end - builder.length) / data.fps)
    people = [b.finish() for b in builders]
    for person in people:  # rounding of idle lengths can leave a frame too many
        person.positions = person.positions[:end]
        person.labels = person.labels[:end]
        if person.confidence is not None:
            person.confidence = person.confidence[:end]
    segments = sorted((s for b in builders for s in b.segments), key=lambda s: (s.start, s.track_id))
    return Stream(data.topology, dims, float(data.fps), people, segments, tuple(data.label_names),
                  sum(b.fallbacks for b in builders), sum(b.borrowed for b in builders))
