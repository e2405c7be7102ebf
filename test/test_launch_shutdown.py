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
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from recognizer_support import stand_in_bundle_path
from rgb_media import write_astronaut_video

from hetskel_ros.ros.bagtools import cli

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent

# Lines in the output that mean a node did not end as a ROS node should.
BAD_EXIT = ("Traceback", "KeyboardInterrupt", "context is invalid", "has died", "exit code -",
            "Exception ignored")


class Launch:
    """`hetskel-launch` in its own process group (as a terminal's foreground job), output collected line by line."""

    def __init__(self, *args: str, launcher: tuple[str, ...] = (sys.executable, "-m", "hetskel_ros.ros.launcher"),
                 command: list[str] | None = None):
        command = command or [*launcher, f"model:={stand_in_bundle_path()}", "backend:=onnxruntime", *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, *needles: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(any(n in line for line in self.lines) for n in needles):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"no line with each of {needles} in time:\n{self.output}")
            time.sleep(0.05)

    def children(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def ctrl_c_again_and_again(self, gap_s: float) -> int:
        """SIGINT to the whole process group, as a terminal sends it, then again every ``gap_s`` while anything of
        the group lives (a user pressing Ctrl-C again; ``ros2 launch`` forwarding one): some of them must fall into
        each node's shutdown. Returns how many signals were sent."""
        sent = 0
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, signal.SIGINT)
            except ProcessLookupError:
                break
            sent += 1
            time.sleep(gap_s)
        return sent

    def finish(self, timeout: float = 30.0) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._reader.join(timeout=5.0)
        return code


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


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
    assert code == 0, launch.output
    assert not [line for line in launch.lines if any(bad in line for bad in BAD_EXIT)], launch.output
    assert not [pid for pid in nodes if alive(pid)]


def test_ctrl_c_twice_to_the_group_ends_the_rgb_nodes_cleanly(tmp_path):
    video = write_astronaut_video(tmp_path / "walk.mp4", frames=600, size=(320, 240))
    launch = Launch("rgb:=true", f"video:={video}")
    try:
        launch.wait_for_line("actions on", "publishing '", "MediaPipe Pose (")
        time.sleep(1.5)  # frames flow through mediapipe_pose
        nodes = launch.children()
        assert len(nodes) == 3, launch.output
        assert launch.ctrl_c_again_and_again(0.02) >= 2
    finally:
        code = launch.finish()
    assert code == 0, launch.output
    assert not [line for line in launch.lines if any(bad in line for bad in BAD_EXIT)], launch.output
    assert not [pid for pid in nodes if alive(pid)]


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
    assert code == 0, launch.output
    assert not [line for line in launch.lines if any(bad in line for bad in BAD_EXIT)], launch.output


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
    assert code == 0, launch.output
    assert not [line for line in launch.lines if any(bad in line for bad in BAD_EXIT)], launch.output
