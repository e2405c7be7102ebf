"""Scores of a recognizer run on an untrimmed, labelled stream (a bag made by ``hetskel-bag make``). No ROS here.

Ground truth is one label per frame and person (``BACKGROUND`` = "idle" where the person does no action);
predictions are the recognizer's windows (track, window start, stamp of the window's last frame, label, score).

* Frame level (what a robot sees online): each ground-truth frame takes the latest prediction of its track at or
  before the frame's stamp. "unknown" and "no prediction yet" count as background, so an idle frame is right when
  the recognizer says nothing or "unknown". ``frame_accuracy`` is over all frames, ``action_frame_accuracy`` over
  the frames where the person acts; per-class precision and recall are frame counts of each action class.
  ``idle_baseline`` is the frame accuracy of a recognizer that always says idle (the share of background frames):
  frame accuracy means something only well above it. With ``known`` (the model's labels), frames of actions the
  model does not know count as background: calling them idle or unknown is right.
  Don't-care margins: a clip's first and last moments are ambiguous (a labelled clip starts and ends standing, and
  the change of label is a single frame), so :func:`evaluate` scores frames a second time without those within
  ``dont_care_s`` (DONT_CARE_S, 0.25 s) of a change of the ground-truth label (``dont_care``).
* Segment level (the action detection protocol of paper 002, sec. 4.2, after Liu et al. PKU-MMD): ground-truth
  segments are the runs of one action label of a track; predicted segments are runs of consecutive windows of a
  track with the same label (not "unknown"), scored by the windows' mean score. A window speaks for the stretch of
  time around its centre (window centre +- half the track's window spacing), so a segment runs from half a spacing
  before its first window's centre to half a spacing after its last one's. A prediction matches an unmatched
  ground-truth segment of the same class and track with temporal IoU >= the threshold, best score first;
  AP per class is the area under the interpolated precision-recall curve (all points, as ActivityNet's and
  PKU-MMD's evaluation code compute it); mAP averages the classes that have ground-truth segments.
* Events (hetskel_ros.runtime.event_metrics): per-action segment precision and recall, onset latency, false
  segments (per segment, not per message) and false alarms on idle people per person-minute.
* Live runs add latency percentiles and the windows an offline run of the same bag made that never arrived.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hetskel_ros.runtime.labelling import GONE  # the last message of a person who left

BACKGROUND = "idle"  # ground-truth label of frames where the person does no action
UNKNOWN = "unknown"  # the recognizer's label below its threshold (hetskel_ros.runtime.recognizer.UNKNOWN)
NO_PREDICTION = ""  # a frame before the track's first window
IOU_THRESHOLDS = (0.1, 0.3, 0.5)
DONT_CARE_S = 0.25  # frames this close to a change of ground-truth label are scored a second time without them
STAMP_KEY_S = 1e-3  # windows are matched by (track, stamp rounded to this): frames are 33 ms apart at 30 Hz


@dataclass(frozen=True)
class Prediction:
    """One recognised window of one person (one hetskel_msgs/Action)."""

    track_id: int
    stamp: float  # the window's last frame
    window_start: float
    label: str
    score: float
    source: str = ""


@dataclass(frozen=True)
class Segment:
    track_id: int
    label: str
    start: float
    end: float
    score: float = 1.0

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class TrackTruth:
    """Ground truth of one person: one label per frame, stamps increasing."""

    stamps: np.ndarray  # (F,) float64 seconds
    labels: list[str]

    def __post_init__(self) -> None:
        self.stamps = np.asarray(self.stamps, np.float64)
        if self.stamps.ndim != 1 or len(self.stamps) != len(self.labels):
            raise ValueError(f"ground truth needs one label per stamp, got {len(self.stamps)} stamps and "
                             f"{len(self.labels)} labels")
        if len(self.stamps) > 1 and np.any(np.diff(self.stamps) <= 0):
            raise ValueError("ground-truth stamps of a track must increase")

    def frame_period(self) -> float:
        return float(np.median(np.diff(self.stamps))) if len(self.stamps) > 1 else 0.0


def stamp_key(track_id: int, stamp: float) -> tuple[int, int]:
    """Key of a window: its track and its last frame's stamp in milliseconds (float seconds round-trip safely)."""
    return int(track_id), round(stamp / STAMP_KEY_S)


def is_background(label: str) -> bool:
    return label in (BACKGROUND, UNKNOWN, GONE, NO_PREDICTION)


# -- frame level -------------------------------------------------------------------------------------------------
def frame_predictions(stamps: np.ndarray, predictions: Sequence[Prediction]) -> tuple[list[str], np.ndarray]:
    """For each stamp, the label and score of the latest prediction at or before it ("" and nan before any)."""
    ordered = sorted(predictions, key=lambda p: p.stamp)
    ends = np.array([p.stamp for p in ordered], np.float64)
    index = np.searchsorted(ends, np.asarray(stamps, np.float64) + 1e-6, side="right") - 1
    labels = [ordered[i].label if i >= 0 else NO_PREDICTION for i in index]
    scores = np.array([ordered[i].score if i >= 0 else math.nan for i in index], np.float64)
    return labels, scores


def as_class(label: str) -> str:
    """A predicted label as a confusion-matrix class: "unknown" and "no prediction" are background."""
    return BACKGROUND if is_background(label) else label


@dataclass
class FrameScores:
    classes: list[str]  # actions (in vocabulary order, then any other predicted labels), then BACKGROUND
    confusion: np.ndarray  # (C, C) frames: rows ground truth, columns prediction
    frames: int
    action_frames: int
    frames_without_prediction: int
    frame_accuracy: float
    action_frame_accuracy: float
    precision: dict[str, float | None]
    recall: dict[str, float | None]
    idle_baseline: float = math.nan  # frame accuracy of always saying idle


def near_changes(track: TrackTruth, margin_s: float) -> np.ndarray:
    """(F,) bool: the frames within ``margin_s`` of a change of the track's ground-truth label (don't care)."""
    if margin_s <= 0.0 or len(track.stamps) < 2:
        return np.zeros(len(track.stamps), bool)
    changes = np.array([i for i in range(1, len(track.labels)) if track.labels[i] != track.labels[i - 1]], np.int64)
    if not len(changes):
        return np.zeros(len(track.stamps), bool)
    at = 0.5 * (track.stamps[changes] + track.stamps[changes - 1])  # halfway between the two labels' frames
    return np.abs(track.stamps[:, None] - at[None, :]).min(axis=1) < margin_s


def frame_scores(truth: Mapping[int, TrackTruth], predictions: Mapping[int, Sequence[Prediction]],
                 vocabulary: Sequence[str] = (), known: Sequence[str] | None = None,
                 dont_care_s: float = 0.0) -> FrameScores:
    """Frame-level scores; ``dont_care_s`` > 0 leaves out the frames that close to a change of label."""
    gt_all: list[str] = []
    pred_all: list[str] = []
    missing = 0
    for track_id, track in sorted(truth.items()):
        labels, _ = frame_predictions(track.stamps, predictions.get(track_id, ()))
        keep = ~near_changes(track, dont_care_s)
        labels = [label for label, k in zip(labels, keep, strict=True) if k]
        gt = [g for g, k in zip(track.labels, keep, strict=True) if k]
        missing += sum(1 for label in labels if label == NO_PREDICTION)
        gt_all += gt if known is None else [g if g in known else BACKGROUND for g in gt]
        pred_all += [as_class(label) for label in labels]
    actions = [c for c in vocabulary if c != BACKGROUND]
    for label in (*gt_all, *pred_all):
        if label != BACKGROUND and label not in actions:
            actions.append(label)
    classes = [*actions, BACKGROUND]
    index = {c: i for i, c in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), np.int64)
    for gt, pred in zip(gt_all, pred_all, strict=True):
        confusion[index[gt], index[pred]] += 1
    correct = np.diag(confusion)
    frames = int(confusion.sum())
    action_rows = confusion[:-1]
    action_frames = int(action_rows.sum())
    precision: dict[str, float | None] = {}
    recall: dict[str, float | None] = {}
    for i, name in enumerate(actions):
        predicted, actual = int(confusion[:, i].sum()), int(confusion[i].sum())
        precision[name] = float(correct[i] / predicted) if predicted else None
        recall[name] = float(correct[i] / actual) if actual else None
    return FrameScores(
        classes=classes, confusion=confusion, frames=frames, action_frames=action_frames,
        frames_without_prediction=missing,
        frame_accuracy=float(correct.sum() / frames) if frames else math.nan,
        action_frame_accuracy=float(correct[:-1].sum() / action_frames) if action_frames else math.nan,
        precision=precision, recall=recall,
        idle_baseline=float(confusion[-1].sum() / frames) if frames else math.nan)


# -- segments ----------------------------------------------------------------------------------------------------
def truth_segments(track_id: int, track: TrackTruth) -> list[Segment]:
    """Runs of one action label; a run of frames [a, b] covers [stamp a, stamp b + one frame period)."""
    period = track.frame_period()
    segments: list[Segment] = []
    start = 0
    for k in range(1, len(track.labels) + 1):
        if k == len(track.labels) or track.labels[k] != track.labels[start]:
            label = track.labels[start]
            if label != BACKGROUND:
                segments.append(Segment(track_id, label, float(track.stamps[start]),
                                        float(track.stamps[k - 1]) + period))
            start = k
    return segments


def predicted_segments(track_id: int, predictions: Sequence[Prediction]) -> list[Segment]:
    """Runs of consecutive same-label windows (see module doc for their extent), scored by the mean score."""
    ordered = sorted(predictions, key=lambda p: p.stamp)
    if not ordered:
        return []
    centres = np.array([(p.window_start + p.stamp) / 2.0 for p in ordered])
    if len(centres) > 1:
        spacing = float(np.median(np.diff(centres)))
    else:
        spacing = max(ordered[0].stamp - ordered[0].window_start, 0.0)
    segments: list[Segment] = []
    start = 0
    for k in range(1, len(ordered) + 1):
        if k == len(ordered) or ordered[k].label != ordered[start].label:
            label = ordered[start].label
            if not is_background(label):
                score = float(np.mean([p.score for p in ordered[start:k]]))
                segments.append(Segment(track_id, label, float(centres[start]) - spacing / 2,
                                        float(centres[k - 1]) + spacing / 2, score))
            start = k
    return segments


def temporal_iou(a: Segment, b: Segment) -> float:
    inter = max(0.0, min(a.end, b.end) - max(a.start, b.start))
    union = max(a.end, b.end) - min(a.start, b.start)
    return inter / union if union > 0 else 0.0


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the precision-recall curve with precision made monotone (all-point interpolation)."""
    p = np.concatenate([[0.0], precision, [0.0]])
    r = np.concatenate([[0.0], recall, [1.0]])
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    steps = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[steps] - r[steps - 1]) * p[steps]))


def average_precision(truth: Sequence[Segment], predicted: Sequence[Segment], threshold: float) -> float:
    """AP of one class: predictions by score, each matching the best unmatched ground truth of its track."""
    if not truth:
        return math.nan
    if not predicted:
        return 0.0
    ordered = sorted(predicted, key=lambda s: (-s.score, s.track_id, s.start))
    used = [False] * len(truth)
    hits = np.zeros(len(ordered))
    for i, segment in enumerate(ordered):
        best, best_iou = -1, threshold
        for j, target in enumerate(truth):
            if used[j] or target.track_id != segment.track_id:
                continue
            iou = temporal_iou(segment, target)
            if iou >= best_iou:
                best, best_iou = j, iou
        if best >= 0:
            used[best] = True
            hits[i] = 1.0
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(ordered) + 1)
    recall = tp / len(truth)
    return interpolated_ap(precision, recall)


@dataclass
class DetectionScores:
    thresholds: tuple[float, ...]
    mean_ap: dict[float, float]  # threshold -> mAP over classes with ground truth
    ap: dict[float, dict[str, float]]  # threshold -> class -> AP
    truth_segments: list[Segment]
    predicted_segments: list[Segment]


def detection_scores(truth: Mapping[int, TrackTruth], predictions: Mapping[int, Sequence[Prediction]],
                     thresholds: Iterable[float] = IOU_THRESHOLDS, known: Sequence[str] | None = None
                     ) -> DetectionScores:
    """Segment mAP over the actions of the truth (with ``known``: only those the model knows)."""
    gt = [s for track_id, track in sorted(truth.items()) for s in truth_segments(track_id, track)
          if known is None or s.label in known]
    pred = [s for track_id in sorted(predictions) for s in predicted_segments(track_id, predictions[track_id])]
    classes = sorted({s.label for s in gt})
    thresholds = tuple(float(t) for t in thresholds)
    ap: dict[float, dict[str, float]] = {}
    mean_ap: dict[float, float] = {}
    for threshold in thresholds:
        ap[threshold] = {c: average_precision([s for s in gt if s.label == c], [s for s in pred if s.label == c],
                                              threshold) for c in classes}
        mean_ap[threshold] = float(np.mean(list(ap[threshold].values()))) if classes else math.nan
    return DetectionScores(thresholds, mean_ap, ap, gt, pred)


# -- live --------------------------------------------------------------------------------------------------------
def latency_summary(latencies_s: Sequence[float]) -> dict[str, float | int]:
    """Percentiles in milliseconds."""
    if not len(latencies_s):
        return {"count": 0}
    ms = np.asarray(latencies_s, np.float64) * 1000.0
    return {"count": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()), "max_ms": float(ms.max())}


@dataclass
class WindowComparison:
    """Windows of a run against a reference run of the same bag (offline): which arrived, and same labels?"""

    expected: int
    received: int
    matched: int
    dropped: int  # in the reference, never received
    unexpected: int  # received, not in the reference
    same_label: int
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label_agreement(self) -> float:
        return self.same_label / self.matched if self.matched else math.nan


def compare_windows(reference: Iterable[Prediction], received: Iterable[Prediction],
                    keep_mismatches: int = 20) -> WindowComparison:
    ref = {stamp_key(p.track_id, p.stamp): p for p in reference}
    got = {stamp_key(p.track_id, p.stamp): p for p in received}
    matched = sorted(set(ref) & set(got))
    same = [k for k in matched if ref[k].label == got[k].label]
    mismatches = [{"track_id": k[0], "stamp": ref[k].stamp, "reference": ref[k].label, "received": got[k].label,
                   "reference_score": ref[k].score, "received_score": got[k].score}
                  for k in matched if ref[k].label != got[k].label][:keep_mismatches]
    return WindowComparison(expected=len(ref), received=len(got), matched=len(matched),
                            dropped=len(set(ref) - set(got)), unexpected=len(set(got) - set(ref)),
                            same_label=len(same), mismatches=mismatches)


# -- everything --------------------------------------------------------------------------------------------------
def by_track(predictions: Iterable[Prediction]) -> dict[int, list[Prediction]]:
    out: dict[int, list[Prediction]] = {}
    for p in predictions:
        out.setdefault(int(p.track_id), []).append(p)
    for items in out.values():
        items.sort(key=lambda p: p.stamp)
    return out


@dataclass
class Evaluation:
    frames: FrameScores
    detection: DetectionScores
    windows: int
    latency: dict[str, float | int] | None = None
    comparison: WindowComparison | None = None
    events: Any = None  # event_metrics.EventScores
    dont_care: FrameScores | None = None  # the frame scores without the frames near a change of label
    dont_care_s: float = 0.0


    def to_dict(self) -> dict[str, Any]:
        f, d = self.frames, self.detection
        out: dict[str, Any] = {
            "frames": f.frames, "action_frames": f.action_frames,
            "frames_without_prediction": f.frames_without_prediction,
            "frame_accuracy": f.frame_accuracy, "idle_baseline": f.idle_baseline,
            "action_frame_accuracy": f.action_frame_accuracy,
            "precision": f.precision, "recall": f.recall,
            "confusion": {"classes": f.classes, "matrix": f.confusion.tolist()},
            "segment_map": {f"{t:g}": d.mean_ap[t] for t in d.thresholds},
            "segment_ap": {f"{t:g}": d.ap[t] for t in d.thresholds},
            "truth_segments": len(d.truth_segments), "predicted_segments": len(d.predicted_segments),
            "windows": self.windows,
        }
        if self.dont_care is not None:
            m = self.dont_care
            out["dont_care"] = {"margin_s": self.dont_care_s, "frames_left_out": f.frames - m.frames,
                                "frame_accuracy": m.frame_accuracy, "idle_baseline": m.idle_baseline,
                                "action_frame_accuracy": m.action_frame_accuracy,
                                "precision": m.precision, "recall": m.recall}
        if self.events is not None:
            out["events"] = self.events.to_dict()
        if self.latency is not None:
            out["latency"] = self.latency
        if self.comparison is not None:
            c = self.comparison
            out["windows_vs_offline"] = {"expected": c.expected, "received": c.received, "matched": c.matched,
                                         "dropped": c.dropped, "unexpected": c.unexpected, "same_label": c.same_label,
                                         "label_agreement": c.label_agreement, "mismatches": c.mismatches}
        return out


def evaluate(truth: Mapping[int, TrackTruth], predictions: Sequence[Prediction], vocabulary: Sequence[str] = (), *,
             thresholds: Iterable[float] = IOU_THRESHOLDS, latencies_s: Sequence[float] | None = None,
             reference: Sequence[Prediction] | None = None, known: Sequence[str] | None = None,
             dont_care_s: float = DONT_CARE_S) -> Evaluation:
    """All scores of one run. ``reference``: an offline run of the same bag, to count dropped windows (live).
    ``known``: the model's labels; ground-truth actions outside them should be called idle or unknown.
    ``dont_care_s``: the margin of the second frame scores (0: none)."""
    from hetskel_ros.runtime.event_metrics import event_scores  # it builds on this module's segments

    tracks = by_track(predictions)
    return Evaluation(
        frames=frame_scores(truth, tracks, vocabulary, known),
        detection=detection_scores(truth, tracks, thresholds, known),
        windows=len(predictions),
        latency=latency_summary(latencies_s) if latencies_s is not None else None,
        comparison=compare_windows(reference, predictions) if reference is not None else None,
        events=event_scores(truth, predictions, known),
        dont_care=frame_scores(truth, tracks, vocabulary, known, dont_care_s) if dont_care_s > 0 else None,
        dont_care_s=dont_care_s)
