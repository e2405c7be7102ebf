"""Node ``video_source``: a video file or a camera device as ``sensor_msgs/Image`` (the start of the RGB path).

``ros2 run hetskel_ros video_source --ros-args -p source:=walk.mp4`` (or ``python -m hetskel_ros.ros.video_source``).

Parameters:
- ``source``: a video file OpenCV reads (mp4, avi, ...) or a camera: its index (``0``) or device (``/dev/video0``).
- ``topic`` (``image``), ``frame_id`` (``camera``), ``encoding`` (``bgr8`` or ``rgb8``).
- ``rate``: frames per second; 0 means the file's own frame rate (a camera: as fast as it delivers).
- ``stamp``: ``file`` (files only, the default) stamps frame i with ``t0 + i / file_fps``, where t0 is the ROS
  clock when the first frame is sent and i counts on across loops: the stamps keep the video's own timing, so
  actions keep their speed downstream even when ``rate`` plays the file faster or slower. ``clock`` stamps each
  frame with the ROS clock when it is read (always used for cameras, whose frames are captured live).
- ``loop``: start the file again at its end (stamps keep increasing). ``max_frames``: stop after this many (0: no
  limit). ``wait_for_subscribers`` (files only: a camera is live and starts at once): hold the first frame until
  this many subscribers are matched (frames sent before DDS matched a subscriber are lost, e.g. while
  mediapipe_pose loads its model), at most ``wait_timeout_s``, then publish anyway.

At the end of a file (without ``loop``) or of ``max_frames`` the node logs the count and ``main`` exits with 0;
Ctrl-C ends it cleanly too. Publishing runs in its own thread, paced on the monotonic wall clock.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import rclpy
import rclpy.duration
from builtin_interfaces.msg import Time
from rclpy.node import Node
from sensor_msgs.msg import Image

from hetskel_ros.ros.image_codec import bgr_to_image
from hetskel_ros.ros.node_main import declare_config, run_node

STAMP_MODES = ("file", "clock")


@dataclass(frozen=True)
class VideoSourceConfig:
    """The node's parameters (names equal the ROS parameter names)."""

    source: str = ""
    topic: str = "image"
    frame_id: str = "camera"
    encoding: str = "bgr8"
    rate: float = 0.0
    stamp: str = "file"
    loop: bool = False
    max_frames: int = 0
    wait_for_subscribers: int = 1
    wait_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        """Errors name the parameter, so a wrong launch file is found at start-up."""
        checks: dict[str, tuple[bool, str]] = {
            "source": (bool(self.source), "a video file, a camera index such as 0, or a device such as /dev/video0"),
            "topic": (bool(self.topic), "a topic name"),
            "encoding": (self.encoding in ("bgr8", "rgb8"), "'bgr8' or 'rgb8'"),
            "rate": (self.rate >= 0.0 and math.isfinite(self.rate), ">= 0 (0: the file's frame rate)"),
            "stamp": (self.stamp in STAMP_MODES, "'file' or 'clock'"),
            "max_frames": (self.max_frames >= 0, ">= 0 (0: no limit)"),
            "wait_for_subscribers": (self.wait_for_subscribers >= 0, ">= 0"),
            "wait_timeout_s": (self.wait_timeout_s >= 0.0, ">= 0"),
        }
        for name, (ok, rule) in checks.items():
            if not ok:
                raise ValueError(f"parameter '{name}' = {getattr(self, name)!r} is invalid (needs {rule})")

    @property
    def is_camera(self) -> bool:
        return self.source.isdigit() or self.source.startswith("/dev/")

    @classmethod
    def declare(cls, node: Node) -> VideoSourceConfig:
        """Declare every field as a ROS parameter (defaults above) and read them back."""
        return declare_config(node, cls)


def open_capture(config: VideoSourceConfig) -> cv2.VideoCapture:
    """The opened cv2.VideoCapture for ``source``; ValueError naming the source when it cannot be read."""
    if config.is_camera:
        capture = cv2.VideoCapture(int(config.source) if config.source.isdigit() else config.source)
        if not capture.isOpened():
            raise ValueError(f"parameter 'source': camera '{config.source}' could not be opened")
        return capture
    path = Path(config.source).expanduser()
    if not path.is_file():
        raise ValueError(f"parameter 'source': video file '{path}' does not exist")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"parameter 'source': '{path}' could not be opened as a video (not a format OpenCV reads)")
    return capture


def time_msg(nanoseconds: int) -> Time:
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


class VideoSource(Node):
    """The node of the module docstring. ``finished`` is set when the video (or ``max_frames``) has ended."""

    def __init__(self, node_name: str = "video_source", **kwargs: Any) -> None:
        self._thread: threading.Thread | None = None  # destroy_node may run on a half-built node
        self._capture: cv2.VideoCapture | None = None
        super().__init__(node_name, **kwargs)
        self.config = VideoSourceConfig.declare(self)
        self._capture = open_capture(self.config)
        self.file_fps = 0.0 if self.config.is_camera else float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        no_fps = not self.config.is_camera and not (math.isfinite(self.file_fps) and self.file_fps > 0.0)
        if no_fps and (self.config.rate == 0.0 or self.config.stamp == "file"):
            raise ValueError(
                f"parameter 'source': '{self.config.source}' reports no frame rate; set 'rate' and stamp 'clock'"
            )
        self.rate = self.config.rate or self.file_fps  # 0 for a camera at its own pace
        self.stamp_mode = "clock" if self.config.is_camera else self.config.stamp
        self.publisher = self.create_publisher(Image, self.config.topic, 10)
        self.published = 0
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{node_name}-publisher", daemon=True)
        self._thread.start()
        what = f"camera {self.config.source}" if self.config.is_camera else f"'{self.config.source}'"
        pace = f"{self.rate:g} fps" if self.rate else "the camera's rate"
        looping = ", looping" if self.config.loop else ""
        self.get_logger().info(
            f"publishing {what} on '{self.publisher.topic_name}' ({self.config.encoding}, frame_id "
            f"'{self.config.frame_id}') at {pace}, stamps from {self.stamp_mode}{looping}"
        )

    def _read(self) -> np.ndarray | None:
        """The next BGR frame; at the end of a file, the first frame again when looping, else None."""
        assert self._capture is not None
        ok, frame = self._capture.read()
        if ok or self.config.is_camera or not self.config.loop:
            return frame if ok else None
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, frame = self._capture.read()
        return frame if ok else None

    def _wait_for_subscribers(self) -> None:
        if self.config.is_camera:
            return
        deadline = time.monotonic() + self.config.wait_timeout_s
        while self.publisher.get_subscription_count() < self.config.wait_for_subscribers:
            if time.monotonic() > deadline:
                self.get_logger().warning(
                    f"only {self.publisher.get_subscription_count()} of {self.config.wait_for_subscribers} "
                    f"subscriber(s) after {self.config.wait_timeout_s:g} s; publishing anyway"
                )
                return
            if self._stop.wait(0.01):
                return

    def _run(self) -> None:
        try:
            self._wait_for_subscribers()
            self._publish_frames()
        except Exception as exc:  # the video thread must end the node visibly, unless ROS shut down under it
            if self.context.ok():
                self.get_logger().error(f"video source stopped: {exc!r}")
        finally:
            self.finished.set()

    def _publish_frames(self) -> None:
        period = 1.0 / self.rate if self.rate else 0.0
        start_ns: int | None = None
        due = time.monotonic()
        while not self._stop.is_set():
            if self.config.max_frames and self.published >= self.config.max_frames:
                break
            frame = self._read()
            if frame is None:
                break
            now_ns = self.get_clock().now().nanoseconds
            if self.stamp_mode == "file":
                start_ns = now_ns if start_ns is None else start_ns
                stamp_ns = start_ns + round(self.published * 1e9 / self.file_fps)
            else:
                stamp_ns = now_ns
            msg = bgr_to_image(frame, self.config.encoding)
            msg.header.stamp = time_msg(stamp_ns)
            msg.header.frame_id = self.config.frame_id
            if not self.context.ok():
                break
            self.publisher.publish(msg)
            self.published += 1
            if period:
                due += period
                delay = due - time.monotonic()
                if delay < -period:  # reading fell behind by more than a frame: do not burst to catch up
                    due = time.monotonic()
                elif delay > 0 and self._stop.wait(delay):
                    break
        if not self.context.ok():  # Ctrl-C: the log would only fail to reach /rosout
            return
        self.publisher.wait_for_all_acked(rclpy.duration.Duration(seconds=2.0))  # the last frames, before exit
        if self.context.ok():  # a Ctrl-C during that wait shut the context down: the log would fail too
            self.get_logger().info(f"video source done: {self.published} frame(s) published")

    def destroy_node(self) -> None:
        """Stop the publishing thread and release the video, then the node."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=10.0)
            self._thread = None
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Console entry point ``video_source``: exits 0 when the video has ended."""
    run_node("video_source", VideoSource, args, done=lambda node: node.finished.is_set())


if __name__ == "__main__":
    main()
