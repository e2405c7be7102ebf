"""Where the package's data files (config/, the shipped model) are found.

A source checkout (editable install) reads them beside the package; a colcon install reads them from
``share/hetskel_ros``; ``HETSKEL_CONFIG_DIR`` overrides both so a user can point at their own copy.
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


def config_dir() -> Path:
    """Directory of the configuration files (``HETSKEL_CONFIG_DIR`` overrides)."""
    override = os.environ.get("HETSKEL_CONFIG_DIR")
    return Path(override) if override else share_dir() / "config"


def models_dir() -> Path:
    """Directory of the shipped model bundles."""
    return share_dir() / "models"
