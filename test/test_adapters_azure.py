"""Azure Kinect ROS driver body-tracking markers -> observations (hetskel_ros.ros.adapters.azure_markers).

The messages are built the way the driver builds them (K4AROSDevice::getBodyMarker: one SPHERE per k4abt joint,
id = body_id * 100 + joint, metres, depth camera frame with y down, 0.25 s lifetime) from real motion capture:
Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0 (data/bandai_sample.npz). Each
array goes through rclpy's CDR serialisation, as a recorded or received message does.
"""

from __future__ import annotations

import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from rclpy.serialization import deserialize_message, serialize_message
from visualization_msgs.msg import Marker, MarkerArray

from hetskel_ros.ros.adapters import adapter_class
from hetskel_ros.ros.adapters.azure_markers import AzureMarkersAdapter, AzureMarkersConverter
from hetskel_ros.ros.adapters.base import InputConfig, InputRejected
from hetskel_ros.ros.msg_dict import message_class
from hetskel_ros.topology import load_topology, load_unified, up_rotation
from hetskel_ros.topology.sequences import load_sequences, sample_path

FRAME = "depth_camera_link"
MOCAP_TO_CAMERA = np.diag([1.0, -1.0, -1.0])  # y up (mocap) -> y down, z forward (k4a depth camera); det +1
FRAMES = 30


@pytest.fixture(scope="module")
def mocap_frames() -> list[np.ndarray]:
    """Two real mocap sequences (30 frames each), native bandai_mocap joints, moved into the camera frame."""
    data = load_sequences(sample_path())
    picked = [data.sequences[0][:FRAMES], data.sequences[len(data) // 2][:FRAMES]]
    out = []
    for offset, seq in zip(([-0.6, 0.0, 2.5], [0.7, 0.0, 3.2]), picked, strict=True):
        centre = seq[0, 0] * np.array([1.0, 0.0, 1.0])  # first pelvis on the floor plane
        out.append(((seq - centre) @ MOCAP_TO_CAMERA.T + np.array(offset)).astype(np.float64))
    return out


def render_azure(native_mocap: np.ndarray) -> np.ndarray:
    """k4abt joints (32, 3) from the mocap's joints of the same canonical meaning; NaN where the mocap has none."""
    mocap, azure = load_topology("bandai_mocap"), load_topology("azure_kinect")
    by_canonical = {canonical: mocap.index(native) for native, canonical in mocap.canonical.items()}
    out = np.full((azure.num_joints, 3), np.nan)
    for j, native in enumerate(azure.joints):
        source = by_canonical.get(azure.canonical.get(native, ""))
        if source is not None:
            out[j] = native_mocap[source]
    return out


def sphere(body: int, joint: int, xyz, stamp: Time, frame: str = FRAME) -> Marker:
    """One joint marker as the driver fills it."""
    marker = Marker(id=body * 100 + joint, type=Marker.SPHERE, action=Marker.ADD,
                    lifetime=Duration(sec=0, nanosec=250_000_000))
    marker.header.frame_id, marker.header.stamp = frame, stamp
    marker.scale.x = marker.scale.y = marker.scale.z = 0.05
    marker.color.r, marker.color.a = 1.0, 1.0
    marker.pose.position.x, marker.pose.position.y, marker.pose.position.z = (float(v) for v in xyz)
    marker.pose.orientation.w = 1.0
    return marker


def driver_array(bodies: dict[int, np.ndarray], stamp: Time) -> MarkerArray:
    """A MarkerArray in the driver's layout; joints that are NaN are left out (as forks that skip them do)."""
    msg = MarkerArray()
    for body, joints in bodies.items():
        msg.markers.extend(sphere(body, j, xyz, stamp) for j, xyz in enumerate(joints) if np.isfinite(xyz).all())
    return deserialize_message(serialize_message(msg), MarkerArray)


def stamp_at(frame: int) -> Time:
    nanoseconds = 1_700_000_000 * 10**9 + frame * 33_333_333
    return Time(sec=nanoseconds // 10**9, nanosec=nanoseconds % 10**9)


def test_driver_markers_from_real_mocap_round_trip_to_the_unified_skeleton(mocap_frames):
    converter = AzureMarkersConverter()
    unified = load_unified()
    mocap = load_topology("bandai_mocap")
    azure = load_topology("azure_kinect")
    # Unified joints both skeletons give directly (spine_mid needs k4abt's navel and chest spine points: missing).
    direct = set(mocap.canonical.values()) & set(azure.canonical.values())
    expected_mask = np.array([name in direct for name in unified.names])
    worst = 0.0
    for t in range(FRAMES):
        msg = driver_array({1: render_azure(mocap_frames[0][t]), 2: render_azure(mocap_frames[1][t])}, stamp_at(t))
        observations = converter.convert(msg)
        assert [o.track_id for o in observations] == [1, 2]
        for body, obs in zip((0, 1), observations, strict=True):
            assert obs.topology == "azure_kinect" and obs.dims == 3 and obs.up == "-y" and obs.frame_id == FRAME
            assert obs.stamp == pytest.approx(1_700_000_000 + t * 0.033333333, abs=1e-6)
            np.testing.assert_array_equal(obs.mask, expected_mask)
            truth, truth_mask = mocap.to_unified(mocap_frames[body][t])
            assert truth_mask[expected_mask].all()
            worst = max(worst, float(np.abs(obs.positions[expected_mask] - truth[expected_mask]).max()))
            assert not obs.positions[~obs.mask].any()  # missing joints are 0
    assert worst < 1e-5  # float32 of metre positions


def test_camera_frame_with_up_minus_y_gives_an_upright_person(mocap_frames):
    """The topology's up "-y" is what makes the y-down camera skeleton stand upright after normalisation."""
    unified = load_unified()
    obs = AzureMarkersConverter().convert(driver_array({7: render_azure(mocap_frames[0][0])}, stamp_at(0)))[0]
    upright = obs.positions @ up_rotation(obs.up).T
    height = {name: upright[unified.index(name), 1] for name in ("spine_base", "spine_shoulder", "left_ankle")}
    assert height["spine_shoulder"] > height["spine_base"] + 0.3 > height["left_ankle"] + 0.3
    left, right = upright[unified.index("left_hip")], upright[unified.index("right_hip")]
    assert np.linalg.norm(left - right) > 0.1


def test_missing_joint_markers_are_missing_joints_not_errors(mocap_frames):
    joints = render_azure(mocap_frames[0][0])
    azure, unified = load_topology("azure_kinect"), load_unified()
    joints[azure.index("WRIST_LEFT")] = np.nan
    obs = AzureMarkersConverter().convert(driver_array({1: joints}, stamp_at(0)))[0]
    assert not obs.mask[unified.index("left_wrist")]
    assert obs.mask[unified.index("right_wrist")] and obs.mask[unified.index("left_elbow")]


def test_deleteall_then_bodies_is_read_and_an_empty_array_is_nobody_in_view(mocap_frames):
    """The driver sends an empty array when nobody is in view: no observation, and no drop either."""
    converter = AzureMarkersConverter()
    clear = Marker(action=Marker.DELETEALL)
    for nobody in (MarkerArray(), MarkerArray(markers=[clear])):
        assert converter.convert_parts(nobody) == ([], [])
        assert converter.convert(nobody) == []
    msg = driver_array({3: render_azure(mocap_frames[0][0])}, stamp_at(0))
    msg.markers.insert(0, clear)  # RViz convention: clear, then the current bodies
    assert [o.track_id for o in converter.convert(msg)] == [3]


def bad_array(mocap_frames, change) -> MarkerArray:
    msg = driver_array({1: render_azure(mocap_frames[0][0])}, stamp_at(0))
    change(msg)
    return msg


def _line_list(msg):
    msg.markers.append(Marker(id=150, type=Marker.LINE_LIST))


def _joint_index_too_large(msg):
    msg.markers[0].id = 140  # body 1, joint 40: k4abt has 32


def _negative_id(msg):
    msg.markers[0].id = -5


def _duplicate(msg):
    msg.markers.append(msg.markers[0])


def _mixed_frames(msg):
    msg.markers[1].header.frame_id = "rgb_camera_link"


def _nan(msg):
    msg.markers[0].pose.position.y = float("nan")  # marker 0 is body 1's PELVIS: id 100


@pytest.mark.parametrize(("change", "reason", "named"), [
    (_line_list, "wrong_marker_type", "150"),
    (_joint_index_too_large, "bad_marker_id", "140"),
    (_negative_id, "bad_marker_id", "-5"),
    (_duplicate, "duplicate_marker_id", "[100]"),
    (_mixed_frames, "mixed_frames", "rgb_camera_link"),
    (_nan, "non_finite", "[100]"),
])
def test_bad_arrays_are_rejected_with_their_reason(mocap_frames, change, reason, named):
    with pytest.raises(InputRejected) as rejected:
        AzureMarkersConverter().convert(bad_array(mocap_frames, change))
    assert rejected.value.reason == reason
    assert named in str(rejected.value)
    # what the node and offline evaluation call: the rejection comes back to be counted, it is never raised
    observations, rejections = AzureMarkersConverter().convert_parts(bad_array(mocap_frames, change))
    assert observations == [] and [r.reason for r in rejections] == [reason]


def test_a_body_without_unified_joints_is_dropped_alone(mocap_frames):
    msg = driver_array({1: render_azure(mocap_frames[0][0])}, stamp_at(0))
    azure = load_topology("azure_kinect")
    msg.markers.append(sphere(2, azure.index("CLAVICLE_LEFT"), (0.1, 0.2, 2.0), stamp_at(0)))  # not a unified joint
    converter = AzureMarkersConverter()
    observations, rejected = converter.convert_parts(msg)
    assert [o.track_id for o in observations] == [1]
    assert [r.reason for r in rejected] == ["no_joints"] and "body 2" in str(rejected[0])
    with pytest.raises(InputRejected, match="body 2"):
        converter.convert(msg)


def test_adapter_is_registered_with_the_driver_message_type(mocap_frames):
    cls = adapter_class("azure_markers")
    assert cls is AzureMarkersAdapter
    assert message_class(cls.message_type) is MarkerArray
    adapter = cls(InputConfig(name="kinect", topic="body_tracking_data", kind="azure_markers"))
    assert adapter.dims() == 3
    observations = adapter.convert(driver_array({5: render_azure(mocap_frames[1][0])}, stamp_at(0)))
    assert observations[0].track_id == 5 and observations[0].topology == "azure_kinect"


def test_bad_configuration_fails_at_start_with_the_value_named():
    with pytest.raises(ValueError, match="coco17"):
        AzureMarkersConverter("coco17")
    with pytest.raises(ValueError, match="body_id_stride 10"):
        AzureMarkersConverter(body_id_stride=10)
