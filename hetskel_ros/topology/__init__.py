"""Unified skeleton, per-topology joint maps and normalisation (numpy + pyyaml only; no ROS, no torch).

Any supported skeleton topology becomes the unified skeleton of paper 000 (sec. 3.1): topologies are YAML data in
config/topologies, the unified joint set is config/unified.yaml, the joint vocabulary config/joints.yaml.
"""

from hetskel_ros.topology.errors import TopologyError
from hetskel_ros.topology.normalize import normalize, up_rotation
from hetskel_ros.topology.robots import RobotMapping, borrowed_prompt, list_robots, load_robot, observation_topology
from hetskel_ros.topology.topology import DerivedJoint, Topology, list_topologies, load_topology
from hetskel_ros.topology.unified import UnifiedSkeleton, flip_permutation, load_unified
from hetskel_ros.topology.vocabulary import load_vocabulary

__all__ = [
    "DerivedJoint",
    "RobotMapping",
    "Topology",
    "TopologyError",
    "UnifiedSkeleton",
    "borrowed_prompt",
    "flip_permutation",
    "list_robots",
    "list_topologies",
    "load_robot",
    "load_topology",
    "load_unified",
    "load_vocabulary",
    "normalize",
    "observation_topology",
    "up_rotation",
]
