"""Every bad-input pattern of issue 19, over DDS, against a running recognizer process.

The node runs as its own process (as on a robot) with three inputs: a SkeletonArray, a single Skeleton and the
Azure Kinect driver's MarkerArray, each carrying one valid person who streams real mocap the whole time. Each
pattern is sent on an input for half a second of stamps, beside that input's valid person; then four things must
hold before the next pattern:

- the process is alive;
- every dropped message is counted, under a reason the adapter or the recognizer documents, exactly as many as
  were sent, and nothing else was dropped;
- no status is ERROR (a rejection is no internal error);
- the valid person on the same input still gets a label within one stride of stamps (no reset, no poisoned
  track: every decision of that person comes one stride after the previous one, with a finite score).

The model is the untrained stand-in with threshold 0, so every decision carries a real label (behaviour here does
not depend on what the weights learned). Data: Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.),
CC BY-NC 4.0.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import yaml
from recognizer_support import mocap_sample, skeleton_array, skeleton_msg, stand_in_bundle_path
from test_adapters_azure import MOCAP_TO_CAMERA, driver_array, render_azure

from hetskel_ros.ros.adapters import adapter_class
from hetskel_ros.runtime.recognizer import DROP_REASONS

FPS = 30.0
STRIDE_S = 0.5
PACE = 2.0  # stamps advance this many times faster than the wall clock
MAX_TRACKS = 4
INPUTS = {"multi": ("fuzz/skeletons", "skeleton_array"), "single": ("fuzz/skeleton", "skeleton"),
          "kinect": ("fuzz/body_tracking_data", "azure_markers")}
VALID = {"multi": 1, "single": 5, "kinect": 3}  # the valid person's track id on each input
ERROR = b"\x02"


@dataclass
class Pattern:
    """Bad input on one input: ``messages(i, stamp, valid)`` replaces that input's message of the pattern's frame i
    (``valid``: the valid person's own message, to keep, change or repeat); ``drops``: reason -> count it must
    add."""

    name: str
    input: str
    messages: Callable[[int, float, object], list]
    drops: dict[str, int]
    nobody: int = 0  # messages with nobody in view it must add (not drops)
    frames: int = int(STRIDE_S * FPS)
    other: dict[str, int] = field(default_factory=dict)  # drops it must add on other inputs


class Stream:
    """The valid people's frames, and the test's publishers and subscriptions."""

    def __init__(self, ros) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from hetskel_msgs.msg import ActionArray, Skeleton, SkeletonArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from visualization_msgs.msg import MarkerArray

        data = mocap_sample()
        self.clip = data.sequences[16]  # waving in place, 186 frames
        centre = self.clip[0, 0] * np.array([1.0, 0.0, 1.0])
        self.camera_clip = (self.clip - centre) @ MOCAP_TO_CAMERA.T + np.array([0.0, 0.0, 3.0])
        node = ros.node("fuzz_probe")
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        types = {"skeleton_array": SkeletonArray, "skeleton": Skeleton, "azure_markers": MarkerArray}
        self.publishers = {name: node.create_publisher(types[kind], topic, reliable)
                           for name, (topic, kind) in INPUTS.items()}
        self.lock = threading.Lock()
        self.decisions: list[tuple[str, int, float, float, str]] = []  # source, track, stamp, score, label
        self.statuses: dict[str, object] = {}
        node.create_subscription(ActionArray, "actions", self._on_actions, reliable)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.k = 0

    def _on_actions(self, msg) -> None:
        with self.lock:
            self.decisions += [(a.source, a.track_id, a.header.stamp.sec + a.header.stamp.nanosec * 1e-9, a.score,
                                a.label) for a in msg.actions]

    def _on_diagnostics(self, msg) -> None:
        with self.lock:
            for status in msg.status:
                if status.name.startswith("recognizer:"):
                    self.statuses[status.name.split(": ", 1)[1]] = status

    def values(self, name: str) -> dict[str, str]:
        with self.lock:
            status = self.statuses.get(name)
        return {kv.key: kv.value for kv in status.values} if status is not None else {}

    def counts(self, name: str) -> dict[str, int]:
        values = self.values(name)
        return {key: int(float(value)) for key, value in values.items()
                if key.startswith(("dropped", "error.")) or key in ("nobody_in_view", "observations")}

    def stamp(self, k: int) -> float:
        return 1000.0 + k / FPS

    def frame(self, k: int) -> np.ndarray:
        return self.clip[k % len(self.clip)]

    def valid(self, name: str, k: int):
        stamp = self.stamp(k)
        if name == "multi":
            return skeleton_array([skeleton_msg("bandai_mocap", self.frame(k), stamp, VALID[name])], stamp)
        if name == "single":
            return skeleton_msg("bandai_mocap", self.frame(k), stamp, VALID[name])
        from hetskel_ros.ros.recognizer_node import to_time

        return driver_array({VALID[name]: render_azure(self.camera_clip[k % len(self.clip)])}, to_time(stamp))

    def send(self, frames: int, pattern: Pattern | None = None) -> None:
        """``frames`` frames of every input (``pattern`` replacing its input's), paced at PACE x real time."""
        for i in range(frames):
            for name, publisher in self.publishers.items():
                valid = self.valid(name, self.k)
                messages = pattern.messages(i, self.stamp(self.k), valid) if pattern and \
                    pattern.input == name else [valid]
                for msg in messages:
                    publisher.publish(msg)
            self.k += 1
            time.sleep(1.0 / (FPS * PACE))


def with_person(array, person):
    array.skeletons = [*array.skeletons, person]
    return array


def bad_person(make: Callable[[np.ndarray, float], object]):
    """A pattern message: the valid person's array with one bad person added every third of a second."""
    def messages(i: int, stamp: float, valid) -> list:
        return [with_person(valid, make(np.asarray(valid.skeletons[0].positions).reshape(-1, 3), stamp))] \
            if i % 10 == 0 else [valid]
    return messages


def lone_message(make: Callable[[int, float], object], every: int = 10):
    """A pattern message: an extra message before the valid one, every ``every`` frames from the first."""
    def messages(i: int, stamp: float, valid) -> list:
        return [make(i, stamp), valid] if i % every == 0 else [valid]
    return messages


def absurd_joint(valid):
    positions = np.asarray(valid.positions, np.float32).reshape(-1, 3).copy()
    positions[8] = 1e30  # the left hand: finite, absurd
    return skeleton_msg("bandai_mocap", positions, valid.header.stamp.sec + valid.header.stamp.nanosec * 1e-9,
                        VALID["single"])


def azure_bad(change):
    def make(i: int, stamp: float):
        from hetskel_ros.ros.recognizer_node import to_time

        msg = driver_array({7: render_azure(np.zeros((21, 3)) + np.array([0.5, 0.0, 3.0]))}, to_time(stamp))
        change(msg)
        return msg
    return make


def flood(i: int, stamp: float, valid) -> list:
    """Twelve new ids beside the valid person, every frame: more than max_tracks."""
    native = np.asarray(valid.skeletons[0].positions).reshape(-1, 3)
    return [skeleton_array([*valid.skeletons, *(skeleton_msg("bandai_mocap", native, stamp, 100 + n)
                                                for n in range(12))], stamp)]


def patterns() -> list[Pattern]:
    n = int(STRIDE_S * FPS)
    every_third = len(range(0, n, 10))  # the pattern's frames i % 10 == 0
    from visualization_msgs.msg import Marker, MarkerArray

    lone = np.zeros((21, 3)) + 1.0

    def nan_marker(msg):
        msg.markers[0].pose.position.x = math.nan

    def line_list(msg):
        msg.markers.append(Marker(id=799, type=Marker.LINE_LIST))

    def mixed(msg):
        msg.markers[1].header.frame_id = "rgb_camera_link"

    def duplicate(msg):
        msg.markers.append(msg.markers[0])

    def bad_id(msg):
        msg.markers[0].id = 740

    return [
        Pattern("zero stamps, own message", "multi",
                lone_message(lambda i, s: skeleton_array([skeleton_msg("bandai_mocap", lone, 0.0, 9)], 0.0)),
                {"stale_stamp": every_third}),
        Pattern("negative stamps beside the valid person", "multi",
                bad_person(lambda f, s: skeleton_msg("bandai_mocap", f, -5.0, 9)), {"stale_stamp": every_third}),
        Pattern("one far-future stamp, then normal ones", "single",
                lone_message(lambda i, s: skeleton_msg("bandai_mocap", lone, s + 1e6, 9), every=n),
                {"future_stamp": 1}),
        Pattern("stamps two seconds late", "single",
                lone_message(lambda i, s: skeleton_msg("bandai_mocap", lone, s - 2.0, 9)),
                {"stale_stamp": every_third}),
        Pattern("every frame twice", "multi", lambda i, s, valid: [valid, valid], {"duplicate_stamp": n}),
        Pattern("one joint at 1e30 in the valid person", "single",
                lambda i, s, valid: [absurd_joint(valid)] if i == 5 else [valid], {"out_of_range": 1}),
        Pattern("a 300-byte topology name beside the valid person", "multi",
                bad_person(lambda f, s: skeleton_msg("x" * 300, f, s, 9)), {"unknown_topology": every_third}),
        Pattern("a person with too few joints", "multi",
                bad_person(lambda f, s: skeleton_msg("bandai_mocap", f[:7], s, 9)), {"wrong_joint_count": every_third}),
        Pattern("a 2D skeleton sent as 3D", "multi",
                bad_person(lambda f, s: skeleton_msg("bandai_mocap", f, s, 9, dims=2)), {"wrong_dims": every_third}),
        Pattern("an all-NaN person", "multi",
                bad_person(lambda f, s: skeleton_msg("bandai_mocap", np.full_like(f, np.nan), s, 9)),
                {"non_finite": every_third}),
        Pattern("empty arrays between frames", "multi", lone_message(lambda i, s: skeleton_array([], s), every=3),
                {}, nobody=len(range(0, n, 3))),
        Pattern("empty marker arrays (nobody in view)", "kinect",
                lone_message(lambda i, s: MarkerArray(), every=3), {}, nobody=len(range(0, n, 3))),
        Pattern("marker arrays the driver never sends", "kinect",
                lambda i, s, valid: [azure_bad([nan_marker, line_list, mixed, duplicate, bad_id][i % 5])(i, s),
                                     valid] if i % 3 == 0 else [valid],
                {reason: len([i for i in range(0, n, 3) if i % 5 == j]) for j, reason in
                 enumerate(["non_finite", "wrong_marker_type", "mixed_frames", "duplicate_marker_id",
                            "bad_marker_id"])}),
        Pattern("a flood of new ids", "multi", flood, {"too_many_tracks": (12 - (MAX_TRACKS - 1)) * n}),
    ]


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    """The recognizer node as its own process, with the three inputs."""
    directory = tmp_path_factory.mktemp("fuzz")
    inputs = {"names": list(INPUTS)}
    for name, (topic, kind) in INPUTS.items():
        inputs[name] = {"topic": topic, "kind": kind, "rate_hz": FPS}
    params = {"model": str(stand_in_bundle_path()), "backend": "onnxruntime", "device": "cpu", "threads": 1,
              "window_stride_s": STRIDE_S, "stagger": False, "threshold": 0.0, "max_tracks": MAX_TRACKS,
              "input_queue_depth": 200, "diagnostics_period_s": 0.2, "inputs": inputs}
    path = directory / "fuzz.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    log = (directory / "recognizer.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "hetskel_ros.ros.recognizer_node", "--ros-args",
                                "--params-file", str(path)], stdout=log, stderr=subprocess.STDOUT)
    yield process, directory / "recognizer.log"
    process.terminate()
    process.wait(timeout=20)
    log.close()


def test_every_bad_input_pattern_leaves_the_node_alive_counted_and_labelling(ros, recognizer):
    process, log = recognizer
    stream = Stream(ros)

    def alive() -> bool:
        assert process.poll() is None, f"the recognizer died; its log ends:\n{log.read_text()[-3000:]}"
        return True

    documented = set(DROP_REASONS) | {r for _, kind in INPUTS.values() for r in adapter_class(kind).drop_reasons}
    ros.wait_for(lambda: alive() and all(p.get_subscription_count() for p in stream.publishers.values()), 60.0,
                 "the recognizer's subscriptions")
    ros.wait_for(lambda: len(stream.statuses) == len(INPUTS) + 1, 10.0, "the recognizer's diagnostics")
    stream.send(45)  # 1.5 s: every valid person has its first window and is on the stride grid
    ros.wait_for(lambda: {(s, t) for s, t, *_ in stream.decisions} >= set(VALID.items()), 10.0,
                 "labels of the valid people")
    for pattern in patterns():
        while stream.k % 10:
            stream.send(1)
        before = {name: stream.counts(f"input {name}") for name in INPUTS}
        start = stream.stamp(stream.k)
        stream.send(pattern.frames, pattern)
        end = stream.stamp(stream.k - 1)
        stream.send(int(STRIDE_S * FPS) + 3)  # one stride (and a frame or three) after it

        def added(name: str, b=before) -> dict[str, int]:
            now = stream.counts(f"input {name}")
            changed = {k: now.get(k, 0) - b[name].get(k, 0) for k in set(now) | set(b[name])}
            return {k: v for k, v in changed.items() if v and (k.startswith("dropped.") or k == "nobody_in_view")}

        def expected(name: str, p: Pattern = pattern) -> dict[str, int]:
            drops = p.drops if name == p.input else p.other
            nobody = {"nobody_in_view": p.nobody} if name == p.input and p.nobody else {}
            return {**{f"dropped.{k}": v for k, v in drops.items()}, **nobody}

        try:
            ros.wait_for(lambda: all(added(name) == expected(name) for name in INPUTS), 10.0, "the drop counts")
        except TimeoutError:
            pytest.fail(f"{pattern.name}: counted {({n: added(n) for n in INPUTS})}, sent "
                        f"{({n: expected(n) for n in INPUTS})}")
        finally:
            alive()
        for name in INPUTS:
            counts = stream.counts(f"input {name}")
            undocumented = {k for k in counts if k.startswith("dropped.") and k != "dropped"} - \
                {f"dropped.{r}" for r in documented}
            assert not undocumented, f"{pattern.name}: drops under undocumented reasons {undocumented}"
        model = stream.counts("model")
        assert not any(k.startswith("error.") and v for k, v in model.items()), f"{pattern.name}: {model}"
        with stream.lock:
            levels = {name: status.level for name, status in stream.statuses.items()}
            mine = sorted(stamp for source, track, stamp, *_ in stream.decisions
                          if (source, track) == (pattern.input, VALID[pattern.input]))
            scores = [score for source, track, _, score, _ in stream.decisions
                      if (source, track) == (pattern.input, VALID[pattern.input])]
        assert ERROR not in levels.values(), f"{pattern.name}: {levels}"
        ros.wait_for(lambda p=pattern, e=end: any(s > e for src, t, s, *_ in list(stream.decisions)
                                                  if (src, t) == (p.input, VALID[p.input])), 5.0,
                     f"{pattern.name}: a label of the valid person after the pattern")
        with stream.lock:
            mine = sorted(stamp for source, track, stamp, *_ in stream.decisions
                          if (source, track) == (pattern.input, VALID[pattern.input]))
        during = [s for s in mine if start - STRIDE_S - 1e-6 <= s <= end + STRIDE_S + 2 / FPS]
        assert during and max(np.diff(during), default=0.0) <= STRIDE_S + 2 / FPS, \
            f"{pattern.name}: the valid person's decisions at {during} (pattern {start:.3f}..{end:.3f})"
        assert during[-1] > end, f"{pattern.name}: no label for the valid person after the pattern"
        assert all(math.isfinite(s) for s in scores), f"{pattern.name}: non-finite scores"
