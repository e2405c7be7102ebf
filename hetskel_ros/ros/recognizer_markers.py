"""visualization_msgs/MarkerArray for RViz: each 3D person's unified skeleton as lines and the label above them.

Markers are in the sensor frame the skeletons came in (header.frame_id), so RViz needs a TF to it (or that frame
as its fixed frame). 2D skeletons (pixels) are not drawn. Every marker has a short lifetime: a person who leaves
disappears from RViz without a DELETE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from visualization_msgs.msg import Marker, MarkerArray

from hetskel_ros.runtime.recognizer import Decision, TrackSnapshot
from hetskel_ros.topology import UnifiedSkeleton

LIFETIME = Duration(sec=1, nanosec=0)
LABEL_HEIGHT_M = 0.25  # above the highest joint


def _up_vector(up: str) -> np.ndarray:
    vector = np.zeros(3)
    vector["xyz".index(up[1])] = 1.0 if up[0] == "+" else -1.0
    return vector


class MarkerBuilder:
    """Stable marker ids per (input, track), so RViz updates a person's markers in place."""

    def __init__(self, skeleton: UnifiedSkeleton):
        self.bones = skeleton.bone_indices
        self._ids: dict[tuple[str, int], int] = {}

    def _id(self, key: tuple[str, int]) -> int:
        if key not in self._ids:
            if len(self._ids) > 10_000:  # ids are only for in-place updates: start over rather than grow
                self._ids.clear()
            self._ids[key] = len(self._ids)
        return self._ids[key]

    def build(self, snapshots: Sequence[TrackSnapshot], labels: Mapping[tuple[str, int], Decision],
              stamp) -> MarkerArray:
        """``labels``: the newest decision per (input, track_id)."""
        array = MarkerArray()
        for snap in snapshots:
            if snap.dims != 3:
                continue
            marker_id = self._id((snap.input, snap.track_id))
            lines = Marker(type=Marker.LINE_LIST, action=Marker.ADD, ns=f"skeleton/{snap.input}", id=marker_id,
                           lifetime=LIFETIME)
            lines.header.frame_id, lines.header.stamp = snap.frame_id, stamp
            lines.pose.orientation.w = 1.0
            lines.scale.x = 0.02
            lines.color.r, lines.color.g, lines.color.b, lines.color.a = 0.1, 0.8, 0.3, 1.0
            for a, b in self.bones:
                if snap.mask[a] and snap.mask[b]:
                    lines.points += [Point(x=float(p[0]), y=float(p[1]), z=float(p[2]))
                                     for p in (snap.positions[a], snap.positions[b])]
            array.markers.append(lines)
            decision = labels.get((snap.input, snap.track_id))
            if decision is None or not snap.mask.any():
                continue
            up = _up_vector(snap.up)
            present = snap.positions[snap.mask].astype(np.float64)
            top = present[np.argmax(present @ up)] + LABEL_HEIGHT_M * up
            text = Marker(type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, ns=f"label/{snap.input}", id=marker_id,
                          lifetime=LIFETIME, text=f"{snap.track_id}: {decision.label} ({decision.score:.2f})")
            text.header.frame_id, text.header.stamp = snap.frame_id, stamp
            text.pose.position = Point(x=float(top[0]), y=float(top[1]), z=float(top[2]))
            text.pose.orientation.w = 1.0
            text.scale.z = 0.15
            text.color.r = text.color.g = text.color.b = text.color.a = 1.0
            array.markers.append(text)
        return array
