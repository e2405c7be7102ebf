"""diagnostic_msgs/DiagnosticArray for the recognizer: one status per input and one for the model.

Per input: measured rate against the configured one, messages, people accepted, messages with nobody in view,
decisions, active tracks and every drop by reason (totals since start; WARN when some were dropped in the last
period or the rate is off by more than 2x). A stall watchdog turns an input WARN, with the reason, when its people
are accepted but none of its tracks produced a decision for ``STALL_STRIDES`` strides after the first window was
due: the pattern that stalled labels while everything looked healthy (issue 19) can no longer hide.
Model: backend in use (and what was skipped), inference latency p50/p99 and batch size over recent batches,
windows, active tracks, buffered frames, resets and freed tracks. rqt_robot_monitor and diagnostic_aggregator read it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from hetskel_ros.ros.adapters import InputAdapter, InputConfig
from hetskel_ros.runtime.recognizer import Recognizer

OK, WARN, ERROR, STALE = (bytes([level]) for level in range(4))
STALL_STRIDES = 4  # strides without a decision, beyond a new person's first window, before an input is stalled


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, float):
        value = f"{value:.3f}"
    return KeyValue(key=key, value=str(value))


class DiagnosticsReporter:
    """Turns the recognizer's counters into a DiagnosticArray once per period (rates over that period)."""

    def __init__(self, node_name: str, recognizer: Recognizer, inputs: Sequence[InputConfig], backend,
                 adapters: Mapping[str, InputAdapter] | None = None) -> None:
        self.node_name = node_name
        self.adapters = dict(adapters or {})  # their status(): e.g. whether a robot's base motion is missing
        self.recognizer = recognizer
        self.inputs = list(inputs)
        self.backend = backend
        self._last_time: float | None = None
        self._last_messages: dict[str, int] = {}
        self._last_drops: dict[str, int] = {}
        self.internal_errors: Counter = Counter()  # the node's own failures (adapter crash, inference error)
        self._last_errors = 0
        self._last_observations: dict[str, int] = {}
        self._last_decisions: dict[str, int] = {}
        self._quiet_since: dict[str, float] = {}  # input -> when it began accepting people without deciding
        self.model_values: dict[str, object] = {}  # the model in use and its last live swap (the node sets them)

    @property
    def stall_after_s(self) -> float:
        config, span = self.recognizer.config, self.recognizer.span  # both may change live
        return config.min_window_fill * span + (STALL_STRIDES + 1) * config.window_stride_s

    def model_changed(self, backend, values: Mapping[str, object]) -> None:
        """A live model swap: report the new backend and model from now on."""
        self.backend = backend
        self.model_values = dict(values)

    def report(self, now: float, header_stamp) -> DiagnosticArray:
        elapsed = None if self._last_time is None else max(now - self._last_time, 1e-9)
        array = DiagnosticArray()
        array.header.stamp = header_stamp
        array.status = [self._input_status(spec, elapsed, now) for spec in self.inputs] + [self._model_status()]
        self._last_time = now
        return array

    def _stalled_for(self, name: str, now: float) -> float:
        """Seconds this input has accepted people without any decision of its tracks (0 when it is not)."""
        counters = self.recognizer.counters[name]
        accepted = counters.observations > self._last_observations.get(name, 0)
        decided = counters.decisions > self._last_decisions.get(name, 0)
        self._last_observations[name], self._last_decisions[name] = counters.observations, counters.decisions
        if decided or not accepted:
            self._quiet_since.pop(name, None)
            return 0.0
        since = self._quiet_since.setdefault(name, self._last_time if self._last_time is not None else now)
        return now - since

    def _input_status(self, spec: InputConfig, elapsed: float | None, now: float) -> DiagnosticStatus:
        counters = self.recognizer.counters[spec.name]
        stalled_s = self._stalled_for(spec.name, now)
        adapter = self.adapters.get(spec.name)
        adapter_warning, adapter_values = adapter.status() if adapter is not None else ("", {})
        drops_total = sum(counters.drops.values())
        new_messages = counters.messages - self._last_messages.get(spec.name, 0)
        new_drops = drops_total - self._last_drops.get(spec.name, 0)
        self._last_messages[spec.name] = counters.messages
        self._last_drops[spec.name] = drops_total
        rate = new_messages / elapsed if elapsed else 0.0
        level, message = OK, "ok"
        if counters.messages == 0:
            level, message = STALE, "no messages yet"
        elif elapsed and new_messages == 0:
            level, message = WARN, "no messages in the last period"
        elif stalled_s > self.stall_after_s:
            level, message = WARN, (f"stalled: people accepted for {stalled_s:.1f} s but no decision (one is due "
                                    f"every {self.recognizer.config.window_stride_s:g} s); see the drops and resets")
        elif new_drops:
            level, message = WARN, f"{new_drops} dropped in the last period"
        elif adapter_warning:
            level, message = WARN, adapter_warning
        elif elapsed and spec.rate_hz > 0 and not 0.5 * spec.rate_hz <= rate <= 2.0 * spec.rate_hz:
            level, message = WARN, f"rate {rate:.1f} Hz, configured {spec.rate_hz:g} Hz"
        values = [_kv("topic", spec.topic), _kv("kind", spec.kind), _kv("rate_hz", float(rate)),
                  _kv("expected_rate_hz", float(spec.rate_hz)), _kv("messages", counters.messages),
                  _kv("observations", counters.observations), _kv("nobody_in_view", counters.nobody_in_view),
                  _kv("decisions", counters.decisions), _kv("stalled_s", float(stalled_s)),
                  _kv("active_tracks", self.recognizer.active_tracks(spec.name)), _kv("dropped", drops_total)]
        values += [_kv(f"dropped.{reason}", count) for reason, count in sorted(counters.drops.items())]
        values += [_kv(key, value) for key, value in adapter_values.items()]
        return DiagnosticStatus(level=level, name=f"{self.node_name}: input {spec.name}", message=message,
                                hardware_id=spec.topic, values=values)

    def _model_status(self) -> DiagnosticStatus:
        rec = self.recognizer
        latencies = np.asarray(rec.latencies_s, np.float64) * 1e3
        batches = np.asarray(rec.batch_sizes, np.float64)
        values = [_kv("backend", self.backend.name), _kv("backend_detail", self.backend.describe()),
                  _kv("device", self.backend.device),
                  _kv("skipped_backends", "; ".join(f"{n}: {r}" for n, r in self.backend.fallbacks) or "none"),
                  _kv("active_tracks", rec.active_tracks()), _kv("buffered_frames", rec.buffered_frames()),
                  _kv("pending_windows", rec.pending)]
        values += [_kv(key, value) for key, value in self.model_values.items()]
        if latencies.size:
            values += [_kv("inference_latency_p50_ms", float(np.percentile(latencies, 50))),
                       _kv("inference_latency_p99_ms", float(np.percentile(latencies, 99))),
                       _kv("batch_size_mean", float(batches.mean()))]
        values += [_kv(event, count) for event, count in sorted(rec.events.items())]
        values += [_kv(f"error.{kind}", count) for kind, count in sorted(self.internal_errors.items())]
        level, message = OK, f"{self.backend.name} on {self.backend.device}"
        errors = sum(self.internal_errors.values())
        if errors > self._last_errors:
            level, message = ERROR, f"{errors - self._last_errors} internal error(s) in the last period"
        self._last_errors = errors
        return DiagnosticStatus(level=level, name=f"{self.node_name}: model", message=message,
                                hardware_id=self.backend.device, values=values)
