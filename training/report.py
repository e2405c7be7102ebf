"""The evaluation report of a pretrained encoder (paper 002 sec. 4.2 protocols, paper 000 Table 3 ablations).

Fits on the training styles, tests on the held-out style. Every protocol uses frozen features except the supervised
baseline, which trains the same encoder from scratch with labels.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from hetskel_ros.model.config import preset
from hetskel_ros.model.model import HetSkelModel
from hetskel_ros.topology import load_unified

from . import metrics
from .features import MODES, sequence_features
from .occlusion import OCCLUSION_KINDS, occluded_test_set
from .train import Data, TrainConfig, pretrain
from .views import Clip, ViewMaker


def labels_of(clips: list[Clip]) -> np.ndarray:
    return np.array([c.label for c in clips])


def all_features(model: HetSkelModel, data: Data, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(train, test) sequence features per input mode: 3D only, 2D only (COCO view through the lifter), fused."""
    maker = ViewMaker(load_unified(), model.cfg.window, model.cfg.fps)
    return {mode: (sequence_features(model, maker, data.train, mode, seed=seed),
                   sequence_features(model, maker, data.test, mode, seed=seed + 1)) for mode in MODES}


def occluded(clips: list[Clip], kind: str, seed: int) -> list[Clip]:
    """The test clips with body parts hidden or frame blocks zeroed at ratios 0.3-0.7 (paper 002 sec. 4.2)."""
    positions, masks, _ = occluded_test_set([c.positions for c in clips], [c.mask for c in clips], kind,
                                            load_unified(), seed=seed)
    return [replace(c, positions=p, mask=m) for c, p, m in zip(clips, positions, masks, strict=True)]


def shared_head(features: dict[str, tuple[np.ndarray, np.ndarray]], ytr: np.ndarray, yte: np.ndarray,
                num_classes: int, seed: int) -> dict:
    """One linear head for every input mode (what the shipped model uses): fitted on all modes' train features."""
    train_x = np.concatenate([features[m][0] for m in MODES])
    fit = metrics.linear_eval(train_x, np.tile(ytr, len(MODES)), features["fused"][1], yte, seed,
                              num_classes=num_classes)
    per_mode = {m: float(((features[m][1] @ fit["weight"].T + fit["bias"]).argmax(1) == yte).mean()) for m in MODES}
    return {"top1": per_mode, "weight": fit["weight"], "bias": fit["bias"]}


def evaluate(model: HetSkelModel, data: Data, out_dir: Path, *, seed: int = 0, full: bool = True) -> dict:
    """All protocols on one pretrained model; plots go to out_dir. `full=False`: linear evaluation only."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = data.label_names
    ytr, yte = labels_of(data.train), labels_of(data.test)
    features = all_features(model, data, seed)
    linear = {m: metrics.linear_eval(*features[m][0:1], ytr, features[m][1], yte, seed, num_classes=len(names))
              for m in MODES}
    results: dict = {"linear": {m: {"top1": linear[m]["top1"]} for m in MODES}}
    if not full:
        return results
    results["linear_detail"] = {m: linear[m] for m in MODES}
    results["knn"] = {m: metrics.knn_eval(features[m][0], ytr, features[m][1], yte, k=1) for m in MODES}
    results["semi_supervised"] = {
        m: {k: v["top1"] for k, v in metrics.semi_supervised_eval(
            features[m][0], ytr, features[m][1], yte, (0.01, 0.1), seed, num_classes=len(names)).items()}
        for m in MODES}
    counts = np.bincount(yte)
    shots = tuple(k for k in (1, 5) if (counts >= k + 1).sum() >= 5)  # episodes need 5 classes with k+1 samples
    results["few_shot"] = (metrics.few_shot_eval(features["fused"][1], yte, ways=5, shots=shots, seed=seed) if shots
                           else {"skipped": "fewer than 5 test classes with 2 samples"})
    maker = ViewMaker(load_unified(), model.cfg.window, model.cfg.fps)
    results["occluded"] = {}
    for kind in OCCLUSION_KINDS:
        clips = occluded(data.test, kind, seed)
        # "fused, 2D clear": the depth skeleton lost the parts or frames, the RGB camera still sees them
        for name, mode, clips2d in (("3d", "3d", None), ("fused", "fused", None),
                                    ("fused, 2D clear", "fused", data.test)):
            x = sequence_features(model, maker, clips, mode, seed=seed + 1, clips2d=clips2d)
            scores = x @ linear[mode]["weight"].T + linear[mode]["bias"]
            results["occluded"][f"{kind} / {name}"] = float((scores.argmax(1) == yte).mean())
    head = shared_head(features, ytr, yte, len(names), seed)
    results["deployed_head"] = {"top1": head["top1"]}
    results["_head"] = head
    metrics.plot_confusion(linear["fused"]["confusion"], names, out_dir / "confusion_fused.png",
                           title="Linear evaluation, fused input (held-out style)")
    metrics.plot_embedding(features["fused"][1], yte, names, out_dir / "embedding_fused.png", method="tsne",
                           seed=seed, title="Test features (fused input), t-SNE")
    return results


def supervised_baseline(cfg: TrainConfig, data: Data, run_dir: Path, progress: bool) -> dict:
    """The same encoder and inputs trained from scratch with labels; its own classifier, per input mode."""
    model = pretrain(replace(cfg, objective="supervised", objective_args={}), run_dir, data, progress)
    maker = ViewMaker(load_unified(), model.cfg.window, model.cfg.fps)
    yte = labels_of(data.test)
    top1 = {}
    for mode in MODES:
        x = sequence_features(model, maker, data.test, mode, seed=cfg.seed + 1)
        import torch  # only here: the classifier is the model's own head

        with torch.no_grad():
            scores = model.classifier(torch.from_numpy(x)).numpy()
        top1[mode] = float((scores.argmax(1) == yte).mean())
    return {"top1": top1}


# Paper 000 Table 3: each switch of the configured model is flipped once ("zero_padding" when prompts are on,
# "with_semantic" when the config turned the semantic stream off, and so on).
ABLATION_SWITCHES = {"use_prompts": ("zero_padding", "with_prompts"), "use_semantic": ("no_semantic", "with_semantic")}


def ablations(cfg: TrainConfig) -> dict[str, dict]:
    """The ablation runs of this config: name -> model overrides."""
    model = preset(cfg.model_preset, **cfg.model)  # the switches as the trained model gets them
    out = {}
    for switch, (off_name, on_name) in ABLATION_SWITCHES.items():
        on = getattr(model, switch)
        out[off_name if on else on_name] = {switch: not on}
    return out


def ablation(cfg: TrainConfig, data: Data, name: str, run_dir: Path, progress: bool) -> dict:
    """Pretrain with one switch flipped (paper 000 Table 3) and report linear evaluation per input mode."""
    variant = replace(cfg, model={**cfg.model, **ablations(cfg)[name]})
    model = pretrain(variant, run_dir, data, progress)
    return evaluate(model, data, run_dir / "eval", seed=cfg.seed, full=False)["linear"]
