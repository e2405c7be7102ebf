"""Labels a behaviour tree can act on: hysteresis, idle vs unknown, start and end events (runtime.labelling)."""

from __future__ import annotations

import numpy as np

from hetskel_ros.runtime.labelling import IDLE, UNKNOWN, LabelState, next_label, window_motion
from hetskel_ros.runtime.recognizer import RecognizerConfig

LABELS = ["wave", "walk"]


def run(scores: list[tuple[float, float]], motions: list[float] | None = None, **config: float) -> list:
    settings = RecognizerConfig(threshold=0.6, release_threshold=0.4, idle_motion=0.1, **config)
    state = LabelState()
    motions = motions or [1.0] * len(scores)
    return [next_label(state, np.array(s), LABELS, float(t), m, settings)
            for t, (s, m) in enumerate(zip(scores, motions, strict=True))]


def test_an_action_starts_at_threshold_and_lasts_down_to_the_release_threshold():
    out = run([(0.5, 0.5), (0.65, 0.35), (0.5, 0.5), (0.45, 0.55), (0.3, 0.7)])
    assert [o.label for o in out] == [UNKNOWN, "wave", "wave", "wave", "walk"]
    assert [o.started for o in out] == [False, True, False, False, True]
    assert [o.ended for o in out] == ["", "", "", "", "wave"]  # a change of action: both events at once
    assert [o.since for o in out] == [0, 1, 1, 1, 4]


def test_an_action_ends_below_the_release_threshold_and_a_still_person_is_idle():
    out = run([(0.7, 0.3), (0.35, 0.3), (0.9, 0.1), (0.9, 0.1)], motions=[1.0, 1.0, 1.0, 0.05])
    assert [o.label for o in out] == ["wave", UNKNOWN, "wave", IDLE]
    assert [o.ended for o in out] == ["", "wave", "", "wave"]  # however the head scores a still pose


def test_window_motion_is_the_recent_joint_speed():
    x = np.zeros((32, 3, 3), np.float32)
    x[:, 0, 0] = np.arange(32) * 0.1  # one joint of three moves 0.1 per frame
    present = np.ones((32, 3), bool)
    assert np.isclose(window_motion(x, present, fps=15.0), 0.1 * 15.0 / 3)
    present[:, 0] = False
    assert window_motion(x, present, fps=15.0) == 0.0
