"""Humanoid robot mappings (config/robots/<robot>.yaml): URDF link -> canonical joint.

A robot "is" a skeleton once forward kinematics gives its link positions; this file says which link stands for
which body joint. FK itself happens in the JointState adapter (a later layer); here the format is defined and
validated, and a mapping turns into a :class:`Topology` whose native joints are the listed links.

Format::

    name: talos                       # must equal the file stem
    description: PAL TALOS humanoid
    urdf:
      package: example-robot-data     # where the URDF comes from (a ROS package or pip distribution)
      path: robots/talos_data/robots/talos_reduced.urdf   # path inside it (a resolver hint)
    up: "+z"                          # REP-103 base frame: z up
    prompt_topology: smpl24           # optional: a topology whose model prompts the robot borrows
    links:                            # URDF link name -> canonical joint (config/joints.yaml)
      base_link: spine_base
      torso_2_link: spine_shoulder
      arm_left_4_link: left_elbow
    derived:                          # optional, same format as topologies
      - joint: spine_mid
        from: {spine_base: 0.5, spine_shoulder: 0.5}
    limits: {max_reach: 2.0, max_extent: 3.0}   # optional, metres (hetskel_ros.topology.limits)
    joint_prefix: ""                  # optional: a namespace in front of every JointState name ("g1/")
    base_motion:                      # optional: where the base pose comes from (the transform tree)
      odom_frame: odom                #   the fixed frame the robot's odometry publishes (default "odom")
      base_frame: base_link           #   the moving base ('' = the URDF's root link)
      needed_by: [walk, run]          #   actions that look different without it (said in diagnostics)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from hetskel_ros.paths import CONFIG_PATH_ENV, config_dir, find_config_file, list_config_names
from hetskel_ros.topology._yaml import Fields, read_mapping
from hetskel_ros.topology.errors import TopologyError
from hetskel_ros.topology.limits import Limits, parse_limits
from hetskel_ros.topology.topology import (
    DerivedJoint,
    Topology,
    file_exists,
    list_topologies,
    load_topology,
    parse_derived,
    parse_up,
    shorten,
)
from hetskel_ros.topology.vocabulary import load_vocabulary


@dataclass(frozen=True)
class BaseMotion:
    """Where a robot's base pose comes from: the transform ``odom_frame`` -> ``base_frame`` of its /tf tree."""

    odom_frame: str = "odom"
    base_frame: str = ""  # '' = the URDF's root link
    needed_by: tuple[str, ...] = ()  # actions that need it (reported when base motion is missing)


@dataclass(frozen=True)
class RobotMapping:
    """Which URDF links of a robot stand for which canonical joints."""

    name: str
    urdf_package: str
    urdf_path: str
    up: str
    links: Mapping[str, str] = field(hash=False)  # URDF link -> canonical joint, in file order
    derived: tuple[DerivedJoint, ...] = ()
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    prompt_topology: str = ""  # topology whose prompts a model without the robot's own uses ('' = none named)
    limits: Limits | None = None  # how far the mapped links can spread (hetskel_ros.topology.limits)
    joint_prefix: str = ""  # namespace in front of every joint name of the robot's JointState (e.g. "g1/")
    base_motion: BaseMotion = field(default_factory=lambda: BaseMotion())

    @property
    def link_names(self) -> tuple[str, ...]:
        return tuple(self.links)

    def as_topology(self) -> Topology:
        """A 3D topology whose native joints are the mapped links (positions from FK, in ``link_names`` order)."""
        return Topology(
            name=f"robot_{self.name}",
            dims=3,
            joints=self.link_names,
            up=self.up,
            canonical=dict(self.links),
            derived=self.derived,
            description=self.description,
            units="metres",
            source=f"URDF {self.urdf_package}:{self.urdf_path}",
            path=self.path,
            limits=self.limits,
        )


def robots_dir() -> Path:
    """The shipped robot mappings (config/robots); users' layers come first (hetskel_ros.paths)."""
    return config_dir() / "robots"


def list_robots() -> list[str]:
    """Names of every robot mapping on the search path (shipped and the users' layers)."""
    return list_config_names("robots")


def load_robot(name_or_path: str | Path) -> RobotMapping:
    """Load and validate a robot mapping by name (``robots/<name>.yaml`` on the search path) or from a YAML path."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or text.endswith((".yaml", ".yml")):
        path = Path(name_or_path).expanduser()
        if not file_exists(path):
            raise TopologyError(f"robot file {path} does not exist")
    else:
        found = find_config_file("robots", text)
        if found is None:
            raise TopologyError(f"unknown robot {shorten(text)!r} (known: {', '.join(list_robots()) or 'none'}; pass "
                                f"a path to a YAML file, or add <dir>/robots/<name>.yaml and put <dir> on "
                                f"{CONFIG_PATH_ENV})")
        path = found
    path = path.resolve()
    return _load_cached(path, path.stat().st_mtime, tuple(load_vocabulary()))


def observation_topology(name: str) -> Topology:
    """The topology an observation names: a topology file, or a robot mapping's (``robot_<name>``, what the
    joint_state adapter gives its people)."""
    try:
        return load_topology(name)
    except TopologyError:
        return load_robot(name.removeprefix("robot_")).as_topology()


def borrowed_prompt(name: str) -> str:
    """The topology whose prompts an observation of topology ``name`` borrows where a model has none of its own: a
    robot mapping's ``prompt_topology`` for ``robot_<name>`` (as the joint_state input does), else ''."""
    if not name.startswith("robot_"):
        return ""
    try:
        return load_robot(name.removeprefix("robot_")).prompt_topology
    except TopologyError:
        return ""


@lru_cache(maxsize=16)
def _load_cached(path: Path, _mtime: float, vocabulary: tuple[str, ...]) -> RobotMapping:
    fields = Fields(read_mapping(path), path)
    name = fields.string("name")
    if name != path.stem:
        raise fields.error("name", f"is '{name}' but must equal the file name '{path.stem}'")
    urdf = fields.mapping("urdf")
    links = fields.name_map("links")
    if not links:
        raise fields.error("links", "is empty")
    known = set(vocabulary)
    for link, target in links.items():
        if target not in known:
            raise fields.error(
                f"links.{link}", f"maps to unknown canonical joint '{target}' (not in config/joints.yaml)"
            )
    seen: dict[str, str] = {}
    for link, target in links.items():
        if target in seen:
            raise fields.error(f"links.{link}", f"maps to '{target}', already mapped from link '{seen[target]}'")
        seen[target] = link
    return RobotMapping(
        name=name,
        urdf_package=urdf.string("package"),
        urdf_path=urdf.string("path"),
        up=parse_up(fields, 3),
        links=links,
        derived=parse_derived(fields, list(links), links, known),
        description=fields.text("description"),
        path=path,
        prompt_topology=_prompt_topology(fields),
        limits=parse_limits(fields),
        joint_prefix=fields.text("joint_prefix"),
        base_motion=_base_motion(fields),
    )


def _base_motion(fields: Fields) -> BaseMotion:
    if not fields.has("base_motion"):
        return BaseMotion()
    section = fields.mapping("base_motion")
    odom = section.text("odom_frame") or BaseMotion.odom_frame
    return BaseMotion(odom_frame=odom, base_frame=section.text("base_frame"),
                      needed_by=tuple(section.string_list("needed_by", [])))


def _prompt_topology(fields: Fields) -> str:
    """Optional ``prompt_topology``: a 3D topology of config/topologies (a model has no prompt rows for robots)."""
    name = fields.text("prompt_topology")
    if not name:
        return ""
    known = list_topologies()
    if name not in known:
        raise fields.error("prompt_topology", f"names unknown topology '{name}' (known: {', '.join(known)})")
    if load_topology(name).dims != 3:
        raise fields.error("prompt_topology", f"must be a 3D topology, '{name}' is 2D")
    return name
