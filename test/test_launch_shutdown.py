"""Stopping a launch as a user does: Ctrl-C in a terminal, twice, and the launcher killed with kill -9.

A terminal delivers Ctrl-C to every process of its foreground process group, and `ros2 launch` (like
`hetskel-launch`) forwards a second SIGINT to children that already got the terminal's. So the signal goes to the
whole group here, and once more while the nodes are shutting down. Every node must still end with status 0, no
traceback and no error about a context that is gone. A supervisor that kills the launcher with SIGKILL must not
leave a node running (a restart would run two recognizers on `actions`).
Data: Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from launch_support import Launch, alive, assert_ended_cleanly
from rgb_media import write_astronaut_video

from hetskel_ros.ros.bagtools import cli

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def long_bag(tmp_path_factory) -> Path:
    """A bag that plays longer than the test waits: the player is mid-bag when Ctrl-C comes."""
    path = tmp_path_factory.mktemp("shutdown") / "long"
    assert cli.main(["make", str(path), "--people", "2", "--limit", "6", "--idle", "0.5", "1.0"]) == 0
    return path


@pytest.mark.parametrize("gap_s", [0.005, 0.05])
def test_ctrl_c_twice_to_the_group_ends_recognizer_and_bag_player_cleanly(long_bag, gap_s):
    launch = Launch(f"bag:={long_bag}", "use_sim_time:=true")
    try:
        launch.wait_for_line("actions on", "messages on")
        time.sleep(1.0)  # playing
        nodes = launch.children()
        assert len(nodes) == 2, launch.output
        assert launch.ctrl_c_again_and_again(gap_s) >= 2
    finally:
        code = launch.finish()
    assert_ended_cleanly(launch, code, nodes)


def test_ctrl_c_twice_to_the_group_ends_the_rgb_nodes_cleanly(tmp_path):
    """Also: in a namespace, every topic of the RGB path moves with it (the remaps are complete)."""
    video = write_astronaut_video(tmp_path / "walk.mp4", frames=600, size=(320, 240))
    launch = Launch("rgb:=true", f"video:={video}", "namespace:=robot1")
    try:
        launch.wait_for_line("actions on", "publishing '", "MediaPipe Pose (")
        pose_line = next(line for line in launch.lines if "MediaPipe Pose (" in line)
        assert ("on '/robot1/rgb/image' and '/robot1/rgb/image/compressed' -> '/robot1/rgb/skeletons', "
                "'/robot1/rgb/world_skeletons'") in pose_line
        assert "on '/robot1/rgb/image'" in next(line for line in launch.lines if "publishing '" in line)
        assert "inputs: rgb (skeleton_array on '/robot1/rgb/skeletons'); actions on '/robot1/actions'" in launch.output
        time.sleep(1.5)  # frames flow through mediapipe_pose
        nodes = launch.children()
        assert len(nodes) == 3, launch.output
        assert launch.ctrl_c_again_and_again(0.02) >= 2
    finally:
        code = launch.finish()
    assert_ended_cleanly(launch, code, nodes)


def test_ctrl_c_twice_ends_a_bag_player_waiting_for_subscribers_cleanly(long_bag):
    """The player polls its publishers' subscription counts until someone listens: Ctrl-C comes meanwhile."""
    launch = Launch(command=[sys.executable, "-m", "hetskel_ros.ros.bagtools.player", "--ros-args", "-p",
                             f"bag:={long_bag}", "-r", "__ns:=/nobody_listens", "-p", "clock:=false"])
    try:
        launch.wait_for_line("messages on")
        time.sleep(0.5)
        assert launch.ctrl_c_again_and_again(0.01) >= 2
    finally:
        code = launch.finish()
    assert_ended_cleanly(launch, code)


def test_nodes_die_with_a_killed_launcher():
    launch = Launch()
    nodes: list[int] = []
    try:
        launch.wait_for_line("actions on")
        nodes = launch.children()
        assert nodes
        os.kill(launch.process.pid, signal.SIGKILL)
        launch.process.wait(timeout=5.0)
        deadline = time.monotonic() + 15.0
        while [pid for pid in nodes if alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in nodes if alive(pid)]
    finally:
        for pid in [pid for pid in nodes if alive(pid)]:
            os.kill(pid, signal.SIGKILL)
        launch.finish()
    assert not left, f"still running after the launcher was killed: {left}\n{launch.output}"
    assert "Traceback" not in launch.output


def needs_ros2_launch() -> None:
    for module in ("launch", "launch_ros"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"'{module}' is not installed: it has no PyPI wheel, only a ROS 2 install has it")
    if shutil.which("ros2") is None:
        pytest.skip("the ros2 command line is not installed (no PyPI wheel; a ROS 2 install has it)")


def test_the_launch_file_builds_its_description():
    needs_ros2_launch()
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    source = PythonLaunchDescriptionSource(str(REPO / "launch" / "recognize.launch.py"))
    description = source.get_launch_description(None)
    executables = {getattr(e, "node_executable", None) for e in description.entities} - {None}
    assert executables == {"recognizer", "video_source", "mediapipe_pose", "bag_player"}


def test_ctrl_c_twice_to_ros2_launch_ends_every_node_cleanly(long_bag):
    needs_ros2_launch()
    launch = Launch(f"bag:={long_bag}", "use_sim_time:=true",
                    launcher=("ros2", "launch", "hetskel_ros", "recognize.launch.py"))
    try:
        launch.wait_for_line("actions on", "messages on")
        time.sleep(1.0)
        assert launch.ctrl_c_again_and_again(0.05) >= 2
    finally:
        code = launch.finish()
    assert_ended_cleanly(launch, code)


@pytest.fixture(scope="module")
def short_bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bag_end") / "short"
    assert cli.main(["make", str(path), "--people", "1", "--limit", "2", "--idle", "0.5", "1.0"]) == 0
    return path


def test_exit_on_bag_end_ends_the_launch_once_the_bag_is_played(ros, short_bag):
    from hetskel_msgs.msg import ActionArray

    from hetskel_ros.ros.bagtools.bag_io import read_bag

    received: list = []
    ros.node("bag_end_probe").create_subscription(ActionArray, "/actions", received.append, 500)
    duration = read_bag(short_bag, ["/skeletons"]).duration_s
    launch = Launch(f"bag:={short_bag}", "use_sim_time:=true", "exit_on_bag_end:=true")
    code = launch.finish(timeout=duration + 40.0)  # ends by itself, or fails the test after the timeout
    assert_ended_cleanly(launch, code)
    assert received, "the recognizer published nothing before the launch ended"
    assert "played " in launch.output  # bag_player's summary: it ended by itself, not by the launch's stop


def test_exit_on_bag_end_with_a_bag_that_cannot_be_played_ends_the_launch_with_its_error(tmp_path):
    garbage = tmp_path / "garbage.mcap"
    garbage.write_text("not a bag")
    launch = Launch(f"bag:={garbage}", "use_sim_time:=true", "exit_on_bag_end:=true")
    code = launch.finish(timeout=60.0)
    assert code == 1, launch.output
    assert "bag_player: " in launch.output and "not a readable rosbag2 bag" in launch.output


@pytest.mark.parametrize("after_s", [0.5, 1.0, 2.0])
def test_ctrl_c_while_the_nodes_are_still_starting_ends_them_cleanly(tmp_path, after_s):
    """Ctrl-C soon after the start: the nodes are importing their libraries or loading the model."""
    video = write_astronaut_video(tmp_path / "short.mp4", frames=30, size=(160, 120))
    launch = Launch("rgb:=true", f"video:={video}")
    try:
        time.sleep(after_s)
        assert launch.ctrl_c_again_and_again(0.05) >= 1
    finally:
        code = launch.finish()
    assert_ended_cleanly(launch, code)
