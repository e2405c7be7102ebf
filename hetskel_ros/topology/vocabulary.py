"""The canonical joint vocabulary (config/joints.yaml): every name a topology may map to."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from hetskel_ros.paths import config_dir
from hetskel_ros.topology._yaml import Fields, file_mtime, read_mapping
from hetskel_ros.topology.errors import TopologyError


def vocabulary_path() -> Path:
    return config_dir() / "joints.yaml"


def load_vocabulary(path: Path | None = None) -> dict[str, str]:
    """Canonical joint name -> one-line anatomical description (a fixed, shared meaning for every sensor)."""
    resolved = Path(path) if path is not None else vocabulary_path()
    return dict(_load_cached(resolved.resolve(), file_mtime(resolved)))


@lru_cache(maxsize=8)
def _load_cached(path: Path, _mtime: float) -> tuple[tuple[str, str], ...]:
    fields = Fields(read_mapping(path), path)
    joints = fields.mapping("joints")
    entries: list[tuple[str, str]] = []
    for name, description in joints.data.items():
        if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
            raise TopologyError(f"{path}: key 'joints.{name}' must be a lower_snake_case joint name")
        if not isinstance(description, str) or not description.strip():
            raise joints.error(str(name), "needs a one-line anatomical description")
        entries.append((name, description.strip()))
    if not entries:
        raise fields.error("joints", "is empty")
    return tuple(entries)
