"""Skeleton sequence sets in the mocap npz format of ../shared/data/bandai-namco-motion.

One flat ``positions`` array (frames, N, 3) with ``offsets`` delimiting sequences keeps 273k frames in one
contiguous block (fast to load, vectorisable); :class:`SequenceSet` exposes it as a list of (T, N, 3) arrays.
Also here: :func:`default_mocap_path` (full data when present, the shipped sample otherwise) and
:func:`make_sample`, the command that wrote data/bandai_sample.npz.

Data credit: "Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0" (non-commercial).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hetskel_ros.paths import share_dir
from hetskel_ros.topology.errors import TopologyError

MOCAP_ENV = "HETSKEL_MOCAP"
MOCAP_FILE = "dataset2_train_styles.npz"
SAMPLE_FILE = "bandai_sample.npz"
_REQUIRED_KEYS = ("positions", "offsets", "label", "label_names", "style", "style_names", "names", "joints", "fps")


@dataclass
class SequenceSet:
    """Labelled skeleton sequences of one topology (native joint order), 3D or 2D.

    ``confidence`` holds per sequence a (T, N) array in [0, 1] when the file has one: what marks untracked joints
    as missing (``Topology.to_unified(positions, confidence)`` drops joints below 0.05). Its levels: 1 = measured
    (tracked, visible); 0.5 = the sensor's guess (Kinect "inferred", Penn Action "annotated but occluded"): kept as
    a present joint, since the position is still the best estimate of where the joint is; 0 = absent.
    ``groups`` holds every per-sequence grouping the file has (``style``, ``subject``, ``view``, ...): name ->
    (indices, names), the keys a data set's standard protocol splits by.
    """

    sequences: list[np.ndarray]  # each (T, N, C) float32, C = 3 or 2
    labels: np.ndarray  # (S,) int: index into label_names
    label_names: tuple[str, ...]
    styles: np.ndarray  # (S,) int: index into style_names
    style_names: tuple[str, ...]
    names: tuple[str, ...]  # (S,) sequence identifiers
    fps: float
    joints: tuple[str, ...] = ()  # native joint names, in order
    topology: str = "bandai_mocap"
    confidence: list[np.ndarray] | None = None
    groups: dict[str, tuple[np.ndarray, tuple[str, ...]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def num_frames(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    @property
    def dims(self) -> int:
        return int(self.sequences[0].shape[-1]) if self.sequences else 3

    def stacked(self) -> tuple[np.ndarray, np.ndarray]:
        """All frames as one (F, N, C) array and the (S+1,) offsets, for vectorised processing."""
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in self.sequences])]).astype(np.int64)
        if not self.sequences:
            return np.zeros((0, len(self.joints), 3), np.float32), offsets
        return np.concatenate(self.sequences).astype(np.float32, copy=False), offsets

    def group(self, key: str) -> tuple[np.ndarray, tuple[str, ...]]:
        """(per-sequence index, names) of a grouping such as "subject" or "view"; an unknown key names the known."""
        if key == "style":
            return self.styles, self.style_names
        if key not in self.groups:
            raise TopologyError(f"sequence set has no grouping '{key}' (has: style, {', '.join(self.groups)})")
        return self.groups[key]

    def subset(self, indices: Sequence[int] | np.ndarray) -> SequenceSet:
        """The sequences at ``indices`` (in that order), keeping the vocabularies of labels and styles."""
        idx = [int(i) for i in indices]
        return replace(
            self,
            sequences=[self.sequences[i] for i in idx],
            labels=self.labels[idx].copy(),
            styles=self.styles[idx].copy(),
            names=tuple(self.names[i] for i in idx),
            confidence=None if self.confidence is None else [self.confidence[i] for i in idx],
            groups={k: (v[idx].copy(), n) for k, (v, n) in self.groups.items()},
        )


def topology_for_joints(joints: Sequence[str], path: Path) -> str:
    """The one shipped topology whose native joints are exactly ``joints`` (in any order)."""
    from hetskel_ros.topology.topology import list_topologies, load_topology

    wanted = set(joints)
    matches = [name for name in list_topologies() if set(load_topology(name).joints) == wanted]
    if len(matches) != 1:
        found = f"several topologies ({', '.join(matches)})" if matches else "no topology"
        raise TopologyError(f"{path}: key 'joints' {list(joints)} matches {found}; add a 'topology' key naming one")
    return matches[0]


def native_order(joints: Sequence[str], topology: str, path: Path) -> np.ndarray:
    """Index array taking a file's joint order to the topology's; unknown or missing joints are an error."""
    from hetskel_ros.topology.topology import load_topology

    expected = load_topology(topology).joints
    unknown = [j for j in joints if j not in expected]
    missing = [j for j in expected if j not in joints]
    if unknown or missing or len(joints) != len(expected):
        raise TopologyError(f"{path}: key 'joints' does not fit topology '{topology}': unknown {unknown}, "
                            f"missing {missing}")
    return np.array([list(joints).index(j) for j in expected], dtype=np.int64)


def load_sequences(path: str | Path, topology: str | None = None) -> SequenceSet:
    """Read a sequence set npz, 3D or 2D, in the topology's native joint order.

    The topology is ``topology``, else the file's ``topology`` key, else the one shipped topology whose joints the
    file's ``joints`` names; a file in another joint order is reordered by those names. An optional ``confidence``
    key (frames, N) comes along. A missing key, a wrong shape or an unknown joint is a TopologyError naming the file
    and the key.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TopologyError(f"{path}: cannot read sequence file ({exc})") from exc
    with archive:
        missing = [k for k in _REQUIRED_KEYS if k not in archive.files]
        if missing:
            raise TopologyError(f"{path}: missing key(s) {', '.join(missing)} (has {', '.join(archive.files)})")
        positions = archive["positions"]
        offsets = archive["offsets"].astype(np.int64)
        labels, styles = archive["label"].astype(np.int64), archive["style"].astype(np.int64)
        label_names = tuple(str(s) for s in archive["label_names"])
        style_names = tuple(str(s) for s in archive["style_names"])
        names = tuple(str(s) for s in archive["names"])
        joints = tuple(str(s) for s in archive["joints"])
        fps = float(archive["fps"])
        stored = str(archive["topology"]) if "topology" in archive.files else None
        confidence = archive["confidence"] if "confidence" in archive.files else None
        groups = {key[: -len("_names")]: (archive[key[: -len("_names")]].astype(np.int64),
                                          tuple(str(s) for s in archive[key]))
                  for key in archive.files
                  if key.endswith("_names") and key not in ("label_names", "style_names")
                  and key[: -len("_names")] in archive.files}
    if positions.ndim != 3 or positions.shape[1] != len(joints) or positions.shape[2] not in (2, 3):
        raise TopologyError(f"{path}: key 'positions' must be (frames, {len(joints)}, 3 or 2), got {positions.shape}")
    count = len(names)
    rising = offsets.shape == (count + 1,) and offsets[0] == 0 and np.all(np.diff(offsets) >= 0)
    if not rising or offsets[-1] != len(positions):
        raise TopologyError(
            f"{path}: key 'offsets' must rise from 0 to {len(positions)} with {count + 1} entries, got {offsets.shape}"
        )
    for key, values, vocab in (("label", labels, label_names), ("style", styles, style_names),
                               *((k, v, n) for k, (v, n) in groups.items())):
        if values.shape != (count,) or (count and (values.min() < 0 or values.max() >= len(vocab))):
            raise TopologyError(f"{path}: key '{key}' must hold {count} indices into '{key}_names'")
    if confidence is not None and confidence.shape != positions.shape[:2]:
        raise TopologyError(f"{path}: key 'confidence' must be {positions.shape[:2]}, got {confidence.shape}")
    topology = topology or stored or topology_for_joints(joints, path)
    _check_dims(topology, positions.shape[2], path)
    order = native_order(joints, topology, path)
    if not np.array_equal(order, np.arange(len(joints))):
        positions = positions[:, order]
        confidence = None if confidence is None else confidence[:, order]
        joints = tuple(joints[i] for i in order)
    positions = positions.astype(np.float32, copy=False)
    sequences = [positions[offsets[i] : offsets[i + 1]] for i in range(count)]
    scores = None if confidence is None else [
        confidence[offsets[i] : offsets[i + 1]].astype(np.float32) for i in range(count)]
    return SequenceSet(sequences, labels, label_names, styles, style_names, names, fps, joints, topology, scores,
                       groups)


def _check_dims(topology: str, dims: int, path: Path) -> None:
    from hetskel_ros.topology.topology import load_topology

    expected = load_topology(topology).dims
    if dims != expected:
        raise TopologyError(f"{path}: key 'positions' has {dims} coordinates, topology '{topology}' is {expected}D")


def write_sequences(path: str | Path, data: SequenceSet, *, compressed: bool = True) -> Path:
    """Write ``data`` in the same npz format (plus a ``topology`` key); returns the path written."""
    path = Path(path)
    positions, offsets = data.stacked()
    path.parent.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compressed else np.savez
    with path.open("wb") as handle:  # a file handle keeps numpy from appending ".npz" to other suffixes
        save(
            handle,
            positions=positions.astype(np.float32),
            offsets=offsets,
            label=np.asarray(data.labels, dtype=np.int16),
            label_names=np.array(data.label_names, dtype=str),
            style=np.asarray(data.styles, dtype=np.int16),
            style_names=np.array(data.style_names, dtype=str),
            names=np.array(data.names, dtype=str),
            joints=np.array(data.joints, dtype=str),
            fps=np.int64(data.fps) if float(data.fps).is_integer() else np.float64(data.fps),
            topology=np.array(data.topology),
            **({} if data.confidence is None else {"confidence": _stacked_confidence(data)}),
            **{key: np.asarray(values, dtype=np.int16) for key, (values, _) in data.groups.items()},
            **{f"{key}_names": np.array(names, dtype=str) for key, (_, names) in data.groups.items()},
        )
    return path


def _stacked_confidence(data: SequenceSet) -> np.ndarray:
    if not data.confidence:
        return np.zeros((0, len(data.joints)), np.float32)
    return np.concatenate(data.confidence).astype(np.float32)


def sample_path() -> Path:
    """The small shipped sample (data/bandai_sample.npz in a checkout, share/hetskel_ros/data when installed)."""
    return share_dir() / "data" / SAMPLE_FILE


def full_mocap_path() -> Path:
    """Where the full data set sits beside a checkout: <repo>/../shared/data/bandai-namco-motion/."""
    return share_dir().parent / "shared" / "data" / "bandai-namco-motion" / MOCAP_FILE


def default_mocap_path() -> Path:
    """The mocap to use: $HETSKEL_MOCAP if set, else the full set beside the repo, else the shipped sample."""
    override = os.environ.get(MOCAP_ENV)
    if override:
        path = Path(override)
        if not path.is_file():
            raise TopologyError(f"${MOCAP_ENV} points at {path}, which is not a file")
        return path
    for candidate in (full_mocap_path(), sample_path()):
        if candidate.is_file():
            return candidate
    raise TopologyError(
        f"no mocap data: neither {full_mocap_path()} nor the sample {sample_path()} exists; "
        f"set ${MOCAP_ENV} to an npz in the mocap format"
    )


def is_full_mocap(path: Path) -> bool:
    return Path(path).name == MOCAP_FILE


def select_sample(data: SequenceSet, *, style: str = "youthful", per_label: int = 2, min_frames: int = 60) -> list[int]:
    """Deterministic pick: per action, the ``per_label`` shortest sequences of ``style`` with >= min_frames.

    Ties break by name. Youthful is the style held out for testing, so the sample is test data.
    """
    if style not in data.style_names:
        raise TopologyError(f"style '{style}' not in {data.style_names}")
    style_id = data.style_names.index(style)
    chosen: list[int] = []
    for label in range(len(data.label_names)):
        candidates = [
            i
            for i in range(len(data))
            if data.labels[i] == label and data.styles[i] == style_id and len(data.sequences[i]) >= min_frames
        ]
        candidates.sort(key=lambda i: (len(data.sequences[i]), data.names[i]))
        chosen.extend(candidates[:per_label])
    return chosen


SAMPLE_DECIMALS = 4  # 0.1 mm: rounding error <= 0.05 mm, far below optical mocap accuracy, file ~30% smaller


def make_sample(source: str | Path, target: str | Path) -> SequenceSet:
    """Write the shipped sample (data/bandai_sample.npz) from the full mocap file.

    Positions are rounded to 0.1 mm so the compressed file stays small (< 600 KB) for the repository.
    """
    full = load_sequences(source)
    sample = full.subset(select_sample(full))
    sample.sequences = [np.round(s, SAMPLE_DECIMALS).astype(np.float32) for s in sample.sequences]
    write_sequences(target, sample)
    return sample


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hetskel_ros.topology.sequences", description="Sequence-set utilities."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-sample", help="write the small shipped sample from the full mocap file")
    make.add_argument(
        "source", type=Path, nargs="?", default=None, help=f"full {MOCAP_FILE} (default: beside the repo)"
    )
    make.add_argument("target", type=Path, nargs="?", default=None, help=f"output (default: data/{SAMPLE_FILE})")
    args = parser.parse_args(argv)
    source = args.source or full_mocap_path()
    target = args.target or sample_path()
    sample = make_sample(source, target)
    print(f"wrote {target}: {len(sample)} sequences, {sample.num_frames} frames, {target.stat().st_size} bytes")
    for name, frames in zip(sample.names, (len(s) for s in sample.sequences), strict=True):
        print(f"  {name}  {frames} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
