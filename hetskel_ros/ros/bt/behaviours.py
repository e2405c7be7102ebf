"""py_trees behaviours that let any tree react to recognised actions (``hetskel_msgs/ActionArray``).

The pattern is py_trees_ros' "data gathering" one: one writer near the root turns the topic into blackboard data,
and any number of cheap conditions read it.

- :class:`ActionsToBlackboard` subscribes to ``actions`` and keeps the latest Action per (source, track_id), with its
  evidence and receipt times, on the blackboard (key ``/actions`` by default); entries older than ``expiry_s`` go.
- :class:`ActionObserved` (condition): SUCCESS if some person did one of ``label`` with ``score >= min_score``
  within the last ``within_s`` seconds, else FAILURE.
- :class:`WaitForAction`: RUNNING until that is observed (by default only actions received after the wait began),
  FAILURE after ``timeout_s``.
- :class:`WaitForActionEvent`: RUNNING until one of ``label`` *starts* (or *ends*) for a person after the wait
  began (``Action.started`` / ``Action.ended``, decided by the node with hysteresis), FAILURE after ``timeout_s``.
  The writer keeps every event of the last ``expiry_s`` on the blackboard (``/action_events``), so an action that
  starts and ends between two ticks is still seen.

"idle" and "unknown" match only themselves: a condition on an action never fires for a still or unrecognised
person. ``below_threshold=True`` opts in to the top-1 hypothesis under "unknown" (never under "idle").

Times are the node clock (``use_sim_time`` honoured) against ``Action.header.stamp``, the capture time of the
window's last frame: replay bags with ``use_sim_time:=true`` and a /clock, or every action is stale.
Every behaviour takes the node in ``setup(node=...)``: ``tree.setup(node=node)`` hands it to all of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import py_trees
from py_trees.common import Access, ClearingPolicy, Status
from rclpy.node import Node
from rclpy.qos import QoSProfile

from hetskel_ros.ros.bt.subscription import (
    DEFAULT_ACTIONS_TOPIC,
    ActionArraySubscriber,
    node_from_setup,
    now_ns,
)
from hetskel_ros.ros.bt.tracked_actions import (
    EVENT_KINDS,
    NS_PER_S,
    ActionEvent,
    ActionQuery,
    TrackedAction,
    TrackKey,
    expire,
)

DEFAULT_ACTIONS_KEY = "/actions"
DEFAULT_EVENTS_KEY = "/action_events"


class ActionsToBlackboard(ActionArraySubscriber):
    """Writes ``{(source, track_id): TrackedAction}`` (latest per person) to ``variable_name`` at every tick.

    Status: RUNNING while the cache holds no ActionArray, else SUCCESS. The default clearing policy is NEVER (unlike
    py_trees_ros' ToBlackboard): the table ages entries out itself, and a writer at the top of a Sequence should not
    block every other tick. ON_SUCCESS gives SUCCESS only on ticks with a new message; ON_INITIALISE waits for a
    message newer than the behaviour's (re)entry. The table itself is kept across ticks under every policy.
    """

    def __init__(
        self,
        name: str = "Actions2BB",
        topic_name: str = DEFAULT_ACTIONS_TOPIC,
        variable_name: str = DEFAULT_ACTIONS_KEY,
        expiry_s: float = 10.0,
        qos_profile: QoSProfile | None = None,
        clearing_policy: ClearingPolicy = ClearingPolicy.NEVER,
        events_variable_name: str = DEFAULT_EVENTS_KEY,
    ) -> None:
        super().__init__(name, topic_name, qos_profile, clearing_policy)
        if not (expiry_s > 0.0 and math.isfinite(expiry_s)):
            raise ValueError(f"{name}: expiry_s must be a positive number of seconds, got {expiry_s}")
        self.variable_name = variable_name
        self.events_variable_name = events_variable_name
        self.expiry_s = float(expiry_s)
        self._table: dict[TrackKey, TrackedAction] = {}
        self._events: list[ActionEvent] = []
        self.blackboard = self.attach_blackboard_client(name=name)
        for key, empty in ((variable_name, {}), (events_variable_name, ())):
            self.blackboard.register_key(key=key, access=Access.WRITE)
            self.blackboard.set(key, empty, overwrite=False)  # readers never see a missing key

    def update(self) -> Status:
        """Merge what arrived, drop expired entries, publish the table on the blackboard."""
        node = _require_node(self)
        now = now_ns(node)
        msg, received = self.take(clear_message=self.clearing_policy == ClearingPolicy.ON_SUCCESS)
        self._table.update(received)
        self._table = expire(self._table, now, self.expiry_s)
        self.blackboard.set(self.variable_name, dict(self._table), overwrite=True)  # a copy: readers never see edits
        oldest = now - self.expiry_s * NS_PER_S
        self._events = [e for e in self._events + self.take_events() if e.received_ns >= oldest]
        self.blackboard.set(self.events_variable_name, tuple(self._events), overwrite=True)
        if msg is None:
            self.feedback_message = f"no ActionArray on '{self.topic_name}' yet ({len(self._table)} tracked)"
            return Status.RUNNING
        self.feedback_message = f"{len(self._table)} tracked, {len(received)} updated"
        return Status.SUCCESS


class _BlackboardReader(py_trees.behaviour.Behaviour):
    """A behaviour that reads one blackboard key (optionally writes what it found to another) on the node's clock."""

    def __init__(self, name: str, read_key: str, matches_variable_name: str | None) -> None:
        super().__init__(name=name)
        self.node: Node | None = None
        self.matches_variable_name = matches_variable_name
        self.blackboard = self.attach_blackboard_client(name=name)
        self.blackboard.register_key(key=read_key, access=Access.READ)
        if matches_variable_name is not None:
            self.blackboard.register_key(key=matches_variable_name, access=Access.WRITE)

    def setup(self, **kwargs: Any) -> None:
        """Keep the node: its clock is "now"."""
        self.node = node_from_setup(kwargs, self)

    def initialise(self) -> None:
        """A wait (and its timeout) starts now: waits count only what is received from now on."""
        self._start_ns = now_ns(_require_node(self))


def _checked_timeout(name: str, timeout_s: float | None) -> float:
    """Seconds to wait (inf for None); a ValueError naming the behaviour when not positive."""
    if timeout_s is not None and not timeout_s > 0.0:
        raise ValueError(f"{name}: timeout_s must be positive or None (no timeout), got {timeout_s}")
    return math.inf if timeout_s is None else float(timeout_s)


class ActionObserved(_BlackboardReader):
    """Condition: SUCCESS if the table holds a match for the query now, else FAILURE.

    ``label`` is one label or several (any matches); ``track_id``/``source`` None match any person/input. With
    ``matches_variable_name`` the matching entries (a tuple of TrackedAction, best first) are written there, e.g. for
    an action that turns to or names the person.
    """

    def __init__(
        self,
        name: str,
        label: str | Iterable[str],
        min_score: float = 0.5,
        track_id: int | None = None,
        source: str | None = None,
        within_s: float = 1.0,
        variable_name: str = DEFAULT_ACTIONS_KEY,
        matches_variable_name: str | None = None,
        below_threshold: bool = False,
    ) -> None:
        super().__init__(name, variable_name, matches_variable_name)
        try:
            self.query = ActionQuery.build(label, min_score, track_id, source, within_s, below_threshold)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from exc
        self.variable_name = variable_name

    def find(self, received_after_ns: int | None = None) -> tuple[int, list[TrackedAction]]:
        """(now in ns, matching entries best first); writes them to ``matches_variable_name`` if set."""
        now = now_ns(_require_node(self))
        try:
            table = self.blackboard.get(self.variable_name)
        except KeyError:  # no writer has ticked yet
            table = {}
        found = self.query.find(table, now, received_after_ns)
        if self.matches_variable_name is not None:
            self.blackboard.set(self.matches_variable_name, tuple(found), overwrite=True)
        return now, found

    def update(self) -> Status:
        """SUCCESS on a match, FAILURE otherwise (feedback says which)."""
        now, found = self.find()
        if found:
            self.feedback_message = f"observed {found[0].describe(now)}"
            return Status.SUCCESS
        self.feedback_message = f"no {self.query.describe()}"
        return Status.FAILURE


class WaitForAction(ActionObserved):
    """RUNNING until the query matches, SUCCESS then; FAILURE once ``timeout_s`` passed (None: wait forever).

    With ``only_new`` (default) only actions received after the wait began count, so a wave from before a question
    is not taken as its answer.
    """

    def __init__(
        self,
        name: str,
        label: str | Iterable[str],
        min_score: float = 0.5,
        track_id: int | None = None,
        timeout_s: float | None = 10.0,
        within_s: float = 1.0,
        source: str | None = None,
        only_new: bool = True,
        variable_name: str = DEFAULT_ACTIONS_KEY,
        matches_variable_name: str | None = None,
    ) -> None:
        super().__init__(name, label, min_score, track_id, source, within_s, variable_name, matches_variable_name)
        self.timeout_s = _checked_timeout(name, timeout_s)
        self.only_new = only_new
        self._start_ns = 0

    def update(self) -> Status:
        """SUCCESS on a match, FAILURE after the timeout, RUNNING in between."""
        now, found = self.find(self._start_ns if self.only_new else None)
        if found:
            self.feedback_message = f"observed {found[0].describe(now)}"
            return Status.SUCCESS
        waited_s = (now - self._start_ns) / NS_PER_S
        if waited_s >= self.timeout_s:
            self.feedback_message = f"timed out after {waited_s:.1f}s waiting for {self.query.describe()}"
            return Status.FAILURE
        self.feedback_message = f"waiting {waited_s:.1f}/{self.timeout_s:g}s for {self.query.describe()}"
        return Status.RUNNING


class WaitForActionEvent(_BlackboardReader):
    """RUNNING until one of ``label`` starts (``event="start"``) or ends (``"end"``) for a person after the wait
    began; SUCCESS then (the event is written to ``matches_variable_name`` if set); FAILURE after ``timeout_s``."""

    def __init__(
        self,
        name: str,
        label: str | Iterable[str],
        event: str = "start",
        track_id: int | None = None,
        source: str | None = None,
        timeout_s: float | None = 10.0,
        events_variable_name: str = DEFAULT_EVENTS_KEY,
        matches_variable_name: str | None = None,
    ) -> None:
        super().__init__(name, events_variable_name, matches_variable_name)
        if event not in EVENT_KINDS:
            raise ValueError(f"{name}: event must be one of {EVENT_KINDS}, got {event!r}")
        self.timeout_s = _checked_timeout(name, timeout_s)
        try:
            self.query = ActionQuery.build(label, 0.0, track_id, source)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from exc
        self.event = event
        self.events_variable_name = events_variable_name
        self._start_ns = 0

    def update(self) -> Status:
        """SUCCESS on a matching event, FAILURE after the timeout, RUNNING in between."""
        now = now_ns(_require_node(self))
        try:
            events = self.blackboard.get(self.events_variable_name)
        except KeyError:  # no writer has ticked yet
            events = ()
        found = [e for e in events if self.query.matches_event(e, self.event, self._start_ns)]
        if found:
            if self.matches_variable_name is not None:
                self.blackboard.set(self.matches_variable_name, found[0], overwrite=True)
            self.feedback_message = f"observed {found[0].describe(now)}"
            return Status.SUCCESS
        waited_s = (now - self._start_ns) / NS_PER_S
        what = f"{self.event} of {self.query.describe()}"
        if waited_s >= self.timeout_s:
            self.feedback_message = f"timed out after {waited_s:.1f}s waiting for the {what}"
            return Status.FAILURE
        self.feedback_message = f"waiting {waited_s:.1f}/{self.timeout_s:g}s for the {what}"
        return Status.RUNNING


def _require_node(behaviour: py_trees.behaviour.Behaviour) -> Node:
    """The node given at setup; a RuntimeError naming the behaviour if setup was skipped."""
    node = getattr(behaviour, "node", None)
    if node is None:
        raise RuntimeError(
            f"behaviour '{behaviour.name}' ticked before setup(node=...): call tree.setup(node=your_node) first"
        )
    return node
