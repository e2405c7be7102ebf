"""``python -m training.calibrate``: fit a bundle's idle class and open-set rejection on its frozen features.

    python -m training.calibrate --bundle models/default.hetskel --out runs/calibrated.hetskel

Through the feature API (the node's own windows and normalisation), from the training splits of the registry's data
sets only (training/configs/datasets.yaml; held-out data is never used):

- action prototypes: the mean window feature of each head label, from the training clips of the sets the head was
  trained on (``--actions``, comma-separated, default bandai; labels by their config/actions.yaml shared names, as
  a merged head has them), 80% of each class's clips; the other 20% fit the rejection distance (``--keep`` of their
  windows stay accepted);
- idle: windows of real standing phases (hetskel_ros.topology.standing) of the training clips of ``--idle-sets``,
  each played to and fro into a sequence of a window's length or more (never the bag generator's gaps). The phases
  are short (UTD-MHAD: median 0.37 s; the mocap's clips have none), so no margin is cut from them: the stillness
  test itself (hetskel_ros.topology.standing) keeps them off the motion.

Writes the bundle with ``calibration.json`` (hetskel_ros.model.calibration) to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from hetskel_ros.model.calibration import fit_calibration, write_calibration
from hetskel_ros.model.features import FeatureExtractor
from hetskel_ros.runtime.features import open_extractor
from hetskel_ros.topology.standing import ping_pong, standing_phase
from training.actions import merged_vocabulary
from training.datasets import load_dataset, relative


def action_features(extractor: FeatureExtractor, labels: list[str], datasets: list[str], per_class: int,
                    rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(label -> window features of 80% of its training clips, window features of the other 20%), over the
    training splits of ``datasets``; a set's labels go by their config/actions.yaml shared names (a merged head's)."""
    train: dict[str, list[np.ndarray]] = {}
    held: list[np.ndarray] = []
    for dataset in datasets:
        _set_features(extractor, labels, dataset, per_class, rng, train, held)
    return ({k: np.concatenate(v) for k, v in train.items() if v},
            np.concatenate(held) if held else np.zeros((0, 0), np.float32))


def _set_features(extractor: FeatureExtractor, labels: list[str], dataset: str, per_class: int,
                  rng: np.random.Generator, train: dict[str, list[np.ndarray]], held: list[np.ndarray]) -> None:
    loaded = load_dataset(dataset)
    data = loaded.data
    shared = merged_vocabulary({dataset: data.label_names})
    for label_index in range(len(data.label_names)):
        name = shared.names[shared.index[dataset][label_index]]
        if name not in labels:
            continue
        clips = [int(i) for i in loaded.train if int(data.labels[i]) == label_index]
        clips = list(rng.permutation(clips))[:per_class]
        cut = max(1, int(0.8 * len(clips)))
        windows = extractor.sequence_set_features(data, clips, per_window=True)
        train.setdefault(name, []).extend(w.features for w in windows[:cut])
        held += [w.features for w in windows[cut:]]


def idle_features(extractor: FeatureExtractor, datasets: list[str], per_set: int, span_s: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Window features of real standing phases of the training clips of ``datasets`` (not of a set's
    ``idle_held_out`` clips: the untrimmed bench's idle gaps are made of those)."""
    parts = []
    for dataset in datasets:
        loaded = load_dataset(dataset)
        data = loaded.data
        for i in list(rng.permutation(loaded.idle_train()))[:per_set]:
            clip = np.asarray(data.sequences[int(i)], np.float32)
            conf = None if data.confidence is None else np.asarray(data.confidence[int(i)], np.float32)
            for at_end in (False, True):
                phase = standing_phase(clip, data.fps, at_end)
                if not len(phase):
                    continue
                count = int(np.ceil(span_s * data.fps * 1.5))
                positions = ping_pong(phase, count)
                confidence = None
                if conf is not None:
                    confidence = np.repeat(conf[-1 if at_end else 0][None], count, axis=0)
                parts.append(extractor.windows(positions, data.topology, data.fps, confidence).features)
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("models/default.hetskel"))
    p.add_argument("--out", type=Path, required=True, help="bundle to write (a copy with calibration.json)")
    p.add_argument("--actions", default="bandai",
                   help="data sets (comma-separated) whose training splits give the action prototypes")
    p.add_argument("--idle-sets", default="bandai,utd_mhad", help="data sets whose training clips give idle")
    p.add_argument("--per-class", type=int, default=60, help="training clips per action")
    p.add_argument("--idle-per-set", type=int, default=300, help="training clips per set searched for standing")
    p.add_argument("--keep", type=float, default=0.95, help="share of held-out known windows kept")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    began = time.monotonic()
    rng = np.random.default_rng(args.seed)
    extractor = open_extractor(args.bundle, threads=1)
    from hetskel_ros.model.bundle import load_bundle

    labels = list(load_bundle(args.bundle, weights=False).label_names)
    train, held = action_features(extractor, labels, [s for s in args.actions.split(",") if s], args.per_class, rng)
    if not train:
        print(f"calibrate: {args.actions} has no training clips of the bundle's labels {labels} here (a shipped "
              f"sample holds only its test split; the full set is read from ../shared/data)", file=sys.stderr)
        return 1
    idle = idle_features(extractor, [s for s in args.idle_sets.split(",") if s], args.idle_per_set,
                         extractor.span, rng)
    calibration = fit_calibration(train, labels, held, idle, args.keep, {
        "bundle": relative(args.bundle), "actions": args.actions, "idle_sets": args.idle_sets,
        "per_class": args.per_class, "idle_windows": len(idle), "heldout_windows": len(held),
        "command": "python -m training.calibrate " + " ".join(sys.argv[1:] if argv is None else argv)})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_calibration(args.bundle, calibration, args.out)
    print(f"wrote {args.out}: {len(train)} action prototypes, idle from {len(idle)} windows, reject distance "
          f"{calibration.reject_distance:.3f} (keeps {args.keep:.0%} of {len(held)} held-out known windows) "
          f"in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
