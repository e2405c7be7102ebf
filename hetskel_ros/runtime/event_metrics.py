"""Scores of what a behaviour tree acts on: labelled actions as events, counted per segment, not per message.

A robot acts on a label when it appears, so the unit here is the segment (a run of one action label of a person),
not the message (a 30-message false "wave" is one false alarm, not 30). From the node's own windows (no ROS):

* recall: a ground-truth action segment is *labelled* when some window of its person, ending while the action
  happens (stamp in [start, end]), carries its label; recall = labelled / segments, per action and overall.
* onset latency: from the segment's start to the first such window's stamp (what "the label comes when the action
  begins" costs); median and p90 per action and overall.
* precision: a predicted segment of an action is right when it overlaps a ground-truth segment of the same person
  and action; precision = right / predicted segments. The rest are *false segments*; those that lie mostly on
  frames where the person is idle are false alarms on idle people, reported per idle person-minute.
* short actions: the ground-truth segments shorter than ``SHORT_S`` and how many of them were labelled.
* unknown actions: ground-truth segments whose label the model does not know (``known``) should be called idle or
  unknown; ``unknown_rejection`` is the share of their frames that got no action label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hetskel_ros.runtime.detection_metrics import (
    BACKGROUND,
    Prediction,
    Segment,
    TrackTruth,
    by_track,
    frame_predictions,
    is_background,
    predicted_segments,
    truth_segments,
)

SHORT_S = 1.0  # ground-truth segments shorter than this are reported as "short actions" (the target: >= 0.5 s)


@dataclass
class EventScores:
    per_action: dict[str, dict[str, Any]]
    segments: int  # ground-truth segments of known actions
    labelled: int
    predicted: int  # predicted action segments
    right: int
    false_segments: int
    false_on_idle: int
    idle_person_minutes: float
    onset_s: list[float] = field(default_factory=list)
    short_segments: int = 0
    short_labelled: int = 0
    unknown_frames: int = 0
    unknown_rejected: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "segments": self.segments, "labelled": self.labelled,
            "segment_recall": self.labelled / self.segments if self.segments else math.nan,
            "predicted_segments": self.predicted, "right_segments": self.right,
            "segment_precision": self.right / self.predicted if self.predicted else math.nan,
            "false_segments": self.false_segments, "false_segments_on_idle": self.false_on_idle,
            "idle_person_minutes": self.idle_person_minutes,
            "false_on_idle_per_person_minute": (self.false_on_idle / self.idle_person_minutes
                                                if self.idle_person_minutes else math.nan),
            "onset_latency_s": _spread(self.onset_s),
            "short_segments": {"shorter_than_s": SHORT_S, "segments": self.short_segments,
                               "labelled": self.short_labelled},
            "unknown_actions": {"frames": self.unknown_frames, "called_idle_or_unknown": self.unknown_rejected,
                                "rejection": (self.unknown_rejected / self.unknown_frames if self.unknown_frames
                                              else math.nan)},
            "per_action": self.per_action,
        }


def _spread(values: Sequence[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    v = np.asarray(values, np.float64)
    return {"count": len(v), "median": float(np.median(v)), "p90": float(np.percentile(v, 90)),
            "max": float(v.max())}


def _overlap(a: Segment, b: Segment) -> float:
    return max(0.0, min(a.end, b.end) - max(a.start, b.start))


def _idle_share(segment: Segment, track: TrackTruth, known: set[str] | None) -> float:
    """Share of the segment's ground-truth frames where the person is idle (or does an action the model cannot
    know: a label there is as false as on an idle person)."""
    inside = (track.stamps >= segment.start) & (track.stamps <= segment.end)
    if not inside.any():
        return 0.0
    labels = [track.labels[i] for i in np.flatnonzero(inside)]
    idle = sum(1 for label in labels if label == BACKGROUND or (known is not None and label not in known))
    return idle / len(labels)


def event_scores(truth: Mapping[int, TrackTruth], predictions: Sequence[Prediction],
                 known: Sequence[str] | None = None) -> EventScores:
    """Segment-level scores of the node's labels (see module doc). ``known``: the model's labels (None: all)."""
    known_set = set(known) if known is not None else None
    tracks = by_track(predictions)
    per: dict[str, dict[str, Any]] = {}
    onsets: dict[str, list[float]] = {}
    scores = EventScores({}, 0, 0, 0, 0, 0, 0, 0.0)

    def entry(label: str) -> dict[str, Any]:
        return per.setdefault(label, {"segments": 0, "labelled": 0, "predicted_segments": 0, "right_segments": 0})

    for track_id, track in sorted(truth.items()):
        windows = tracks.get(track_id, [])
        stamps = np.array([p.stamp for p in windows], np.float64)
        period = track.frame_period()
        idle = sum(1 for label in track.labels if label == BACKGROUND)
        scores.idle_person_minutes += idle * period / 60.0
        gt = truth_segments(track_id, track)
        for segment in gt:
            if known_set is not None and segment.label not in known_set:
                continue
            e = entry(segment.label)
            e["segments"] += 1
            scores.segments += 1
            short = segment.duration < SHORT_S
            scores.short_segments += short
            lo, hi = np.searchsorted(stamps, [segment.start - 1e-6, segment.end + 1e-6])
            hit = next((windows[i] for i in range(lo, hi) if windows[i].label == segment.label), None)
            if hit is not None:
                e["labelled"] += 1
                scores.labelled += 1
                scores.short_labelled += short
                onsets.setdefault(segment.label, []).append(hit.stamp - segment.start)
        if known_set is not None:
            labels, _ = frame_predictions(track.stamps, windows)
            for label, predicted in zip(track.labels, labels, strict=True):
                if label != BACKGROUND and label not in known_set:
                    scores.unknown_frames += 1
                    scores.unknown_rejected += is_background(predicted)
        for segment in predicted_segments(track_id, windows):
            e = entry(segment.label)
            e["predicted_segments"] += 1
            scores.predicted += 1
            if any(t.label == segment.label and _overlap(segment, t) > 0 for t in gt):
                e["right_segments"] += 1
                scores.right += 1
            else:
                scores.false_segments += 1
                scores.false_on_idle += _idle_share(segment, track, known_set) > 0.5
    for label, e in per.items():
        e["recall"] = e["labelled"] / e["segments"] if e["segments"] else None
        e["precision"] = e["right_segments"] / e["predicted_segments"] if e["predicted_segments"] else None
        e["onset_latency_s"] = _spread(onsets.get(label, []))
    scores.per_action = dict(sorted(per.items()))
    scores.onset_s = [v for values in onsets.values() for v in values]
    return scores
