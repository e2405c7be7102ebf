"""Node ``mediapipe_pose``: RGB images in, MediaPipe Pose skeletons out (the RGB input of the recognizer).

``ros2 run hetskel_ros mediapipe_pose`` (or ``python -m hetskel_ros.ros.mediapipe_pose``).

- Subscribes to ``sensor_msgs/Image`` on ``image_topic`` (rgb8, bgr8, mono8, rgba8, bgra8) and, unless empty,
  ``sensor_msgs/CompressedImage`` on ``compressed_topic`` (anything OpenCV decodes). ``image_qos``: ``reliable``
  (default; keep-last 10, never blocks a publisher) matches publishers with the default QoS (video_source, most
  drivers); ``best_effort`` also matches sensor-data publishers, but with Fast DDS's default configuration a
  best-effort image of ~1 MB sent to another process is nearly always lost (measured here: 1-2 of 60 640x480 frames
  arrived; 60 of 60 with reliable), so use it only with a tuned DDS or in the publisher's process.
- Runs MediaPipe Pose (``mp.solutions.pose``, ``model_complexity`` 1: the model the mediapipe 0.10.21 wheel bundles,
  so it runs offline; tracking mode, i.e. ``static_image_mode`` False). MediaPipe Pose finds one person.
- Publishes ``hetskel_msgs/SkeletonArray`` on ``skeletons_topic`` in the ``mediapipe_pose`` topology (33 image
  landmarks in pixels: x * width, y * height; visibility as confidence; dims 2; image size set) and, unless empty, on
  ``world_topic`` the 33 world landmarks (metres, hip-centred) in ``mediapipe_pose_world`` (dims 3). The header is
  the image's header (capture stamp, camera frame). A frame without a person gives an empty SkeletonArray.
- Track id: stays the same while the person is continuously detected; a new id when the person comes back after
  being absent (in a processed frame) for more than ``track_timeout_s`` of image time, or when stamps jump back.
- Never queues: callbacks only put the message into a single-slot latest-frame buffer that a worker thread drains.
  A frame replaced before the worker took it is dropped as ``behind``. Decoding happens in the worker, so skipped
  frames cost nothing. A corrupt or unsupported image is dropped and counted by reason, never a crash.
- ``/diagnostics`` every ``diagnostics_period_s``: input and processing rate, processing time (decode + MediaPipe +
  publish: p50/max over the period), frame counts, drops by reason (``behind``, ``corrupt_image``,
  ``unsupported_encoding``), the current track id.
"""

from __future__ import annotations

import array
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from hetskel_msgs.msg import Skeleton, SkeletonArray
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from hetskel_ros.ros.image_codec import RejectedImageError, compressed_to_rgb, image_to_rgb
from hetskel_ros.ros.node_main import declare_config, run_node

IMAGE_TOPOLOGY = "mediapipe_pose"
WORLD_TOPOLOGY = "mediapipe_pose_world"
LANDMARKS = 33
BEHIND = "behind"
ESTIMATOR_ERROR = "estimator_error"
DROP_REASONS = (BEHIND, "corrupt_image", "unsupported_encoding", ESTIMATOR_ERROR)
# mp.solutions.pose looks for these under mediapipe/modules/pose_landmark; it downloads missing ones (fails offline)
IMAGE_QOS = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
MODEL_FILES = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite", 2: "pose_landmark_heavy.tflite"}


@dataclass(frozen=True)
class PoseNodeConfig:
    """The node's parameters (names equal the ROS parameter names)."""

    image_topic: str = "image"
    image_qos: str = "reliable"  # or "best_effort" (module docstring)
    compressed_topic: str = "image/compressed"  # "" turns the CompressedImage subscription off
    skeletons_topic: str = "skeletons"  # recognize.launch.py rgb:=true remaps it to rgb/skeletons
    world_topic: str = "world_skeletons"  # "" turns the world skeletons off
    model_complexity: int = 1
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    smooth_landmarks: bool = True
    track_timeout_s: float = 0.5
    diagnostics_period_s: float = 1.0

    def __post_init__(self) -> None:
        """Errors name the parameter, so a wrong launch file is found at start-up."""
        checks: dict[str, tuple[bool, str]] = {
            "image_topic": (bool(self.image_topic), "a topic name"),
            "image_qos": (self.image_qos in IMAGE_QOS, "'reliable' or 'best_effort'"),
            "skeletons_topic": (bool(self.skeletons_topic), "a topic name"),
            "model_complexity": (self.model_complexity in MODEL_FILES, "0, 1 or 2"),
            "min_detection_confidence": (0.0 <= self.min_detection_confidence <= 1.0, "in [0, 1]"),
            "min_tracking_confidence": (0.0 <= self.min_tracking_confidence <= 1.0, "in [0, 1]"),
            "track_timeout_s": (self.track_timeout_s >= 0.0, ">= 0"),
            "diagnostics_period_s": (self.diagnostics_period_s > 0.0, "> 0"),
        }
        for name, (ok, rule) in checks.items():
            if not ok:
                raise ValueError(f"parameter '{name}' = {getattr(self, name)!r} is invalid (needs {rule})")

    @classmethod
    def declare(cls, node: Node) -> PoseNodeConfig:
        """Declare every field as a ROS parameter (defaults above) and read them back."""
        return declare_config(node, cls)


@dataclass(frozen=True)
class PoseResult:
    """One person's landmarks in one image."""

    image_xy: np.ndarray  # (33, 2) float32 pixels, origin top-left, y down
    world_xyz: np.ndarray | None  # (33, 3) float32 metres, hip-centred, y down (mediapipe_pose_world)
    visibility: np.ndarray  # (33,) float32 in [0, 1]


class PoseEstimator:
    """MediaPipe Pose on RGB frames of one video stream (tracking mode: consecutive frames help each other)."""

    def __init__(
        self,
        model_complexity: int = 1,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        smooth_landmarks: bool = True,
        static_image_mode: bool = False,
    ) -> None:
        import mediapipe as mp

        model = Path(mp.__file__).parent / "modules" / "pose_landmark" / MODEL_FILES[model_complexity]
        if not model.is_file():
            raise ValueError(
                f"parameter 'model_complexity' = {model_complexity}: {model} is missing (mediapipe 0.10.21 "
                "bundles only model_complexity 1; others are downloaded at run time, which needs the internet)"
            )
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=static_image_mode,
            model_complexity=model_complexity,
            smooth_landmarks=smooth_landmarks,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def process(self, rgb: np.ndarray) -> PoseResult | None:
        """Landmarks of the person in an (H, W, 3) uint8 RGB frame, or None when nobody is found."""
        height, width = rgb.shape[:2]
        rgb.flags.writeable = False  # lets MediaPipe read the frame without copying it
        result = self._pose.process(rgb)
        if result.pose_landmarks is None:
            return None
        image = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float32)
        world = None
        if result.pose_world_landmarks is not None:
            world = np.array([(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark], dtype=np.float32)
        xy = image[:, :2] * np.array([width, height], dtype=np.float32)
        return PoseResult(image_xy=xy, world_xyz=world, visibility=np.clip(image[:, 2], 0.0, 1.0))

    def close(self) -> None:
        """Release MediaPipe's graph."""
        self._pose.close()


class TrackIds:
    """Track id of the one person MediaPipe follows: kept while seen, renewed after a loss longer than a timeout.

    A loss is a processed frame without the person; frames skipped because the node was behind are not losses,
    so a slow machine does not churn ids. Ids start at 1 (0 means untracked in Skeleton.track_id).
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.current = 0  # 0 while nobody is seen
        self._last_id = 0
        self._last_seen: float | None = None
        self._lost = False

    def observe(self, stamp_s: float, person: bool) -> int:
        """Update with one processed frame (image stamp in seconds); the person's id, or 0 when nobody is seen."""
        if not person:
            self._lost = self._last_seen is not None
            self.current = 0
            return 0
        if self._is_new_person(stamp_s):
            self._last_id += 1
        self.current = self._last_id
        self._last_seen = stamp_s
        self._lost = False
        return self.current

    def _is_new_person(self, stamp_s: float) -> bool:
        """First sight, a loss longer than the timeout, stamps jumping back (bag or video loop), or a long silence."""
        if self._last_seen is None:
            return True
        gap = stamp_s - self._last_seen
        long_silence = 10.0 * max(self.timeout_s, 1.0)  # the input stopped: nobody can tell it is the same person
        return gap < -self.timeout_s or (self._lost and gap > self.timeout_s) or gap > long_silence


T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A one-item mailbox: ``put`` replaces what is there (returned, so the caller can count it as dropped)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False

    def put(self, item: T) -> T | None:
        with self._cond:
            replaced, self._item = self._item, item
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item (None on timeout or after :meth:`close`)."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return None if self._closed else item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class PoseStats:
    """Thread-safe counters for diagnostics: totals since start, rates and processing times per report period."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.processed = 0
        self.with_person = 0
        self.dropped: Counter[str] = Counter({reason: 0 for reason in DROP_REASONS})
        self._period_received = 0
        self._period_times_ms: list[float] = []
        self._period_start = time.monotonic()

    def count_received(self) -> None:
        with self._lock:
            self.received += 1
            self._period_received += 1

    def count_drop(self, reason: str) -> None:
        with self._lock:
            self.dropped[reason] += 1

    def count_processed(self, seconds: float, person: bool) -> None:
        with self._lock:
            self.processed += 1
            self.with_person += int(person)
            self._period_times_ms.append(seconds * 1e3)

    def report(self) -> dict[str, Any]:
        """Totals plus this period's rates and times; starts a new period."""
        with self._lock:
            now = time.monotonic()
            elapsed = max(now - self._period_start, 1e-9)
            times = np.asarray(self._period_times_ms)
            out: dict[str, Any] = {
                "frames_received": self.received,
                "frames_processed": self.processed,
                "frames_with_person": self.with_person,
                **{f"dropped_{reason}": count for reason, count in self.dropped.items()},
                "input_rate_hz": round(self._period_received / elapsed, 2),
                "rate_hz": round(len(times) / elapsed, 2),
                "processing_ms_p50": round(float(np.percentile(times, 50)), 2) if times.size else 0.0,
                "processing_ms_max": round(float(times.max()), 2) if times.size else 0.0,
                "period_received": self._period_received,
            }
            self._period_received = 0
            self._period_times_ms = []
            self._period_start = now
            return out


@dataclass(frozen=True)
class Frame:
    """An image message waiting for the worker."""

    msg: Image | CompressedImage
    compressed: bool


def skeleton_msg(
    header: Header, topology: str, track_id: int, positions: np.ndarray, confidence: np.ndarray, size: tuple[int, int]
) -> Skeleton:
    """One Skeleton message; positions (J, dims) in native order, size (width, height) or (0, 0) for 3D."""
    skeleton = Skeleton()
    skeleton.header = header
    skeleton.topology = topology
    skeleton.track_id = int(track_id)
    skeleton.dims = int(positions.shape[1])
    skeleton.positions = _float_array(positions)
    skeleton.confidence = _float_array(confidence)
    skeleton.image_width, skeleton.image_height = int(size[0]), int(size[1])
    return skeleton


def _float_array(values: np.ndarray) -> array.array:
    out = array.array("f")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return out


def stamp_seconds(header: Header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


class MediaPipePoseNode(Node):
    """The node of the module docstring; a worker thread runs MediaPipe so callbacks never block."""

    def __init__(self, node_name: str = "mediapipe_pose", **kwargs: Any) -> None:
        self._worker: threading.Thread | None = None  # destroy_node may run on a half-built node
        self._estimator: PoseEstimator | None = None
        super().__init__(node_name, **kwargs)
        self.config = PoseNodeConfig.declare(self)
        self.stats = PoseStats()
        self.track_ids = TrackIds(self.config.track_timeout_s)
        self._slot: LatestSlot[Frame] = LatestSlot()
        self._rejected_reported = 0
        self._estimator = PoseEstimator(
            self.config.model_complexity,
            self.config.min_detection_confidence,
            self.config.min_tracking_confidence,
            self.config.smooth_landmarks,
        )
        self.skeletons_pub = self.create_publisher(SkeletonArray, self.config.skeletons_topic, 10)
        self.world_pub = (
            self.create_publisher(SkeletonArray, self.config.world_topic, 10) if self.config.world_topic else None
        )
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # The callback is O(1), so the executor drains the reader and skipped frames are counted here as "behind".
        # Only when the whole process is starved of CPU does the reader's keep-last history overflow: DDS drops
        # those frames before the node sees them (Fast DDS reports no event for it), bounded memory either way.
        image_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=10, reliability=IMAGE_QOS[self.config.image_qos]
        )
        self.image_sub = self.create_subscription(
            Image, self.config.image_topic, lambda msg: self._receive(Frame(msg, False)), image_qos
        )
        self.compressed_sub = None
        if self.config.compressed_topic:
            self.compressed_sub = self.create_subscription(
                CompressedImage,
                self.config.compressed_topic,
                lambda msg: self._receive(Frame(msg, True)),
                image_qos,
            )
        self.diagnostics_timer = self.create_timer(self.config.diagnostics_period_s, self.publish_diagnostics)
        self._worker = threading.Thread(target=self._work, name=f"{node_name}-worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"MediaPipe Pose (model_complexity {self.config.model_complexity}) on '{self.image_topic_name}'"
            + (f" and '{self.compressed_sub.topic_name}'" if self.compressed_sub else "")
            + f" -> '{self.skeletons_pub.topic_name}'"
            + (f", '{self.world_pub.topic_name}'" if self.world_pub else "")
        )

    @property
    def image_topic_name(self) -> str:
        return self.image_sub.topic_name

    def _receive(self, frame: Frame) -> None:
        """Subscription callback: O(1), never blocks on MediaPipe; an unprocessed older frame is dropped."""
        self.stats.count_received()
        if self._slot.put(frame) is not None:
            self.stats.count_drop(BEHIND)

    def _work(self) -> None:
        while True:
            frame = self._slot.take()
            if frame is None:
                return
            try:
                self.process(frame)
            except RejectedImageError as exc:
                self.stats.count_drop(exc.reason)
                self.get_logger().warning(f"dropped an image: {exc}", throttle_duration_sec=5.0)
            except Exception as exc:  # never let one frame kill the worker; counted and logged
                if not self.context.ok():  # Ctrl-C shut ROS down under the frame in hand: nothing went wrong
                    return
                self.stats.count_drop(ESTIMATOR_ERROR)
                self.get_logger().error(f"dropped an image MediaPipe failed on: {exc!r}", throttle_duration_sec=5.0)

    def process(self, frame: Frame) -> None:
        """Decode, estimate, publish one frame (worker thread)."""
        started = time.perf_counter()
        rgb = compressed_to_rgb(frame.msg) if frame.compressed else image_to_rgb(frame.msg)
        assert self._estimator is not None
        result = self._estimator.process(rgb)
        header = frame.msg.header
        track_id = self.track_ids.observe(stamp_seconds(header), result is not None)
        height, width = rgb.shape[:2]
        image_array = SkeletonArray(header=header)
        world_array = SkeletonArray(header=header)
        if result is not None:
            image_array.skeletons.append(
                skeleton_msg(header, IMAGE_TOPOLOGY, track_id, result.image_xy, result.visibility, (width, height))
            )
            if result.world_xyz is not None:
                world_array.skeletons.append(
                    skeleton_msg(header, WORLD_TOPOLOGY, track_id, result.world_xyz, result.visibility, (0, 0))
                )
        if not self.context.ok():
            return
        self.skeletons_pub.publish(image_array)
        if self.world_pub is not None:
            self.world_pub.publish(world_array)
        self.stats.count_processed(time.perf_counter() - started, result is not None)

    def publish_diagnostics(self) -> None:
        """One DiagnosticStatus: WARN when images were rejected in this period or none arrived, else OK."""
        report = self.stats.report()
        rejected = report["dropped_corrupt_image"] + report["dropped_unsupported_encoding"]
        status = DiagnosticStatus(name=f"{self.get_name()}: mediapipe pose", hardware_id=self.image_topic_name)
        new_rejects = rejected - self._rejected_reported
        self._rejected_reported = rejected
        if report["period_received"] == 0:
            status.level, status.message = DiagnosticStatus.WARN, "no images received"
        elif new_rejects:
            status.level = DiagnosticStatus.WARN
            status.message = f"{new_rejects} image(s) rejected (corrupt or unsupported encoding)"
        else:
            status.level = DiagnosticStatus.OK
            status.message = f"{report['rate_hz']:g} Hz of {report['input_rate_hz']:g} Hz input"
        report["track_id"] = self.track_ids.current
        report["model_complexity"] = self.config.model_complexity
        status.values = [KeyValue(key=key, value=str(value)) for key, value in report.items()]
        self.diagnostics_pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()),
                                                     status=[status]))

    def destroy_node(self) -> None:
        """Stop the worker (it finishes the frame in hand), release MediaPipe, then the node."""
        if self._worker is not None:
            self._slot.close()
            self._worker.join(timeout=10.0)
            self._worker = None
        if self._estimator is not None:
            self._estimator.close()
            self._estimator = None
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Console entry point ``mediapipe_pose``."""
    run_node("mediapipe_pose", MediaPipePoseNode, args)


if __name__ == "__main__":
    main()
