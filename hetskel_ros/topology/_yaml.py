"""Strict YAML reading: every problem becomes a TopologyError that names the file and the key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from hetskel_ros.topology.errors import TopologyError


def file_mtime(path: Path) -> float:
    """Modification time that keys a loader's cache (an edited file is read again); -1 for a missing file, so the
    loader itself reports it."""
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


def read_mapping(path: Path) -> dict[str, Any]:
    """Parse ``path`` as a YAML mapping; a missing file, bad syntax or a non-mapping top level is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TopologyError(f"{path}: malformed YAML{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise TopologyError(f"{path}: expected a YAML mapping at the top level, got {type(data).__name__}")
    return data


class Fields:
    """Typed access to one YAML mapping, so each wrong or missing key is reported with file and key name."""

    def __init__(self, data: Mapping[str, Any], path: Path, prefix: str = "") -> None:
        self.data = data
        self.path = path
        self.prefix = prefix

    def where(self, key: str) -> str:
        """``file: key 'a.b'``, the location used in every message."""
        return f"{self.path}: key '{self.prefix}{key}'"

    def error(self, key: str, message: str) -> TopologyError:
        return TopologyError(f"{self.where(key)} {message}")

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str, default: Any = ...) -> Any:
        if not self.has(key):
            if default is ...:
                raise self.error(key, "is missing")
            return default
        return self.data[key]

    def string(self, key: str, default: Any = ...) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, got {value!r}")
        return value

    def text(self, key: str) -> str:
        """An optional free-text field (description, source): '' when absent, an error when not a string."""
        value = self.raw(key, "")
        if not isinstance(value, str):
            raise self.error(key, f"must be text, got {value!r}")
        return value.strip()

    def integer(self, key: str, default: Any = ...) -> int:
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"must be an integer, got {value!r}")
        return value

    def string_list(self, key: str, default: Any = ...) -> list[str]:
        value = self.raw(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"must be a list of names, got {value!r}")
        return list(value)

    def pairs(self, key: str, default: Any = ...) -> list[tuple[str, str]]:
        value = self.raw(key, default)
        ok = isinstance(value, list) and all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, str) for v in p) for p in value
        )
        if not ok:
            raise self.error(key, f"must be a list of [name, name] pairs, got {value!r}")
        return [(a, b) for a, b in value]

    def name_map(self, key: str, default: Any = ...) -> dict[str, str]:
        value = self.raw(key, default)
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise self.error(key, f"must be a mapping of name: name, got {value!r}")
        return dict(value)

    def mapping(self, key: str, default: Any = ...) -> Fields:
        value = self.raw(key, default)
        if not isinstance(value, dict):
            raise self.error(key, f"must be a mapping, got {value!r}")
        return Fields(value, self.path, f"{self.prefix}{key}.")


def find_duplicates(names: list[str]) -> list[str]:
    """Names that occur more than once, in first-seen order."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    return duplicates
