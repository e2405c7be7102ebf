"""Configuration errors are one line naming what is wrong, and exit status 1; a misspelt parameter is warned about.

The recognizer reads its parameters as rcl parses them: parameter files and ``-p`` rules go through the node's own
command-line arguments (``cli_args``) in this process, and through the console command where the error comes before
the node exists (rclpy.init, use_sim_time). `hetskel-launch` refuses bad launch arguments before starting anything.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from recognizer_support import stand_in_bundle_path

MODEL = ["-p", f"model:={stand_in_bundle_path()}", "-p", "backend:=onnxruntime"]


def params_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text("/**:\n  ros__parameters:\n" + textwrap.indent(textwrap.dedent(body), "    "))
    return path


def build_recognizer(ros, *ros_args: str):
    from hetskel_ros.ros.recognizer_node import RecognizerNode

    return RecognizerNode(context=ros.context, cli_args=["--ros-args", *MODEL, *ros_args])


@pytest.mark.parametrize(("body", "message"), [
    ("inputs:\n  names: []\n", "parameter 'inputs.names' must list unique, non-empty input names, got []"),
    ("inputs:\n  names: [depth, rgb]\n  depth: {topic: body_tracking_data, kind: azure_markers}\n",
     "input 'rgb' of 'inputs.names' has no section: parameter 'inputs.rgb.topic' is required"),
    ("inputs:\n  names: [depth]\n  depth: {kind: azure_markers}\n",
     "input 'depth' of 'inputs.names' has no topic: parameter 'inputs.depth.topic' is required"),
    ("inputs:\n  names: [depth]\n  depth: {topic: 'body tracking'}\n",
     "parameter 'inputs.depth.topic': 'body tracking' is not a valid topic name"),
    ("actions_topic: a//b\n", "parameter 'actions_topic': 'a//b' is not a valid topic name"),
])
def test_a_bad_input_configuration_names_the_parameter(ros, tmp_path, body, message):
    with pytest.raises(ValueError) as error:
        build_recognizer(ros, "--params-file", str(params_file(tmp_path, body)))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_parameters_under_inputs_and_at_the_top_level_are_warned_about(ros, tmp_path, capfd):
    path = params_file(tmp_path, """\
        threshhold: 0.3
        inputs:
          names: [depth]
          depth: {topic: body_tracking_data, rate_hx: 15.0}
          rgb: {topic: rgb/skeletons}
        """)
    node = ros.add_node(build_recognizer(ros, "--params-file", str(path)))
    assert node.params.unknown == ("inputs.depth.rate_hx (did you mean inputs.depth.rate_hz?)",
                                   "threshhold (did you mean threshold?)")  # rgb: a section of an unlisted input
    assert node.params.recognizer.threshold == 0.5
    logged = capfd.readouterr().err
    assert "unknown parameter(s), ignored: inputs.depth.rate_hx (did you mean inputs.depth.rate_hz?)" in logged


def test_the_shipped_configurations_have_no_unknown_parameters(ros):
    from hetskel_ros.paths import config_dir

    for files in (["recognize.yaml"], ["recognize.yaml", "recognize_rgb.yaml"]):
        args = [a for name in files for a in ("--params-file", str(config_dir() / name))]
        node = ros.add_node(build_recognizer(ros, *args, "-r", f"__node:=recognizer_{len(files)}"))
        assert node.params.unknown == ()


def run_recognizer(*ros_args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "hetskel_ros.ros.recognizer_node", "--ros-args", *MODEL, *ros_args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess, program: str, message: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith(f"{program}: ")]
    assert len(ours) == 1 and message in ours[0], result.stderr


@pytest.mark.parametrize(("make_args", "message"), [
    (lambda tmp: ["-p", "use_sim_time:=maybe"], "parameter 'use_sim_time' to 'maybe'"),
    (lambda tmp: ["--params-file", str(params_file(tmp, "model: [\n"))],
     "params.yaml: not valid YAML: expected the node content, but found '<stream end>' at line 4, column 1"),
    (lambda tmp: ["--params-file", "/nonexistent.yaml"], "parameter file /nonexistent.yaml: No such file or directory"),
    (lambda tmp: ["-p", "threshold:=[0.5"], "parameter 'threshold': value '[0.5' is not valid YAML"),
])
def test_the_recognizer_command_reports_a_bad_argument_in_one_line(tmp_path, make_args, message):
    assert_one_line_error(run_recognizer(*make_args(tmp_path)), "recognizer", message)


@pytest.mark.parametrize(("argument", "message"), [
    ("config:=/nonexistent.yaml", "launch argument config: parameter file /nonexistent.yaml does not exist"),
    ("use_sim_time:=maybe", "launch argument use_sim_time:=maybe is not true or false"),
    ("rgb:=perhaps", "launch argument rgb:=perhaps is not true or false"),
])
def test_hetskel_launch_refuses_a_bad_argument_before_starting_anything(argument, message):
    result = subprocess.run([sys.executable, "-m", "hetskel_ros.ros.launcher", argument], capture_output=True,
                            text=True, timeout=60)
    assert_one_line_error(result, "hetskel-launch", message)


def test_bag_player_reports_a_missing_or_unreadable_bag_in_one_line(tmp_path):
    garbage = tmp_path / "garbage.mcap"
    garbage.write_text("not a bag")
    for bag, message in [("/nonexistent_bag", "bag /nonexistent_bag does not exist"),
                         (str(garbage), "garbage.mcap: not a readable rosbag2 bag")]:
        result = subprocess.run([sys.executable, "-m", "hetskel_ros.ros.bagtools.player", "--ros-args", "-p",
                                 f"bag:={bag}"], capture_output=True, text=True, timeout=60)
        assert_one_line_error(result, "bag_player", message)
        assert "AttributeError" not in result.stderr
