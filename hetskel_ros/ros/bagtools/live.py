"""Live mode of ``hetskel-bag eval``: a running recognizer gets the bag from ``bag_player``; a recorder collects
``actions``.

The recognizer runs with use_sim_time:=true, started by the console launcher (``hetskel-launch``: a separate
process, as on a robot) or in this process (its own executor thread; quicker for tests). The player publishes
/clock from the bag, so the recognizer's clock is the bag's and its windows are those of the offline mode.

Latency: the :class:`ActionRecorder` subscribes to the skeleton topic(s) as well and notes when each frame arrived;
an Action's latency is the arrival of its ActionArray minus the arrival of the frame its window ends with (the
window's last frame, identified by its stamp): the recognizer's delay, one DDS hop in and one out included.
"Arrival" is the middleware's reception time of each message (MessageInfo.received_timestamp), not when this
process's executor got round to the callback: under load both messages wait in their queues, the executor may take
the action first, and the frame's callback time would make the latency wrong or missing. An action whose frame
has not been handled yet waits for it.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hetskel_ros.ros.bagtools.bag_io import BagContents, BagError
from hetskel_ros.ros.bagtools.offline import default_config
from hetskel_ros.ros.msg_dict import message_class
from hetskel_ros.runtime.detection_metrics import Prediction, stamp_key

RECOGNIZER_START_TIMEOUT_S = 120.0  # first start on a busy machine: Python, torch, ONNX Runtime session
SETTLE_S = 1.0  # after the last message: wait until no ActionArray came for this long
SETTLE_MAX_S = 6.0


def stamp_s(stamp: Any) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class ActionRecorder:
    """Subscriptions of the evaluating process: ``actions`` (reliable) and the played skeleton topics."""

    def __init__(self, node: Any, actions_topic: str, frame_topics: Mapping[str, str],
                 on_actions: Callable[[float, list[Prediction]], None] | None = None):
        from hetskel_msgs.msg import ActionArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.node = node
        self.lock = threading.RLock()  # re-entrant: unmatched_latency is read under it too
        self.predictions: list[Prediction] = []
        self.latencies_s: list[float] = []
        self.frame_arrivals: dict[int, float] = {}  # frame stamp key -> reception time (s)
        self._waiting: dict[int, list[float]] = {}  # frame stamp key -> reception times of actions ending on it
        self.last_receipt = 0.0
        self.arrays = 0
        self.on_actions = on_actions
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.frame_subs = [node.create_subscription(message_class(kind), topic, self._on_frame, reliable)
                           for topic, kind in frame_topics.items()]
        self.actions_sub = node.create_subscription(ActionArray, actions_topic, self._on_actions, reliable)

    @property
    def unmatched_latency(self) -> int:
        """Actions whose last frame this recorder never saw arrive."""
        with self.lock:
            return sum(len(v) for v in self._waiting.values())

    def _on_frame(self, msg: Any, info: Mapping[str, int]) -> None:
        arrived = info["received_timestamp"] / 1e9
        key = stamp_key(0, stamp_s(msg.header.stamp))[1]
        with self.lock:
            self.frame_arrivals.setdefault(key, arrived)
            first = self.frame_arrivals[key]
            self.latencies_s += [received - first for received in self._waiting.pop(key, [])]

    def _on_actions(self, msg: Any, info: Mapping[str, int]) -> None:
        received = info["received_timestamp"] / 1e9
        now = time.monotonic()
        batch = [Prediction(int(a.track_id), stamp_s(a.header.stamp), stamp_s(a.window_start), str(a.label),
                            float(a.score), str(a.source)) for a in msg.actions]
        with self.lock:
            self.arrays += 1
            self.last_receipt = now
            self.predictions += batch
            for p in batch:
                key = stamp_key(0, p.stamp)[1]
                arrived = self.frame_arrivals.get(key)
                if arrived is None:
                    self._waiting.setdefault(key, []).append(received)
                else:
                    self.latencies_s.append(received - arrived)
        if self.on_actions is not None:
            self.on_actions(now, batch)


@dataclass
class LiveResult:
    predictions: list[Prediction]
    latencies_s: list[float]
    published: int
    wall_s: float
    late_s: float  # the most a message went out after its due time (player)
    recognizer: str  # "process" or "in-process"
    unmatched_latency: int = 0
    recognizer_exit: int | None = None
    notes: list[str] = field(default_factory=list)


def merged_config(config: str | Path | None, overrides: Mapping[str, Any], directory: Path) -> Path:
    """A parameter file = ``config`` with ``overrides`` (dotted names) set in each of its sections."""
    path = Path(config or default_config())
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not any(isinstance(s, dict) and "ros__parameters" in s for s in data.values()):
        data["/**"] = {"ros__parameters": {}}
    for section in data.values():
        params = section.get("ros__parameters") if isinstance(section, dict) else None
        if params is None:
            continue
        for name, value in overrides.items():
            node = params
            *parents, leaf = name.split(".")
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = value
    target = directory / "recognize.yaml"
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return target


class RecognizerProcess:
    """``hetskel-launch --config ... --use_sim_time true``: the recognizer as its own process."""

    def __init__(self, config: Path, namespace: str = "", log: Path | None = None):
        command = [sys.executable, "-m", "hetskel_ros.ros.launcher", "--config", str(config), "--use_sim_time",
                   "true"]
        if namespace:
            command += ["--namespace", namespace]
        self.log_path = log
        self._log = open(log, "w", encoding="utf-8") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def stop(self) -> int | None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGINT)  # the launcher stops its nodes (SIGINT, SIGTERM, SIGKILL)
            try:
                self.process.wait(timeout=20.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not subprocess.DEVNULL:
            self._log.close()
        return self.process.returncode


class InProcessRecognizer:
    """RecognizerNode in this process (own context and executor thread), with the same parameter file."""

    def __init__(self, config: Path):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from hetskel_ros.ros.recognizer_node import RecognizerNode

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        try:
            args = ["--ros-args", "--params-file", str(config), "-p", "use_sim_time:=true"]
            self.node = RecognizerNode(context=self.context, cli_args=args)
        except Exception:
            self.context.try_shutdown()
            raise
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, name="recognizer", daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        with contextlib.suppress(ExternalShutdownException):
            self.executor.spin()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def tail(self, lines: int = 20) -> str:
        return ""

    def stop(self) -> int | None:
        self.executor.shutdown(timeout_sec=5.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        return 0


def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
               alive: Callable[[], bool] | None = None, details: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if alive is not None and not alive():
            raise RuntimeError(f"the recognizer stopped while waiting for {what}" +
                               (f"; its log ends:\n{details()}" if details else ""))
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}" +
                               (f"; recognizer log ends:\n{details()}" if details else ""))
        time.sleep(0.02)


def run_live(bag: BagContents, *, config: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
             rate: float = 1.0, in_process: bool = False, work_dir: Path | None = None, namespace: str = "",
             actions_topic: str = "actions", on_actions: Callable[[float, list[Prediction]], None] | None = None,
             on_start: Callable[[], None] | None = None, quiet: bool = False) -> LiveResult:
    """Play ``bag`` in (scaled) real time into a recognizer started here, and record what it publishes.
    ``quiet``: the player logs warnings only (the demo prints its own progress line)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from hetskel_ros.ros.bagtools.offline import load_parameters
    from hetskel_ros.ros.bagtools.player import BagPlayer

    work_dir = Path(work_dir or tempfile.mkdtemp(prefix="hetskel-live-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    params_file = merged_config(config, dict(overrides or {}), work_dir)
    parameters = load_parameters(params_file)  # fails here, with the parameter's name, before anything starts
    prefix = "/" + namespace.strip("/") if namespace.strip("/") else ""
    configured = ["/" + cfg.topic.lstrip("/") for cfg in parameters.inputs]
    played = {topic: prefix + topic for topic in configured if topic in bag.topics}  # bag topic -> live topic
    frames = {played[t]: bag.topics[t] for t in played}
    if not frames:
        raise BagError(f"{bag.path}: none of the recognizer's input topics {configured} is in the bag "
                       f"(it has {sorted(bag.topics)})")
    recognizer: RecognizerProcess | InProcessRecognizer = (
        InProcessRecognizer(params_file) if in_process
        else RecognizerProcess(params_file, namespace, work_dir / "recognizer.log"))
    context = rclpy.context.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    nodes = []
    spinner = None
    try:
        from rclpy.node import Node

        listener = Node("bag_eval_recorder", context=context)
        nodes.append(listener)
        actions = (prefix + "/" + actions_topic) if not actions_topic.startswith("/") else actions_topic
        recorder = ActionRecorder(listener, actions, frames, on_actions)
        executor.add_node(listener)

        def spin() -> None:
            with contextlib.suppress(ExternalShutdownException):
                executor.spin()

        spinner = threading.Thread(target=spin, name="bag-eval", daemon=True)
        spinner.start()
        wait_until(lambda: recorder.actions_sub.get_publisher_count() > 0, RECOGNIZER_START_TIMEOUT_S,
                   f"the recognizer's publisher on '{actions}'", recognizer.alive, recognizer.tail)
        if quiet:
            rclpy.logging.set_logger_level("bag_player", rclpy.logging.LoggingSeverity.WARN)
        bag_messages = BagContents(bag.path, bag.storage, [m for m in bag.messages if m.topic in played],
                                   bag.topics)
        player = BagPlayer(context=context, contents=bag_messages, parameter_overrides=[
            Parameter("rate", value=float(rate)), Parameter("clock", value=True),
            Parameter("remap", value=[f"{t}:={played[t]}" for t in played] or [""]),
            Parameter("wait_for_subscribers", value=["/clock"]),  # only a sim-time node subscribes to it
            Parameter("wait_timeout_s", value=30.0), Parameter("autostart", value=False)])
        nodes.append(player)
        executor.add_node(player)
        # two subscribers per topic: the recognizer's and this recorder's
        wait_until(lambda: all(p.get_subscription_count() >= 2 for p in player.publishers_by_topic.values()),
                   RECOGNIZER_START_TIMEOUT_S, f"the recognizer's subscriptions on {sorted(frames)}",
                   recognizer.alive, recognizer.tail)
        # and the recorder's side of the match (a reader drops samples of a writer it has not matched yet)
        wait_until(lambda: all(s.get_publisher_count() > 0 for s in recorder.frame_subs), 10.0,
                   "the recorder to see the player")
        if on_start is not None:
            on_start()
        began = time.monotonic()
        player.start()
        while not player.finished.wait(0.1):
            if not recognizer.alive():
                raise RuntimeError("the recognizer stopped during the replay; its log ends:\n" + recognizer.tail())
        settle_end = time.monotonic() + SETTLE_MAX_S
        while time.monotonic() < settle_end and time.monotonic() - max(recorder.last_receipt, began) < SETTLE_S:
            time.sleep(0.05)
        with recorder.lock:
            result = LiveResult(list(recorder.predictions), list(recorder.latencies_s), player.published,
                                time.monotonic() - began, player.late_s,
                                "in-process" if in_process else "process", recorder.unmatched_latency)
    finally:
        exit_code = recognizer.stop()
        executor.shutdown(timeout_sec=5.0)
        if spinner is not None:
            spinner.join(timeout=5.0)
        for node in nodes:
            node.destroy_node()
        context.try_shutdown()
    result.recognizer_exit = exit_code
    return result
