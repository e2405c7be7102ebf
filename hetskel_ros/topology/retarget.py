"""Human mocap -> a humanoid robot's joint trajectories and base poses (the robot evaluation's input, and the robot
views a deployed head is fitted on: training/union.py).

Inverse kinematics by damped least squares over the project's own forward kinematics (hetskel_ros.topology.urdf,
analytic position Jacobian): pinocchio's PyPI wheel ``pin`` needs numpy >= 2, which this environment cannot take
(mediapipe 0.10.21 needs numpy < 2). No ROS here; ``hetskel-robot-eval`` publishes the result.

Retargeting keeps the human's bone DIRECTIONS and the robot's bone LENGTHS (the usual motion retargeting):
1. The base: the human pelvis frame (hip line; vertical up) becomes the robot's base orientation in ``odom``
   (z up, REP-103); its horizontal path is the human's (``travel="human"``) or scaled by robot / human leg length
   (``"legs"``), at the robot's standing pelvis height plus the human's scaled bobbing. This is the transform
   odom -> base the robot's odometry would publish.
2. Targets in the base frame: from the robot's own hips and shoulders (zero pose), each limb point is the previous
   one plus the robot's bone length along the human's bone direction (hip -> knee -> ankle, pelvis -> spine top ->
   shoulders -> elbow -> wrist). The torso lean goes to the robot's waist joints.
3. Per frame, joint values minimise the squared distance of the mapped links to those targets within the URDF's
   joint limits, with a small pull towards the previous frame (smooth) and towards zero (joints no target moves:
   wrists' roll, head, fingers), warm-started from the previous frame.
Data it is meant for: the Bandai Namco mocap's native joints (config/topologies/bandai_mocap.yaml), Y up, metres.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from hetskel_ros.topology import RobotMapping, load_robot, load_topology
from hetskel_ros.topology.urdf import UrdfKinematics, resolve_urdf_path

Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # (x, y, z) -> (x, -z, y)
# Human (bandai_mocap) joint of each canonical joint the targets use.
LIMBS = (("left_hip", "left_knee", "left_ankle"), ("right_hip", "right_knee", "right_ankle"),
         ("left_shoulder", "left_elbow", "left_wrist"), ("right_shoulder", "right_elbow", "right_wrist"))
ITERATIONS = 12
DAMPING = 1e-3
SMOOTH = 1e-2  # pull towards the previous frame's joint values (per radian squared, against metres squared)
REST = 2e-3  # pull towards zero
TRAVEL = ("human", "legs")  # the base path: the human's, or scaled by robot / human leg length


@dataclass(frozen=True)
class RobotMotion:
    """One clip on the robot: actuated joint values per frame and the base pose (odom -> base) per frame."""

    joint_names: tuple[str, ...]
    q: np.ndarray  # (T, num_joints) radians (metres for prismatic joints)
    base: np.ndarray  # (T, 4, 4) pose of the base frame in odom
    fps: float
    residual_m: float  # RMS distance of the targeted links to their targets over the clip


def link_kinematics(mapping: RobotMapping) -> UrdfKinematics:
    """Forward kinematics of every link the mapping names, from the URDF its file names (``urdf.package``)."""
    path = resolve_urdf_path(mapping.urdf_package, mapping.urdf_path)
    return UrdfKinematics(path.read_text(), list(mapping.link_names), source=str(path))


def robot_skeleton(motion: RobotMotion, kinematics: UrdfKinematics) -> np.ndarray:
    """(T, N, 3) positions in ``odom`` of the links ``kinematics`` was built for (a mapping's ``link_names``): what
    the joint_state adapter gives the recognizer from the clip's JointStates and its odom -> base transforms."""
    if tuple(kinematics.joint_names) != tuple(motion.joint_names):
        raise ValueError(f"the motion's joints {motion.joint_names[:3]}... are not the URDF's "
                         f"{tuple(kinematics.joint_names)[:3]}...")
    native = np.stack([kinematics.positions(q) for q in motion.q])  # (T, N, 3) in the base frame
    return np.einsum("tij,tnj->tni", motion.base[:, :3, :3], native) + motion.base[:, None, :3, 3]


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-9)


class Retargeter:
    """Retargets clips of one human topology onto one robot mapping (config/robots)."""

    def __init__(self, robot: str, human_topology: str = "bandai_mocap", travel: str = "human"):
        """``travel``: how the human pelvis path goes onto the robot: "human" (the human's path: a robot walking at
        human speed, as the G1 and TALOS controllers do, 1-2 m/s) or "legs" (scaled by robot / human leg length:
        the human's cadence with the robot's shorter stride)."""
        if travel not in TRAVEL:
            raise ValueError(f"travel must be one of {TRAVEL}, got {travel!r}")
        self.travel = travel
        self.mapping = load_robot(robot)
        path = resolve_urdf_path(self.mapping.urdf_package, self.mapping.urdf_path)
        self.canonical = {joint: link for link, joint in self.mapping.links.items()}
        targeted = [j for limb in LIMBS for j in limb]
        self.kinematics = UrdfKinematics(path.read_text(), [self.canonical[j] for j in targeted], source=str(path))
        self.targeted = targeted
        human = load_topology(human_topology)
        self.human_index = {canonical: human.joints.index(native) for native, canonical in human.canonical.items()}
        zero = dict(zip(targeted, self.kinematics.positions(np.zeros(self.kinematics.num_joints)), strict=True))
        self.zero = zero
        self.length = {(a, b): float(np.linalg.norm(zero[b] - zero[a])) for limb in LIMBS
                       for a, b in itertools.pairwise(limb)}
        self.mid_hips = 0.5 * (zero["left_hip"] + zero["right_hip"])
        self.mid_shoulders = 0.5 * (zero["left_shoulder"] + zero["right_shoulder"])
        self.spine = float(np.linalg.norm(self.mid_shoulders - self.mid_hips))
        self.shoulder_half = 0.5 * float(np.linalg.norm(zero["left_shoulder"] - zero["right_shoulder"]))
        self.leg = self.length[("left_hip", "left_knee")] + self.length[("left_knee", "left_ankle")]
        self.pelvis_height = float(-zero["left_ankle"][2]) + 0.05  # ankle joint about 5 cm above the sole
        self.moving = np.flatnonzero(np.abs(self._jacobian_mask()) > 0)

    def _jacobian_mask(self) -> np.ndarray:
        """How much each joint moves the targeted links, over a few configurations (at one, an axis may happen to
        pass through every target)."""
        kin = self.kinematics
        configurations = np.random.default_rng(0).uniform(kin.lower, kin.upper, (4, kin.num_joints))
        return sum(np.abs(kin.position_jacobian(q)[1]).sum(axis=(0, 1)) for q in configurations)

    def _human(self, frames: np.ndarray, joint: str) -> np.ndarray:
        return frames[:, self.human_index[joint]] @ Y_UP_TO_Z_UP.T

    def base_poses(self, frames: np.ndarray) -> np.ndarray:
        """(T, 4, 4) odom -> base from the human's pelvis (hip line, vertical up), scaled to the robot's legs."""
        left, right = self._human(frames, "left_hip"), self._human(frames, "right_hip")
        lateral = left - right
        lateral[:, 2] = 0.0
        y = _unit(lateral)
        z = np.broadcast_to(np.array([0.0, 0.0, 1.0]), y.shape)
        x = np.cross(y, z)
        poses = np.tile(np.eye(4), (len(frames), 1, 1))
        poses[:, :3, 0], poses[:, :3, 1], poses[:, :3, 2] = x, y, z
        centre = 0.5 * (left + right)
        human_leg = np.median(np.linalg.norm(self._human(frames, "left_knee") - left, axis=-1)
                              + np.linalg.norm(self._human(frames, "left_ankle") - self._human(frames, "left_knee"),
                                               axis=-1))
        scale = self.leg / max(float(human_leg), 1e-6)
        poses[:, :2, 3] = centre[:, :2] * (scale if self.travel == "legs" else 1.0)
        poses[:, 2, 3] = self.pelvis_height + (centre[:, 2] - np.median(centre[:, 2])) * scale
        return poses

    def targets(self, frames: np.ndarray, base: np.ndarray) -> np.ndarray:
        """(T, L, 3) target positions of the targeted links in the base frame (robot lengths, human directions)."""
        rotation_t = np.transpose(base[:, :3, :3], (0, 2, 1))

        def direction(a: str, b: str) -> np.ndarray:
            world = _unit(self._human(frames, b) - self._human(frames, a))
            return np.einsum("tij,tj->ti", rotation_t, world)

        targets: dict[str, np.ndarray] = {}
        count = len(frames)
        for hip in ("left_hip", "right_hip"):
            targets[hip] = np.broadcast_to(self.zero[hip], (count, 3))
        mid_human = 0.5 * (self._human(frames, "left_hip") + self._human(frames, "right_hip"))
        top_human = 0.5 * (self._human(frames, "left_shoulder") + self._human(frames, "right_shoulder"))
        spine = np.einsum("tij,tj->ti", rotation_t, _unit(top_human - mid_human))
        top = self.mid_hips + self.spine * spine
        across = direction("right_shoulder", "left_shoulder")
        targets["left_shoulder"] = top + self.shoulder_half * across
        targets["right_shoulder"] = top - self.shoulder_half * across
        for limb in LIMBS:
            for a, b in itertools.pairwise(limb):
                targets[b] = targets[a] + self.length[(a, b)] * direction(a, b)
        return np.stack([targets[j] for j in self.targeted], axis=1)

    @threadpool_limits.wrap(limits=1, user_api="blas")
    def retarget(self, frames: np.ndarray, fps: float) -> RobotMotion:
        """One human clip (T, N, 3) of the human topology's native joints -> the robot's motion.

        BLAS is held to one thread: each step solves a ~30x30 system, and OpenBLAS's threads on so small a solve
        spin against each other and against whatever else runs (20-50x slower on a busy 2-core machine; CI's
        robot-eval test hung in np.linalg.solve)."""
        frames = np.asarray(frames, dtype=np.float64)
        base = self.base_poses(frames)
        targets = self.targets(frames, base)
        kin = self.kinematics
        q = np.zeros(kin.num_joints)
        out = np.zeros((len(frames), kin.num_joints))
        squared = 0.0
        moving = self.moving
        for t in range(len(frames)):
            previous = q.copy()
            for _ in range(ITERATIONS if t else 4 * ITERATIONS):
                points, jacobian = kin.position_jacobian(q)
                error = (targets[t] - points).reshape(-1)
                j = jacobian.reshape(-1, kin.num_joints)[:, moving]
                lhs = j.T @ j + (DAMPING + SMOOTH + REST) * np.eye(len(moving))
                rhs = j.T @ error + SMOOTH * (previous[moving] - q[moving]) - REST * q[moving]
                q[moving] = np.clip(q[moving] + np.linalg.solve(lhs, rhs), kin.lower[moving], kin.upper[moving])
            out[t] = q
            squared += float(np.sum((targets[t] - kin.positions(q)) ** 2))
        residual = float(np.sqrt(squared / max(len(frames) * len(self.targeted), 1)))
        return RobotMotion(kin.joint_names, out, base, float(fps), residual)

    def cached(self, frames: np.ndarray, fps: float, path: Path | None) -> RobotMotion:
        """:meth:`retarget`, with the joint values kept in ``path`` (an npz; IK takes a few ms per frame) and read
        back from there when it exists; the base path (cheap, and it depends on ``travel``) is computed each time."""
        if path is not None and path.is_file():
            stored = np.load(path)
            return RobotMotion(tuple(str(n) for n in stored["joint_names"]), stored["q"],
                               self.base_poses(np.asarray(frames, np.float64)), float(stored["fps"]),
                               float(stored["residual_m"]))
        motion = self.retarget(frames, fps)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, joint_names=np.array(motion.joint_names), q=motion.q, fps=motion.fps,
                     residual_m=motion.residual_m)
        return motion
