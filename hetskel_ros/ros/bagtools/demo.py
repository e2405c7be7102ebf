"""``hetskel-demo``: the README's demo. Real mocap in a rosbag2 bag, replayed in real time into the recognizer node.

1. Makes (or reuses, cached under ~/.cache/hetskel_ros/demo) a bag from the shipped mocap sample: the held-out
   youthful style, every action twice, shared among a few people who act at the same time with idle gaps.
2. Starts the recognizer node with the shipped model (models/default.hetskel) on CPU, as its own process through
   the console launcher (``hetskel-launch``, same configuration as ``ros2 launch``), with use_sim_time.
3. Replays the bag in real time with the ``bag_player`` node (and /clock) and prints each person's latest label.
4. Scores the run against the bag's ground truth and writes the report and plots (runs/demo/ by default).

Data: Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from hetskel_ros.ros.bagtools.bag_io import CREDIT_MOCAP, BagContents, BagWriteOptions, read_bag
from hetskel_ros.ros.bagtools.make import Selection, make_bag
from hetskel_ros.ros.bagtools.stream import StreamOptions
from hetskel_ros.runtime.detection_metrics import Prediction, is_background
from hetskel_ros.runtime.samples import default_bundle_path
from hetskel_ros.topology.sequences import sample_path

DEMO_FORMAT = 3  # bump when the demo bag's content changes, so cached bags are remade
DEMO_STYLE = "youthful"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hetskel_ros" / "demo"


def demo_bag(people: int, seed: int, cache: Path | None = None) -> tuple[Path, bool]:
    """The demo bag for these settings: (path, made now). Keyed by the sample's bytes and the settings."""
    source = sample_path()
    settings = {"format": DEMO_FORMAT, "people": people, "seed": seed, "style": DEMO_STYLE}
    digest = hashlib.sha256(source.read_bytes() + json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    cache = cache or cache_dir()
    path = cache / f"demo-{people}p-{digest}"
    if (path / "metadata.yaml").is_file():
        return path, False
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=cache))
    try:
        make_bag(source, staging / "bag", Selection(style=DEMO_STYLE), StreamOptions(people=people, seed=seed),
                 BagWriteOptions())
        try:
            (staging / "bag").rename(path)  # atomic: a half-written bag is never reused
        except OSError:
            if not (path / "metadata.yaml").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path, True


class LiveLabels:
    """Prints each person's latest label on one line while the bag plays (a line per few seconds if not a tty),
    marked right or wrong against what its window saw (the window's most frequent ground-truth label; "unknown"
    is right for an idle person)."""

    def __init__(self, bag: BagContents, rate: float, stream=sys.stdout):
        self.bag = bag
        self.rate = rate
        self.stream = stream
        self.tty = stream.isatty()
        utf8 = (getattr(stream, "encoding", "") or "").lower().replace("-", "") == "utf8"
        self.marks = ("\u2713", "\u2717") if utf8 else ("+", "x")
        self.latest: dict[int, Prediction] = {}
        self.lock = threading.Lock()
        self.started: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="live-labels", daemon=True)
        self._last_plain = -1e9
        self._last_text = ""
        self.width = shutil.get_terminal_size((120, 20)).columns

    def on_actions(self, _receipt: float, predictions: list[Prediction]) -> None:
        with self.lock:
            for p in predictions:
                self.latest[p.track_id] = p

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def truth_of(self, p: Prediction) -> str:
        """What the window saw: the most frequent ground-truth label between its first and last frame."""
        truth = self.bag.truth.get(p.track_id)
        if truth is None:
            return ""
        lo, hi = np.searchsorted(truth.stamps, [p.window_start - 1e-6, p.stamp + 1e-6])
        seen = truth.labels[lo:max(hi, lo + 1)]
        return max(set(seen), key=seen.count)

    def line(self) -> str:
        elapsed = (time.monotonic() - self.started) * self.rate if self.started else 0.0
        parts = []
        with self.lock:
            latest = dict(self.latest)
        for track_id in sorted(self.bag.truth):
            p = latest.get(track_id)
            if p is None:
                parts.append(f"person {track_id}: ...")
                continue
            truth = self.truth_of(p)
            right = (p.label == truth) or (is_background(p.label) and is_background(truth))
            parts.append(f"person {track_id}: {p.label} {p.score:.2f} {self.marks[0] if right else self.marks[1]}")
        return f"t={min(elapsed, self.bag.duration_s):5.1f}s  " + " | ".join(parts)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self.print_now()

    def print_now(self, final: bool = False) -> None:
        text = self.line()
        if self.tty:
            self.stream.write("\r" + text[: self.width - 1].ljust(self.width - 1) + ("\n" if final else ""))
            self.stream.flush()
        elif (final and text != self._last_text) or time.monotonic() - self._last_plain >= 5.0 / max(self.rate, 1e-6):
            self._last_plain = time.monotonic()
            self._last_text = text
            self.stream.write(text + "\n")
            self.stream.flush()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        if self.started is not None:
            self.print_now(final=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hetskel-demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None, help="model bundle (default: models/default.hetskel)")
    p.add_argument("--people", type=int, default=3, help="people acting at once in the demo bag")
    p.add_argument("--rate", type=float, default=1.0, help="replay speed (1 = real time)")
    p.add_argument("--seed", type=int, default=0, help="seed of the demo bag's composition")
    p.add_argument("--out", type=Path, default=Path("runs") / "demo", help="report directory")
    p.add_argument("--backend", default="onnxruntime,torch", help="inference backends to try, in order (CPU)")
    p.add_argument("--in-process", action="store_true", help="run the recognizer node in this process")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    model = (args.model or default_bundle_path()).expanduser().resolve()
    if not model.is_file():
        print(f"hetskel-demo: the model bundle {model} does not exist.\n"
              f"  The shipped model is models/default.hetskel; to make it, train it (docs/model.md):\n"
              f"    hetskel-train report --config training/configs/default.yaml --run-dir runs/default "
              f"--out models/default.hetskel\n"
              f"  or point the demo at another bundle: hetskel-demo --model PATH", file=sys.stderr)
        return 2
    began = time.monotonic()
    bag_path, made = demo_bag(args.people, args.seed)
    bag = read_bag(bag_path)
    print(f"[demo] bag {bag_path} ({'made now' if made else 'cached'}): {len(bag.truth)} people, "
          f"{bag.duration_s:.0f} s, {len(bag.segments)} clips of {len(bag.labels)} actions ({DEMO_STYLE} style, "
          f"held out from training). Data: {CREDIT_MOCAP}.")
    print(f"[demo] starting the recognizer node (model {model.name}, backend {args.backend}, CPU, use_sim_time) "
          f"and replaying the bag {'in real time' if args.rate == 1 else f'at {args.rate:g}x'}...", flush=True)
    from hetskel_ros.ros.bagtools.evaluate import evaluate_bag

    labels = LiveLabels(bag, args.rate)
    overrides = {"model": str(model), "backend": args.backend, "device": "cpu"}
    try:
        result = evaluate_bag(bag_path, args.out, mode="live", overrides=overrides, rate=args.rate,
                              in_process=args.in_process, reference=True, on_actions=labels.on_actions,
                              on_start=labels.start, bag=bag, quiet=True)
    finally:
        labels.stop()
    metrics = result.evaluation.to_dict()
    files = result.files
    print()
    print(files["summary"].read_text(encoding="utf-8"))
    late = result.run.get("player_late_ms", 0.0)
    print(f"[demo] done in {time.monotonic() - began:.0f} s (replay {result.run.get('replay_wall_s', 0):.0f} s, "
          f"player at most {late:.0f} ms late). Frame accuracy {100 * metrics['frame_accuracy']:.1f}%, "
          f"segment mAP@0.5 {100 * (metrics['segment_map'].get('0.5') or 0):.1f}%.")
    print(f"[demo] plots: {files['timeline']} (truth vs prediction per person), {files['confusion']}; "
          f"report: {files['summary']}, {files['metrics']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
