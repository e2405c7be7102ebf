"""A real robot's stream: joint states at 200-500 Hz, a joint-name namespace, and base motion from the tf tree.

What a user relies on: a fast JointState stream is downsampled to the model's rate by stamp (the sample nearest each
frame time is kept, nothing counted as over_rate) so the labels are the ones of the same motion at the model's rate;
a robot whose joints carry a namespace is read by a mapping option; the transform odom -> base at each stamp puts the
skeleton in the odometry frame (interpolated like tf2), waits a bounded time for it, and when the robot publishes none
the input still works and says base motion is missing. Data: Bandai Namco Research Motion Dataset (Bandai Namco
Research Inc.), CC BY-NC 4.0.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest
from recognizer_support import mocap_sample, stand_in_bundle
from sensor_msgs.msg import JointState

from hetskel_ros.ros.adapters.base import InputConfig, InputRejected
from hetskel_ros.ros.adapters.joint_state import JointStateAdapter, JointStateConverter
from hetskel_ros.ros.adapters.transforms import READY, TOO_OLD, UNCONNECTED, WAIT, BaseMotion, TransformBuffer
from hetskel_ros.runtime import create_backend
from hetskel_ros.runtime.observation import Observation
from hetskel_ros.runtime.recognizer import InputSpec, Recognizer, RecognizerConfig
from hetskel_ros.topology import load_robot, load_topology


@pytest.fixture(scope="module")
def model():
    """An untrained stand-in model and its ONNX Runtime session: what is compared here is windows, not accuracy."""
    bundle = stand_in_bundle()
    return bundle, create_backend("onnxruntime", bundle, device="cpu", threads=1)


@pytest.fixture(scope="module")
def clip():
    mocap = mocap_sample()
    return load_topology(mocap.topology).to_unified(mocap.sequences[9])  # 210 frames: several windows


def upsampled(clip, fps: float, rate: float, jitter_s: float = 0.0, seed: int = 0) -> list[Observation]:
    """The clip at ``rate`` Hz by linear interpolation (a robot's joint-state rate), stamps jittered."""
    positions, mask = clip
    duration = (len(positions) - 1) / fps
    rng = np.random.default_rng(seed)
    times = np.arange(0.0, duration, 1.0 / rate)
    times = times + rng.uniform(-jitter_s, jitter_s, times.size)
    times = np.clip(np.sort(times), 0.0, duration)
    frame = times * fps
    low = np.minimum(np.floor(frame).astype(int), len(positions) - 2)
    w = (frame - low)[:, None, None]
    values = (1 - w) * positions[low] + w * positions[low + 1]
    return [Observation(1, 100.0 + float(t), "bandai_mocap", 3, values[k].astype(np.float32), mask[low[k]], "world")
            for k, t in enumerate(times)]


def run(recognizer: Recognizer, stream: list[Observation]):
    decisions = []
    for obs in stream:
        recognizer.observe("robot", [obs], obs.stamp)
        decisions += recognizer.step(obs.stamp)
    return decisions


def test_a_500_hz_stream_is_downsampled_by_stamp_to_the_model_rate(model, clip):
    bundle, backend = model
    fps = float(bundle.config.fps)
    reference = Recognizer(bundle, backend, [InputSpec("robot", rate_hz=fps)], RecognizerConfig(stagger=False))
    at_model_rate = run(reference, upsampled(clip, fps, fps))
    fast = Recognizer(bundle, backend, [InputSpec("robot", rate_hz=500.0, downsample=True)],
                      RecognizerConfig(stagger=False))
    stream = upsampled(clip, fps, 500.0)
    at_robot_rate = run(fast, stream)
    counters = fast.counters["robot"]
    assert not counters.drops, counters.drops  # nothing is an over_rate drop any more
    assert counters.observations == len(stream)
    kept = len(stream) - fast.events["downsampled"]
    assert abs(kept - len(stream) * fps / 500.0) <= 3  # one sample per model frame time
    assert len(at_robot_rate) == len(at_model_rate) > 3
    for a, b in zip(at_robot_rate, at_model_rate, strict=True):
        assert a.label == b.label
        assert abs(a.score - b.score) < 0.02


def test_the_sample_nearest_each_frame_time_is_kept_from_a_jittered_stream(model, clip):
    bundle, backend = model
    fps = float(bundle.config.fps)
    fast = Recognizer(bundle, backend, [InputSpec("robot", rate_hz=200.0, downsample=True)], RecognizerConfig())
    stream = upsampled(clip, fps, 200.0, jitter_s=0.001)
    run(fast, stream)
    (track,) = fast._tracks.values()
    kept = track.buffer._stamps[track.buffer._start:track.buffer._end]
    stamps = np.array([o.stamp for o in stream])
    for stamp in kept[1:]:
        grid = stream[0].stamp + round((stamp - stream[0].stamp) * fps) / fps
        assert abs(stamp - grid) == pytest.approx(np.abs(stamps - grid).min())  # no sample was nearer


def test_without_downsampling_a_fast_stream_is_mostly_over_rate(model, clip):
    bundle, backend = model
    fps = float(bundle.config.fps)
    recognizer = Recognizer(bundle, backend, [InputSpec("robot", rate_hz=fps)], RecognizerConfig())
    stream = upsampled(clip, fps, 300.0)
    run(recognizer, stream)
    assert recognizer.counters["robot"].drops["over_rate"] > len(stream) * 0.8


# -- joint-name prefixes -----------------------------------------------------------------------------------------
def joint_state(names, positions, stamp_s: float = 3.25) -> JointState:
    msg = JointState(name=list(names), position=[float(p) for p in positions])
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp_s), round(stamp_s % 1 * 1e9)
    return msg


def test_a_namespace_in_front_of_every_joint_name_is_read_by_a_mapping_option():
    plain = JointStateConverter("unitree_g1")
    plain.load_package_urdf()
    names = list(plain.kinematics.joint_names)
    q = np.linspace(-0.3, 0.3, len(names))
    expected = plain.convert(joint_state(names, q)).positions

    namespaced = dataclasses.replace(load_robot("unitree_g1"), joint_prefix="g1/")
    converter = JointStateConverter(namespaced)
    converter.load_package_urdf()
    np.testing.assert_allclose(converter.convert(joint_state(["g1/" + n for n in names], q)).positions, expected)
    with pytest.raises(InputRejected, match="lack the joint prefix 'g1/'") as raised:
        converter.convert(joint_state(names[:2], q[:2]))
    assert raised.value.reason == "unknown_joint_names"
    by_parameter = JointStateConverter("unitree_g1", joint_prefix="robot2/")  # one input per robot
    by_parameter.load_package_urdf()
    np.testing.assert_allclose(by_parameter.convert(joint_state(["robot2/" + n for n in names], q)).positions,
                               expected)


# -- the transform tree ------------------------------------------------------------------------------------------
def yaw(angle: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(angle / 2), math.cos(angle / 2))


def test_transforms_are_interpolated_and_chained_like_tf2():
    buffer = TransformBuffer()
    buffer.add("map", "odom", 0.0, (10.0, 0.0, 0.0), yaw(0.0), static=True)
    buffer.add("odom", "pelvis", 1.0, (0.0, 0.0, 0.8), yaw(0.0))
    buffer.add("odom", "pelvis", 2.0, (2.0, 0.0, 0.8), yaw(math.pi / 2))
    found = buffer.lookup("odom", "pelvis", 1.5)
    assert found.state == READY
    np.testing.assert_allclose(found.matrix[:3, 3], [1.0, 0.0, 0.8])
    np.testing.assert_allclose(found.matrix[:2, 0], [math.cos(math.pi / 4), math.sin(math.pi / 4)], atol=1e-12)
    chained = buffer.lookup("map", "pelvis", 2.0)
    np.testing.assert_allclose(chained.matrix[:3, 3], [12.0, 0.0, 0.8])
    inverse = buffer.lookup("pelvis", "map", 2.0)
    np.testing.assert_allclose(inverse.matrix @ chained.matrix, np.eye(4), atol=1e-12)
    assert buffer.lookup("odom", "pelvis", 2.2).state == WAIT  # may still come
    assert buffer.lookup("odom", "pelvis", 2.02, tolerance_s=0.05).state == READY
    assert buffer.lookup("odom", "pelvis", 0.5).state == TOO_OLD
    assert buffer.lookup("odom", "camera", 1.5).state == UNCONNECTED
    with pytest.raises(ValueError, match="not finite"):
        buffer.add("odom", "pelvis", 3.0, (float("nan"), 0.0, 0.0), yaw(0.0))


def robot_observation(stamp: float) -> Observation:
    positions = np.zeros((len(load_robot("unitree_g1").links) + 4, 3), np.float32)
    return Observation(0, stamp, "unitree_g1", 3, positions, np.ones(len(positions), bool), "pelvis", "+z")


def test_joint_states_wait_for_their_transform_in_order_and_bounded():
    buffer = TransformBuffer()
    motion = BaseMotion(buffer, "odom", "pelvis", wait_s=0.1, tolerance_s=0.02)
    buffer.add("odom", "pelvis", 0.0, (0.0, 0.0, 0.8), yaw(0.0))
    motion.push(robot_observation(0.05), now=0.05)
    motion.push(robot_observation(0.06), now=0.06)
    assert motion.release(0.07) == ([], [])  # the transform at 0.05 is not there yet: both wait, in order
    buffer.add("odom", "pelvis", 0.1, (1.0, 0.0, 0.8), yaw(0.0))
    out, rejected = motion.release(0.11)
    assert [o.stamp for o in out] == [0.05, 0.06] and not rejected
    assert out[0].frame_id == "odom"
    np.testing.assert_allclose(out[0].positions[0], [0.5, 0.0, 0.8], atol=1e-6)
    motion.push(robot_observation(0.5), now=0.5)  # odometry stopped at 0.1
    assert motion.release(0.55) == ([], [])
    out, rejected = motion.release(0.61)  # waited 0.1 s: 0.4 s past the newest is too far to extrapolate
    assert not out and [r.reason for r in rejected] == ["transform_extrapolation"]
    assert "'odom' -> 'pelvis'" in str(rejected[0])
    assert not motion.missing


def test_without_any_transform_the_skeleton_passes_and_base_motion_is_missing():
    motion = BaseMotion(TransformBuffer(), "odom", "pelvis", wait_s=0.1)
    motion.push(robot_observation(1.0), now=1.0)
    assert motion.release(1.05) == ([], [])  # the first transform may be on its way
    out, rejected = motion.release(1.11)
    assert len(out) == 1 and out[0].frame_id == "pelvis" and not rejected
    assert motion.missing and "no transforms link 'odom' and 'pelvis'" in motion.missing_detail
    motion.push(robot_observation(1.2), now=1.2)
    assert len(motion.release(1.2)[0]) == 1  # known to be missing: no more waiting


def test_the_adapter_reports_base_motion_and_its_parameters():
    config = InputConfig(name="g1", topic="joint_states", kind="joint_state", robot="unitree_g1", rate_hz=500.0,
                         params={"urdf_file": "package"})
    buffer = TransformBuffer()
    adapter = JointStateAdapter(config, None, transforms=buffer)
    assert adapter.spec().downsample and adapter.spec().rate_hz == 500.0
    names = list(adapter.converter.kinematics.joint_names)
    buffer.add("odom", "pelvis", 2.0, (3.0, 0.0, 0.79), yaw(0.0))
    buffer.add("odom", "pelvis", 3.0, (4.0, 0.0, 0.79), yaw(0.0))
    assert adapter.convert_parts(joint_state(names, np.zeros(len(names)), stamp_s=2.5)) == ([], [])
    assert adapter.holding() == 1
    released, rejected = adapter.release(2.5)
    out = [observation for message in released for observation in message]
    assert len(out) == 1 and not rejected and out[0].frame_id == "odom"
    plain = adapter.convert(joint_state(names, np.zeros(len(names)), stamp_s=2.5))[0]
    present = out[0].mask
    np.testing.assert_allclose(out[0].positions[present] - plain.positions[present], [[3.5, 0.0, 0.79]] * present.sum(),
                               atol=1e-5)
    warning, values = adapter.status()
    assert not warning and values["base_motion"] == "from /tf 'odom' -> 'pelvis'"
    assert "walk" in values["base_motion_needed_by"]
    off = JointStateAdapter(dataclasses.replace(config, params={"urdf_file": "package", "use_tf": False}), None)
    off.convert_parts(joint_state(names, np.zeros(len(names))))
    assert off.release(0.0)[0][0][0].frame_id == "pelvis"
    assert off.status()[1]["base_motion"].startswith("missing")


# -- over DDS: a robot's real streams into the node ------------------------------------------------------------
def test_a_robot_over_dds_gets_base_motion_and_bad_input_is_counted_not_fatal(ros, tmp_path):
    """JointState at 200 Hz and /tf into a RecognizerNode: actions in the odom frame; unknown joint names, a stale
    transform and a URDF without the mapped links are dropped by reason while the node keeps labelling."""
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import TransformStamped
    from hetskel_msgs.msg import ActionArray
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from recognizer_support import stand_in_bundle_path
    from tf2_msgs.msg import TFMessage

    from hetskel_ros.ros.recognizer_node import RecognizerNode, to_time
    from hetskel_ros.topology.urdf import resolve_urdf_path

    g1 = load_robot("unitree_g1")
    g1_urdf = resolve_urdf_path(g1.urdf_package, g1.urdf_path)
    overrides = [
        Parameter("model", value=str(stand_in_bundle_path())), Parameter("backend", value="onnxruntime"),
        Parameter("threads", value=1), Parameter("diagnostics_period_s", value=0.2), Parameter("threshold", value=0.0),
        Parameter("input_queue_depth", value=500), Parameter("inputs.names", value=["g1", "wrong"]),
        Parameter("inputs.g1.topic", value="g1/joint_states"), Parameter("inputs.g1.kind", value="joint_state"),
        Parameter("inputs.g1.robot", value="unitree_g1"), Parameter("inputs.g1.rate_hz", value=200.0),
        Parameter("inputs.g1.urdf_file", value="package"), Parameter("inputs.g1.joint_prefix", value="g1/"),
        Parameter("inputs.wrong.topic", value="wrong/joint_states"),
        Parameter("inputs.wrong.kind", value="joint_state"),
        Parameter("inputs.wrong.robot", value="talos"), Parameter("inputs.wrong.urdf_file", value=str(g1_urdf)),
    ]
    node = ros.add_node(RecognizerNode(context=ros.context, parameter_overrides=overrides))
    probe = ros.node("robot_probe")
    reliable = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
    joints = probe.create_publisher(JointState, "g1/joint_states", reliable)
    wrong = probe.create_publisher(JointState, "wrong/joint_states", reliable)
    tf = probe.create_publisher(TFMessage, "/tf", QoSProfile(depth=100))
    actions, diagnostics = [], {}
    probe.create_subscription(ActionArray, "actions", actions.append, reliable)

    def on_diagnostics(msg) -> None:
        for status in msg.status:
            diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    probe.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    for publisher in (joints, wrong, tf):
        ros.wait_for_subscribers(publisher)
    names = list(node.adapters["g1"].converter.kinematics.joint_names)
    start = 50.0

    def send(k: int, with_tf: bool = True, prefix: str = "g1/") -> None:
        stamp = start + k / 200.0
        q = 0.4 * np.sin(np.linspace(0, 3, len(names)) + 2 * math.pi * stamp)
        msg = joint_state([prefix + n for n in names], q, stamp)
        joints.publish(msg)
        if with_tf:
            transform = TransformStamped()
            transform.header.stamp = to_time(stamp)
            transform.header.frame_id, transform.child_frame_id = "odom", "pelvis"
            transform.transform.translation.x, transform.transform.translation.z = 0.5 * (stamp - start), 0.79
            transform.transform.rotation.w = 1.0
            tf.publish(TFMessage(transforms=[transform]))
        time.sleep(0.002)

    for k in range(600):  # 3 s at 200 Hz (sent at about real time)
        send(k, prefix="" if k == 300 else "g1/")  # one message without the namespace
    wrong.publish(joint_state(names[:3], [0.0, 0.0, 0.0]))
    for k in range(600, 700):  # odometry stops: these would extrapolate 0.05-0.5 s
        send(k, with_tf=False)
    status = "recognizer: input g1"
    ros.wait_for(lambda: int(diagnostics.get(status, {}).get("dropped.transform_extrapolation", 0)) >= 80,
                 what="stale-transform drops in diagnostics")
    values = diagnostics[status]
    assert int(values["dropped.unknown_joint_names"]) == 1
    assert values["base_motion"] == "from /tf 'odom' -> 'pelvis'" and values["joint_prefix"] == "g1/"
    assert int(values["with_base_motion"]) >= 590
    assert not any(key.startswith("dropped.over_rate") for key in values)
    ros.wait_for(lambda: int(diagnostics.get("recognizer: input wrong", {}).get("dropped.bad_urdf", 0)) == 1,
                 what="bad_urdf drop")
    assert actions and all(a.header.frame_id == "odom" for msg in actions for a in msg.actions)
    assert all(a.hypotheses for msg in actions for a in msg.actions)
    windows = len(actions)
    assert windows >= 4  # 3 s of data, a window every 0.5 s after the first half-window
