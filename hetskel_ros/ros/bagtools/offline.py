"""Offline mode of ``hetskel-bag eval``: a bag through the recognizer node's own pipeline, as fast as possible.

The node's parameter file (config/recognize.yaml, plus overrides) is read with the node's own declarations
(hetskel_ros.ros.recognizer_params.declare_parameters, here against the YAML instead of rclpy), the same adapters
convert the bag's messages (deserialised by rclpy, exactly what a subscription delivers) and the same ROS-free
Recognizer buffers, windows and classifies them: per message, adapter -> observe -> one batched step when windows
are due, as RecognizerNode.on_message does. The clock is the bag's receive time stamps (what /clock carries when
the bag is played with use_sim_time), so the result depends only on the bag and is the same every run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hetskel_ros.model.bundle import load_bundle
from hetskel_ros.paths import config_dir
from hetskel_ros.ros.adapters import InputAdapter, adapter_class
from hetskel_ros.ros.bagtools.bag_io import NS_PER_S, BagContents, BagError
from hetskel_ros.ros.msg_dict import message_class
from hetskel_ros.ros.recognizer_params import RecognizerParameters, declare_parameters
from hetskel_ros.runtime.backends import load_backend
from hetskel_ros.runtime.detection_metrics import Prediction
from hetskel_ros.runtime.recognizer import Decision, Recognizer
from hetskel_ros.runtime.samples import default_bundle_path

NODE_NAME = "recognizer"


def default_config() -> Path:
    return config_dir() / "recognize.yaml"


class ParameterFile:
    """Parameters of one node from ROS 2 parameter files, answering ``declare_parameter`` as rclpy does.

    Sections apply in file order: ``/**`` (any node), then ``<name>`` or ``/<name>`` (this node); later files and
    ``overrides`` win. As in rclpy, a value must have its default's type (an integer for a float parameter is an
    error naming the parameter); parameters nobody declares are ignored.
    """

    def __init__(self, paths: Iterable[str | Path], overrides: Mapping[str, Any] | None = None,
                 node_name: str = NODE_NAME):
        self.values: dict[str, Any] = {}
        for path in paths:
            self.values.update(self._read(Path(path), node_name))
        self.values.update(overrides or {})

    @staticmethod
    def _read(path: Path, node_name: str) -> dict[str, Any]:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"parameter file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"parameter file {path}: expected a mapping of node names")
        values: dict[str, Any] = {}
        for key in ("/**", "**", node_name, f"/{node_name}"):
            section = data.get(key)
            if section is None:
                continue
            params = section.get("ros__parameters") if isinstance(section, dict) else None
            if not isinstance(params, dict):
                raise ValueError(f"parameter file {path}: section '{key}' has no 'ros__parameters' mapping")
            values.update(flatten(params))
        return values

    def given_parameters(self) -> set[str]:
        return set(self.values)

    def declare_parameter(self, name: str, default: Any, descriptor: Any = None) -> Any:
        value = self.values.get(name, default)
        if not _same_type(value, default):
            raise ValueError(f"parameter '{name}' = {value!r} has type {type(value).__name__}, expected "
                             f"{type(default).__name__} like its default {default!r}")
        return _Value(value)


@dataclass(frozen=True)
class _Value:
    value: Any


def _same_type(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, list):
        return isinstance(value, list) and (not value or not default or all(_same_type(v, default[0]) for v in value))
    return type(value) is type(default)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def load_parameters(config: str | Path | None = None, overrides: Mapping[str, Any] | None = None
                    ) -> RecognizerParameters:
    """The recognizer node's parameters from its parameter file (default config/recognize.yaml)."""
    return declare_parameters(ParameterFile([config or default_config()], overrides))


def prediction(decision: Decision) -> Prediction:
    return Prediction(decision.track_id, decision.stamp, decision.window_start, decision.label, decision.score,
                      decision.source)


@dataclass
class OfflineResult:
    predictions: list[Prediction]
    messages: int
    drops: dict[str, dict[str, int]]  # input -> reason -> count
    events: dict[str, int]
    backend: str
    model: str
    undecodable: dict[str, int] = field(default_factory=dict)  # topic -> messages rclpy could not deserialise


class OfflinePipeline:
    """What RecognizerNode builds, without ROS: parameters -> bundle, backend, adapters, Recognizer."""

    def __init__(self, parameters: RecognizerParameters):
        self.parameters = parameters
        settings = parameters.node
        self.model_path = settings.model or str(default_bundle_path())
        bundle = load_bundle(self.model_path)
        options: dict[str, Any] = {"device": settings.device, "precision": settings.precision}
        if settings.threads:
            options["threads"] = settings.threads
        self.backend = load_backend(bundle, settings.backend_order(), **options)
        self.adapters: dict[str, InputAdapter] = {cfg.name: adapter_class(cfg.kind)(cfg, None)
                                                  for cfg in parameters.inputs}
        specs = [self.adapters[cfg.name].spec() for cfg in parameters.inputs]
        self.recognizer = Recognizer(bundle, self.backend, specs, parameters.recognizer, parameters.fusion.rule())
        timeout = parameters.recognizer.track_timeout_s
        self.expiry_period = min(0.25, timeout / 4)  # the node's expiry timer period
        self._next_expiry: float | None = None

    def topics(self) -> dict[str, str]:
        """Bag topic -> input name (the configured topics, made absolute as a node without namespace does)."""
        return {"/" + cfg.topic.lstrip("/"): cfg.name for cfg in self.parameters.inputs}

    def handle(self, input_name: str, msg: Any, now: float) -> list[Decision]:
        """One message, as RecognizerNode.on_message handles it (after the node's timer ticks due before it)."""
        decisions = self._timer_until(now)
        recognizer = self.recognizer
        recognizer.count_message(input_name)
        observations, rejected = self.adapters[input_name].convert_parts(msg)
        if not observations and not rejected:
            recognizer.count_nobody(input_name)
        for rejection in rejected:
            recognizer.count_drop(input_name, rejection.reason)
        recognizer.observe(input_name, observations, now)
        adapter = self.adapters[input_name]
        if adapter.holding():  # e.g. joint states waiting for their transform: whatever is due now
            released, late = adapter.release(now)
            for rejection in late:
                recognizer.count_drop(input_name, rejection.reason)
            for message in released:
                recognizer.observe(input_name, message, now)
        return decisions + (recognizer.step(now) if recognizer.pending else [])

    def _timer_until(self, now: float) -> list[Decision]:
        """The node's expiry timer (RecognizerNode.on_expiry_timer: step() = clock check, expiry, anything
        pending), ticking on the bag clock."""
        decisions: list[Decision] = []
        if self._next_expiry is None or now < self._next_expiry - 1.0:  # first message, or the clock went back
            self._next_expiry = now + self.expiry_period
            return decisions
        while self._next_expiry <= now:
            decisions += self.recognizer.step(self._next_expiry)
            self._next_expiry += self.expiry_period
        return decisions

    def run(self, bag: BagContents, on_decisions: Callable[[float, list[Decision]], None] | None = None
            ) -> OfflineResult:
        from rclpy.serialization import deserialize_message

        topics = self.topics()
        used = [m for m in bag.messages if m.topic in topics]
        if not used:
            raise BagError(f"{bag.path}: none of the recognizer's input topics {sorted(topics)} is in the bag "
                           f"(it has {sorted(bag.topics)}); set the inputs' topics in the config")
        classes: dict[str, type] = {}
        predictions: list[Prediction] = []
        undecodable: Counter = Counter()
        for message in used:
            name = topics[message.topic]
            cls = classes.get(message.msgtype) or classes.setdefault(message.msgtype, message_class(message.msgtype))
            now = message.timestamp_ns / NS_PER_S
            try:
                msg = deserialize_message(message.data, cls)
            except Exception:  # damaged bytes (RMWError and kin): counted and skipped, never the end of the run
                undecodable[message.topic] += 1
                continue
            decisions = self.handle(name, msg, now)
            if decisions:
                predictions += [prediction(d) for d in decisions]
                if on_decisions is not None:
                    on_decisions(now, decisions)
        drops = {name: dict(c.drops) for name, c in self.recognizer.counters.items()}
        return OfflineResult(predictions, len(used), drops, dict(self.recognizer.events), self.backend.describe(),
                             self.model_path, dict(undecodable))

    def close(self) -> None:
        for adapter in self.adapters.values():
            adapter.close()
        self.backend.close()


def run_offline(bag: BagContents, config: str | Path | None = None, overrides: Mapping[str, Any] | None = None
                ) -> OfflineResult:
    pipeline = OfflinePipeline(load_parameters(config, overrides))
    try:
        return pipeline.run(bag)
    finally:
        pipeline.close()
