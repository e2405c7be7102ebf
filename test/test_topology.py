"""Topologies -> unified skeleton (paper 000, sec. 3.1): loading, mapping, masks, normalisation, errors, CLI.

Everything runs on the shipped YAML files and, for new sensors, on YAML written to a temporary directory: the
path a user takes when adding a sensor.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hetskel_ros.paths import config_dir
from hetskel_ros.topology import (
    Topology,
    TopologyError,
    flip_permutation,
    list_robots,
    list_topologies,
    load_robot,
    load_topology,
    load_unified,
    load_vocabulary,
    normalize,
    up_rotation,
)

SHIPPED = {
    "kinect_v2": (25, 3, "+y"),
    "azure_kinect": (32, 3, "-y"),
    "coco17": (17, 2, "-y"),
    "mediapipe_pose": (33, 2, "-y"),
    "mediapipe_pose_world": (33, 3, "-y"),
    "openpose_body25": (25, 2, "-y"),
    "smpl24": (24, 3, "+y"),
    "bandai_mocap": (21, 3, "+y"),
}

# A standing person in the body frame the normalisation promises: metres, Y up, facing +Z, left at +X.
BODY = {
    "spine_base": (0.0, 1.00, 0.0),
    "spine_navel": (0.0, 1.15, 0.0),
    "spine_mid": (0.0, 1.25, 0.0),
    "spine_chest": (0.0, 1.35, 0.0),
    "spine_shoulder": (0.0, 1.50, 0.0),
    "neck": (0.0, 1.60, 0.0),
    "head": (0.0, 1.72, 0.02),
    "nose": (0.0, 1.70, 0.10),
    "left_eye": (0.03, 1.74, 0.08),
    "right_eye": (-0.03, 1.74, 0.08),
    "left_ear": (0.07, 1.72, 0.0),
    "right_ear": (-0.07, 1.72, 0.0),
    "left_clavicle": (0.04, 1.47, 0.03),
    "right_clavicle": (-0.04, 1.47, 0.03),
    "left_shoulder": (0.18, 1.45, 0.0),
    "right_shoulder": (-0.18, 1.45, 0.0),
    "left_elbow": (0.20, 1.17, 0.0),
    "right_elbow": (-0.20, 1.17, 0.0),
    "left_wrist": (0.20, 0.92, 0.03),
    "right_wrist": (-0.20, 0.92, 0.03),
    "left_hand": (0.20, 0.85, 0.04),
    "right_hand": (-0.20, 0.85, 0.04),
    "left_hand_tip": (0.20, 0.76, 0.05),
    "right_hand_tip": (-0.20, 0.76, 0.05),
    "left_thumb": (0.17, 0.86, 0.08),
    "right_thumb": (-0.17, 0.86, 0.08),
    "left_hip": (0.10, 0.95, 0.0),
    "right_hip": (-0.10, 0.95, 0.0),
    "left_knee": (0.10, 0.53, 0.02),
    "right_knee": (-0.10, 0.53, 0.02),
    "left_ankle": (0.10, 0.10, 0.0),
    "right_ankle": (-0.10, 0.10, 0.0),
    "left_foot": (0.10, 0.03, 0.14),
    "right_foot": (-0.10, 0.03, 0.14),
}
TORSO = 0.5  # spine_base -> spine_shoulder in BODY


@pytest.fixture(scope="module")
def unified():
    return load_unified()


def render_native(topology: Topology, body: dict[str, tuple[float, float, float]]) -> np.ndarray:
    """Native (N, 3) array of ``body``: each native joint at its canonical point (NaN if body lacks it)."""
    native = np.full((topology.num_joints, 3), np.nan)
    for i, name in enumerate(topology.joints):
        canonical = topology.canonical.get(name)
        if canonical in body:
            native[i] = body[canonical]
    return native


def expected_unified(topology: Topology, native: np.ndarray, unified) -> dict[str, np.ndarray]:
    """Straightforward per-joint evaluation of the YAML semantics, to check the vectorised mapping against."""
    values: dict[str, np.ndarray] = {}
    for name, canonical in topology.canonical.items():
        values[canonical] = native[:, topology.index(name)]
    for derived in topology.derived:
        total = sum(w for _, w in derived.sources)
        acc = 0.0
        for source, weight in derived.sources:
            point = native[:, topology.index(source)] if source in topology.joints else values[source]
            acc = acc + weight * point
        values[derived.joint] = acc / total
    return {k: v for k, v in values.items() if k in unified.names}


# ------------------------------------------------------------------------------------------------ unified


def test_unified_skeleton_is_the_papers_30_joints_in_order(unified):
    assert unified.num_joints == 30
    assert unified.names[:5] == ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
    assert unified.names[17:20] == ("spine_shoulder", "spine_mid", "spine_base")
    assert unified.names[20:22] == ("neck", "head")
    assert [len(unified.groups[g]) for g in ("face", "common", "extremities")] == [5, 15, 10]
    assert sorted(i for members in unified.groups.values() for i in members) == list(range(30))
    assert unified.root == "spine_base" and unified.torso == ("spine_base", "spine_shoulder")
    vocabulary = load_vocabulary()
    assert set(unified.names) <= set(vocabulary)
    # bones form one tree over all 30 joints
    assert len(unified.bones) == 29 and {j for bone in unified.bones for j in bone} == set(unified.names)


def test_flip_permutation_swaps_left_and_right(unified):
    perm = flip_permutation(unified)
    assert np.array_equal(perm[perm], np.arange(unified.num_joints))
    for i, name in enumerate(unified.names):
        partner = unified.names[perm[i]]
        if name.startswith("left_"):
            assert partner == "right_" + name[5:]
        elif not name.startswith("right_"):
            assert partner == name


# ------------------------------------------------------------------------------------------------ shipped


def test_shipped_topologies_are_listed():
    assert set(SHIPPED) <= set(list_topologies())


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_topology_loads_and_maps_random_input(name, unified):
    joints, dims, up = SHIPPED[name]
    topology = load_topology(name)
    assert (topology.num_joints, topology.dims, topology.up) == (joints, dims, up)
    rng = np.random.default_rng(0)
    native = rng.normal(size=(7, joints, dims)).astype(np.float32)
    out, mask = topology.to_unified(native, unified=unified)
    assert out.shape == (7, 30, dims) and out.dtype == np.float32
    assert mask.shape == (7, 30) and mask.dtype == bool
    coverage = topology.coverage(unified)
    assert np.array_equal(mask, np.broadcast_to(coverage, mask.shape))
    assert not out[:, ~coverage].any(), "joints a topology lacks must be 0"
    expected = expected_unified(topology, native.astype(np.float64), unified)
    assert {unified.names[i] for i in np.flatnonzero(coverage)} == set(expected)
    for joint, value in expected.items():
        np.testing.assert_allclose(out[:, unified.index(joint)], value, rtol=1e-5, atol=1e-5, err_msg=joint)
    # one frame (N, C) in, one frame out
    single, single_mask = topology.to_unified(native[0], unified=unified)
    assert single.shape == (30, dims) and np.array_equal(single_mask, mask[0])
    np.testing.assert_allclose(single, out[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_native_flip_pairs_map_to_mirrored_canonical_joints(name):
    """A left/right slip in a YAML file would silently mirror a sensor; flip pairs and the map must agree."""
    topology = load_topology(name)
    perm = topology.native_flip_permutation()
    assert np.array_equal(perm[perm], np.arange(topology.num_joints))
    for left, right in topology.flip_pairs:
        a, b = topology.canonical.get(left), topology.canonical.get(right)
        if a is not None and b is not None:
            assert a.replace("left", "right") == b, f"{name}: flip pair {left}/{right} maps to {a}/{b}"
    for native, canonical in topology.canonical.items():
        if "left" in canonical or "right" in canonical:
            assert native in {j for pair in topology.flip_pairs for j in pair}, f"{name}: {native} has no flip pair"


def test_coverage_matches_what_each_sensor_really_has(unified):
    def missing(name: str) -> set[str]:
        return {unified.names[i] for i in np.flatnonzero(~load_topology(name).coverage(unified))}

    face = {"nose", "left_eye", "right_eye", "left_ear", "right_ear"}
    kinect_only = {"neck", "head", "left_hand", "right_hand", "left_hand_tip", "right_hand_tip", "left_thumb",
                   "right_thumb", "left_foot", "right_foot"}  # fmt: skip
    assert missing("kinect_v2") == face  # the paper's 5x3 Kinect prompt
    assert missing("coco17") == kinect_only  # the paper's 10x3 COCO prompt
    assert missing("azure_kinect") == {"neck"}
    assert missing("mediapipe_pose") == missing("mediapipe_pose_world") == {
        "neck", "head", "left_hand_tip", "right_hand_tip"}  # fmt: skip
    hands = {"left_hand", "right_hand", "left_hand_tip", "right_hand_tip", "left_thumb", "right_thumb"}
    assert missing("bandai_mocap") == face | hands | {"head"}
    assert missing("openpose_body25") == hands | {"neck", "head"}
    assert missing("smpl24") == face | {"head", "left_hand_tip", "right_hand_tip", "left_thumb", "right_thumb"}


def test_coco_spine_joints_follow_eqs_1_to_3(unified):
    coco = load_topology("coco17")
    rng = np.random.default_rng(1)
    native = rng.uniform(0, 1920, size=(11, 17, 2))
    out, mask = coco.to_unified(native, unified=unified)
    j = coco.index
    spine = (native[:, j("left_shoulder")] + native[:, j("right_shoulder")]) / 2  # eq. 1
    base = (native[:, j("left_hip")] + native[:, j("right_hip")]) / 2  # eq. 2
    middle = (spine + base) / 2  # eq. 3
    for joint, value in (("spine_shoulder", spine), ("spine_base", base), ("spine_mid", middle)):
        np.testing.assert_allclose(out[:, unified.index(joint)], value, rtol=1e-6, atol=1e-3)
        assert mask[:, unified.index(joint)].all()
    assert int(mask[0].sum()) == 20  # the paper's "17-joint skeleton" with 3 spine joints


def test_nan_inf_and_low_confidence_joints_are_masked_not_errors(unified):
    coco = load_topology("coco17")
    native = np.random.default_rng(2).uniform(0, 500, size=(3, 17, 2))
    confidence = np.full((3, 17), 0.9)
    native[0, coco.index("left_hip")] = np.nan
    native[1, coco.index("right_wrist"), 0] = np.inf
    confidence[2, coco.index("nose")] = 0.01  # below the default 0.05
    confidence[2, coco.index("left_shoulder")] = np.nan
    out, mask = coco.to_unified(native, confidence, unified=unified)
    u = unified.index
    assert not mask[0, u("left_hip")] and not mask[0, u("spine_base")] and not mask[0, u("spine_mid")]
    assert mask[0, u("spine_shoulder")] and mask[0, u("right_hip")]
    assert not mask[1, u("right_wrist")] and mask[1, u("spine_mid")]
    assert not mask[2, u("nose")] and not mask[2, u("left_shoulder")] and not mask[2, u("spine_shoulder")]
    assert mask[2, u("right_shoulder")]
    assert np.isfinite(out).all() and not out[~mask].any()
    # the threshold is the caller's: 0.0 keeps the low-confidence nose
    _, lenient = coco.to_unified(native, confidence, unified=unified, min_confidence=0.0)
    assert lenient[2, u("nose")]


# --------------------------------------------------------------------------------------------- normalise


def world_pose(yaw_deg: float, offset: tuple[float, float, float]) -> dict[str, np.ndarray]:
    """BODY turned by ``yaw_deg`` about +Y and moved to ``offset``: a person anywhere, facing anywhere."""
    a = np.deg2rad(yaw_deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return {k: rot @ np.array(v) + np.array(offset) for k, v in BODY.items()}


@pytest.mark.parametrize(("name", "yaw"), [("kinect_v2", 150.0), ("azure_kinect", -70.0), ("smpl24", 35.0)])
def test_normalize_3d_recovers_the_body_frame(name, yaw, unified):
    """Sensor axes, position and heading vanish: root at 0, torso 1, hips along +X, facing +Z, Y up."""
    topology = load_topology(name)
    pose = world_pose(yaw, (1.5, 0.2, 3.0))
    to_sensor = up_rotation(topology.up).T  # world (Y up) -> the sensor's own axes
    native = render_native(topology, {k: to_sensor @ v for k, v in pose.items()})[None].repeat(4, axis=0)
    out, mask = topology.to_unified(native, unified=unified)
    result = normalize(out, mask, unified, up=topology.up)
    root = unified.root_index
    expected = {k: (np.array(v) - np.array(BODY["spine_base"])) / TORSO for k, v in BODY.items()}
    assert np.allclose(result[0, root], 0.0, atol=1e-6)
    assert mask[0].sum() == topology.coverage(unified).sum()  # unused natives (NaN here) do not matter
    for i in np.flatnonzero(mask[0]):
        np.testing.assert_allclose(result[0, i], expected[unified.names[i]], atol=1e-5, err_msg=unified.names[i])


def test_normalize_2d_image_coordinates_come_out_y_up(unified):
    coco = load_topology("coco17")
    pixels = {k: (640 + 300 * v[0], 700 - 300 * v[1]) for k, v in BODY.items()}  # y down, as in an image
    native = np.array([pixels[j] for j in coco.joints])[None]
    out, mask = coco.to_unified(native, unified=unified)
    result = normalize(out, mask, unified, up=coco.up)
    u = unified.index
    assert np.allclose(result[0, unified.root_index], 0.0)
    torso = np.linalg.norm(result[0, u("spine_shoulder")] - result[0, u("spine_base")])
    assert torso == pytest.approx(1.0, abs=1e-6)
    assert result[0, u("nose")][1] > result[0, u("spine_shoulder")][1] > 0 > result[0, u("left_ankle")][1]
    assert result[0, u("left_shoulder")][0] > 0 > result[0, u("right_shoulder")][0]  # x is kept


def test_normalize_keeps_translation_and_uses_first_frame_with_a_root(unified):
    kinect = load_topology("kinect_v2")
    frames = []
    for step in range(5):
        frames.append(render_native(kinect, world_pose(0.0, (0.0, 0.0, 0.3 * step))))  # walking along +Z
    native = np.stack(frames)
    native[0, kinect.index("SpineBase")] = np.nan  # no root in frame 0: centre on frame 1's root
    out, mask = kinect.to_unified(native, unified=unified)
    result = normalize(out, mask, unified, up="+y")
    root = unified.root_index
    assert not mask[0, root] and not result[0, root].any()
    assert np.allclose(result[1, root], 0.0, atol=1e-6)
    np.testing.assert_allclose(result[4, root], [0.0, 0.0, 3 * 0.3 / TORSO], atol=1e-5)


def test_normalize_is_robust_to_missing_everything(unified):
    none, none_mask = load_topology("kinect_v2").to_unified(np.zeros((0, 25, 3)), unified=unified)
    assert none.shape == (0, 30, 3) and normalize(none, none_mask, unified, up="+y").shape == (0, 30, 3)
    empty = np.zeros((6, 30, 3), np.float32)
    result = normalize(empty, np.zeros((6, 30), bool), unified, up="-y")
    assert result.shape == (6, 30, 3) and np.isfinite(result).all() and not result.any()
    only_hands = np.zeros((6, 30), bool)
    only_hands[:, unified.index("left_hand")] = True
    points = np.random.default_rng(3).normal(size=(6, 30, 3)).astype(np.float32)
    result = normalize(points, only_hands, unified, up="+z")
    assert np.isfinite(result).all() and not result[:, ~only_hands[0]].any()


def test_up_rotation_is_a_proper_rotation_taking_up_to_plus_y():
    for up in ("+x", "-x", "+y", "-y", "+z", "-z"):
        rot = up_rotation(up)
        axis = np.zeros(3)
        axis["xyz".index(up[1])] = 1.0 if up[0] == "+" else -1.0
        np.testing.assert_allclose(rot @ axis, [0, 1, 0], atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)  # no mirror: left stays left
    with pytest.raises(TopologyError, match="up must be an axis"):
        up_rotation("up")


# ------------------------------------------------------------------------------- new sensors, bad files


def minimal_topology(**overrides) -> dict:
    data = {
        "name": "stick_sensor",
        "description": "a 5-point test sensor in REP-103 axes",
        "dims": 3,
        "up": "+z",
        "joints": ["pelvis", "chest", "l_hip", "r_hip", "head_point"],
        "canonical": {"pelvis": "spine_base", "chest": "spine_shoulder", "l_hip": "left_hip", "r_hip": "right_hip"},
        "derived": [{"joint": "spine_mid", "from": {"spine_base": 1, "chest": 1}}],
        "bones": [["pelvis", "chest"], ["pelvis", "l_hip"], ["pelvis", "r_hip"]],
        "flip_pairs": [["l_hip", "r_hip"]],
    }
    data.update(overrides)
    return data


def write_yaml(directory: Path, data: dict, name: str = "stick_sensor") -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_new_topology_is_one_yaml_file_and_no_code(tmp_path, unified):
    path = write_yaml(tmp_path, minimal_topology())
    sensor = load_topology(path)
    # REP-103: x forward, y left, z up. The person faces +x, so left hip is at +y.
    native = np.array([[0, 0, 1.0], [0, 0, 1.5], [0, 0.1, 0.95], [0, -0.1, 0.95], [0.05, 0, 1.75]])
    out, mask = sensor.to_unified(native[None], unified=unified)
    assert mask[0].sum() == 5
    np.testing.assert_allclose(out[0, unified.index("spine_mid")], [0, 0, 1.25])
    result = normalize(out, mask, unified, up=sensor.up)
    np.testing.assert_allclose(result[0, unified.index("spine_shoulder")], [0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(result[0, unified.index("left_hip")], [0.2, -0.1, 0], atol=1e-6)


def test_a_new_topology_in_the_config_dir_is_listed_by_name_and_by_the_cli(tmp_path):
    config = tmp_path / "config"
    shutil.copytree(config_dir(), config)
    write_yaml(config / "topologies", minimal_topology())
    env = {**os.environ, "HETSKEL_CONFIG_DIR": str(config)}
    result = subprocess.run([*cli_command(), "list"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert any(line.split()[:3] == ["stick_sensor", "5", "3D"] for line in result.stdout.splitlines())
    shown = subprocess.run([*cli_command(), "show", "stick_sensor"], capture_output=True, text=True, env=env)
    assert shown.returncode == 0 and "spine_mid = 0.5*spine_base + 0.5*chest" in shown.stdout


BAD_FILES = [
    # (what is wrong, overrides, text that must appear in the message)
    ("map to an unknown canonical joint", {"canonical": {"pelvis": "spine_bas"}}, ["canonical.pelvis", "spine_bas"]),
    ("map from an unknown native joint", {"canonical": {"belly": "spine_base"}}, ["canonical.belly", "belly"]),
    ("derived joint from an unknown source",
     {"derived": [{"joint": "spine_mid", "from": {"spine_base": 1, "sternum": 1}}]}, ["spine_mid", "sternum"]),
    ("derived joint that is not canonical", {"derived": [{"joint": "belly", "from": {"pelvis": 1}}]}, ["belly"]),
    ("derived joint already mapped", {"derived": [{"joint": "left_hip", "from": {"pelvis": 1}}]},
     ["left_hip", "l_hip"]),
    ("duplicate native names", {"joints": ["pelvis", "chest", "l_hip", "r_hip", "chest"]}, ["joints", "chest"]),
    ("two natives on one canonical joint", {"canonical": {"pelvis": "spine_base", "chest": "spine_base"}},
     ["canonical", "spine_base"]),
    ("wrong dims", {"dims": 4}, ["dims", "4"]),
    ("2D with a z up axis", {"dims": 2, "up": "+z"}, ["up", "+z"]),
    ("bad up axis", {"up": "upwards"}, ["up", "upwards"]),
    ("missing joints key", {"joints": None}, ["'joints'", "missing"]),
    ("bone to an unknown joint", {"bones": [["pelvis", "tail"]]}, ["bones", "tail"]),
    ("flip pair of an unknown joint", {"flip_pairs": [["l_hip", "r_hipp"]]}, ["flip_pairs", "r_hipp"]),
    ("name differs from the file", {"name": "other"}, ["name", "other", "stick_sensor"]),
    ("negative weights", {"derived": [{"joint": "spine_mid", "from": {"pelvis": -1}}]}, ["derived[0].from"]),
    ("limits without a number", {"limits": {"max_reach": "far", "max_extent": 3}}, ["limits.max_reach", "far"]),
    ("a limit that is no limit", {"limits": {"max_reach": 2, "max_extent": 3, "max_speed": 9}}, ["limits.max_speed"]),
    ("a missing limit", {"limits": {"max_reach": 2}}, ["limits.max_extent", "missing"]),
]  # fmt: skip


@pytest.mark.parametrize(("problem", "overrides", "culprits"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_topology_files_raise_errors_naming_file_and_culprit(tmp_path, problem, overrides, culprits):
    path = write_yaml(tmp_path, minimal_topology(**overrides))
    with pytest.raises(TopologyError) as error:
        load_topology(path)
    message = str(error.value)
    assert str(path.resolve()) in message or str(path) in message
    for culprit in culprits:
        assert culprit in message, f"{problem}: '{culprit}' not in: {message}"


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ndims: 3\njoints: [a, b\nup: '+y'\n")
    with pytest.raises(TopologyError, match=r"broken\.yaml: malformed YAML at line \d+"):
        load_topology(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(TopologyError, match=r"broken\.yaml: expected a YAML mapping"):
        load_topology(path)


def test_every_shipped_topology_and_robot_bounds_its_skeletons():
    """Without limits a joint at 1e30 would pass (it is finite): every file the package ships has them."""
    for topology in [load_topology(n) for n in list_topologies()] + [load_robot(n).as_topology() for n in
                                                                     list_robots()]:
        assert topology.limits is not None, topology.name
        assert topology.limits.max_reach <= topology.limits.max_extent


def test_a_name_no_file_system_can_hold_is_an_unknown_topology():
    for name in ("x" * 300, "coco17\0"):
        with pytest.raises(TopologyError, match="unknown topology"):
            load_topology(name)
        with pytest.raises(TopologyError, match="unknown robot"):
            load_robot(name)


def test_unknown_topology_lists_the_known_ones():
    with pytest.raises(TopologyError) as error:
        load_topology("kinect_v3")
    assert "kinect_v3" in str(error.value) and "kinect_v2" in str(error.value) and "coco17" in str(error.value)
    with pytest.raises(TopologyError, match=r"does_not_exist\.yaml does not exist"):
        load_topology("/tmp/does_not_exist.yaml")


def test_wrong_input_shapes_name_the_topology_and_shape(unified):
    coco = load_topology("coco17")
    with pytest.raises(TopologyError, match=r"coco17.*\(T, 17, 2\).*\(5, 16, 2\)"):
        coco.to_unified(np.zeros((5, 16, 2)), unified=unified)  # wrong joint count
    with pytest.raises(TopologyError, match=r"coco17.*\(5, 17, 3\)"):
        coco.to_unified(np.zeros((5, 17, 3)), unified=unified)  # 3D into a 2D topology
    with pytest.raises(TopologyError, match=r"coco17': confidence .*\(5, 17\).*\(5, 16\)"):
        coco.to_unified(np.zeros((5, 17, 2)), np.ones((5, 16)), unified=unified)


def test_unified_file_with_an_unknown_joint_is_rejected(tmp_path):
    data = yaml.safe_load((config_dir() / "unified.yaml").read_text())
    data["joints"][1] = "left_eyeball"
    path = tmp_path / "unified.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(
        TopologyError, match=r"unified\.yaml: key 'joints' names unknown canonical joint 'left_eyeball'"
    ):
        load_unified(path)


# ------------------------------------------------------------------------------------------------ robots


def robot_yaml(**overrides) -> dict:
    data = {
        "name": "toy_humanoid",
        "urdf": {"package": "example-robot-data", "path": "robots/toy/toy.urdf"},
        "up": "+z",
        "links": {"base_link": "spine_base", "torso_link": "spine_shoulder", "leg_left_1_link": "left_hip",
                  "leg_right_1_link": "right_hip"},
        "derived": [{"joint": "spine_mid", "from": {"spine_base": 0.5, "torso_link": 0.5}}],
    }  # fmt: skip
    data.update(overrides)
    return data


def test_robot_mapping_loads_and_acts_as_a_topology(tmp_path, unified):
    robot = load_robot(write_yaml(tmp_path, robot_yaml(), "toy_humanoid"))
    assert robot.urdf_package == "example-robot-data" and robot.link_names[0] == "base_link"
    topology = robot.as_topology()
    fk = np.array([[0, 0, 0.9], [0, 0, 1.4], [0, 0.1, 0.85], [0, -0.1, 0.85]])  # link positions from FK
    out, mask = topology.to_unified(fk, unified=unified)
    assert mask.sum() == 5 and np.allclose(out[unified.index("spine_mid")], [0, 0, 1.15])
    assert isinstance(list_robots(), list)


@pytest.mark.parametrize(
    ("overrides", "culprits"),
    [
        ({"links": {"base_link": "pelvis_centre"}}, ["links.base_link", "pelvis_centre"]),
        ({"urdf": {"path": "x.urdf"}}, ["urdf.package", "missing"]),
        ({"derived": [{"joint": "spine_mid", "from": {"knee_link": 1}}]}, ["knee_link"]),
        ({"links": {"a_link": "left_hip", "b_link": "left_hip"}}, ["b_link", "left_hip", "a_link"]),
    ],
)
def test_bad_robot_files_name_the_culprit(tmp_path, overrides, culprits):
    path = write_yaml(tmp_path, robot_yaml(**overrides), "toy_humanoid")
    with pytest.raises(TopologyError) as error:
        load_robot(path)
    for culprit in culprits:
        assert culprit in str(error.value)


# ---------------------------------------------------------------------------------------------------- CLI


def cli_command() -> list[str]:
    """The installed console script (setup.py entry point), next to this interpreter or on PATH."""
    beside = Path(sys.executable).parent / "hetskel-topology"
    found = str(beside) if beside.exists() else shutil.which("hetskel-topology")
    assert found, "hetskel-topology is not installed (pip install -e . / the setup script installs it)"
    return [found]


def test_cli_lists_every_topology_with_joints_dims_and_coverage():
    result = subprocess.run([*cli_command(), "list"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert set(SHIPPED) <= set(rows)
    for name, (joints, dims, _) in SHIPPED.items():
        assert rows[name][1:3] == [str(joints), f"{dims}D"]
    assert rows["kinect_v2"][3] == "25/30" and rows["coco17"][3] == "20/30"


def test_cli_show_and_its_error_for_an_unknown_name():
    shown = subprocess.run([*cli_command(), "show", "azure_kinect"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0
    assert "3 NECK -> spine_shoulder" in shown.stdout and "unified joints missing: neck" in shown.stdout
    bad = subprocess.run([*cli_command(), "show", "kinect_v3"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown topology 'kinect_v3'" in bad.stderr and "kinect_v2" in bad.stderr
