"""sensor_msgs/JointState + URDF -> a humanoid's skeleton (hetskel_ros.ros.adapters.joint_state).

Real robots: Unitree G1 and PAL TALOS, URDFs from PyPI example-robot-data, parsed by yourdfpy. Forward kinematics
is checked against yourdfpy's own scene-graph answer (``URDF.get_transform``) for random joint configurations; the
robot_description path runs over real DDS with a transient-local publisher, as robot_state_publisher offers it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import yourdfpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import String

from hetskel_ros.ros.adapters import adapter_class
from hetskel_ros.ros.adapters.base import InputConfig, InputRejected
from hetskel_ros.ros.adapters.joint_state import JointStateAdapter, JointStateConverter
from hetskel_ros.ros.msg_dict import message_class
from hetskel_ros.topology import TopologyError, load_robot, load_unified, up_rotation
from hetskel_ros.topology.urdf import UrdfError, UrdfKinematics, resolve_urdf_path

ROBOTS = ("unitree_g1", "talos")
CONFIGURATIONS = 25


def urdf_path(robot: str) -> Path:
    mapping = load_robot(robot)
    return resolve_urdf_path(mapping.urdf_package, mapping.urdf_path)


@pytest.fixture(scope="module", params=ROBOTS)
def robot(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def reference(robot) -> yourdfpy.URDF:
    """yourdfpy's full model (scene graph on): the library's own FK answer."""
    return yourdfpy.URDF.load(str(urdf_path(robot)), load_meshes=False)


def joint_state(names, positions, stamp_s: float = 12.5) -> JointState:
    msg = JointState(name=list(names), position=[float(p) for p in positions])
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp_s), round(stamp_s % 1 * 1e9)
    return msg


def loaded_converter(robot: str, frame: str = "") -> JointStateConverter:
    converter = JointStateConverter(robot, frame=frame)
    converter.load_package_urdf()
    return converter


def random_q(kinematics: UrdfKinematics, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(kinematics.lower, kinematics.upper)


def test_example_robot_data_urdfs_resolve_and_hold_every_mapped_link(robot):
    path = urdf_path(robot)
    assert path.is_file() and "example-robot-data" in str(path)
    mapping = load_robot(robot)
    kinematics = UrdfKinematics(path.read_text(), mapping.link_names, source=str(path))
    assert kinematics.num_joints >= 29  # G1: 29 DoF; TALOS: 32 + the grippers' mimic followers excluded
    assert mapping.prompt_topology == "smpl24" and mapping.up == "+z"


def test_fk_matches_yourdfpy_for_every_link_in_random_configurations(robot, reference):
    links = list(reference.link_map)
    kinematics = UrdfKinematics(urdf_path(robot).read_text(), links)
    assert kinematics.joint_names == tuple(reference.actuated_joint_names)
    rng = np.random.default_rng(5)
    worst = 0.0
    for _ in range(CONFIGURATIONS):
        q = random_q(kinematics, rng)
        reference.update_cfg(q)
        expected = np.array([reference.get_transform(link, reference.base_link)[:3, 3] for link in links])
        worst = max(worst, float(np.abs(kinematics.positions(q) - expected).max()))
    assert worst < 1e-9


def test_fk_in_a_configured_frame_matches_yourdfpy(robot, reference):
    frame = {"unitree_g1": "torso_link", "talos": "torso_2_link"}[robot]
    links = list(load_robot(robot).link_names)
    kinematics = UrdfKinematics(urdf_path(robot).read_text(), links, frame=frame)
    rng = np.random.default_rng(6)
    for _ in range(5):
        q = random_q(kinematics, rng)
        reference.update_cfg(q)
        expected = np.array([reference.get_transform(link, frame)[:3, 3] for link in links])
        np.testing.assert_allclose(kinematics.positions(q), expected, atol=1e-9)


def test_mimic_joints_follow_their_master():
    """TALOS full v2: the gripper fingers mimic gripper_left_joint; FK agrees with yourdfpy while they move."""
    reference = yourdfpy.URDF.load(str(urdf_path("talos")), load_meshes=False)
    tip = "gripper_left_fingertip_1_link"
    kinematics = UrdfKinematics(urdf_path("talos").read_text(), [tip])
    q = np.zeros(kinematics.num_joints)
    closed = kinematics.positions(q)[0]
    q[kinematics.index["gripper_left_joint"]] = -0.8
    opened = kinematics.positions(q)[0]
    assert np.linalg.norm(opened - closed) > 0.01
    reference.update_cfg(q)
    np.testing.assert_allclose(opened, reference.get_transform(tip, reference.base_link)[:3, 3], atol=1e-9)


def test_joint_states_in_any_order_give_the_library_skeleton(robot, reference):
    """Through the adapter: shuffled JointState names, mapped links by yourdfpy, then the robot mapping."""
    converter = loaded_converter(robot)
    kinematics = converter.kinematics
    topology = load_robot(robot).as_topology()
    rng = np.random.default_rng(7)
    for _ in range(10):
        q = random_q(kinematics, rng)
        order = rng.permutation(kinematics.num_joints)
        obs = converter.convert(joint_state([kinematics.joint_names[i] for i in order], q[order]))
        reference.update_cfg(q)
        native = np.array([reference.get_transform(link, reference.base_link)[:3, 3] for link in topology.joints])
        expected, mask = topology.to_unified(native)
        np.testing.assert_array_equal(obs.mask, mask)
        np.testing.assert_allclose(obs.positions, expected, atol=1e-6)
    assert obs.topology == robot and obs.up == "+z" and obs.dims == 3 and obs.track_id == 0
    assert obs.stamp == pytest.approx(12.5) and obs.frame_id == kinematics.root


def test_standing_pose_is_a_plausible_human_skeleton(robot):
    converter = loaded_converter(robot)
    names = converter.kinematics.joint_names
    obs = converter.convert(joint_state(names, np.zeros(len(names))))
    unified = load_unified()
    p = {name: obs.positions[unified.index(name)] for name in unified.names if obs.mask[unified.index(name)]}
    for name in ("head", "spine_shoulder", "spine_mid", "spine_base", "left_hand", "right_hand"):
        assert name in p, name
    assert p["head"][2] > p["spine_shoulder"][2] > p["spine_mid"][2] > p["spine_base"][2]
    assert p["head"][2] - p["spine_base"][2] > 0.4
    for side in ("left", "right"):
        sign = 1 if side == "left" else -1  # REP-103: x forward, y left
        assert sign * p[f"{side}_shoulder"][1] > 0.1 and sign * p[f"{side}_hip"][1] > 0.05
        assert p[f"{side}_hip"][2] > p[f"{side}_knee"][2] > p[f"{side}_ankle"][2]

    def length(a: str, b: str) -> float:
        return float(np.linalg.norm(p[a] - p[b]))

    bones = {"upper arm": ("shoulder", "elbow", 0.15, 0.40), "forearm": ("elbow", "wrist", 0.10, 0.35),
             "thigh": ("hip", "knee", 0.25, 0.50), "shank": ("knee", "ankle", 0.25, 0.50)}
    for bone, (a, b, shortest, longest) in bones.items():
        left, right = length(f"left_{a}", f"left_{b}"), length(f"right_{a}", f"right_{b}")
        assert shortest < left < longest, (bone, left)
        assert abs(left - right) < 0.01, (bone, left, right)
    # Normalised like every input (up axis to +Y), the head is the highest joint of the body.
    upright = obs.positions @ up_rotation(obs.up).T
    present = obs.mask
    assert upright[unified.index("head"), 1] == upright[present, 1].max()


def test_joints_left_out_keep_their_last_value():
    converter = loaded_converter("unitree_g1")
    names = converter.kinematics.joint_names
    unified = load_unified()
    knee = unified.index("left_ankle")
    straight = converter.convert(joint_state(names, np.zeros(len(names)))).positions[knee]
    bent = converter.convert(joint_state(["left_knee_joint"], [1.2])).positions[knee]
    assert np.linalg.norm(bent - straight) > 0.1
    # Only the right arm moves now: the left knee stays bent; fixed joints may be named and are ignored.
    later = converter.convert(joint_state(["right_elbow_joint", "head_joint"], [0.5, 0.0])).positions[knee]
    np.testing.assert_allclose(later, bent, atol=1e-7)


def test_bad_joint_states_are_rejected_with_their_reason():
    converter = loaded_converter("talos")
    cases = {
        "wrong_joint_count": joint_state(["torso_1_joint", "torso_2_joint"], [0.1]),
        "duplicate_joint_names": joint_state(["torso_1_joint", "torso_1_joint"], [0.1, 0.2]),
        "unknown_joint_names": joint_state(["torso_1_joint", "left_knee_joint", "waist_yaw_joint"], [0.0, 0.1, 0.2]),
        "non_finite": joint_state(["torso_1_joint", "leg_left_4_joint"], [0.0, float("nan")]),
    }
    for reason, msg in cases.items():
        with pytest.raises(InputRejected) as rejected:
            converter.convert(msg)
        assert rejected.value.reason == reason, (reason, str(rejected.value))
    no_positions = JointState(name=["torso_1_joint"], velocity=[0.1])
    with pytest.raises(InputRejected, match="no positions") as rejected:
        converter.convert(no_positions)
    assert rejected.value.reason == "no_positions"
    assert converter.convert(joint_state([], [])) is None  # an empty message: nothing to see, not a drop
    with pytest.raises(InputRejected) as unknown:
        converter.convert(cases["unknown_joint_names"])
    assert "'left_knee_joint'" in str(unknown.value) and "'waist_yaw_joint'" in str(unknown.value)
    with pytest.raises(InputRejected, match="leg_left_4_joint"):
        converter.convert(cases["non_finite"])


def test_without_a_usable_urdf_messages_are_dropped_and_the_fault_named():
    converter = JointStateConverter("talos")
    msg = joint_state(["torso_1_joint"], [0.0])
    with pytest.raises(InputRejected) as rejected:
        converter.convert(msg)
    assert rejected.value.reason == "no_urdf"
    with pytest.raises(UrdfError, match="malformed URDF XML"):
        converter.set_urdf("<robot name='x'><link name='a'>", source="test")
    with pytest.raises(InputRejected) as bad:
        converter.convert(msg)
    assert bad.value.reason == "bad_urdf"
    # The G1's URDF cannot serve the TALOS mapping: the missing links are named.
    with pytest.raises(UrdfError, match="leg_left_1_link"):
        converter.set_urdf(urdf_path("unitree_g1").read_text(), source="g1.urdf")
    converter.set_urdf(urdf_path("talos").read_text(), source="talos.urdf")
    assert converter.convert(msg).mask.any()
    with pytest.raises(UrdfError, match=r"nowhere\.urdf"):
        converter.load_urdf_file("/nonexistent/nowhere.urdf")


def test_robot_file_prompt_topology_is_validated(tmp_path):
    text = Path(load_robot("talos").path).read_text()
    for value, message in (("coco17", "3D"), ("no_such_topology", "unknown topology")):
        bad = tmp_path / "talos.yaml"
        bad.write_text(text.replace("prompt_topology: smpl24", f"prompt_topology: {value}"))
        with pytest.raises(TopologyError, match=message) as error:
            load_robot(bad)
        assert "prompt_topology" in str(error.value)


def test_adapter_from_configuration(robot):
    cls = adapter_class("joint_state")
    assert cls is JointStateAdapter and message_class(cls.message_type) is JointState
    config = InputConfig(name="body", topic="joint_states", kind="joint_state", robot=robot,
                         params={"urdf_file": "package", "track_id": 4})
    adapter = cls(config)
    assert adapter.dims() == 3 and adapter.prompt_topology == "smpl24"
    names = adapter.converter.kinematics.joint_names
    observation = adapter.convert(joint_state(names, np.zeros(len(names))))[0]
    assert observation.track_id == 4 and observation.topology == robot
    override = InputConfig(name="body", topic="joint_states", kind="joint_state", robot=robot,
                           prompt_topology="kinect_v2", params={"urdf_file": str(urdf_path(robot))})
    assert cls(override).prompt_topology == "kinect_v2"
    with pytest.raises(ValueError, match="names no robot"):
        cls(InputConfig(name="body", topic="joint_states", kind="joint_state", params={"urdf_file": "package"}))


def test_fk_cost_per_message(robot):
    """Recorded figure (2 shared cores): about 0.3-0.5 ms per JointState; the bound only catches a regression."""
    converter = loaded_converter(robot)
    names = converter.kinematics.joint_names
    msg = joint_state(names, np.full(len(names), 0.1))
    converter.convert(msg)
    start = time.perf_counter()
    for _ in range(200):
        converter.convert(msg)
    per_message_ms = (time.perf_counter() - start) / 200 * 1e3
    print(f"{robot}: {per_message_ms:.3f} ms per JointState")
    assert per_message_ms < 10.0


def test_robot_description_topic_with_transient_local_qos(ros):
    """A URDF latched before the adapter starts still arrives; a later bad one is reported, not fatal."""
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    publisher_node = ros.node("robot_state_publisher_stand_in")
    publisher = publisher_node.create_publisher(String, "robot_description", latched)
    publisher.publish(String(data=urdf_path("unitree_g1").read_text()))

    node = ros.node("recognizer_under_test")
    config = InputConfig(name="g1", topic="joint_states", kind="joint_state", robot="unitree_g1")
    adapter = JointStateAdapter(config, node)
    assert adapter.listener is not None and adapter.listener.topic == "/robot_description"
    ros.wait_for(lambda: adapter.converter.has_urdf, timeout=10.0, what="the latched robot_description")

    names = adapter.converter.kinematics.joint_names
    msg = joint_state(names, np.linspace(-0.2, 0.2, len(names)))
    from_topic = adapter.convert(msg)[0]
    from_file = loaded_converter("unitree_g1").convert(msg)
    np.testing.assert_allclose(from_topic.positions, from_file.positions, atol=1e-9)

    waiting = JointStateAdapter(InputConfig(name="other", topic="js", kind="joint_state", robot="talos",
                                            params={"robot_description_topic": "talos_description"}), node)
    with pytest.raises(InputRejected, match="/talos_description") as rejected:
        waiting.convert(joint_state(["torso_1_joint"], [0.0]))
    assert rejected.value.reason == "no_urdf"

    publisher.publish(String(data="<robot name='broken'>"))
    ros.wait_for(lambda: adapter.listener.received >= 2, timeout=10.0, what="the second robot_description")
    with pytest.raises(InputRejected) as bad:
        adapter.convert(msg)
    assert bad.value.reason == "bad_urdf" and "malformed" in str(bad.value)
    adapter.close()
    waiting.close()
    assert adapter.listener is None and not list(node.subscriptions)
