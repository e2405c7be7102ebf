"""Readers for the skeleton data sets the paper trains on, so a user holding them can rerun its experiments.

* NTU RGB+D 60/120 raw ``.skeleton`` text files (Kinect v2, 25 joints, metres, 30 fps), one file per sample;
* PYSKL-style pickles (``ntu60_3danno.pkl``: NTU 3D; ``ntu60_hrnet.pkl``: HRNet COCO-17 2D in pixels).

Both become a :class:`ScoredSequenceSet`: the topology package's SequenceSet (native joint order, labels,
styles = subjects) plus the per-joint confidence a sensor or estimator reports. Pass that confidence to
``Topology.to_unified(positions, confidence)``: it is what marks untracked Kinect joints, absent persons and
low-score 2D keypoints as missing (their coordinates are whatever the file holds, often 0).
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from hetskel_ros.topology import load_topology
from hetskel_ros.topology.sequences import SequenceSet

NTU_FPS = 30.0
NTU_JOINTS = 25
NTU_TOPOLOGY = "kinect_v2"
# Per body: bodyID clipedEdges handLeftConfidence handLeftState handRightConfidence handRightState isResticted
# leanX leanY trackingState. Per joint: x y z depthX depthY colorX colorY orientationW/X/Y/Z trackingState.
_BODY_FIELDS = 10
_JOINT_FIELDS = 12
TRACKED, INFERRED, NOT_TRACKED = 2, 1, 0  # Kinect joint trackingState

# NTU denoising (Liu et al., get_raw_denoised_data.py) drops bodies seen in fewer frames than this as noise.
NOISE_LENGTH_FRAMES = 11

# Standard evaluation protocols (Shahroudy et al. 2016; Liu et al. 2019): training subjects / cameras / setups.
NTU60_XSUB_TRAIN_SUBJECTS: tuple[int, ...] = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
NTU60_XVIEW_TRAIN_CAMERAS: tuple[int, ...] = (2, 3)
NTU120_XSUB_TRAIN_SUBJECTS: tuple[int, ...] = (
    *NTU60_XSUB_TRAIN_SUBJECTS,
    *(45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93),
    *(94, 95, 97, 98, 100, 103),
)
# NTU-120 cross-setup: even setup ids train, odd ones test.

# Action classes A001..A120 (label = A - 1); the first 60 are NTU RGB+D 60.
NTU_ACTIONS: tuple[str, ...] = (
    "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup", "throw", "sitting down",
    "standing up (from sitting position)", "clapping", "reading", "writing", "tear up paper", "wear jacket",
    "take off jacket", "wear a shoe", "take off a shoe", "wear on glasses", "take off glasses", "put on a hat/cap",
    "take off a hat/cap", "cheer up", "hand waving", "kicking something", "reach into pocket",
    "hopping (one foot jumping)", "jump up", "make a phone call/answer phone", "playing with phone/tablet",
    "typing on a keyboard", "pointing to something with finger", "taking a selfie", "check time (from watch)",
    "rub two hands together", "nod head/bow", "shake head", "wipe face", "salute", "put the palms together",
    "cross hands in front (say stop)", "sneeze/cough", "staggering", "falling", "touch head (headache)",
    "touch chest (stomachache/heart pain)", "touch back (backache)", "touch neck (neckache)",
    "nausea or vomiting condition", "use a fan (with hand or paper)/feeling warm", "punching/slapping other person",
    "kicking other person", "pushing other person", "pat on back of other person", "point finger at the other person",
    "hugging other person", "giving something to other person", "touch other person's pocket", "handshaking",
    "walking towards each other", "walking apart from each other",
    "put on headphone", "take off headphone", "shoot at the basket", "bounce ball", "tennis bat swing",
    "juggling table tennis balls", "hush (quite)", "flick hair", "thumb up", "thumb down", "make ok sign",
    "make victory sign", "staple book", "counting money", "cutting nails", "cutting paper (using scissors)",
    "snapping fingers", "open bottle", "sniff (smell)", "squat down", "toss a coin", "fold paper", "ball up paper",
    "play magic cube", "apply cream on face", "apply cream on hand back", "put on bag", "take off bag",
    "put something into a bag", "take something out of a bag", "open a box", "move heavy objects", "shake fist",
    "throw up cap/hat", "hands up (both hands)", "cross arms", "arm circles", "arm swings", "running on the spot",
    "butt kicks (kick backward)", "cross toe touch", "side kick", "yawn", "stretch oneself", "blow nose",
    "hit other person with something", "wield knife towards other person", "knock over other person (hit with body)",
    "grab other person's stuff", "shoot at other person with a gun", "step on foot", "high-five", "cheers and drink",
    "carry something with other person", "take a photo of other person", "follow other person",
    "whisper in other person's ear", "exchange things with other person", "support somebody with hand",
    "finger-guessing game (playing rock-paper-scissors)",
)  # fmt: skip

# PYSKL keypoint layout (joints, channels) -> topology; anything else is refused with the file and shape.
PYSKL_TOPOLOGIES: Mapping[tuple[int, int], str] = {(25, 3): "kinect_v2", (17, 2): "coco17"}


class FormatError(ValueError):
    """A data file does not follow its documented format; the message names the file (and line or key)."""


# ------------------------------------------------------------------------------------------------ sequence set


@dataclass
class ScoredSequenceSet(SequenceSet):
    """A SequenceSet (whose ``confidence`` these readers always fill) plus the image size of 2D data.

    confidence: per sequence (T, N) in [0, 1]: Kinect tracked 1.0, inferred 0.5, not tracked / body absent 0;
    2D estimators' keypoint scores as given. image_shapes: per sequence (height, width) of 2D data, else None.
    """

    image_shapes: list[tuple[int, int] | None] | None = None

    def subset(self, indices: Sequence[int] | np.ndarray) -> ScoredSequenceSet:
        base = super().subset(indices)
        return replace(base, image_shapes=None if self.image_shapes is None
                       else [self.image_shapes[int(i)] for i in indices])


# --------------------------------------------------------------------------------------------------- NTU names


class NtuName(NamedTuple):
    """The fields of an NTU sample name SsssCcccPpppRrrrAaaa (setup, camera, performer, replication, action)."""

    setup: int
    camera: int
    subject: int
    replication: int
    action: int

    @property
    def label(self) -> int:
        return self.action - 1


_NTU_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


def parse_ntu_name(name: str) -> NtuName:
    """Fields of an NTU sample name (a file name or PYSKL frame_dir; any suffix such as .skeleton is ignored)."""
    match = _NTU_NAME.search(Path(str(name)).name)
    if match is None:
        raise FormatError(
            f"'{name}' is not an NTU RGB+D sample name (expected SsssCcccPpppRrrrAaaa, e.g. S001C002P003R002A013)"
        )
    parsed = NtuName(*(int(g) for g in match.groups()))
    if not 1 <= parsed.action <= len(NTU_ACTIONS):
        raise FormatError(f"'{name}': action A{parsed.action:03d} is outside A001..A{len(NTU_ACTIONS):03d}")
    return parsed


def _try_parse_ntu_names(names: Iterable[str]) -> list[NtuName] | None:
    try:
        return [parse_ntu_name(n) for n in names]
    except FormatError:
        return None


def ntu_split(names: Sequence[str], protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices of NTU samples under a standard protocol: xsub60, xview60, xsub120 or xset120."""
    parsed = [parse_ntu_name(n) for n in names]
    rules = {
        "xsub60": lambda p: p.subject in NTU60_XSUB_TRAIN_SUBJECTS,
        "xview60": lambda p: p.camera in NTU60_XVIEW_TRAIN_CAMERAS,
        "xsub120": lambda p: p.subject in NTU120_XSUB_TRAIN_SUBJECTS,
        "xset120": lambda p: p.setup % 2 == 0,
    }
    if protocol not in rules:
        raise ValueError(f"unknown NTU protocol '{protocol}' (use one of {', '.join(rules)})")
    is_train = np.array([rules[protocol](p) for p in parsed], dtype=bool)
    return np.flatnonzero(is_train), np.flatnonzero(~is_train)


def _ntu_label_names(max_label: int) -> tuple[str, ...]:
    return NTU_ACTIONS[:60] if max_label < 60 else NTU_ACTIONS


def _subject_styles(parsed: Sequence[NtuName]) -> tuple[np.ndarray, tuple[str, ...]]:
    subjects = sorted({p.subject for p in parsed})
    index = {s: i for i, s in enumerate(subjects)}
    return np.array([index[p.subject] for p in parsed], dtype=np.int64), tuple(f"P{s:03d}" for s in subjects)


# -------------------------------------------------------------------------------------------- NTU .skeleton files


@dataclass
class NtuBody:
    """One tracked body of an NTU sample, aligned to the file's frames.

    positions (T, 25, 3) float32 camera-space metres, NaN in frames where the body is absent;
    tracking (T, 25) int8 Kinect trackingState (2 tracked, 1 inferred, 0 not tracked or absent);
    present (T,) bool; motion: summed per-joint variance over the frames present (NTU's denoising measure).
    """

    body_id: str
    positions: np.ndarray
    tracking: np.ndarray
    present: np.ndarray
    motion: float

    @property
    def num_frames(self) -> int:
        return int(self.present.sum())

    @property
    def confidence(self) -> np.ndarray:
        """(T, 25) float32: tracked 1.0, inferred 0.5, not tracked or absent 0.0."""
        return (self.tracking.astype(np.float32) / TRACKED).astype(np.float32)


class _Lines:
    """Line cursor over a text file whose errors name the file and the 1-based line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.lines = path.read_text(encoding="ascii", errors="strict").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise FormatError(f"{path}: cannot read as an NTU .skeleton text file ({exc})") from exc
        self.next = 0

    def error(self, message: str, line: int | None = None) -> FormatError:
        return FormatError(f"{self.path}, line {(self.next if line is None else line) + 1}: {message}")

    def take(self, what: str) -> str:
        if self.next >= len(self.lines):
            raise FormatError(
                f"{self.path}: file ends early (truncated?) after line {len(self.lines)}, expected {what}"
            )
        self.next += 1
        return self.lines[self.next - 1]

    def integer(self, what: str) -> int:
        text = self.take(what).strip()
        try:
            value = int(text)
        except ValueError:
            raise self.error(f"expected {what} (an integer), got '{text[:60]}'", self.next - 1) from None
        if value < 0:
            raise self.error(f"{what} must not be negative, got {value}", self.next - 1)
        return value

    def block(self, rows: int, columns: int, what: str) -> np.ndarray:
        start = self.next
        if start + rows > len(self.lines):
            raise FormatError(
                f"{self.path}: file ends early (truncated?): {what} needs {rows} lines from line {start + 1}, "
                f"only {len(self.lines) - start} remain"
            )
        self.next += rows
        values = [line.split() for line in self.lines[start : start + rows]]
        for offset, row in enumerate(values):
            if len(row) != columns:
                raise self.error(f"{what}: expected {columns} values, got {len(row)}", start + offset)
        try:
            return np.array(values, dtype=np.float64)
        except ValueError:
            raise self.error(f"{what}: non-numeric value", start) from None


def read_ntu_skeleton(path: str | Path, *, max_bodies: int | None = None) -> list[NtuBody]:
    """Parse one NTU RGB+D ``.skeleton`` file into its bodies, main actor first.

    Bodies are followed across frames by bodyID. Main actor, as NTU tooling picks it: bodies seen in at least
    NOISE_LENGTH_FRAMES frames (or, if none is, the longest) before the rest, then most motion, then most frames.
    An empty list means the file holds no skeleton at all (NTU ships a few hundred such samples).
    """
    path = Path(path)
    cursor = _Lines(path)
    num_frames = cursor.integer("the frame count")
    records: dict[str, list[tuple[int, np.ndarray]]] = {}
    for frame in range(num_frames):
        num_bodies = cursor.integer(f"the body count of frame {frame + 1}")
        for body in range(num_bodies):
            where = f"frame {frame + 1}, body {body + 1}"
            info = cursor.take(f"the body info line of {where}").split()
            if len(info) != _BODY_FIELDS:
                raise cursor.error(
                    f"body info line of {where}: expected {_BODY_FIELDS} values, got {len(info)}", cursor.next - 1
                )
            num_joints = cursor.integer(f"the joint count of {where}")
            if num_joints != NTU_JOINTS:
                raise cursor.error(
                    f"{where} has {num_joints} joints; Kinect v2 / NTU bodies have {NTU_JOINTS}", cursor.next - 1
                )
            joints = cursor.block(num_joints, _JOINT_FIELDS, f"joints of {where}")
            body_id = info[0]
            if records.get(body_id) and records[body_id][-1][0] == frame:
                body_id = f"{body_id}#{body}"  # duplicate id within one frame: keep both bodies apart
            records.setdefault(body_id, []).append((frame, joints))
    trailing = [i for i in range(cursor.next, len(cursor.lines)) if cursor.lines[i].strip()]
    if trailing:
        raise cursor.error(f"unexpected content after the {num_frames} frames the file declares", trailing[0])

    bodies = []
    for body_id, entries in records.items():
        positions = np.full((num_frames, NTU_JOINTS, 3), np.nan, dtype=np.float32)
        tracking = np.zeros((num_frames, NTU_JOINTS), dtype=np.int8)
        present = np.zeros(num_frames, dtype=bool)
        for frame, joints in entries:
            positions[frame] = joints[:, :3]
            tracking[frame] = np.clip(joints[:, 11], NOT_TRACKED, TRACKED).astype(np.int8)
            present[frame] = True
        seen = positions[present].astype(np.float64)
        motion = float(np.sum(np.var(seen, axis=0))) if len(seen) > 1 else 0.0
        bodies.append(NtuBody(body_id, positions, tracking, present, motion))
    if bodies:
        long_enough = min(NOISE_LENGTH_FRAMES, max(b.num_frames for b in bodies))
        bodies.sort(key=lambda b: (b.num_frames >= long_enough, b.motion, b.num_frames), reverse=True)
    return bodies[:max_bodies] if max_bodies is not None else bodies


def load_ntu_directory(directory: str | Path, max_files: int | None = None) -> ScoredSequenceSet:
    """Every ``*.skeleton`` file under ``directory`` (sorted by name): the main actor of each, as Kinect v2 data.

    Each sequence spans the main actor's first to last tracked frame; label = action A - 1 from the file name,
    style = the performer (subject), for cross-subject splits (see :func:`ntu_split`). Files without any body
    are skipped with a warning, as NTU's list of samples with missing skeletons prescribes.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FormatError(f"{directory}: not a directory of NTU .skeleton files")
    paths = sorted(directory.rglob("*.skeleton"), key=lambda p: p.name)
    if not paths:
        raise FormatError(f"{directory}: contains no *.skeleton files")
    if max_files is not None:
        paths = paths[:max_files]
    sequences, confidence, parsed, names, empty = [], [], [], [], []
    for path in paths:
        name = parse_ntu_name(str(path))  # before parsing: a misnamed file is refused without reading it
        bodies = read_ntu_skeleton(path, max_bodies=1)
        if not bodies:
            empty.append(path.name)
            continue
        main = bodies[0]
        frames = np.flatnonzero(main.present)
        span = slice(frames[0], frames[-1] + 1)
        sequences.append(main.positions[span])
        confidence.append(main.confidence[span])
        parsed.append(name)
        names.append(path.stem)
    if empty:
        warnings.warn(
            f"{directory}: skipped {len(empty)} file(s) with no skeleton: {', '.join(empty[:10])}"
            + (" ..." if len(empty) > 10 else ""),
            stacklevel=2,
        )
    if not sequences:
        raise FormatError(f"{directory}: none of the {len(paths)} .skeleton files holds a skeleton")
    labels = np.array([p.label for p in parsed], dtype=np.int64)
    styles, style_names = _subject_styles(parsed)
    return ScoredSequenceSet(
        sequences=sequences,
        labels=labels,
        label_names=_ntu_label_names(int(labels.max())),
        styles=styles,
        style_names=style_names,
        names=tuple(names),
        fps=NTU_FPS,
        joints=load_topology(NTU_TOPOLOGY).joints,
        topology=NTU_TOPOLOGY,
        confidence=confidence,
        image_shapes=[None] * len(sequences),
    )


# ------------------------------------------------------------------------------------------------ PYSKL pickles


def _require(entry: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in entry:
        raise FormatError(f"{where}: missing key '{key}' (has {', '.join(map(str, entry))})")
    return entry[key]


def load_pyskl(
    path: str | Path,
    split: str | None = None,
    *,
    label_names: Sequence[str] | None = None,
    fps: float = NTU_FPS,
) -> ScoredSequenceSet:
    """Read a PYSKL annotation pickle (``split`` and ``annotations``), person 0 of each sample.

    Topology from the keypoint shape (V, C): (25, 3) Kinect v2 metres, (17, 2) COCO-17 pixels (HRNet), as
    PYSKL_TOPOLOGIES lists. ``keypoint_score`` becomes the confidence; without it, a frame whose joints are all
    exactly 0 (PYSKL's padding for an absent person) gets confidence 0 and the rest 1. With ``split`` (e.g.
    "xsub_train") only that split's samples are read. Label names default to NTU's when the samples carry NTU
    names, else class_<i>.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = pickle.load(handle)  # only unpickle files you trust: pickle runs code
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
        raise FormatError(f"{path}: cannot read as a PYSKL pickle ({exc})") from exc
    if not isinstance(data, Mapping):
        raise FormatError(f"{path}: expected a dict with 'split' and 'annotations', got {type(data).__name__}")
    annotations = _require(data, "annotations", str(path))
    if not isinstance(annotations, list) or not annotations:
        raise FormatError(f"{path}: 'annotations' must be a non-empty list of dicts")

    if split is not None:
        splits = data.get("split")
        if not isinstance(splits, Mapping) or split not in splits:
            available = ", ".join(map(str, splits)) if isinstance(splits, Mapping) else "none"
            raise FormatError(f"{path}: no split '{split}' (splits: {available})")
        wanted = {str(name) for name in splits[split]}
        annotations = [a for a in annotations if isinstance(a, Mapping) and str(a.get("frame_dir")) in wanted]
        if not annotations:
            raise FormatError(f"{path}: split '{split}' lists {len(wanted)} samples, none of them in 'annotations'")

    layout: tuple[int, int] | None = None
    sequences, confidence, labels, names, shapes = [], [], [], [], []
    for number, entry in enumerate(annotations):
        if not isinstance(entry, Mapping):
            raise FormatError(f"{path}: annotations[{number}] is a {type(entry).__name__}, not a dict")
        name = str(_require(entry, "frame_dir", f"{path}: annotations[{number}]"))
        where = f"{path}: sample '{name}'"
        keypoint = np.asarray(_require(entry, "keypoint", where), dtype=np.float32)
        if keypoint.ndim != 4 or keypoint.shape[0] < 1:
            raise FormatError(f"{where}: 'keypoint' must be (persons, frames, joints, channels), got {keypoint.shape}")
        sample_layout = (int(keypoint.shape[2]), int(keypoint.shape[3]))
        if layout is None:
            if sample_layout not in PYSKL_TOPOLOGIES:
                known = ", ".join(f"{v}x{c} ({t})" for (v, c), t in PYSKL_TOPOLOGIES.items())
                raise FormatError(
                    f"{where}: keypoints of {sample_layout[0]} joints x {sample_layout[1]} channels "
                    f"(shape {keypoint.shape}) match no known topology (known: {known})"
                )
            layout = sample_layout
        elif sample_layout != layout:
            raise FormatError(
                f"{where}: keypoints are {sample_layout[0]}x{sample_layout[1]} but earlier samples "
                f"are {layout[0]}x{layout[1]}; one file must hold one topology"
            )
        frames = int(entry.get("total_frames", keypoint.shape[1]))
        if not 0 < frames <= keypoint.shape[1]:
            raise FormatError(f"{where}: total_frames={frames} but 'keypoint' holds {keypoint.shape[1]} frames")
        person = keypoint[0, :frames]
        if "keypoint_score" in entry:
            score = np.asarray(entry["keypoint_score"], dtype=np.float32)
            if score.shape[:1] != keypoint.shape[:1] or score.shape[1:] != keypoint.shape[1:3]:
                raise FormatError(
                    f"{where}: 'keypoint_score' {score.shape} does not match 'keypoint' "
                    f"{keypoint.shape} (expected {keypoint.shape[:3]})"
                )
            person_confidence = np.clip(score[0, :frames], 0.0, 1.0)
        else:
            absent = np.all(person == 0, axis=(1, 2))
            person_confidence = np.repeat(np.where(absent, 0.0, 1.0)[:, None], layout[0], axis=1).astype(np.float32)
        label = _require(entry, "label", where)
        try:
            label = int(label)
        except (TypeError, ValueError):
            raise FormatError(f"{where}: 'label' must be an integer class index, got {label!r}") from None
        if label < 0:
            raise FormatError(f"{where}: 'label' must not be negative, got {label}")
        image_shape = entry.get("img_shape")
        sequences.append(np.ascontiguousarray(person))
        confidence.append(np.ascontiguousarray(person_confidence, dtype=np.float32))
        labels.append(label)
        names.append(name)
        shapes.append((int(image_shape[0]), int(image_shape[1])) if image_shape is not None else None)

    assert layout is not None
    topology = PYSKL_TOPOLOGIES[layout]
    label_array = np.array(labels, dtype=np.int64)
    parsed = _try_parse_ntu_names(names)
    if label_names is None:
        label_names = (
            _ntu_label_names(int(label_array.max()))
            if parsed is not None
            else tuple(f"class_{i}" for i in range(int(label_array.max()) + 1))
        )
    elif int(label_array.max()) >= len(label_names):
        raise FormatError(f"{path}: label {int(label_array.max())} has no name ({len(label_names)} names given)")
    if parsed is not None:
        styles, style_names = _subject_styles(parsed)
    else:
        styles, style_names = np.zeros(len(names), dtype=np.int64), ("unknown",)
    return ScoredSequenceSet(
        sequences=sequences,
        labels=label_array,
        label_names=tuple(label_names),
        styles=styles,
        style_names=style_names,
        names=tuple(names),
        fps=float(fps),
        joints=load_topology(topology).joints,
        topology=topology,
        confidence=confidence,
        image_shapes=shapes,
    )
