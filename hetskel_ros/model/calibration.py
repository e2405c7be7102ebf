"""Idle class and open-set rejection on the frozen encoder's features, stored in the bundle beside the head.

The head of a bundle knows its actions only: a person standing still, or doing something else, still gets the
nearest action. A :class:`Calibration` adds, per window feature (``FeatureExtractor`` / any backend's ``features``):

- an ``idle`` prototype, learned from real standing phases of training clips (hetskel_ros.topology.standing): a
  window nearer to it than to every action is ``idle``;
- a rejection distance: a window whose cosine distance to the nearest action prototype exceeds it is ``unknown``.
  It is fitted on held-out windows of known actions (``keep``: the share of them that must stay accepted), and is
  separate from the node's ``threshold`` (which stays the cut on the smoothed head score).

Per class it stores what a later refit needs (count, mean and variance of the features). The calibration lives in
the bundle zip as ``calibration.json``: ``write_calibration`` adds it to an existing bundle (atomically),
``read_calibration`` returns None for a bundle without one; ``load_bundle`` keeps it in ``Bundle.parts`` and
``save_bundle`` writes it back, so re-saving a bundle keeps its calibration (``bundle_calibration`` reads it from
there). numpy only: no torch, no ROS.
"""

from __future__ import annotations

import json
import math
import shutil
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hetskel_ros.model.head import unit

CALIBRATION_PART = "calibration.json"
IDLE = "idle"
UNKNOWN = "unknown"
FORMAT = 1


@dataclass(frozen=True)
class ClassStats:
    """Feature statistics of one class (what a refit or a new class needs)."""

    count: int
    mean: np.ndarray  # (D,)
    var: np.ndarray  # (D,)

    @classmethod
    def of(cls, features: np.ndarray) -> ClassStats:
        f = np.asarray(features, np.float64)
        return cls(len(f), f.mean(axis=0), f.var(axis=0))

    def to_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean.tolist(), "var": self.var.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping) -> ClassStats:
        return cls(int(data["count"]), np.asarray(data["mean"], np.float64), np.asarray(data["var"], np.float64))


@dataclass
class Calibration:
    labels: list[str]  # the head's labels, in order (prototypes of the known actions)
    stats: dict[str, ClassStats]  # per known label, plus IDLE when an idle class was learned
    reject_distance: float  # cosine distance to the nearest action prototype beyond which: "unknown"
    keep: float  # share of held-out known windows the rejection distance keeps
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a head may have an idle class of its own: its prototype is the one idle prototype, not a second one
        names = [n for n in self.labels if n in self.stats and n != IDLE] + ([IDLE] if IDLE in self.stats else [])
        self._names = names
        self._prototypes = unit(np.stack([self.stats[n].mean for n in names]))

    @property
    def has_idle(self) -> bool:
        return IDLE in self.stats

    def distances(self, features: np.ndarray) -> tuple[list[str], np.ndarray]:
        """(prototype names, (N, P) cosine distances of each feature to each prototype)."""
        return self._names, 1.0 - unit(features) @ self._prototypes.T

    def judge(self, features: np.ndarray) -> list[str]:
        """Per feature row: IDLE (nearest to the idle prototype), UNKNOWN (too far from every action), or ""
        (a known action: the head decides which)."""
        names, d = self.distances(np.atleast_2d(features))
        known = [i for i, n in enumerate(names) if n != IDLE]
        verdicts = []
        for row in d:
            nearest = int(np.argmin(row))
            if names[nearest] == IDLE:
                verdicts.append(IDLE)
            elif float(row[known].min()) > self.reject_distance:
                verdicts.append(UNKNOWN)
            else:
                verdicts.append("")
        return verdicts

    def to_dict(self) -> dict:
        return {"format": FORMAT, "labels": list(self.labels), "reject_distance": self.reject_distance,
                "keep": self.keep, "stats": {n: s.to_dict() for n, s in self.stats.items()},
                "provenance": self.provenance}

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "calibration") -> Calibration:
        try:
            return cls(list(data["labels"]), {n: ClassStats.from_dict(s) for n, s in data["stats"].items()},
                       float(data["reject_distance"]), float(data["keep"]), dict(data.get("provenance", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: not a calibration ({exc})") from None


def fit_calibration(train: Mapping[str, np.ndarray], labels: list[str], heldout: np.ndarray,
                    idle: np.ndarray | None = None, keep: float = 0.95, provenance: dict | None = None
                    ) -> Calibration:
    """Prototypes from ``train`` (label -> (n, D) window features) and ``idle``; the rejection distance is the
    ``keep`` quantile of held-out known windows' distance to their nearest action prototype."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    stats = {label: ClassStats.of(f) for label, f in train.items() if len(f)}
    if not stats:
        raise ValueError("no training features for any class")
    probe = Calibration(labels, stats, math.inf, keep)
    _, d = probe.distances(np.atleast_2d(heldout))
    reject = float(np.quantile(d.min(axis=1), keep)) if len(heldout) else math.inf
    if idle is not None and len(idle):
        stats[IDLE] = ClassStats.of(idle)
    return Calibration(labels, stats, reject, keep, dict(provenance or {}))


def read_calibration(bundle_path: str | Path | None) -> Calibration | None:
    """The bundle's calibration, or None when it has none."""
    if bundle_path is None:
        return None
    with zipfile.ZipFile(bundle_path) as zf:
        if CALIBRATION_PART not in zf.namelist():
            return None
        data = json.loads(zf.read(CALIBRATION_PART))
    return Calibration.from_dict(data, f"{bundle_path}: {CALIBRATION_PART}")


def bundle_calibration(bundle) -> Calibration | None:
    """The calibration of a loaded Bundle (its ``parts``, else its file), or None when it has none."""
    data = getattr(bundle, "parts", {}).get(CALIBRATION_PART)
    if data is not None:
        return Calibration.from_dict(json.loads(data), f"{bundle.path}: {CALIBRATION_PART}")
    return read_calibration(bundle.path) if bundle.path is not None and Path(bundle.path).is_file() else None


def calibration_bytes(calibration: Calibration) -> bytes:
    """What ``calibration.json`` holds (for ``Bundle.parts``)."""
    return json.dumps(calibration.to_dict()).encode()


def write_calibration(bundle_path: str | Path, calibration: Calibration, out: str | Path | None = None) -> Path:
    """Store ``calibration`` in the bundle at ``out`` (default: in place), replacing any earlier one, atomically."""
    source, target = Path(bundle_path), Path(out or bundle_path)
    tmp = target.with_suffix(target.suffix + ".tmp")
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if item.filename != CALIBRATION_PART:
                with zin.open(item) as src, zout.open(item.filename, "w") as dst:
                    shutil.copyfileobj(src, dst)
        zout.writestr(CALIBRATION_PART, json.dumps(calibration.to_dict()))
    tmp.replace(target)
    return target
