"""The recognizer node over real DDS: bad input never stops it, every drop and reset shows in /diagnostics by
reason, memory stays bounded under a flood, and good input still comes out as ActionArray (and RViz markers).

One node for the module (in this process, its own executor thread; messages cross DDS as between processes), an
untrained stand-in model (behaviour here does not depend on what the weights learned), real mocap frames.
Data: Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from recognizer_support import mocap_sample, skeleton_array, skeleton_msg, stand_in_bundle, stand_in_bundle_path

TRACK_TIMEOUT_S = 1.0
TOP_K = 3


class Probe:
    """The test's side of DDS: publishers for both inputs, and what came back on actions, markers, diagnostics."""

    def __init__(self, ros, node) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from hetskel_msgs.msg import ActionArray, Skeleton, SkeletonArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from visualization_msgs.msg import MarkerArray

        self.node = node
        self.test_node = ros.node("recognizer_probe")
        self.single = self.test_node.create_publisher(Skeleton, "probe/skeleton", 50)
        self.multi = self.test_node.create_publisher(SkeletonArray, "probe/skeletons", 50)
        self.lock = threading.Lock()
        self.actions: list = []
        self.markers: list = []
        self.diagnostics = None
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.test_node.create_subscription(ActionArray, "actions", self._on(self.actions), reliable)
        self.test_node.create_subscription(MarkerArray, "markers", self._on(self.markers), 50)
        self.test_node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        ros.wait_for_subscribers(self.single)
        ros.wait_for_subscribers(self.multi)
        ros.wait_for(lambda: self.diagnostics is not None, what="first /diagnostics")

    def _on(self, store: list):
        def callback(msg) -> None:
            with self.lock:
                store.append(msg)

        return callback

    def _on_diagnostics(self, msg) -> None:
        if any(s.name.startswith("recognizer:") for s in msg.status):
            self.diagnostics = msg

    def values(self, suffix: str) -> dict[str, str]:
        status = next(s for s in self.diagnostics.status if s.name.endswith(suffix))
        return {kv.key: kv.value for kv in status.values}

    def count(self, suffix: str, key: str) -> int:
        return int(float(self.values(suffix).get(key, "0")))

    def wait_count(self, ros, suffix: str, key: str, at_least: int, timeout: float = 5.0) -> int:
        return ros.wait_for(lambda: self.count(suffix, key) >= at_least and self.count(suffix, key),
                            timeout, f"diagnostics '{suffix}' {key} >= {at_least}")


@pytest.fixture(scope="module")
def setup(ros_module):
    from rclpy.parameter import Parameter

    from hetskel_ros.ros.recognizer_node import RecognizerNode

    overrides = [
        Parameter("model", value=str(stand_in_bundle_path())), Parameter("backend", value="onnxruntime"),
        Parameter("threads", value=1), Parameter("track_timeout_s", value=TRACK_TIMEOUT_S),
        Parameter("diagnostics_period_s", value=0.2), Parameter("max_tracks", value=6), Parameter("top_k", value=TOP_K),
        Parameter("publish_markers", value=True), Parameter("stagger", value=False),
        Parameter("inputs.names", value=["single", "multi"]),
        Parameter("inputs.single.topic", value="probe/skeleton"), Parameter("inputs.single.kind", value="skeleton"),
        Parameter("inputs.multi.topic", value="probe/skeletons"),
        Parameter("inputs.multi.kind", value="skeleton_array"),
    ]
    node = ros_module.add_node(RecognizerNode(context=ros_module.context, parameter_overrides=overrides))
    return ros_module, node, Probe(ros_module, node)


@pytest.fixture(scope="module")
def frames():
    data = mocap_sample()
    return data.sequences[16], data.sequences[0]  # a waving clip (186 frames), a short one


def send(publisher, msg, pause: float = 0.0) -> None:
    publisher.publish(msg)
    if pause:
        time.sleep(pause)


# -- bad input ---------------------------------------------------------------------------------------------------
BAD_SINGLE = {
    "wrong_joint_count": lambda f: skeleton_msg("bandai_mocap", f[:20], 1.0, track_id=41),
    "wrong_dims": lambda f: skeleton_msg("bandai_mocap", f, 1.0, track_id=41, dims=2),
    "non_finite": lambda f: skeleton_msg("bandai_mocap", np.full_like(f, np.inf), 1.0, track_id=41),
    "unknown_topology": lambda f: skeleton_msg("kinect_v9", f, 1.0, track_id=41),
    "out_of_range": lambda f: skeleton_msg("bandai_mocap", np.where(np.arange(len(f))[:, None] == 8, 1e30, f), 1.0,
                                           track_id=41),
}


@pytest.mark.parametrize("reason", list(BAD_SINGLE))
def test_bad_messages_are_dropped_and_counted(setup, frames, reason):
    ros, node, probe = setup
    before = probe.count("input single", f"dropped.{reason}")
    send(probe.single, BAD_SINGLE[reason](frames[0][0]))
    probe.wait_count(ros, "input single", f"dropped.{reason}", before + 1)
    assert node.context.ok()
    status = next(s for s in probe.diagnostics.status if s.name.endswith("input single"))
    assert status.level in (b"\x00", b"\x01")  # OK or WARN: a dropped message is not a node error


def test_an_empty_array_is_nobody_in_view_and_a_bad_person_in_an_array_is_counted(setup, frames):
    ros, node, probe = setup
    nobody = probe.count("input multi", "nobody_in_view")
    dropped = probe.count("input multi", "dropped")
    wrong = probe.count("input multi", "dropped.wrong_joint_count")
    send(probe.multi, skeleton_array([], 1.0))
    probe.wait_count(ros, "input multi", "nobody_in_view", nobody + 1)
    assert probe.count("input multi", "dropped") == dropped  # not a drop
    people = [skeleton_msg("bandai_mocap", frames[0][0][:7], 1.0, track_id=42),
              skeleton_msg("bandai_mocap", frames[0][0], 1.0, track_id=43)]
    send(probe.multi, skeleton_array(people, 1.0))
    probe.wait_count(ros, "input multi", "dropped.wrong_joint_count", wrong + 1)
    ros.wait_for(lambda: ("multi", 43) in node.recognizer.track_keys(), what="the good person of the array")


def test_nan_joints_are_missing_not_a_reason_to_drop(setup, frames):
    ros, _, probe = setup
    native = frames[0][0].copy()
    native[[8, 12]] = np.nan
    seen = probe.count("input single", "observations")
    dropped = probe.count("input single", "dropped")
    send(probe.single, skeleton_msg("bandai_mocap", native, 1.0, track_id=44))
    probe.wait_count(ros, "input single", "observations", seen + 1)
    assert probe.count("input single", "dropped") == dropped


# -- stamps and tracks -------------------------------------------------------------------------------------------
def test_a_repeated_stamp_is_dropped_and_a_backward_one_resets_the_track(setup, frames):
    ros, _, probe = setup
    repeat = probe.count("input single", "dropped.duplicate_stamp")
    backwards = probe.count("model", "track_reset_backwards")
    for k in range(10):
        send(probe.single, skeleton_msg("bandai_mocap", frames[0][k], 100.0 + k / 30, track_id=45), 0.003)
    send(probe.single, skeleton_msg("bandai_mocap", frames[0][9], 100.0 + 9 / 30, track_id=45))
    probe.wait_count(ros, "input single", "dropped.duplicate_stamp", repeat + 1)
    send(probe.single, skeleton_msg("bandai_mocap", frames[0][5], 100.0 + 5 / 30, track_id=45))
    probe.wait_count(ros, "model", "track_reset_backwards", backwards + 1)


def test_a_time_jump_back_of_everyone_on_an_input_resets_that_input(setup, frames):
    ros, node, probe = setup
    jumps = probe.count("model", "reset_input_time_jump")
    for k in range(5):
        people = [skeleton_msg("bandai_mocap", frames[0][k], 200.0 + k / 30, track_id=t) for t in (46, 47)]
        send(probe.multi, skeleton_array(people, 200.0 + k / 30), 0.003)
    ros.wait_for(lambda: {("multi", 46), ("multi", 47)} <= set(node.recognizer.track_keys()), what="two tracks")
    for k in range(2):  # one message back could be a lone bad stamp; the second confirms the jump
        send(probe.multi, skeleton_array([skeleton_msg("bandai_mocap", frames[0][k], 190.0 + k / 30, track_id=46)],
                                         190.0 + k / 30), 0.003)
    probe.wait_count(ros, "model", "reset_input_time_jump", jumps + 1)
    assert [key for key in node.recognizer.track_keys() if key[0] == "multi"] == [("multi", 46)]


def test_stale_tracks_are_freed_after_the_timeout(setup, frames):
    ros, node, probe = setup
    freed = probe.count("model", "tracks_freed")
    for k in range(2):  # the stamps jumped ahead of the earlier tests': the second message confirms the jump
        send(probe.single, skeleton_msg("bandai_mocap", frames[0][k], 300.0 + k / 30, track_id=48))
    ros.wait_for(lambda: ("single", 48) in node.recognizer.track_keys(), what="track 48")
    started = time.monotonic()
    ros.wait_for(lambda: ("single", 48) not in node.recognizer.track_keys(), TRACK_TIMEOUT_S + 3, "track 48 freed")
    assert time.monotonic() - started >= TRACK_TIMEOUT_S - 0.3
    probe.wait_count(ros, "model", "tracks_freed", freed + 1)
    ros.wait_for(lambda: probe.count("model", "active_tracks") == 0, TRACK_TIMEOUT_S + 3, "no active tracks")


def test_ten_times_the_configured_rate_stays_bounded(setup, frames):
    """300 Hz stamps into an input configured for 30 Hz: thinned, counted, buffers flat."""
    ros, node, probe = setup
    over = probe.count("input single", "dropped.over_rate")
    capacity = node.recognizer.buffer_capacity("single")
    peak_frames = []
    for k in range(600):  # 2 s of 300 Hz stamps, sent as fast as a 300 Hz publisher would
        frame = frames[0][min(k // 10, len(frames[0]) - 1)]
        send(probe.single, skeleton_msg("bandai_mocap", frame, 400.0 + k / 300, track_id=49), 1 / 300)
        if k % 50 == 49:
            peak_frames.append(node.recognizer.buffered_frames())
    probe.wait_count(ros, "input single", "dropped.over_rate", over + 300)
    assert max(peak_frames) <= capacity * node.recognizer.config.max_tracks
    assert max(peak_frames[4:]) == max(peak_frames[-3:])  # not growing after the first windows' worth
    assert int(probe.values("model")["buffered_frames"]) <= capacity * node.recognizer.config.max_tracks


# -- good input still works --------------------------------------------------------------------------------------
def test_a_real_sequence_comes_out_as_actions_and_markers(setup, frames):
    ros, node, probe = setup
    with probe.lock:
        probe.actions.clear()
        probe.markers.clear()
    clip = frames[0]
    for k in range(len(clip)):
        send(probe.multi, skeleton_array([skeleton_msg("bandai_mocap", clip[k], 500.0 + k / 30, track_id=50,
                                                       frame_id="mocap")], 500.0 + k / 30, "mocap"), 0.004)
    ros.wait_for(lambda: len(probe.actions) >= 8, what="ActionArrays for a 6 s clip")
    labels = set(node.recognizer.labels) | {"unknown"}
    for msg in probe.actions:
        for action in msg.actions:
            assert (action.track_id, action.source, action.header.frame_id) == (50, "multi", "mocap")
            assert action.label in labels and len(action.hypotheses) == TOP_K
            assert action.hypotheses[0].score == pytest.approx(action.score)
            start = action.window_start.sec + action.window_start.nanosec * 1e-9
            stamp = action.header.stamp.sec + action.header.stamp.nanosec * 1e-9
            assert stamp - start == pytest.approx(31 / 15, abs=1e-6) and 500.0 <= stamp <= 500.0 + len(clip) / 30
    ros.wait_for(lambda: probe.markers, what="RViz markers")
    from visualization_msgs.msg import Marker

    kinds = {m.type for m in probe.markers[-1].markers}
    assert kinds == {Marker.LINE_LIST, Marker.TEXT_VIEW_FACING}
    diag = probe.values("model")
    assert diag["backend"] == "onnxruntime" and float(diag["inference_latency_p50_ms"]) > 0


# -- the stall watchdog ------------------------------------------------------------------------------------------
def _input_status_over_time(stalling: bool) -> list:
    """Diagnostics of one input every 0.25 s while a person streams for 6 s; ``stalling``: every 0.3 s one frame
    comes 0.1 s late, so the track starts over before its first window (accepted, never decided)."""
    from builtin_interfaces.msg import Time

    from hetskel_ros.ros.adapters import InputConfig
    from hetskel_ros.ros.recognizer_diagnostics import DiagnosticsReporter
    from hetskel_ros.runtime import create_backend
    from hetskel_ros.runtime.observation import Observation
    from hetskel_ros.runtime.recognizer import InputSpec, Recognizer
    from hetskel_ros.topology import load_topology

    bundle = stand_in_bundle()
    backend = create_backend("onnxruntime", bundle, device="cpu", threads=1)
    recognizer = Recognizer(bundle, backend, [InputSpec("x")])
    reporter = DiagnosticsReporter("recognizer", recognizer, [InputConfig("x", "x", "skeleton")], backend)
    positions, mask = load_topology("bandai_mocap").to_unified(mocap_sample().sequences[16])
    statuses = []
    for k in range(180):
        stamp = k / 30
        if stalling and k % 9 == 8:
            stamp -= 0.1
        recognizer.count_message("x")
        recognizer.observe("x", [Observation(1, stamp, "bandai_mocap", 3, positions[k], mask[k])], k / 30)
        recognizer.step(k / 30)
        if k % 8 == 0:
            statuses.append(reporter.report(k / 30, Time()).status[0])
    backend.close()
    return statuses


def test_an_input_whose_people_are_accepted_but_never_decided_turns_warn_with_the_reason():
    stalled = _input_status_over_time(stalling=True)
    final = stalled[-1]
    assert final.level == b"\x01" and final.message.startswith("stalled:")
    values = {kv.key: kv.value for kv in final.values}
    assert values["decisions"] == "0" and float(values["stalled_s"]) > 3.0 and int(values["observations"]) > 150
    healthy = _input_status_over_time(stalling=False)
    assert not any(s.message.startswith("stalled") for s in healthy)
    assert int({kv.key: kv.value for kv in healthy[-1].values}["decisions"]) >= 8
