"""``python -m hetskel_ros.ros.bench_model_swap``: how long a live model swap takes, and whether it loses a window.

A recognizer process (the shipped model, ONNX Runtime, 1 thread, use_sim_time, the default input queue) reads a bag
of real Kinect v1 people (UTD-MHAD sample, untrimmed: idle gaps between clips) that ``bag_player`` replays in real
time. A third into the replay the bench sets ``model`` to a bundle ``hetskel-teach`` taught from the same recording
(head-only: the same encoder), two thirds in it sets ``model: previous``. Per swap it records the time from the
parameter set to the first ActionArray in the new vocabulary (received by the bench), the time the set call took
(load and checks, during which the node's executor is busy), and the node's own diagnostics (``model_swap_load_ms``).
Windows: the node's ``windows`` and ``windows_dropped`` counts from /diagnostics at the end, against the windows the
bench received and the windows the node's offline pipeline cuts from the same bag; and per person the largest gap
between consecutive window stamps (one stride when no window was lost). Writes ``bench/results/model_swap.json``
(repository-relative paths); bags and bundles go to a temporary folder.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hetskel_ros.paths import share_dir
from hetskel_ros.ros.bagtools.bag_io import read_bag
from hetskel_ros.ros.bagtools.make import Selection, make_bag
from hetskel_ros.ros.bagtools.offline import OfflinePipeline, load_parameters
from hetskel_ros.ros.bagtools.report import _jsonable
from hetskel_ros.ros.bagtools.stream import StreamOptions
from hetskel_ros.ros.teach import main as teach_main

TAUGHT = ("draw-x", "squat", "two-hand-front-clap", "right-hand-wave")
TARGET = "the new vocabulary within 1 s of the parameter set, no window lost"


def _stamp(t: Any) -> float:
    return t.sec + t.nanosec * 1e-9


class Watcher:
    """The bench's node: actions (arrival times), the recognizer's model diagnostics, a parameter client."""

    def __init__(self, node: Any) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from hetskel_msgs.msg import ActionArray
        from rclpy.parameter_client import AsyncParameterClient
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.node = node
        self.lock = threading.Lock()
        self.actions: list[tuple[float, Any]] = []
        self.model: dict[str, str] = {}
        node.create_subscription(ActionArray, "actions", self._on_actions,
                                 QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.params = AsyncParameterClient(node, "recognizer")
        self.tmp = ""  # a temporary folder the results must not name

    def _on_actions(self, msg: Any) -> None:
        with self.lock:
            self.actions.append((time.monotonic(), msg))

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.name == "recognizer: model":
                with self.lock:
                    self.model = {kv.key: kv.value for kv in status.values}

    def swap(self, model: str, vocabulary: set[str]) -> dict:
        from rclpy.parameter import Parameter

        with self.lock:
            seen = len(self.actions)
        began = time.monotonic()
        future = self.params.set_parameters([Parameter("model", value=model)])
        while not future.done():
            time.sleep(0.001)
        answered = time.monotonic()
        (result,) = future.result().results
        first = None
        deadline = time.monotonic() + 10.0
        while first is None and time.monotonic() < deadline:
            with self.lock:
                for arrived, msg in self.actions[seen:]:
                    labels = {h.label for a in msg.actions for h in a.hypotheses}
                    if labels and labels <= vocabulary:
                        first = arrived
                        break
            time.sleep(0.005)
        return {"successful": bool(result.successful),
                "set_call_ms": round((answered - began) * 1e3, 1),
                "reason": result.reason.replace(self.tmp, "<tmp>") if self.tmp else result.reason,
                "first_actions_in_new_vocabulary_ms": round((first - began) * 1e3, 1) if first else None}


def _clean(text: str, tmp: Path) -> str:
    """Paths as the repository sees them: the temporary folder as <tmp>, the checkout's own paths relative."""
    return text.replace(str(tmp), "<tmp>").replace(str(share_dir().resolve()) + "/", "")


def main(argv: list[str] | None = None) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from hetskel_ros.ros.bagtools.player import BagPlayer

    p = argparse.ArgumentParser(prog="bench_model_swap", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=share_dir() / "bench" / "results" / "model_swap.json")
    p.add_argument("--people", type=int, default=2)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    # A DDS domain of its own: another recognizer on the machine (a robot evaluation, a test run) publishes the same
    # "recognizer: model" diagnostics on /diagnostics, which this bench would otherwise count as its node's.
    os.environ.setdefault("ROS_DOMAIN_ID", str(101 + os.getpid() % 100))
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hetskel_swap_") as tmp:
        tmp_path = Path(tmp)
        source = share_dir() / "data" / "utd_mhad_sample.npz"
        stream = make_bag(source, tmp_path / "bag", Selection(labels=TAUGHT),
                          StreamOptions(people=args.people, idle_s=(1.0, 3.0), seed=0))
        (tmp_path / "labels.csv").write_text("".join(f"{s.track_id},{s.start / stream.fps},{s.end / stream.fps},"
                                                     f"{s.label}\n" for s in stream.segments))
        taught = tmp_path / "taught.hetskel"
        assert teach_main([str(tmp_path / "bag"), "--labels", str(tmp_path / "labels.csv"), "--replace",
                           "--out", str(taught)]) == 0
        pipeline = OfflinePipeline(load_parameters(None, {"backend": "onnxruntime", "threads": 1}))
        try:
            offline_windows = len(pipeline.run(read_bag(tmp_path / "bag")).predictions)
        finally:
            pipeline.close()
        recognizer = subprocess.Popen(
            [sys.executable, "-c", "from hetskel_ros.ros.recognizer_node import main; main()", "--ros-args",
             "-p", "backend:=onnxruntime", "-p", "threads:=1", "-p", "use_sim_time:=true",
             "-p", "diagnostics_period_s:=0.5", "-p", f"model_state:={tmp_path / 'state.json'}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        rclpy.init()
        executor = SingleThreadedExecutor()
        node = rclpy.create_node("bench_model_swap")
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        watcher = Watcher(node)
        watcher.tmp = str(tmp_path)
        try:
            assert watcher.params.wait_for_services(timeout_sec=60.0), "the recognizer did not start"
            player = BagPlayer(parameter_overrides=[Parameter("bag", value=str(tmp_path / "bag")),
                                                    Parameter("topics", value=["/skeletons"]),
                                                    Parameter("wait_for_subscribers", value=["/skeletons"])])
            executor.add_node(player)
            duration = read_bag(tmp_path / "bag", ["/skeletons"]).duration_s
            while not player.published:
                time.sleep(0.01)
            replay_began = time.monotonic()
            time.sleep(duration / 3)
            swaps = {"to_taught": watcher.swap(str(taught), set(TAUGHT))}
            time.sleep(max(0.0, replay_began + duration * 2 / 3 - time.monotonic()))
            from hetskel_ros.model.bundle import load_bundle
            from hetskel_ros.runtime.samples import default_bundle_path

            swaps["to_previous"] = watcher.swap("previous", set(load_bundle(default_bundle_path(),
                                                                            weights=False).label_names))
            while not player.finished.is_set():
                time.sleep(0.05)
            time.sleep(3.0)  # the last windows, and a diagnostics period after them
            with watcher.lock:
                received = [a for _, msg in watcher.actions for a in msg.actions]
                model = dict(watcher.model)
        finally:
            recognizer.terminate()
            log, _ = recognizer.communicate(timeout=30)
            executor.shutdown()
            rclpy.try_shutdown()
    gaps: dict[int, float] = {}
    stamps: dict[int, list[float]] = {}
    for action in received:
        stamps.setdefault(action.track_id, []).append(_stamp(action.header.stamp))
    for track, values in stamps.items():
        values.sort()
        gaps[track] = round(max((b - a for a, b in itertools.pairwise(values)), default=0.0), 3)
    out = {
        "name": "model_swap", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(["python -m hetskel_ros.ros.bench_model_swap", *(sys.argv[1:] if argv is None else argv)]),
        "seconds": round(time.monotonic() - began, 1), "target": TARGET,
        "setup": {"data": "data/utd_mhad_sample.npz", "actions": list(TAUGHT), "people": args.people,
                  "bag_s": round(duration, 1), "base_model": "models/default.hetskel",
                  "taught": "hetskel-teach --replace from the same recording (head only: same encoder graph)",
                  "backend": "onnxruntime, 1 thread", "input_queue_depth": 10, "replay_rate": 1.0},
        "swaps": swaps,
        "windows": {"offline_expected": offline_windows, "received": len(received),
                    "node_windows": int(model.get("windows", "0")),
                    "node_windows_dropped": int(model.get("windows_dropped", "0")),
                    "largest_gap_between_windows_s": gaps, "stride_s": 0.5},
        "diagnostics": {k: _clean(v, tmp_path) for k, v in model.items()
                        if k.startswith(("model", "labels", "head"))},
        "node_log_swaps": [_clean(line, tmp_path) for line in log.splitlines() if "model swapped" in line],
    }
    w = out["windows"]
    out["met"] = bool(all(s["successful"] and s["first_actions_in_new_vocabulary_ms"] is not None
                          and s["first_actions_in_new_vocabulary_ms"] <= 1000 for s in swaps.values())
                      and w["node_windows_dropped"] == 0 and w["received"] == w["node_windows"]
                      and w["received"] == w["offline_expected"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_jsonable(out), indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: out[k] for k in ("swaps", "windows", "met")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
