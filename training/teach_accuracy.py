"""``python -m training.teach_accuracy``: few-shot teaching accuracy on a data set's protocol, against raw joints.

Issue 17's numbers: K examples per action (default 5) drawn from the protocol's training side (UTD-MHAD: the odd
subjects), the heads of ``hetskel-teach`` (hetskel_ros.model.fewshot) fitted on the node's window features through
the feature API, every sequence of the test side (the even subjects) labelled by the mean of its windows'
probabilities; mean and spread over ``--draws`` draws of the examples. The same heads on the raw-joint features of
the same windows (hetskel_ros.model.features.raw_joint_infer) are the baseline. ``add``: the first half of the
actions taught alone, then the second half added as ``--add`` does (the first half known only by its class
statistics): the first half's accuracy before and after, within the first half's test sequences.

    python -m training.teach_accuracy --dataset utd_mhad --model runs/lodo_utd.hetskel   # the encoder to judge

Without the full data (``../shared/data``) it runs on the shipped sample and says so (``sample: true``; too few
sequences for the issue's numbers: a smoke run). ``--whole``: one window spanning each trimmed sequence, as the
standard protocols see a clip (hetskel_ros.model.features), instead of the node's windows. Writes ``--out``
(default bench/results/teach_accuracy.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from hetskel_ros.model.bundle import load_bundle
from hetskel_ros.model.calibration import ClassStats
from hetskel_ros.model.features import FeatureExtractor, raw_joint_infer
from hetskel_ros.model.fewshot import HEADS, Example, fit_head
from hetskel_ros.paths import share_dir
from hetskel_ros.runtime.features import open_extractor
from hetskel_ros.runtime.samples import default_bundle_path

from .datasets import load_dataset, relative


def draw(labels: np.ndarray, pool: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` indices of ``pool`` per label (all a label has when fewer)."""
    return np.concatenate([rng.permutation(pool[labels[pool] == k])[:per_class] for k in np.unique(labels[pool])])


def sequence_accuracy(kind: str, windows: list[np.ndarray], labels: np.ndarray, names: list[str], train: np.ndarray,
                      test: np.ndarray, stats: dict | None = None, vocabulary: list[str] | None = None) -> float:
    """Top-1 over the test sequences (mean window probabilities) of a head fitted on the train sequences."""
    vocabulary = vocabulary or sorted({names[int(labels[i])] for i in train}, key=names.index)
    examples = [Example(names[int(labels[i])], str(i), windows[i]) for i in train]
    head = fit_head(kind, examples, vocabulary, stats or {})
    index = {n: k for k, n in enumerate(vocabulary)}
    hits = [int(np.argmax(head.probabilities(windows[i]).mean(axis=0))) == index[names[int(labels[i])]]
            for i in test]
    return float(np.mean(hits))


def summary(values: list[float]) -> dict:
    return {"mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4),
            "draws": [round(v, 4) for v in values]}


def few_shot_arguments(p: argparse.ArgumentParser, dataset: str) -> None:
    """The options every few-shot measurement shares (this one and training.cross_sensor)."""
    p.add_argument("--dataset", default=dataset)
    p.add_argument("--model", type=Path, default=None, help="bundle whose encoder is judged (default: the shipped)")
    p.add_argument("--per-class", type=int, default=5, help="examples per action")
    p.add_argument("--draws", type=int, default=10, help="draws of the examples (seeds 0..draws-1)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="teach_accuracy", description=__doc__.split("\n\n")[0])
    few_shot_arguments(p, "utd_mhad")
    p.add_argument("--whole", action="store_true",
                   help="one window spanning each trimmed sequence (the standard protocols' view) instead of the "
                        "node's windows (what a taught head meets on a stream)")
    p.add_argument("--out", type=Path, default=share_dir() / "bench" / "results" / "teach_accuracy.json")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    began = time.monotonic()
    bundle_path = args.model or default_bundle_path()
    loaded = load_dataset(args.dataset)
    data, labels = loaded.data, np.asarray(loaded.data.labels)
    names = list(data.label_names)
    encoder = open_extractor(load_bundle(bundle_path), threads=1)
    raw = FeatureExtractor(encoder.config, encoder.normalization, raw_joint_infer)
    features = {name: [w.features for w in extractor.sequence_set_features(data, per_window=True, whole=args.whole)]
                for name, extractor in (("encoder", encoder), ("raw_joints", raw))}
    test = np.asarray(loaded.test)
    first = names[: len(names) // 2]
    results: dict[str, dict[str, list[float]]] = {f: {k: [] for k in HEADS} for f in features}
    add: dict[str, list[float]] = {"first_half_alone": [], "first_half_after_add": []}
    for d in range(args.draws):
        chosen = draw(labels, np.asarray(loaded.train), args.per_class, np.random.default_rng(d))
        for name, windows in features.items():
            for kind in HEADS:
                results[name][kind].append(sequence_accuracy(kind, windows, labels, names, chosen, test))
        windows = features["encoder"]
        in_first = np.array([names[int(labels[i])] in first for i in chosen])
        first_test = np.array([i for i in test if names[int(labels[i])] in first])
        stats = {n: ClassStats.of(np.concatenate([windows[i] for i in chosen[in_first] if names[int(labels[i])] == n]))
                 for n in first}
        add["first_half_alone"].append(sequence_accuracy("centroid", windows, labels, names, chosen[in_first],
                                                         first_test))
        add["first_half_after_add"].append(sequence_accuracy("centroid", windows, labels, names, chosen[~in_first],
                                                             first_test, stats, names))
    out = {"name": "teach_accuracy", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "command": " ".join(["python -m training.teach_accuracy", *(sys.argv[1:] if argv is None else argv)]),
           "seconds": round(time.monotonic() - began, 1), "model": relative(bundle_path),
           "dataset": {"name": args.dataset, "file": relative(loaded.path), "sample": loaded.is_sample,
                       "protocol": loaded.spec.protocol.name, "classes": len(names),
                       "test_sequences": len(test)},
           "protocol": f"{args.per_class} examples per action from the training side, {args.draws} draws (seeds "
                       f"0..{args.draws - 1}); {'one whole-sequence window' if args.whole else 'node windows'}; a test "
                       f"sequence's label: its windows' mean probability",
           "targets": {"encoder": ">= 0.80 top-1 and >= 15 points above raw joints (UTD-MHAD, 27 actions)",
                       "add": "the first half's accuracy within 2 points after adding the second half"},
           "results": {f: {k: summary(v) for k, v in per.items()} for f, per in results.items()},
           "add": {k: summary(v) for k, v in add.items()}}
    out["add"]["change_points"] = round(100 * (out["add"]["first_half_after_add"]["mean"]
                                               - out["add"]["first_half_alone"]["mean"]), 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({"results": {f: {k: (v["mean"], v["std"]) for k, v in per.items()}
                                  for f, per in out["results"].items()}, "add": out["add"]["change_points"],
                      "sample": loaded.is_sample}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
