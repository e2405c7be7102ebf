"""Teaching over real DDS, end to end: teach_recorder records a person and takes the labels through its ``~/mark``
service, hetskel-teach turns the recorded bag and its marks into a bundle, the bundle is swapped into a running
recognizer process with a parameter set (no restart), and the taught actions come out of it on the replayed
recording.

The person: real Kinect v1 skeletons of UTD-MHAD (data/utd_mhad_sample.npz; C. Chen, R. Jafari, N. Kehtarnavaz,
ICIP 2015; non-commercial research use), three actions the shipped model was never taught, two clips each.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hetskel_ros.model.bundle import load_bundle
from hetskel_ros.paths import share_dir
from hetskel_ros.ros.bagtools.bag_io import NS_PER_S, read_bag
from hetskel_ros.ros.bagtools.make import Selection, make_bag
from hetskel_ros.ros.bagtools.stream import StreamOptions
from hetskel_ros.runtime.samples import default_bundle_path

TAUGHT = ("draw-x", "squat", "two-hand-front-clap")
TOPIC = "teach/skeletons"
CONFIG = f"""/**:
  ros__parameters:
    inputs:
      names: [teach]
      teach: {{topic: {TOPIC}, kind: skeleton_array}}
"""


@pytest.fixture(scope="module")
def person(tmp_path_factory):
    """A bag of one person doing the three actions twice, with idle gaps (what a robot would see)."""
    out = tmp_path_factory.mktemp("teach_live")
    stream = make_bag(share_dir() / "data" / "utd_mhad_sample.npz", out / "person",
                      Selection(labels=TAUGHT), StreamOptions(people=1, idle_s=(1.0, 2.0), seed=0))
    config = out / "teach.yaml"
    config.write_text(CONFIG)
    return out, read_bag(out / "person", ["/skeletons"], with_truth=False), stream, config


def _call(ros, client, request):
    future = client.call_async(request)
    ros.wait_for(future.done, 10.0, "the mark service")
    return future.result()


def record_with_marks(ros, person, output: Path) -> None:
    """Play the person on TOPIC under a /clock of its stamps, calling ~/mark at each clip's start and end."""
    from hetskel_msgs.msg import SkeletonArray
    from hetskel_msgs.srv import Mark
    from rclpy.parameter import Parameter
    from rclpy.serialization import deserialize_message
    from rosgraph_msgs.msg import Clock

    from hetskel_ros.ros.teach_recorder import TeachRecorder

    _, bag, stream, _ = person
    recorder = ros.add_node(TeachRecorder(context=ros.context, parameter_overrides=[
        Parameter("output", value=str(output)), Parameter("topics", value=[TOPIC]),
        Parameter("storage", value="sqlite3"), Parameter("use_sim_time", value=True)]))
    actor = ros.node("teach_actor")
    clock = actor.create_publisher(Clock, "/clock", 10)
    skeletons = actor.create_publisher(SkeletonArray, TOPIC, 100)
    marks = actor.create_client(Mark, "teach_recorder/mark")
    assert marks.wait_for_service(timeout_sec=10.0)
    ros.wait_for(lambda: recorder.subscribed.get("/" + TOPIC), 10.0, "the recorder's subscription")
    ros.wait_for_subscribers(skeletons)
    edges: dict[int, list[tuple[str, bool]]] = {}
    for segment in stream.segments:
        edges.setdefault(segment.start, []).append((segment.label, True))
        edges.setdefault(segment.end - 1, []).append((segment.label, False))
    refused = _call(ros, marks, Mark.Request(label="squat", start=False))
    assert not refused.success and "not started" in refused.message
    for frame, message in enumerate(bag.messages):
        stamp = message.timestamp_ns
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = stamp // NS_PER_S, stamp % NS_PER_S
        clock.publish(msg)
        ros.wait_for(lambda s=stamp: recorder.get_clock().now().nanoseconds >= s, 5.0, "the recorder's clock")
        skeletons.publish(deserialize_message(message.data, SkeletonArray))
        for label, start in edges.get(frame, []):
            assert _call(ros, marks, Mark.Request(label=label, start=start)).success
        time.sleep(1 / 240)
    ros.wait_for(lambda: recorder.recorded["/" + TOPIC] >= len(bag.messages) - 5, 10.0, "the recorded frames")
    recorder.close()


def test_record_teach_swap_live_and_the_taught_actions_come_out(ros, person, tmp_path):
    from hetskel_msgs.msg import ActionArray
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from hetskel_ros.ros.bagtools.player import BagPlayer

    _, _, stream, config = person
    recording = tmp_path / "recording"
    record_with_marks(ros, person, recording)
    recorded = read_bag(recording, with_truth=False, every_topic=True)
    assert sum(m.msgtype == "hetskel_msgs/msg/Mark" for m in recorded.messages) == 2 * len(stream.segments)

    taught = tmp_path / "taught.hetskel"
    done = subprocess.run([sys.executable, "-m", "hetskel_ros.ros.teach", str(recording), "--replace",
                           "--out", str(taught), "--config", str(config)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cross-validated accuracy" in done.stdout
    bundle = load_bundle(taught)
    assert sorted(bundle.label_names) == sorted(TAUGHT)
    assert bundle.onnx == load_bundle(default_bundle_path()).onnx  # the encoder graph, byte for byte
    assert "marks" in bundle.provenance["taught"]["labels"]

    state = tmp_path / "state.json"
    recognizer = subprocess.Popen(
        [sys.executable, "-c", "from hetskel_ros.ros.recognizer_node import main; main()", "--ros-args",
         "--params-file", str(config), "-p", "backend:=onnxruntime", "-p", "threads:=1", "-p", "use_sim_time:=true",
         "-p", f"model_state:={state}", "-p", "input_queue_depth:=200"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        probe = ros.node("teach_probe")
        lock = threading.Lock()
        received: list = []
        probe.create_subscription(ActionArray, "actions", lambda m: (lock.acquire(), received.append(m),
                                                                     lock.release()),
                                  QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE))
        params = AsyncParameterClient(probe, "recognizer")
        assert params.wait_for_services(timeout_sec=60.0), "the recognizer process did not come up"
        future = params.set_parameters([Parameter("model", value=str(taught))])
        ros.wait_for(future.done, 30.0, "the model swap")
        (result,) = future.result().results
        assert result.successful, result.reason
        assert str(taught) in state.read_text()

        player = ros.add_node(BagPlayer(context=ros.context, parameter_overrides=[
            Parameter("bag", value=str(recording)), Parameter("rate", value=2.0),
            Parameter("topics", value=["/" + TOPIC]), Parameter("wait_for_subscribers", value=["/" + TOPIC])]))
        ros.wait_for(player.finished.is_set, 60.0, "the replay")
        ros.wait_for(lambda: len(received) > 10, 10.0, "actions")
        time.sleep(1.0)
        with lock:
            labels = [a.label for msg in received for a in msg.actions]
            started = {a.label for msg in received for a in msg.actions if a.started}
        assert set(labels) <= {*TAUGHT, "unknown", "idle"}
        assert started >= {"draw-x", "squat"}, labels  # the taught actions, from the running node
    finally:
        recognizer.terminate()
        output, _ = recognizer.communicate(timeout=30)
    assert recognizer.returncode == 0, output
    assert "model swapped" in output


def test_teach_recorder_process_takes_marks_from_the_terminal_and_refuses_bad_parameters(ros, tmp_path):
    import signal

    from hetskel_msgs.msg import Mark
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    out = tmp_path / "keys"
    command = [sys.executable, "-c", "from hetskel_ros.ros.teach_recorder import main; main()", "--ros-args",
               "-p", f"output:={out}", "-p", "keys:=[come-here, stop]", "-p", f"topics:=[{TOPIC}]"]
    recorder = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    try:
        probe = ros.node("keys_probe")
        marks: list = []
        probe.create_subscription(Mark, "teach_recorder/marks", marks.append,
                                  QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        params = AsyncParameterClient(probe, "teach_recorder")
        assert params.wait_for_services(timeout_sec=60.0), "the recorder process did not come up"
        future = params.set_parameters([Parameter("topics", value=["elsewhere"])])
        ros.wait_for(future.done, 10.0, "set_parameters")
        assert "read-only" in future.result().results[0].reason
        ros.wait_for(lambda: probe.count_publishers("/teach_recorder/marks") >= 1, 10.0, "the marks publisher")
        time.sleep(0.5)  # the subscription matched
        for line in ("1", "9", "1", "2"):
            recorder.stdin.write(line + "\n")
            recorder.stdin.flush()
            time.sleep(0.2)
        ros.wait_for(lambda: len(marks) == 3, 10.0, "three marks")
        assert [(m.label, m.start) for m in marks] == [("come-here", True), ("come-here", False), ("stop", True)]
    finally:
        recorder.send_signal(signal.SIGINT)
        output, _ = recorder.communicate(timeout=30)
    assert recorder.returncode == 0, output
    assert "'9' is none of 1 = come-here, 2 = stop" in output and "never stopped" in output
    recorded = read_bag(out, with_truth=False, every_topic=True)
    assert [m.msgtype for m in recorded.messages] == ["hetskel_msgs/msg/Mark"] * 3
    again = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and f"parameter 'output': {out} exists" in again.stderr + again.stdout
