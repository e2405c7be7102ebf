"""The robot's base pose from the transform tree (/tf, /tf_static), looked up at a JointState's stamp.

A JointState carries no base motion: walking, running and turning would look like marching on the spot. The robot's
odometry already publishes it as the transform ``odom_frame`` -> ``base_frame``. Two sources answer the lookup:

- ``tf2_ros`` (a ROS install): its Buffer and TransformListener;
- the PyPI wheels have no tf2, so :class:`TfListener` subscribes to /tf and /tf_static itself (tf2_msgs/TFMessage;
  scripts/setup.sh builds that interface into the venv when no tf2_msgs is installed) and keeps a
  :class:`TransformBuffer`: per child frame its parent and a stamp-indexed history (the last ``cache_s`` seconds),
  translation interpolated linearly, rotation by slerp, as tf2 does. Static transforms hold at every stamp.

A lookup answers one of :data:`READY` (the transform at that stamp), :data:`WAIT` (the stamp is newer than the
newest transform of some edge: it may still come), :data:`UNCONNECTED` (the two frames are not linked by anything
received, e.g. the robot publishes no odometry) or :data:`TOO_OLD` (the stamp lies before the buffered history,
or beyond the newest transform by more than the tolerance once waiting is over).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hetskel_ros.runtime.observation import InputRejected

READY, WAIT, UNCONNECTED, TOO_OLD = "ready", "wait", "unconnected", "too_old"


@dataclass(frozen=True)
class Lookup:
    """The answer to one lookup: ``state``, the 4x4 transform when READY, and a detail naming what was missing."""

    state: str
    matrix: np.ndarray | None = None
    detail: str = ""


def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """3x3 rotation of a (normalised here) quaternion x, y, z, w (geometry_msgs order)."""
    q = np.array([x, y, z, w], dtype=np.float64)
    norm = np.linalg.norm(q)
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"quaternion {q.tolist()} has no direction")
    x, y, z, w = q / norm
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    dot = float(np.dot(a, b))
    if dot < 0.0:
        b, dot = -b, -dot
    if dot > 0.9995:
        out = a + t * (b - a)
        return out / np.linalg.norm(out)
    theta = math.acos(min(dot, 1.0))
    return (math.sin((1 - t) * theta) * a + math.sin(t * theta) * b) / math.sin(theta)


def _matrix(translation: np.ndarray, quaternion: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = quaternion_matrix(*quaternion)
    out[:3, 3] = translation
    return out


@dataclass
class _Edge:
    """One child frame's transforms from its parent, oldest first."""

    parent: str
    static: bool
    stamps: list[float] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    rotations: list[np.ndarray] = field(default_factory=list)  # unit quaternions x, y, z, w


class TransformBuffer:
    """Stamp-indexed transforms of a tf tree (ROS-free; fed by :class:`TfListener` or a test)."""

    def __init__(self, cache_s: float = 10.0):
        self.cache_s = cache_s
        self._edges: dict[str, _Edge] = {}

    def add(self, parent: str, child: str, stamp: float, translation: Any, rotation: Any, static: bool = False) -> None:
        """One transform: pose of ``child`` in ``parent`` at ``stamp``; ValueError for a non-finite or zero one."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        t = np.asarray(translation, dtype=np.float64).reshape(3)
        q = np.asarray(rotation, dtype=np.float64).reshape(4)
        norm = np.linalg.norm(q)
        if not (np.isfinite(t).all() and np.isfinite(norm) and norm > 1e-9 and math.isfinite(stamp)):
            raise ValueError(f"transform {parent} -> {child} at {stamp:.3f} is not finite or has a zero rotation")
        if not parent or not child or parent == child:
            raise ValueError(f"transform '{parent}' -> '{child}' needs two different, non-empty frames")
        edge = self._edges.get(child)
        if edge is None or edge.parent != parent or edge.static != static:
            edge = self._edges[child] = _Edge(parent, static)  # re-parented: the old history no longer applies
        if static:
            edge.stamps, edge.translations, edge.rotations = [stamp], [t], [q / norm]
            return
        at = bisect.bisect_left(edge.stamps, stamp)
        if at < len(edge.stamps) and edge.stamps[at] == stamp:
            edge.translations[at], edge.rotations[at] = t, q / norm
        else:
            edge.stamps.insert(at, stamp)
            edge.translations.insert(at, t)
            edge.rotations.insert(at, q / norm)
        cut = bisect.bisect_left(edge.stamps, edge.stamps[-1] - self.cache_s)
        if cut:
            del edge.stamps[:cut], edge.translations[:cut], edge.rotations[:cut]

    def _path(self, frame: str) -> list[str]:
        """``frame`` and its ancestors up to the root of what was received."""
        path = [frame]
        while path[-1] in self._edges and len(path) <= len(self._edges) + 1:
            path.append(self._edges[path[-1]].parent)
        return path

    def lookup(self, target: str, source: str, stamp: float, tolerance_s: float = 0.0) -> Lookup:
        """Pose of ``source`` in ``target`` at ``stamp`` (maps points in ``source`` into ``target``). A stamp up to
        ``tolerance_s`` past an edge's newest transform takes that newest one (WAIT otherwise: it may come)."""
        target, source = target.lstrip("/"), source.lstrip("/")
        up_source, up_target = self._path(source), self._path(target)
        common = next((f for f in up_source if f in up_target), None)
        if common is None:
            return Lookup(UNCONNECTED, detail=f"no transforms link '{target}' and '{source}'")
        result = np.eye(4)
        for frames, invert in ((up_source, False), (up_target, True)):
            chain = np.eye(4)
            for child in frames[:frames.index(common)]:
                edge = self._edges[child]
                sample = self._sample(edge, child, stamp, tolerance_s)
                if isinstance(sample, Lookup):
                    return sample
                chain = sample @ chain  # parent <- child, composed towards the common ancestor
            result = np.linalg.inv(chain) @ result if invert else chain
        return Lookup(READY, result)

    def _sample(self, edge: _Edge, child: str, stamp: float, tolerance_s: float) -> np.ndarray | Lookup:
        if edge.static:
            return _matrix(edge.translations[0], edge.rotations[0])
        stamps = edge.stamps
        if stamp > stamps[-1]:
            if stamp - stamps[-1] <= tolerance_s:
                return _matrix(edge.translations[-1], edge.rotations[-1])
            return Lookup(WAIT, detail=f"'{edge.parent}' -> '{child}' is known up to {stamps[-1]:.3f}, "
                                       f"{stamp - stamps[-1]:.3f} s before the stamp")
        if stamp < stamps[0]:
            if stamps[0] - stamp <= tolerance_s:
                return _matrix(edge.translations[0], edge.rotations[0])
            return Lookup(TOO_OLD, detail=f"'{edge.parent}' -> '{child}' is known from {stamps[0]:.3f} on, "
                                          f"{stamps[0] - stamp:.3f} s after the stamp")
        at = bisect.bisect_left(stamps, stamp)
        if stamps[at] == stamp or at == 0:
            return _matrix(edge.translations[at], edge.rotations[at])
        t0, t1 = stamps[at - 1], stamps[at]
        w = (stamp - t0) / (t1 - t0)
        translation = (1 - w) * edge.translations[at - 1] + w * edge.translations[at]
        return _matrix(translation, _slerp(edge.rotations[at - 1], edge.rotations[at], w))


def _stamp(header: Any) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def add_tf_message(buffer: TransformBuffer, msg: Any, static: bool) -> list[str]:
    """Every transform of a tf2_msgs/TFMessage into ``buffer`` (a live /tf message, or one read from a bag); the
    reasons of those it refused as malformed."""
    refused = []
    for transform in msg.transforms:
        t, r = transform.transform.translation, transform.transform.rotation
        try:
            buffer.add(transform.header.frame_id, transform.child_frame_id, _stamp(transform.header),
                       (t.x, t.y, t.z), (r.x, r.y, r.z, r.w), static=static)
        except ValueError as exc:
            refused.append(str(exc))
    return refused


class TfListener:
    """/tf and /tf_static -> a :class:`TransformBuffer`, on an rclpy node (the QoS tf2's listener uses).

    ``on_update`` runs after each /tf message (the JointState adapter releases messages that waited for it).
    A malformed transform is skipped and counted in ``rejected`` (it never reaches the buffer).
    """

    def __init__(self, node: Any, on_update: Callable[[], None] | None = None, cache_s: float = 10.0):
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from tf2_msgs.msg import TFMessage

        self.node = node
        self.buffer = TransformBuffer(cache_s)
        self.on_update = on_update
        self.received = 0
        self.rejected = 0
        self.rejected_detail = ""
        dynamic = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        static = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.subscriptions = [node.create_subscription(TFMessage, "/tf", lambda m: self._on_tf(m, False), dynamic),
                              node.create_subscription(TFMessage, "/tf_static", lambda m: self._on_tf(m, True),
                                                       static)]

    def _on_tf(self, msg: Any, static: bool) -> None:
        self.received += 1
        refused = add_tf_message(self.buffer, msg, static)
        if refused:
            self.rejected += len(refused)
            self.rejected_detail = refused[-1]
        if self.on_update is not None:
            self.on_update()

    def lookup(self, target: str, source: str, stamp: float, tolerance_s: float) -> Lookup:
        return self.buffer.lookup(target, source, stamp, tolerance_s)

    def close(self) -> None:
        for subscription in self.subscriptions:
            self.node.destroy_subscription(subscription)
        self.subscriptions = []


class Tf2Lookup:
    """The same lookups answered by tf2_ros (where a ROS install provides it)."""

    def __init__(self, node: Any, cache_s: float = 10.0):
        import tf2_ros
        from rclpy.duration import Duration

        self._tf2 = tf2_ros
        self.buffer = tf2_ros.Buffer(cache_time=Duration(seconds=cache_s))
        self.listener = tf2_ros.TransformListener(self.buffer, node, spin_thread=False)
        self.on_update: Callable[[], None] | None = None  # tf2 gives no hook: the adapter's timer polls

    def lookup(self, target: str, source: str, stamp: float, tolerance_s: float) -> Lookup:
        from rclpy.time import Time

        tf2 = self._tf2
        when = Time(nanoseconds=round(stamp * 1e9))
        try:
            found = self.buffer.lookup_transform(target, source, when)
        except (tf2.LookupException, tf2.ConnectivityException) as exc:
            return Lookup(UNCONNECTED, detail=str(exc))
        except tf2.ExtrapolationException as exc:
            try:
                latest = self.buffer.lookup_transform(target, source, Time())
            except tf2.TransformException:
                return Lookup(WAIT, detail=str(exc))
            newest = _stamp(latest.header)
            if stamp > newest:
                if stamp - newest <= tolerance_s:
                    found = latest
                else:
                    return Lookup(WAIT, detail=str(exc))
            else:
                return Lookup(TOO_OLD, detail=str(exc))
        t, r = found.transform.translation, found.transform.rotation
        return Lookup(READY, _matrix(np.array([t.x, t.y, t.z]), np.array([r.x, r.y, r.z, r.w])))

    def close(self) -> None:
        self.listener.unregister()


def transform_source(node: Any, on_update: Callable[[], None] | None) -> TfListener | Tf2Lookup:
    """tf2_ros where it is importable, else this module's own /tf + /tf_static subscription."""
    try:
        import tf2_ros  # noqa: F401
    except ImportError:
        return TfListener(node, on_update)
    return Tf2Lookup(node)


class BaseMotion:
    """Puts a robot's skeleton into the odometry frame: each observation waits (bounded) for the transform
    ``odom_frame`` -> ``base_frame`` at its stamp, in arrival order, so the executor never blocks.

    ``push`` queues an observation (positions in ``base_frame``); ``release(now)`` returns those that are due:
    - the transform at the stamp is known: positions moved into ``odom_frame`` (base motion kept);
    - the two frames are linked by nothing received (the robot publishes no odometry) once ``wait_s`` has passed, or
      at once when that is already known: the observation as it is, in ``base_frame`` (``missing`` says so);
    - the stamp lies before the buffered history, or past the newest transform by more than ``tolerance_s`` once
      ``wait_s`` has passed: dropped as "transform_extrapolation" (the lookup would extrapolate too far);
    - more than ``max_queued`` waiting: the oldest dropped as "transform_queue_full".
    Without a ``source`` (base motion turned off) every observation passes at once, ``missing`` set.
    """

    drop_reasons = ("transform_extrapolation", "transform_queue_full")

    def __init__(self, source: Any, odom_frame: str, base_frame: str, wait_s: float = 0.1,
                 tolerance_s: float = 0.05, max_queued: int = 4096, what: str = "robot"):
        self.source = source
        self.odom_frame = odom_frame
        self.base_frame = base_frame
        self.wait_s = wait_s
        self.tolerance_s = tolerance_s
        self.max_queued = max_queued
        self.what = what
        self._queue: deque[tuple[Any, float]] = deque()
        self.missing = source is None  # True while observations pass without base motion
        self.missing_detail = "base motion is turned off (use_tf: false)" if source is None else ""
        self.with_base_motion = 0
        self.without_base_motion = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def push(self, observation: Any, now: float) -> list[Any]:
        """Queue one observation; returns rejections of observations that had to leave the queue for it."""
        rejected = []
        if len(self._queue) >= self.max_queued:
            dropped, _ = self._queue.popleft()
            rejected.append(InputRejected("transform_queue_full", f"{self.what}: {self.max_queued} joint states "
                                          f"waiting for '{self.odom_frame}' -> '{self.base_frame}'; the oldest "
                                          f"(stamp {dropped.stamp:.3f}) is dropped"))
        self._queue.append((observation, now))
        return rejected

    def release(self, now: float) -> tuple[list[Any], list[Any]]:
        """The observations due now, in arrival order, and rejections (see the class doc)."""
        out, rejected = [], []
        while self._queue:
            observation, arrived = self._queue[0]
            waited = now - arrived >= self.wait_s
            if self.source is None:
                answer = Lookup(UNCONNECTED)
            else:
                answer = self.source.lookup(self.odom_frame, self.base_frame, observation.stamp,
                                            self.tolerance_s if waited else 0.0)
            if answer.state == READY:
                out.append(self._moved(observation, answer.matrix))
            elif answer.state == UNCONNECTED and (waited or self.missing):
                out.append(self._as_is(observation, answer.detail))
            elif answer.state == TOO_OLD or (answer.state == WAIT and waited):
                rejected.append(InputRejected("transform_extrapolation", f"{self.what}: no transform "
                                              f"'{self.odom_frame}' -> '{self.base_frame}' at stamp "
                                              f"{observation.stamp:.3f} within {self.tolerance_s:g} s: "
                                              f"{answer.detail}"))
            else:
                break  # the transform may still come: later messages wait behind this one (order is kept)
            self._queue.popleft()
        return out, rejected

    def _moved(self, observation: Any, matrix: np.ndarray) -> Any:
        self.missing, self.missing_detail = False, ""
        self.with_base_motion += 1
        positions = np.asarray(observation.positions, np.float64)
        moved = positions @ matrix[:3, :3].T + matrix[:3, 3]
        moved[~np.asarray(observation.mask, bool)] = 0.0
        return replace(observation, positions=moved.astype(np.float32), frame_id=self.odom_frame)

    def _as_is(self, observation: Any, detail: str) -> Any:
        if not self.missing:
            self.missing = True
            self.missing_detail = (f"no transform '{self.odom_frame}' -> '{self.base_frame}' received"
                                   + (f" ({detail})" if detail else ""))
        self.without_base_motion += 1
        return observation
