"""A launch as a terminal runs it: `hetskel-launch` (or any command) in its own process group, output collected."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from recognizer_support import stand_in_bundle_path

# Lines in the output that mean a node did not end as a ROS node should.
BAD_EXIT = ("Traceback", "KeyboardInterrupt", "context is invalid", "has died", "exit code -", "Exception ignored")


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


def bad_exit_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if any(bad in line for bad in BAD_EXIT)]


def assert_ended_cleanly(launch: Launch, code: int, nodes: list[int] | None = None) -> None:
    """Exit status 0, no line of a bad exit, and none of ``nodes`` left running."""
    assert code == 0, launch.output
    assert not bad_exit_lines(launch.lines), launch.output
    assert not [pid for pid in nodes or [] if alive(pid)], launch.output
