"""Example node: a small behaviour tree that greets people who wave and stops when someone raises both hands.

``ros2 run hetskel_ros action_reactor`` (or ``python -m hetskel_ros.ros.action_reactor``). The tree, ticked at
``tick_hz``::

    ActionReactor (sequence)
      Actions2BB                      subscribe to `actions`, latest Action per person on the blackboard
      React (selector, priority order, re-evaluated every tick)
        Stop? (sequence)
          HandsRaised?                one of stop_labels >= min_score within window_s
          Stop                        says stop_text once, then a zero Twist on every tick while it holds
        Greet? (sequence with memory: a started greeting finishes unless Stop preempts it)
          Waving?                     one of greet_labels >= min_score within window_s
          Greet                       says greeting, turns at turn_speed for turn_s, then a zero Twist
        Idle                          publishes nothing, so other controllers keep cmd_vel

"Turn toward them": an Action carries no position (only track_id and source), so this node cannot know where the
person is. It makes a fixed, short acknowledging turn whose direction is the sign of ``turn_speed`` (REP-103:
positive is counter-clockwise, to the left); set ``turn_speed`` to 0 for no motion. A robot that knows where people
are (e.g. from the Skeleton positions of the same track_id in the sensor frame) should replace ``Greet`` with a turn
toward that bearing. Each person (source, track_id) is greeted at most once per ``greet_cooldown_s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import py_trees
from geometry_msgs.msg import Twist
from py_trees.common import Access, Status
from rclpy.node import Node
from std_msgs.msg import String

from hetskel_ros.ros.bt import ActionObserved, ActionsToBlackboard, TrackedAction, TrackKey
from hetskel_ros.ros.bt.subscription import node_from_setup, now_ns
from hetskel_ros.ros.bt.tracked_actions import NS_PER_S
from hetskel_ros.ros.node_main import declare_config, run_node

DEFAULT_GREET_LABELS = ("wave-both-hands", "wave-left-hand", "wave-right-hand")
DEFAULT_STOP_LABELS = ("raise-up-both-hands",)


@dataclass(frozen=True)
class ReactorConfig:
    """The node's parameters (names equal the ROS parameter names)."""

    actions_topic: str = "actions"
    speech_topic: str = "speech"
    cmd_vel_topic: str = "cmd_vel"
    greet_labels: tuple[str, ...] = DEFAULT_GREET_LABELS
    stop_labels: tuple[str, ...] = DEFAULT_STOP_LABELS
    min_score: float = 0.5
    window_s: float = 1.0
    expiry_s: float = 10.0
    tick_hz: float = 10.0
    greeting: str = "Hello!"
    stop_text: str = "Stopping"
    turn_speed: float = 0.5
    turn_s: float = 1.0
    greet_cooldown_s: float = 10.0

    def __post_init__(self) -> None:
        """Errors name the parameter, so a wrong launch file is found at start-up, not at the first wave."""
        for name in ("greet_labels", "stop_labels"):
            labels = getattr(self, name)
            if not labels or not all(labels):
                raise ValueError(f"parameter '{name}' needs at least one non-empty label, got {list(labels)}")
        checks: dict[str, tuple[bool, str]] = {
            "min_score": (0.0 <= self.min_score <= 1.0, "0 <= min_score <= 1"),
            "window_s": (self.window_s > 0.0, "window_s > 0"),
            "expiry_s": (self.expiry_s >= self.window_s, "expiry_s >= window_s"),
            "tick_hz": (self.tick_hz > 0.0, "tick_hz > 0"),
            "turn_s": (self.turn_s >= 0.0, "turn_s >= 0"),
            "greet_cooldown_s": (self.greet_cooldown_s >= 0.0, "greet_cooldown_s >= 0"),
        }
        for name, (ok, rule) in checks.items():
            if not ok:
                raise ValueError(f"parameter '{name}' = {getattr(self, name)!r} is out of range (needs {rule})")

    @classmethod
    def declare(cls, node: Node) -> ReactorConfig:
        """Declare every field as a ROS parameter (defaults above) and read them back."""
        return declare_config(node, cls)


class RobotOutputs:
    """The two things the tree does to the world: speak (std_msgs/String) and turn (geometry_msgs/Twist)."""

    def __init__(self, node: Node, speech_topic: str, cmd_vel_topic: str) -> None:
        self.context = node.context
        self.speech = node.create_publisher(String, speech_topic, 10)
        self.cmd_vel = node.create_publisher(Twist, cmd_vel_topic, 10)

    def say(self, text: str) -> None:
        """Publish one utterance."""
        if self.context.ok():
            self.speech.publish(String(data=text))

    def turn(self, angular_z: float) -> None:
        """Publish a pure rotation (0.0: a zero Twist, i.e. stop); nothing once ROS is shut down (Ctrl-C)."""
        if not self.context.ok():
            return
        twist = Twist()
        twist.angular.z = float(angular_z)
        self.cmd_vel.publish(twist)


class Greet(py_trees.behaviour.Behaviour):
    """Greets the best-scoring waving person not greeted recently: says it, turns briefly, then stops turning.

    FAILURE at once when everyone in the matches was greeted within the cooldown; RUNNING while turning.
    """

    def __init__(self, name: str, outputs: RobotOutputs, matches_variable_name: str, config: ReactorConfig) -> None:
        super().__init__(name=name)
        self.outputs = outputs
        self.config = config
        self.matches_variable_name = matches_variable_name
        self.blackboard = self.attach_blackboard_client(name=name)
        self.blackboard.register_key(key=matches_variable_name, access=Access.READ)
        self.node: Node | None = None
        self._greeted_ns: dict[TrackKey, int] = {}
        self._person: TrackedAction | None = None
        self._start_ns = 0
        self._turning = False

    def setup(self, **kwargs: Any) -> None:
        """Keep the node for its clock and logger."""
        self.node = node_from_setup(kwargs, self)

    def initialise(self) -> None:
        """Pick the person, speak once, start the turn."""
        assert self.node is not None
        now = now_ns(self.node)
        cooldown_ns = int(self.config.greet_cooldown_s * NS_PER_S)
        self._greeted_ns = {k: t for k, t in self._greeted_ns.items() if now - t < cooldown_ns}
        try:
            matches: Sequence[TrackedAction] = self.blackboard.get(self.matches_variable_name)
        except KeyError:
            matches = ()
        self._person = next((m for m in matches if m.key not in self._greeted_ns), None)
        if self._person is None:
            return
        self._greeted_ns[self._person.key] = now
        self._start_ns = now
        self._turning = self.config.turn_s > 0.0 and self.config.turn_speed != 0.0
        self.outputs.say(self.config.greeting)
        self.node.get_logger().info(f"greeting {self._person.describe(now)}")

    def update(self) -> Status:
        """RUNNING while turning, then a zero Twist and SUCCESS."""
        assert self.node is not None
        if self._person is None:
            self.feedback_message = "everyone waving was greeted within the cooldown"
            return Status.FAILURE
        if self._turning:
            if (now_ns(self.node) - self._start_ns) / NS_PER_S < self.config.turn_s:
                self.outputs.turn(self.config.turn_speed)
                self.feedback_message = f"turning at {self.config.turn_speed:g} rad/s"
                return Status.RUNNING
            self._stop_turning()
        self.feedback_message = f"greeted {self._person.key}"
        return Status.SUCCESS

    def terminate(self, new_status: Status) -> None:
        """Interrupted (e.g. by Stop) mid-turn: never leave the robot turning."""
        if self._turning:
            self._stop_turning()

    def _stop_turning(self) -> None:
        self.outputs.turn(0.0)
        self._turning = False


class Stop(py_trees.behaviour.Behaviour):
    """Says the stop text once on entry, then commands a zero Twist on every tick while it stays active (RUNNING)."""

    def __init__(self, name: str, outputs: RobotOutputs, text: str) -> None:
        super().__init__(name=name)
        self.outputs = outputs
        self.text = text
        self.node: Node | None = None

    def setup(self, **kwargs: Any) -> None:
        """Keep the node for its logger."""
        self.node = node_from_setup(kwargs, self)

    def initialise(self) -> None:
        """One utterance per stop episode, not one per tick."""
        self.outputs.say(self.text)
        if self.node is not None:
            self.node.get_logger().info("stop gesture: stopping")

    def update(self) -> Status:
        """Keep commanding zero velocity."""
        self.outputs.turn(0.0)
        self.feedback_message = "holding zero velocity"
        return Status.RUNNING


@dataclass
class ReactorTree:
    """The tree and the behaviours tests and users may want to look at."""

    root: py_trees.behaviour.Behaviour
    writer: ActionsToBlackboard
    hands_raised: ActionObserved
    waving: ActionObserved
    greet: Greet
    stop: Stop


def build_reactor_tree(config: ReactorConfig, outputs: RobotOutputs, namespace: str) -> ReactorTree:
    """The tree of the module docstring; blackboard keys live under ``namespace`` (one per node)."""
    actions_key = f"{namespace}/actions"
    matches_key = f"{namespace}/waving"
    writer = ActionsToBlackboard(
        "Actions2BB", topic_name=config.actions_topic, variable_name=actions_key, expiry_s=config.expiry_s
    )
    hands_raised = ActionObserved(
        "HandsRaised?", config.stop_labels, config.min_score, within_s=config.window_s, variable_name=actions_key
    )
    waving = ActionObserved(
        "Waving?",
        config.greet_labels,
        config.min_score,
        within_s=config.window_s,
        variable_name=actions_key,
        matches_variable_name=matches_key,
    )
    stop = Stop("Stop", outputs, config.stop_text)
    greet = Greet("Greet", outputs, matches_key, config)
    react = py_trees.composites.Selector(
        "React",
        memory=False,
        children=[
            py_trees.composites.Sequence("Stop?", memory=False, children=[hands_raised, stop]),
            py_trees.composites.Sequence("Greet?", memory=True, children=[waving, greet]),
            py_trees.behaviours.Running("Idle"),
        ],
    )
    root = py_trees.composites.Sequence("ActionReactor", memory=False, children=[writer, react])
    return ReactorTree(root, writer, hands_raised, waving, greet, stop)


class ActionReactor(Node):
    """Node that ticks the reactor tree at ``tick_hz`` on its own clock (sim time if ``use_sim_time``)."""

    def __init__(self, node_name: str = "action_reactor", **kwargs: Any) -> None:
        self.tree: py_trees.trees.BehaviourTree | None = None  # destroy_node may run on a half-built node
        super().__init__(node_name, **kwargs)
        self.config = ReactorConfig.declare(self)
        self.outputs = RobotOutputs(self, self.config.speech_topic, self.config.cmd_vel_topic)
        namespace = "/" + self.get_fully_qualified_name().strip("/")
        self.behaviours = build_reactor_tree(self.config, self.outputs, namespace)
        self.tree = py_trees.trees.BehaviourTree(self.behaviours.root)
        self.tree.setup(node=self)
        self.timer = self.create_timer(1.0 / self.config.tick_hz, self.tick)
        self.get_logger().info(
            f"reacting to {list(self.config.greet_labels)} (greet) and {list(self.config.stop_labels)} (stop) "
            f"on '{self.config.actions_topic}' at {self.config.tick_hz:g} Hz"
        )

    def tick(self) -> None:
        """One tree tick (the timer callback)."""
        self.tree.tick()

    def destroy_node(self) -> None:
        """Stop the tree (a turn in progress ends with a zero Twist), release subscription and keys, then the node."""
        if self.tree is not None:
            self.timer.cancel()
            self.tree.root.stop(Status.INVALID)
            self.tree.shutdown()
            for behaviour in self.tree.root.iterate():
                for client in behaviour.blackboards:
                    client.unregister(clear=True)
            self.tree = None
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Console entry point ``action_reactor``."""
    run_node("action_reactor", ActionReactor, args)


if __name__ == "__main__":
    main()
