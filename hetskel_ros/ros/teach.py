"""``hetskel-teach``: new actions from a labelled recording, as a new bundle with the same encoder.

    hetskel-teach recording_bag --labels labels.csv --add --out taught.hetskel        # extend the vocabulary
    hetskel-teach recording_bag --replace --out gestures.hetskel                      # labels from the bag's marks
    hetskel-teach sequences.npz --per-class 5 --replace --out five_shot.hetskel       # a sequence set
    ros2 param set /recognizer model taught.hetskel                                   # into the running node

A bag (rosbag2, sqlite3 or mcap) of any input the node reads is turned into people's unified frames by the node's own
adapters and parameter file (``--config``, default config/recognize.yaml; ``--input`` picks one of its inputs, by
default the one whose topic the bag has). Labels are ``track_id,start_s,end_s,label`` CSV rows (seconds from the
bag's start) or, without ``--labels``, the ``hetskel_msgs/msg/Mark`` messages teach_recorder recorded in the bag.
Each segment is cut into the node's windows and encoded through the feature API; the head is fitted and
cross-validated (hetskel_ros.model.fewshot) and written with the refitted calibration (hetskel_ros.runtime.teach).
A label file with an error (unknown track, empty or overlapping segments, a label with one example) stops with the
row named; a segment that gives no window is listed and counted, never dropped silently. Exit status 0 on
success, 1 on a bad input (one line, no traceback).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hetskel_ros.model.bundle import BundleError, load_bundle, save_bundle
from hetskel_ros.model.features import FeatureExtractor
from hetskel_ros.model.fewshot import HEADS
from hetskel_ros.paths import relative
from hetskel_ros.ros.adapters import adapter_class
from hetskel_ros.ros.bagtools.bag_io import NS_PER_S, BagError, bag_metadata, read_bag
from hetskel_ros.ros.bagtools.offline import load_parameters
from hetskel_ros.ros.msg_dict import message_class
from hetskel_ros.ros.teach_recorder import MARK_TYPE
from hetskel_ros.runtime.backends import load_backend
from hetskel_ros.runtime.samples import default_bundle_path
from hetskel_ros.runtime.teach import (
    LabelError,
    LabelRow,
    Track,
    check_rows,
    path_sha256,
    read_label_csv,
    segment_examples,
    sequence_examples,
    taught_bundle,
    teach,
)
from hetskel_ros.topology import observation_topology
from hetskel_ros.topology.sequences import load_sequences


def _stamp(header: Any) -> float:
    return header.stamp.sec + header.stamp.nanosec / NS_PER_S


def read_recording(bag_path: Path, config: Path | None, input_name: str = ""
                   ) -> tuple[dict[int, Track], float, list[Any], Counter, str]:
    """(tracks, the bag's start in seconds, its Mark messages in order, drops by reason, the input's topic):
    the configured input's messages through its adapter, exactly as the node converts them."""
    from rclpy.serialization import deserialize_message

    parameters = load_parameters(config)
    contents = read_bag(bag_path, with_truth=False, every_topic=True)
    topics = {"/" + cfg.topic.lstrip("/"): cfg for cfg in parameters.inputs}
    if input_name:
        chosen = [cfg for cfg in parameters.inputs if cfg.name == input_name]
        if not chosen:
            raise BagError(f"--input {input_name}: the config's inputs are {[c.name for c in parameters.inputs]}")
    else:
        chosen = [cfg for topic, cfg in topics.items() if topic in contents.topics]
    if not chosen or "/" + chosen[0].topic.lstrip("/") not in contents.topics:
        raise BagError(f"{bag_path}: none of the config's input topics {sorted(topics)} is in the bag (it has "
                       f"{sorted(contents.topics)}); pass --config with an input on one of them")
    cfg = chosen[0]
    topic = "/" + cfg.topic.lstrip("/")
    extra = {"transforms": _bag_transforms(contents)} if cfg.kind == "joint_state" else {}
    adapter = adapter_class(cfg.kind)(cfg, None, **extra)
    cls = message_class(adapter.message_type)
    mark_cls = None
    tracks: dict[int, Track] = {}
    marks: list[Any] = []
    drops: Counter = Counter()
    metadata = bag_metadata(bag_path)
    start_ns = int((metadata.get("starting_time") or {}).get("nanoseconds_since_epoch", 0)) or contents.start_ns
    try:
        for message in contents.messages:
            if message.msgtype == MARK_TYPE:
                mark_cls = mark_cls or message_class(MARK_TYPE)
                marks.append(deserialize_message(message.data, mark_cls))
                continue
            if message.topic != topic:
                continue
            try:
                msg = deserialize_message(message.data, cls)
            except Exception:  # damaged bytes: counted, never the end of the run
                drops["undecodable"] += 1
                continue
            observations, rejected = adapter.convert_parts(msg)
            for rejection in rejected:
                drops[rejection.reason] += 1
            batches = [observations]
            if adapter.holding():
                released, late = adapter.release(message.timestamp_ns / NS_PER_S)
                batches += released
                for rejection in late:
                    drops[rejection.reason] += 1
            for obs in (o for batch in batches for o in batch):
                _add(tracks, obs, drops)
        if adapter.holding():  # the end of the recording: whatever still waits for its transform
            released, late = adapter.release(math.inf)
            for rejection in late:
                drops[rejection.reason] += 1
            for obs in (o for batch in released for o in batch):
                _add(tracks, obs, drops)
    finally:
        adapter.close()
    marks.sort(key=lambda m: _stamp(m.header))
    return tracks, start_ns / NS_PER_S, marks, drops, topic


def _bag_transforms(contents: Any) -> Any:
    """Every /tf and /tf_static transform of the bag in one buffer: a robot's base motion, for its JointState."""
    from rclpy.serialization import deserialize_message

    from hetskel_ros.ros.adapters.transforms import TransformBuffer, add_tf_message

    buffer = TransformBuffer(cache_s=1e9)
    for message in contents.messages:
        # a malformed transform is refused: the JointState it was for is dropped, and counted there
        if message.topic in ("/tf", "/tf_static"):
            add_tf_message(buffer, deserialize_message(message.data, message_class(message.msgtype)),
                           static=message.topic == "/tf_static")
    return buffer


def _add(tracks: dict[int, Track], obs: Any, drops: Counter) -> None:
    track = tracks.get(int(obs.track_id))
    if track is None:
        up = obs.up or observation_topology(obs.topology).up
        tracks[int(obs.track_id)] = Track(obs.topology, obs.dims, up, [obs.stamp], [obs.positions], [obs.mask])
        return
    if obs.topology != track.topology or obs.dims != track.dims:
        drops["topology_changed"] += 1
    elif obs.stamp <= track.stamps[-1]:
        drops["stamp_not_increasing"] += 1
    else:
        track.stamps.append(obs.stamp)
        track.positions.append(obs.positions)
        track.mask.append(obs.mask)


def mark_rows(marks: list[Any], start_s: float, tracks: list[int]) -> list[LabelRow]:
    """teach_recorder's marks -> label rows: each start paired with the next stop of the same label and track;
    track 0 means the recording's only person. A stop without a start, or a start never stopped, names the mark."""
    rows: list[LabelRow] = []
    open_marks: dict[tuple[str, int], tuple[int, float]] = {}
    for number, mark in enumerate(marks, start=1):
        track = int(mark.track_id)
        if track == 0:
            if len(tracks) != 1:
                raise LabelError(f"mark {number} ('{mark.label}'): track 0 means the only person, but the recording "
                                 f"has tracks {sorted(tracks)}: mark with a track_id")
            track = tracks[0]
        key, at = (mark.label, track), _stamp(mark.header) - start_s
        if mark.start:
            if key in open_marks:
                raise LabelError(f"mark {number}: '{mark.label}' started again on track {track} before mark "
                                 f"{open_marks[key][0]}'s start was stopped")
            open_marks[key] = (number, at)
        else:
            if key not in open_marks:
                raise LabelError(f"mark {number}: stop of '{mark.label}' on track {track} without a start")
            first, began = open_marks.pop(key)
            rows.append(LabelRow(f"marks {first}-{number}", track, began, at, mark.label))
    if open_marks:
        (label, track), (number, _) = next(iter(open_marks.items()))
        raise LabelError(f"mark {number}: '{label}' on track {track} was started and never stopped")
    if not rows:
        raise LabelError("the recording has no marks (hetskel_msgs/msg/Mark) and no --labels file was given")
    return rows


def run(args: argparse.Namespace) -> int:
    began = time.monotonic()
    if not Path(args.recording).exists():
        raise BagError(f"recording {args.recording} does not exist (a bag directory, .mcap, .db3 or .npz)")
    base_path = Path(args.model) if args.model else default_bundle_path()
    base = load_bundle(base_path)
    parameters = load_parameters(args.config)
    backend = load_backend(base, "onnxruntime", threads=args.threads)
    try:
        extractor = FeatureExtractor.from_bundle(base, backend.infer,
                                                 stride_s=parameters.recognizer.window_stride_s,
                                                 min_fill=parameters.recognizer.min_window_fill)
        recording = Path(args.recording)
        provenance: dict[str, Any] = {"recording": relative(recording), "recording_sha256": path_sha256(recording),
                                      "mode": args.mode, "base_model": relative(base_path),
                                      "base_model_sha256": path_sha256(base_path)}
        unusable: list[str] = []
        if recording.suffix == ".npz":
            data = load_sequences(recording)
            labels = [s for s in args.only.split(",") if s] if args.only else []
            examples = sequence_examples(extractor, data, args.per_class, args.seed, labels)
            provenance.update({"per_class": args.per_class, "seed": args.seed})
        else:
            tracks, start_s, marks, drops, topic = read_recording(recording, args.config, args.input)
            if args.labels:
                rows = read_label_csv(args.labels)
                provenance.update({"labels": relative(Path(args.labels)),
                                   "labels_sha256": path_sha256(args.labels)})
            else:
                rows = mark_rows(marks, start_s, sorted(tracks))
                provenance["labels"] = f"{len(marks)} marks ({MARK_TYPE}) in the recording"
            check_rows(rows, sorted(tracks))
            examples, unusable = segment_examples(extractor, rows, tracks, start_s)
            provenance.update({"input_topic": topic, "segments": len(rows), "dropped_frames": dict(drops)})
            if unusable:
                print(f"{len(unusable)} of {len(rows)} segment(s) unusable (not used):")
                for line in unusable:
                    print(f"  {line}")
        taught = teach(base, examples, args.mode, HEADS if args.head == "auto" else (args.head,), args.keep)
    finally:
        backend.close()
    counts = Counter(e.label for e in examples)
    for kind, result in taught.results.items():
        print(f"{kind:>9}: cross-validated accuracy {result.accuracy:.1%} of {int(result.confusion.sum())} examples "
              f"({result.window_accuracy:.1%} of windows), log-likelihood {result.log_likelihood:.3f}")
    chosen = taught.results[taught.head.info["kind"]]
    print(f"head: {chosen.kind} (one example of each label held out at a time; confusion: rows truth, "
          f"columns predicted)")
    print(chosen.table())
    provenance.update({"head": taught.head.info, "examples": dict(counts), "unusable": unusable,
                       "command": "hetskel-teach " + " ".join(args.argv)})
    out = save_bundle(taught_bundle(base, taught, provenance), args.out)
    new = [n for n in taught.labels if n not in base.label_names]
    print(f"wrote {out}: {len(taught.labels)} labels ({len(new)} new: {', '.join(new) or 'none'}), "
          f"{len(examples)} examples, {sum(len(e.features) for e in examples)} windows, reject distance "
          f"{taught.calibration.reject_distance:.3f}, in {time.monotonic() - began:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = argparse.ArgumentParser(prog="hetskel-teach", description=__doc__.split("\n\n")[0])
    p.add_argument("recording", help="rosbag2 bag (directory, .mcap or .db3) or a sequence-set .npz")
    p.add_argument("--labels", help="CSV rows track_id,start_s,end_s,label (default: the bag's marks)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--add", dest="mode", action="store_const", const="add", help="extend the model's labels")
    mode.add_argument("--replace", dest="mode", action="store_const", const="replace",
                      help="the taught labels only")
    p.add_argument("--out", required=True, type=Path, help="bundle to write")
    p.add_argument("--model", default="", help="bundle whose encoder is taught (default: the shipped model)")
    p.add_argument("--config", type=Path, default=None, help="the node's parameter file (inputs, windows)")
    p.add_argument("--input", default="", help="which of the config's inputs the bag holds (default: by topic)")
    p.add_argument("--head", choices=("auto", *HEADS), default="auto",
                   help="head kind (auto: the better cross-validated one)")
    p.add_argument("--keep", type=float, default=0.95, help="share of taught windows the rejection keeps")
    p.add_argument("--per-class", type=int, default=0, help="npz: examples per label (0: all)")
    p.add_argument("--seed", type=int, default=0, help="npz: the draw of --per-class")
    p.add_argument("--only", default="", help="npz: comma-separated labels to teach (default: all)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    args = p.parse_args(argv)
    args.argv = argv
    try:
        return run(args)
    except (LabelError, BagError, BundleError, ValueError, OSError) as exc:
        print(f"hetskel-teach: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

