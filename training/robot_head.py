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
from hetskel_ros.model.fewshot import unit_logistic
from hetskel_ros.model.head import LinearHead
from hetskel_ros.runtime.features import open_extractor
from hetskel_ros.topology import load_topology, load_unified
from hetskel_ros.topology.normalize import Normalization, template_lengths
from training.datasets import load_dataset, relative
from training.union import MOCAP, robot_views

LOGISTIC_C = 1.0  # as the shipped head was fitted (fewshot's 10 suits a handful of examples, not 2,000 clips)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="robot_head", description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=Path("models/default.hetskel"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--robots", nargs="+", default=["unitree_g1", "talos"])
    p.add_argument("--robot-clips", type=int, default=16, help="training clips per action and robot")
    p.add_argument("--cache", type=Path, default=Path("runs/robot_views"), help="retargeted joint values")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
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
    human = extractor.sequence_set_features(data, loaded.train)
    views, view_labels = robot_views(extractor, loaded, args.robots, args.robot_clips, args.seed, args.cache)
    order = np.array([list(base.label_names).index(n) for n in data.label_names])  # mocap label -> bundle row
    x = np.concatenate([human, np.stack(views)]) if views else human
    y = order[np.concatenate([data.labels[loaded.train], view_labels])]
    weight, bias = unit_logistic(x, y, len(base.label_names), c=LOGISTIC_C, max_iter=4000, absent_bias=-1e3)
    head = LinearHead(weight, bias, {"kind": "logistic", "C": LOGISTIC_C})
    head.info.update({"human_clips": len(human), "robot_views": len(views), "robots": args.robots})
    record = {"command": "python -m training.robot_head " + " ".join(sys.argv[1:] if argv is None else argv),
              "base": relative(args.bundle), "robots": args.robots, "robot_clips_per_action": args.robot_clips,
              "human_clips": len(human), "robot_views": len(views),
              "bone_template": "kept" if base.normalization.get("bone_lengths") else "mocap training split",
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = save_bundle(replace(bundle, head=head, provenance={**base.provenance, "robot_head": record}), args.out)
    print(f"wrote {relative(out)}: head over {len(base.label_names)} labels from {len(human)} human clips and "
          f"{len(views)} robot views in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
