"""Node ``recognizer``: skeleton streams of any configured topology in, hetskel_msgs/ActionArray on ``actions`` out.

``ros2 run hetskel_ros recognizer --ros-args --params-file config/recognize.yaml`` (or ``hetskel-launch``).

Each configured input (``inputs.names``; see hetskel_ros.ros.recognizer_params) gets a sensor-data QoS subscription
and the adapter of its ``kind`` (hetskel_ros.ros.adapters.ADAPTERS). Everything after the adapter is the ROS-free
:class:`~hetskel_ros.runtime.recognizer.Recognizer`, the same code offline bag evaluation runs: when a message
completes windows, they are classified at once in one batched inference call and published (reliable QoS).
Diagnostics go to /diagnostics every ``diagnostics_period_s`` on the ROS clock (use_sim_time is honoured), as do
track expiry checks. Bad input never stops the node: it is dropped and counted by reason.

``ros2 param set`` changes the post-processing parameters and ``model`` live (a swap between two inference calls that
keeps every track; docs/teach.md); every other parameter is read-only (recognizer_params.LIVE_PARAMETERS). A swap
is recorded in the model state file (hetskel_ros.ros.model_state), which a start without ``model`` reads.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import traceback
from pathlib import Path
from typing import Any

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from hetskel_msgs.msg import Action, ActionArray, ActionHypothesis
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from visualization_msgs.msg import MarkerArray

from hetskel_ros.model.bundle import BundleError, load_bundle
from hetskel_ros.ros.adapters import InputAdapter, adapter_class
from hetskel_ros.ros.model_state import PREVIOUS, ModelState, read_state, state_path, write_state
from hetskel_ros.ros.msg_dict import message_class
from hetskel_ros.ros.node_main import one_line, run_node
from hetskel_ros.ros.recognizer_diagnostics import DiagnosticsReporter
from hetskel_ros.ros.recognizer_markers import MarkerBuilder
from hetskel_ros.ros.recognizer_params import RecognizerParameters, declare_parameters
from hetskel_ros.runtime.backends import load_backend
from hetskel_ros.runtime.base import BackendError
from hetskel_ros.runtime.recognizer import GONE, Decision, Recognizer, RecognizerConfig
from hetskel_ros.runtime.samples import default_bundle_path

NS_PER_S = 1_000_000_000
LOG_EVERY_S = 10.0  # a repeated drop reason is logged at most this often per input


def to_time(seconds: float) -> Time:
    """Float seconds -> builtin_interfaces/Time (nanoseconds rounded; never nanosec == 1e9)."""
    total = round(seconds * NS_PER_S)
    return Time(sec=int(total // NS_PER_S), nanosec=int(total % NS_PER_S))


def action_array(decisions: list[Decision], stamp: float) -> ActionArray:
    """One ActionArray for one update: stamp = the newest window end; frame_id common to all entries or empty."""
    msg = ActionArray()
    msg.header.stamp = to_time(stamp)
    frames = {d.frame_id for d in decisions}
    msg.header.frame_id = frames.pop() if len(frames) == 1 else ""
    for decision in decisions:
        action = Action(track_id=decision.track_id, source=decision.source, window_start=to_time(decision.window_start),
                        label=decision.label, score=float(decision.score), started=decision.started,
                        ended=decision.ended, since=to_time(decision.since if math.isfinite(decision.since)
                                                            else decision.stamp),
                        hypotheses=[ActionHypothesis(class_id=h.class_id, label=h.label, score=float(h.score))
                                    for h in decision.hypotheses])
        action.header.stamp = to_time(decision.stamp)
        action.header.frame_id = decision.frame_id
        msg.actions.append(action)
    return msg


class RosLogHandler(logging.Handler):
    """Python logging of the ROS-free layers (e.g. why a backend was skipped) -> this node's ROS logger."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__(level=logging.INFO)
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.ros_logger.error(message)
        elif record.levelno >= logging.WARNING:
            self.ros_logger.warning(message)
        else:
            self.ros_logger.info(message)


class RecognizerNode(Node):
    """Subscriptions -> adapters -> Recognizer -> ActionArray, diagnostics and optional RViz markers."""

    def __init__(self, node_name: str = "recognizer", **kwargs: Any) -> None:
        self.backend = None  # destroy_node may run on a half-built node
        self.adapters: dict[str, InputAdapter] = {}
        super().__init__(node_name, **kwargs)
        self._log_bridge = RosLogHandler(self.get_logger())
        logging.getLogger("hetskel_ros").addHandler(self._log_bridge)
        self.params: RecognizerParameters = declare_parameters(self)
        if self.params.unknown:
            self.get_logger().warning(f"unknown parameter(s), ignored: {', '.join(self.params.unknown)}")
        settings = self.params.node
        self.state_path = state_path(settings.model_state, self.get_fully_qualified_name())
        state, problem = read_state(self.state_path)
        if problem:
            self.get_logger().warning(problem)
        model_path = settings.model or self._state_model(state) or str(default_bundle_path())
        try:
            bundle = load_bundle(model_path)
        except BundleError as exc:
            if settings.model or model_path != state.model:
                raise
            self.get_logger().warning(f"model state {self.state_path}: {exc}; using the shipped model")
            model_path = str(default_bundle_path())
            bundle = load_bundle(model_path)
        self.previous_model = state.previous if not settings.model and model_path == state.model else ""
        self.backend = load_backend(bundle, settings.backend_order(), **self._backend_options())  # logs skipped ones
        self.model_path = model_path
        self.adapters = {cfg.name: adapter_class(cfg.kind)(cfg, self) for cfg in self.params.inputs}
        specs = [self.adapters[cfg.name].spec() for cfg in self.params.inputs]
        self.recognizer = Recognizer(bundle, self.backend, specs, self.params.recognizer, self.params.fusion.rule())
        self.diagnostics = DiagnosticsReporter(self.get_name(), self.recognizer, self.params.inputs, self.backend,
                                               self.adapters)
        self.markers = MarkerBuilder(self.recognizer.skeleton) if settings.publish_markers else None
        self._latest: dict[tuple[str, int], Decision] = {}
        self._logged: dict[tuple[str, str], float] = {}
        self._reported_fallbacks: set[tuple[str, str]] = set()

        self.actions_pub = self.create_publisher(ActionArray, settings.actions_topic,
                                                 QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.markers_pub = (self.create_publisher(MarkerArray, settings.markers_topic, 10)
                            if self.markers is not None else None)
        sensor_qos = QoSProfile(history=qos_profile_sensor_data.history, depth=settings.input_queue_depth,
                                reliability=qos_profile_sensor_data.reliability,
                                durability=qos_profile_sensor_data.durability)
        self.subscriptions_by_input = {
            cfg.name: self.create_subscription(message_class(self.adapters[cfg.name].message_type), cfg.topic,
                                               lambda msg, name=cfg.name: self.on_message(name, msg), sensor_qos)
            for cfg in self.params.inputs}
        for name, adapter in self.adapters.items():  # adapters that hold messages back (waiting for /tf)
            adapter.on_ready = lambda name=name: self.on_released(name)
        self.release_timers = [self.create_timer(adapter.poll_period_s, lambda name=name: self.on_released(name))
                               for name, adapter in self.adapters.items() if adapter.poll_period_s > 0]
        self.diagnostics_timer = self.create_timer(settings.diagnostics_period_s, self.publish_diagnostics)
        expiry_period = min(0.25, self.params.recognizer.track_timeout_s / 4)
        self.expiry_timer = self.create_timer(expiry_period, self.on_expiry_timer)
        self.model_swap: dict[str, Any] = {}  # the last live swap, for diagnostics
        self.diagnostics.model_values = self._model_values()
        if not settings.model and state.model and model_path == state.model:
            self.set_parameters([Parameter("model", value=model_path)])  # `ros2 param get model` tells the truth
        self.add_pre_set_parameters_callback(self._resolve_model_alias)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        inputs = ", ".join(f"{c.name} ({c.kind} on '{self.resolve_topic_name(c.topic)}'"
                           f"{', view group ' + c.view_group if c.view_group else ''})" for c in self.params.inputs)
        self.get_logger().info(f"model {model_path} ({len(bundle.label_names)} actions, window {bundle.config.window} "
                               f"frames at {bundle.config.fps:g} fps), backend {self.backend.describe()}; "
                               f"inputs: {inputs}; actions on '{self.resolve_topic_name(settings.actions_topic)}'")

    # -- live parameters and model swap --------------------------------------------------------------------------
    def _backend_options(self) -> dict[str, Any]:
        settings = self.params.node
        options: dict[str, Any] = {"device": settings.device, "precision": settings.precision}
        if settings.threads:
            options["threads"] = settings.threads
        return options

    def _state_model(self, state: ModelState) -> str:
        """The state file's model when it still exists (else it is ignored, with a warning)."""
        if state.model and not Path(state.model).is_file():
            self.get_logger().warning(f"model state {self.state_path}: model {state.model} no longer exists; "
                                      f"using the shipped model")
            return ""
        return state.model

    def _resolve_model_alias(self, parameters: list[Parameter]) -> list[Parameter]:
        """``model: previous`` -> the path of the model before the last swap (so the parameter holds a path)."""
        out = []
        for parameter in parameters:
            if parameter.name == "model" and parameter.value == PREVIOUS and self.previous_model:
                parameter = Parameter("model", value=self.previous_model)
            out.append(parameter)
        return out

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Live parameters: new post-processing settings, or a new model loaded and checked beside the running
        one, then swapped in; anything wrong refuses the whole set with the reason and changes nothing.
        (Read-only parameters never get here: rclpy refuses them.)"""
        values = {p.name: p.value for p in parameters}
        config_changes = {k: v for k, v in values.items() if k in RecognizerConfig.names()}
        try:
            config = dataclasses.replace(self.recognizer.config, **config_changes)
        except (TypeError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        loaded = None
        if "model" in values:
            path = str(values["model"] or default_bundle_path())
            if values["model"] == PREVIOUS:
                return SetParametersResult(successful=False, reason="model: no previous model to restore (no swap "
                                                                    "recorded yet)")
            if path != self.model_path:
                began = time.perf_counter()
                try:
                    loaded = self._load_model(path)
                except Exception as exc:  # BundleError, BackendError, ValueError: all refuse the bundle
                    reason = f"model {path} refused, keeping {self.model_path}: {one_line(exc)}"
                    self.get_logger().error(reason)
                    return SetParametersResult(successful=False, reason=reason)
                loaded = (*loaded, time.perf_counter() - began)
        if loaded is not None:
            try:
                self._swap(path, *loaded)
            except Exception as exc:  # e.g. the old model failing on the windows it still had: the node goes on
                loaded[1].close()
                self._internal_error("model_swap", f"model swap to {path} failed: {exc!r}")
                return SetParametersResult(successful=False, reason=f"model {path}: swap failed ({one_line(exc)})")
        self.recognizer.config = config
        if config_changes:
            self.get_logger().info("live parameters: " + ", ".join(f"{k}={v!r}" for k, v in config_changes.items()))
        return SetParametersResult(successful=True)

    def _load_model(self, path: str) -> tuple[Any, Any]:
        """(bundle, backend) of a new model, checked against the running inputs; the running one is untouched."""
        bundle = load_bundle(path)
        self.recognizer.check_model(bundle)
        backend = load_backend(bundle, self.params.node.backend_order(), **self._backend_options())
        return bundle, backend

    def _swap(self, path: str, bundle: Any, backend: Any, load_s: float) -> None:
        """Between two inference calls (this runs in the executor, as the subscriptions do): windows already cut
        go out with the old model, then the new one takes every track over."""
        old_backend, old_path, old_labels = self.backend, self.model_path, len(self.recognizer.labels)
        decisions = self.recognizer.swap_model(bundle, backend, self.now_s())
        if decisions:
            self._publish(decisions)
        self.backend, self.model_path, self.previous_model = backend, path, old_path
        old_backend.close()
        try:
            state = write_state(self.state_path, path, old_path, len(bundle.label_names))
        except OSError as exc:  # the swap stands; only a restart would not keep it
            self.get_logger().error(f"model state {self.state_path} not written ({exc}): a restart will not keep "
                                    f"this model")
            state = write_state(None, path, old_path, len(bundle.label_names))
        self.model_swap = {"model_swap_time": state.changed, "model_swap_ros_time_s": self.now_s(),
                           "model_swap_load_ms": load_s * 1e3, "model_swap_from": old_path,
                           "model_swap_labels_before": old_labels}
        self.diagnostics.model_changed(backend, self._model_values())
        self.get_logger().info(f"model swapped: {old_path} -> {path} ({len(bundle.label_names)} actions, window "
                               f"{bundle.config.window} frames at {bundle.config.fps:g} fps, loaded in "
                               f"{load_s * 1e3:.0f} ms); state in {self.state_path or 'no file (model_state: none)'}")

    def _model_values(self) -> dict[str, Any]:
        bundle = self.recognizer.bundle
        return {"model": self.model_path, "labels": len(bundle.label_names),
                "head": "taught" if bundle.head is not None else "graph", **self.model_swap}

    # -- callbacks ----------------------------------------------------------------------------------------------
    def now_s(self) -> float:
        return self.get_clock().now().nanoseconds / NS_PER_S

    def on_message(self, input_name: str, msg: Any) -> None:
        """Adapter -> recognizer; runs the windows this message completed. Never raises (a bad message is counted)."""
        now = self.now_s()
        self.recognizer.count_message(input_name)
        adapter = self.adapters[input_name]
        holding = adapter.holding()
        try:
            observations, rejected = adapter.convert_parts(msg)
        except Exception as exc:  # an adapter bug must not stop the node: count it and say what happened
            self._internal_error("adapter", f"input '{input_name}': adapter failed on a message: {exc!r}")
            self.recognizer.count_drop(input_name, "adapter_error")
            return
        if not observations and not rejected and adapter.holding() <= holding:
            self.recognizer.count_nobody(input_name)
        self._use(input_name, [observations], rejected, now)
        if adapter.holding():
            self.on_released(input_name)

    def on_released(self, input_name: str) -> None:
        """Messages an adapter held back (e.g. waiting for their transform) that are due now, one message at a time."""
        adapter = self.adapters.get(input_name)
        if adapter is None or not adapter.holding():
            return
        now = self.now_s()
        try:
            messages, rejected = adapter.release(now)
        except Exception as exc:
            self._internal_error("adapter", f"input '{input_name}': adapter failed releasing messages: {exc!r}")
            return
        if messages or rejected:
            self._use(input_name, messages, rejected, now)

    def _use(self, input_name: str, messages: list[list], rejected: list, now: float) -> None:
        """Count the rejections, buffer each message's observations, and run the windows they completed."""
        for rejection in rejected:
            self.recognizer.count_drop(input_name, rejection.reason)
            self._log_drop(input_name, rejection.reason, str(rejection))
        try:
            for observations in messages:
                self.recognizer.observe(input_name, observations, now)
        except Exception as exc:
            self._internal_error("recognizer", f"input '{input_name}': {exc!r}")
            return
        self._report_prompt_fallbacks()
        if self.recognizer.pending:
            self.run_step(now)

    def run_step(self, now: float) -> None:
        try:
            decisions = self.recognizer.step(now)
        except (BackendError, ValueError, RuntimeError) as exc:
            self._internal_error("inference", f"inference failed: {exc}")
            return
        if decisions:
            self._publish(decisions)

    def _publish(self, decisions: list[Decision]) -> None:
        self.actions_pub.publish(action_array(decisions, max(d.stamp for d in decisions)))
        for decision in decisions:
            if decision.label == GONE:  # the person left: nothing to mark
                self._latest.pop((decision.input, decision.track_id), None)
            else:
                self._latest[(decision.input, decision.track_id)] = decision
        if self.markers is not None:
            self.markers_pub.publish(self.markers.build(self.recognizer.latest_frames(), self._latest,
                                                        self.get_clock().now().to_msg()))

    def on_expiry_timer(self) -> None:
        """Free tracks nobody has seen for track_timeout_s (also notices the ROS clock jumping back)."""
        try:
            self.run_step(self.now_s())  # step(): clock check, expiry, and any window still pending
        except Exception as exc:
            self._internal_error("recognizer", f"track expiry failed: {exc!r}")
        live = set(self.recognizer.track_keys())
        self._latest = {key: d for key, d in self._latest.items() if key in live}

    def publish_diagnostics(self) -> None:
        self.diagnostics_pub.publish(self.diagnostics.report(self.now_s(), self.get_clock().now().to_msg()))

    # -- logging ------------------------------------------------------------------------------------------------
    def _log_drop(self, input_name: str, reason: str, detail: str) -> None:
        key = (input_name, reason)
        last = self._logged.get(key)
        if last is None or time.monotonic() - last >= LOG_EVERY_S:
            self._logged[key] = time.monotonic()
            total = self.recognizer.counters[input_name].drops[reason]
            self.get_logger().warning(f"input '{input_name}': dropped ({reason}, {total} so far): {detail}")

    def _internal_error(self, kind: str, detail: str) -> None:
        self.diagnostics.internal_errors[kind] += 1
        key = ("internal", kind)
        last = self._logged.get(key)
        if last is None or time.monotonic() - last >= LOG_EVERY_S:
            self._logged[key] = time.monotonic()
            self.get_logger().error(f"{detail}\n{traceback.format_exc()}")

    def _report_prompt_fallbacks(self) -> None:
        for (input_name, topology), used in self.recognizer.prompt_fallbacks.items():
            if (input_name, topology) not in self._reported_fallbacks:
                self._reported_fallbacks.add((input_name, topology))
                self.get_logger().warning(f"input '{input_name}': the model has no prompts for topology "
                                          f"'{topology}'; using those of '{used}' (set inputs.{input_name}."
                                          f"prompt_topology to choose)")

    def destroy_node(self) -> None:
        """Release adapters and the backend, then the node (timers and subscriptions go with it)."""
        logging.getLogger("hetskel_ros").removeHandler(self._log_bridge)
        for adapter in self.adapters.values():
            adapter.close()
        self.adapters = {}
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    """Console entry point ``recognizer``. Ctrl-C and SIGTERM end it cleanly (exit status 0), also during start-up."""
    run_node("recognizer", RecognizerNode, args, config_errors=(ValueError, BundleError, BackendError))


if __name__ == "__main__":
    main()

