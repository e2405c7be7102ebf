"""A ROS user's install route works: clone into ws/src, `colcon build` (README's command), `. install/setup.bash`.

The workspace is built from this checkout's files with the venv's colcon and ROS 2 wheels as the underlay, then a
fresh shell that only sources install/setup.bash imports the messages and hetskel_ros from the workspace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
# The README's build command, run in the workspace root (colcon stops crawling at the hetskel_ros package,
# so the nested interface package is named as a second base path).
COLCON_BUILD = ["colcon", "build", "--base-paths", "src", "src/hetskel_ros/msg"]
_NOT_SOURCES = {".git", ".venv", "build", "install", "log", "__pycache__", ".pytest_cache", ".ruff_cache"}


def _source_files() -> list[Path]:
    """Files a clone would have: git's tracked and untracked-but-not-ignored files, else a filtered walk."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout
        return [Path(name) for name in listed.decode().split("\0") if name and (REPO_ROOT / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [
            path.relative_to(REPO_ROOT)
            for path in REPO_ROOT.rglob("*")
            if path.is_file() and not _NOT_SOURCES & set(path.relative_to(REPO_ROOT).parts)
        ]


def test_colcon_workspace_builds_and_install_setup_bash_provides_messages_and_package(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    package_dir = workspace / "src" / "hetskel_ros"
    for relative in _source_files():
        (package_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, package_dir / relative)

    venv = Path(sys.prefix)  # the ROS 2 wheels live here: it is the underlay, as /opt/ros/<distro> would be
    build_env = {
        **os.environ,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(venv),
        "CMAKE_PREFIX_PATH": str(venv),
        "AMENT_PREFIX_PATH": str(venv),
        "COLCON_HOME": str(tmp_path / "colcon_home"),  # no user defaults.yaml changes the build
    }
    build = subprocess.run(COLCON_BUILD, cwd=workspace, env=build_env, capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, f"colcon build failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    assert "hetskel_msgs" in build.stdout and "hetskel_ros" in build.stdout

    probe = textwrap.dedent(
        """
        import json
        from hetskel_msgs.msg import Skeleton, SkeletonArray, Action, ActionArray, ActionHypothesis
        from rclpy.serialization import deserialize_message, serialize_message
        import hetskel_msgs, hetskel_ros
        from hetskel_ros.ros.bag_types import msg_definition_dir

        sent = SkeletonArray(skeletons=[Skeleton(topology="coco17", dims=2, positions=[1.5, 2.5])])
        back = deserialize_message(serialize_message(sent), SkeletonArray)
        print(json.dumps({
            "hetskel_msgs": hetskel_msgs.__file__,
            "hetskel_ros": hetskel_ros.__file__,
            "msg_dir": str(msg_definition_dir()),
            "round_trip": list(back.skeletons[0].positions),
        }))
        """
    )
    # A fresh login-like shell: nothing from this process but PATH to the interpreter and the DDS test settings.
    shell_env = {
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PATH": f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        **{key: value for key, value in os.environ.items() if key.startswith("ROS_")},
    }
    run = subprocess.run(
        ["bash", "-c", '. install/setup.bash && python -c "$PROBE"'],
        cwd=workspace,
        env={**shell_env, "PROBE": probe},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"import after sourcing install/setup.bash failed:\n{run.stdout}\n{run.stderr}"
    found = json.loads(run.stdout.strip().splitlines()[-1])
    install = workspace / "install"
    assert Path(found["hetskel_msgs"]).is_relative_to(install / "hetskel_msgs"), found
    assert Path(found["hetskel_ros"]).is_relative_to(install / "hetskel_ros"), found
    assert Path(found["msg_dir"]) == install / "hetskel_msgs" / "share" / "hetskel_msgs" / "msg"
    assert found["round_trip"] == [1.5, 2.5]
    # `ros2 run hetskel_ros <command>` looks for console scripts here (setup.cfg's install_scripts).
    assert (install / "hetskel_ros" / "lib" / "hetskel_ros" / "hetskel-topology").is_file()

    # `colcon test` runs the package's pytest suite (setup.py's test extra tells colcon to use pytest); one quick
    # file of it here, in the built workspace, as a ROS user runs it.
    tested = subprocess.run(
        ["bash", "-c", ". install/setup.bash && colcon test --packages-select hetskel_ros "
                       "--pytest-args test/test_package_metadata.py && colcon test-result --all"],
        cwd=workspace,
        env={**build_env, **{key: value for key, value in os.environ.items() if key.startswith("ROS_")}},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tested.returncode == 0, f"colcon test failed:\n{tested.stdout[-4000:]}\n{tested.stderr[-4000:]}"
    assert "2 tests, 0 errors, 0 failures, 0 skipped" in tested.stdout, tested.stdout
