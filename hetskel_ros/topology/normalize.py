"""Body-frame normalisation of unified skeletons: y-up, root-centred, torso-length scale, optional yaw.

Different sensors disagree on axes, units and where the person stands; a model trained on one must see the
others in the same frame. Subjects also face arbitrary directions (the mocap README measured that aligning the
shoulder line by the shortest 3D rotation left only 34% of sequences upright, while rotating about the vertical
first keeps all of them upright), so yaw alignment rotates about the vertical axis only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

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


def bone_parents(skeleton: UnifiedSkeleton) -> np.ndarray:
    """(J,) index of each unified joint's parent in the bone tree (-1 for the root), from config/unified.yaml."""
    parents = np.full(skeleton.num_joints, -1, dtype=np.int64)
    for parent, child in skeleton.bone_indices:
        parents[child] = parent
    return parents


def _tree_order(parents: np.ndarray) -> list[int]:
    """Joints ordered so that every parent comes before its children."""
    depth = np.zeros(len(parents), dtype=np.int64)
    for j in range(len(parents)):
        k = j
        while parents[k] >= 0:
            depth[j] += 1
            k = parents[k]
    return [int(j) for j in np.argsort(depth, kind="stable")]


def measured_bone_lengths(points: np.ndarray, mask: np.ndarray, skeleton: UnifiedSkeleton) -> np.ndarray:
    """(F, J) length of each joint's bone to its parent per frame (NaN where either end is missing or no parent)."""
    parents = bone_parents(skeleton)
    has_parent = parents >= 0
    lengths = np.full(np.asarray(mask).shape, np.nan)
    parent_of = np.where(has_parent, parents, 0)
    both = np.asarray(mask) & np.asarray(mask)[:, parent_of] & has_parent[None]
    diff = np.asarray(points, np.float64) - np.asarray(points, np.float64)[:, parent_of]
    lengths[both] = np.linalg.norm(diff, axis=-1)[both]
    return lengths


def rescale_bones(unified: np.ndarray, mask: np.ndarray, skeleton: UnifiedSkeleton,
                  template: np.ndarray) -> np.ndarray:
    """(T, J, 3) unified 3D joints -> the same poses with every bone at its ``template`` length (J,), per frame.

    Walking the bone tree from the root, each present joint keeps its direction from its nearest present ancestor
    and is placed at the template distance along it: the sum of the template lengths of the bones between them, so
    a missing joint scales from the nearest ancestor that is there. The root stays where it is, so whole-body
    motion is kept; a joint with no present ancestor is left as it is. Why: people, sensors' joint definitions and
    robots differ in proportions (a humanoid's limbs are short after torso scaling), which a model otherwise reads
    as different motion. Only for 3D: 2D keeps its foreshortening. NaN template entries (a bone no training data
    measured) keep the measured length.
    """
    points = np.asarray(unified, np.float64)
    present = np.asarray(mask, dtype=bool)
    if points.ndim != 3 or points.shape[2] != 3 or present.shape != points.shape[:2]:
        raise TopologyError(f"rescale_bones expects 3D unified (T, J, 3) and mask (T, J), got {points.shape} and "
                            f"{present.shape}")
    parents = bone_parents(skeleton)
    out = points.copy()
    anchor = np.full(present.shape, -1, dtype=np.int64)  # nearest present ancestor of each joint, per frame
    chain = np.zeros(present.shape)  # template distance to it
    for j in _tree_order(parents):
        p = parents[j]
        if p < 0:
            continue
        length = template[j]
        parent_present = present[:, p]
        anchor[:, j] = np.where(parent_present, p, anchor[:, p])
        chain[:, j] = np.where(parent_present, 0.0, chain[:, p]) + (length if np.isfinite(length) else np.nan)
        a = anchor[:, j]
        rows = np.flatnonzero(present[:, j] & (a >= 0))
        if not rows.size:
            continue
        ancestor = a[rows]
        offset = points[rows, j] - points[rows, ancestor]
        distance = np.linalg.norm(offset, axis=-1)
        target = chain[rows, j]
        scale = np.where((distance > 1e-9) & np.isfinite(target), target / np.maximum(distance, 1e-9), 1.0)
        out[rows, j] = out[rows, ancestor] + offset * scale[:, None]
    out[~present] = 0.0
    return out.astype(np.float32)


def template_lengths(clips: list[tuple[np.ndarray, np.ndarray]], skeleton: UnifiedSkeleton) -> np.ndarray:
    """(J,) median bone length to the parent over every frame of (positions, mask) 3D clips; NaN if never seen."""
    """Left and right bones get their common median, so a mirrored pose keeps its proportions."""
    if not clips:
        return np.full(skeleton.num_joints, np.nan)
    lengths = np.concatenate([measured_bone_lengths(p, m, skeleton) for p, m in clips])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: bones no clip measured
        medians = np.nanmedian(lengths, axis=0)
        for left, right in skeleton.flip_pairs:
            i, j = skeleton.index(left), skeleton.index(right)
            medians[i] = medians[j] = np.nanmedian(np.concatenate([lengths[:, i], lengths[:, j]]))
    return medians


@dataclass(frozen=True)
class Normalization:
    """How windows are normalised before the model sees them; stored in the bundle so that the node, the feature
    API and training apply exactly the same steps.

    bone_lengths: None (proportions as measured) or the template (J,) in metres that :func:`rescale_bones` puts
    every 3D skeleton onto before :func:`normalize` (the median over the training data; NaN: bone never measured).
    """

    yaw_align: bool = True
    bone_lengths: tuple[float, ...] | None = None

    @classmethod
    def from_dict(cls, values: dict, skeleton: UnifiedSkeleton) -> Normalization:
        lengths = values.get("bone_lengths")
        if lengths is not None:
            if not isinstance(lengths, dict):
                raise TopologyError(f"normalization 'bone_lengths' must map unified joints to metres, got {lengths!r}")
            unknown = sorted(set(lengths) - set(skeleton.names))
            if unknown:
                raise TopologyError(f"normalization 'bone_lengths' names joints {unknown} the unified skeleton lacks")
            lengths = tuple(float(lengths[n]) if lengths.get(n) is not None else float("nan") for n in skeleton.names)
        return cls(yaw_align=bool(values.get("yaw_align", True)), bone_lengths=lengths)

    def to_dict(self, skeleton: UnifiedSkeleton) -> dict:
        """For the bundle's meta.json: the template by joint name, null where no bone was measured."""
        out: dict = {"yaw_align": self.yaw_align, "root": skeleton.root, "torso": list(skeleton.torso)}
        if self.bone_lengths is not None:
            out["bone_lengths"] = {n: (round(v, 5) if np.isfinite(v) else None)
                                   for n, v in zip(skeleton.names, self.bone_lengths, strict=True)}
        return out

    def apply(self, frames: np.ndarray, mask: np.ndarray, skeleton: UnifiedSkeleton, *, up: str) -> np.ndarray:
        """One window (T, J, C) of unified joints in the sensor's axes -> the model's body-frame input."""
        dims = np.asarray(frames).shape[-1]
        if dims == 3 and self.bone_lengths is not None:
            frames = rescale_bones(frames, mask, skeleton, np.asarray(self.bone_lengths))
        return normalize(frames, mask, skeleton, up=up, yaw_align=self.yaw_align and dims == 3)
