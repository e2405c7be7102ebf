"""The recognizer's model state file: which bundle a live swap put in place, so a restart keeps it.

``ros2 param set /recognizer model new.hetskel`` swaps the model of the running node; the node then writes
``{"model": <new>, "previous": <the one before>, "changed": <UTC time>, "labels": <count>}`` to this file. At start,
a node given no ``model`` parameter runs the state's ``model`` (a launch picks it up with no change to its files),
and setting ``model`` to ``previous`` swaps back to the one before. The file is per node: by default
``$ROS_HOME/hetskel_ros/<namespace_and_name>.model.json`` (``ROS_HOME`` defaults to ``~/.ros``, where ROS keeps its
logs); the read-only parameter ``model_state`` names another file, ``none`` turns it off. Written atomically: an
interrupted write leaves the previous state.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PREVIOUS = "previous"  # the value of ``model`` that restores the model before the last swap
OFF = "none"


@dataclass(frozen=True)
class ModelState:
    model: str = ""
    previous: str = ""
    changed: str = ""  # UTC, ISO 8601
    labels: int = 0


def ros_home() -> Path:
    return Path(os.environ.get("ROS_HOME") or Path.home() / ".ros").expanduser()


def state_path(setting: str, node_fqn: str) -> Path | None:
    """The state file for the ``model_state`` parameter (``""``: the default per node; ``none``: no file)."""
    if setting.strip().lower() == OFF:
        return None
    if setting.strip():
        return Path(setting).expanduser()
    name = node_fqn.strip("/").replace("/", "__") or "recognizer"
    return ros_home() / "hetskel_ros" / f"{name}.model.json"


def read_state(path: Path | None) -> tuple[ModelState, str]:
    """(state, problem): an absent file is an empty state; an unreadable one is empty too, with why (logged)."""
    if path is None or not path.is_file():
        return ModelState(), ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ModelState(**{k: data[k] for k in ("model", "previous", "changed", "labels") if k in data}), ""
    except (OSError, ValueError, TypeError) as exc:
        return ModelState(), f"model state {path} is not readable ({exc}); ignored"


def write_state(path: Path | None, model: str, previous: str, labels: int) -> ModelState:
    state = ModelState(str(model), str(previous), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), int(labels))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    return state
