"""Write a composed stream as a standard rosbag2 bag, and read bags back for evaluation and replay.

A bag written here holds (topic names are options):

* ``/skeletons``: ``hetskel_msgs/msg/SkeletonArray``, one message per frame at the data's rate (30 Hz for the
  mocap), every person in it with its own ``track_id``; header stamps (capture time) equal the bag's receive
  timestamps, starting at ``start_time`` (default 2025-01-01T00:00:00Z, so stamps look like a real recording).
* ``/ground_truth``: ``hetskel_msgs/msg/ActionArray``, ONE MESSAGE PER FRAME with the same stamp as the frame, one
  ``Action`` per person: ``source`` "ground_truth", ``label`` the action being performed or "idle", ``score`` 1,
  ``window_start`` the start of the current segment (so ``[window_start, header.stamp]`` is the segment so far),
  no hypotheses.
* ``metadata.yaml`` ``custom_data``: ``hetskel_ros.labels`` (JSON list: the action vocabulary),
  ``hetskel_ros.segments`` (JSON: every clip with track, label, start/end seconds from the bag start and the
  source sequence), ``hetskel_ros.topics``, ``hetskel_ros.source`` and ``hetskel_ros.credit``.

rosbags writes the standard rosbag2 layout (metadata.yaml version 9, storage plugin ``mcap`` or ``sqlite3``, the
message definitions and RIHS01 type hashes rosidl computes), so ``ros2 bag info/play`` and rosbag2_py read it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from hetskel_ros.ros.bag_types import bag_message_from_dict, make_typestore, msgtype
from hetskel_ros.ros.bagtools.stream import Stream
from hetskel_ros.runtime.detection_metrics import TrackTruth

NS_PER_S = 1_000_000_000
DEFAULT_START_NS = 1_735_689_600 * NS_PER_S  # 2025-01-01T00:00:00Z
SKELETONS_TOPIC = "/skeletons"
GROUND_TRUTH_TOPIC = "/ground_truth"
GROUND_TRUTH_SOURCE = "ground_truth"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
KEY = "hetskel_ros."
CREDIT_MOCAP = "Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0"


class BagError(ValueError):
    """A bag that cannot be used as asked (missing, no skeleton topic, no ground truth, ...)."""


def _time(ns: int) -> dict[str, int]:
    return {"sec": ns // NS_PER_S, "nanosec": ns % NS_PER_S}


@dataclass(frozen=True)
class BagWriteOptions:
    storage: str = "mcap"
    start_ns: int = DEFAULT_START_NS
    skeletons_topic: str = SKELETONS_TOPIC
    ground_truth_topic: str = GROUND_TRUTH_TOPIC
    frame_id: str = "world"
    image_size: tuple[int, int] = (1920, 1080)  # width, height of 2D skeletons
    source: str = ""  # where the clips came from (recorded in metadata)
    credit: str = ""
    overwrite: bool = False


def frame_stamps_ns(frames: int, fps: float, start_ns: int) -> np.ndarray:
    """Stamps of frames at ``fps`` (integer nanoseconds, no drift)."""
    return start_ns + np.round(np.arange(frames) * (NS_PER_S / fps)).astype(np.int64)


def write_stream_bag(stream: Stream, path: str | Path, options: BagWriteOptions | None = None) -> Path:
    """Write ``stream`` as a rosbag2 bag directory at ``path`` (see module doc); returns the path."""
    options = options or BagWriteOptions()
    if options.storage not in STORAGES:
        raise BagError(f"storage must be one of {list(STORAGES)}, got {options.storage!r}")
    path = Path(path)
    if path.exists():
        if not options.overwrite:
            raise BagError(f"{path} exists (pass overwrite to replace it)")
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    typestore = make_typestore()
    skeleton_type, actions_type = msgtype("SkeletonArray"), msgtype("ActionArray")
    stamps = frame_stamps_ns(stream.num_frames, stream.fps, options.start_ns)
    segment_start = {p.track_id: 0 for p in stream.people}
    width, height = options.image_size if stream.dims == 2 else (0, 0)
    with Writer(path, version=9, storage_plugin=STORAGES[options.storage]) as writer:
        skeletons = writer.add_connection(options.skeletons_topic, skeleton_type, typestore=typestore)
        truth = writer.add_connection(options.ground_truth_topic, actions_type, typestore=typestore)
        for frame, stamp in enumerate(stamps):
            stamp = int(stamp)
            header = {"stamp": _time(stamp), "frame_id": options.frame_id}
            people, actions = [], []
            for person in stream.people:
                label = person.labels[frame]
                if frame and label != person.labels[frame - 1]:
                    segment_start[person.track_id] = frame
                confidence = person.confidence[frame] if person.confidence is not None else None
                people.append({"header": header, "topology": stream.topology, "track_id": person.track_id,
                               "dims": stream.dims, "positions": person.positions[frame].ravel(),
                               "confidence": confidence, "image_width": width, "image_height": height})
                actions.append({"header": header, "track_id": person.track_id, "source": GROUND_TRUTH_SOURCE,
                                "window_start": _time(int(stamps[segment_start[person.track_id]])),
                                "label": label, "score": 1.0})
            msg = bag_message_from_dict(typestore, skeleton_type, {"header": header, "skeletons": people})
            writer.write(skeletons, stamp, typestore.serialize_cdr(msg, skeleton_type))
            msg = bag_message_from_dict(typestore, actions_type, {"header": header, "actions": actions})
            writer.write(truth, stamp, typestore.serialize_cdr(msg, actions_type))
        metadata = {
            "labels": json.dumps(list(stream.label_names)),
            "segments": json.dumps([s.as_dict(stream.fps) for s in stream.segments]),
            "topics": json.dumps({"skeletons": options.skeletons_topic, "ground_truth": options.ground_truth_topic}),
            "source": options.source, "credit": options.credit,
            "stream": json.dumps({"people": len(stream.people), "fps": stream.fps, "frames": stream.num_frames,
                                  "topology": stream.topology}),
        }
        for key, value in metadata.items():
            writer.set_custom_data(KEY + key, value)
    return path


# -- reading -----------------------------------------------------------------------------------------------------
@dataclass
class BagMessage:
    topic: str
    msgtype: str
    timestamp_ns: int  # the bag's receive time stamp
    data: bytes  # CDR, as recorded


@dataclass
class BagContents:
    path: Path
    storage: str
    messages: list[BagMessage]  # every message of the topics asked for, in timestamp order
    topics: dict[str, str]  # topic -> message type (all topics of the bag)
    labels: tuple[str, ...] = ()  # the action vocabulary (metadata), if the bag has one
    truth: dict[int, TrackTruth] = field(default_factory=dict)
    segments: list[dict[str, Any]] = field(default_factory=list)
    custom: dict[str, str] = field(default_factory=dict)

    @property
    def start_ns(self) -> int:
        return self.messages[0].timestamp_ns if self.messages else 0

    @property
    def duration_s(self) -> float:
        return (self.messages[-1].timestamp_ns - self.start_ns) / NS_PER_S if self.messages else 0.0

    def topic_of(self, message_type: str) -> list[str]:
        return [t for t, kind in self.topics.items() if kind == message_type]


def bag_metadata(path: Path) -> dict[str, Any]:
    """rosbag2_bagfile_information of a bag directory's metadata.yaml ({} for a bare .mcap/.db3 file)."""
    metadata = path / "metadata.yaml" if path.is_dir() else None
    if metadata is None or not metadata.is_file():
        return {}
    try:
        data = yaml.safe_load(metadata.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise BagError(f"{metadata}: not valid YAML ({exc})") from exc
    return dict(data.get("rosbag2_bagfile_information") or {})


def ground_truth_topic(topics: dict[str, str], custom: dict[str, str]) -> str | None:
    """The ground-truth topic: the one the metadata names, else /ground_truth when it carries ActionArray."""
    named = json.loads(custom.get(KEY + "topics", "{}")).get("ground_truth")
    for candidate in (named, GROUND_TRUTH_TOPIC):
        if candidate and topics.get(candidate) == msgtype("ActionArray"):
            return candidate
    return None


def read_bag(path: str | Path, topics: list[str] | None = None, *, with_truth: bool = True,
             every_topic: bool = False) -> BagContents:
    """Messages of ``topics`` in order (default: every topic but the ground truth; ``every_topic``: all), plus the
    ground truth per track (``with_truth``)."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several reader errors; all mean the same to the user
        raise BagError(f"{path}: not a readable rosbag2 bag ({exc})") from exc
    try:
        all_topics = {c.topic: c.msgtype for c in reader.connections}
        metadata = bag_metadata(path)
        custom = {str(k): str(v) for k, v in (metadata.get("custom_data") or {}).items()}
        truth_topic = ground_truth_topic(all_topics, custom)
        wanted = list(topics) if topics is not None else [t for t in all_topics if every_topic or t != truth_topic]
        missing = [t for t in wanted if t not in all_topics]
        if missing:
            raise BagError(f"{path}: no topic(s) {missing}; the bag has {sorted(all_topics)}")
        connections = [c for c in reader.connections if c.topic in wanted]
        messages = [BagMessage(c.topic, c.msgtype, int(t), bytes(raw))
                    for c, t, raw in reader.messages(connections=connections)]
        contents = BagContents(path, str(metadata.get("storage_identifier", "")), messages, all_topics, custom=custom)
        contents.labels = tuple(json.loads(custom.get(KEY + "labels", "[]")))
        contents.segments = json.loads(custom.get(KEY + "segments", "[]"))
        if with_truth and truth_topic is not None:
            typestore = make_typestore()
            truth_connections = [c for c in reader.connections if c.topic == truth_topic]
            rows: dict[int, tuple[list[float], list[str]]] = {}
            for c, _, raw in reader.messages(connections=truth_connections):
                msg = typestore.deserialize_cdr(raw, c.msgtype)
                for action in msg.actions:
                    if action.source != GROUND_TRUTH_SOURCE:
                        continue
                    stamps, labels = rows.setdefault(int(action.track_id), ([], []))
                    stamps.append(action.header.stamp.sec + action.header.stamp.nanosec / NS_PER_S)
                    labels.append(str(action.label))
            contents.truth = {track: TrackTruth(np.array(s), labels) for track, (s, labels) in rows.items()}
    finally:
        reader.close()
    return contents
