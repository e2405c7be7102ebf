"""Namespaces: a launch in `namespace:=robot1` keeps all of its traffic under /robot1, except what ROS keeps global.

bag_player plays recorded topics relative to its namespace (/skeletons of the bag -> /robot1/skeletons), and keeps
/clock global, so `namespace:=robot1 bag:=...` gives actions on /robot1/actions. The RGB path's remaps are checked
where its nodes run (test_launch_shutdown.py).
Data: Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0.
"""

from __future__ import annotations

import signal
import threading

import pytest
from launch_support import Launch, assert_ended_cleanly
from rclpy.qos import QoSProfile, ReliabilityPolicy

from hetskel_ros.ros.bagtools import cli

RELIABLE = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("namespaces") / "bag"
    assert cli.main(["make", str(path), "--people", "1", "--limit", "2", "--idle", "0.5", "1.0"]) == 0
    return path


def test_recorded_topics_follow_the_namespace_and_ros_global_ones_stay_global():
    from hetskel_ros.ros.bagtools.player import played_name

    assert played_name("/skeletons") == "skeletons"
    assert played_name("/camera/skeletons") == "camera/skeletons"
    for topic in ("/clock", "/tf", "/tf_static", "/diagnostics"):
        assert played_name(topic) == topic


def test_a_namespaced_bag_player_plays_into_its_namespace_with_a_global_clock(ros, bag):
    from hetskel_msgs.msg import ActionArray, SkeletonArray
    from rclpy.parameter import Parameter
    from rosgraph_msgs.msg import Clock

    from hetskel_ros.ros.bagtools.player import BagPlayer

    listener = ros.node("namespace_listener")
    lock = threading.Lock()
    got: dict[str, int] = {"/robot1/skeletons": 0, "/robot1/ground_truth": 0, "/clock": 0, "/skeletons": 0}

    def count(topic: str):
        def callback(_msg) -> None:
            with lock:
                got[topic] += 1

        return callback

    for topic, kind in (("/robot1/skeletons", SkeletonArray), ("/robot1/ground_truth", ActionArray),
                        ("/clock", Clock), ("/skeletons", SkeletonArray)):
        listener.create_subscription(kind, topic, count(topic), RELIABLE)
    player = ros.add_node(BagPlayer(namespace="robot1", context=ros.context, parameter_overrides=[
        Parameter("bag", value=str(bag)), Parameter("rate", value=8.0),
        Parameter("wait_for_subscribers", value=["/skeletons", "/ground_truth", "/clock"])]))
    assert {p.topic_name for p in player.publishers_by_topic.values()} == {"/robot1/skeletons",
                                                                           "/robot1/ground_truth"}
    assert player.finished.wait(30.0)
    frames = sum(1 for m in player.contents.messages if m.topic == "/skeletons")
    ros.wait_for(lambda: got["/robot1/skeletons"] == frames and got["/robot1/ground_truth"] == frames, 5.0,
                 "every recorded message in the namespace")
    assert got["/clock"] >= frames
    assert got["/skeletons"] == 0


def test_a_namespaced_launch_with_a_bag_gives_actions_in_its_namespace(ros, bag):
    from hetskel_msgs.msg import ActionArray

    received: list = []
    ros.node("namespace_probe").create_subscription(ActionArray, "/robot1/actions", received.append, RELIABLE)
    launch = Launch("namespace:=robot1", f"bag:={bag}", "use_sim_time:=true")
    try:
        launch.wait_for_line("actions on '/robot1/actions'", "messages on")
        ros.wait_for(lambda: received, 30.0, f"actions on /robot1/actions; launch output:\n{launch.output}")
    finally:
        launch.process.send_signal(signal.SIGINT)
        code = launch.finish()
    assert received[0].actions and received[0].actions[0].source == "skeletons"
    assert_ended_cleanly(launch, code)


def test_the_launch_file_and_hetskel_launch_remap_the_same_rgb_topics():
    import ast
    from pathlib import Path

    from hetskel_ros.ros.launcher import RGB_POSE_REMAPS

    tree = ast.parse((Path(__file__).resolve().parent.parent / "launch" / "recognize.launch.py").read_text())
    remaps = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Node":
            keywords = {k.arg: k.value for k in node.keywords}
            if "remappings" in keywords:
                remaps[ast.literal_eval(keywords["executable"])] = tuple(ast.literal_eval(keywords["remappings"]))
    assert remaps["mediapipe_pose"] == RGB_POSE_REMAPS
    assert {target.split("/")[0] for _, target in RGB_POSE_REMAPS} == {"rgb"}
