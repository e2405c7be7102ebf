"""The latest recognised action per (source, track_id), and the query behaviour-tree conditions ask of it.

Pure data (no py_trees, no node): the behaviours in :mod:`hetskel_ros.ros.bt.behaviours` keep a table of
:class:`TrackedAction` on the blackboard and evaluate an :class:`ActionQuery` against it at each tick, with the node
clock's "now" in nanoseconds (sim time when ``use_sim_time`` is set).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from builtin_interfaces.msg import Time
from hetskel_msgs.msg import Action

from hetskel_ros.runtime.labelling import GONE  # the person left: the recogniser's last message of that track

NS_PER_S = 1_000_000_000
UNKNOWN_LABEL = "unknown"
IDLE_LABEL = "idle"
EVENT_KINDS = ("start", "end")

TrackKey = tuple[str, int]
"""(Action.source, Action.track_id): one person as one input (or "fused") sees them."""


def stamp_ns(stamp: Time) -> int:
    """A ``builtin_interfaces/Time`` as integer nanoseconds (0 means "not stamped")."""
    return stamp.sec * NS_PER_S + stamp.nanosec


@dataclass(frozen=True)
class TrackedAction:
    """One person's latest Action and the two times its freshness is judged by.

    ``stamp_ns`` is the evidence time: ``Action.header.stamp`` (capture time of the window's last frame), else the
    ActionArray's stamp, else the receipt time when the recogniser left both empty. ``received_ns`` is the node clock
    when the message arrived (so "new since the wait began" does not depend on the sensor's clock).
    """

    action: Action
    stamp_ns: int
    received_ns: int

    @property
    def key(self) -> TrackKey:
        """Table key: (source, track_id)."""
        return (self.action.source, int(self.action.track_id))

    @property
    def labels(self) -> frozenset[str]:
        """Labels this entry answers to: ``label`` only ("idle" and "unknown" answer to nothing but themselves).

        A label a tree acts on must mean that the person really does that action: see :meth:`labels_below_threshold`
        for the explicit, opt-in exception.
        """
        return frozenset({self.action.label})

    def labels_below_threshold(self) -> frozenset[str]:
        """``labels`` plus the top hypothesis when ``label`` is "unknown" (never under "idle": a still person does no
        action). For a tree that deliberately accepts less confidence than the node's ``threshold``."""
        labels = {self.action.label}
        if self.action.label == UNKNOWN_LABEL and self.action.hypotheses:
            labels.add(self.action.hypotheses[0].label)
        return frozenset(labels)

    def age_s(self, now_ns: int) -> float:
        """Seconds from the evidence time to ``now_ns`` (negative if the sensor clock runs ahead of ours)."""
        return (now_ns - self.stamp_ns) / NS_PER_S

    def describe(self, now_ns: int) -> str:
        """Short human-readable form for feedback messages and logs."""
        a = self.action
        return f"{a.source or '-'}/{a.track_id} '{a.label}' {a.score:.2f} {self.age_s(now_ns):.1f}s ago"


@dataclass(frozen=True)
class ActionEvent:
    """An action that started or ended for one person (Action.started / Action.ended), as received."""

    kind: str  # "start" or "end"
    label: str
    key: TrackKey
    stamp_ns: int  # evidence time of the Action that carried it
    received_ns: int

    def describe(self, now_ns: int) -> str:
        return (f"{self.key[0] or '-'}/{self.key[1]} {self.kind} of '{self.label}' "
                f"{(now_ns - self.stamp_ns) / NS_PER_S:.1f}s ago")


def action_events(entries: Iterable[TrackedAction]) -> list[ActionEvent]:
    """The start and end events the entries carry (an action's end before the next one's start)."""
    events = []
    for entry in entries:
        action = entry.action
        if action.ended:
            events.append(ActionEvent("end", action.ended, entry.key, entry.stamp_ns, entry.received_ns))
        if action.started:
            events.append(ActionEvent("start", action.label, entry.key, entry.stamp_ns, entry.received_ns))
    return events


def tracked_actions(actions: Iterable[Action], array_stamp_ns: int, received_ns: int) -> list[TrackedAction]:
    """TrackedAction entries for the actions of one ActionArray (stamp fallbacks as in :class:`TrackedAction`)."""
    entries = []
    for action in actions:
        own = stamp_ns(action.header.stamp)
        entries.append(TrackedAction(action, own or array_stamp_ns or received_ns, received_ns))
    return entries


def expire(table: Mapping[TrackKey, TrackedAction], now_ns: int, expiry_s: float) -> dict[TrackKey, TrackedAction]:
    """The entries of ``table`` whose evidence is at most ``expiry_s`` old and whose person has not left ("gone"):
    people who left stop being reported."""
    return {key: entry for key, entry in table.items()
            if entry.age_s(now_ns) <= expiry_s and entry.action.label != GONE}


@dataclass(frozen=True)
class ActionQuery:
    """What a condition looks for: one of ``labels`` with ``score >= min_score``, seen within ``within_s``.

    ``track_id`` / ``source`` of None match any person / any input.
    """

    labels: frozenset[str]
    min_score: float = 0.5
    track_id: int | None = None
    source: str | None = None
    within_s: float = 1.0
    below_threshold: bool = False  # also match the top-1 under "unknown" (TrackedAction.labels_below_threshold)

    @classmethod
    def build(
        cls,
        label: str | Iterable[str],
        min_score: float = 0.5,
        track_id: int | None = None,
        source: str | None = None,
        within_s: float = 1.0,
        below_threshold: bool = False,
    ) -> ActionQuery:
        """Validated query; ``label`` is one label or several (any of them matches)."""
        labels = frozenset([label] if isinstance(label, str) else label)
        if not labels or not all(isinstance(x, str) and x for x in labels):
            raise ValueError(f"label must be a non-empty label or list of non-empty labels, got {label!r}")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")
        if not (within_s > 0.0 and math.isfinite(within_s)):
            raise ValueError(f"within_s must be a positive number of seconds, got {within_s}")
        if track_id is not None and track_id < 0:
            raise ValueError(f"track_id must be >= 0 or None (any track), got {track_id}")
        return cls(labels, float(min_score), track_id, source, float(within_s), bool(below_threshold))

    def matches(self, entry: TrackedAction, now_ns: int, received_after_ns: int | None = None) -> bool:
        """Whether ``entry`` satisfies the query at ``now_ns`` (and arrived at or after ``received_after_ns``)."""
        action = entry.action
        return (
            (self.track_id is None or action.track_id == self.track_id)
            and (self.source is None or action.source == self.source)
            and not self.labels.isdisjoint(entry.labels_below_threshold() if self.below_threshold else entry.labels)
            and action.score >= self.min_score
            and entry.age_s(now_ns) <= self.within_s
            and (received_after_ns is None or entry.received_ns >= received_after_ns)
        )

    def find(
        self, table: Mapping[TrackKey, TrackedAction], now_ns: int, received_after_ns: int | None = None
    ) -> list[TrackedAction]:
        """All matching entries, best first (highest score, then newest)."""
        found = [entry for entry in table.values() if self.matches(entry, now_ns, received_after_ns)]
        return sorted(found, key=lambda e: (-e.action.score, -e.stamp_ns))

    def matches_event(self, event: ActionEvent, kind: str, received_after_ns: int) -> bool:
        """Whether ``event`` is a ``kind`` event of one of the labels, by the person and source asked for, received
        at or after ``received_after_ns`` (scores do not apply: the node's hysteresis already decided)."""
        return (event.kind == kind and event.label in self.labels
                and (self.track_id is None or event.key[1] == self.track_id)
                and (self.source is None or event.key[0] == self.source)
                and event.received_ns >= received_after_ns)

    def describe(self) -> str:
        """Short human-readable form for feedback messages."""
        who = "any track" if self.track_id is None else f"track {self.track_id}"
        where = "" if self.source is None else f" from '{self.source}'"
        labels = "|".join(sorted(self.labels))
        return f"'{labels}' >= {self.min_score:.2f} by {who}{where} within {self.within_s:g}s"
