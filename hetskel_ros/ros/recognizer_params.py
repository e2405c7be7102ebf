"""The recognizer node's ROS parameters (config/recognize.yaml), declared on a node and read into plain settings.

Inputs are nested parameters, the ROS-idiomatic way to configure a list of things::

    inputs:
      names: [depth, rgb]
      depth: {topic: body_tracking, kind: azure_markers, rate_hz: 30.0, view_group: camera}
      rgb:   {topic: pose_2d, kind: skeleton_array, topology: coco17, rate_hz: 30.0, view_group: camera}

so ``inputs.names`` is read first and ``inputs.<name>.<key>`` declared for each name (plus the adapter kind's own
keys, InputAdapter.parameters). Every error names the parameter at fault. A listed input needs its ``topic``; only
the built-in default (no ``inputs.names`` given at all) is the input ``skeletons`` on topic ``skeletons``.
Parameters that were given but that nothing declares (a misspelt ``threshhold``) are collected in ``unknown`` for
the node to warn about; sections of inputs that are not listed are left alone (a second parameter file may replace
the list, as config/recognize_rgb.yaml does).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import NameValidationException
from rclpy.expand_topic_name import expand_topic_name
from rclpy.validate_full_topic_name import validate_full_topic_name
from rclpy.validate_topic_name import validate_topic_name

from hetskel_ros.ros.adapters import InputConfig, adapter_class
from hetskel_ros.runtime.association import AssociationRule
from hetskel_ros.runtime.backends import BACKENDS, DEFAULT_ORDER
from hetskel_ros.runtime.recognizer import RecognizerConfig

INPUT_DEFAULTS: dict[str, Any] = {"topic": "", "kind": "skeleton_array", "topology": "", "robot": "", "rate_hz": 30.0,
                                  "view_group": "", "prompt_topology": ""}


@dataclass(frozen=True)
class NodeSettings:
    """Everything but the recognizer's own settings."""

    model: str = ""  # "" = the model state file's, else the shipped models/default.hetskel (live: swaps the model)
    model_state: str = ""  # state file of live swaps ("" = $ROS_HOME/hetskel_ros/<node>.model.json; "none" = off)
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
    unknown: tuple[str, ...] = ()  # given but declared by nothing: with a suggestion where one is close


# Parameters ``ros2 param set`` changes in a running node (RecognizerNode's on-set callback); every other one is
# declared read-only, so that a set is refused instead of reporting success and changing nothing.
LIVE_PARAMETERS = ("model", "threshold", "release_threshold", "smoothing", "top_k", "idle_motion", "restart_on_change",
                   "confirm_windows", "release_windows")

# Declared by rclpy itself, or rclpy's QoS overrides: never unknown.
ROS_OWN_PARAMETERS = ("use_sim_time", "start_type_description_service")
ROS_OWN_PREFIXES = ("qos_overrides.",)


def given_parameters(node: Any) -> set[str]:
    """Names of the parameters the user gave (parameter files, ``-p``, overrides), whether declared or not."""
    given = getattr(node, "given_parameters", None)  # the offline ParameterFile
    if callable(given):
        return set(given())
    return set(getattr(node, "_parameter_overrides", {}))  # rclpy keeps no public list of them


def _declare(node: Any, name: str, default: Any, declared_names: set[str] | None = None) -> Any:
    """Declare one parameter; a value of the wrong type (e.g. 1 for a float) fails with the parameter's name."""
    declared = list(default) if isinstance(default, tuple) else default
    if declared_names is not None:
        declared_names.add(name)
    descriptor = ParameterDescriptor(name=name, read_only=name not in LIVE_PARAMETERS,
                                     description="" if name not in LIVE_PARAMETERS else "changes live")
    try:
        value = node.declare_parameter(name, declared, descriptor).value
    except Exception as exc:  # rclpy's InvalidParameterTypeException and friends
        raise ValueError(f"parameter '{name}': {exc} (default {declared!r} shows the expected type)") from None
    if isinstance(default, tuple):
        return () if value is None else tuple(value)  # an empty YAML list reaches rclpy without a type: None
    return value


def _declare_fields(node: Any, cls: type, prefix: str, declared_names: set[str]) -> dict[str, Any]:
    return {item.name: _declare(node, prefix + item.name, item.default, declared_names)
            for item in dataclasses.fields(cls)}


def _check_topic(parameter: str, topic: str) -> None:
    try:
        validate_topic_name(topic)
        validate_full_topic_name(expand_topic_name(topic, "recognizer", "/"))
    except NameValidationException as exc:
        reason = (str(exc).splitlines() or ["invalid"])[0].rstrip(":")
        raise ValueError(f"parameter '{parameter}': '{topic}' is not a valid topic name ({reason})") from None


def unknown_parameters(given: set[str], declared: set[str], names: list[str]) -> tuple[str, ...]:
    """Given parameters nothing declared, each with the closest declared name (a misspelling) where one is close.
    ``inputs.<x>.*`` of an input not in ``names`` is left alone: another file's section, not a mistake."""
    unknown = []
    for name in sorted(given - declared):
        parts = name.split(".")
        if name in ROS_OWN_PARAMETERS or name.startswith(ROS_OWN_PREFIXES):
            continue
        if len(parts) >= 3 and parts[0] == "inputs" and parts[1] not in names:
            continue
        close = difflib.get_close_matches(name, sorted(declared), n=1, cutoff=0.8)
        unknown.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return tuple(unknown)


def declare_parameters(node: Any) -> RecognizerParameters:
    """Declare every parameter on ``node`` with its default, read the values, and check them."""
    declared: set[str] = set()
    given = given_parameters(node)
    settings = NodeSettings(**_declare_fields(node, NodeSettings, "", declared))
    _check_topic("actions_topic", settings.actions_topic)
    _check_topic("markers_topic", settings.markers_topic)
    recognizer = RecognizerConfig(**_declare_fields(node, RecognizerConfig, "", declared))
    fusion = FusionSettings(**_declare_fields(node, FusionSettings, "fusion.", declared))
    fusion.rule()  # validates
    listed = "inputs.names" in given
    names = list(_declare(node, "inputs.names", ("skeletons",), declared))
    if not names or len(set(names)) != len(names) or not all(names):
        raise ValueError(f"parameter 'inputs.names' must list unique, non-empty input names, got {names}")
    inputs = []
    for name in names:
        prefix = f"inputs.{name}."
        if listed and prefix + "topic" not in given:
            what = "has no topic" if any(g.startswith(prefix) for g in given) else "has no section"
            raise ValueError(f"input '{name}' of 'inputs.names' {what}: parameter '{prefix}topic' is required")
        values = {key: _declare(node, prefix + key, default, declared) for key, default in INPUT_DEFAULTS.items()}
        topic = values["topic"] or (name if not listed else "")
        _check_topic(prefix + "topic", topic)
        try:
            cls = adapter_class(values["kind"])
        except ValueError as exc:
            raise ValueError(f"parameter '{prefix}kind': {exc}") from None
        params = {key: _declare(node, prefix + key, default, declared) for key, default in cls.parameters.items()}
        if values["rate_hz"] < 0:
            raise ValueError(f"parameter '{prefix}rate_hz' must be >= 0 (0: unknown), got {values['rate_hz']}")
        inputs.append(InputConfig(name=name, topic=topic, kind=values["kind"],
                                  topology=values["topology"], robot=values["robot"], rate_hz=float(values["rate_hz"]),
                                  view_group=values["view_group"], prompt_topology=values["prompt_topology"],
                                  params=params))
    return RecognizerParameters(settings, recognizer, fusion, tuple(inputs), unknown_parameters(given, declared, names))
