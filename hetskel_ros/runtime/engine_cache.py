"""TensorRT engine cache: what an engine depends on, where it is kept, and when it must be rebuilt.

A serialised TensorRT engine only runs with the TensorRT version that built it, on the GPU model it was tuned for,
and embodies one graph, precision and batch range. The key holds exactly those; an entry is an engine file plus a
JSON sidecar with the key and the engine's sha256, written sidecar-last so an interrupted write is a miss, never a
corrupt hit. Pure Python (no TensorRT, no GPU): the rules are tested anywhere.
A taught head (hetskel_ros.model.head, ``hetskel-teach``) is applied after the engine, on its features output, and
leaves the graph unchanged: a bundle that differs only in its head has the same key and never rebuilds an engine.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

CACHE_ENV = "HETSKEL_ENGINE_CACHE"
_SUFFIX = ".engine"
_META_SUFFIX = ".json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything a built engine depends on; any difference means a rebuild."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    precision: str
    max_batch: int
    opt_batch: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> EngineKey:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @property
    def digest(self) -> str:
        return sha256(json.dumps(self.to_dict(), sort_keys=True).encode())

    @property
    def filename(self) -> str:
        """Readable and unique: graph hash, precision and batch for people, the key digest for uniqueness."""
        return f"{self.onnx_sha256[:12]}-{self.precision}-b{self.max_batch}-{self.digest[:16]}{_SUFFIX}"

    def differences(self, other: EngineKey) -> dict[str, tuple[object, object]]:
        """Fields whose values differ: {field: (other's, self's)}; what made a cached engine unusable."""
        return {f.name: (getattr(other, f.name), getattr(self, f.name)) for f in fields(self)
                if getattr(other, f.name) != getattr(self, f.name)}


def engine_key(onnx: bytes, tensorrt_version: str, gpu_name: str, precision: str, max_batch: int,
               opt_batch: int = 1) -> EngineKey:
    return EngineKey(sha256(onnx), str(tensorrt_version), str(gpu_name), precision, int(max_batch), int(opt_batch))


def default_cache_dir() -> Path:
    """$HETSKEL_ENGINE_CACHE, else $XDG_CACHE_HOME/hetskel_ros/engines, else ~/.cache/hetskel_ros/engines."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "hetskel_ros" / "engines"


@dataclass
class Lookup:
    """The answer of :meth:`EngineCache.lookup`: the engine on a hit, else why it must be built."""

    engine: bytes | None
    reason: str

    @property
    def hit(self) -> bool:
        return self.engine is not None


class EngineCache:
    """Directory of serialised engines, one file per :class:`EngineKey` plus its JSON sidecar."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def engine_path(self, key: EngineKey) -> Path:
        return self.root / key.filename

    def meta_path(self, key: EngineKey) -> Path:
        return self.engine_path(key).with_suffix(_META_SUFFIX)

    def entries(self) -> list[tuple[EngineKey, Path]]:
        """Readable entries (key, engine path); unreadable sidecars are skipped."""
        found = []
        if not self.root.is_dir():
            return found
        for meta in sorted(self.root.glob(f"*{_META_SUFFIX}")):
            try:
                key = EngineKey.from_dict(json.loads(meta.read_text())["key"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            found.append((key, meta.with_suffix(_SUFFIX)))
        return found

    def lookup(self, key: EngineKey) -> Lookup:
        """The cached engine for ``key``, checked against its sidecar (key and sha256); else the reason for a build."""
        engine_path, meta_path = self.engine_path(key), self.meta_path(key)
        if not meta_path.is_file() or not engine_path.is_file():
            return Lookup(None, self._explain_miss(key))
        try:
            meta = json.loads(meta_path.read_text())
            cached_key = EngineKey.from_dict(meta["key"])
            blob = engine_path.read_bytes()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return Lookup(None, f"cache entry {engine_path} is unreadable ({exc})")
        if cached_key != key:
            changed = key.differences(cached_key)
            return Lookup(None, f"cache entry {engine_path} was built for a different key: {changed}")
        if sha256(blob) != meta.get("engine_sha256"):
            return Lookup(None, f"cached engine {engine_path} does not match its recorded sha256 (truncated or edited)")
        return Lookup(blob, f"cached engine {engine_path}")

    def _explain_miss(self, key: EngineKey) -> str:
        """Why nothing fits: the closest entry for the same graph and what changed, or that none exists."""
        same_graph = [k for k, _ in self.entries() if k.onnx_sha256 == key.onnx_sha256]
        if not same_graph:
            return f"no cached engine for this graph in {self.root}"
        closest = min(same_graph, key=lambda k: len(key.differences(k)))
        changed = ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in key.differences(closest).items())
        return f"cached engine for this graph no longer fits ({changed})"

    def store(self, key: EngineKey, engine: bytes) -> Path:
        """Write an entry atomically (engine, then sidecar); returns the engine path."""
        self.root.mkdir(parents=True, exist_ok=True)
        engine_path, meta_path = self.engine_path(key), self.meta_path(key)
        _atomic_write(engine_path, engine)
        meta = {"key": key.to_dict(), "engine_sha256": sha256(engine), "engine_bytes": len(engine)}
        _atomic_write(meta_path, json.dumps(meta, indent=2).encode())
        return engine_path

    def superseded(self, key: EngineKey) -> list[Path]:
        """Engines of the same graph, GPU, precision and batch range built by another TensorRT version.

        They can never load again once TensorRT was upgraded (or downgraded), so they are safe to delete.
        """
        return [path for other, path in self.entries()
                if other != key and set(key.differences(other)) == {"tensorrt_version"}]

    def remove(self, engine_path: Path) -> None:
        for path in (engine_path, engine_path.with_suffix(_META_SUFFIX)):
            path.unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
