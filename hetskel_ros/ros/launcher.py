"""``hetskel-launch``: start the nodes of launch/recognize.launch.py as processes, without the `launch` package.

    hetskel-launch                                        # recognizer with config/recognize.yaml
    hetskel-launch model:=models/default.hetskel backend:=onnxruntime use_sim_time:=true
    hetskel-launch --config my.yaml --namespace robot1 --bag demo_bag

It takes the launch file's arguments (as ``name:=value`` or ``--name value``) and starts the same executables with
the same parameter files, node names, namespaces and remappings. `ros2 launch` needs the launch/launch_ros packages,
which have no wheels (only a full ROS 2 install has them); this command keeps the demo and the tests on the same
configuration. Ctrl-C or SIGTERM stops every node (SIGINT first, as `ros2 launch` does, then SIGTERM, then SIGKILL);
when the recognizer exits, the rest are stopped and its exit status is returned. With ``exit_on_bag_end:=true``
(and a ``bag``) the launch also ends once bag_player has played the bag (with use_sim_time nothing else would end it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from hetskel_ros.paths import config_dir

# executable -> entry point, for running from a source tree where the console scripts are not installed
ENTRY_POINTS = {"recognizer": "hetskel_ros.ros.entry:recognizer"}
PRIMARY = "recognizer"
BAG_PLAYER = "bag_player"
BAG_END_GRACE_S = 1.0  # exit_on_bag_end: time for the recognizer to handle the bag's last messages
SIGINT_GRACE_S = 10.0
SIGTERM_GRACE_S = 5.0
CTRL_C_WAIT_S = 2.0
# mediapipe_pose's every topic under rgb/ (recognize.launch.py has the same list): a namespace then moves all of them
RGB_POSE_REMAPS = (("image", "rgb/image"), ("image/compressed", "rgb/image/compressed"),
                   ("skeletons", "rgb/skeletons"), ("world_skeletons", "rgb/world_skeletons"))
# Given to every node: this launcher's pid. The node asks for SIGTERM when it dies (hetskel_ros.ros.node_main).
PARENT_PID_ENV = "HETSKEL_LAUNCHER_PID"


@dataclass(frozen=True)
class NodeProcess:
    """One node as launch/recognize.launch.py declares it."""

    executable: str
    name: str
    params_files: tuple[str, ...] = ()
    parameters: dict[str, str | bool] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()

    def ros_args(self, namespace: str) -> list[str]:
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if namespace:
            args += ["-r", f"__ns:=/{namespace.strip('/')}"]
        for path in self.params_files:
            args += ["--params-file", path]
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={yaml_value(value)}"]
        for source, target in self.remappings:
            args += ["-r", f"{source}:={target}"]
        return args


def yaml_value(value: str | bool) -> str:
    """A -p value as rcl reads it (YAML): booleans as such, everything else a quoted string, so a camera index "0"
    or a path that looks like a number stays a string (the launch file does the same with ParameterValue(str))."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "'" + str(value).replace("'", "''") + "'"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hetskel-launch", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(config_dir() / "recognize.yaml"), help="recognizer parameter file")
    p.add_argument("--model", default="", help="model bundle ('' = the last live swap's, else the shipped model)")
    p.add_argument("--backend", default="", help="inference backend, e.g. onnxruntime ('' = the config's order)")
    p.add_argument("--namespace", default="", help="namespace of every node")
    p.add_argument("--use_sim_time", "--use-sim-time", dest="use_sim_time", default="false",
                   help="true: use /clock (bag replay)")
    p.add_argument("--rgb", default="false", help="true: also start video_source and mediapipe_pose")
    p.add_argument("--video", default="0", help="video_source: a video file or camera index")
    p.add_argument("--rgb_config", "--rgb-config", dest="rgb_config", default=str(config_dir() / "recognize_rgb.yaml"),
                   help="recognizer inputs for the RGB pipeline")
    p.add_argument("--bag", default="", help="replay this rosbag2 bag into the recognizer")
    p.add_argument("--exit_on_bag_end", "--exit-on-bag-end", dest="exit_on_bag_end", default="false",
                   help="true: end the launch when bag_player has played the bag")
    p.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    return p


def launch_style(argv: Sequence[str]) -> list[str]:
    """``name:=value`` (the ros2 launch form) -> ``--name value``."""
    out: list[str] = []
    for arg in argv:
        if ":=" in arg and not arg.startswith("-"):
            name, value = arg.split(":=", 1)
            out += [f"--{name}", value]
        else:
            out.append(arg)
    return out


TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off", "")


def is_true(value: str) -> bool:
    return str(value).strip().lower() in TRUE_WORDS


def check_arguments(args: argparse.Namespace) -> None:
    """Launch arguments that must be booleans or readable files: one line naming the argument, exit status 1."""
    for name in ("use_sim_time", "rgb", "exit_on_bag_end"):
        value = str(getattr(args, name)).strip().lower()
        if value not in TRUE_WORDS + FALSE_WORDS:
            raise SystemExit(f"hetskel-launch: launch argument {name}:={getattr(args, name)} is not true or false")
    for name in ("config", "rgb_config") if is_true(args.rgb) else ("config",):
        if not Path(getattr(args, name)).is_file():
            raise SystemExit(f"hetskel-launch: launch argument {name}: parameter file {getattr(args, name)} "
                             "does not exist")


def plan(args: argparse.Namespace) -> list[NodeProcess]:
    """The nodes recognize.launch.py would start for these arguments, in start order."""
    check_arguments(args)
    sim_time = is_true(args.use_sim_time)
    overrides = {"use_sim_time": sim_time}
    overrides.update({k: v for k, v in (("model", args.model), ("backend", args.backend)) if v})
    files = (args.config, args.rgb_config) if is_true(args.rgb) else (args.config,)
    nodes = [NodeProcess("recognizer", "recognizer", files, overrides)]
    if is_true(args.rgb):
        nodes.append(NodeProcess("video_source", "video_source", (), {"source": args.video, "use_sim_time": sim_time},
                                 (("image", "rgb/image"),)))
        nodes.append(NodeProcess("mediapipe_pose", "mediapipe_pose", (), {"use_sim_time": sim_time},
                                 RGB_POSE_REMAPS))
    if args.bag:
        nodes.append(NodeProcess("bag_player", "bag_player", (), {"bag": args.bag}))
    return nodes


def executable_command(executable: str) -> list[str]:
    """The console script beside this Python if installed, else its entry point run by this interpreter."""
    script = Path(sys.executable).parent / executable
    if script.is_file():
        return [str(script)]
    target = ENTRY_POINTS.get(executable)
    if target is None:
        found = [ep for ep in metadata.entry_points(group="console_scripts") if ep.name == executable]
        if not found:
            raise SystemExit(f"hetskel-launch: executable '{executable}' is not installed (pip install -e .)")
        target = found[0].value
    module, function = target.split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]


class ProcessGroup:
    """Child processes stopped together: SIGINT, then SIGTERM, then SIGKILL, each after a grace period."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str]) -> None:
        """Start a node in this process group, so that a terminal's Ctrl-C reaches it as it reaches the launcher,
        and tell it this launcher's pid: the node then asks for a parent-death signal (node_main), so even a
        launcher killed with SIGKILL leaves no node running."""
        env = {**os.environ, PARENT_PID_ENV: str(os.getpid())}
        self.processes[name] = subprocess.Popen(command, env=env)

    def alive(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is None]

    def wait(self, seconds: float) -> None:
        """Let the nodes run ``seconds`` longer."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.05)

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self, already_interrupted: bool = False) -> None:
        """``already_interrupted``: Ctrl-C in a terminal reaches every process of the group, so give the nodes a
        moment to stop on their own before signalling them again."""
        if already_interrupted:
            self._wait(CTRL_C_WAIT_S)
        for sig, grace in ((signal.SIGINT, SIGINT_GRACE_S), (signal.SIGTERM, SIGTERM_GRACE_S), (signal.SIGKILL, 2.0)):
            if not self.alive():
                return
            for name in self.alive():
                with contextlib.suppress(ProcessLookupError):
                    self.processes[name].send_signal(sig)
            self._wait(grace)


def run(nodes: Sequence[NodeProcess], namespace: str, exit_on_bag_end: bool = False) -> int:
    """Start ``nodes``; return when the recognizer exits, on SIGINT/SIGTERM, or (``exit_on_bag_end``) once
    bag_player has played its bag. The exit status: the recognizer's, 0 for a clean stop, or a failed player's."""
    group = ProcessGroup()
    stop_signal: list[int] = []
    bag_code: int | None = None

    def on_signal(signum: int, _frame: object) -> None:
        stop_signal.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for node in nodes:
            group.start(node.name, executable_command(node.executable) + node.ros_args(namespace))
        while not stop_signal:
            primary = group.processes[PRIMARY]
            if primary.poll() is not None or not group.alive():
                break
            player = group.processes.get(BAG_PLAYER)
            if exit_on_bag_end and player is not None and player.poll() is not None:
                bag_code = player.returncode
                group.wait(BAG_END_GRACE_S)  # the recognizer handles the last messages still in flight
                break
            time.sleep(0.05)
        group.stop(already_interrupted=bool(stop_signal) and stop_signal[0] == signal.SIGINT)
    finally:
        group.stop()
        for sig, handler in previous.items():
            # stopped by a signal: ignore the ones still coming while this process ends (Python's exit would put
            # back the default action of a Python handler, and a Ctrl-C then ends the launcher with status -2)
            signal.signal(sig, signal.SIG_IGN if stop_signal else handler)
    code = group.processes[PRIMARY].returncode if PRIMARY in group.processes else 1
    if bag_code:  # the player failed (e.g. an unreadable bag): that is the launch's result
        return bag_code
    stopped_by_us = bool(stop_signal) or bag_code == 0
    return 0 if stopped_by_us and code in (0, -signal.SIGINT, -signal.SIGTERM) else (code or 0)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(launch_style(sys.argv[1:] if argv is None else argv))
    nodes = plan(args)
    if args.dry_run:
        for node in nodes:
            print(" ".join(executable_command(node.executable) + node.ros_args(args.namespace)))
        return 0
    return run(nodes, args.namespace, exit_on_bag_end=is_true(args.exit_on_bag_end) and bool(args.bag))


if __name__ == "__main__":
    raise SystemExit(main())
