"""Node ``bag_player``: publish a rosbag2 bag's messages with their recorded timing (``ros2 bag play`` without rosbag2).

    bag_player --ros-args -p bag:=demo_bag -p rate:=2.0 -p loop:=true -r /skeletons:=/robot1/skeletons

Parameters: ``bag`` (directory or .mcap/.db3 file), ``rate`` (time factor, 2.0 = twice as fast), ``loop``,
``topics`` (which to play; [] = all), ``remap`` (["/from:=/to", ...], besides the usual ``--ros-args -r``),
``clock`` (publish rosgraph_msgs/Clock on ``/clock`` with the bag's time, for nodes run with use_sim_time:=true),
``clock_period_s`` (/clock ticks between messages), ``wait_for_subscribers`` (topics that must have a subscriber
before playing starts, e.g. [/skeletons, /clock]; the default [any]: some played topic, so a recognizer launched
beside the player misses nothing; [] plays at once) and ``wait_timeout_s`` (then it plays anyway), ``start_delay_s``,
``exit_when_done``.

Messages go out as recorded (CDR bytes, no re-serialisation) on publishers of their own types; the header stamps
are untouched, so a recognizer sees the capture times of the recording. Recorded topics lose their leading ``/``,
so they follow the player's namespace (``-r __ns:=/robot1``: ``/skeletons`` is played on ``/robot1/skeletons``),
except the ones that are global in ROS (``/clock``, ``/tf``, ``/tf_static``, ``/diagnostics``, ...).
With ``clock``, the first /clock is sent before the first message and every message is preceded by a /clock of its
receive time stamp.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from hetskel_ros.ros.bagtools.bag_io import NS_PER_S, BagContents, BagError, read_bag
from hetskel_ros.ros.msg_dict import message_class
from hetskel_ros.ros.node_main import read_only, run_node

ANY = "any"  # wait_for_subscribers entry: until some played topic has a subscriber (a node started beside the player)
CLOCK_SETTLE_S = 0.2  # after the first /clock, so sim-time nodes have the bag's time before the first message


# Topics that stay absolute whatever the namespace, as in ROS: one clock, one transform tree, one diagnostics bus.
GLOBAL_TOPICS = ("/clock", "/tf", "/tf_static", "/diagnostics", "/rosout", "/parameter_events")


def played_name(recorded: str) -> str:
    """The name a recorded topic is published under: relative, so the player's namespace applies, unless global."""
    absolute = "/" + recorded.lstrip("/")
    return absolute if absolute in GLOBAL_TOPICS else absolute.lstrip("/")


def parse_remaps(rules: list[str]) -> dict[str, str]:
    remaps = {}
    for rule in rules:
        source, sep, target = rule.partition(":=")
        if not sep or not source or not target:
            raise ValueError(f"parameter 'remap': {rule!r} is not 'from:=to'")
        remaps["/" + source.lstrip("/")] = target
    return remaps


class BagPlayer(Node):
    """Plays a bag from a background thread once :meth:`start` is called (``autostart`` does it at once)."""

    def __init__(self, node_name: str = "bag_player", *, contents: BagContents | None = None,
                 on_publish: Callable[[str, int, float], None] | None = None, **kwargs: Any) -> None:
        self._stop = threading.Event()  # first: destroy_node runs on a node whose start-up failed, too
        self._thread: threading.Thread | None = None
        super().__init__(node_name, **kwargs)
        self.bag_path = self.declare_parameter("bag", "", read_only()).value
        self.rate = float(self.declare_parameter("rate", 1.0, read_only()).value)
        self.loop = bool(self.declare_parameter("loop", False, read_only()).value)
        topics = list(self.declare_parameter("topics", [""], read_only()).value)
        remap = list(self.declare_parameter("remap", [""], read_only()).value)
        self.clock = bool(self.declare_parameter("clock", True, read_only()).value)
        self.clock_period_s = float(self.declare_parameter("clock_period_s", 0.05, read_only()).value)
        self.wait_for = [t for t in self.declare_parameter("wait_for_subscribers", [ANY], read_only()).value if t]
        self.wait_timeout_s = float(self.declare_parameter("wait_timeout_s", 30.0, read_only()).value)
        self.start_delay_s = float(self.declare_parameter("start_delay_s", 0.0, read_only()).value)
        self.exit_when_done = bool(self.declare_parameter("exit_when_done", True, read_only()).value)
        autostart = bool(self.declare_parameter("autostart", True, read_only()).value)
        if self.rate <= 0:
            raise ValueError(f"parameter 'rate' must be > 0, got {self.rate}")
        if contents is None:
            if not self.bag_path:
                raise ValueError("parameter 'bag' is required (a rosbag2 directory or .mcap/.db3 file)")
            contents = read_bag(self.bag_path, [t for t in topics if t] or None, with_truth=False, every_topic=True)
        elif any(topics):
            contents = BagContents(contents.path, contents.storage,
                                   [m for m in contents.messages if m.topic in topics], contents.topics)
        if not contents.messages:
            raise BagError(f"bag {contents.path}: nothing to play")
        self.contents = contents
        remaps = parse_remaps([r for r in remap if r])
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        played = sorted({m.topic for m in contents.messages})
        self.publishers_by_topic = {
            topic: self.create_publisher(message_class(contents.topics[topic]), remaps.get(topic, played_name(topic)),
                                          reliable)
            for topic in played}
        self.clock_pub = self.create_publisher(Clock, "/clock", 10) if self.clock else None
        self.on_publish = on_publish
        self.published = 0
        self.loops = 0
        self.late_s = 0.0  # the most a message went out after its due time
        self.finished = threading.Event()
        self.get_logger().info(f"bag {contents.path}: {len(contents.messages)} messages on {played} over "
                               f"{contents.duration_s:.1f} s, rate {self.rate:g}{', loop' if self.loop else ''}"
                               f"{', /clock' if self.clock else ''}")
        if autostart:
            self.start()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._play, name="bag_player", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def _stopped(self) -> bool:
        """Stopped, or ROS shut down (Ctrl-C shuts the context down before destroy_node stops this thread)."""
        return self._stop.is_set() or not self.context.ok()

    def _publish_clock(self, ns: int) -> None:
        if self.clock_pub is not None:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = ns // NS_PER_S, ns % NS_PER_S
            self.clock_pub.publish(msg)

    def _wait_for_subscribers(self) -> bool:
        deadline = time.monotonic() + self.wait_timeout_s
        for topic in self.wait_for:
            if topic == ANY:
                publishers = list(self.publishers_by_topic.values())
                what = "any played topic"
            else:
                absolute = "/" + topic.lstrip("/")
                publisher = self.clock_pub if absolute == "/clock" else self.publishers_by_topic.get(absolute)
                if publisher is None:
                    self.get_logger().warning(f"wait_for_subscribers: '{topic}' is not played; not waiting for it")
                    continue
                publishers, what = [publisher], f"'{publisher.topic_name}'"
            while not any(p.get_subscription_count() for p in publishers):
                if self._stopped():
                    return False
                if time.monotonic() > deadline:
                    self.get_logger().warning(f"no subscriber on {what} after {self.wait_timeout_s:g} s; "
                                              "playing anyway")
                    return True
                time.sleep(0.02)
        return True

    def _sleep_until(self, wall: float, bag_ns_at: Callable[[float], int]) -> bool:
        """Sleep until monotonic ``wall``, ticking /clock; False if stopped."""
        while True:
            remaining = wall - time.monotonic()
            if remaining <= 0:
                return True
            if self._stop.wait(min(remaining, self.clock_period_s) if self.clock else remaining):
                return False
            if self.clock and wall - time.monotonic() > 0:
                self._publish_clock(bag_ns_at(time.monotonic()))

    def _play(self) -> None:
        try:
            if not self._wait_for_subscribers():
                return
            messages = self.contents.messages
            first_ns = messages[0].timestamp_ns
            if self.clock:
                self._publish_clock(first_ns)
                if self._stop.wait(CLOCK_SETTLE_S):
                    return
            if self.start_delay_s > 0 and self._stop.wait(self.start_delay_s):
                return
            while not self._stop.is_set():
                start_wall = time.monotonic()

                def bag_ns_at(wall: float, start_wall: float = start_wall) -> int:
                    return first_ns + int((wall - start_wall) * self.rate * NS_PER_S)

                for message in messages:
                    due = start_wall + (message.timestamp_ns - first_ns) / NS_PER_S / self.rate
                    if not self._sleep_until(due, bag_ns_at):
                        return
                    self.late_s = max(self.late_s, time.monotonic() - due)
                    self._publish_clock(message.timestamp_ns)
                    self.publishers_by_topic[message.topic].publish(message.data)
                    self.published += 1
                    if self.on_publish is not None:
                        self.on_publish(message.topic, message.timestamp_ns, time.monotonic())
                self.loops += 1
                if not self.loop:
                    break
        except Exception as exc:  # a dead player thread must say why, unless ROS shut down under it
            if not self._stopped():
                self.get_logger().error(f"playing stopped: {exc!r}")
        finally:
            self.finished.set()
            if self.context.ok():  # after a shutdown the log would only fail to reach /rosout
                self.get_logger().info(f"played {self.published} messages ({self.loops} pass(es)); "
                                       f"latest message {self.late_s * 1000:.1f} ms behind schedule")

    def destroy_node(self) -> None:
        self.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Console entry point ``bag_player``: exits 0 when done (unless looping) and on Ctrl-C / SIGTERM."""
    run_node("bag_player", BagPlayer, args, done=lambda node: node.exit_when_done and node.finished.is_set(),
             config_errors=(ValueError, BagError))


if __name__ == "__main__":
    main()
