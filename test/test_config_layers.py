"""A user adds a topology or a robot mapping from their own folder, layered over the shipped ones.

Two ways: a search path of configuration layers (``HETSKEL_CONFIG_PATH``, and ``HETSKEL_CONFIG_DIR`` as one more
layer), each holding only what it adds (``topologies/<name>.yaml``, ``robots/<name>.yaml``), and a path to the file
in the input's ``topology`` parameter. The shipped topologies, robots and unified skeleton stay in use.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from recognizer_support import skeleton_array, skeleton_msg, stand_in_bundle_path

from hetskel_ros.paths import config_dir
from hetskel_ros.topology import list_topologies, load_topology, load_unified
from hetskel_ros.topology.errors import TopologyError
from hetskel_ros.topology.robots import list_robots, load_robot

SHIPPED_TOPOLOGIES = sorted(p.stem for p in (config_dir() / "topologies").glob("*.yaml"))
SHIPPED_ROBOTS = sorted(p.stem for p in (config_dir() / "robots").glob("*.yaml"))
STICK_SENSOR = {
    "name": "stick_sensor", "description": "a 5-point test sensor in REP-103 axes", "dims": 3, "up": "+z",
    "joints": ["pelvis", "chest", "l_hip", "r_hip", "head_point"],
    "canonical": {"pelvis": "spine_base", "chest": "spine_shoulder", "l_hip": "left_hip", "r_hip": "right_hip"},
    "derived": [{"joint": "spine_mid", "from": {"spine_base": 1, "chest": 1}}],
    "bones": [["pelvis", "chest"], ["pelvis", "l_hip"], ["pelvis", "r_hip"]], "flip_pairs": [["l_hip", "r_hip"]],
}  # fmt: skip
TOY_ROBOT = {
    "name": "toy_humanoid", "urdf": {"package": "example-robot-data", "path": "robots/toy/toy.urdf"}, "up": "+z",
    "links": {"base_link": "spine_base", "torso_link": "spine_shoulder", "leg_left_1_link": "left_hip",
              "leg_right_1_link": "right_hip"},
}  # fmt: skip
# REP-103 positions of the stick sensor's joints: a person standing, facing +x
STICK_POSE = np.array([[0, 0, 1.0], [0, 0, 1.5], [0, 0.1, 0.95], [0, -0.1, 0.95], [0.05, 0, 1.75]], np.float32)


def layer(root: Path, **files: dict) -> Path:
    """A configuration layer holding only the given files: ``topologies/x`` or ``robots/x`` -> YAML data."""
    for relative, data in files.items():
        path = root / f"{relative.replace('__', '/')}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return root


@pytest.mark.parametrize("variable", ["HETSKEL_CONFIG_PATH", "HETSKEL_CONFIG_DIR"])
def test_a_layer_with_only_the_new_topology_adds_it_to_the_shipped_ones(tmp_path, monkeypatch, variable):
    monkeypatch.setenv(variable, str(layer(tmp_path / "mine", topologies__stick_sensor=STICK_SENSOR)))
    assert list_topologies() == sorted([*SHIPPED_TOPOLOGIES, "stick_sensor"])
    assert load_topology("stick_sensor").num_joints == 5
    assert load_topology("coco17").num_joints == 17
    assert load_unified().num_joints == 30  # the unified skeleton still comes from the shipped config


def test_layers_are_searched_in_order_and_each_adds_its_own(tmp_path, monkeypatch):
    first = layer(tmp_path / "first", topologies__stick_sensor=STICK_SENSOR)
    renamed = {**STICK_SENSOR, "name": "other_stick", "description": "second layer"}
    shadow = {**STICK_SENSOR, "description": "shadowed by the first layer"}
    second = layer(tmp_path / "second", topologies__other_stick=renamed, topologies__stick_sensor=shadow)
    monkeypatch.setenv("HETSKEL_CONFIG_PATH", os.pathsep.join([str(first), str(second)]))
    assert {"stick_sensor", "other_stick", "coco17"} <= set(list_topologies())
    assert load_topology("stick_sensor").description == STICK_SENSOR["description"]
    assert load_topology("other_stick").description == "second layer"


def test_a_layer_adds_a_robot_mapping_beside_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("HETSKEL_CONFIG_PATH", str(layer(tmp_path / "mine", robots__toy_humanoid=TOY_ROBOT)))
    assert list_robots() == sorted([*SHIPPED_ROBOTS, "toy_humanoid"])
    assert load_robot("toy_humanoid").link_names[0] == "base_link"
    assert load_robot(SHIPPED_ROBOTS[0]).name == SHIPPED_ROBOTS[0]


def test_the_topology_cli_lists_a_layered_topology_with_the_shipped_ones(tmp_path):
    env = {**os.environ, "HETSKEL_CONFIG_PATH": str(layer(tmp_path / "mine", topologies__stick_sensor=STICK_SENSOR))}
    result = subprocess.run([sys.executable, "-m", "hetskel_ros.topology.cli", "list"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"stick_sensor", *SHIPPED_TOPOLOGIES} <= listed


def test_an_unknown_topology_says_how_to_add_one():
    with pytest.raises(TopologyError, match=r"unknown topology 'my_sensor' .*pass a path to a YAML file, or add "
                                            r"<dir>/topologies/<name>.yaml and put <dir> on HETSKEL_CONFIG_PATH"):
        load_topology("my_sensor")


def test_an_inputs_topology_may_be_a_path_and_messages_name_it(tmp_path):
    from hetskel_ros.ros.adapters import InputConfig, adapter_class

    path = layer(tmp_path, topologies__stick_sensor=STICK_SENSOR) / "topologies" / "stick_sensor.yaml"
    config = InputConfig(name="stick", topic="stick/skeletons", kind="skeleton_array", topology=str(path))
    adapter = adapter_class("skeleton_array")(config)
    assert adapter.dims() == 3
    observations = adapter.convert(skeleton_array([skeleton_msg("stick_sensor", STICK_POSE, 5.0, track_id=4)], 5.0))
    assert observations[0].topology == "stick_sensor" and observations[0].track_id == 4
    assert observations[0].mask.sum() == 5  # four mapped joints and the derived spine_mid
    wrong = skeleton_array([skeleton_msg("coco17", np.zeros((17, 2)), 5.0)], 5.0)
    assert adapter.convert_parts(wrong)[1][0].reason == "topology_mismatch"


def test_the_recognizer_starts_with_a_topology_file_in_its_parameters(ros, tmp_path):
    from hetskel_ros.ros.recognizer_node import RecognizerNode

    path = layer(tmp_path, topologies__stick_sensor=STICK_SENSOR) / "topologies" / "stick_sensor.yaml"
    node = ros.add_node(RecognizerNode(context=ros.context, cli_args=[
        "--ros-args", "-p", f"model:={stand_in_bundle_path()}", "-p", "backend:=onnxruntime",
        "-p", "inputs.names:=[stick]", "-p", "inputs.stick.topic:=stick/skeletons",
        "-p", f"inputs.stick.topology:={path}"]))
    assert node.adapters["stick"].converter.expected == "stick_sensor"
    with pytest.raises(ValueError, match=r"topology file /nonexistent/x.yaml does not exist"):
        RecognizerNode("second", context=ros.context, cli_args=[
            "--ros-args", "-p", f"model:={stand_in_bundle_path()}", "-p", "backend:=onnxruntime",
            "-p", "inputs.names:=[stick]", "-p", "inputs.stick.topic:=stick/skeletons",
            "-p", "inputs.stick.topology:=/nonexistent/x.yaml"])
