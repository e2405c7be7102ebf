"""Forward kinematics of a URDF for the links a robot mapping names (the JointState adapter's geometry).

The URDF is parsed by yourdfpy (PyPI, maintained; pinocchio's PyPI wheel ``pin`` needs numpy >= 2, which this
environment cannot take: mediapipe 0.10.21 needs numpy < 2). yourdfpy's own FK updates a trimesh scene graph for
every joint (about 7 ms per message for the G1 or TALOS), so the per-message work here is a precomputed chain: only
the joints between the root and the mapped links, their fixed origins taken from yourdfpy's model, batched
Rodrigues rotations and one 4x4 product per joint (a whole JointState -> observation: 0.17 ms for the G1, 0.26 ms
for TALOS on this machine's 2 shared cores). test/test_adapters_robot.py checks every link against yourdfpy's
``URDF.get_transform`` for random configurations (largest difference 3e-16 m).

Joint semantics follow the URDF spec as yourdfpy reads it: revolute/continuous rotate about the (normalised) axis,
prismatic translate along it, a mimic joint takes ``multiplier * q[master] + offset``, and fixed, floating and planar
joints contribute only their origin (a JointState carries no base pose).
"""

from __future__ import annotations

import contextlib
import io
import site
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_MOVING = {"revolute": 0, "continuous": 0, "prismatic": 1}


class UrdfError(ValueError):
    """A URDF that cannot serve a robot mapping; the message names the source and the link or joint at fault."""


@dataclass(frozen=True)
class _ChainJoint:
    parent_slot: int  # index into the transforms computed so far (0 = the root link)
    origin: np.ndarray  # (4, 4) parent link -> joint frame at q = 0
    axis: np.ndarray  # (3,) unit axis in the joint frame
    kind: int  # 0 revolute/continuous, 1 prismatic, 2 fixed (or floating/planar: origin only)
    source: int  # index into the actuated q vector, -1 when fixed
    multiplier: float = 1.0  # mimic: q = multiplier * q[source] + offset
    offset: float = 0.0


class UrdfKinematics:
    """Positions of chosen links in the root link's frame (or ``frame``'s) from actuated joint values."""

    def __init__(self, urdf_xml: str, links: Sequence[str], frame: str = "", source: str = "URDF"):
        """``links``: the links whose positions :meth:`positions` returns, in that order. ``frame``: a link to
        express them in ('' = the URDF root). ``source`` names the URDF in error messages (a path or a topic)."""
        self.source = source
        self.model = _load(urdf_xml, source)
        self.robot_name = self.model.robot.name or ""
        self.root = _root_link(self.model, source)
        self.frame = frame or self.root
        joints_by_child = {j.child: j for j in self.model.robot.joints}
        missing = [name for name in [*links, self.frame] if name not in self.model.link_map]
        if missing:
            raise UrdfError(f"{source} (robot '{self.robot_name}') has no link(s) {', '.join(dict.fromkeys(missing))}")
        # Actuated joints: what a JointState sets (mimic joints follow their master, fixed ones have no value).
        self.joint_names: tuple[str, ...] = tuple(self.model.actuated_joint_names)
        self.index = {name: i for i, name in enumerate(self.joint_names)}
        self.all_joint_names: frozenset[str] = frozenset(j.name for j in self.model.robot.joints)
        limits = [(j.limit.lower, j.limit.upper) if j.limit is not None else (None, None)
                  for j in self.model.actuated_joints]
        self.lower = np.array([-np.pi if lo is None else lo for lo, _ in limits], dtype=np.float64)
        self.upper = np.array([np.pi if hi is None else hi for _, hi in limits], dtype=np.float64)
        self.links = tuple(links)
        self._chain, slot_of_link = self._build_chain([*links, self.frame], joints_by_child)
        self._link_slots = np.array([slot_of_link[name] for name in links], dtype=np.int64)
        self._frame_slot = slot_of_link[self.frame]
        self._stack_chain()

    def _stack_chain(self) -> None:
        """The chain as arrays, so one message costs a few batched numpy calls plus one 4x4 product per joint."""
        chain = self._chain
        self._parents = [j.parent_slot for j in chain]
        self._origins = np.array([j.origin for j in chain]).reshape(-1, 4, 4)
        moving = np.array([j.kind != 2 for j in chain], dtype=bool)
        rotating = np.array([j.kind == 0 for j in chain], dtype=bool)
        self._sources = np.array([max(j.source, 0) for j in chain], dtype=np.int64)
        self._multipliers = np.where(moving, [j.multiplier for j in chain], 0.0) if chain else np.zeros(0)
        self._offsets = np.where(moving, [j.offset for j in chain], 0.0) if chain else np.zeros(0)
        axes = np.array([j.axis for j in chain]).reshape(-1, 3)
        x, y, z = axes.T
        zero = np.zeros_like(x)
        skew = np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], 1)
        self._skew = skew * rotating[:, None, None]  # (K, 3, 3); 0 for prismatic and fixed: no rotation
        self._skew2 = self._skew @ self._skew
        self._slide = axes * (moving & ~rotating)[:, None]  # (K, 3); translation per unit q for prismatic

    def _build_chain(self, targets: Iterable[str], joints_by_child: dict) -> tuple[list[_ChainJoint], dict[str, int]]:
        """Joints from the root to every target, parents before children; slot 0 is the root's identity."""
        slot_of_link = {self.root: 0}
        chain: list[_ChainJoint] = []
        for target in targets:
            path: list = []
            link = target
            while link not in slot_of_link:
                joint = joints_by_child.get(link)
                if joint is None:  # a second root: the URDF is a forest, not a tree
                    raise UrdfError(f"{self.source}: link '{link}' is not connected to the root link '{self.root}'")
                path.append(joint)
                link = joint.parent
            for joint in reversed(path):
                chain.append(self._chain_joint(joint, slot_of_link[joint.parent]))
                slot_of_link[joint.child] = len(chain)
        return chain, slot_of_link

    def _chain_joint(self, joint, parent_slot: int) -> _ChainJoint:
        origin = np.eye(4) if joint.origin is None else np.asarray(joint.origin, dtype=np.float64)
        kind = _MOVING.get(joint.type, 2)
        axis = np.asarray(joint.axis if joint.axis is not None else (1.0, 0.0, 0.0), dtype=np.float64)
        if kind != 2:
            norm = np.linalg.norm(axis)
            if not np.isfinite(norm) or norm == 0:
                raise UrdfError(f"{self.source}: joint '{joint.name}' has a zero or invalid axis {axis.tolist()}")
            axis = axis / norm
        source, multiplier, offset = -1, 1.0, 0.0
        if kind != 2:
            if joint.mimic is not None:
                # yourdfpy (and ROS) treat a mimic of a non-actuated joint as 0 + offset.
                source = self.index.get(joint.mimic.joint, -1)
                multiplier, offset = float(joint.mimic.multiplier), float(joint.mimic.offset)
                if source < 0:
                    kind, origin = 2, origin @ _motion(kind=_MOVING[joint.type], axis=axis, q=offset)
            else:
                source = self.index[joint.name]
        return _ChainJoint(parent_slot, origin, axis, kind, source, multiplier, offset)

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def transforms(self, q: np.ndarray) -> np.ndarray:
        """(K+1, 4, 4) root -> link transforms of the chain's links for actuated values ``q`` (num_joints,)."""
        count = len(self._chain)
        values = self._multipliers * q[self._sources] + self._offsets if count else np.zeros(0)
        motion = np.zeros((count, 4, 4))
        # Rodrigues (eq. of the URDF revolute joint): R = I + sin(q) K + (1 - cos(q)) K^2
        motion[:, :3, :3] = (np.eye(3) + np.sin(values)[:, None, None] * self._skew
                             + (1.0 - np.cos(values))[:, None, None] * self._skew2)
        motion[:, :3, 3] = values[:, None] * self._slide
        motion[:, 3, 3] = 1.0
        local = self._origins @ motion
        out = np.empty((count + 1, 4, 4))
        out[0] = np.eye(4)
        for slot, parent in enumerate(self._parents, start=1):
            out[slot] = out[parent] @ local[slot - 1]
        return out

    def position_jacobian(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(L, 3) positions of ``links`` in the root frame and their (L, 3, num_joints) derivatives by the actuated
        joint values (inverse kinematics: hetskel_ros.topology.retarget). Only the root frame: ``frame`` is ignored."""
        if not hasattr(self, "_pairs"):
            self._pairs = self._link_joint_pairs()
        rows, joints, sources, multipliers, prismatic = self._pairs
        transforms = self.transforms(np.asarray(q, dtype=np.float64))
        points = transforms[self._link_slots, :3, 3]
        frames = transforms[joints + 1]  # each joint's child link: its axis and origin after the motion
        axes = np.einsum("kij,kj->ki", frames[:, :3, :3], self._axes[joints])
        columns = np.where(prismatic[:, None], axes, np.cross(axes, points[rows] - frames[:, :3, 3]))
        jacobian = np.zeros((len(self.links), self.num_joints, 3))
        np.add.at(jacobian, (rows, sources), multipliers[:, None] * columns)
        return points, jacobian.transpose(0, 2, 1)

    def _link_joint_pairs(self) -> tuple[np.ndarray, ...]:
        """(link row, chain joint) for every moving joint between the root and each link, as arrays."""
        self._axes = np.array([j.axis for j in self._chain]).reshape(-1, 3)
        rows, joints = [], []
        for row, slot in enumerate(self._link_slots.tolist()):
            while slot > 0:
                joint = self._chain[slot - 1]
                if joint.kind != 2 and joint.source >= 0:
                    rows.append(row)
                    joints.append(slot - 1)
                slot = joint.parent_slot
        joints_array = np.array(joints, dtype=np.int64)
        return (np.array(rows, dtype=np.int64), joints_array,
                np.array([self._chain[k].source for k in joints], dtype=np.int64),
                np.array([self._chain[k].multiplier for k in joints]),
                np.array([self._chain[k].kind == 1 for k in joints], dtype=bool))

    def positions(self, q: np.ndarray) -> np.ndarray:
        """(L, 3) positions of ``links`` in ``frame`` (metres) for actuated joint values ``q``."""
        transforms = self.transforms(np.asarray(q, dtype=np.float64))
        points = transforms[self._link_slots, :3, 3]
        if self._frame_slot == 0:
            return points
        frame = transforms[self._frame_slot]
        return (points - frame[:3, 3]) @ frame[:3, :3]  # R^T (p - t), row-wise


def _root_link(model, source: str) -> str:
    """The one link that is no joint's child (a URDF is a tree)."""
    children = {j.child for j in model.robot.joints}
    roots = [link.name for link in model.robot.links if link.name not in children]
    if len(roots) != 1:
        raise UrdfError(f"{source}: a URDF is a tree with one root link, this one has "
                        f"{', '.join(roots) if roots else 'none (a joint loop)'}")
    return roots[0]


def _motion(kind: int, axis: np.ndarray, q: float) -> np.ndarray:
    """The joint's motion transform: rotation by ``q`` about ``axis`` (Rodrigues) or translation ``q * axis``."""
    motion = np.eye(4)
    if kind == 1:
        motion[:3, 3] = q * axis
        return motion
    x, y, z = axis
    K = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    motion[:3, :3] += np.sin(q) * K + (1.0 - np.cos(q)) * (K @ K)
    return motion


def _load(urdf_xml: str, source: str):
    """yourdfpy model without meshes or scene graph (only the kinematic tree is needed)."""
    import yourdfpy
    from lxml import etree

    if not urdf_xml or not urdf_xml.strip():
        raise UrdfError(f"{source}: the URDF is empty")
    data = urdf_xml.encode("utf-8")
    try:
        root = etree.fromstring(data)  # strict first: yourdfpy silently "recovers" broken XML
    except etree.XMLSyntaxError as exc:
        raise UrdfError(f"{source}: malformed URDF XML: {exc}") from None
    if root.tag != "robot":
        raise UrdfError(f"{source}: the XML root element is <{root.tag}>, a URDF's is <robot>")
    try:
        return yourdfpy.URDF.load(io.BytesIO(data), build_scene_graph=False, load_meshes=False,
                                  load_collision_meshes=False)
    except Exception as exc:  # yourdfpy raises KeyError/AttributeError/ValueError for structural faults
        raise UrdfError(f"{source}: invalid URDF ({type(exc).__name__}: {exc})") from None


# --------------------------------------------------------------------------------------------- where URDFs live


def resolve_urdf_path(package: str, path: str) -> Path:
    """The URDF ``path`` inside ``package``'s share directory: a ROS package found by ament_index first (a
    robot's description package on a ROS install), else a PyPI distribution built with cmeel such as
    ``example-robot-data``, whose files sit in ``<site-packages>/cmeel.prefix/share/<package>``."""
    candidates: list[Path] = []
    with contextlib.suppress(ImportError, LookupError, OSError, ValueError):  # no ament_index, or not a ROS package
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(package)))
    roots = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    for root in dict.fromkeys(roots):
        if root:
            candidates.append(Path(root) / "cmeel.prefix" / "share" / package)
    for share in candidates:
        urdf = share / path
        if urdf.is_file():
            return urdf
    looked = ", ".join(str(c) for c in dict.fromkeys(candidates) if c.parent.is_dir()) or "nowhere"
    raise UrdfError(f"URDF '{path}' of package '{package}' not found (looked in: {looked}); install the package "
                    f"(e.g. `pip install {package}`) or give the URDF file explicitly")
