"""Source topologies (config/topologies/<name>.yaml) and their mapping into the unified skeleton.

A topology is pure data: native joint names in the sensor's order, a map native -> canonical joint, and derived
joints as weighted means (the spine interpolation of paper 000, eqs. 1-3, is one such entry). Adding a sensor
therefore needs one YAML file and no code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from hetskel_ros.paths import CONFIG_PATH_ENV, config_dir, config_subdirs, find_config_file, list_config_names
from hetskel_ros.topology._yaml import Fields, find_duplicates, read_mapping
from hetskel_ros.topology.errors import TopologyError
from hetskel_ros.topology.limits import Limits, parse_limits
from hetskel_ros.topology.unified import UnifiedSkeleton, load_unified
from hetskel_ros.topology.vocabulary import load_vocabulary

UP_PATTERN = re.compile(r"^[+-][xyz]$")
NATIVE_PREFIX = "native:"  # a derived joint's source written so is the native joint of that name


@dataclass(frozen=True)
class DerivedJoint:
    """A canonical joint computed as sum(w_i * p_i) / sum(w_i) of named native or earlier canonical joints."""

    joint: str
    sources: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class _Plan:
    """Precomputed linear map native -> unified, so mapping a frame is one matrix product."""

    weights: np.ndarray  # (J, N) float64: unified joint j = weights[j] @ native positions
    needs: np.ndarray  # (J, N) float32 0/1: native joints that must all be present for unified joint j
    provided: np.ndarray  # (J,) bool
    _kron: dict[int, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def coordinate_weights(self, dims: int) -> np.ndarray:
        """(N*C, J*C) float32 so that flat native frames @ it = flat unified frames."""
        matrix = self._kron.get(dims)
        if matrix is None:
            matrix = np.kron(self.weights, np.eye(dims)).T.astype(np.float32)
            self._kron[dims] = matrix
        return matrix


@dataclass(frozen=True)
class Topology:
    """One sensor's or data set's skeleton convention, loaded from YAML."""

    name: str
    dims: int
    joints: tuple[str, ...]
    up: str
    canonical: Mapping[str, str] = field(hash=False)
    derived: tuple[DerivedJoint, ...] = ()
    bones: tuple[tuple[str, str], ...] = ()
    flip_pairs: tuple[tuple[str, str], ...] = ()
    description: str = ""
    units: str = ""
    source: str = ""
    path: Path | None = field(default=None, compare=False)
    limits: Limits | None = None  # how far a person's joints can spread (None: no bound)
    _plans: dict[tuple[str, ...], _Plan] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def index(self, native_name: str) -> int:
        try:
            return self.joints.index(native_name)
        except ValueError:
            raise TopologyError(f"topology '{self.name}' has no native joint '{native_name}'") from None

    def provided_canonical(self) -> tuple[str, ...]:
        """Every canonical joint this topology yields (mapped, then derived), unified or not."""
        return tuple(self.canonical.values()) + tuple(d.joint for d in self.derived)

    def coverage(self, unified: UnifiedSkeleton | None = None) -> np.ndarray:
        """(J,) bool: the unified joints this topology can provide (the rest a model must prompt/fill)."""
        return self._plan(unified or load_unified()).provided.copy()

    def native_flip_permutation(self) -> np.ndarray:
        """(N,) index map mirroring left and right in native order, for augmenting native arrays."""
        perm = np.arange(self.num_joints)
        for left, right in self.flip_pairs:
            i, j = self.index(left), self.index(right)
            perm[i], perm[j] = j, i
        return perm

    def to_unified(
        self,
        positions: np.ndarray,
        confidence: np.ndarray | None = None,
        *,
        unified: UnifiedSkeleton | None = None,
        min_confidence: float = 0.05,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Native (T,N,C) or (N,C) positions -> unified (T,J,C) float32 and mask (T,J) bool (True = present).

        The output has the rank of the input ((N,C) gives (J,C) and (J,)). A native joint that is NaN/inf or
        below ``min_confidence`` is missing, as is every derived joint that uses it; missing joints are 0.
        """
        skeleton = unified or load_unified()
        pos = np.asarray(positions)
        single = pos.ndim == 2
        if single:
            pos = pos[None]
        if pos.ndim != 3 or pos.shape[1] != self.num_joints or pos.shape[2] != self.dims:
            raise TopologyError(
                f"topology '{self.name}' expects positions of shape (T, {self.num_joints}, {self.dims}) or "
                f"({self.num_joints}, {self.dims}), got {np.shape(positions)}"
            )
        pos = pos.astype(np.float32, copy=False)
        valid = np.isfinite(pos).all(axis=-1)
        if confidence is not None:
            conf = np.asarray(confidence, dtype=np.float32)
            if single and conf.ndim == 1:
                conf = conf[None]
            if conf.shape != pos.shape[:2]:
                expected = (self.num_joints,) if single else pos.shape[:2]
                raise TopologyError(
                    f"topology '{self.name}': confidence must have shape {expected} to match positions "
                    f"{np.shape(positions)}, got {np.shape(confidence)}"
                )
            with np.errstate(invalid="ignore"):
                valid &= conf >= min_confidence  # NaN confidence compares False: missing
        plan = self._plan(skeleton)
        frames = pos.shape[0]
        all_valid = bool(valid.all())
        clean = pos if all_valid else np.where(valid[..., None], pos, np.float32(0.0))
        # One GEMM for all frames: (T, N*C) @ (N*C, J*C) with the per-coordinate weights kron(W, I_C).
        flat = clean.reshape(frames, self.num_joints * self.dims)
        out = (flat @ plan.coordinate_weights(self.dims)).reshape(frames, skeleton.num_joints, self.dims)
        if all_valid:
            mask = np.broadcast_to(plan.provided, (frames, plan.provided.size)).copy()
        else:
            missing_sources = (~valid).astype(np.float32) @ plan.needs.T  # (T,J): needed joints that are gone
            mask = plan.provided[None, :] & (missing_sources == 0)
        out[~mask] = 0.0
        if single:
            return out[0], mask[0]
        return out, mask

    def _plan(self, skeleton: UnifiedSkeleton) -> _Plan:
        plan = self._plans.get(skeleton.names)
        if plan is None:
            plan = _build_plan(self, skeleton)
            self._plans[skeleton.names] = plan
        return plan


def _build_plan(topology: Topology, skeleton: UnifiedSkeleton) -> _Plan:
    n = topology.num_joints
    rows: dict[str, np.ndarray] = {}
    needs: dict[str, np.ndarray] = {}
    for native, canonical in topology.canonical.items():
        row = np.zeros(n)
        row[topology.index(native)] = 1.0
        rows[canonical], needs[canonical] = row, row > 0
    for derived in topology.derived:
        total = sum(w for _, w in derived.sources)
        row, need = np.zeros(n), np.zeros(n, dtype=bool)
        for source, weight in derived.sources:
            if source in topology.joints:
                src_row = np.zeros(n)
                src_row[topology.index(source)] = 1.0
                src_need = src_row > 0
            else:
                src_row, src_need = rows[source], needs[source]
            row += (weight / total) * src_row
            need |= src_need
        rows[derived.joint], needs[derived.joint] = row, need
    weights = np.zeros((skeleton.num_joints, n))
    need_matrix = np.zeros((skeleton.num_joints, n), dtype=np.float32)
    provided = np.zeros(skeleton.num_joints, dtype=bool)
    for j, name in enumerate(skeleton.names):
        if name in rows:
            weights[j], need_matrix[j], provided[j] = rows[name], needs[name], True
    return _Plan(weights=weights, needs=need_matrix, provided=provided)


# ----------------------------------------------------------------------------------------------------- loading


def topologies_dir() -> Path:
    """The shipped topologies (config/topologies); users' layers come first, see :func:`topologies_dirs`."""
    return config_dir() / "topologies"


def topologies_dirs() -> list[Path]:
    """Where topologies are looked up, in order: ``topologies/`` of each HETSKEL_CONFIG_PATH layer, then shipped."""
    return config_subdirs("topologies")


def list_topologies() -> list[str]:
    """Names of every topology on the search path (shipped and the users' layers)."""
    return list_config_names("topologies")


def looks_like_path(name_or_path: str | Path) -> bool:
    text = str(name_or_path)
    return isinstance(name_or_path, Path) or "/" in text or text.endswith((".yaml", ".yml"))


def resolve_topology_path(name_or_path: str | Path) -> Path:
    """A topology name on the search path, or a path to a YAML file; unknown names list the known ones."""
    text = str(name_or_path)
    if looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not file_exists(path):
            raise TopologyError(f"topology file {path} does not exist")
        return path
    path = find_config_file("topologies", text)
    if path is None:
        raise TopologyError(
            f"unknown topology {shorten(text)!r} (known: {', '.join(list_topologies()) or 'none'}; pass a path to a "
            f"YAML file, or add <dir>/topologies/<name>.yaml and put <dir> on {CONFIG_PATH_ENV})"
        )
    return path


def shorten(text: str, limit: int = 64) -> str:
    """``text`` cut to ``limit`` characters for an error message (a name from the wire can be any length)."""
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def file_exists(path: Path) -> bool:
    """False also for a name the file system cannot hold (too long, a NUL byte): such a name is simply unknown."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def load_topology(name_or_path: str | Path) -> Topology:
    """Load and validate a topology by name (config/topologies/<name>.yaml) or from a YAML path."""
    path = resolve_topology_path(name_or_path).resolve()
    return _load_cached(path, path.stat().st_mtime, _vocabulary_key())


def _vocabulary_key() -> tuple[str, ...]:
    return tuple(load_vocabulary())


@lru_cache(maxsize=64)
def _load_cached(path: Path, _mtime: float, vocabulary: tuple[str, ...]) -> Topology:
    return parse_topology(read_mapping(path), path, set(vocabulary))


def parse_topology(data: Mapping[str, Any], path: Path, vocabulary: set[str]) -> Topology:
    """Validate one topology mapping; every error names the file and the key or joint at fault."""
    fields = Fields(data, path)
    name = fields.string("name")
    if name != path.stem:
        raise fields.error("name", f"is '{name}' but must equal the file name '{path.stem}'")
    dims = fields.integer("dims")
    if dims not in (2, 3):
        raise fields.error("dims", f"must be 2 or 3, got {dims}")
    joints = fields.string_list("joints")
    if not joints:
        raise fields.error("joints", "is empty")
    duplicates = find_duplicates(joints)
    if duplicates:
        raise fields.error("joints", f"has duplicate native joint name(s): {', '.join(duplicates)}")
    up = parse_up(fields, dims)
    canonical = fields.name_map("canonical")
    for native, target in canonical.items():
        if native not in joints:
            raise fields.error(f"canonical.{native}", f"maps '{native}', which is not in 'joints'")
        if target not in vocabulary:
            raise fields.error(
                f"canonical.{native}", f"maps to unknown canonical joint '{target}' (not in config/joints.yaml)"
            )
    duplicates = find_duplicates(list(canonical.values()))
    if duplicates:
        raise fields.error("canonical", f"maps several native joints to the same canonical joint(s): {duplicates}")
    derived = parse_derived(fields, joints, canonical, vocabulary)
    native = set(joints)

    def native_pairs(key: str) -> tuple[tuple[str, str], ...]:
        pairs = fields.pairs(key, [])
        for a, b in pairs:
            for joint in (a, b):
                if joint not in native:
                    raise fields.error(key, f"names '{joint}', which is not in 'joints'")
        return tuple(pairs)

    return Topology(
        name=name,
        dims=dims,
        joints=tuple(joints),
        up=up,
        canonical=canonical,
        derived=derived,
        bones=native_pairs("bones"),
        flip_pairs=native_pairs("flip_pairs"),
        description=fields.text("description"),
        units=fields.string("units", "metres" if dims == 3 else "pixels"),
        source=fields.text("source"),
        path=path,
        limits=parse_limits(fields),
    )


def parse_up(fields: Fields, dims: int) -> str:
    up = fields.string("up")
    if not UP_PATTERN.match(up):
        raise fields.error("up", f"must be an axis with sign such as '+y', '-y' or '+z', got {up!r}")
    if dims == 2 and up[1] != "y":
        raise fields.error("up", f"of a 2D topology must be '+y' or '-y' (image y axis), got {up!r}")
    return up


def parse_derived(
    fields: Fields, natives: list[str], canonical: Mapping[str, str], vocabulary: set[str]
) -> tuple[DerivedJoint, ...]:
    """Parse ``derived:`` entries in order; a source is a native joint or a canonical joint defined earlier."""
    raw = fields.raw("derived", [])
    if not isinstance(raw, list):
        raise fields.error("derived", f"must be a list of {{joint: name, from: {{name: weight}}}}, got {raw!r}")
    defined: dict[str, str] = {target: f"native joint '{native}'" for native, target in canonical.items()}
    result: list[DerivedJoint] = []
    for i, entry in enumerate(raw):
        key = f"derived[{i}]"
        if not isinstance(entry, dict):
            raise fields.error(key, f"must be a mapping with 'joint' and 'from', got {entry!r}")
        item = Fields(entry, fields.path, f"{fields.prefix}{key}.")
        joint = item.string("joint")
        if joint not in vocabulary:
            raise item.error("joint", f"is unknown canonical joint '{joint}' (not in config/joints.yaml)")
        if joint in defined:
            raise item.error("joint", f"'{joint}' is already provided by {defined[joint]}")
        sources = item.raw("from")
        if not isinstance(sources, dict) or not sources:
            raise item.error("from", f"must be a non-empty mapping of joint: weight, got {sources!r}")
        parsed: list[tuple[str, float]] = []
        for written, weight in sources.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not np.isfinite(weight):
                raise item.error(f"from.{written}", f"weight must be a finite number, got {weight!r}")
            # "native:NAME" names the native joint where NAME is also a canonical joint of another native one
            # (a data set whose left/right labels are mirrored); _build_plan resolves native names first
            source = str(written).removeprefix(NATIVE_PREFIX)
            forced_native = str(written).startswith(NATIVE_PREFIX)
            if forced_native and source not in natives:
                raise item.error(f"from.{written}", f"'{source}' is not a native joint (not in 'joints')")
            is_native = source in natives
            is_canonical = source in defined and not forced_native
            if not is_native and not is_canonical:
                raise item.error(
                    f"from.{written}",
                    f"derived joint '{joint}' uses unknown source '{source}' (neither a native joint nor a "
                    f"canonical joint defined before this entry)",
                )
            if is_native and is_canonical and canonical.get(source) != source:
                raise item.error(
                    f"from.{written}",
                    f"source '{source}' is ambiguous: a native joint and also the canonical joint from "
                    f"{defined[source]}; write '{NATIVE_PREFIX}{source}' for the native joint",
                )
            parsed.append((str(source), float(weight)))
        if sum(w for _, w in parsed) <= 0:
            raise item.error("from", "weights must sum to a positive number")
        defined[joint] = f"derived[{i}]"
        result.append(DerivedJoint(joint=joint, sources=tuple(parsed)))
    return tuple(result)
