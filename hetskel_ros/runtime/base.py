"""The one interface every inference backend implements, and the input checks they share.

A backend takes the model's named inputs (``hetskel_ros.model.config.INPUT_NAMES``) as numpy arrays with a leading
batch axis and returns ``(features, scores)`` as float32 numpy arrays. Batches larger than ``max_batch`` are split,
so callers never need to know a backend's limit; a lock makes one backend safe to share between ROS executor threads.
A bundle's taught head (hetskel_ros.model.head) is applied here, after the graph, the same way for every backend.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from hetskel_ros.model.bundle import Bundle
from hetskel_ros.model.config import INDEX_INPUTS, INPUT_NAMES
from hetskel_ros.model.config import OUTPUT_NAMES as OUTPUT_NAMES  # re-exported for the backends

PRECISIONS = ("fp32", "fp16")
DEVICES = ("auto", "cpu", "cuda")


class BackendError(RuntimeError):
    """A backend that cannot run, or inputs it cannot take; the message says which and why."""


class BackendUnavailableError(BackendError):
    """The backend's library or hardware is missing here (an expected condition, not a bug)."""


@dataclass
class BackendOptions:
    """Settings shared by all backends; each backend reads the ones that apply to it.

    max_batch: largest batch one call runs (TensorRT optimisation profile 1..max_batch; larger inputs are split).
    precision: TensorRT build precision ("fp16" default, "fp32"); ONNX Runtime and PyTorch always run FP32.
    device: "auto" (GPU when one is usable), "cpu" or "cuda".
    threads: CPU threads of ONNX Runtime's intra-op pool and PyTorch (None: library default, see the backends).
    cache_dir: TensorRT engine cache (None: $HETSKEL_ENGINE_CACHE or ~/.cache/hetskel_ros/engines).
    workspace_mb: TensorRT builder workspace limit (small on a Jetson, whose GPU shares the CPU's memory).
    opt_batch: batch size TensorRT tunes its kernels for (1: the latency of one person per update).
    gpu: CUDA device index.
    """

    max_batch: int = 32
    precision: str = "fp16"
    device: str = "auto"
    threads: int | None = None
    cache_dir: str | Path | None = None
    workspace_mb: int = 512
    opt_batch: int = 1
    gpu: int = 0

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ValueError(f"opt_batch must lie in 1..max_batch ({self.max_batch}), got {self.opt_batch}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {self.threads}")

    @classmethod
    def from_kwargs(cls, values: Mapping[str, object]) -> BackendOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TypeError(f"unknown backend option(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


def prepare_inputs(inputs: Mapping[str, np.ndarray], bundle: Bundle) -> dict[str, np.ndarray]:
    """Check names, shapes and topology indices against the bundle; return C-contiguous arrays of the graph's dtypes.

    A wrong input fails here with its name rather than deep inside a runtime (where TensorRT would not even check
    a topology index before reading a prompt row out of bounds).
    """
    missing = [name for name in INPUT_NAMES if name not in inputs]
    if missing:
        raise BackendError(f"model inputs lack {missing}; expected {list(INPUT_NAMES)}")
    unknown = sorted(set(inputs) - set(INPUT_NAMES))
    if unknown:
        raise BackendError(f"unknown model inputs {unknown}; expected {list(INPUT_NAMES)}")
    cfg = bundle.config
    T, J = cfg.window, cfg.joints
    batch = np.shape(inputs["x3d"])[0] if np.ndim(inputs["x3d"]) else 0
    expected = {"x3d": (batch, T, J, 3), "m3d": (batch, T, J), "t3d": (batch,), "x2d": (batch, T, J, 2),
                "m2d": (batch, T, J), "t2d": (batch,), "has3d": (batch,), "has2d": (batch,)}
    out: dict[str, np.ndarray] = {}
    for name in INPUT_NAMES:
        array = np.ascontiguousarray(inputs[name], dtype=np.int64 if name in INDEX_INPUTS else np.float32)
        if array.shape != expected[name]:
            raise BackendError(f"model input {name!r} has shape {array.shape}, expected {expected[name]} "
                               f"(batch, window={T}, joints={J})")
        out[name] = array
    if batch == 0:
        raise BackendError("model inputs hold an empty batch")
    topologies = max(len(cfg.topologies), 1)
    for name in INDEX_INPUTS:
        bad = out[name][(out[name] < 0) | (out[name] >= topologies)]
        if bad.size:
            raise BackendError(f"model input {name!r} holds topology index {int(bad[0])}, but bundle "
                               f"{bundle.path or '(in memory)'} has prompts for {topologies}: {list(cfg.topologies)}")
    if not np.all((out["has3d"] > 0.5) | (out["has2d"] > 0.5)):
        raise BackendError("every sample needs 3D or 2D input: has3d and has2d are both 0 in some row")
    return out


class Backend(ABC):
    """infer(inputs) -> (features, scores); ``name``, ``device``, ``precision``, ``max_batch`` describe it."""

    name: str = "?"

    def __init__(self, bundle: Bundle, options: BackendOptions):
        self.bundle = bundle
        self.options = options
        self.max_batch = options.max_batch
        self.device = "cpu"
        self.precision = "fp32"
        self.fallbacks: list[tuple[str, str]] = []  # (backend, reason) tried before this one by load_backend
        self._lock = threading.Lock()

    def infer(self, inputs: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Features (B, feature_dim) and class probabilities (B, classes), float32."""
        feeds = prepare_inputs(inputs, self.bundle)
        batch = len(feeds["x3d"])
        with self._lock:
            if batch <= self.max_batch:
                features, scores = self._run(feeds)
            else:
                parts = [self._run({k: v[i:i + self.max_batch] for k, v in feeds.items()})
                         for i in range(0, batch, self.max_batch)]
                features, scores = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        if self.bundle.head is not None:  # a taught head sits outside the graph (and any engine built from it)
            scores = self.bundle.head.probabilities(features)
        return features, scores

    @abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One batch of at most max_batch rows, already checked."""

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({self.precision}, max batch {self.max_batch})"

    def close(self) -> None:  # noqa: B027 - a no-op by design: only GPU backends hold something to release
        """Release what the backend holds (GPU memory, sessions); the default holds nothing to release."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
