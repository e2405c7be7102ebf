"""What ``hetskel-bag eval`` writes: metrics.json, summary.md, windows.csv, confusion.png and timeline.png.

Plots use matplotlib's Agg backend (no display needed). The timeline shows, per person, the ground truth above
what the robot would have believed at each moment (the latest window's label), on the bag's time axis.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hetskel_ros.runtime.detection_metrics import (
    BACKGROUND,
    Evaluation,
    Prediction,
    TrackTruth,
    as_class,
    by_track,
    frame_predictions,
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100.0 * value:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _seconds(spread: Mapping[str, Any], key: str) -> str:
    value = spread.get(key) if spread else None
    return "n/a" if value is None else f"{value:.2f} s"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def class_colours(classes: Sequence[str]) -> dict[str, Any]:
    plt = _pyplot()
    palette = plt.get_cmap("tab20").colors
    actions = [c for c in classes if c != BACKGROUND]
    colours = {c: palette[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20] for i, c in enumerate(actions)}
    colours[BACKGROUND] = (0.88, 0.88, 0.88)
    return colours


def plot_confusion(evaluation: Evaluation, path: Path, title: str) -> Path:
    plt = _pyplot()
    frames = evaluation.frames
    matrix = frames.confusion.astype(np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    names = [c if c != BACKGROUND else "idle / unknown" for c in frames.classes]
    size = max(6.0, 0.55 * len(names) + 2.5)
    figure, axes = plt.subplots(figsize=(size, size))
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(len(names)):
        for j in range(len(names)):
            if matrix[i, j]:
                axes.text(j, i, f"{shares[i, j]:.2f}", ha="center", va="center", fontsize=7,
                          color="white" if shares[i, j] > 0.5 else "black")
    axes.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(names)), names, fontsize=8)
    axes.set_xlabel("predicted (latest window of the track at each frame)")
    axes.set_ylabel("ground truth")
    axes.set_title(f"{title}\nframe-level, each row sums to 1 ({frames.frames} frames)", fontsize=10)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_timeline(truth: Mapping[int, TrackTruth], predictions: Sequence[Prediction], classes: Sequence[str],
                  path: Path, title: str, start_s: float) -> Path:
    plt = _pyplot()
    from matplotlib.patches import Patch

    colours = class_colours(classes)
    tracks = by_track(predictions)
    people = sorted(truth)
    figure, axes = plt.subplots(figsize=(14, 1.1 + 1.0 * len(people)))
    ticks, names = [], []
    for row, track_id in enumerate(people):
        track = truth[track_id]
        labels, _ = frame_predictions(track.stamps, tracks.get(track_id, ()))
        period = track.frame_period() or 1.0 / 30.0
        base = (len(people) - 1 - row) * 3.0
        for offset, sequence in ((1.0, track.labels), (0.0, [as_class(label) for label in labels])):
            start = 0
            for k in range(1, len(sequence) + 1):
                if k == len(sequence) or sequence[k] != sequence[start]:
                    t0 = track.stamps[start] - start_s
                    t1 = track.stamps[k - 1] - start_s + period
                    axes.broken_barh([(t0, t1 - t0)], (base + offset + 0.05, 0.9),
                                     facecolors=colours.get(sequence[start], (0.5, 0.5, 0.5)))
                    start = k
        ticks += [base + 1.5, base + 0.5]
        names += [f"person {track_id}: truth", f"person {track_id}: predicted"]
    axes.set_yticks(ticks, names, fontsize=8)
    axes.set_xlabel("time in the bag (s)")
    axes.set_title(title, fontsize=10)
    used = [c for c in classes if c != BACKGROUND]
    handles = [Patch(color=colours[c], label=c) for c in used] + [
        Patch(color=colours[BACKGROUND], label="idle (truth) / unknown or none (predicted)")]
    axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.35 if len(people) < 3 else -0.2),
                ncol=min(6, len(handles)), fontsize=7, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def write_windows_csv(predictions: Sequence[Prediction], path: Path, start_s: float) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["track_id", "source", "window_start_s", "window_end_s", "label", "score"])
        for p in sorted(predictions, key=lambda p: (p.stamp, p.track_id)):
            writer.writerow([p.track_id, p.source, f"{p.window_start - start_s:.4f}", f"{p.stamp - start_s:.4f}",
                             p.label, f"{p.score:.4f}"])
    return path


def markdown_summary(metrics: Mapping[str, Any], files: Mapping[str, str]) -> str:
    """A short Markdown report of one evaluation (what the demo prints at the end)."""
    run = metrics["run"]
    lines = [f"# Bag evaluation: {run['bag']}", "",
             f"- mode: **{run['mode']}**; model `{run['model']}`; backend {run['backend']}",
             f"- bag: {run['people']} people, {run['duration_s']:.1f} s, {metrics['frames']} person-frames "
             f"({metrics['action_frames']} in an action), {metrics['truth_segments']} action segments",
             f"- windows classified: {metrics['windows']}",
             *([f"- damaged messages skipped (unreadable or undecodable): "
                f"{', '.join(f'{t} {n}' for t, n in run['damaged_messages'].items())}"]
               if run.get("damaged_messages") else []), "",
             "| metric | value |", "| --- | --- |",
             f"| frame accuracy (all frames; idle = idle/unknown/none) | {_pct(metrics['frame_accuracy'])} "
             f"(all-idle baseline {_pct(metrics.get('idle_baseline'))}) |",
             f"| frame accuracy (action frames) | {_pct(metrics['action_frame_accuracy'])} |"]
    margins = metrics.get("dont_care")
    if margins:
        lines.append(f"| frame accuracy without frames within {margins['margin_s']:g} s of a change of label "
                     f"(don't care) | {_pct(margins['frame_accuracy'])} (all-idle baseline "
                     f"{_pct(margins['idle_baseline'])}) |")
    events = metrics.get("events") or {}
    if events:
        onset = events["onset_latency_s"]
        unknown = events["unknown_actions"]
        short = events["short_segments"]
        lines += [f"| actions labelled while they happen | {events['labelled']} of {events['segments']} "
                  f"({_pct(events['segment_recall'])}); shorter than {short['shorter_than_s']:g} s: "
                  f"{short['labelled']} of {short['segments']} |",
                  f"| labelled segments right (precision per segment) | {events['right_segments']} of "
                  f"{events['predicted_segments']} ({_pct(events['segment_precision'])}) |",
                  f"| false action segments on idle people | {events['false_segments_on_idle']} in "
                  f"{events['idle_person_minutes']:.1f} idle person-minutes "
                  f"({_num(events['false_on_idle_per_person_minute'])} per person-minute) |",
                  f"| onset latency median / p90 | {_seconds(onset, 'median')} / {_seconds(onset, 'p90')} |"]
        if unknown["frames"]:
            lines.append(f"| actions unknown to the model called idle/unknown | "
                         f"{_pct(unknown['rejection'])} of {unknown['frames']} frames |")
    for threshold, value in metrics["segment_map"].items():
        lines.append(f"| segment mAP @ tIoU {threshold} | {_pct(value)} |")
    latency = metrics.get("latency")
    if latency and latency.get("count"):
        lines.append(f"| latency p50 / p90 / p99 | {latency['p50_ms']:.1f} / {latency['p90_ms']:.1f} / "
                     f"{latency['p99_ms']:.1f} ms ({latency['count']} windows) |")
    comparison = metrics.get("windows_vs_offline")
    if comparison:
        lines.append(f"| windows dropped (vs offline) | {comparison['dropped']} of {comparison['expected']} |")
        lines.append(f"| same label as offline | {comparison['same_label']} of {comparison['matched']} |")
    lines += ["", "| action | segments labelled (recall) | predicted segments right (precision) | onset median "
              "| frame precision | frame recall | AP @ 0.5 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    ap = metrics["segment_ap"].get("0.5", {})
    per_action = events.get("per_action", {})
    for name in [*metrics["precision"], *(n for n in per_action if n not in metrics["precision"])]:
        e = per_action.get(name, {})
        recall = f"{e['labelled']}/{e['segments']} ({_pct(e['recall'])})" if e.get("segments") else "n/a"
        right = (f"{e['right_segments']}/{e['predicted_segments']} ({_pct(e['precision'])})"
                 if e.get("predicted_segments") else "n/a")
        onset = _seconds(e.get("onset_latency_s", {}), "median")
        lines.append(f"| {name} | {recall} | {right} | {onset} | {_pct(metrics['precision'].get(name))} "
                     f"| {_pct(metrics['recall'].get(name))} | {_pct(ap.get(name))} |")
    lines += ["", "The node's own output: its windows, smoothing and labels. Frame level: each ground-truth frame "
              "takes the latest window of its person at or before it. Segments: a ground-truth action is labelled "
              "when a window ending inside it carries its label (onset: from its start to that window); a predicted "
              "segment (a run of one action label) is right when it overlaps the same action of the same person, "
              "else it is one false segment however many messages it spans. AP: paper 002, sec. 4.2.", ""]
    lines += [f"- {name}: `{path}`" for name, path in files.items()]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, evaluation: Evaluation, truth: Mapping[int, TrackTruth],
                 predictions: Sequence[Prediction], run: Mapping[str, Any], start_s: float) -> dict[str, Path]:
    """Every output file of one evaluation; returns name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{run['mode']} evaluation of {Path(str(run['bag'])).name}"
    files = {
        "confusion": plot_confusion(evaluation, out_dir / "confusion.png", title),
        "timeline": plot_timeline(truth, predictions, evaluation.frames.classes, out_dir / "timeline.png", title,
                                  start_s),
        "windows": write_windows_csv(predictions, out_dir / "windows.csv", start_s),
        "metrics": out_dir / "metrics.json",
        "summary": out_dir / "summary.md",
    }
    metrics = {"run": dict(run), **evaluation.to_dict()}
    files["metrics"].write_text(json.dumps(_jsonable(metrics), indent=1), encoding="utf-8")
    files["summary"].write_text(markdown_summary(metrics, {k: str(v) for k, v in files.items()}), encoding="utf-8")
    return files
