"""hetskel_msgs/Skeleton and SkeletonArray of any topology on the search path (or a file) -> observations.

An input's ``topology`` is a name (config/topologies, or a layer of HETSKEL_CONFIG_PATH) or a path to a topology
file; the messages name it by its name (the file stem).

Checks, each a drop reason counted in diagnostics: the topology is known ("unknown_topology") and, when the input
configures one, the one expected ("topology_mismatch"); ``dims`` matches the topology ("wrong_dims"); positions
hold joints x dims values ("wrong_joint_count"); confidence is empty or one per joint ("wrong_confidence_count"); at
least one coordinate is finite ("non_finite") and at least one unified joint is seen ("no_joints"). NaN/inf joints
and joints below the confidence floor are missing, not errors. The recognizer then bounds the joints by the
topology's limits ("out_of_range"), for 2D by the image when ``image_width``/``image_height`` are given.
In a SkeletonArray each person is checked alone (one bad person does not drop the others); a track_id given twice
is "duplicate_track_id". An empty message (an array with nobody in it, a skeleton without positions) means nobody
is in view, as for every adapter: not a drop, not a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from hetskel_ros.topology import Topology, TopologyError, UnifiedSkeleton, list_topologies, load_topology, load_unified
from hetskel_ros.topology.topology import looks_like_path, shorten


class SkeletonConverter:
    """One Skeleton message -> one Observation (or InputRejected naming what is wrong)."""

    def __init__(self, expected_topology: str = "", min_confidence: float = 0.05,
                 skeleton: UnifiedSkeleton | None = None):
        self.min_confidence = min_confidence
        self.skeleton = skeleton or load_unified()
        self._topologies: dict[str, Topology] = {}
        self.expected = expected_topology
        if looks_like_path(expected_topology):
            # a topology file of the user's (a path in the parameter): messages name it by its name, the file stem
            try:
                topology = load_topology(expected_topology)
            except TopologyError as exc:
                raise InputRejected("unknown_topology", str(exc)) from None
            self.expected = topology.name
            self._topologies[topology.name] = topology
        elif expected_topology:
            self._topology(expected_topology)  # a wrong configuration fails at start-up, not per message

    def _topology(self, name: str) -> Topology:
        topology = self._topologies.get(name)
        if topology is None:
            if looks_like_path(name):
                raise InputRejected("unknown_topology", f"a skeleton names topology {shorten(name)!r}: messages give "
                                                        "names, not paths (the input's `topology` may be a path)")
            try:
                topology = load_topology(name)
            except TopologyError as exc:
                raise InputRejected("unknown_topology", str(exc)) from None
            self._topologies[name] = topology
        return topology

    def convert(self, msg: Any, header: Any | None = None) -> Observation | None:
        """``header``: the enclosing array's header, used when the skeleton's own stamp is zero. None: nobody (a
        skeleton without positions)."""
        if not len(msg.positions):
            return None
        name = msg.topology or self.expected
        if not name:
            raise InputRejected("unknown_topology", f"the skeleton names no topology and the input configures none "
                                                    f"(known: {', '.join(list_topologies())})")
        if self.expected and name != self.expected:
            raise InputRejected("topology_mismatch", f"skeleton of topology {shorten(name)!r} on an input "
                                                     f"configured for '{self.expected}'")
        topology = self._topology(name)
        if msg.dims != topology.dims:
            raise InputRejected("wrong_dims", f"skeleton says dims={msg.dims}, topology '{name}' is {topology.dims}D")
        positions = np.frombuffer(msg.positions, np.float32)
        expected = topology.num_joints * topology.dims
        if positions.size != expected:
            raise InputRejected("wrong_joint_count", f"topology '{name}' has {topology.num_joints} joints x "
                                                     f"{topology.dims} = {expected} values, got {positions.size}")
        confidence = None
        if len(msg.confidence):
            confidence = np.frombuffer(msg.confidence, np.float32)
            if confidence.size != topology.num_joints:
                raise InputRejected("wrong_confidence_count", f"topology '{name}' has {topology.num_joints} joints, "
                                                              f"got {confidence.size} confidences")
        if not np.isfinite(positions).any():
            raise InputRejected("non_finite", f"every coordinate of the '{name}' skeleton is NaN or inf")
        unified, mask = topology.to_unified(positions.reshape(topology.num_joints, topology.dims), confidence,
                                            unified=self.skeleton, min_confidence=self.min_confidence)
        if not mask.any():
            raise InputRejected("no_joints", f"no unified joint of the '{name}' skeleton is seen (all missing, "
                                             f"non-finite or below confidence {self.min_confidence})")
        stamp_source = msg.header if (msg.header.stamp.sec or msg.header.stamp.nanosec or header is None) else header
        frame_id = msg.header.frame_id or (header.frame_id if header is not None else "")
        image = (int(msg.image_width), int(msg.image_height))
        return Observation(track_id=int(msg.track_id), stamp=stamp_seconds(stamp_source), topology=name,
                           dims=topology.dims, positions=unified, mask=mask, frame_id=frame_id, up=topology.up,
                           image_size=image if topology.dims == 2 and min(image) > 0 else None)


SKELETON_REASONS = ("unknown_topology", "topology_mismatch", "wrong_dims", "wrong_joint_count",
                    "wrong_confidence_count", "non_finite", "no_joints")


class SkeletonAdapter(InputAdapter):
    """hetskel_msgs/Skeleton: one person per message."""

    kind = "skeleton"
    message_type = "hetskel_msgs/msg/Skeleton"
    parameters: ClassVar[Mapping[str, Any]] = {"min_confidence": 0.05}
    drop_reasons = SKELETON_REASONS

    def __init__(self, config: InputConfig, node: Any | None = None):
        super().__init__(config, node)
        self.converter = SkeletonConverter(config.topology, float(config.params.get("min_confidence", 0.05)))

    def convert(self, msg: Any) -> list[Observation]:
        observation = self.converter.convert(msg)
        return [] if observation is None else [observation]


class SkeletonArrayAdapter(InputAdapter):
    """hetskel_msgs/SkeletonArray: everyone one source saw in one frame; people are checked one by one."""

    kind = "skeleton_array"
    message_type = "hetskel_msgs/msg/SkeletonArray"
    parameters: ClassVar[Mapping[str, Any]] = {"min_confidence": 0.05}
    drop_reasons = (*SKELETON_REASONS, "duplicate_track_id")

    def __init__(self, config: InputConfig, node: Any | None = None):
        super().__init__(config, node)
        self.converter = SkeletonConverter(config.topology, float(config.params.get("min_confidence", 0.05)))

    def convert(self, msg: Any) -> list[Observation]:
        return all_or_first_rejection(self.convert_parts(msg))

    def convert_parts(self, msg: Any) -> tuple[list[Observation], list[InputRejected]]:
        observations: list[Observation] = []
        rejected: list[InputRejected] = []
        seen: set[int] = set()
        for skeleton in msg.skeletons:
            try:
                observation = self.converter.convert(skeleton, msg.header)
            except InputRejected as exc:
                rejected.append(exc)
                continue
            if observation is None:
                continue
            if observation.track_id and observation.track_id in seen:
                rejected.append(InputRejected("duplicate_track_id", f"track_id {observation.track_id} appears twice "
                                                                    f"in one skeleton array"))
                continue
            seen.add(observation.track_id)
            observations.append(observation)
        return observations, rejected
