"""The scores ``hetskel-bag eval`` reports, on streams small enough to check by hand.

What a user relies on: a frame is judged by what the robot believed at that moment (the latest window at or before
it, never a later one); "unknown" while a person idles is right; segment mAP follows the detection protocol (runs of
same-label windows, temporal IoU, AP over score-ranked predictions); latency percentiles and dropped windows count
what they say.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hetskel_ros.runtime.detection_metrics import (
    BACKGROUND,
    UNKNOWN,
    Prediction,
    Segment,
    TrackTruth,
    average_precision,
    compare_windows,
    evaluate,
    frame_predictions,
    interpolated_ap,
    latency_summary,
    predicted_segments,
    temporal_iou,
    truth_segments,
)

FPS = 10.0


def truth(labels: list[str], start: float = 0.0) -> TrackTruth:
    return TrackTruth(start + np.arange(len(labels)) / FPS, labels)


def windows(track_id: int, ends: list[float], labels: list[str], scores: list[float] | None = None,
            span: float = 1.0) -> list[Prediction]:
    scores = scores or [0.9] * len(ends)
    return [Prediction(track_id, end, end - span, label, score) for end, label, score in zip(ends, labels, scores,
                                                                                            strict=True)]


def test_each_frame_takes_the_latest_window_at_or_before_it():
    stamps = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
    preds = windows(1, [0.2, 0.35], ["wave", "walk"])
    labels, scores = frame_predictions(stamps, preds)
    assert labels == ["", "", "wave", "wave", "walk"]  # nothing before the first window; a window's own frame counts
    assert math.isnan(scores[0]) and scores[2] == pytest.approx(0.9)


def test_frame_accuracy_counts_unknown_and_no_prediction_as_idle():
    gt = {1: truth([BACKGROUND] * 4 + ["wave"] * 6)}
    preds = windows(1, [0.2, 0.5, 0.7], [UNKNOWN, "wave", "walk"])
    ev = evaluate(gt, preds, ["wave", "walk"])
    # frames 0-1: no prediction (idle: right), 2-3 unknown (idle: right), 4 unknown vs wave (wrong),
    # 5-6 wave (right), 7-9 walk (wrong)
    assert ev.frames.frame_accuracy == pytest.approx(6 / 10)
    assert ev.frames.action_frame_accuracy == pytest.approx(2 / 6)
    assert ev.frames.frames_without_prediction == 2
    assert ev.frames.precision["wave"] == pytest.approx(1.0)
    assert ev.frames.recall["wave"] == pytest.approx(2 / 6)
    assert ev.frames.precision["walk"] == pytest.approx(0.0)
    assert ev.frames.recall["walk"] is None  # no walk in the truth
    classes = ev.frames.classes
    assert classes[-1] == BACKGROUND and classes[:2] == ["wave", "walk"]
    assert ev.frames.confusion.sum() == 10


def test_dont_care_margin_leaves_out_frames_near_a_change_of_label_only():
    # idle 0.0-0.3, wave 0.4-0.9: the change lies at 0.35 s; a 0.1 s margin leaves out frames 0.3 and 0.4
    gt = {1: truth([BACKGROUND] * 4 + ["wave"] * 6)}
    preds = windows(1, [0.2, 0.5, 0.7], [UNKNOWN, "wave", "walk"])
    ev = evaluate(gt, preds, ["wave", "walk"], dont_care_s=0.1)
    assert ev.frames.frames == 10 and ev.frames.frame_accuracy == pytest.approx(6 / 10)  # all frames unchanged
    # kept: 0-2 right (none, none, unknown), 5-6 wave right, 7-9 walk wrong; frame 3 (right) and 4 (wrong) out
    assert ev.dont_care.frames == 8 and ev.dont_care.frame_accuracy == pytest.approx(5 / 8)
    assert ev.dont_care.idle_baseline == pytest.approx(3 / 8)
    report = ev.to_dict()["dont_care"]
    assert report["margin_s"] == 0.1 and report["frames_left_out"] == 2
    assert evaluate(gt, preds, ["wave", "walk"], dont_care_s=0.0).dont_care is None


def test_tracks_are_judged_by_their_own_windows():
    gt = {1: truth(["wave"] * 5), 2: truth(["walk"] * 5)}
    preds = windows(1, [0.0], ["wave"]) + windows(2, [0.0], ["walk"])
    assert evaluate(gt, preds).frames.frame_accuracy == 1.0
    swapped = windows(1, [0.0], ["walk"]) + windows(2, [0.0], ["wave"])
    assert evaluate(gt, swapped).frames.frame_accuracy == 0.0


def test_truth_segments_are_label_runs_and_skip_idle():
    segments = truth_segments(3, truth([BACKGROUND, "wave", "wave", BACKGROUND, "walk", "walk", "walk"]))
    assert [(s.label, s.start, s.end) for s in segments] == [("wave", 0.1, pytest.approx(0.3)),
                                                            ("walk", 0.4, pytest.approx(0.7))]
    assert all(s.track_id == 3 for s in segments)


def test_predicted_segments_merge_same_label_windows_with_mean_score():
    # windows every 0.5 s, 1 s long: centres at 0.5, 1.0, 1.5, 2.0, 2.5
    preds = windows(1, [1.0, 1.5, 2.0, 2.5, 3.0], ["wave", "wave", UNKNOWN, "walk", "walk"], [0.6, 0.8, 0.3, 0.9, 0.7])
    segments = predicted_segments(1, preds)
    assert [(s.label, s.start, s.end) for s in segments] == [
        ("wave", pytest.approx(0.25), pytest.approx(1.25)), ("walk", pytest.approx(1.75), pytest.approx(2.75))]
    assert [s.score for s in segments] == [pytest.approx(0.7), pytest.approx(0.8)]


def test_temporal_iou():
    a = Segment(1, "x", 0.0, 2.0)
    assert temporal_iou(a, Segment(1, "x", 1.0, 3.0)) == pytest.approx(1 / 3)
    assert temporal_iou(a, Segment(1, "x", 2.0, 3.0)) == 0.0
    assert temporal_iou(a, a) == 1.0


def test_average_precision_ranks_by_score_and_matches_each_truth_once():
    gt = [Segment(1, "wave", 0.0, 2.0), Segment(1, "wave", 5.0, 7.0)]
    perfect = [Segment(1, "wave", 0.0, 2.0, 0.9), Segment(1, "wave", 5.0, 7.0, 0.8)]
    assert average_precision(gt, perfect, 0.5) == pytest.approx(1.0)
    # a duplicate of the first hit ranked second is a false positive: precision 1, 1/2, 2/3 at recall 0.5, 0.5, 1
    with_duplicate = [perfect[0], Segment(1, "wave", 0.1, 2.0, 0.85), perfect[1]]
    assert average_precision(gt, with_duplicate, 0.5) == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    # the same duplicate ranked last costs nothing
    assert average_precision(gt, [*perfect, Segment(1, "wave", 0.1, 2.0, 0.1)], 0.5) == pytest.approx(1.0)
    # overlap below the threshold does not count; the other track's truth is never matched
    shifted = [Segment(1, "wave", 1.5, 3.5, 0.9)]
    assert average_precision(gt, shifted, 0.1) == pytest.approx(0.5)
    assert average_precision(gt, shifted, 0.5) == 0.0
    assert average_precision(gt, [Segment(2, "wave", 0.0, 2.0, 0.9)], 0.1) == 0.0
    assert math.isnan(average_precision([], perfect, 0.5))


def test_interpolated_ap_makes_precision_monotone():
    assert interpolated_ap(np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_segment_map_of_a_recognizer_that_lags_half_a_window():
    """Windows of 1 s every 0.5 s labelled by their majority: the segments land on the truth (IoU >= 0.5)."""
    labels = [BACKGROUND] * 20 + ["wave"] * 30 + [BACKGROUND] * 20 + ["walk"] * 30 + [BACKGROUND] * 20
    gt = {1: truth(labels)}
    ends = np.arange(1.0, 12.0, 0.5)
    window_labels = []
    for end in ends:
        inside = labels[round((end - 1.0) * FPS):round(end * FPS)]
        best = max(set(inside), key=inside.count)
        window_labels.append(UNKNOWN if best == BACKGROUND else best)
    ev = evaluate(gt, windows(1, list(ends), window_labels))
    assert ev.detection.mean_ap[0.5] == pytest.approx(1.0)
    assert len(ev.detection.truth_segments) == 2 and len(ev.detection.predicted_segments) == 2


def test_latency_summary_in_milliseconds():
    summary = latency_summary([0.001 * k for k in range(1, 101)])
    assert summary["count"] == 100
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["max_ms"] == pytest.approx(100.0)
    assert latency_summary([]) == {"count": 0}


def test_compare_windows_counts_dropped_and_disagreeing_windows():
    reference = windows(1, [1.0, 1.5, 2.0], ["a", "b", "c"]) + windows(2, [1.0], ["a"])
    # live: stamps through float round trips; one window missing, one label differs, one window not in the reference
    received = [Prediction(1, 1.0 + 2e-7, 0.0, "a", 0.9), Prediction(1, 1.5, 0.5, "x", 0.9),
                Prediction(2, 1.0, 0.0, "a", 0.9), Prediction(2, 1.6, 0.6, "a", 0.9)]
    c = compare_windows(reference, received)
    assert (c.expected, c.received, c.matched, c.dropped, c.unexpected, c.same_label) == (4, 4, 3, 1, 1, 2)
    assert c.label_agreement == pytest.approx(2 / 3)
    assert c.mismatches[0]["reference"] == "b" and c.mismatches[0]["received"] == "x"


def test_bad_ground_truth_is_refused():
    with pytest.raises(ValueError, match="one label per stamp"):
        TrackTruth(np.arange(3.0), ["a"])
    with pytest.raises(ValueError, match="increase"):
        TrackTruth(np.array([0.0, 0.0]), ["a", "a"])


def test_events_count_segments_not_messages_with_onset_latency_and_unknown_actions():
    # 0-1 s idle, 1-2 s wave, 2-3 s idle, 3-4 s "kick" (unknown to the model), at 10 Hz
    labels = [BACKGROUND] * 10 + ["wave"] * 10 + [BACKGROUND] * 10 + ["kick"] * 10
    gt = {1: truth(labels)}
    ends = [0.3 + 0.1 * k for k in range(37)]
    predicted = []
    for end in ends:
        if 1.25 <= end < 2.1:
            predicted.append("wave")  # labelled 0.25 s after the onset
        elif 2.45 <= end < 2.8:
            predicted.append("wave")  # one false segment of several messages on an idle person
        elif end >= 3.55:
            predicted.append("walk")  # the unknown action half called an action
        else:
            predicted.append(UNKNOWN)
    ev = evaluate(gt, windows(1, ends, predicted, span=0.2), ["wave", "walk"], known=["wave", "walk"])
    e = ev.events.to_dict()
    assert (e["segments"], e["labelled"]) == (1, 1)  # "kick" is not a segment the model could label
    assert e["onset_latency_s"]["median"] == pytest.approx(0.3, abs=1e-6)
    assert (e["predicted_segments"], e["right_segments"], e["false_segments"]) == (3, 1, 2)
    assert e["false_segments_on_idle"] == 2  # the idle one, and the one on the unknown action
    assert e["per_action"]["wave"]["precision"] == pytest.approx(0.5)
    assert e["unknown_actions"]["rejection"] == pytest.approx(6 / 10)  # frames 3.0-3.5 s before the first "walk"
    assert ev.frames.idle_baseline == pytest.approx(30 / 40)  # unknown frames count as background
