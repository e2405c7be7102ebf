"""``python -m training.robot_head``: a bundle whose head also knows what robots look like doing its actions.

    python -m training.robot_head --bundle models/default.hetskel --out runs/default_robots.hetskel

A humanoid's skeleton, once normalised to the human bone lengths, gives frozen features near a person's, but off
the head's training data; a head fitted on people alone extrapolates there (models/README.md, session 7). This
refits the bundle's head, outside its graph (``head.npz``, hetskel_ros.model.head: the encoder's ONNX graph stays
byte for byte, so TensorRT engines stay valid), on:

- the mean window features of the mocap's training clips (training/configs/datasets.yaml: no test clip is read),
  labelled by the bundle's own label names;
- robot views of ``--robot-clips`` training clips per action for each of ``--robots``: retargeted onto the URDF and
  put through forward kinematics as the joint_state input does (training.union.robot_views).

``--windows`` fits on every window the node cuts from those clips instead of one mean per clip, the first window
already once ``--min-fill`` of a window span has passed (0.24 of 2.1 s: half a second of motion, padded before it as
a young track's window is; robot views alike). The node labels single windows, and in a stream most of them straddle
a change of action, so the head learns from what it will be shown, early windows included. A window whose newest
second lies in the clip's own standing start or end (training.union.acting_windows: the frames the bag generator's
ground truth calls idle) is no example of the action.

``--idle-sets`` adds an ``idle`` class, from windows of real standing phases of those sets' training clips
(training.calibrate) and from the mocap clips' own standing windows; never from the bag generator's gaps, nor from a
set's ``idle_held_out`` clips (the mocap's feminine style, whose standing phases are the untrimmed bench's idle gaps:
training/configs/datasets.yaml).

``--blend W`` (with ``--windows``) also fits the clip-mean head and averages the two heads' logits, weight W on the
clip head (hetskel_ros.model.head.blend). The window head alone reads a robot's held raised hand as the start of a
wave and loses 9 points on trimmed clips; the clip head alone is late and blind to what a stream's windows straddle;
their product keeps the first's robots and trimmed clips and the second's streams. Only the window head has the idle
class (with it in both, idle took real raises: models/README.md, session 10). The shipped default is ``--windows
--idle-sets utd_mhad,nw_ucla --blend 0.5``. Refit a calibration after this (python -m training.calibrate): its
labels are the head's.

A bundle without a bone-length template first gets one, the median bone lengths of the mocap's training split
(hetskel_ros.topology.normalize): a robot's limbs are short for its torso, and the node applies the bundle's
normalisation exactly as this fit does. A logistic regression on unit-length features (the head's contract).
Data: Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from hetskel_ros.model.bundle import load_bundle, save_bundle
from hetskel_ros.model.calibration import IDLE
from hetskel_ros.model.features import FeatureExtractor
from hetskel_ros.model.fewshot import unit_logistic
from hetskel_ros.model.head import LinearHead, blend
from hetskel_ros.runtime.features import open_extractor
from hetskel_ros.topology import load_topology, load_unified
from hetskel_ros.topology.normalize import Normalization, template_lengths
from training.calibrate import idle_features
from training.datasets import LoadedDataset, load_dataset, relative
from training.union import MOCAP, acting_windows, robot_views

LOGISTIC_C = 1.0  # as the shipped head was fitted (fewshot's 10 suits a handful of examples, not 2,000 clips)


def fit(extractor: FeatureExtractor, loaded: LoadedDataset, actions: list[str], args: argparse.Namespace, *,
        per_window: bool, idle_sets: list[str]) -> tuple[LinearHead, list[str]]:
    """The logistic head over ``actions`` (plus ``idle`` from ``idle_sets``) on the mocap's training clips and their
    robot views: one row per clip (its mean window feature) or, ``per_window``, one per window the node cuts."""
    data, labels = loaded.data, list(actions)
    order = np.array([labels.index(n) for n in data.label_names])  # mocap label -> head row
    clips = extractor.sequence_set_features(data, loaded.train, per_window=per_window)
    standing = np.zeros((0, extractor.config.feature_dim), np.float32)
    if per_window:  # a window of the clip's own standing start or end is no example of its action
        acting = [acting_windows(data.sequences[i], data.fps, c.ends) for c, i in zip(clips, loaded.train, strict=True)]
        human = np.concatenate([c.features[a] for c, a in zip(clips, acting, strict=True)])
        human_labels = np.concatenate([np.full(int(a.sum()), data.labels[i])
                                       for a, i in zip(acting, loaded.train, strict=True)])
        if idle_sets:  # ... but of idle, except in the clips the bench's idle gaps are made of
            donors = set(loaded.idle_train().tolist())
            standing = np.concatenate([c.features[~a] for c, a, i in zip(clips, acting, loaded.train, strict=True)
                                       if int(i) in donors])
    else:
        human, human_labels = clips, data.labels[loaded.train]
    views, view_labels = robot_views(extractor, loaded, args.robots, args.robot_clips, args.seed, args.cache,
                                     per_window=per_window)
    x = np.concatenate([human, np.stack(views)]) if views else human
    y = order[np.concatenate([human_labels, view_labels]).astype(np.int64)]
    idle = np.zeros((0, x.shape[1]), np.float32)
    if idle_sets:
        idle = idle_features(extractor, idle_sets, args.idle_per_set, extractor.span, np.random.default_rng(args.seed))
        idle = np.concatenate([idle, standing]) if len(idle) else standing
        labels.append(IDLE)
        x, y = np.concatenate([x, idle]), np.concatenate([y, np.full(len(idle), len(labels) - 1)])
    weight, bias = unit_logistic(x, y, len(labels), c=LOGISTIC_C, max_iter=4000, absent_bias=-1e3)
    head = LinearHead(weight, bias, {"kind": "logistic", "C": LOGISTIC_C})
    head.info.update({"human_clips": len(loaded.train), "human_rows": len(human), "robot_views": len(views),
                      "robots": args.robots, "windows": per_window, "idle_rows": len(idle),
                      "standing_rows": len(standing)})
    return head, labels


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="robot_head", description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("models/default.hetskel"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--robots", nargs="+", default=["unitree_g1", "talos"])
    p.add_argument("--robot-clips", type=int, default=16, help="training clips per action and robot")
    p.add_argument("--cache", type=Path, default=Path("runs/robot_views"), help="retargeted joint values")
    p.add_argument("--windows", action="store_true", help="fit on every window the node cuts, not clip means")
    p.add_argument("--min-fill", type=float, default=0.24, help="with --windows: a young clip's first window")
    p.add_argument("--idle-sets", default="", help="data sets whose standing phases give an idle class")
    p.add_argument("--idle-per-set", type=int, default=300, help="training clips per set searched for standing")
    p.add_argument("--blend", type=float, default=None, metavar="W",
                   help="with --windows: also fit the clip-mean head and average the logits, weight W on it")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.blend is not None and not args.windows:
        print("robot_head: --blend averages a clip head with the window head: give --windows too", file=sys.stderr)
        return 1
    began = time.monotonic()
    base = load_bundle(args.bundle)
    loaded = load_dataset(MOCAP)
    data = loaded.data
    missing = sorted(set(data.label_names) - set(base.label_names))
    if missing:
        print(f"robot_head: {relative(args.bundle)} has no labels {missing} of the mocap", file=sys.stderr)
        return 1
    normalization = dict(base.normalization)
    if not normalization.get("bone_lengths"):
        skeleton, topology = load_unified(), load_topology(data.topology)
        template = template_lengths([topology.to_unified(data.sequences[int(i)]) for i in loaded.train], skeleton)
        normalization = Normalization(True, tuple(float(v) for v in template)).to_dict(skeleton)
    bundle = replace(base, normalization=normalization)
    extractor = open_extractor(bundle, threads=1)
    actions = [n for n in base.label_names if n != IDLE]
    idle_sets = [s for s in args.idle_sets.split(",") if s]
    if args.windows:  # the node's windows of each clip, from its first half second on
        windowed = FeatureExtractor.from_bundle(bundle, extractor.infer, min_fill=args.min_fill)
        head, labels = fit(windowed, loaded, actions, args, per_window=True, idle_sets=idle_sets)
        if args.blend is not None:
            clip_head, clip_labels = fit(extractor, loaded, actions, args, per_window=False, idle_sets=[])
            head = blend(clip_head, clip_labels, head, labels, args.blend)
            head.info.update({k: head.info["second"][k] for k in ("human_rows", "robot_views", "idle_rows")})
    else:
        head, labels = fit(extractor, loaded, actions, args, per_window=False, idle_sets=idle_sets)
    record = {"command": "python -m training.robot_head " + " ".join(sys.argv[1:] if argv is None else argv),
              "base": relative(args.bundle), "robots": args.robots, "robot_clips_per_action": args.robot_clips,
              "human_clips": len(loaded.train), "robot_views": head.info["robot_views"], "windows": args.windows,
              "min_fill": args.min_fill if args.windows else None, "idle_sets": idle_sets, "blend": args.blend,
              "bone_template": "kept" if base.normalization.get("bone_lengths") else "mocap training split",
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = save_bundle(replace(bundle, label_names=labels, head=head, parts={},
                              provenance={**base.provenance, "robot_head": record}), args.out)
    print(f"wrote {relative(out)}: head over {len(labels)} labels from {head.info['human_rows']} human rows "
          f"({len(loaded.train)} clips), {head.info['robot_views']} robot views and {head.info['idle_rows']} idle "
          f"windows{' blended with a clip head' if args.blend is not None else ''} in "
          f"{time.monotonic() - began:.0f} s (a calibration, if the base had one, is not kept: refit it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
