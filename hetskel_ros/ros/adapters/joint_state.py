"""sensor_msgs/JointState of a humanoid robot + its URDF -> the robot's skeleton as an observation.

Forward kinematics (hetskel_ros.topology.urdf) gives the positions of the links the robot mapping
(config/robots/<robot>.yaml) names, in the URDF root link's frame (or the ``frame`` parameter's link); the mapping
turns them into the unified skeleton like any 3D topology, with the robot's ``up`` axis (REP-103: "+z").

Where the URDF comes from (parameter ``urdf_file``):
  ""         the ``robot_description`` topic (std_msgs/String, reliable + transient local, as robot_state_publisher
             offers it; parameter ``robot_description_topic``). Until it arrives, messages are dropped as "no_urdf".
  "package"  the URDF the robot file names (``urdf.package`` + ``urdf.path``, e.g. example-robot-data from PyPI).
  a path     that file.

Joint values: a JointState may carry any subset of the URDF's joints (robots often publish arms, legs and head
from separate controllers). Joints a message leaves out keep their last received value, starting from 0 (the
URDF's zero pose); fixed and mimic joints named in a message are accepted and ignored (mimic joints follow their
master). A name the URDF lacks drops the message ("unknown_joint_names", naming them): it means the wrong robot or
URDF, and guessing would silently produce a wrong skeleton.

Rates, namespaces and base motion (docs/inputs.md): the recognizer downsamples the stream by stamp to the model's
rate; ``joint_prefix`` strips a namespace in front of every name; the skeleton waits (bounded, queued, never blocking
the executor) for the transform odom -> base at its stamp (hetskel_ros.ros.adapters.transforms) and goes into the
odometry frame, or on in the base frame when the robot publishes none (diagnostics say base motion is missing).

Drop reasons: "no_urdf", "bad_urdf" (the last URDF received could not be used; the message says why),
"no_positions" (names but no positions), "wrong_joint_count" (names and positions differ in length),
"duplicate_joint_names", "unknown_joint_names", "non_finite", "transform_extrapolation" (the transform at the stamp
would extrapolate too far), "transform_queue_full". A JointState with no names and no positions is an
empty message, as every adapter reads one: nothing to see, not a drop.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any, ClassVar

import numpy as np

from hetskel_ros.ros.adapters.base import InputAdapter, InputConfig, InputRejected, Observation, stamp_seconds
from hetskel_ros.ros.adapters.transforms import BaseMotion, transform_source
from hetskel_ros.topology import RobotMapping, Topology, UnifiedSkeleton, load_robot, load_unified
from hetskel_ros.topology.urdf import UrdfError, UrdfKinematics, resolve_urdf_path

URDF_FROM_PACKAGE = "package"
_MAX_NAMED = 8  # joint names quoted in one rejection message


class _Loaded:
    """One URDF's kinematics and the joint values received for it (swapped as a whole when a new URDF arrives)."""

    def __init__(self, kinematics: UrdfKinematics):
        self.kinematics = kinematics
        self.q = np.zeros(kinematics.num_joints)


class JointStateConverter:
    """JointState messages of one robot -> observations; plain values only (no node), usable offline."""

    def __init__(self, robot: str | RobotMapping, frame: str = "", track_id: int = 0,
                 skeleton: UnifiedSkeleton | None = None, joint_prefix: str | None = None):
        """``joint_prefix``: a namespace in front of every joint name (None = the robot mapping's
        ``joint_prefix``); names without it are unknown."""
        self.mapping = robot if isinstance(robot, RobotMapping) else load_robot(robot)
        self.topology: Topology = self.mapping.as_topology()
        self.frame = frame
        self.joint_prefix = self.mapping.joint_prefix if joint_prefix is None else joint_prefix
        self.track_id = track_id
        self.skeleton = skeleton or load_unified()
        self.urdf_source = ""
        self._loaded: _Loaded | None = None
        self._urdf_error = ""
        self._lock = threading.Lock()  # set_urdf (a subscription callback) may run beside convert

    @property
    def name(self) -> str:
        """The robot mapping's name: the observations' topology (the recognizer resolves it with load_robot)."""
        return self.mapping.name

    @property
    def has_urdf(self) -> bool:
        return self._loaded is not None

    @property
    def kinematics(self) -> UrdfKinematics | None:
        loaded = self._loaded
        return loaded.kinematics if loaded is not None else None

    def set_urdf(self, urdf_xml: str, source: str = "URDF") -> None:
        """Use this URDF from now on (joint values restart at 0). UrdfError naming the fault if it cannot serve the
        mapping; messages are then dropped as "bad_urdf" until a usable one arrives."""
        try:
            kinematics = UrdfKinematics(urdf_xml, self.mapping.link_names, self.frame, source=source)
        except UrdfError as exc:
            with self._lock:
                self._loaded, self._urdf_error, self.urdf_source = None, f"robot '{self.name}': {exc}", source
            raise UrdfError(self._urdf_error) from None
        with self._lock:
            self._loaded, self._urdf_error, self.urdf_source = _Loaded(kinematics), "", source

    def load_urdf_file(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            error = f"robot '{self.name}': cannot read URDF file {path} ({exc.strerror or exc})"
            with self._lock:
                self._loaded, self._urdf_error, self.urdf_source = None, error, str(path)
            raise UrdfError(error) from None
        self.set_urdf(text, source=str(path))

    def load_package_urdf(self) -> None:
        """The URDF the robot file names (urdf.package + urdf.path)."""
        try:
            path = resolve_urdf_path(self.mapping.urdf_package, self.mapping.urdf_path)
        except UrdfError as exc:
            with self._lock:
                self._loaded, self._urdf_error = None, f"robot '{self.name}': {exc}"
            raise UrdfError(self._urdf_error) from None
        self.load_urdf_file(str(path))

    def convert(self, msg: Any) -> Observation | None:
        """The robot's skeleton, or None for an empty message (no names, no positions)."""
        if not msg.name and not len(msg.position):
            return None
        with self._lock:
            loaded, error = self._loaded, self._urdf_error
            if loaded is None:
                if error:
                    raise InputRejected("bad_urdf", error)
                waiting = f" (waiting for {self.urdf_source})" if self.urdf_source else ""
                raise InputRejected("no_urdf", f"robot '{self.name}': no URDF received yet{waiting}")
            q = self._update(loaded, list(msg.name), msg.position)
        kinematics = loaded.kinematics
        native = kinematics.positions(q)
        positions, mask = self.topology.to_unified(native, unified=self.skeleton)
        return Observation(track_id=self.track_id, stamp=stamp_seconds(msg.header), topology=self.name, dims=3,
                           positions=positions, mask=mask, frame_id=kinematics.frame, up=self.mapping.up)

    def _update(self, loaded: _Loaded, names: list[str], values: Any) -> np.ndarray:
        """Check the message and merge its values into the last known ones; returns a copy of the result."""
        if len(values) == 0:
            raise InputRejected("no_positions", f"robot '{self.name}': JointState names {len(names)} joints but "
                                                f"carries no positions")
        if len(values) != len(names):
            raise InputRejected("wrong_joint_count", f"robot '{self.name}': JointState has {len(names)} names but "
                                                     f"{len(values)} positions")
        if len(set(names)) != len(names):
            twice = sorted(name for name, count in Counter(names).items() if count > 1)
            raise InputRejected("duplicate_joint_names", f"robot '{self.name}': JointState names {_quote(twice)} "
                                                         f"more than once")
        kinematics = loaded.kinematics
        prefix = self.joint_prefix
        if prefix:
            unprefixed = [n for n in names if not n.startswith(prefix)]
            if unprefixed:
                raise InputRejected("unknown_joint_names", f"robot '{self.name}': joint name(s) {_quote(unprefixed)} "
                                                           f"lack the joint prefix '{prefix}'")
            names = [n[len(prefix):] for n in names]
        unknown = [n for n in names if n not in kinematics.all_joint_names]
        if unknown:
            raise InputRejected("unknown_joint_names", f"robot '{self.name}': the URDF ({kinematics.source}) has no "
                                                       f"joint(s) {_quote([prefix + n for n in unknown])}")
        array = np.asarray(values, dtype=np.float64)
        bad = ~np.isfinite(array)
        if bad.any():
            raise InputRejected("non_finite", f"robot '{self.name}': non-finite position for joint(s) "
                                              f"{_quote([n for n, b in zip(names, bad, strict=True) if b])}")
        index = kinematics.index
        for name, value in zip(names, array.tolist(), strict=True):
            slot = index.get(name)  # fixed and mimic joints have none
            if slot is not None:
                loaded.q[slot] = value
        return loaded.q.copy()


def _quote(names: list[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:_MAX_NAMED])
    return shown + (f" and {len(names) - _MAX_NAMED} more" if len(names) > _MAX_NAMED else "")


class RobotDescriptionListener:
    """Subscribes to a robot_description topic on an rclpy node and hands each URDF to a converter.

    QoS: reliable, transient local, depth 1, what robot_state_publisher offers, so a URDF published before this
    subscription existed still arrives. A newer URDF replaces the previous one (e.g. the robot was reconfigured).
    """

    def __init__(self, node: Any, converter: JointStateConverter, topic: str = "robot_description"):
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        self.node = node
        self.converter = converter
        self.received = 0
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.subscription = node.create_subscription(String, topic, self._on_description, qos)
        self.topic = self.subscription.topic_name
        converter.urdf_source = f"topic {self.topic}"

    def _on_description(self, msg: Any) -> None:
        try:
            self.converter.set_urdf(msg.data, source=f"topic {self.topic}")
        except UrdfError as exc:
            self.node.get_logger().error(f"{exc}; JointState messages are dropped until a usable URDF arrives")
            return
        finally:
            self.received += 1  # counted once handled, so a reader of the count sees the URDF's effect too
        kinematics = self.converter.kinematics
        if kinematics is not None:
            self.node.get_logger().info(
                f"robot '{self.converter.name}': URDF of '{kinematics.robot_name}' from {self.topic} "
                f"({kinematics.num_joints} actuated joints, positions in frame '{kinematics.frame}')")

    def close(self) -> None:
        if self.subscription is not None:
            self.node.destroy_subscription(self.subscription)
            self.subscription = None


class JointStateAdapter(InputAdapter):
    """sensor_msgs/JointState of the robot ``InputConfig.robot`` (config/robots), one observation per message,
    moved into the odometry frame by the transform tree when the robot publishes it (see the module doc)."""

    kind = "joint_state"
    message_type = "sensor_msgs/msg/JointState"
    parameters: ClassVar[dict[str, Any]] = {
        "urdf_file": "", "robot_description_topic": "robot_description", "frame": "", "track_id": 0,
        "joint_prefix": "",  # '' = the robot mapping's joint_prefix
        "downsample": True,  # keep the sample nearest each model frame time (robots publish at 200-500 Hz)
        "use_tf": True, "odom_frame": "", "base_frame": "",  # '' = the robot mapping's base_motion frames
        "transform_wait_s": 0.1, "transform_tolerance_s": 0.05,
    }
    drop_reasons = ("no_urdf", "bad_urdf", "no_positions", "wrong_joint_count", "duplicate_joint_names",
                    "unknown_joint_names", "non_finite", *BaseMotion.drop_reasons)
    poll_period_s = 0.02  # how often waiting joint states are checked against their transform's wait bound

    def __init__(self, config: InputConfig, node: Any | None = None, transforms: Any | None = None):
        """``transforms``: a lookup source for base motion when there is no node (offline: a TransformBuffer
        filled from a bag's /tf); with a node, tf2_ros or this package's own /tf subscription is used."""
        super().__init__(config, node)
        robot = config.robot or config.topology
        if not robot:
            raise ValueError(f"input '{config.name}' (joint_state) names no robot: set inputs.{config.name}.robot to "
                             f"a file of config/robots")
        params = {**self.parameters, **dict(config.params)}
        self.params = params
        mapping = load_robot(robot)
        base = mapping.base_motion
        self.base_frame = str(params["base_frame"]) or base.base_frame
        frame = str(params["frame"]) or self.base_frame
        if params["frame"] and self.base_frame and params["frame"] != self.base_frame:
            raise ValueError(f"input '{config.name}': 'frame' ({params['frame']}) and 'base_frame' "
                             f"({self.base_frame}) differ; the skeleton is expressed in the base frame, set one")
        if float(params["transform_wait_s"]) < 0 or float(params["transform_tolerance_s"]) < 0:
            raise ValueError(f"input '{config.name}': transform_wait_s and transform_tolerance_s must be >= 0")
        self.converter = JointStateConverter(mapping, frame=frame, track_id=int(params["track_id"]),
                                             joint_prefix=str(params["joint_prefix"]) or None)
        self.needed_by = base.needed_by
        self.listener: RobotDescriptionListener | None = None
        urdf_file = str(params["urdf_file"])
        try:
            if urdf_file == URDF_FROM_PACKAGE:
                self.converter.load_package_urdf()
            elif urdf_file:
                self.converter.load_urdf_file(urdf_file)
        except UrdfError as exc:  # messages are dropped as "bad_urdf" (counted, logged); the node keeps running
            self._log("error", f"input '{config.name}': {exc}; JointState messages are dropped as bad_urdf")
        if not urdf_file:
            if node is None:
                raise ValueError(f"input '{config.name}' (joint_state): no urdf_file and no node to receive "
                                 f"robot_description with")
            self.listener = RobotDescriptionListener(node, self.converter, str(params["robot_description_topic"]))
        self.transforms = None
        if bool(params["use_tf"]):
            if transforms is None and node is not None:
                transforms = transform_source(node, self._on_transforms)
            self.transforms = transforms
        self.base_motion = BaseMotion(self.transforms, str(params["odom_frame"]) or base.odom_frame,
                                      self.base_frame or "", float(params["transform_wait_s"]),
                                      float(params["transform_tolerance_s"]), what=f"input '{config.name}'")
        self._reported_missing = False

    @property
    def prompt_topology(self) -> str:
        """Prompts for this robot when the model has none: the input's own setting, else the robot file's."""
        return self.config.prompt_topology or self.converter.mapping.prompt_topology

    def dims(self) -> int | None:
        return 3

    def downsamples(self) -> bool:
        return bool(self.params["downsample"])

    def convert(self, msg: Any) -> list[Observation]:
        """Offline use without transforms: the skeleton in the base frame (no waiting)."""
        observation = self.converter.convert(msg)
        return [] if observation is None else [observation]

    def convert_parts(self, msg: Any) -> tuple[list[Observation], list[InputRejected]]:
        """This message's skeleton joins the queue for its transform (``release`` gives it when due)."""
        try:
            observation = self.converter.convert(msg)
        except InputRejected as exc:
            return [], [exc]
        if observation is None:
            return [], []
        if not self.base_frame:  # the URDF's root is the base: known once a URDF is loaded
            self.base_motion.base_frame = observation.frame_id
        return [], self.base_motion.push(observation, self._now(observation.stamp))

    def holding(self) -> int:
        return self.base_motion.queued

    def release(self, now: float) -> tuple[list[list[Observation]], list[InputRejected]]:
        out, rejected = self.base_motion.release(now)
        if self.base_motion.missing and not self._reported_missing and out:
            self._reported_missing = True
            needed = f" (needed by: {', '.join(self.needed_by)})" if self.needed_by else ""
            self._log("warning", f"input '{self.config.name}': base motion is missing: "
                                 f"{self.base_motion.missing_detail}; the skeleton stays in the base frame and "
                                 f"walking or turning look like on the spot{needed}")
        elif not self.base_motion.missing:
            self._reported_missing = False
        return [[observation] for observation in out], rejected

    def status(self) -> tuple[str, dict[str, str]]:
        motion = self.base_motion
        frames = f"'{motion.odom_frame}' -> '{motion.base_frame or 'URDF root'}'"
        values = {"base_motion": f"missing: {motion.missing_detail}" if motion.missing else f"from /tf {frames}",
                  "base_motion_needed_by": ", ".join(self.needed_by) or "none listed",
                  "with_base_motion": str(motion.with_base_motion),
                  "without_base_motion": str(motion.without_base_motion),
                  "waiting_for_transform": str(motion.queued),
                  "joint_prefix": self.converter.joint_prefix or "none"}
        warning = ""
        if motion.missing and motion.without_base_motion and self.transforms is not None:
            warning = f"base motion missing ({motion.missing_detail})"
        return warning, values

    def _on_transforms(self) -> None:
        if self.on_ready is not None:
            self.on_ready()

    def _now(self, fallback: float) -> float:
        if self.node is None:
            return fallback  # offline: the data's own clock
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _log(self, level: str, text: str) -> None:
        if self.node is not None:
            getattr(self.node.get_logger(), level)(text)
        else:
            getattr(logging.getLogger(__name__), level)(text)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.transforms is not None and hasattr(self.transforms, "close"):
            self.transforms.close()
            self.transforms = None
