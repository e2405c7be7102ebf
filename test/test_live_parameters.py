"""Live parameters of the recognizer node over real DDS, set through rclpy's parameter service client (what
``ros2 param set`` calls): read-only ones are refused, threshold/smoothing/top_k change the running node, and
``model`` swaps the model between two inference calls, keeping the tracks, refusing a bad bundle with the reason,
recording the swap in the state file (a restart keeps it) and restoring the one before with ``previous``.

Untrained stand-in bundles (behaviour, not accuracy); real mocap frames (Bandai Namco Research Motion Dataset,
Bandai Namco Research Inc., CC BY-NC 4.0).
"""

from __future__ import annotations

import json
import threading

import pytest
from recognizer_support import _TMP, mocap_sample, skeleton_array, skeleton_msg, stand_in_bundle_path

from hetskel_ros.model.bundle import save_bundle
from hetskel_ros.model.config import preset


@pytest.fixture(scope="module")
def other_bundle():
    """A second model: another vocabulary (one label shared) and another window (24 frames at 12 fps)."""
    import torch

    from hetskel_ros.model.bundle import Bundle, state_to_numpy
    from hetskel_ros.model.export import export_onnx
    from hetskel_ros.model.model import HetSkelModel
    from hetskel_ros.runtime.samples import STAND_IN_TOPOLOGIES
    from hetskel_ros.topology import load_unified

    labels = ["come-here", "stop", "walk"]
    cfg = preset("small", topologies=STAND_IN_TOPOLOGIES, num_classes=len(labels), window=24, fps=12.0)
    torch.manual_seed(1)
    model = HetSkelModel(cfg).eval()
    bundle = Bundle(config=cfg, unified_joints=list(load_unified().names), label_names=labels,
                    weights=state_to_numpy(model), onnx=export_onnx(model))
    return save_bundle(bundle, _TMP / "other.hetskel")


class Client:
    """A test node with a parameter client of /recognizer and a subscription to actions."""

    def __init__(self, ros) -> None:
        from hetskel_msgs.msg import ActionArray, SkeletonArray
        from rclpy.parameter_client import AsyncParameterClient
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.ros = ros
        self.node = ros.node("live_param_probe")
        self.params = AsyncParameterClient(self.node, "recognizer")
        self.lock = threading.Lock()
        self.actions: list = []
        self.pub = self.node.create_publisher(SkeletonArray, "live/skeletons", 50)
        self.node.create_subscription(ActionArray, "actions", self._on_actions,
                                      QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE))
        assert self.params.wait_for_services(timeout_sec=10.0)
        ros.wait_for_subscribers(self.pub)

    def _on_actions(self, msg) -> None:
        with self.lock:
            self.actions.append(msg)

    def set(self, **values):
        """One SetParameters call (each parameter on its own, as ``ros2 param set``); the results."""
        from rclpy.parameter import Parameter

        future = self.params.set_parameters([Parameter(k, value=v) for k, v in values.items()])
        self.ros.wait_for(future.done, 10.0, f"set_parameters {values}")
        return future.result().results

    def send(self, frames, start: int, count: int, track_ids=(1, 2), t0: float = 100.0) -> None:
        import time

        for i in range(start, start + count):
            people = [skeleton_msg("bandai_mocap", frames[i % len(frames)], t0 + i / 30.0, track_id=t)
                      for t in track_ids]
            self.pub.publish(skeleton_array(people, t0 + i / 30.0))
            time.sleep(1 / 120)  # 4x real time: the node keeps up, nothing is lost in the queue

    def labels_seen(self, after: int = 0) -> set[str]:
        with self.lock:
            return {h.label for msg in self.actions[after:] for a in msg.actions for h in a.hypotheses}


def start_node(ros, state_file, **extra):
    from rclpy.parameter import Parameter

    from hetskel_ros.ros.recognizer_node import RecognizerNode

    values = {"backend": "onnxruntime", "threads": 1, "diagnostics_period_s": 0.2, "stagger": False,
              "model_state": str(state_file), "inputs.names": ["live"], "inputs.live.topic": "live/skeletons",
              "inputs.live.kind": "skeleton_array", **extra}
    overrides = [Parameter(k, value=v) for k, v in values.items()]
    return ros.add_node(RecognizerNode(context=ros.context, parameter_overrides=overrides))


@pytest.fixture(scope="module")
def live(ros_module, tmp_path_factory):
    state_file = tmp_path_factory.mktemp("state") / "recognizer.model.json"
    node = start_node(ros_module, state_file, model=str(stand_in_bundle_path()))
    return ros_module, node, Client(ros_module), state_file


def test_read_only_parameters_are_refused_and_unchanged(live):
    _, node, client, _ = live
    for name, value in {"window_stride_s": 0.25, "backend": "torch", "inputs.live.topic": "elsewhere",
                        "max_tracks": 3, "model_state": "none"}.items():
        (result,) = client.set(**{name: value})
        assert not result.successful, name
        assert "read-only" in result.reason, result.reason
    assert node.recognizer.config.window_stride_s == 0.5
    assert node.recognizer.config.max_tracks == 32
    assert node.get_parameter("inputs.live.topic").value == "live/skeletons"


def test_threshold_smoothing_top_k_confirm_and_release_windows_change_live(live):
    ros, node, client, _ = live
    frames = mocap_sample().sequences[16]
    results = client.set(threshold=0.7, smoothing=0.2, top_k=2, confirm_windows=1, release_windows=2)
    assert all(r.successful for r in results), [r.reason for r in results]
    config = node.recognizer.config
    assert (config.threshold, config.smoothing, config.top_k, config.confirm_windows, config.release_windows) == (
        0.7, 0.2, 2, 1, 2)
    before = len(client.actions)
    client.send(frames, 0, 40)
    ros.wait_for(lambda: len(client.actions) > before, 10.0, "actions after the change")
    with client.lock:
        assert all(len(a.hypotheses) == 2 for msg in client.actions[before:] for a in msg.actions)
    (bad,) = client.set(threshold=1.5)
    assert not bad.successful and "threshold" in bad.reason
    assert node.recognizer.config.threshold == 0.7
    (bad,) = client.set(top_k=0)
    assert not bad.successful and node.recognizer.config.top_k == 2
    (bad,) = client.set(confirm_windows=0)
    assert not bad.successful and "confirm_windows" in bad.reason and node.recognizer.config.confirm_windows == 1
    (bad,) = client.set(release_windows=0)
    assert not bad.successful and "release_windows" in bad.reason and node.recognizer.config.release_windows == 2
    assert all(r.successful for r in client.set(top_k=3, threshold=0.5, smoothing=0.5, confirm_windows=2,
                                                release_windows=1))


def test_model_swap_keeps_tracks_refuses_a_bad_bundle_and_restores_the_previous(live, other_bundle, tmp_path):
    ros, node, client, state_file = live
    frames = mocap_sample().sequences[16]
    first = str(stand_in_bundle_path())
    client.send(frames, 100, 30)
    ros.wait_for(lambda: len(node.recognizer.track_keys()) == 2, 10.0, "two tracks")
    tracks = sorted(node.recognizer.track_keys())

    (result,) = client.set(model="previous")
    assert not result.successful and "no previous model" in result.reason  # nothing swapped yet

    broken = tmp_path / "broken.hetskel"
    broken.write_bytes(b"not a zip")
    (result,) = client.set(model=str(broken))
    assert not result.successful and str(broken) in result.reason and "not readable" in result.reason
    assert node.model_path == first and node.get_parameter("model").value == first

    (result,) = client.set(model=str(other_bundle))
    assert result.successful, result.reason
    assert node.recognizer.labels == ["come-here", "stop", "walk"] and node.recognizer.window == 24
    assert sorted(node.recognizer.track_keys()) == tracks  # no restart: the people are still followed
    state = json.loads(state_file.read_text())
    assert state["model"] == str(other_bundle) and state["previous"] == first and state["labels"] == 3
    after = len(client.actions)
    client.send(frames, 130, 30)
    ros.wait_for(lambda: client.labels_seen(after) & {"come-here", "stop"}, 10.0, "the new vocabulary")
    assert client.labels_seen(after) <= {"come-here", "stop", "walk"}
    values = {}
    ros.wait_for(lambda: values.update(_model_diagnostics(node)) or values.get("labels") == "3", 5.0,
                 "diagnostics of the swap")
    assert values["model"] == str(other_bundle) and "model_swap_time" in values

    (result,) = client.set(model="previous")
    assert result.successful, result.reason
    assert node.model_path == first and node.get_parameter("model").value == first
    assert node.recognizer.window == 32 and sorted(node.recognizer.track_keys()) == tracks
    assert json.loads(state_file.read_text())["previous"] == str(other_bundle)


def _model_diagnostics(node) -> dict[str, str]:
    status = node.diagnostics._model_status()
    return {kv.key: kv.value for kv in status.values}


def test_a_restart_without_model_runs_the_swapped_one(ros, other_bundle, tmp_path):
    from hetskel_ros.ros.model_state import write_state

    state_file = tmp_path / "state.json"
    write_state(state_file, str(other_bundle), str(stand_in_bundle_path()), 3)
    node = start_node(ros, state_file)
    assert node.model_path == str(other_bundle) and node.recognizer.labels == ["come-here", "stop", "walk"]
    assert node.get_parameter("model").value == str(other_bundle)
    assert node.previous_model == str(stand_in_bundle_path())


def test_a_state_naming_a_broken_bundle_falls_back_to_the_shipped_model(ros, tmp_path):
    from hetskel_ros.ros.model_state import write_state
    from hetskel_ros.runtime.samples import default_bundle_path

    broken = tmp_path / "gone.hetskel"
    broken.write_bytes(b"PK not really")
    state_file = tmp_path / "state.json"
    write_state(state_file, str(broken), "", 3)
    node = start_node(ros, state_file)
    assert node.model_path == str(default_bundle_path())
