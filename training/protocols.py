"""Each real data set on its standard protocol: frozen features against the raw-joint baseline, same classifier.

Features come from the public feature API (hetskel_ros.model.features): the windows the node cuts, normalised as
the bundle says, averaged per sequence. Beside the encoder's features stand two raw-joint baselines with the same
classifiers: the same windows' normalised joints resampled to 16 frames plus each coordinate's spread over the
window ("raw, windows"), and the whole sequence normalised and resampled so ("raw, sequence"). A learned figure
counts against the better of the two. Protocols: linear probe, kNN-1 (cosine), linear on 10% of the labels, and for
sets with ``leave_one_out`` every fold (e.g. mocap leave-one-style-out).
"""

from __future__ import annotations

import numpy as np

from hetskel_ros.model.features import FeatureExtractor, WindowFeatures, raw_joint_infer, torch_infer
from hetskel_ros.topology import load_topology, load_unified
from hetskel_ros.topology.normalize import Normalization

from . import metrics
from .datasets import LoadedDataset, relative

ENCODER, RAW_WINDOWS, RAW_SEQUENCE = "encoder", "raw, windows", "raw, sequence"
ENCODER_WHOLE = "encoder, whole sequence"  # one window spanning the whole clip (FeatureExtractor whole=True)


def raw_sequence_features(loaded: LoadedDataset, normalization: Normalization) -> np.ndarray:
    """(S, D) raw-joint baseline over whole sequences: normalised once, resampled to 16 frames, plus spread."""
    data, skeleton = loaded.data, load_unified()
    topology = load_topology(data.topology)
    rows = []
    for i, native in enumerate(data.sequences):
        unified, mask = topology.to_unified(native, None if data.confidence is None else data.confidence[i],
                                            unified=skeleton)
        x = normalization.apply(unified, mask, skeleton, up=topology.up)
        slot, other = ("3d", "2d") if x.shape[-1] == 3 else ("2d", "3d")
        row = {f"x{slot}": x[None], f"m{slot}": mask[None].astype(np.float32),
               f"x{other}": np.zeros((1, len(x), skeleton.num_joints, 5 - x.shape[-1]), np.float32),
               f"m{other}": np.zeros((1, len(x), skeleton.num_joints), np.float32)}
        rows.append(raw_joint_infer(row)[0][0])
    return np.stack(rows)


def encoder_windows(model, normalization: Normalization, loaded: LoadedDataset) -> list[WindowFeatures]:
    """Every sequence's node windows through the encoder (features and the model's own head's scores)."""
    return FeatureExtractor(model.cfg, normalization, torch_infer(model.eval())).sequence_set_features(
        loaded.data, per_window=True)


def feature_sets(model, normalization: Normalization, loaded: LoadedDataset,
                 windows: list[WindowFeatures] | None = None) -> dict[str, np.ndarray]:
    """Per-sequence features of every sequence of the set: the encoder's (mean over its windows, and of one window
    spanning the whole sequence) and the two raw baselines."""
    windows = windows if windows is not None else encoder_windows(model, normalization, loaded)
    raw = FeatureExtractor(model.cfg, normalization, raw_joint_infer)
    whole = FeatureExtractor(model.cfg, normalization, torch_infer(model.eval())).sequence_set_features(
        loaded.data, whole=True)
    return {ENCODER: np.stack([w.features.mean(axis=0) for w in windows]), ENCODER_WHOLE: whole,
            RAW_WINDOWS: raw.sequence_set_features(loaded.data),
            RAW_SEQUENCE: raw_sequence_features(loaded, normalization)}


def probe(features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int,
          num_classes: int, full: bool = True) -> dict[str, float]:
    """Top-1 of the linear probe, and (full) kNN-1 and the linear probe on 10% of the training labels."""
    fit = metrics.linear_eval(features[train], labels[train], features[test], labels[test], seed,
                              num_classes=num_classes)
    out = {"linear": fit["top1"]}
    if full:
        out["knn1"] = metrics.knn_eval(features[train], labels[train], features[test], labels[test], k=1)["top1"]
        semi = metrics.semi_supervised_eval(features[train], labels[train], features[test], labels[test], (0.1,),
                                            seed, num_classes=num_classes)
        out["linear_10pct"] = next(iter(semi.values()))["top1"]
    return out


def evaluate_set(model, normalization: Normalization, loaded: LoadedDataset, seed: int = 0,
                 windows: list[WindowFeatures] | None = None, pretrained_on: tuple[str, ...] = ()) -> dict:
    """The set's table: each feature kind on the standard protocol, and its leave-one-out folds when the encoder
    never saw the set (``pretrained_on``: the sets whose training splits it pretrained on): a fold's test side must
    be unseen, labelled or not."""
    labels = loaded.data.labels
    classes = len(loaded.data.label_names)
    features = feature_sets(model, normalization, loaded, windows)
    table: dict = {"protocol": loaded.spec.protocol.name, "file": relative(loaded.path), "sample": loaded.is_sample,
                   "train": len(loaded.train), "test": len(loaded.test), "credit": loaded.spec.credit}
    if len(loaded.train) and len(loaded.test) and len(np.unique(labels[loaded.train])) > 1:
        table["standard"] = {kind: probe(x, labels, loaded.train, loaded.test, seed, classes)
                             for kind, x in features.items()}
    if loaded.spec.leave_one_out and loaded.spec.name not in pretrained_on:
        folds = {}
        for value in loaded.fold_values():
            train, test = loaded.fold(value)
            if len(test) and len(np.unique(labels[train])) > 1:
                folds[value] = {kind: probe(x, labels, train, test, seed, classes, full=False)["linear"]
                                for kind, x in features.items()}
        if folds:
            table["leave_one_out"] = {"folds": folds, "mean": {
                kind: float(np.mean([f[kind] for f in folds.values()])) for kind in features}}
    return table


def baseline_of(scores: dict[str, float]) -> float:
    """The better raw-joint baseline."""
    return max(scores[RAW_WINDOWS], scores[RAW_SEQUENCE])


def format_tables(tables: dict[str, dict]) -> str:
    """Markdown: one row per data set and protocol, encoder beside both raw baselines."""
    lines = ["| data set | protocol | test | encoder linear (windows / whole) | raw linear (windows / sequence) | "
             "encoder kNN-1 | "
             "raw kNN-1 | encoder 10% | raw 10% |", "|---|---|---|---|---|---|---|---|---|"]

    def pct(v: float) -> str:
        return f"{100 * v:.1f}"

    for name, t in tables.items():
        if not t.get("standard") and not t.get("leave_one_out"):
            lines.append(f"| {name} | {t['protocol']} | {t['test']} | no training split in {t['file']} | | | | | |")
        s = t.get("standard")
        if s:
            e, rw, rs = s[ENCODER], s[RAW_WINDOWS], s[RAW_SEQUENCE]
            whole = f" / {pct(s[ENCODER_WHOLE]['linear'])}" if ENCODER_WHOLE in s else ""
            lines.append(f"| {name} | {t['protocol']} | {t['test']} | **{pct(e['linear'])}**{whole} | "
                         f"{pct(rw['linear'])} / {pct(rs['linear'])} | {pct(e['knn1'])} | "
                         f"{pct(max(rw['knn1'], rs['knn1']))} | {pct(e['linear_10pct'])} | "
                         f"{pct(max(rw['linear_10pct'], rs['linear_10pct']))} |")
        loo = t.get("leave_one_out")
        if loo:
            m = loo["mean"]
            whole = f" / {pct(m[ENCODER_WHOLE])}" if ENCODER_WHOLE in m else ""
            lines.append(f"| {name} | leave-one-out mean ({len(loo['folds'])} folds) | | "
                         f"**{pct(m[ENCODER])}**{whole} | "
                         f"{pct(m[RAW_WINDOWS])} / {pct(m[RAW_SEQUENCE])} | | | | |")
    return "\n".join(lines)
