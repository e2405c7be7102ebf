"""Where the package's data files (config/, the shipped model) are found.

A source checkout (editable install) reads them beside the package; a colcon install reads them from
``share/hetskel_ros``. Topologies and robot mappings are looked up along a search path of configuration layers:
the directories of ``HETSKEL_CONFIG_PATH`` (separated like ``AMENT_PREFIX_PATH``), then ``HETSKEL_CONFIG_DIR``,
then the shipped config. A layer holds only what it adds or replaces (``topologies/<name>.yaml``,
``robots/<name>.yaml``); the first layer that has a name wins, and the shipped ones stay visible. The unified
skeleton, the joint vocabulary and the parameter files always come from the shipped config.
"""

from __future__ import annotations

import os
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """Root that holds ``config/`` and ``models/``: the source checkout, else the ament share directory."""
    if (_SOURCE_ROOT / "config").is_dir():
        return _SOURCE_ROOT
    try:  # installed by colcon: data files sit under share/hetskel_ros
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("hetskel_ros"))
    except Exception as exc:  # any failure means the same thing to the user: not installed
        raise FileNotFoundError(
            f"hetskel_ros data files not found beside {_SOURCE_ROOT} nor in an ament share directory"
        ) from exc


def relative(path: str | Path) -> str:
    """A path as results and provenance record it: relative to the repository (../shared/data/... for the shared
    data sets), never a machine's absolute path; just the file name where no relative path exists."""
    try:
        return os.path.relpath(Path(path).resolve(), share_dir().resolve())
    except ValueError:
        return Path(path).name


CONFIG_PATH_ENV = "HETSKEL_CONFIG_PATH"
CONFIG_DIR_ENV = "HETSKEL_CONFIG_DIR"  # one more layer (it replaced the whole config once)


def config_dir() -> Path:
    """The shipped configuration directory (unified skeleton, joint vocabulary, parameter files)."""
    return share_dir() / "config"


def config_layers() -> list[Path]:
    """Configuration directories in search order: the user's layers, then the shipped config."""
    layers = [Path(p).expanduser() for p in os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep) if p]
    if os.environ.get(CONFIG_DIR_ENV):
        layers.append(Path(os.environ[CONFIG_DIR_ENV]).expanduser())
    layers.append(config_dir())
    unique: list[Path] = []
    for layer in layers:
        if layer.resolve() not in [u.resolve() for u in unique]:
            unique.append(layer)
    return unique


def config_subdirs(name: str) -> list[Path]:
    """``<layer>/<name>`` of every configuration layer that has it, in search order (e.g. "topologies")."""
    return [layer / name for layer in config_layers() if (layer / name).is_dir()]


def find_config_file(subdir: str, name: str) -> Path | None:
    """``<subdir>/<name>.yaml`` of the first layer that has it."""
    for directory in config_subdirs(subdir):
        try:
            if (directory / f"{name}.yaml").is_file():
                return directory / f"{name}.yaml"
        except (OSError, ValueError):  # a name the file system cannot hold (too long, a NUL byte) is just unknown
            return None
    return None


def list_config_names(subdir: str) -> list[str]:
    """Names (file stems) of ``<subdir>/*.yaml`` over every layer."""
    return sorted({p.stem for directory in config_subdirs(subdir) for p in directory.glob("*.yaml")})


def models_dir() -> Path:
    """Directory of the shipped model bundles."""
    return share_dir() / "models"
