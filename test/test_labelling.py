"""Labels a behaviour tree can act on: hysteresis, idle vs unknown, start and end events (runtime.labelling)."""

from __future__ import annotations

import numpy as np

from hetskel_ros.runtime.labelling import IDLE, UNKNOWN, LabelState, next_label, window_motion
from hetskel_ros.runtime.recognizer import RecognizerConfig

LABELS = ["wave", "walk"]


def run(scores: list[tuple[float, float]], motions: list[float] | None = None, **config: float) -> list:
    config = {"confirm_windows": 1, **config}  # every confident window counts, unless a test says otherwise
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


def test_with_confirm_windows_a_one_window_blip_starts_nothing_and_the_current_action_holds():
    # wave confident; one window reads walk (a turn's end), wave again; then walk for two windows
    scores = [(0.9, 0.1), (0.3, 0.7), (0.8, 0.2), (0.2, 0.8), (0.2, 0.8)]
    out = run(scores, confirm_windows=2)
    assert [o.label for o in out] == [UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN, "walk"]  # wave, then walk, never once
    assert [o.started for o in out] == [False, False, False, False, True]
    out = run([(0.9, 0.1), (0.9, 0.1), (0.45, 0.55), (0.9, 0.1), (0.4, 0.6), (0.4, 0.6)], confirm_windows=2)
    assert [o.label for o in out] == [UNKNOWN, "wave", "wave", "wave", "wave", "walk"]  # walk confident twice
    assert [o.ended for o in out] == ["", "", "", "", "", "wave"]  # while walk waits, wave (>= release) holds
    assert [o.since for o in out] == [0, 1, 1, 1, 1, 5]
    assert [o.label for o in run(scores)] == ["wave", "walk", "wave", "walk", "walk"]  # 1: every window counts


def test_with_release_windows_a_one_window_dip_ends_nothing_but_a_confirmed_action_replaces_at_once():
    # wave; one window below the release threshold; wave; one still window; wave; then a lasting fade
    scores = [(0.9, 0.1), (0.3, 0.3), (0.9, 0.1), (0.9, 0.1), (0.9, 0.1), (0.3, 0.3), (0.3, 0.3)]
    motions = [1.0, 1.0, 1.0, 0.05, 1.0, 1.0, 1.0]
    out = run(scores, motions, release_windows=2)
    assert [o.label for o in out] == ["wave", "wave", "wave", "wave", "wave", "wave", UNKNOWN]  # one segment
    assert [o.ended for o in out] == ["", "", "", "", "", "", "wave"]  # the second window of the fade ends it
    assert [o.started for o in out] == [True, False, False, False, False, False, False]
    assert [o.label for o in run(scores, motions)] == ["wave", UNKNOWN, "wave", IDLE, "wave", UNKNOWN, UNKNOWN]
    switched = run([(0.9, 0.1), (0.2, 0.8), (0.2, 0.8)], release_windows=3)  # walk is confirmed: no waiting
    assert [o.label for o in switched] == ["wave", "walk", "walk"] and switched[1].ended == "wave"


def test_window_motion_is_the_recent_speed_of_the_fastest_joints():
    x = np.zeros((32, 10, 3), np.float32)
    x[:, :, 0] = np.arange(32)[:, None] * 0.1  # every joint moves 0.1 per frame
    present = np.ones((32, 10), bool)
    assert np.isclose(window_motion(x, present, fps=15.0), 0.1 * 15.0)
    x[:, 2:] = 0.0  # two joints of ten move (a forearm): the fastest joints still do
    assert np.isclose(window_motion(x, present, fps=15.0), 0.1 * 15.0)
    present[:, :2] = False  # ... and they are never seen: a joint that is not there does not move
    assert window_motion(x, present, fps=15.0) == 0.0


def test_a_still_persons_sensor_jitter_is_not_motion_but_a_slow_gesture_is():
    """2 mm of jitter at each frame (a Kinect on a person standing still; 0.004 torso lengths) reads several times
    slower than one arm raised over two seconds, so ``idle_motion`` can tell a still person from a gesture."""
    rng = np.random.default_rng(0)
    still = rng.normal(0.0, 0.004, (32, 30, 3))
    raising = still.copy()
    arm = [7, 8, 9, 21, 22]  # five joints of 30 rise up to about a torso length in 2.1 s
    raising[:, arm, 1] += np.linspace(0.0, 1.0, 32)[:, None] * np.array([0.5, 1.0, 1.1, 1.2, 1.1])
    present = np.ones((32, 30), bool)
    jitter, gesture = window_motion(still, present, fps=15.0), window_motion(raising, present, fps=15.0)
    assert jitter < 0.07 and gesture > 0.4
    assert window_motion(still, present, fps=15.0, step_s=1 / 15) > 2 * jitter  # frame to frame it would not be
