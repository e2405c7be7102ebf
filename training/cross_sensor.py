"""``python -m training.cross_sensor``: a head taught from 3D examples, applied to the 2D path (issue 17, item 4).

The few-shot heads of ``hetskel-teach`` (hetskel_ros.model.fewshot) are fitted on frozen features of 3D sequences,
5 examples per action drawn from the training split, and tested on the held-out split twice: on the same sequences
in 3D, and on their 2D COCO-17 views (the training views' virtual camera with a 2D estimator's noise, a fixed seed
per sequence: training/features.py), which reach the encoder through the lifter as an RGB camera's skeletons do.
For reference the same heads taught from the 2D views are tested on 2D. 10 draws of the examples; mean and spread.
Default: NW-UCLA (Kinect v1, 10 actions; train views 1-2, test view 3), which the shipped encoder never saw.
Writes ``bench/results/cross_sensor.json`` (repository-relative paths).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from hetskel_ros.model.bundle import load_bundle
from hetskel_ros.model.fewshot import HEADS, Example, fit_head
from hetskel_ros.paths import share_dir
from hetskel_ros.runtime.samples import default_bundle_path
from hetskel_ros.topology import load_topology, load_unified
from hetskel_ros.topology.normalize import Normalization

from .datasets import load_dataset, relative
from .features import sequence_features
from .teach_accuracy import draw, few_shot_arguments
from .teach_accuracy import summary as spread
from .views import ViewMaker, clips_from_sequences


def accuracy(kind: str, train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
             names: list[str]) -> float:
    examples = [Example(names[int(y)], str(i), x[None]) for i, (x, y) in enumerate(zip(train, train_labels,
                                                                                         strict=True))]
    head = fit_head(kind, examples, names, {})
    return float(np.mean(head.probabilities(test).argmax(axis=1) == test_labels))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cross_sensor", description=__doc__.split("\n\n")[0])
    few_shot_arguments(p, "nw_ucla")
    p.add_argument("--seed", type=int, default=0, help="seed of the 2D views (the draws use 0..draws-1)")
    p.add_argument("--out", type=Path, default=share_dir() / "bench" / "results" / "cross_sensor.json")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    began = time.monotonic()
    bundle_path = args.model or default_bundle_path()
    bundle = load_bundle(bundle_path)
    model = bundle.build_model()
    skeleton = load_unified()
    loaded = load_dataset(args.dataset)
    data = loaded.data
    clips = clips_from_sequences(data, load_topology(data.topology), skeleton, args.dataset)
    maker = ViewMaker(skeleton, model.cfg.window, model.cfg.fps,
                      normalization=Normalization.from_dict(bundle.normalization, skeleton))
    labels = np.asarray(data.labels)
    train, test = np.asarray(loaded.train), np.asarray(loaded.test)
    features = {mode: sequence_features(model, maker, clips, mode, seed=args.seed) for mode in ("3d", "2d")}
    names = list(data.label_names)
    results: dict[str, dict[str, list[float]]] = {kind: {"3d_to_3d": [], "3d_to_2d": [], "2d_to_2d": []}
                                                  for kind in HEADS}
    for d in range(args.draws):
        chosen = draw(labels, train, args.per_class, np.random.default_rng(d))
        for kind in HEADS:
            for name, (source, target) in {"3d_to_3d": ("3d", "3d"), "3d_to_2d": ("3d", "2d"),
                                           "2d_to_2d": ("2d", "2d")}.items():
                results[kind][name].append(accuracy(kind, features[source][chosen], labels[chosen],
                                                    features[target][test], labels[test], names))
    summary = {kind: {name: spread(v) for name, v in per.items()} for kind, per in results.items()}
    out = {"name": "cross_sensor", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "command": " ".join(["python -m training.cross_sensor", *(sys.argv[1:] if argv is None else argv)]),
           "seconds": round(time.monotonic() - began, 1), "model": relative(bundle_path),
           "dataset": {"name": args.dataset, "file": relative(loaded.path), "sample": loaded.is_sample,
                       "train_sequences": len(train), "test_sequences": len(test), "classes": len(names)},
           "protocol": f"{args.per_class} examples per action from the training split, {args.draws} draws (seeds "
                       f"0..{args.draws - 1}); sequence features (mean of the node's windows); 2D = COCO-17 virtual "
                       f"camera views, seed {args.seed} per sequence; top-1 on the test split",
           "results": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: {n: (v["mean"], v["std"]) for n, v in per.items()} for k, per in summary.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
