"""The deployed head of a union-pretrained encoder, and its accuracy as the node would score it.

One linear head over the merged vocabulary (config/actions.yaml), fitted on the frozen features of every labelled
training split (a sequence's feature: the mean over the windows the node would cut), and on robot views of the mocap's
training clips (``head_robots``): retargeted onto each robot's URDF and put through forward kinematics as the
joint_state input does. Without them a 52-action head calls almost every robot clip one Kinect action ("throw"),
although the frozen features of a robot's clip lie near the human's (a 10-action mocap head labels them as well as
the human skeletons). Each test split is then scored
the node's way: the head's softmax on each window the node cuts, smoothed by the node's exponential moving average,
and the label is the argmax at the sequence's last window ("unknown" below the node's threshold).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from hetskel_ros.model.features import FeatureExtractor, WindowFeatures, torch_infer
from hetskel_ros.model.head import softmax
from hetskel_ros.runtime.labelling import MOTION_TAIL_S
from hetskel_ros.topology.standing import acting_span

from . import metrics
from .actions import Vocabulary
from .datasets import LoadedDataset
from .report import ablations
from .train import TrainConfig, pretrain

MOCAP = "bandai"  # the set whose clips the retargeting reads (hetskel_ros.topology.retarget: its native joints)
NODE_SMOOTHING = 0.5  # runtime.recognizer.RecognizerConfig defaults
NODE_THRESHOLD = 0.5


def node_label(scores: np.ndarray, smoothing: float = NODE_SMOOTHING) -> np.ndarray:
    """(W, C) window probabilities -> the node's smoothed probabilities at the last window (C,)."""
    smoothed = scores[0]
    for p in scores[1:]:
        smoothed = smoothing * smoothed + (1.0 - smoothing) * p
    return smoothed


def acting_windows(clip: np.ndarray, fps: float, ends: np.ndarray) -> np.ndarray:
    """Per window (its last frame at ``ends`` seconds): does its newest second (what the node's idle test reads,
    labelling.MOTION_TAIL_S) lie mostly in the clip's action, not in its standing start or end
    (hetskel_ros.topology.standing.acting_span)? The bag generator's ground truth calls those frames idle."""
    start, end = (f / fps for f in acting_span(np.asarray(clip, np.float32), fps))
    tail = np.minimum(MOTION_TAIL_S, ends + 1.0 / fps)
    overlap = np.clip(np.minimum(ends, end) - np.maximum(ends - tail, start), 0.0, None)
    return overlap >= 0.5 * tail


def robot_views(extractor: FeatureExtractor, loaded: LoadedDataset, robots: list[str], per_label: int, seed: int,
                cache: Path | None, per_window: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """Mean window features of ``per_label`` training clips per action of ``loaded`` on each robot, and their labels
    (the set's own label indices); ``per_window``: the feature of every window of the clip's action
    (:func:`acting_windows`), each with its clip's label. Joint values are cached per robot and clip in ``cache``
    (IK: about 0.4 s a clip)."""
    from hetskel_ros.topology import load_robot
    from hetskel_ros.topology.retarget import Retargeter, link_kinematics, robot_skeleton

    data, rng = loaded.data, np.random.default_rng(seed)
    clips = [int(i) for label in range(len(data.label_names))
             for i in rng.permutation([i for i in loaded.train if data.labels[i] == label])[:per_label]]
    features, labels = [], []
    for robot in robots:
        mapping = load_robot(robot)
        retargeter, kinematics = Retargeter(robot, data.topology), link_kinematics(mapping)
        for i in clips:
            motion = retargeter.cached(data.sequences[i], data.fps,
                                       cache / robot / f"{data.names[i]}.npz" if cache is not None else None)
            rows, ends = extractor.window_rows(robot_skeleton(motion, kinematics).astype(np.float32),
                                               mapping.as_topology().name, data.fps)
            encoded = extractor.encode(rows)[0]
            kept = (list(encoded[acting_windows(data.sequences[i], data.fps, np.asarray(ends))]) if per_window
                    else [encoded.mean(axis=0)])
            features += kept
            labels += [int(data.labels[i])] * len(kept)
    return features, np.asarray(labels, np.int64)


def fit_head(windows: dict[str, list[WindowFeatures]], sets: dict[str, LoadedDataset], vocabulary: Vocabulary,
             seed: int = 0, robots: dict[str, tuple[list[np.ndarray], np.ndarray]] | None = None) -> dict:
    """The linear head on every set's training split (mean window features, merged labels), plus ``robots``' views
    (set name -> features and the set's label indices, from :func:`robot_views`)."""
    x = np.concatenate([np.stack([windows[n][i].features.mean(axis=0) for i in sets[n].train]) for n in sets])
    y = np.concatenate([vocabulary.labels(n, sets[n].data.labels[sets[n].train]) for n in sets])
    for name, (features, labels) in (robots or {}).items():
        if features:
            x = np.concatenate([x, np.stack(features)])
            y = np.concatenate([y, vocabulary.labels(name, labels)])
    test_x = np.concatenate([np.stack([windows[n][i].features.mean(axis=0) for i in sets[n].test]) for n in sets])
    test_y = np.concatenate([vocabulary.labels(n, sets[n].data.labels[sets[n].test]) for n in sets])
    fit = metrics.linear_eval(x, y, test_x, test_y, seed, num_classes=len(vocabulary.names))
    return {"weight": fit["weight"], "bias": fit["bias"], "top1_mean_feature": fit["top1"]}


def node_accuracy(head: dict, windows: list[WindowFeatures], loaded: LoadedDataset, vocabulary: Vocabulary,
                  name: str) -> dict[str, float]:
    """Per test split: the node's label at the last window is right (argmax), and right and above the threshold."""
    truth = vocabulary.labels(name, loaded.data.labels[loaded.test])
    right = labelled = 0
    for i, label in zip(loaded.test, truth, strict=True):
        probabilities = node_label(softmax(windows[i].features @ head["weight"].T + head["bias"]))
        best = int(np.argmax(probabilities))
        right += best == label
        labelled += best == label and probabilities[best] >= NODE_THRESHOLD
    n = max(len(truth), 1)
    return {"top1_last_window": right / n, "labelled_correctly": labelled / n, "test": len(truth)}


# ------------------------------------------------------------------------------------------------- the report
# Every training of the report is its own resumable run directory below --run-dir; a finished one is loaded, not
# retrained, and its tables are cached beside it (tables.json), so the ~30 trainings can span several sessions.
PARTS = ("main", "lodo", "single", "supervised", "ablations", "seeds")
ABLATION_SHARE = 0.5  # ablation runs train this share of the main run's steps (reduced length, said in the report)
SEEDS = (1, 2)  # more seeds of the main run, for the spread of the final comparisons


def run_tables(cfg: TrainConfig, run_dir: Path, names: list[str] | None, progress: bool) -> dict:
    """Pretrain (or resume, or load) ``cfg`` in ``run_dir`` and evaluate it on data sets ``names`` (None: all)."""
    from .cli import load_run, protocol_tables

    cached = run_dir / "tables.json"
    if cached.exists():
        return json.loads(cached.read_text())
    pretrain(cfg, run_dir, progress=progress)
    run_cfg, model, data = load_run(run_dir)
    summary_path = run_dir / "train_summary.json"
    out = {"tables": protocol_tables(run_cfg, model, data, names),
           "training": json.loads(summary_path.read_text()) if summary_path.exists() else {}}
    cached.write_text(json.dumps(out, indent=2))
    return out


def part_sets(parts: tuple[str, ...], datasets: list[str]) -> dict[str, list[str]]:
    """Parts as "name" (every data set) or "name:set+set" (only those), e.g. ("main", "lodo:bandai")."""
    out: dict[str, list[str]] = {}
    for part in parts:
        name, _, sets = part.partition(":")
        if name not in PARTS:
            raise ValueError(f"unknown report part {name!r}; known: {', '.join(PARTS)}")
        chosen = sets.split("+") if sets else list(datasets)
        unknown = sorted(set(chosen) - set(datasets))
        if unknown:
            raise ValueError(f"report part {part!r} names data sets {unknown} the config does not pretrain on")
        out[name] = chosen
    return out


def planned_runs(cfg: TrainConfig, total_steps: int, parts: tuple[str, ...]) -> dict[str, tuple[TrainConfig, list]]:
    """name -> (config, data sets to evaluate) of every training the requested parts need."""
    runs: dict[str, tuple[TrainConfig, list | None]] = {}
    chosen = part_sets(parts, cfg.datasets)
    if "lodo" in chosen:  # pretrain on the other sets' training splits, probe the left-out set: transfer
        for name in chosen["lodo"]:
            others = [n for n in cfg.datasets if n != name]
            runs[f"without_{name}"] = (replace(cfg, datasets=others), [name])
    if "single" in chosen:  # the paper's heterogeneity question: one set alone, at the union's optimiser steps
        for name in chosen["single"]:
            runs[f"only_{name}"] = (replace(cfg, datasets=[name], steps=total_steps), [name])
    if "supervised" in chosen:  # the same encoder trained from scratch with one set's labels (probed linearly)
        for name in chosen["supervised"]:
            runs[f"supervised_{name}"] = (replace(cfg, datasets=[name], objective="supervised", objective_args={},
                                                  steps=total_steps), [name])
    if "ablations" in chosen:
        short = max(1, round(total_steps * ABLATION_SHARE))
        runs["ablation_same_length"] = (replace(cfg, steps=short), None)
        for name, switch in ablations(cfg).items():
            runs[f"ablation_{name}"] = (replace(cfg, model={**cfg.model, **switch}, steps=short), None)
    if "seeds" in chosen:
        for seed in SEEDS:
            runs[f"seed_{seed}"] = (replace(cfg, seed=seed), None)
    return runs


def union_report(cfg: TrainConfig, run_dir: Path, out: Path, parts: tuple[str, ...], progress: bool) -> dict:
    """The report of a union pretraining (see the module doc), its bundle at ``out`` and the report beside it."""
    from hetskel_ros.model.bundle import save_bundle

    from .actions import merged_vocabulary
    from .cli import load_run, make_bundle, plot_loss, provenance
    from .datasets import load_dataset, registry
    from .protocols import encoder_windows, evaluate_set
    from .train import load_data

    part_sets(parts, cfg.datasets)  # a misspelt part is an error before any training
    main_dir = run_dir / "pretrain"
    data = load_data(cfg)
    pretrain(cfg, main_dir, data, progress)
    _, model, _ = load_run(main_dir, data)
    sets = {n: data.datasets.get(n) or load_dataset(n, sample=cfg.sample_data) for n in registry()}
    windows = {n: encoder_windows(model, data.normalization, sets[n]) for n in sets}
    results: dict = {"training": json.loads((main_dir / "train_summary.json").read_text())}
    results["datasets"] = {n: {**evaluate_set(model, data.normalization, sets[n], cfg.seed, windows[n],
                                              tuple(data.datasets)),
                               "pretrained_on_its_training_split": n in data.datasets} for n in sets}
    trained = {n: sets[n] for n in data.datasets if len(sets[n].train)}  # a sample may lack a training split
    vocabulary = merged_vocabulary({n: s.data.label_names for n, s in trained.items()})
    views = {}
    if cfg.head_robots and MOCAP in trained:
        extractor = FeatureExtractor(model.cfg, data.normalization, torch_infer(model.eval()))
        views[MOCAP] = robot_views(extractor, trained[MOCAP], cfg.head_robots, cfg.robot_clips, cfg.seed,
                                   run_dir / "robot_views")
    head = fit_head({n: windows[n] for n in trained}, trained, vocabulary, cfg.seed, views)
    results["deployed_head"] = {"classes": len(vocabulary.names), "top1_mean_feature": head["top1_mean_feature"],
                                "robot_views": {"robots": cfg.head_robots,
                                                "clips": sum(len(f) for f, _ in views.values())},
                                **{n: node_accuracy(head, windows[n], s, vocabulary, n) for n, s in trained.items()}}
    total = results["training"]["steps"]
    results["runs"] = {name: run_tables(variant, run_dir / name, names, progress)
                       for name, (variant, names) in planned_runs(cfg, total, parts).items()}
    results["ablation_share"] = ABLATION_SHARE
    credits = [s.spec.credit for s in trained.values()]
    record = provenance(cfg, data, results, main_dir)
    record.update({"data_credit": credits, "terms": "non-commercial research use: the model inherits the terms of "
                   "every data set it was trained on (see data_credit)", "vocabulary": list(vocabulary.names)})
    save_bundle(make_bundle(model, data, head, record, list(vocabulary.names)), out)
    out.with_suffix(".report.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    out.with_suffix(".report.md").write_text(format_report(results, out.name, credits))
    plot_loss(main_dir, out.parent / f"{out.stem}_plots" / "loss.png")
    return results


def format_report(results: dict, title: str, credits: list[str]) -> str:
    """The Markdown report: per-data-set tables, transfer, heterogeneity, ablations, seeds, deployed head."""
    from .protocols import ENCODER, baseline_of, format_tables

    def pct(v: float) -> str:
        return f"{100 * v:.1f}"

    def linear(tables: dict, name: str) -> float:
        return tables[name].get("standard", {}).get(ENCODER, {}).get("linear", float("nan"))

    training = results["training"]
    lines = [f"# hetskel_ros model report: {title}", "",
             f"Pretrained without labels on the training splits of: "
             f"{', '.join(training.get('train_sequences_per_set', {}))} ({training['steps']} steps, "
             f"{training['seconds'] / 60:.1f} min).", "",
             "## Each data set on its standard protocol (frozen features; the raw-joint baselines use the same "
             "windows, normalisation and classifiers)", "", format_tables(results["datasets"]), ""]
    runs = results.get("runs", {})
    lodo = {k.removeprefix("without_"): v for k, v in runs.items() if k.startswith("without_")}
    if lodo:
        lines += ["## Leave one data set out: pretrained on the other three, probed on this one", "",
                  "| left out | protocol | encoder linear | best raw linear | union encoder linear |",
                  "|---|---|---|---|---|"]
        for name, run in lodo.items():
            s = run["tables"][name].get("standard")
            if s:
                union = linear(results["datasets"], name)
                lines.append(f"| {name} | {run['tables'][name]['protocol']} | **{pct(s[ENCODER]['linear'])}** | "
                             f"{pct(baseline_of({k: v['linear'] for k, v in s.items()}))} | {pct(union)} |")
            loo = run["tables"][name].get("leave_one_out")
            if loo:
                lines.append(f"| {name} | leave-one-out mean | **{pct(loo['mean'][ENCODER])}** | "
                             f"{pct(baseline_of(loo['mean']))} | |")
        lines.append("")
    for prefix, title, column in (
            ("only_", "Heterogeneity: one data set alone against the union, at equal optimiser steps", "alone"),
            ("supervised_", "Supervised from scratch (the same encoder and steps, one set's labels; linear probe on "
             "its features) against the self-supervised union encoder", "supervised")):
        chosen = {k.removeprefix(prefix): v for k, v in runs.items() if k.startswith(prefix)}
        if chosen:
            lines += [f"## {title}", "", f"| data set | {column} | union |", "|---|---|---|"]
            lines += [f"| {n} | {pct(linear(run['tables'], n))} | {pct(linear(results['datasets'], n))} |"
                      for n, run in chosen.items()]
            lines.append("")
    other = {k: v for k, v in runs.items() if k.startswith(("ablation_", "seed_"))}
    if other:
        lines += [f"## Ablations (at {results['ablation_share']:.0%} of the steps) and seeds: encoder linear top-1", "",
                  "| run | " + " | ".join(results["datasets"]) + " |", "|---|" + "---|" * len(results["datasets"])]
        for name, run in other.items():
            cells = [pct(linear(run["tables"], n)) for n in results["datasets"]]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    head = results["deployed_head"]
    lines += [f"## Deployed head: {head['classes']} actions (config/actions.yaml), scored as the node labels", "",
              "| test split | node label right (argmax, last window) | right and above threshold |", "|---|---|---|"]
    for name, row in head.items():
        if isinstance(row, dict) and "top1_last_window" in row:
            lines.append(f"| {name} | {pct(row['top1_last_window'])} | {pct(row['labelled_correctly'])} |")
    robots = head.get("robot_views") or {}
    if robots.get("robots"):
        lines += ["", f"The head also learnt from {robots['clips']} robot views of the mocap's training clips "
                      f"({', '.join(robots['robots'])}; training/union.py robot_views)."]
    lines += ["", "## Data credits (non-commercial research use; the model inherits these terms)", "",
              *(f"- {c}" for c in credits), ""]
    return "\n".join(lines)
