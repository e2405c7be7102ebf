"""From smoothed scores to the label a behaviour tree acts on: an action, ``idle`` or ``unknown``, with start and end
events under hysteresis (no ROS, no model).

A behaviour tree must be able to trust a label: it means the person really does that action. So, per person:

- ``idle``: the person barely moves (the window's recent joint speed, in torso lengths per second of the normalised
  skeleton, is below ``idle_motion``), or the model's own top class is an ``idle`` class (a bundle trained with one).
  A still person never gets an action, however the head scores the pose.
- ``unknown``: the person moves, but no action of the vocabulary is confident (smoothed top score below
  ``threshold``), or only a class the bundle marks as rejected (open-set rejection, when a bundle stores one).
- an action starts when it is the smoothed top-1 with score >= ``threshold`` (and the person moves); it lasts while
  its smoothed score stays >= ``release_threshold`` (at most ``threshold``; hysteresis: a score wobbling around
  ``threshold`` does not make the label flicker), and ends when it falls below that, when another action starts,
  or when the person stands still.
- ``confirm_windows`` (the node's default 2; 1: at once): a new action starts only once it has been the confident
  candidate in that many consecutive windows. Until then the current label holds (an action while its score stays
  >= the release threshold, else ``unknown``). Why: on the mocap's untrimmed bag 23 of 56 false action runs last a
  single window (a wave's lowered arm read as a raise, the end of a turn read as a walk), against 5 of 45 correct
  runs; a second window costs one stride of onset.
- ``release_windows`` (default 1: at once): the current action ends only after that many consecutive windows that
  would end it (score below the release threshold, a still or a rejected window), so a one-window dip does not split
  a segment in two; a confirmed new action replaces it at once either way.

Each decision says what started (``started``: the label is an action that began with this window) and what ended
(``ended``: the action that ended with it), and since when the current label holds (``since``, a window stamp).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

IDLE = "idle"
UNKNOWN = "unknown"
GONE = "gone"  # the person left (its track was freed): the last message of a labelled person, never "idle"
BACKGROUND_LABELS = frozenset({IDLE, UNKNOWN, GONE})
MOTION_TAIL_S = 1.0  # the part of a window (its newest second) whose joint speed decides "idle"
MOTION_STEP_S = 0.2  # joint speed is measured over steps this long: a sensor's frame-to-frame jitter (a few mm,
# in random directions) adds up over single frames but cancels over a fifth of a second, while a movement adds up
MOTION_JOINTS = 90  # percentile over joints: the fastest joints (as hetskel_ros.topology.standing measures)


class LabelSettings(Protocol):
    threshold: float
    release_threshold: float
    idle_motion: float
    confirm_windows: int
    release_windows: int


def window_motion(x: np.ndarray, present: np.ndarray, fps: float, tail_s: float = MOTION_TAIL_S,
                  step_s: float = MOTION_STEP_S) -> float:
    """Speed of the fastest joints over the window's newest ``tail_s`` (normalised units per second; nan with too
    few frames): each joint's mean speed over displacements of ``step_s`` (see MOTION_STEP_S: a still person's
    sensor jitter is not motion), then their MOTION_JOINTS percentile, so one waving hand is motion.

    ``x`` (T, J, C) is the normalised window (unit torso length), ``present`` (T, J) its mask. Only joints present
    at both ends of a step count, so a joint that drops out is not a movement.
    """
    frames = max(2, min(len(x), round(tail_s * fps) + 1))
    lag = max(1, min(frames - 1, round(step_s * fps)))
    tail, seen = np.asarray(x[-frames:], np.float64), np.asarray(present[-frames:], bool)
    both = seen[lag:] & seen[:-lag]
    counted = both.sum(axis=0)
    if not counted.any():
        return math.nan
    steps = np.linalg.norm(tail[lag:] - tail[:-lag], axis=-1) * both
    per_joint = steps.sum(axis=0)[counted > 0] / counted[counted > 0]
    return float(np.percentile(per_joint, MOTION_JOINTS) * fps / lag)


@dataclass
class LabelState:
    """One person's labelling state between windows."""

    action: str = ""  # the action going on ("" when none)
    label: str = ""  # the last published label
    since: float = math.nan  # stamp of the first window with that label
    pending: str = ""  # an action confident in the last windows but not yet confirmed (confirm_windows)
    pending_windows: int = 0  # in how many consecutive windows it has been the candidate
    ending_windows: int = 0  # consecutive windows that would have ended the current action (release_windows)


@dataclass(frozen=True)
class Labelled:
    label: str
    started: bool  # ``label`` is an action that began with this window
    ended: str  # the action that ended with this window ("" if none)
    since: float  # stamp of the first window of the current label


def next_label(state: LabelState, smoothed: np.ndarray, labels: list[str], stamp: float, motion: float,
               settings: LabelSettings, verdict: str = "") -> Labelled:
    """Advance ``state`` by one window (its smoothed scores, newest stamp and motion, and the bundle calibration's
    verdict on its features: IDLE, UNKNOWN or "" for a known action); returns the window's label."""
    top = int(np.argmax(smoothed))
    name, score = labels[top], float(smoothed[top])
    still = verdict == IDLE or (settings.idle_motion > 0.0 and math.isfinite(motion) and motion < settings.idle_motion)
    rejected = verdict == UNKNOWN
    candidate = name if (score >= settings.threshold and name not in BACKGROUND_LABELS and not still
                         and not rejected) else ""
    current = state.action
    if candidate and candidate != current:
        state.pending_windows = state.pending_windows + 1 if candidate == state.pending else 1
        state.pending = candidate
        if state.pending_windows < settings.confirm_windows:
            candidate = ""  # not yet: the current label holds as if no action were confident
    else:
        state.pending, state.pending_windows = "", 0
    release = min(settings.release_threshold, settings.threshold)
    known = current in labels  # not after a model swap to a vocabulary without it: the action ends here
    keep = bool(current) and known and not still and not rejected and (candidate == current or (
        not candidate and float(smoothed[labels.index(current)]) >= release))
    if current and known and not keep and not candidate:  # fading, not replaced by a confirmed action
        state.ending_windows += 1
        keep = state.ending_windows < settings.release_windows
    else:
        state.ending_windows = 0
    ended = ""
    if current and not keep:
        ended = current
        state.action = ""
    started = bool(candidate) and not state.action
    if started:
        state.action = candidate
    label = state.action or (IDLE if still or name == IDLE else UNKNOWN)
    if label != state.label or started:
        state.label, state.since = label, stamp
    return Labelled(label, started, ended, state.since)
