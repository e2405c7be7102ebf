"""The real data sets the model is pretrained and evaluated on, each with its standard protocol.

The registry is data: training/configs/datasets.yaml names each set's file (below the data folder), its shipped
sample (data/), its protocol (which grouping key splits train from test, and the values of each side) and its
credit. The data folder is $HETSKEL_DATA, else ../shared/data beside the repository; where a set's file is absent
there, its small shipped sample is read instead (a fresh clone, CI without the full sets), and the report says so.
All four sets are non-commercial research data: every bundle and report trained on them carries their credits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from hetskel_ros.paths import relative, share_dir
from hetskel_ros.topology.errors import TopologyError
from hetskel_ros.topology.sequences import SequenceSet, load_sequences

DATA_ENV = "HETSKEL_DATA"
REGISTRY = Path(__file__).parent / "configs" / "datasets.yaml"


@dataclass(frozen=True)
class Protocol:
    """Train/test split by one grouping of the file (style, subject, view): the values on each side."""

    key: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    name: str = ""  # e.g. "cross-view"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    file: str  # relative to the data folder
    sample: str  # relative to the repository
    protocol: Protocol
    credit: str
    leave_one_out: bool = False  # also evaluate each value of protocol.key as the test fold in turn (mocap styles)
    idle_held_out: tuple[str, ...] = ()  # training values of protocol.key whose clips' standing phases no idle fit
    # reads: the untrimmed bench borrows its idle gaps from them (hetskel_ros.ros.bench_untrimmed)


@dataclass
class LoadedDataset:
    spec: DatasetSpec
    data: SequenceSet
    path: Path
    is_sample: bool
    train: np.ndarray  # indices of the protocol's training split
    test: np.ndarray

    def fold(self, value: str) -> tuple[np.ndarray, np.ndarray]:
        """(train, test) of a leave-one-out fold: ``value`` of the protocol key is the test side."""
        groups, names = self.data.group(self.spec.protocol.key)
        if value not in names:
            raise TopologyError(f"{self.path}: '{self.spec.protocol.key}' has no value '{value}' (has {names})")
        held = groups == names.index(value)
        return np.flatnonzero(~held), np.flatnonzero(held)

    def idle_train(self) -> np.ndarray:
        """The training split without the clips of ``spec.idle_held_out``: the clips idle examples may come from."""
        if not self.spec.idle_held_out:
            return self.train
        groups, names = self.data.group(self.spec.protocol.key)
        held = [names.index(v) for v in self.spec.idle_held_out if v in names]
        return self.train[~np.isin(groups[self.train], held)]

    def fold_values(self) -> tuple[str, ...]:
        return self.spec.protocol.train + self.spec.protocol.test


def data_root() -> Path:
    override = os.environ.get(DATA_ENV)
    return Path(override) if override else share_dir().parent / "shared" / "data"


def registry(path: Path = REGISTRY) -> dict[str, DatasetSpec]:
    """Every data set of the registry file; a malformed entry is an error naming the file and the set."""
    raw = yaml.safe_load(path.read_text()) or {}
    out = {}
    for name, entry in (raw.get("datasets") or {}).items():
        try:
            p = entry["protocol"]
            protocol = Protocol(str(p["key"]), tuple(str(v) for v in p["train"]), tuple(str(v) for v in p["test"]),
                                str(p.get("name", "")))
            out[name] = DatasetSpec(name, str(entry["file"]), str(entry["sample"]), protocol, str(entry["credit"]),
                                    bool(entry.get("leave_one_out", False)),
                                    tuple(str(v) for v in entry.get("idle_held_out") or ()))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: data set '{name}' lacks or misstates {exc}") from exc
    return out


def split(data: SequenceSet, protocol: Protocol, path: Path) -> tuple[np.ndarray, np.ndarray]:
    groups, names = data.group(protocol.key)
    unknown = [v for v in protocol.train + protocol.test if v not in names]
    if unknown:
        raise TopologyError(f"{path}: protocol values {unknown} are not in '{protocol.key}_names' {list(names)}")
    train = np.isin(groups, [names.index(v) for v in protocol.train])
    test = np.isin(groups, [names.index(v) for v in protocol.test])
    return np.flatnonzero(train), np.flatnonzero(test)


def load_dataset(name: str, *, root: Path | None = None, sample: bool = False) -> LoadedDataset:
    """One registered data set with its protocol's split; the shipped sample when the full file is absent."""
    specs = registry()
    if name not in specs:
        raise ValueError(f"unknown data set '{name}' (known: {', '.join(specs)}; see {REGISTRY})")
    spec = specs[name]
    full = (root or data_root()) / spec.file
    path = full if full.is_file() and not sample else share_dir() / spec.sample
    if not path.is_file():
        raise TopologyError(f"data set '{name}': neither {full} nor the sample {path} exists (set ${DATA_ENV})")
    data = load_sequences(path)
    train, test = split(data, spec.protocol, path)
    return LoadedDataset(spec, data, path, path != full, train, test)


def select_sample(loaded: LoadedDataset, per_label: int) -> list[int]:
    """Deterministic pick for a shipped sample: per action and protocol side, the ``per_label`` shortest sequences
    with at least a second of frames (ties by name), so a sample has both a training and a test split."""
    data = loaded.data
    min_frames = int(data.fps)
    chosen: list[int] = []
    for side in (loaded.train, loaded.test):
        for label in range(len(data.label_names)):
            candidates = [int(i) for i in side if data.labels[i] == label and len(data.sequences[i]) >= min_frames]
            candidates.sort(key=lambda i: (len(data.sequences[i]), data.names[i]))
            chosen += candidates[:per_label]
    return sorted(chosen)


def make_sample(name: str, per_label: int = 1) -> Path:
    """Write data set ``name``'s shipped sample (its registry ``sample`` path) from the full file."""
    from hetskel_ros.topology.sequences import write_sequences

    loaded = load_dataset(name)
    if loaded.is_sample:
        raise TopologyError(f"data set '{name}': the full file {data_root() / loaded.spec.file} is not there")
    target = share_dir() / loaded.spec.sample
    write_sequences(target, loaded.data.subset(select_sample(loaded, per_label)))
    return target


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m training.datasets", description="Data set utilities.")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-sample", help="write a data set's small shipped sample (data/) from its full file")
    make.add_argument("names", nargs="+", help="data set names of training/configs/datasets.yaml")
    make.add_argument("--per-label", type=int, default=1, help="sequences per action and protocol side")
    args = parser.parse_args(argv)
    for name in args.names:
        target = make_sample(name, args.per_label)
        sample = load_sequences(target)
        print(f"wrote {relative(target)}: {len(sample)} sequences, {sample.num_frames} frames, "
              f"{target.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
