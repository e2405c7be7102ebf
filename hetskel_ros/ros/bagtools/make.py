"""``hetskel-bag make``: a labelled, untrimmed multi-person bag from a sequence-set npz.

Sources: the mocap npz format of hetskel_ros.topology.sequences (the shipped data/bandai_sample.npz, the full
Bandai Namco set, or anything ``write_sequences`` wrote, e.g. NTU or PYSKL data converted with training.formats).
An optional ``confidence`` key (frames x joints, aligned with ``positions``) becomes Skeleton.confidence; for a 2D
topology the first two coordinates are used (write 2D data with a zero third coordinate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from hetskel_ros.paths import config_dir
from hetskel_ros.ros.bagtools.bag_io import CREDIT_MOCAP, BagWriteOptions, write_stream_bag
from hetskel_ros.ros.bagtools.stream import Stream, StreamOptions, compose_stream
from hetskel_ros.topology import TopologyError, load_topology
from hetskel_ros.topology.sequences import SequenceSet, load_sequences


@dataclass(frozen=True)
class Selection:
    """Which clips of the source go into the stream (filters apply in this order; file order is kept)."""

    style: str = ""  # only this style (mocap styles; subjects for NTU)
    labels: tuple[str, ...] = ()  # only these actions
    per_label: int = 0  # at most this many clips per action (0: all)
    limit: int = 0  # at most this many clips in all (0: all)
    group: str = ""  # a grouping of the file ("view", "subject", ...) to filter by, with ...
    values: tuple[str, ...] = ()  # ... the values kept (a set's held-out side, e.g. view v03)
    shared_names: str = ""  # a data set of config/actions.yaml: its labels renamed to the shared vocabulary
    idle_style: str = ""  # idle gaps borrow the standing phases of this style's clips, not the selected clips'
    # (the mocap's held-out style has none; a style whose standing phases no idle fit reads keeps the test fair)


def shared_label_names(dataset: str, label_names: tuple[str, ...], path: Path | None = None) -> tuple[str, ...]:
    """A data set's labels under the shared names of config/actions.yaml (the names a multi-set model's head uses,
    e.g. NW-UCLA's walk-around is walk); labels not mapped keep their own name."""
    path = path or config_dir() / "actions.yaml"
    sets = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("datasets") or {}
    if dataset not in sets:
        raise TopologyError(f"{path}: no data set '{dataset}' (has: {', '.join(sets)})")
    mapping = sets[dataset] or {}
    return tuple(str(mapping.get(label, label)) for label in label_names)


def load_confidence(path: Path, data: SequenceSet) -> list[np.ndarray] | None:
    """Per-clip (T, N) confidence from the npz's optional ``confidence`` key."""
    with np.load(path, allow_pickle=False) as archive:
        if "confidence" not in archive.files:
            return None
        flat = archive["confidence"].astype(np.float32)
    frames = data.num_frames
    if flat.shape != (frames, len(data.joints)):
        raise TopologyError(f"{path}: key 'confidence' must be ({frames}, {len(data.joints)}), got {flat.shape}")
    _, offsets = data.stacked()
    return [flat[offsets[i]:offsets[i + 1]] for i in range(len(data))]


def select(data: SequenceSet, selection: Selection, where: Path) -> list[int]:
    chosen = list(range(len(data)))
    if selection.group:
        groups, names = data.group(selection.group)
        missing = [v for v in selection.values if v not in names]
        if missing or not selection.values:
            raise TopologyError(f"{where}: '{selection.group}' has no value(s) {missing or '(none given)'} "
                                f"(has: {', '.join(names)})")
        wanted = {names.index(v) for v in selection.values}
        chosen = [i for i in chosen if int(groups[i]) in wanted]
    if selection.style:
        if selection.style not in data.style_names:
            raise TopologyError(f"{where}: no style '{selection.style}' (styles: {', '.join(data.style_names)})")
        style = data.style_names.index(selection.style)
        chosen = [i for i in chosen if data.styles[i] == style]
    if selection.labels:
        unknown = [label for label in selection.labels if label not in data.label_names]
        if unknown:
            raise TopologyError(f"{where}: no action(s) {unknown} (actions: {', '.join(data.label_names)})")
        wanted = {data.label_names.index(label) for label in selection.labels}
        chosen = [i for i in chosen if data.labels[i] in wanted]
    if selection.per_label:
        counts: dict[int, int] = {}
        kept = []
        for i in chosen:
            label = int(data.labels[i])
            if counts.get(label, 0) < selection.per_label:
                counts[label] = counts.get(label, 0) + 1
                kept.append(i)
        chosen = kept
    if selection.limit:
        chosen = chosen[: selection.limit]
    if not chosen:
        raise TopologyError(f"{where}: the selection {selection} leaves no clips")
    return chosen


def build_stream(source: str | Path, selection: Selection | None = None,
                 options: StreamOptions | None = None) -> Stream:
    source = Path(source)
    data = load_sequences(source)
    topology = load_topology(data.topology)
    selection = selection or Selection()
    indices = select(data, selection, source)
    if selection.shared_names:
        data = replace(data, label_names=shared_label_names(selection.shared_names, tuple(data.label_names)))
    idle_clips = select(data, Selection(style=selection.idle_style), source) if selection.idle_style else None
    return compose_stream(data, topology, options, load_confidence(source, data), indices, idle_clips)


def make_bag(source: str | Path, output: str | Path, selection: Selection | None = None,
             stream_options: StreamOptions | None = None, write_options: BagWriteOptions | None = None) -> Stream:
    """Compose the stream of ``source`` and write it as a bag at ``output``; returns the stream."""
    stream = build_stream(source, selection, stream_options)
    options = write_options or BagWriteOptions()
    if not options.source:
        credit = CREDIT_MOCAP if stream.topology == "bandai_mocap" else options.credit
        options = BagWriteOptions(**{**options.__dict__, "source": Path(source).name, "credit": credit})
    write_stream_bag(stream, output, options)
    return stream


def describe(stream: Stream) -> str:
    actions = sum(s.end - s.start for s in stream.segments)
    total = stream.num_frames * len(stream.people)
    return (f"{len(stream.people)} people, {stream.num_frames} frames "
            f"({stream.duration_s:.1f} s at {stream.fps:g} Hz), "
            f"{len(stream.segments)} clips, {100.0 * actions / max(total, 1):.0f}% of person-frames in an action; "
            f"topology {stream.topology}")


def segments_json(stream: Stream) -> str:
    return json.dumps([s.as_dict(stream.fps) for s in stream.segments], indent=1)
