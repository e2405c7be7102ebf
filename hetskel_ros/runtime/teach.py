"""Teaching new actions without ROS: label rows, their checks, labelled segments -> examples, the taught bundle.

``hetskel-teach`` (hetskel_ros.ros.teach) reads a recording into per-track unified frames with the node's adapters;
everything after that is here: label rows (``track_id,start_s,end_s,label`` CSV, or the marks of teach_recorder)
checked row by row, each segment cut into the node's windows and encoded by the public feature API
(hetskel_ros.model.features), the head fitted and cross-validated (hetskel_ros.model.fewshot), and the new bundle:
the same encoder graph and weights, the taught head beside the graph, the refitted calibration, and provenance.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hetskel_ros.model.bundle import Bundle
from hetskel_ros.model.calibration import CALIBRATION_PART, IDLE, Calibration, bundle_calibration, calibration_bytes
from hetskel_ros.model.features import FeatureExtractor
from hetskel_ros.model.fewshot import HEADS, MIN_EXAMPLES, Example, TaughtHead, teach_head
from hetskel_ros.topology.sequences import SequenceSet

MODES = ("add", "replace")


class LabelError(ValueError):
    """A label file (or the marks of a recording) that cannot be used; the message names the row."""


@dataclass(frozen=True)
class LabelRow:
    where: str  # "labels.csv row 4" or "mark 7": what an error names
    track_id: int
    start: float  # seconds from the recording's start
    end: float
    label: str

    def describe(self) -> str:
        return f"{self.where} (track {self.track_id}, {self.start:.2f}-{self.end:.2f} s, '{self.label}')"


@dataclass
class Track:
    """One person's frames on the unified skeleton, in stamp order (from the node's adapters)."""

    topology: str
    dims: int
    up: str
    stamps: list[float]
    positions: list[np.ndarray]
    mask: list[np.ndarray]


def read_label_csv(path: str | Path) -> list[LabelRow]:
    """``track_id,start_s,end_s,label`` rows (a header line is allowed; ``#`` starts a comment line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"label file {path}: not readable ({exc})") from None
    rows = []
    for number, fields in enumerate(csv.reader(text.splitlines()), start=1):
        if not fields or not "".join(fields).strip() or fields[0].strip().startswith("#"):
            continue
        where = f"{path.name} row {number}"
        if len(fields) != 4:
            raise LabelError(f"{where}: expected 4 fields track_id,start_s,end_s,label, got {len(fields)}: {fields}")
        track, start, end, label = (f.strip() for f in fields)
        if number == 1 and not track.lstrip("-").isdigit():
            continue  # the header
        try:
            rows.append(LabelRow(where, int(track), float(start), float(end), label))
        except ValueError:
            raise LabelError(f"{where}: track_id must be an integer and start_s, end_s numbers, got {fields}") \
                from None
        if not label:
            raise LabelError(f"{where}: the label is empty")
    if not rows:
        raise LabelError(f"label file {path}: no label rows")
    return rows


def check_rows(rows: Sequence[LabelRow], tracks: Sequence[int]) -> None:
    """Errors that make a label file wrong, each naming its row: a track the recording does not have, an empty
    or reversed segment, two segments of one person that overlap, a label with fewer than two examples."""
    known = set(tracks)
    for row in rows:
        if row.track_id not in known:
            raise LabelError(f"{row.describe()}: track {row.track_id} is not in the recording "
                             f"(its tracks: {sorted(known)})")
        if not (np.isfinite(row.start) and np.isfinite(row.end)) or row.end <= row.start:
            raise LabelError(f"{row.describe()}: empty segment (end_s must be after start_s)")
    by_track: dict[int, list[LabelRow]] = {}
    for row in rows:
        by_track.setdefault(row.track_id, []).append(row)
    for track_rows in by_track.values():
        ordered = sorted(track_rows, key=lambda r: r.start)
        for a, b in itertools.pairwise(ordered):
            if b.start < a.end:
                raise LabelError(f"{b.describe()} overlaps {a.describe()}: one person does one action at a time")
    check_counts(rows)


def check_counts(rows: Sequence[LabelRow | Example], what: str = "example") -> None:
    """A label needs MIN_EXAMPLES examples: cross-validation (and any head) needs more than one."""
    counts = Counter(r.label for r in rows)
    for label, count in counts.items():
        if count < MIN_EXAMPLES:
            row = next(r for r in rows if r.label == label)
            name = row.describe() if isinstance(row, LabelRow) else row.name
            raise LabelError(f"{name}: label '{label}' has {count} {what}; at least {MIN_EXAMPLES} are needed "
                             f"(3-5 recommended)")


def segment_examples(extractor: FeatureExtractor, rows: Sequence[LabelRow], tracks: dict[int, Track], t0: float
                     ) -> tuple[list[Example], list[str]]:
    """Each row's frames (stamps ``t0 + start`` to ``t0 + end``) cut into the node's windows and encoded; rows that
    give no window (fewer than 2 frames of the person in the segment) are returned as unusable, with why."""
    examples: list[Example] = []
    unusable: list[str] = []
    pending: list[tuple[LabelRow, list[dict]]] = []
    for row in rows:
        track = tracks[row.track_id]
        stamps = np.asarray(track.stamps)
        inside = (stamps >= t0 + row.start - 1e-6) & (stamps <= t0 + row.end + 1e-6)
        if inside.sum() < 2:
            unusable.append(f"{row.describe()}: {int(inside.sum())} frame(s) of track {row.track_id} in it "
                            f"(the recording has the person from {stamps[0] - t0:.2f} to {stamps[-1] - t0:.2f} s)")
            continue
        index = np.flatnonzero(inside)
        rows_, _ = extractor.unified_window_rows(stamps[index], np.stack([track.positions[i] for i in index]),
                                                 np.stack([track.mask[i] for i in index]), track.up,
                                                 extractor.prompt(track.topology, track.dims))
        pending.append((row, rows_))
    if pending:
        features, _ = extractor.encode([r for _, rs in pending for r in rs])
        at = 0
        for row, rows_ in pending:
            examples.append(Example(row.label, row.describe(), features[at:at + len(rows_)]))
            at += len(rows_)
    return examples, unusable


def sequence_examples(extractor: FeatureExtractor, data: SequenceSet, per_class: int = 0, seed: int = 0,
                      labels: Sequence[str] = ()) -> list[Example]:
    """One example per sequence of a sequence set (``per_class``: at most that many per label, drawn at ``seed``;
    ``labels``: only these)."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for k, name in enumerate(data.label_names):
        if labels and name not in labels:
            continue
        members = np.flatnonzero(np.asarray(data.labels) == k)
        if per_class:
            members = np.sort(rng.permutation(members)[:per_class])
        chosen += [int(i) for i in members]
    windows = extractor.sequence_set_features(data, chosen, per_window=True)
    return [Example(data.label_names[int(data.labels[i])], f"sequence {i} ({data.names[i]})", w.features)
            for i, w in zip(chosen, windows, strict=True)]


def vocabulary(base: Sequence[str], examples: Sequence[Example], mode: str) -> list[str]:
    """``add``: the bundle's labels, then each new one in order of appearance; ``replace``: the taught ones only."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    taught = list(dict.fromkeys(e.label for e in examples))
    if mode == "replace":
        return taught
    return list(base) + [label for label in taught if label not in base]


def teach(base: Bundle, examples: Sequence[Example], mode: str, kinds: Sequence[str] = HEADS, keep: float = 0.95
          ) -> TaughtHead:
    """Fit and cross-validate the head over the new vocabulary, and the calibration (see fewshot.teach_head).
    ``replace`` keeps only the bundle's idle class of its calibration; ``add`` keeps its per-class statistics."""
    check_counts(examples)
    labels = vocabulary(base.label_names, examples, mode)
    calibration = bundle_calibration(base)
    if calibration is not None and mode == "replace":
        idle = {IDLE: calibration.stats[IDLE]} if calibration.has_idle else {}
        calibration = Calibration([], idle, float("inf"), calibration.keep) if idle else None
    return teach_head(examples, labels, calibration, kinds, keep)


def path_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a directory (a rosbag2 bag) as its files' relative names and contents in order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def taught_bundle(base: Bundle, taught: TaughtHead, provenance: dict) -> Bundle:
    """The new bundle: the base's encoder (graph bytes and weights unchanged, so engines stay valid), the taught
    head and labels, the refitted calibration, and provenance (the base's, with this teaching added)."""
    parts = dict(base.parts)
    parts[CALIBRATION_PART] = calibration_bytes(taught.calibration)
    history = list(base.provenance.get("taught_before", []))
    if "taught" in base.provenance:
        history.append(base.provenance["taught"])
    record = {**provenance, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return Bundle(config=base.config, unified_joints=list(base.unified_joints), label_names=list(taught.labels),
                  normalization=dict(base.normalization),
                  provenance={**{k: v for k, v in base.provenance.items() if k != "taught"}, "taught": record,
                              **({"taught_before": history} if history else {})},
                  weights=base.weights, onnx=base.onnx, head=taught.head, parts=parts)
