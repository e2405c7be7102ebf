"""Which track of one view is which track of another view of the same people (multi-view fusion).

Two rules, chosen in the configuration:
  * ``track_id``: tracks with the same track_id are the same person (both sources share a tracker, e.g. a depth
    camera's body tracking whose ids an RGB estimator on the same camera reuses).
  * ``nearest_root``: pair the tracks whose root joints (unified spine_base, newest frame) are nearest, greedily in
    order of increasing distance, one to one, and only below a gate: ``max_distance_m`` when both views are 3D
    (metres), ``max_distance_px`` when both are 2D, and for a 3D view and a 2D view the 3D root is first projected
    into the image with the pinhole ``projection`` [fx, fy, cx, cy] (3D positions in the camera's optical frame:
    x right, y down, z forward, as the Azure Kinect and most RGB-D drivers give them).
The result depends only on the tracks' contents, so live and offline runs pair the same tracks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RULES = ("track_id", "nearest_root")


@dataclass(frozen=True)
class AssociationRule:
    rule: str = "track_id"
    max_distance_m: float = 0.5
    max_distance_px: float = 80.0
    projection: tuple[float, ...] = ()  # fx, fy, cx, cy

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"fusion.association must be one of {RULES}, got {self.rule!r}")
        if self.projection and (len(self.projection) != 4 or self.projection[0] <= 0 or self.projection[1] <= 0):
            raise ValueError(f"fusion.projection must be [fx, fy, cx, cy] with fx, fy > 0, got {list(self.projection)}")
        if self.max_distance_m <= 0 or self.max_distance_px <= 0:
            raise ValueError("fusion.max_distance_m and fusion.max_distance_px must be > 0")

    def needs_projection(self, dims_a: int, dims_b: int) -> bool:
        return self.rule == "nearest_root" and dims_a != dims_b

    def check(self, dims_a: int, dims_b: int, group: str) -> None:
        """Configuration check for one view group (a 3D/2D pair under nearest_root needs the projection)."""
        if self.needs_projection(dims_a, dims_b) and not self.projection:
            raise ValueError(f"view_group '{group}' pairs a 3D and a 2D input by nearest_root: set fusion.projection "
                             f"[fx, fy, cx, cy] (the 2D camera's intrinsics) or use association 'track_id'")


@dataclass(frozen=True)
class Candidate:
    """One track as association sees it: its id and its newest root position (None if the root is missing)."""

    track_id: int
    root: np.ndarray | None
    dims: int


def _project(point: np.ndarray, projection: Sequence[float]) -> np.ndarray | None:
    fx, fy, cx, cy = projection
    if point[2] <= 1e-6:
        return None
    return np.array([fx * point[0] / point[2] + cx, fy * point[1] / point[2] + cy])


def _distance(a: Candidate, b: Candidate, rule: AssociationRule) -> float | None:
    if a.root is None or b.root is None:
        return None
    pa, pb = a.root, b.root
    if a.dims != b.dims:
        pa = _project(pa, rule.projection) if a.dims == 3 else pa
        pb = _project(pb, rule.projection) if b.dims == 3 else pb
        if pa is None or pb is None:
            return None
        gate = rule.max_distance_px
    else:
        gate = rule.max_distance_m if a.dims == 3 else rule.max_distance_px
    distance = float(np.linalg.norm(np.asarray(pa, np.float64) - np.asarray(pb, np.float64)))
    return distance if distance <= gate else None


def associate(primary: Sequence[Candidate], secondary: Sequence[Candidate], rule: AssociationRule) -> dict[int, int]:
    """primary track_id -> secondary track_id, one to one."""
    if rule.rule == "track_id":
        ids = {c.track_id for c in secondary}
        return {c.track_id: c.track_id for c in primary if c.track_id in ids}
    pairs = []
    for i, a in enumerate(primary):
        for j, b in enumerate(secondary):
            distance = _distance(a, b, rule)
            if distance is not None:
                pairs.append((distance, i, j))
    pairs.sort()
    used_a: set[int] = set()
    used_b: set[int] = set()
    out: dict[int, int] = {}
    for _, i, j in pairs:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        out[primary[i].track_id] = secondary[j].track_id
    return out
