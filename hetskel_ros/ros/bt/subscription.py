"""A py_trees behaviour base that subscribes to ``hetskel_msgs/ActionArray`` the way py_trees_ros does.

ROS callbacks arrive on the executor's thread while a tree ticks on its own, so (as py_trees_ros' subscriber
``Handler``) the callback only stores data in a cache under a lock, and the behaviour's ``update`` takes it from
there. py_trees_ros is not installable from PyPI, so this follows its conventions without depending on it:
``setup(node=...)`` creates the subscription, and a :class:`py_trees.common.ClearingPolicy` decides when the cache is
emptied (ON_INITIALISE: on entering the behaviour; ON_SUCCESS: after a SUCCESS used it; NEVER).
"""

from __future__ import annotations

import threading
from typing import Any

import py_trees
from hetskel_msgs.msg import ActionArray
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription

from hetskel_ros.ros.bt.tracked_actions import (
    ActionEvent,
    TrackedAction,
    TrackKey,
    action_events,
    stamp_ns,
    tracked_actions,
)

DEFAULT_ACTIONS_TOPIC = "actions"
MAX_EVENTS = 256


def node_from_setup(kwargs: dict[str, Any], behaviour: py_trees.behaviour.Behaviour) -> Node:
    """The rclpy node passed as ``setup(node=...)`` (``tree.setup(node=node)``); a KeyError naming the behaviour."""
    try:
        return kwargs["node"]
    except KeyError as exc:
        raise KeyError(
            f"behaviour '{behaviour.name}' ({type(behaviour).__name__}) needs the rclpy node: "
            "call tree.setup(node=your_node) or behaviour.setup(node=your_node)"
        ) from exc


def now_ns(node: Node) -> int:
    """The node clock now in nanoseconds (ROS time, i.e. /clock when use_sim_time is true)."""
    return node.get_clock().now().nanoseconds


class ActionArraySubscriber(py_trees.behaviour.Behaviour):
    """Caches what arrives on the actions topic, under a lock, for subclasses to use at tick time.

    The cache holds the latest ActionArray (``msg``) and, so that no person is lost when several arrays (e.g. from
    several inputs) arrive between two ticks, the latest :class:`TrackedAction` per (source, track_id) received since
    the cache was last emptied. Subclasses implement ``update``.
    """

    def __init__(
        self,
        name: str,
        topic_name: str = DEFAULT_ACTIONS_TOPIC,
        qos_profile: QoSProfile | None = None,
        clearing_policy: py_trees.common.ClearingPolicy = py_trees.common.ClearingPolicy.ON_INITIALISE,
        callback_group: Any = None,
    ) -> None:
        super().__init__(name=name)
        self.topic_name = topic_name
        # The recogniser publishes reliably (depth 10 keeps a burst of updates from several inputs).
        self.qos_profile = qos_profile if qos_profile is not None else QoSProfile(depth=10)
        self.clearing_policy = clearing_policy
        self.callback_group = callback_group
        self.node: Node | None = None
        self.subscription: Subscription | None = None
        self.data_guard = threading.Lock()
        self.msg: ActionArray | None = None
        self.message_count = 0  # messages received since setup (diagnostics; not cleared by the policy)
        self._received: dict[TrackKey, TrackedAction] = {}
        self._events: list[ActionEvent] = []  # start/end events since the last take: none is lost between ticks

    def setup(self, **kwargs: Any) -> None:
        """Create the subscription on ``kwargs['node']``."""
        self.node = node_from_setup(kwargs, self)
        self.subscription = self.node.create_subscription(
            ActionArray, self.topic_name, self._callback, self.qos_profile, callback_group=self.callback_group
        )

    def initialise(self) -> None:
        """Empty the cache if the policy is ON_INITIALISE (then only data newer than this entry counts)."""
        if self.clearing_policy == py_trees.common.ClearingPolicy.ON_INITIALISE:
            self.clear()

    def shutdown(self) -> None:
        """Destroy the subscription (``tree.shutdown()``)."""
        if self.node is not None and self.subscription is not None:
            self.node.destroy_subscription(self.subscription)
        self.subscription = None

    def clear(self) -> None:
        """Forget everything cached."""
        with self.data_guard:
            self.msg = None
            self._received = {}
            self._events = []

    def take(self, clear_message: bool = False) -> tuple[ActionArray | None, dict[TrackKey, TrackedAction]]:
        """(latest message or None, per-track entries received since the last take); optionally clear ``msg``."""
        with self.data_guard:
            msg, received = self.msg, self._received
            self._received = {}
            if clear_message:
                self.msg = None
        return msg, received

    def take_events(self) -> list[ActionEvent]:
        """Start/end events received since the last call, oldest first."""
        with self.data_guard:
            events, self._events = self._events, []
        return events

    def _callback(self, msg: ActionArray) -> None:
        """Executor thread: stamp receipt with the node clock and store; nothing else happens here."""
        assert self.node is not None  # the subscription exists only after setup
        entries = tracked_actions(msg.actions, stamp_ns(msg.header.stamp), now_ns(self.node))
        with self.data_guard:
            self.msg = msg
            self.message_count += 1
            for entry in entries:
                self._received[entry.key] = entry
            self._events += action_events(entries)
            del self._events[:-MAX_EVENTS]  # bounded when no behaviour takes them
