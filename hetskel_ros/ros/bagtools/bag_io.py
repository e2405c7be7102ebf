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

Reading a damaged bag: messages that cannot be read (a garbled mcap chunk, a damaged page of an sqlite3 file) or
decoded (random bytes in a message) are skipped and counted per topic (``BagContents.unreadable``: the bag's own
message counts minus what could be used), so one bad message never aborts an evaluation. A BagError says so only
when nothing of the bag can be read.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import struct
import tempfile
from collections import Counter
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
    unreadable: dict[str, int] = field(default_factory=dict)  # topic -> messages that could not be read or decoded

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
    ground truth per track (``with_truth``). Damaged messages are skipped and counted (see the module doc)."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    metadata = bag_metadata(path)
    all_topics, raw, expected = _read_all(path, metadata)
    custom = {str(k): str(v) for k, v in (metadata.get("custom_data") or {}).items()}
    truth_topic = ground_truth_topic(all_topics, custom)
    wanted = list(topics) if topics is not None else [t for t in all_topics if every_topic or t != truth_topic]
    missing = [t for t in wanted if t not in all_topics]
    if missing:
        raise BagError(f"{path}: no topic(s) {missing}; the bag has {sorted(all_topics)}")
    kept = set(wanted) | ({truth_topic} if with_truth and truth_topic else set())
    raw = [m for m in raw if m.topic in kept]
    typestore = make_typestore()
    decoded = _decodable(raw, typestore)
    used = Counter(m.topic for m, _ in decoded)
    unreadable = {t: expected.get(t, used[t]) - used[t] for t in sorted(kept) if expected.get(t, used[t]) > used[t]}
    if not decoded and sum(expected.get(t, 0) for t in kept):
        raise BagError(f"{path}: none of its {sum(expected.get(t, 0) for t in kept)} message(s) of {sorted(kept)} "
                       f"can be read and decoded")
    messages = [m for m, _ in decoded if m.topic in wanted]
    contents = BagContents(path, str(metadata.get("storage_identifier", "")), messages, all_topics, custom=custom,
                           unreadable=unreadable)
    contents.labels = tuple(json.loads(custom.get(KEY + "labels", "[]")))
    contents.segments = json.loads(custom.get(KEY + "segments", "[]"))
    if with_truth and truth_topic is not None:
        rows: dict[int, tuple[list[float], list[str]]] = {}
        for message, msg in decoded:
            if message.topic != truth_topic:
                continue
            for action in msg.actions:
                if action.source != GROUND_TRUTH_SOURCE:
                    continue
                stamps, labels = rows.setdefault(int(action.track_id), ([], []))
                stamps.append(action.header.stamp.sec + action.header.stamp.nanosec / NS_PER_S)
                labels.append(str(action.label))
        contents.truth = {track: TrackTruth(np.array(s), labels) for track, (s, labels) in rows.items()}
    return contents


MIN_SALVAGE_WINDOW_NS = 10_000_000  # a time window this short that still cannot be read is given up


def _read_all(path: Path, metadata: dict[str, Any]) -> tuple[dict[str, str], list[BagMessage], dict[str, int]]:
    """(topic -> type, every message that can be read in timestamp order, topic -> messages the bag says it has)."""
    try:
        reader = Reader(path)
        reader.open()
    except Exception as exc:  # rosbags raises several reader errors; all mean the same to the user
        salvaged = _salvage_sqlite3(path, metadata) or _scan_mcap(path, metadata)
        if salvaged is None:
            raise BagError(f"{path}: not a readable rosbag2 bag ({exc})") from exc
        return salvaged
    try:
        all_topics = {c.topic: c.msgtype for c in reader.connections}
        expected = Counter({t: n for t, n in _metadata_counts(metadata).items() if t in all_topics})
        if not expected:
            for connection in reader.connections:
                expected[connection.topic] += int(connection.msgcount)
        connections = list(reader.connections)
        try:
            messages = [BagMessage(c.topic, c.msgtype, int(t), bytes(raw))
                        for c, t, raw in reader.messages(connections=connections)]
        except Exception:  # a damaged part: read what can be read around it
            messages = _read_windows(reader, connections, reader.start_time, reader.end_time + 1)
    finally:
        reader.close()
    if not messages and sum(expected.values()):  # e.g. a damaged mcap summary: its index leads nowhere
        return _scan_mcap(path, metadata) or (all_topics, messages, dict(expected))
    return all_topics, messages, dict(expected)


def _read_windows(reader: Reader, connections: list, start: int, stop: int) -> list[BagMessage]:
    """Messages in [start, stop), in 1 s windows; a window that fails is halved until it is too short to matter."""
    def window(a: int, b: int) -> list[BagMessage]:
        try:
            return [BagMessage(c.topic, c.msgtype, int(t), bytes(raw))
                    for c, t, raw in reader.messages(connections=connections, start=a, stop=b)]
        except Exception:
            if b - a <= MIN_SALVAGE_WINDOW_NS:
                return []
            middle = (a + b) // 2
            return window(a, middle) + window(middle, b)

    return [m for a in range(start, stop, NS_PER_S) for m in window(a, min(a + NS_PER_S, stop))]


def _metadata_counts(metadata: dict[str, Any]) -> dict[str, int]:
    """topic -> message_count of metadata.yaml (what the bag held when it was written)."""
    counts: dict[str, int] = {}
    for entry in metadata.get("topics_with_message_count") or []:
        try:
            counts[str(entry["topic_metadata"]["name"])] = int(entry["message_count"])
        except (KeyError, TypeError, ValueError):
            continue
    return counts


def _salvage_sqlite3(path: Path, metadata: dict[str, Any]
                     ) -> tuple[dict[str, str], list[BagMessage], dict[str, int]] | None:
    """The rows of a damaged sqlite3 bag that can still be read, or None when it is no sqlite3 bag or not even its
    topics survive. rosbags opens a file only when all of it is sound; here a copy is cut to whole pages, its
    indexes are dropped (their pages may be the damaged ones) and the messages are read one row at a time."""
    files = sorted(path.glob("*.db3")) if path.is_dir() else [path] if path.suffix == ".db3" else []
    topics: dict[str, str] = {}
    messages: list[BagMessage] = []
    with tempfile.TemporaryDirectory(prefix="hetskel-salvage-") as scratch:
        for number, file in enumerate(files):
            copy = Path(scratch) / f"{number}.db3"
            try:
                found = _salvage_rows(file, copy, sum(_metadata_counts(metadata).values()))
            except (OSError, sqlite3.Error):
                continue
            if found is not None:
                topics.update(found[0])
                messages += found[1]
    if not topics:
        return None
    messages.sort(key=lambda m: m.timestamp_ns)
    return topics, messages, {t: n for t, n in _metadata_counts(metadata).items() if t in topics}


def _salvage_rows(file: Path, copy: Path, rows: int) -> tuple[dict[str, str], list[BagMessage]] | None:
    data = file.read_bytes()
    if not data.startswith(b"SQLite format 3\0") or len(data) < 100:
        return None
    page = int.from_bytes(data[16:18], "big") or 65536  # 1 means 65536
    copy.write_bytes(data[: len(data) // page * page])
    db = sqlite3.connect(copy)
    try:
        db.execute("PRAGMA writable_schema=ON")
        db.execute("DELETE FROM sqlite_master WHERE type = 'index'")
        db.commit()
    except sqlite3.Error:
        pass
    db.close()
    db = sqlite3.connect(copy)
    try:
        names = {int(i): (str(n), str(t)) for i, n, t in db.execute("SELECT id, name, type FROM topics")}
        with contextlib.suppress(sqlite3.Error):
            rows = max(rows, int(db.execute("SELECT max(id) FROM messages").fetchone()[0] or 0))
        messages = []
        for row in range(1, rows + 1):
            try:
                found = db.execute("SELECT topic_id, timestamp, data FROM messages WHERE id = ?", (row,)).fetchone()
            except sqlite3.Error:
                continue
            if found is not None and int(found[0]) in names:
                name, kind = names[int(found[0])]
                messages.append(BagMessage(name, kind, int(found[1]), bytes(found[2])))
    finally:
        db.close()
    return dict(names.values()), messages


MCAP_MAGIC = b"\x89MCAP0\r\n"
MCAP_SCHEMA, MCAP_CHANNEL, MCAP_MESSAGE, MCAP_CHUNK = 0x03, 0x04, 0x05, 0x06


def _scan_mcap(path: Path, metadata: dict[str, Any]
               ) -> tuple[dict[str, str], list[BagMessage], dict[str, int]] | None:
    """Every record of a damaged mcap file read front to back (no footer or index needed: a recording cut short,
    a garbled summary); a chunk that does not decompress is skipped. None when it is no mcap file."""
    files = sorted(path.glob("*.mcap")) if path.is_dir() else [path] if path.suffix == ".mcap" else []
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, int]] = {}
    messages: list[BagMessage] = []
    scanned = False
    for file in files:
        data = file.read_bytes()
        if not data.startswith(MCAP_MAGIC):
            continue
        scanned = True
        _scan_records(data, len(MCAP_MAGIC), schemas, channels, messages, nested=False)
    if not scanned or not messages:
        return None
    topics = {topic: schemas.get(schema, "") for topic, schema in channels.values()}
    messages = [m for m in messages if m.msgtype]
    messages.sort(key=lambda m: m.timestamp_ns)
    return topics, messages, {t: n for t, n in _metadata_counts(metadata).items() if t in topics}


def _scan_records(data: bytes, offset: int, schemas: dict[int, str], channels: dict[int, tuple[str, int]],
                  messages: list[BagMessage], nested: bool) -> None:
    """Schema, channel and message records of ``data`` from ``offset``; chunks are opened (nested) in place."""
    from rosbags.rosbag2.storage_mcap import decompress

    def text(at: int) -> tuple[str, int]:
        (size,) = struct.unpack_from("<I", data, at)
        return data[at + 4: at + 4 + size].decode(), at + 4 + size

    while offset + 9 <= len(data):
        opcode = data[offset]
        (length,) = struct.unpack_from("<Q", data, offset + 1)
        body = offset + 9
        offset = body + length
        if offset > len(data):
            return  # the file ends inside this record
        try:
            if opcode == MCAP_SCHEMA:
                (schema_id,) = struct.unpack_from("<H", data, body)
                schemas[schema_id] = text(body + 2)[0]
            elif opcode == MCAP_CHANNEL:
                channel_id, schema_id = struct.unpack_from("<HH", data, body)
                channels[channel_id] = (text(body + 4)[0], schema_id)
            elif opcode == MCAP_MESSAGE:
                channel_id, _, log_time = struct.unpack_from("<HIQ", data, body)
                topic, schema_id = channels[channel_id]
                messages.append(BagMessage(topic, schemas.get(schema_id, ""), log_time, data[body + 22: offset]))
            elif opcode == MCAP_CHUNK and not nested:
                uncompressed_size, crc = struct.unpack_from("<QI", data, body + 16)
                compression, at = text(body + 28)
                (size,) = struct.unpack_from("<Q", data, at)
                records = decompress(data[at + 8: at + 8 + size], compression, uncompressed_size, crc)
                _scan_records(records, 0, schemas, channels, messages, nested=True)
        except Exception:  # one damaged record or chunk: skip it, keep scanning
            continue


def _decodable(messages: list[BagMessage], typestore: Any) -> list[tuple[BagMessage, Any]]:
    """Each message that deserialises, with its decoded form (rosbags' typestore: the same CDR rclpy reads)."""
    out = []
    known = typestore.fielddefs
    for message in messages:
        if message.msgtype not in known:  # a type this package does not read (tf, images, ...): passed on as is
            out.append((message, None))
            continue
        try:
            out.append((message, typestore.deserialize_cdr(message.data, message.msgtype)))
        except Exception:  # random bytes: SerdeError, struct or index errors, unknown types...
            decoded = _rclpy_decoded(message)
            if decoded is not None:
                out.append((message, decoded))
    return out


def _rclpy_decoded(message: BagMessage) -> Any | None:
    """The message as rclpy reads it, or None. rosbags refuses some CDR that rclpy writes and reads: Fast-CDR pads
    an empty sequence of 8-byte numbers (a JointState without velocity or effort, as recorded by teach_recorder from
    a robot), and rosbags then counts the bytes as a size mismatch."""
    try:
        from rclpy.serialization import deserialize_message

        from hetskel_ros.ros.msg_dict import message_class

        return deserialize_message(message.data, message_class(message.msgtype))
    except Exception:  # really damaged bytes, or a type this Python cannot import
        return None
