"""The venv scripts/setup.sh makes is a ROS prefix for hetskel_ros: a ROS install on top of it finds the package.

`ros2 pkg` reads the ament index marker, `ros2 launch` and get_package_share_directory read share/hetskel_ros, and
`ros2 run` looks for executables in lib/hetskel_ros. The upstream `ros2` command line has no wheel here, so this
test resolves the package as those tools do, through ament_index_python with only the venv on AMENT_PREFIX_PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

VENV = Path(sys.prefix)
REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not (VENV / ".hetskel_setup_stamp").is_file(),
                                reason="the interpreter's venv was not made by scripts/setup.sh")

RESOLVE = """
import json
from ament_index_python.packages import get_package_prefix, get_package_share_directory, get_packages_with_prefixes
print(json.dumps({"prefix": get_package_prefix("hetskel_ros"), "share": get_package_share_directory("hetskel_ros"),
                  "listed": "hetskel_ros" in get_packages_with_prefixes()}))
"""


def only_the_venv_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH")}
    return {**env, "AMENT_PREFIX_PATH": str(VENV)}


def test_the_ament_index_finds_the_package_and_its_share_directory_in_the_venv():
    result = subprocess.run([sys.executable, "-c", RESOLVE], capture_output=True, text=True,
                            env=only_the_venv_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["listed"] and Path(found["prefix"]) == VENV
    share = Path(found["share"])
    assert share == VENV / "share" / "hetskel_ros"
    for relative in ("launch/recognize.launch.py", "config/recognize.yaml", "config/recognize_rgb.yaml",
                     "config/topologies/coco17.yaml", "models/default.hetskel"):
        assert (share / relative).is_file(), relative
    assert ET.parse(share / "package.xml").getroot().findtext("name") == "hetskel_ros"


def test_every_console_command_is_where_ros2_run_looks_and_runs():
    from importlib.metadata import distribution

    lib = VENV / "lib" / "hetskel_ros"
    commands = [e.name for e in distribution("hetskel_ros").entry_points if e.group == "console_scripts"]
    assert {"recognizer", "bag_player", "video_source", "mediapipe_pose", "hetskel-bag", "hetskel-topology"} <= set(
        commands)
    for name in commands:
        assert os.access(lib / name, os.X_OK), f"{lib / name} is not an executable"
    listed = subprocess.run([str(lib / "hetskel-topology"), "list"], capture_output=True, text=True,
                            env=only_the_venv_env(), timeout=60)
    assert listed.returncode == 0 and "coco17" in listed.stdout, listed.stderr
