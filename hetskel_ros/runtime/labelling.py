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


class LabelSettings(Protocol):
    threshold: float
    release_threshold: float
    idle_motion: float


def window_motion(x: np.ndarray, present: np.ndarray, fps: float, tail_s: float = MOTION_TAIL_S) -> float:
    """Mean joint speed over the window's newest ``tail_s`` (normalised units per second; nan with too few frames).

    ``x`` (T, J, C) is the normalised window (unit torso length), ``present`` (T, J) its mask. Only joints present
    in both frames of a step count, so a joint that drops out is not a movement.
    """
    frames = max(2, min(len(x), round(tail_s * fps) + 1))
    tail, seen = np.asarray(x[-frames:], np.float64), np.asarray(present[-frames:], bool)
    both = seen[1:] & seen[:-1]
    if not both.any():
        return math.nan
    steps = np.linalg.norm(np.diff(tail, axis=0), axis=-1)
    return float(steps[both].mean() * fps)


@dataclass
class LabelState:
    """One person's labelling state between windows."""

    action: str = ""  # the action going on ("" when none)
    label: str = ""  # the last published label
    since: float = math.nan  # stamp of the first window with that label


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
    release = min(settings.release_threshold, settings.threshold)
    known = current in labels  # not after a model swap to a vocabulary without it: the action ends here
    keep = bool(current) and known and not still and not rejected and (candidate == current or (
        not candidate and float(smoothed[labels.index(current)]) >= release))
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
