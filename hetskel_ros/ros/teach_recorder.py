"""Node ``teach_recorder``: record the node's inputs to a bag and take labels live, for ``hetskel-teach``.

    ros2 run hetskel_ros teach_recorder --ros-args -p output:=wave_bag -p topics:=[skeletons]
    ros2 service call /teach_recorder/mark hetskel_msgs/srv/Mark "{label: come-here, start: true}"
    ros2 service call /teach_recorder/mark hetskel_msgs/srv/Mark "{label: come-here, start: false}"
    hetskel-teach wave_bag --add --out taught.hetskel              # the marks are the labels: no CSV to write

Parameters (read at start): ``output`` (bag directory to create; it must not exist), ``topics`` (topics to record,
default ``[skeletons]``; each is subscribed once a publisher shows its type, so the recorder may start first),
``storage`` (``mcap`` or ``sqlite3``), ``keys`` (labels to mark from the terminal: a line with a label's number,
1 for the first, starts its example and the next one stops it, for person ``key_track``). The service ``~/mark``
(hetskel_msgs/srv/Mark: label, start or stop, track_id), like the terminal, publishes each accepted mark as
hetskel_msgs/msg/Mark on ``~/marks``, stamped with the node's clock (use_sim_time is honoured), and writes it into
the same bag; a stop without a start, a second start of the same
label and person, or an empty label is refused with the reason. Messages are written as they arrive (receive
time = the node's clock), serialised as received (no decode), so any message type the typestore knows is recorded.
The bag is complete once the node ends (Ctrl-C): marks still open are listed in the log.
"""

from __future__ import annotations

import queue
import sys
import threading
from pathlib import Path
from typing import Any

from hetskel_msgs.msg import Mark
from hetskel_msgs.srv import Mark as MarkService
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Writer

from hetskel_ros.ros.bag_types import make_typestore
from hetskel_ros.ros.bagtools.bag_io import STORAGES
from hetskel_ros.ros.msg_dict import message_class
from hetskel_ros.ros.node_main import read_only, run_node

MARK_TYPE = "hetskel_msgs/msg/Mark"
DISCOVERY_PERIOD_S = 0.5


class BagSink:
    """A rosbag2 writer owned by one thread (sqlite3 objects must stay in the thread that made them): callbacks of
    any executor thread queue their writes, ``close`` waits until everything is on disk."""

    def __init__(self, path: Path, storage: str, typestore: Any) -> None:
        self.typestore = typestore
        self.queue: queue.Queue = queue.Queue()
        self.connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.error: BaseException | None = None
        opened = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(path, storage, opened), daemon=True,
                                       name="teach_recorder-bag")
        self.thread.start()
        opened.wait()
        if self.error is not None:
            raise ValueError(f"bag {path}: cannot be created ({self.error})")

    def _run(self, path: Path, storage: str, opened: threading.Event) -> None:
        try:
            writer = Writer(path, version=9, storage_plugin=STORAGES[storage])
            writer.open()
        except Exception as exc:  # reported by __init__
            self.error = exc
            opened.set()
            return
        opened.set()
        while True:
            item = self.queue.get()
            if item is None:
                break
            topic, msgtype, stamp, data = item
            if topic not in self.connections:
                self.connections[topic] = writer.add_connection(topic, msgtype, typestore=self.typestore)
            if data is not None:
                writer.write(self.connections[topic], stamp, data)
        writer.close()

    def add(self, topic: str, msgtype: str) -> None:
        self.counts.setdefault(topic, 0)
        self.queue.put((topic, msgtype, 0, None))

    def write(self, topic: str, msgtype: str, stamp_ns: int, data: bytes) -> None:
        self.counts[topic] = self.counts.get(topic, 0) + 1
        self.queue.put((topic, msgtype, stamp_ns, data))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()


class TeachRecorder(Node):
    """Raw subscriptions of the configured topics -> one rosbag2 bag, plus the marks of ``~/mark``."""

    def __init__(self, node_name: str = "teach_recorder", **kwargs: Any) -> None:
        self.writer: BagSink | None = None  # destroy_node may run on a half-built node
        self._final_counts: dict[str, int] = {}
        super().__init__(node_name, **kwargs)
        fixed = read_only()
        self.output = Path(self.declare_parameter("output", "", fixed).value)
        topics = [t for t in self.declare_parameter("topics", ["skeletons"], fixed).value if t]
        storage = self.declare_parameter("storage", "mcap", fixed).value
        self.keys = [k for k in self.declare_parameter("keys", [""], fixed).value if k]
        self.key_track = int(self.declare_parameter("key_track", 0, fixed).value)
        if not str(self.output) or str(self.output) == ".":
            raise ValueError("parameter 'output' is required: the bag directory to create")
        if self.output.exists():
            raise ValueError(f"parameter 'output': {self.output} exists (give a new bag directory)")
        if storage not in STORAGES:
            raise ValueError(f"parameter 'storage' must be one of {sorted(STORAGES)}, got {storage!r}")
        self.topics = [self.resolve_topic_name(t) for t in topics]
        self.typestore = make_typestore()
        self.lock = threading.Lock()  # close() against callbacks of the executor thread
        self.writer = BagSink(self.output, storage, self.typestore)
        self.types: dict[str, str] = {}
        self.open_marks: dict[tuple[str, int], float] = {}
        self.marks_pub = self.create_publisher(Mark, "~/marks", QoSProfile(depth=50,
                                                                          reliability=ReliabilityPolicy.RELIABLE))
        self.marks_topic = self.marks_pub.topic_name
        self._connection(self.marks_topic, MARK_TYPE)
        self.mark_service = self.create_service(MarkService, "~/mark", self.on_mark)
        self.subscribed: dict[str, Any] = {}
        # wall time: under use_sim_time the ROS clock stands still until someone plays a /clock
        self.discovery_timer = self.create_timer(DISCOVERY_PERIOD_S, self.discover,
                                                 clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.discover()
        self.mark_lock = threading.Lock()  # the service and the terminal both mark
        if self.keys:
            threading.Thread(target=self._read_keys, daemon=True, name="teach_recorder-keys").start()
        self.get_logger().info(f"recording {self.topics} and marks on '{self.marks_topic}' to {self.output} "
                               f"({storage}); marks: service "
                               f"'{self.resolve_service_name(self.mark_service.srv_name)}'")

    @property
    def recorded(self) -> dict[str, int]:
        """Messages recorded per topic."""
        return dict(self.writer.counts) if self.writer is not None else dict(self._final_counts)

    def _connection(self, topic: str, msgtype: str) -> None:
        if topic not in self.types:
            self.types[topic] = msgtype
            self.writer.add(topic, msgtype)

    def discover(self) -> None:
        """Subscribe to each configured topic once the graph shows its type (raw: bytes as they come)."""
        types = dict(self.get_topic_names_and_types())
        for topic in self.topics:
            if topic in self.subscribed or not types.get(topic):
                continue
            msgtype = types[topic][0]
            if msgtype not in self.typestore.types:
                self.get_logger().error(f"topic '{topic}': type {msgtype} is unknown to the bag typestore; "
                                        f"not recorded")
                self.subscribed[topic] = None
                continue
            with self.lock:
                self._connection(topic, msgtype)
            qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)  # matches any publisher
            if topic.endswith("tf_static"):  # latched: sent once, before the recorder may have started
                qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.subscribed[topic] = self.create_subscription(message_class(msgtype), topic,
                                                              lambda data, t=topic: self.write(t, data), qos, raw=True)
            self.get_logger().info(f"recording '{topic}' ({msgtype})")
        if all(t in self.subscribed for t in self.topics):
            self.discovery_timer.cancel()

    def write(self, topic: str, data: bytes) -> None:
        with self.lock:
            if self.writer is None:
                return
            self.writer.write(topic, self.types[topic], self.get_clock().now().nanoseconds, bytes(data))

    def _read_keys(self) -> None:
        """Terminal marks: a line with the number of a ``keys`` label starts its example, the next one stops it."""
        menu = ", ".join(f"{i} = {label}" for i, label in enumerate(self.keys, start=1))
        print(f"teach_recorder: type a number and Enter to start, again to stop: {menu}", flush=True)
        for line in sys.stdin:
            choice = line.strip()
            if not choice:
                continue
            if not choice.isdigit() or not 1 <= int(choice) <= len(self.keys):
                print(f"teach_recorder: '{choice}' is none of {menu}", flush=True)
                continue
            label = self.keys[int(choice) - 1]
            request = MarkService.Request(label=label, track_id=self.key_track,
                                          start=(label, self.key_track) not in self.open_marks)
            print(f"teach_recorder: {self.on_mark(request, MarkService.Response()).message}", flush=True)

    def on_mark(self, request: Any, response: Any) -> Any:
        """Start or stop an example: published on ``~/marks`` and recorded; a mark that cannot pair is refused."""
        with self.mark_lock:
            return self._mark(request, response)

    def _mark(self, request: Any, response: Any) -> Any:
        label, track = request.label.strip(), int(request.track_id)
        key = (label, track)
        now = self.get_clock().now()
        if not label:
            response.success, response.message = False, "empty label"
            return response
        if request.start and key in self.open_marks:
            response.success, response.message = False, f"'{label}' (track {track}) is already started"
            return response
        if not request.start and key not in self.open_marks:
            response.success, response.message = False, f"'{label}' (track {track}) was not started"
            return response
        mark = Mark(label=label, start=bool(request.start), track_id=track)
        mark.header.stamp = now.to_msg()
        self.marks_pub.publish(mark)
        self.write(self.marks_topic, serialize_message(mark))
        if request.start:
            self.open_marks[key] = now.nanoseconds / 1e9
            response.message = f"started '{label}' (track {track})"
        else:
            began = self.open_marks.pop(key)
            response.message = f"stopped '{label}' (track {track}) after {now.nanoseconds / 1e9 - began:.2f} s"
        response.success = True
        self.get_logger().info(response.message)
        return response

    def close(self) -> None:
        """Finish the bag (metadata.yaml); idempotent."""
        with self.lock:
            if self.writer is None:
                return
            writer, self.writer = self.writer, None
            self._final_counts = dict(writer.counts)
            writer.close()
        if self.open_marks:
            self.get_logger().warning(f"marks started and never stopped (hetskel-teach will refuse them): "
                                      f"{sorted(self.open_marks)}")
        self.get_logger().info(f"bag {self.output} written: {self.recorded}")

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Console entry point ``teach_recorder``."""
    run_node("teach_recorder", TeachRecorder, args)


if __name__ == "__main__":
    main()
