"""The recognizer node's ROS parameters (config/recognize.yaml), declared on a node and read into plain settings.

Inputs are nested parameters, the ROS-idiomatic way to configure a list of things::

    inputs:
      names: [depth, rgb]
      depth: {topic: body_tracking, kind: azure_markers, rate_hz: 30.0, view_group: camera}
      rgb:   {topic: pose_2d, kind: skeleton_array, topology: coco17, rate_hz: 30.0, view_group: camera}

so ``inputs.names`` is read first and ``inputs.<name>.<key>`` declared for each name (plus the adapter kind's own
keys, InputAdapter.parameters). Every error names the parameter at fault.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hetskel_ros.ros.adapters import InputConfig, adapter_class
from hetskel_ros.runtime.association import AssociationRule
from hetskel_ros.runtime.backends import BACKENDS, DEFAULT_ORDER
from hetskel_ros.runtime.recognizer import RecognizerConfig

INPUT_DEFAULTS: dict[str, Any] = {"topic": "", "kind": "skeleton_array", "topology": "", "robot": "", "rate_hz": 30.0,
                                  "view_group": "", "prompt_topology": ""}


@dataclass(frozen=True)
class NodeSettings:
    """Everything but the recognizer's own settings."""

    model: str = ""  # "" = the shipped models/default.hetskel
    backends: tuple[str, ...] = DEFAULT_ORDER
    backend: str = ""  # overrides ``backends``: one name or a comma-separated order (a launch argument)
    device: str = "auto"
    threads: int = 0  # 0 = the backend's default
    precision: str = "fp16"
    actions_topic: str = "actions"
    input_queue_depth: int = 10
    diagnostics_period_s: float = 1.0
    publish_markers: bool = False
    markers_topic: str = "markers"

    def __post_init__(self) -> None:
        unknown = [b for b in self.backend_order() if b not in BACKENDS]
        if not self.backend_order() or unknown:
            name = "backend" if self.backend.strip() else "backends"
            raise ValueError(f"parameter '{name}' names {unknown or 'nothing'}; known backends: {list(BACKENDS)}")
        if self.threads < 0 or self.input_queue_depth < 1 or self.diagnostics_period_s <= 0:
            raise ValueError("parameters 'threads' >= 0, 'input_queue_depth' >= 1 and 'diagnostics_period_s' > 0 "
                             f"required, got {self.threads}, {self.input_queue_depth}, {self.diagnostics_period_s}")


    def backend_order(self) -> tuple[str, ...]:
        if self.backend.strip():
            return tuple(b.strip() for b in self.backend.split(",") if b.strip())
        return tuple(self.backends)


@dataclass(frozen=True)
class FusionSettings:
    association: str = "track_id"
    max_distance_m: float = 0.5
    max_distance_px: float = 80.0
    projection: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)  # fx, fy, cx, cy; zeros = not set

    def rule(self) -> AssociationRule:
        projection = tuple(self.projection) if any(self.projection) else ()
        return AssociationRule(self.association, self.max_distance_m, self.max_distance_px, projection)


@dataclass(frozen=True)
class RecognizerParameters:
    node: NodeSettings
    recognizer: RecognizerConfig
    fusion: FusionSettings
    inputs: tuple[InputConfig, ...]


def _declare(node: Any, name: str, default: Any) -> Any:
    """Declare one parameter; a value of the wrong type (e.g. 1 for a float) fails with the parameter's name."""
    declared = list(default) if isinstance(default, tuple) else default
    try:
        value = node.declare_parameter(name, declared).value
    except Exception as exc:  # rclpy's InvalidParameterTypeException and friends
        raise ValueError(f"parameter '{name}': {exc} (default {declared!r} shows the expected type)") from None
    return tuple(value) if isinstance(default, tuple) else value


def _declare_fields(node: Any, cls: type, prefix: str = "") -> dict[str, Any]:
    return {item.name: _declare(node, prefix + item.name, item.default) for item in dataclasses.fields(cls)}


def declare_parameters(node: Any) -> RecognizerParameters:
    """Declare every parameter on ``node`` with its default, read the values, and check them."""
    settings = NodeSettings(**_declare_fields(node, NodeSettings))
    recognizer = RecognizerConfig(**_declare_fields(node, RecognizerConfig))
    fusion = FusionSettings(**_declare_fields(node, FusionSettings, "fusion."))
    fusion.rule()  # validates
    names = list(_declare(node, "inputs.names", ("skeletons",)))
    if not names or len(set(names)) != len(names) or not all(names):
        raise ValueError(f"parameter 'inputs.names' must list unique, non-empty input names, got {names}")
    inputs = []
    for name in names:
        prefix = f"inputs.{name}."
        values = {key: _declare(node, prefix + key, default) for key, default in INPUT_DEFAULTS.items()}
        try:
            cls = adapter_class(values["kind"])
        except ValueError as exc:
            raise ValueError(f"parameter '{prefix}kind': {exc}") from None
        params = {key: _declare(node, prefix + key, default) for key, default in cls.parameters.items()}
        if values["rate_hz"] < 0:
            raise ValueError(f"parameter '{prefix}rate_hz' must be >= 0 (0: unknown), got {values['rate_hz']}")
        inputs.append(InputConfig(name=name, topic=values["topic"] or name, kind=values["kind"],
                                  topology=values["topology"], robot=values["robot"], rate_hz=float(values["rate_hz"]),
                                  view_group=values["view_group"], prompt_topology=values["prompt_topology"],
                                  params=params))
    return RecognizerParameters(settings, recognizer, fusion, tuple(inputs))
