"""Body-frame normalisation of unified skeletons: y-up, root-centred, torso-length scale, optional yaw.

Different sensors disagree on axes, units and where the person stands; a model trained on one must see the
others in the same frame. Subjects also face arbitrary directions (the mocap README measured that aligning the
shoulder line by the shortest 3D rotation left only 34% of sequences upright, while rotating about the vertical
first keeps all of them upright), so yaw alignment rotates about the vertical axis only.
"""

from __future__ import annotations

import numpy as np

from hetskel_ros.topology.errors import TopologyError
from hetskel_ros.topology.topology import UP_PATTERN
from hetskel_ros.topology.unified import UnifiedSkeleton

_AXES = {"x": 0, "y": 1, "z": 2}


def up_rotation(up: str) -> np.ndarray:
    """Proper rotation (det +1, so left stays left) taking the native ``up`` axis to +Y.

    "+y" -> identity; "-y" (camera frames such as k4abt, y down) -> 180 deg about X;
    "+z" (REP-103) -> -90 deg about X; and so on for the other axes.
    """
    if not UP_PATTERN.match(up):
        raise TopologyError(f"up must be an axis with sign such as '+y', '-y' or '+z', got {up!r}")
    sign = 1.0 if up[0] == "+" else -1.0
    axis = np.zeros(3)
    axis[_AXES[up[1]]] = sign
    target = np.array([0.0, 1.0, 0.0])
    if np.allclose(axis, target):
        return np.eye(3)
    if np.allclose(axis, -target):
        return np.diag([1.0, -1.0, -1.0])
    # Rodrigues for the 90-degree case: rotate about axis x target.
    k = np.cross(axis, target)
    k /= np.linalg.norm(k)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + K + K @ K  # sin = 1, 1 - cos = 1


def _first_present(mask: np.ndarray, *joints: int) -> int | None:
    """Index of the first frame where all ``joints`` are present, or None."""
    frames = np.flatnonzero(mask[:, list(joints)].all(axis=1))
    return int(frames[0]) if frames.size else None


def yaw_to_face_z(points: np.ndarray, mask: np.ndarray, skeleton: UnifiedSkeleton) -> np.ndarray:
    """Rotation about +Y that puts the first valid hip line (fallback: shoulders) along +X, so the body faces +Z.

    ``points`` must already be Y-up. With Y up, left = up x forward; a left-minus-right line along +X therefore
    means forward is +Z.
    """
    return _yaw_rotation(points, mask, skeleton, np.eye(3))


def _yaw_rotation(points: np.ndarray, mask: np.ndarray, skeleton: UnifiedSkeleton, to_y_up: np.ndarray) -> np.ndarray:
    """As :func:`yaw_to_face_z` for points that ``to_y_up`` turns Y-up (only the two points used are rotated)."""
    for left_name, right_name in (skeleton.hips, skeleton.shoulders):
        left, right = skeleton.index(left_name), skeleton.index(right_name)
        frame = _first_present(mask, left, right)
        if frame is None:
            continue
        line = to_y_up @ (np.asarray(points[frame, left], np.float64) - np.asarray(points[frame, right], np.float64))
        if not np.all(np.isfinite(line)) or np.hypot(line[0], line[2]) < 1e-9:
            continue
        angle = np.arctan2(line[2], line[0])
        c, s = np.cos(angle), np.sin(angle)
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return np.eye(3)


def normalize(
    unified: np.ndarray,
    mask: np.ndarray,
    skeleton: UnifiedSkeleton,
    *,
    up: str,
    yaw_align: bool = True,
) -> np.ndarray:
    """(T,J,C) unified positions -> (T,J,C) float32 in a body frame; missing joints (mask False) stay 0.

    1. Vertical becomes +Y: a proper rotation for 3D; a sign flip of y for 2D "-y" (image pixels, y down).
    2. Centre on the root joint of the first frame where it is present (whole-body translation such as walking
       is kept, it carries meaning).
    3. Scale by the median torso length over frames (root-to-neck-base), so people and units compare.
    4. Optionally (3D) rotate about +Y so the first valid hip line lies along +X and the body faces +Z.
    All-missing root or torso gives centre 0 or scale 1: never NaN. The steps are composed into one affine map
    (translate, then one matrix), so a whole data set normalises in one pass.
    """
    points = np.asarray(unified)
    present = np.asarray(mask, dtype=bool)
    if points.ndim != 3 or present.shape != points.shape[:2] or points.shape[1] != skeleton.num_joints:
        raise TopologyError(
            f"normalize expects unified (T, {skeleton.num_joints}, C) and mask (T, {skeleton.num_joints}), "
            f"got {points.shape} and {present.shape}"
        )
    dims = points.shape[2]
    if dims not in (2, 3):
        raise TopologyError(f"normalize expects 2D or 3D joints, got C={dims}")
    if not UP_PATTERN.match(up):
        raise TopologyError(f"up must be an axis with sign such as '+y', '-y' or '+z', got {up!r}")
    if dims == 3:
        linear = up_rotation(up)
    elif up[1] == "y":
        linear = np.diag([1.0, 1.0 if up == "+y" else -1.0])
    else:
        raise TopologyError(f"2D skeletons need up '+y' or '-y', got {up!r}")

    root = skeleton.root_index
    frame = _first_present(present, root)
    origin = points[frame, root].astype(np.float64) if frame is not None else np.zeros(dims)

    # rotations and flips keep lengths: the torso scale can be measured on the input
    base, top = skeleton.index(skeleton.torso[0]), skeleton.index(skeleton.torso[1])
    both = present[:, base] & present[:, top]
    lengths = np.linalg.norm(points[both, top].astype(np.float64) - points[both, base], axis=-1)
    lengths = lengths[np.isfinite(lengths) & (lengths > 1e-9)]
    if lengths.size:
        linear = linear / float(np.median(lengths))

    if yaw_align and dims == 3:
        linear = _yaw_rotation(points, present, skeleton, up_rotation(up)) @ linear

    result = (points.astype(np.float32) - origin.astype(np.float32)) @ linear.T.astype(np.float32)
    result[~present] = 0.0
    return result
