"""Skeleton and SkeletonArray adapters: real messages of real topologies in, unified observations or a named reason.

Data: Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0.
"""

from __future__ import annotations

import numpy as np
import pytest
from recognizer_support import mocap_sample, skeleton_array, skeleton_msg

from hetskel_ros.ros.adapters import ADAPTERS, InputConfig, InputRejected, adapter_class
from hetskel_ros.ros.adapters.skeleton import SkeletonAdapter, SkeletonArrayAdapter
from hetskel_ros.ros.recognizer_node import to_time
from hetskel_ros.topology import load_topology


@pytest.fixture(scope="module")
def frame():
    return mocap_sample().sequences[0][10]  # (21, 3) bandai_mocap, metres


def adapter(kind: str = "skeleton", topology: str = "") -> SkeletonAdapter | SkeletonArrayAdapter:
    return adapter_class(kind)(InputConfig(name="in", topic="in", kind=kind, topology=topology))


def test_a_real_frame_becomes_the_unified_skeleton(frame):
    obs = adapter().convert(skeleton_msg("bandai_mocap", frame, 12.25, track_id=7, frame_id="mocap"))[0]
    expected, mask = load_topology("bandai_mocap").to_unified(frame)
    assert (obs.track_id, obs.stamp, obs.topology, obs.dims, obs.frame_id, obs.up) == (7, 12.25, "bandai_mocap", 3,
                                                                                        "mocap", "+y")
    np.testing.assert_array_equal(obs.mask, mask)
    np.testing.assert_allclose(obs.positions, expected)


def test_nan_joints_become_missing(frame):
    native = frame.copy()
    native[8] = np.nan  # Hand_L
    native[12, 0] = np.inf  # Hand_R
    obs = adapter().convert(skeleton_msg("bandai_mocap", native, 1.0))[0]
    _, full = load_topology("bandai_mocap").to_unified(frame)
    assert obs.mask.sum() == full.sum() - 2
    assert np.isfinite(obs.positions).all()


def test_low_confidence_joints_become_missing(frame):
    confidence = np.ones(21, np.float32)
    confidence[[8, 12]] = 0.0
    obs = adapter().convert(skeleton_msg("bandai_mocap", frame, 1.0, confidence=confidence))[0]
    _, full = load_topology("bandai_mocap").to_unified(frame)
    assert obs.mask.sum() == full.sum() - 2


@pytest.mark.parametrize(("reason", "change"), [
    ("wrong_joint_count", lambda f: {"native": f[:20]}),
    ("wrong_dims", lambda f: {"dims": 2}),
    ("non_finite", lambda f: {"native": np.full_like(f, np.nan)}),
    ("unknown_topology", lambda f: {"topology": "kinect_v9"}),
    ("unknown_topology", lambda f: {"topology": "../../etc/passwd"}),
    ("wrong_confidence_count", lambda f: {"confidence": np.ones(5, np.float32)}),
    ("no_joints", lambda f: {"confidence": np.zeros(21, np.float32)}),
])
def test_bad_skeletons_are_rejected_with_a_reason(frame, reason, change):
    args = {"topology": "bandai_mocap", "native": frame, "stamp": 1.0, **change(frame)}
    with pytest.raises(InputRejected) as caught:
        adapter().convert(skeleton_msg(**args))
    assert caught.value.reason == reason
    assert str(caught.value)  # says what was wrong


def test_configured_topology_is_the_default_and_the_expectation(frame):
    obs = adapter(topology="bandai_mocap").convert(skeleton_msg("", frame, 1.0))[0]
    assert obs.topology == "bandai_mocap"
    with pytest.raises(InputRejected) as caught:
        adapter(topology="kinect_v2").convert(skeleton_msg("bandai_mocap", frame, 1.0))
    assert caught.value.reason == "topology_mismatch"
    with pytest.raises(InputRejected) as caught:
        adapter().convert(skeleton_msg("", frame, 1.0))
    assert caught.value.reason == "unknown_topology"


def test_an_array_rejects_people_one_by_one(frame):
    people = [skeleton_msg("bandai_mocap", frame, 0.0, track_id=1, frame_id=""),
              skeleton_msg("bandai_mocap", frame[:5], 0.0, track_id=2, frame_id=""),
              skeleton_msg("bandai_mocap", frame, 0.0, track_id=1, frame_id=""),
              skeleton_msg("bandai_mocap", frame, 0.0, track_id=3, frame_id="")]
    observations, rejected = adapter("skeleton_array").convert_parts(skeleton_array(people, 4.5, "cam"))
    assert [o.track_id for o in observations] == [1, 3]
    assert [r.reason for r in rejected] == ["wrong_joint_count", "duplicate_track_id"]
    assert all(o.stamp == 4.5 and o.frame_id == "cam" for o in observations)  # the array's header fills in
    nobody = [skeleton_array([], 5.0), skeleton_array([skeleton_msg("bandai_mocap", frame[:0], 5.0)], 5.0)]
    for msg in nobody:  # an empty message means nobody in view: no person, and no rejection either
        assert adapter("skeleton_array").convert_parts(msg) == ([], [])
    assert adapter().convert(skeleton_msg("bandai_mocap", frame[:0], 5.0)) == []


def test_a_topology_name_too_long_for_a_file_rejects_that_person_only(frame):
    """A 300-byte name used to raise OSError out of the topology lookup and lose everyone in the array."""
    people = [skeleton_msg("x" * 300, frame, 1.0, track_id=1), skeleton_msg("bandai_mocap", frame, 1.0, track_id=2),
              skeleton_msg("bandai_mocap\0", frame, 1.0, track_id=3)]
    observations, rejected = adapter("skeleton_array").convert_parts(skeleton_array(people, 1.0))
    assert [o.track_id for o in observations] == [2]
    assert [r.reason for r in rejected] == ["unknown_topology", "unknown_topology"]
    assert len(str(rejected[0])) < 400  # names the topology, shortened, not 300 bytes of it


def test_registry_names_every_kind_and_rejects_unknown_ones():
    assert {"skeleton", "skeleton_array", "azure_markers", "joint_state"} <= set(ADAPTERS)
    assert adapter_class("skeleton") is SkeletonAdapter
    with pytest.raises(ValueError, match="unknown input kind 'kinect'"):
        adapter_class("kinect")


def test_stamps_convert_without_losing_nanoseconds():
    t = to_time(1795287703.999999999)
    assert t.nanosec < 1_000_000_000
    t = to_time(12.25)
    assert (t.sec, t.nanosec) == (12, 250_000_000)
