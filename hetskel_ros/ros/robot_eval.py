"""``hetskel-robot-eval``: recognition on humanoid robots, measured through the recognizer node over DDS.

Held-out mocap (the Bandai Namco style training never sees, youthful) is retargeted onto each robot
(hetskel_ros.topology.retarget). A recognizer process with one joint_state input for that robot receives the clips as a
robot would send them: sensor_msgs/JointState at ``--rate`` Hz (joint values interpolated from the mocap's 30 fps)
and, in the "tf" condition, the base pose odom -> base on /tf at the same rate; in "no_tf" nothing on /tf. Each
clip's label is the majority of the top hypotheses of the windows that end inside it (ties: the higher summed
score). The same clips given as human 3D skeletons (their own topology) go through the same Recognizer offline:
the reference. Every live run is replayed offline as well (the same messages through the same adapter and
Recognizer, transforms from a buffer holding what was published): ``live_equals_offline`` checks that replaying
faster than real time changed nothing. Results: bench/results/robot.json (repository-relative paths).

    hetskel-robot-eval --model runs/union.hetskel                     # 10 clips per action, G1 and TALOS
    hetskel-robot-eval --robots unitree_g1 --per-label 1 --conditions tf

Data: Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hetskel_ros.paths import relative, share_dir
from hetskel_ros.topology import load_robot, load_topology
from hetskel_ros.topology.retarget import TRAVEL, Retargeter, RobotMotion
from hetskel_ros.topology.sequences import SequenceSet, default_mocap_path, load_sequences, select_sample

log = logging.getLogger("hetskel_ros.robot_eval")

CONDITIONS = ("tf", "no_tf")
HELD_OUT_STYLE = "youthful"  # training/configs/datasets.yaml: the mocap style held out of training
GAP_S = 3.0  # stamps between clips: more than track_timeout_s, so each clip is a new track
FIRST_STAMP_S = 1000.0
DRAIN_S = 3.0  # wall seconds to wait for the last windows
DRAIN_TIMEOUT_S = 20.0  # ... and at most this long for the node's diagnostics to count every message sent


@dataclass
class Clip:
    index: int  # into the sequence set
    name: str
    label: str
    start: float  # stamp of its first frame
    end: float


@dataclass
class Votes:
    """Per clip: the top hypothesis of each window that ended inside it."""

    labels: dict[int, list[tuple[str, float]]] = field(default_factory=dict)

    def add(self, clip: int, label: str, score: float) -> None:
        self.labels.setdefault(clip, []).append((label, score))

    def winner(self, clip: int) -> str:
        votes = self.labels.get(clip, [])
        if not votes:
            return "none"
        counts = Counter(label for label, _ in votes)
        sums = Counter()
        for label, score in votes:
            sums[label] += score
        return max(counts, key=lambda label: (counts[label], sums[label]))


def clip_for(clips: list[Clip], stamp: float) -> int | None:
    for k, clip in enumerate(clips):
        if clip.start - 1e-6 <= stamp <= clip.end + 1e-6:
            return k
    return None


def lay_out(data: SequenceSet, indices: list[int]) -> list[Clip]:
    """Clips one after another on the stamp axis, GAP_S apart."""
    clips, start = [], FIRST_STAMP_S
    for i in indices:
        end = start + (len(data.sequences[i]) - 1) / data.fps
        clips.append(Clip(i, data.names[i], data.label_names[data.labels[i]], start, end))
        start = end + GAP_S
    return clips


# -- the human reference ---------------------------------------------------------------------------------------
def human_votes(model: str, data: SequenceSet, clips: list[Clip]) -> Votes:
    """The clips as human 3D skeletons of their own topology, through the Recognizer (offline, same pipeline)."""
    from hetskel_ros.model.bundle import load_bundle
    from hetskel_ros.runtime.backends import load_backend
    from hetskel_ros.runtime.observation import Observation
    from hetskel_ros.runtime.recognizer import InputSpec, Recognizer, RecognizerConfig

    bundle = load_bundle(model)
    recognizer = Recognizer(bundle, load_backend(bundle, ("onnxruntime",), threads=1),
                            [InputSpec("human", rate_hz=data.fps)], RecognizerConfig(threshold=0.0))
    topology = load_topology(data.topology)
    votes = Votes()
    for k, clip in enumerate(clips):
        positions, mask = topology.to_unified(data.sequences[clip.index])
        for f in range(len(positions)):
            stamp = clip.start + f / data.fps
            recognizer.observe("human", [Observation(1, stamp, data.topology, 3, positions[f], mask[f], "world")],
                               stamp)
            for decision in recognizer.step(stamp):
                if decision.hypotheses:  # not a person's "gone"
                    votes.add(k, decision.hypotheses[0].label, decision.hypotheses[0].score)
    return votes


# -- the robot's messages --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    clip: int
    stamp: float
    q: np.ndarray
    base: np.ndarray  # (4, 4)


def robot_samples(motions: list[RobotMotion], clips: list[Clip], rate: float) -> list[Sample]:
    """Joint values and base poses at ``rate`` Hz, linearly interpolated between the mocap frames (rotations of the
    base by nearest frame: at 200+ Hz from 30 fps the difference is below a degree)."""
    out = []
    for k, (motion, clip) in enumerate(zip(motions, clips, strict=True)):
        frames = len(motion.q)
        for t in np.arange(0.0, (frames - 1) / motion.fps + 1e-9, 1.0 / rate):
            x = t * motion.fps
            low = min(int(x), frames - 2)
            w = x - low
            q = (1 - w) * motion.q[low] + w * motion.q[low + 1]
            base = motion.base[low].copy()
            base[:3, 3] = (1 - w) * motion.base[low, :3, 3] + w * motion.base[low + 1, :3, 3]
            if w > 0.5:
                base[:3, :3] = motion.base[low + 1, :3, :3]
            out.append(Sample(k, clip.start + float(t), q, base))
    return out


def quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """x, y, z, w of a rotation matrix (Shepperd: from the largest of w, x, y, z, so a half turn stays exact)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    candidates = [trace, m[0, 0], m[1, 1], m[2, 2]]
    k = int(np.argmax(candidates))
    if k == 0:
        w = np.sqrt(1.0 + trace) / 2.0
        q = ((m[2, 1] - m[1, 2]) / (4 * w), (m[0, 2] - m[2, 0]) / (4 * w), (m[1, 0] - m[0, 1]) / (4 * w), w)
    else:
        i, j, n = k - 1, k % 3, (k + 1) % 3
        v = np.zeros(3)
        v[i] = np.sqrt(max(1.0 + m[i, i] - m[j, j] - m[n, n], 1e-12)) / 2.0
        v[j] = (m[j, i] + m[i, j]) / (4 * v[i])
        v[n] = (m[n, i] + m[i, n]) / (4 * v[i])
        q = (v[0], v[1], v[2], (m[n, j] - m[j, n]) / (4 * v[i]))
    norm = float(np.linalg.norm(q))
    return tuple(float(c / norm) for c in q)  # type: ignore[return-value]


def joint_state(names: tuple[str, ...], sample: Sample) -> Any:
    from sensor_msgs.msg import JointState

    from hetskel_ros.ros.recognizer_node import to_time

    msg = JointState(name=list(names), position=sample.q.tolist())
    msg.header.stamp = to_time(sample.stamp)
    return msg


def tf_message(odom: str, base: str, sample: Sample) -> Any:
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    from hetskel_ros.ros.recognizer_node import to_time

    transform = TransformStamped()
    transform.header.stamp = to_time(sample.stamp)
    transform.header.frame_id = odom
    transform.child_frame_id = base
    t = sample.base[:3, 3]
    transform.transform.translation.x, transform.transform.translation.y, transform.transform.translation.z = (
        float(t[0]), float(t[1]), float(t[2]))
    r = transform.transform.rotation
    r.x, r.y, r.z, r.w = quaternion(sample.base[:3, :3])
    return TFMessage(transforms=[transform])


def input_config(robot: str, rate: float, use_tf: bool) -> dict[str, Any]:
    return {"topic": "joint_states", "kind": "joint_state", "robot": robot, "rate_hz": float(rate),
            "urdf_file": "package", "use_tf": use_tf}


def offline_votes(model: str, robot: str, names: tuple[str, ...], samples: list[Sample], clips: list[Clip],
                  rate: float, with_tf: bool) -> Votes:
    """The live run's messages through the same adapter and Recognizer, without ROS transport."""
    from hetskel_ros.model.bundle import load_bundle
    from hetskel_ros.ros.adapters.base import InputConfig
    from hetskel_ros.ros.adapters.joint_state import JointStateAdapter
    from hetskel_ros.ros.adapters.transforms import TransformBuffer
    from hetskel_ros.runtime.backends import load_backend
    from hetskel_ros.runtime.recognizer import Recognizer, RecognizerConfig

    mapping = load_robot(robot)
    params = input_config(robot, rate, True)
    config = InputConfig(name="robot", topic="joint_states", kind="joint_state", robot=robot, rate_hz=rate,
                         params={k: v for k, v in params.items() if k not in ("topic", "kind", "robot", "rate_hz")})
    buffer = TransformBuffer(cache_s=1e9)
    odom, base = mapping.base_motion.odom_frame, mapping.base_motion.base_frame
    if with_tf:
        for sample in samples:
            buffer.add(odom, base, sample.stamp, sample.base[:3, 3], quaternion(sample.base[:3, :3]))
    adapter = JointStateAdapter(config, None, transforms=buffer)
    bundle = load_bundle(model)
    recognizer = Recognizer(bundle, load_backend(bundle, ("onnxruntime",), threads=1), [adapter.spec()],
                            RecognizerConfig(threshold=0.0))
    votes = Votes()
    for sample in samples:
        _, rejected = adapter.convert_parts(joint_state(names, sample))
        released, late = adapter.release(sample.stamp)
        for rejection in rejected + late:
            recognizer.count_drop("robot", rejection.reason)
        for message in released:
            recognizer.observe("robot", message, sample.stamp)
        for decision in recognizer.step(sample.stamp):
            clip = clip_for(clips, decision.stamp)
            if clip is not None and decision.hypotheses:  # not a person's "gone"
                votes.add(clip, decision.hypotheses[0].label, decision.hypotheses[0].score)
    return votes


class LiveRun:
    """A recognizer process with one joint_state input, and this process publishing the robot's messages."""

    def __init__(self, model: str, robot: str, rate: float, with_tf: bool, work: Path, namespace: str):
        self.namespace = namespace
        parameters = {
            "model": model, "backend": "onnxruntime", "threads": 1, "threshold": 0.0,
            "input_queue_depth": 1000,  # a replay faster than real time must not overflow the subscription
            "inputs": {"names": ["robot"], "robot": input_config(robot, rate, True)},
        }
        config = work / "recognize.yaml"
        config.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}), encoding="utf-8")
        self.log_path = work / "recognizer.log"
        self._log = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "hetskel_ros.ros.recognizer_node", "--ros-args", "--params-file",
                   str(config), "-r", f"__ns:=/{namespace}"]
        env = {**os.environ, "ROS_LOG_DIR": str(work / "ros_log")}
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self._start_ros(with_tf)

    def _start_ros(self, with_tf: bool) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from hetskel_msgs.msg import ActionArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from tf2_msgs.msg import TFMessage

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("robot_eval_player", namespace=f"/{self.namespace}", context=self.context)
        reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.joint_pub = self.node.create_publisher(JointState, "joint_states", reliable)
        self.tf_pub = self.node.create_publisher(TFMessage, "/tf", QoSProfile(depth=100)) if with_tf else None
        self.actions: list[tuple[float, str, float]] = []
        self.diagnostics: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self.node.create_subscription(ActionArray, "actions", self._on_actions, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_actions(self, msg: Any) -> None:
        with self._lock:
            for action in msg.actions:
                if action.hypotheses:
                    top = action.hypotheses[0]
                    self.actions.append((action.header.stamp.sec + action.header.stamp.nanosec * 1e-9, top.label,
                                         float(top.score)))

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.endswith("input robot"):
                values = {kv.key: kv.value for kv in status.values}
                values["level"], values["message"] = str(status.level[0] if status.level else 0), status.message
                with self._lock:
                    self.diagnostics = values

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while self.joint_pub.get_subscription_count() < 1:
            if self.process.poll() is not None:
                raise RuntimeError(f"the recognizer exited with {self.process.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the recognizer did not subscribe in {timeout:g} s: {self.tail()}")
            time.sleep(0.1)
        if self.tf_pub is not None:
            while self.tf_pub.get_subscription_count() < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
        time.sleep(0.5)

    def play(self, names: tuple[str, ...], samples: list[Sample], odom: str, base: str, speed: float) -> float:
        """Publish every sample at ``speed`` x real time; returns how late the publisher fell at worst (s)."""
        began = time.monotonic()
        first = samples[0].stamp
        late = 0.0
        for sample in samples:
            due = began + (sample.stamp - first) / speed
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                late = max(late, -wait)
            self.joint_pub.publish(joint_state(names, sample))
            if self.tf_pub is not None:  # odometry after the joint state: the input waits for it
                self.tf_pub.publish(tf_message(odom, base, sample))
        time.sleep(DRAIN_S)
        self.wait_counted(len(samples))
        return late

    def wait_counted(self, sent: int) -> None:
        """Until the node's diagnostics count every message sent (a loaded machine delays both the node and its
        1 Hz diagnostics past DRAIN_S), or DRAIN_TIMEOUT_S: what is lost then shows in the counts."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            with self._lock:
                counted = int(self.diagnostics.get("messages", "0") or 0)
            if counted >= sent:
                time.sleep(0.5)  # the windows those last messages completed
                return
            time.sleep(0.1)

    def tail(self, lines: int = 15) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def stop(self) -> int | None:
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


# -- scoring ---------------------------------------------------------------------------------------------------
def accuracy(clips: list[Clip], votes: Votes, keep: set[str] | None = None) -> float | None:
    chosen = [k for k, clip in enumerate(clips) if keep is None or clip.label in keep]
    if not chosen:
        return None
    return float(np.mean([votes.winner(k) == clips[k].label for k in chosen]))


def per_class(clips: list[Clip], votes: Votes) -> dict[str, float]:
    labels = sorted({c.label for c in clips})
    return {label: accuracy(clips, votes, {label}) for label in labels}


def score(clips: list[Clip], votes: Votes, needs_base: set[str]) -> dict[str, Any]:
    others = {c.label for c in clips} - needs_base
    return {"accuracy_all": accuracy(clips, votes),
            "accuracy_without_base_motion_actions": accuracy(clips, votes, others),
            "accuracy_base_motion_actions": accuracy(clips, votes, needs_base),
            "per_class": per_class(clips, votes), "predicted": [votes.winner(k) for k in range(len(clips))]}


def retarget_all(robot: str, data: SequenceSet, clips: list[Clip], cache: Path | None,
                 travel: str = "human") -> list[RobotMotion]:
    """Retargeted clips; the joint values are cached per robot and clip name (IK takes a few ms per frame), the base
    path (cheap, and depends on ``travel``) is computed each time."""
    retargeter = Retargeter(robot, data.topology, travel=travel)
    return [retargeter.cached(data.sequences[clip.index], data.fps,
                              cache / robot / f"{clip.name}.npz" if cache is not None else None) for clip in clips]


def evaluate_robot(model: str, robot: str, data: SequenceSet, clips: list[Clip], conditions: list[str],
                   rate: float, speed: float, cache: Path | None, check_offline: bool = True,
                   namespace: str = "robot_eval", travel: str = "human") -> dict[str, Any]:
    """Every condition of one robot through the node; with the live = offline check."""
    mapping = load_robot(robot)
    began = time.monotonic()
    motions = retarget_all(robot, data, clips, cache, travel)
    retarget_s = time.monotonic() - began
    samples = robot_samples(motions, clips, rate)
    names = motions[0].joint_names
    needs_base = set(mapping.base_motion.needed_by)
    result: dict[str, Any] = {
        "robot": robot, "urdf": f"{mapping.urdf_package}:{mapping.urdf_path}",
        "retarget": {"method": "damped least squares over the URDF forward kinematics (hetskel_ros.topology.retarget)",
                     "rms_residual_m": float(np.sqrt(np.mean([m.residual_m ** 2 for m in motions]))),
                     "base_path": travel,
                     "seconds": round(retarget_s, 1)},
        "joint_state_messages": len(samples), "rate_hz": rate, "speed": speed, "conditions": {}}
    for condition in conditions:
        with_tf = condition == "tf"
        with tempfile.TemporaryDirectory(prefix="robot_eval_") as tmp:
            run = LiveRun(model, robot, rate, with_tf, Path(tmp), f"{namespace}_{robot}_{condition}")
            try:
                run.wait_ready()
                late = run.play(names, samples, mapping.base_motion.odom_frame, mapping.base_motion.base_frame,
                                speed)
                with run._lock:
                    actions, diagnostics = list(run.actions), dict(run.diagnostics)
            finally:
                exit_code = run.stop()
        votes = Votes()
        for stamp, label, score_ in actions:
            clip = clip_for(clips, stamp)
            if clip is not None:
                votes.add(clip, label, score_)
        entry = score(clips, votes, needs_base)
        entry.update(windows=len(actions), publisher_late_s=round(late, 3), recognizer_exit=exit_code,
                     diagnostics={k: v for k, v in diagnostics.items()
                                  if k.startswith(("dropped", "messages", "base_motion", "with", "observations"))})
        if check_offline:
            reference = offline_votes(model, robot, names, samples, clips, rate, with_tf)
            same = [votes.winner(k) == reference.winner(k) for k in range(len(clips))]
            windows_live = sum(len(v) for v in votes.labels.values())
            windows_offline = sum(len(v) for v in reference.labels.values())
            entry["live_equals_offline"] = {"clip_labels_equal": float(np.mean(same)),
                                            "windows_live": windows_live, "windows_offline": windows_offline}
        result["conditions"][condition] = entry
        log.info("%s %s: %s", robot, condition, {k: entry[k] for k in ("accuracy_all",
                                                                        "accuracy_without_base_motion_actions")})
    return result


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hetskel-robot-eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(share_dir() / "models" / "default.hetskel"))
    p.add_argument("--robots", nargs="+", default=["unitree_g1", "talos"])
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    p.add_argument("--mocap", type=Path, default=None, help="mocap npz (default: the full set, else the sample)")
    p.add_argument("--per-label", type=int, default=10, help="clips per action of the held-out style")
    p.add_argument("--rate", type=float, default=200.0, help="JointState and /tf rate (Hz)")
    p.add_argument("--speed", type=float, default=2.0, help="replay speed over real time")
    p.add_argument("--cache", type=Path, default=Path("runs/robot_eval_cache"), help="retargeted clips")
    p.add_argument("--out", type=Path, default=Path("bench/results/robot.json"))
    p.add_argument("--no-offline-check", action="store_true")
    p.add_argument("--travel", choices=TRAVEL, default="human",
                   help="base path: the human's (a robot walking at human speed) or scaled by leg length")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    began = time.time()
    mocap = args.mocap or default_mocap_path()
    data = load_sequences(mocap)
    indices = select_sample(data, style=HELD_OUT_STYLE, per_label=args.per_label, min_frames=60)
    clips = lay_out(data, indices)
    human = human_votes(args.model, data, clips)
    report: dict[str, Any] = {
        "name": "robot", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "hetskel-robot-eval " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": relative(args.model), "mocap": relative(mocap), "style": HELD_OUT_STYLE,
        "clips": len(clips), "clip_names": [c.name for c in clips], "labels": [c.label for c in clips],
        "per_sequence_label": "majority of the windows' top hypotheses (ties: higher summed score)",
        "robots": {}}
    for robot in args.robots:
        needs_base = set(load_robot(robot).base_motion.needed_by)
        entry = evaluate_robot(args.model, robot, data, clips, args.conditions, args.rate, args.speed, args.cache,
                               not args.no_offline_check, travel=args.travel)
        entry["human"] = score(clips, human, needs_base)
        for condition in entry["conditions"].values():
            for key in ("accuracy_all", "accuracy_without_base_motion_actions", "accuracy_base_motion_actions"):
                if condition[key] is not None and entry["human"][key] is not None:
                    condition[key.replace("accuracy", "points_below_human")] = round(
                        100 * (entry["human"][key] - condition[key]), 1)
        report["robots"][robot] = entry
    report["seconds"] = round(time.time() - began, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for robot, entry in report["robots"].items():
        print(f"{robot}: human {entry['human']['accuracy_all']:.2f}", end="")
        for condition, values in entry["conditions"].items():
            print(f"; {condition} {values['accuracy_all']:.2f} (without base-motion actions "
                  f"{values['accuracy_without_base_motion_actions']:.2f})", end="")
        print()
    print(f"wrote {relative(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
