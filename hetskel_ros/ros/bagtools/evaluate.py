"""One evaluation of a labelled bag, offline or live, with its report (shared by ``hetskel-bag eval`` and the demo)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hetskel_ros.model.bundle import load_bundle
from hetskel_ros.paths import relative
from hetskel_ros.ros.bagtools.bag_io import BagContents, BagError, read_bag
from hetskel_ros.ros.bagtools.offline import OfflineResult, run_offline
from hetskel_ros.ros.bagtools.report import write_report
from hetskel_ros.runtime.detection_metrics import Evaluation, Prediction, evaluate
from hetskel_ros.runtime.samples import default_bundle_path

MODES = ("offline", "live")


@dataclass
class BagEvaluation:
    mode: str
    evaluation: Evaluation
    predictions: list[Prediction]
    files: dict[str, Path]
    run: dict[str, Any]
    offline: OfflineResult | None = None  # the offline run (the reference, in live mode)


def evaluate_bag(bag_path: str | Path, out_dir: str | Path, *, mode: str = "offline",
                 config: str | Path | None = None, overrides: Mapping[str, Any] | None = None, rate: float = 1.0,
                 in_process: bool = False, reference: bool = True,
                 on_actions: Callable[[float, list[Prediction]], None] | None = None,
                 on_start: Callable[[], None] | None = None, bag: BagContents | None = None,
                 quiet: bool = False) -> BagEvaluation:
    """Run the recognizer over a bag (``mode`` offline or live), score it against the bag's ground truth and
    write the report into ``out_dir``. In live mode ``reference`` also runs the offline mode, to count the windows
    that never arrived and check that live labels equal offline ones."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    bag = bag or read_bag(bag_path)
    if not bag.truth:
        raise BagError(f"{bag.path}: no ground truth (an ActionArray topic with source 'ground_truth', e.g. "
                       f"/ground_truth); make labelled bags with `hetskel-bag make`")
    overrides = dict(overrides or {})
    out_dir = Path(out_dir)
    recorded = {**overrides, **({"model": relative(overrides["model"])} if overrides.get("model") else {})}
    run: dict[str, Any] = {"bag": relative(bag.path), "mode": mode, "people": len(bag.truth),  # never absolute paths
                           "duration_s": bag.duration_s,
                           "config": relative(config) if config else "config/recognize.yaml", "overrides": recorded}
    offline = None
    damaged = Counter(bag.unreadable)
    if mode == "offline" or reference:
        offline = run_offline(bag, config, overrides)
        run.update(model=relative(offline.model), backend=offline.backend, drops=offline.drops, events=offline.events)
        damaged.update(offline.undecodable)
    run["damaged_messages"] = dict(sorted(damaged.items()))  # skipped: unreadable or undecodable, per topic
    # The model's vocabulary: actions of the bag outside it are scored as "should be idle or unknown".
    known = load_bundle(offline.model if offline is not None else (overrides.get("model") or default_bundle_path()),
                        weights=False).label_names
    run["unknown_to_model"] = sorted({s["label"] for s in bag.segments} - set(known)) if bag.segments else []
    if mode == "offline":
        assert offline is not None
        predictions = offline.predictions
        evaluation = evaluate(bag.truth, predictions, bag.labels, known=known)
    else:
        from hetskel_ros.ros.bagtools.live import run_live

        live = run_live(bag, config=config, overrides=overrides, rate=rate, in_process=in_process,
                        work_dir=out_dir, on_actions=on_actions, on_start=on_start, quiet=quiet)
        predictions = live.predictions
        run.update(rate=rate, recognizer=live.recognizer, published=live.published, replay_wall_s=live.wall_s,
                   player_late_ms=1000.0 * live.late_s, recognizer_exit=live.recognizer_exit,
                   actions_without_frame_arrival=live.unmatched_latency)
        run.setdefault("model", recorded.get("model") or "models/default.hetskel")
        run.setdefault("backend", overrides.get("backend") or "config order")
        evaluation = evaluate(bag.truth, predictions, bag.labels, latencies_s=live.latencies_s,
                              reference=offline.predictions if offline is not None else None, known=known)
    start_s = bag.start_ns / 1e9
    files = write_report(out_dir, evaluation, bag.truth, predictions, run, start_s)
    return BagEvaluation(mode, evaluation, predictions, files, run, offline)
