"""visualization_msgs/MarkerArray of the Azure Kinect ROS driver's body tracking -> one observation per body.

The driver (microsoft/Azure_Kinect_ROS_Driver, K4AROSDevice::getBodyMarker, topic ``body_tracking_data``)
publishes, for every tracked body, one SPHERE marker per k4abt joint: ``id = body_id * 100 + joint`` with the joint
index in k4abt_joint_id_t order (the order of config/topologies/azure_kinect.yaml), the position in metres (the SDK's
millimetres / 1000) in the depth camera frame (``header.frame_id``, e.g. ``depth_camera_link``: x right, y down,
z forward, hence the topology's up "-y"), the capture time as stamp and a 0.25 s lifetime. An empty array means
nobody is tracked. The body id is stable while k4abt tracks a person, so it is the track id.

Missing joints (a marker left out, as forks that drop low-confidence joints do) are missing in the skeleton, not
errors. An array without body markers (empty, or only DELETE/DELETEALL markers) means nobody is in view: not a drop.
Drop reasons, returned (never raised) by ``convert_parts`` so that the node counts them: "wrong_marker_type" (an
added marker that is not a SPHERE: not body tracking output), "bad_marker_id" (negative, or a joint index the
topology does not have), "duplicate_marker_id", "mixed_frames" (markers of one array in different frames),
"non_finite" (a NaN/inf position); per body, "no_joints" (none of its markers is a unified joint: the other bodies
are kept).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from hetskel_ros.ros.adapters.base import (
    InputAdapter,
    InputConfig,
    InputRejected,
    Observation,
    all_or_first_rejection,
    stamp_seconds,
)
from hetskel_ros.topology import Topology, UnifiedSkeleton, load_topology, load_unified

BODY_ID_STRIDE = 100  # the driver's marker id = body_id * 100 + joint
ADD, DELETE, DELETEALL = 0, 2, 3  # visualization_msgs/Marker actions (ADD and MODIFY are both 0)
SPHERE = 2  # visualization_msgs/Marker.SPHERE


class AzureMarkersConverter:
    """One driver MarkerArray -> observations (one per body, by body id); plain values only, usable offline."""

    def __init__(self, topology: str = "azure_kinect", body_id_stride: int = BODY_ID_STRIDE,
                 skeleton: UnifiedSkeleton | None = None):
        self.topology: Topology = load_topology(topology)
        if self.topology.dims != 3:
            raise ValueError(f"azure markers carry 3D positions; topology '{topology}' is {self.topology.dims}D")
        if body_id_stride < self.topology.num_joints:
            raise ValueError(f"body_id_stride {body_id_stride} is below the {self.topology.num_joints} joints of "
                             f"topology '{topology}': marker ids of two bodies would collide")
        self.stride = body_id_stride
        self.skeleton = skeleton or load_unified()

    def convert(self, msg: Any) -> list[Observation]:
        """Every body's observation; InputRejected for a bad array or the first body with no unified joint."""
        return all_or_first_rejection(self.convert_parts(msg))

    def convert_parts(self, msg: Any) -> tuple[list[Observation], list[InputRejected]]:
        """Observations and rejections: a bad array is one rejection, a body none of whose joints is a unified
        one another ("no_joints"); an array without body markers is nobody in view (no observation, no rejection)."""
        markers = [m for m in msg.markers if m.action not in (DELETE, DELETEALL)]
        if not markers:
            return [], []
        ids = np.fromiter((m.id for m in markers), dtype=np.int64, count=len(markers))
        xyz = np.array([(m.pose.position.x, m.pose.position.y, m.pose.position.z) for m in markers], dtype=np.float64)
        try:
            self._check(markers, ids, xyz)
        except InputRejected as exc:
            return [], [exc]
        bodies, joints = np.divmod(ids, self.stride)
        frame_id = markers[0].header.frame_id
        observations: list[Observation] = []
        rejected: list[InputRejected] = []
        for body in np.unique(bodies):  # ascending body id
            rows = np.flatnonzero(bodies == body)
            native = np.full((self.topology.num_joints, 3), np.nan, dtype=np.float32)
            native[joints[rows]] = xyz[rows]
            positions, mask = self.topology.to_unified(native, unified=self.skeleton)
            if not mask.any():
                rejected.append(InputRejected("no_joints", f"body {body}: none of its {rows.size} joint marker(s) is "
                                                           f"a joint of the unified skeleton"))
                continue
            stamp = max(stamp_seconds(markers[i].header) for i in rows)
            observations.append(Observation(track_id=int(body), stamp=stamp, topology=self.topology.name, dims=3,
                                            positions=positions, mask=mask, frame_id=frame_id,
                                            up=self.topology.up))
        return observations, rejected

    def _check(self, markers: list[Any], ids: np.ndarray, xyz: np.ndarray) -> None:
        not_sphere = [m for m in markers if m.type != SPHERE]
        if not_sphere:
            first = not_sphere[0]
            raise InputRejected("wrong_marker_type", f"marker '{first.ns}'/{first.id} has type {first.type}, body "
                                                     f"tracking joints are SPHERE ({SPHERE}) markers")
        bad = (ids < 0) | (ids % self.stride >= self.topology.num_joints)
        if bad.any():
            raise InputRejected("bad_marker_id", f"marker id(s) {ids[bad][:8].tolist()} are not body_id * "
                                                 f"{self.stride} + a joint index below {self.topology.num_joints} "
                                                 f"(topology '{self.topology.name}')")
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise InputRejected("duplicate_marker_id", f"marker id(s) {unique[counts > 1][:8].tolist()} appear more "
                                                       f"than once in one array")
        frames = {m.header.frame_id for m in markers}
        if len(frames) > 1:
            raise InputRejected("mixed_frames", f"markers of one array are in different frames {sorted(frames)}")
        finite = np.isfinite(xyz).all(axis=1)
        if not finite.all():
            raise InputRejected("non_finite", f"marker id(s) {ids[~finite][:8].tolist()} have a NaN or inf position")


class AzureMarkersAdapter(InputAdapter):
    """The Azure Kinect ROS driver's ``body_tracking_data`` (MarkerArray), topology azure_kinect by default."""

    kind = "azure_markers"
    message_type = "visualization_msgs/msg/MarkerArray"
    parameters: ClassVar[dict[str, Any]] = {"body_id_stride": BODY_ID_STRIDE}
    drop_reasons = ("wrong_marker_type", "bad_marker_id", "duplicate_marker_id", "mixed_frames", "non_finite",
                    "no_joints")

    def __init__(self, config: InputConfig, node: Any | None = None):
        super().__init__(config, node)
        stride = int({**self.parameters, **dict(config.params)}["body_id_stride"])
        self.converter = AzureMarkersConverter(config.topology or "azure_kinect", stride)

    @property
    def prompt_topology(self) -> str:
        return self.config.prompt_topology

    def dims(self) -> int | None:
        return 3

    def convert(self, msg: Any) -> list[Observation]:
        return self.converter.convert(msg)

    def convert_parts(self, msg: Any) -> tuple[list[Observation], list[InputRejected]]:
        return self.converter.convert_parts(msg)
