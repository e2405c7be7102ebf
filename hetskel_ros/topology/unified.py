"""The unified skeleton (paper 000, sec. 3.1, Fig. 3): one fixed joint order every topology is mapped into."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from hetskel_ros.paths import config_dir
from hetskel_ros.topology._yaml import Fields, file_mtime, find_duplicates, read_mapping
from hetskel_ros.topology.errors import TopologyError
from hetskel_ros.topology.vocabulary import load_vocabulary


@dataclass(frozen=True)
class UnifiedSkeleton:
    """Joint order, body-frame landmarks (root, torso, hips, shoulders), bones and mirror pairs.

    The paper's default has 30 joints: 5 face, 15 common (incl. three spine joints), 10 head/hand/foot.
    """

    name: str
    names: tuple[str, ...]
    groups: Mapping[str, tuple[int, ...]] = field(hash=False)
    root: str
    torso: tuple[str, str]
    hips: tuple[str, str]
    shoulders: tuple[str, str]
    bones: tuple[tuple[str, str], ...]
    flip_pairs: tuple[tuple[str, str], ...]
    path: Path | None = field(default=None, compare=False)

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Position of ``name`` in the unified order."""
        try:
            return self.names.index(name)
        except ValueError:
            raise TopologyError(
                f"unified skeleton '{self.name}' has no joint '{name}' (joints: {', '.join(self.names)})"
            ) from None

    def indices(self, names: tuple[str, ...] | list[str]) -> np.ndarray:
        return np.array([self.index(n) for n in names], dtype=np.int64)

    @property
    def root_index(self) -> int:
        return self.index(self.root)

    @property
    def bone_indices(self) -> np.ndarray:
        """(B, 2) int64 [parent, child] indices, e.g. for bone-vector features."""
        return np.array([(self.index(a), self.index(b)) for a, b in self.bones], dtype=np.int64).reshape(-1, 2)


def flip_permutation(skeleton: UnifiedSkeleton) -> np.ndarray:
    """(J,) index map that mirrors left and right: ``flipped = unified[..., perm, :]`` (then negate x)."""
    perm = np.arange(skeleton.num_joints)
    for left, right in skeleton.flip_pairs:
        i, j = skeleton.index(left), skeleton.index(right)
        perm[i], perm[j] = j, i
    return perm


def unified_path() -> Path:
    return config_dir() / "unified.yaml"


def load_unified(path: Path | None = None) -> UnifiedSkeleton:
    """Read the unified skeleton (default config/unified.yaml); names must come from config/joints.yaml."""
    resolved = Path(path) if path is not None else unified_path()
    return _load_cached(resolved.resolve(), file_mtime(resolved))


@lru_cache(maxsize=8)
def _load_cached(path: Path, _mtime: float) -> UnifiedSkeleton:
    fields = Fields(read_mapping(path), path)
    names = fields.string_list("joints")
    duplicates = find_duplicates(names)
    if duplicates:
        raise fields.error("joints", f"lists joint(s) twice: {', '.join(duplicates)}")
    vocabulary = load_vocabulary()
    for name in names:
        if name not in vocabulary:
            raise fields.error("joints", f"names unknown canonical joint '{name}' (not in config/joints.yaml)")

    def known(key: str, name: str) -> str:
        if name not in names:
            raise fields.error(key, f"names '{name}', which is not a joint of this skeleton")
        return name

    def pair(key: str) -> tuple[str, str]:
        value = fields.string_list(key)
        if len(value) != 2:
            raise fields.error(key, f"must list exactly two joints, got {value!r}")
        return known(key, value[0]), known(key, value[1])

    groups_fields = fields.mapping("groups")
    groups: dict[str, tuple[int, ...]] = {}
    for group in groups_fields.data:
        members = groups_fields.string_list(str(group))
        groups[str(group)] = tuple(names.index(known(f"groups.{group}", m)) for m in members)
    bones = tuple((known("bones", a), known("bones", b)) for a, b in fields.pairs("bones"))
    flip_pairs = tuple((known("flip_pairs", a), known("flip_pairs", b)) for a, b in fields.pairs("flip_pairs"))
    return UnifiedSkeleton(
        name=fields.string("name", path.stem),
        names=tuple(names),
        groups=groups,
        root=known("root", fields.string("root")),
        torso=pair("torso"),
        hips=pair("hips"),
        shoulders=pair("shoulders"),
        bones=bones,
        flip_pairs=flip_pairs,
        path=path,
    )
