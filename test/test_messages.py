"""The hetskel_msgs interfaces carry every field intact: across processes over DDS, and through rosbag2 bags.

What users rely on: a skeleton publisher in another process (a camera driver, a mocap bridge) and the
recogniser agree on every field, NaN for missing joints included; bags written without rosbag2_py (rosbags)
play back into rclpy, in both storage formats, with the type hash rosidl computes.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hetskel_msgs.msg import Action, ActionArray, ActionHypothesis, Skeleton, SkeletonArray
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from hetskel_ros.ros.bag_types import bag_message_from_dict, make_typestore, msg_definition_dir, msgtype
from hetskel_ros.ros.msg_dict import message_class, message_from_dict, message_to_dict

NAN = float("nan")
STAMP = {"sec": 1_700_000_000, "nanosec": 123_456_789}

# A COCO-17 person in a 640x480 image; joint 1 (left eye) unseen: NaN position and confidence 0.
SKELETON_2D = {
    "header": {"stamp": STAMP, "frame_id": "camera_color_optical_frame"},
    "topology": "coco17",
    "track_id": 4_294_967_295,  # the full uint32 range is usable as an id
    "dims": 2,
    "positions": [NAN if joint == 1 else 100.0 + 0.5 * (2 * joint + axis) for joint in range(17) for axis in range(2)],
    "confidence": [0.0 if joint == 1 else 0.25 * (1 + joint % 4) for joint in range(17)],
    "image_width": 640,
    "image_height": 480,
}
# A Kinect v2 body in metres (values exact in float32), without confidence.
SKELETON_3D = {
    "header": {"stamp": STAMP, "frame_id": "kinect2_link"},
    "topology": "kinect_v2",
    "track_id": 0,
    "dims": 3,
    "positions": [-1.0 + 0.0625 * index for index in range(25 * 3)],
    "confidence": [],
    "image_width": 0,
    "image_height": 0,
}
SKELETON_ARRAY = {
    "header": {"stamp": STAMP, "frame_id": "camera_color_optical_frame"},
    "skeletons": [SKELETON_2D, SKELETON_3D],
}
ACTION_ARRAY = {
    "header": {"stamp": STAMP, "frame_id": "camera_color_optical_frame"},
    "actions": [
        {
            "header": {"stamp": STAMP, "frame_id": "camera_color_optical_frame"},
            "track_id": 7,
            "source": "front_camera",
            "window_start": {"sec": 1_699_999_998, "nanosec": 500_000_000},
            "label": "wave",
            "score": 0.875,
            "started": True,
            "ended": "walk",
            "since": {"sec": 1_700_000_000, "nanosec": 123_456_789},
            "hypotheses": [
                {"class_id": 3, "label": "wave", "score": 0.875},
                {"class_id": 11, "label": "clap", "score": 0.0625},
                {"class_id": 0, "label": "walk", "score": 0.03125},
            ],
        },
        {
            "header": {"stamp": STAMP, "frame_id": ""},
            "track_id": 2,
            "source": "fused",
            "window_start": {"sec": 1_699_999_999, "nanosec": 0},
            "label": "unknown",
            "score": 0.25,
            "started": False,
            "ended": "",
            "since": {"sec": 1_699_999_997, "nanosec": 0},
            "hypotheses": [{"class_id": 5, "label": "sit down", "score": 0.25}],
        },
    ],
}
SAMPLES = {"SkeletonArray": SKELETON_ARRAY, "ActionArray": ACTION_ARRAY}


def assert_same(actual: Any, expected: Any, where: str = "msg") -> None:
    """Deep equality of plain message data, NaN equal to NaN; the message names the first differing field."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected a message, got {actual!r}"
        assert set(actual) == set(expected), f"{where}: fields {sorted(actual)} != {sorted(expected)}"
        for key, value in expected.items():
            assert_same(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{where}: {len(actual)} elements, expected {len(expected)}"
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            assert_same(got, want, f"{where}[{index}]")
    elif isinstance(expected, float) and math.isnan(expected):
        assert isinstance(actual, float) and math.isnan(actual), f"{where}: {actual!r} is not NaN"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def test_import_line_of_the_readme_gives_all_five_messages() -> None:
    for cls in (Skeleton, SkeletonArray, Action, ActionArray, ActionHypothesis):
        assert cls.__module__.startswith("hetskel_msgs.msg")


# Publishes SAMPLES (a JSON file) once subscribers are matched; stays alive until its stdin closes,
# so reliable delivery is never cut short by the process exiting.
PUBLISHER = textwrap.dedent(
    """
    import json, sys, time
    import rclpy
    from rclpy.node import Node
    from hetskel_ros.ros.msg_dict import message_class, message_from_dict

    samples = json.loads(open(sys.argv[1]).read())
    prefix = sys.argv[2]
    rclpy.init()
    node = Node("hetskel_sample_publisher")
    publishers = {
        name: node.create_publisher(message_class("hetskel_msgs/msg/" + name), prefix + name, 10)
        for name in samples
    }
    deadline = time.monotonic() + 30.0
    while any(pub.get_subscription_count() < 1 for pub in publishers.values()):
        if time.monotonic() > deadline:
            sys.exit("no subscriber matched within 30 s")
        time.sleep(0.01)
    for name, data in samples.items():
        publishers[name].publish(message_from_dict("hetskel_msgs/msg/" + name, data))
    print("published", flush=True)
    sys.stdin.readline()
    node.destroy_node()
    rclpy.shutdown()
    """
)


def test_messages_cross_processes_over_dds_with_every_field_intact(ros: Any, tmp_path: Path) -> None:
    prefix = "/hetskel_test_messages/"
    received: dict[str, list[Any]] = {name: [] for name in SAMPLES}
    listener = ros.node("hetskel_message_listener")
    for name in SAMPLES:
        listener.create_subscription(message_class(msgtype(name)), prefix + name, received[name].append, 10)
    payload = tmp_path / "samples.json"
    payload.write_text(json.dumps(SAMPLES))  # JSON keeps NaN (as the NaN literal)

    publisher = subprocess.Popen(
        [sys.executable, "-c", PUBLISHER, str(payload), prefix],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def all_received() -> bool:
            if publisher.poll() is not None:
                raise AssertionError(f"publisher process exited early: {publisher.stderr.read()}")
            return all(received.values())

        ros.wait_for(all_received, timeout=30.0, what="both messages from the publisher process")
    finally:
        publisher.stdin.close()
        try:
            publisher.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            publisher.kill()
            publisher.wait()

    assert publisher.returncode == 0, publisher.stderr.read()
    for name, expected in SAMPLES.items():
        assert len(received[name]) == 1, f"{name}: {len(received[name])} messages, published 1"
        assert_same(message_to_dict(received[name][0]), expected, name)


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP], ids=["sqlite3", "mcap"])
def test_messages_round_trip_through_rosbag2_bags(tmp_path: Path, storage: StoragePlugin) -> None:
    """Written by rosbags (own serialiser, and raw rclpy bytes), read back and decoded by rclpy and rosbags."""
    typestore = make_typestore()
    bag = tmp_path / "bag"
    timestamp_ns = STAMP["sec"] * 1_000_000_000 + STAMP["nanosec"]
    with Writer(bag, version=9, storage_plugin=storage) as writer:
        for name, data in SAMPLES.items():
            typename = msgtype(name)
            by_rosbags = writer.add_connection(f"/rosbags/{name}", typename, typestore=typestore)
            message = bag_message_from_dict(typestore, typename, data)
            writer.write(by_rosbags, timestamp_ns, typestore.serialize_cdr(message, typename))
            by_rclpy = writer.add_connection(f"/rclpy/{name}", typename, typestore=typestore)
            writer.write(by_rclpy, timestamp_ns, serialize_message(message_from_dict(typename, data)))
    suffix = {StoragePlugin.SQLITE3: ".db3", StoragePlugin.MCAP: ".mcap"}[storage]
    assert any(path.suffix == suffix for path in bag.iterdir()), f"no {suffix} file in {sorted(bag.iterdir())}"

    seen = []
    with Reader(bag) as reader:
        for connection, stamp, raw in reader.messages():
            name = connection.msgtype.rsplit("/", 1)[1]
            where = f"{connection.topic} ({storage.name})"
            assert stamp == timestamp_ns
            by_rclpy = deserialize_message(bytes(raw), message_class(connection.msgtype))
            assert_same(message_to_dict(by_rclpy), SAMPLES[name], f"{where}, read by rclpy")
            by_rosbags = typestore.deserialize_cdr(raw, connection.msgtype)
            assert_same(message_to_dict(by_rosbags), SAMPLES[name], f"{where}, read by rosbags")
            seen.append(connection.topic)
    assert sorted(seen) == sorted(f"/{origin}/{name}" for origin in ("rosbags", "rclpy") for name in SAMPLES)


def test_bag_type_hashes_equal_the_ones_rosidl_built() -> None:
    """ROS 2 tools check the RIHS01 type hash: bags written here must carry the hash of the installed interfaces."""
    typestore = make_typestore()
    msg_dir = msg_definition_dir()
    for name in ("Skeleton", "SkeletonArray", "ActionHypothesis", "Action", "ActionArray"):
        description = msg_dir / f"{name}.json"  # written by rosidl next to the installed .msg
        if not description.exists():
            pytest.skip(f"{description} missing: msg definitions come from a checkout, not an install")
        type_hashes = json.loads(description.read_text())["type_hashes"]
        hashes = {entry["type_name"]: entry["hash_string"] for entry in type_hashes}
        assert typestore.hash_rihs01(msgtype(name)) == hashes[msgtype(name)], name


def test_unknown_field_names_are_reported_by_name() -> None:
    typestore = make_typestore()
    with pytest.raises(KeyError, match="joints"):
        bag_message_from_dict(typestore, msgtype("Skeleton"), {"joints": [1.0]})
    with pytest.raises(KeyError, match="joints"):
        message_from_dict(msgtype("Skeleton"), {"joints": [1.0]})
    with pytest.raises(KeyError, match=r"skeletons\[0\].*joints"):
        bag_message_from_dict(typestore, msgtype("SkeletonArray"), {"skeletons": [{"joints": []}]})
