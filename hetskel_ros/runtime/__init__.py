"""Inference backends behind one interface: TensorRT, ONNX Runtime, PyTorch (no ROS).

    backend = load_backend(load_bundle(path))          # tensorrt -> onnxruntime -> torch, first that works
    features, scores = backend.infer(inputs)           # inputs: the model's named arrays, batch first
    backend.name, backend.device, backend.max_batch    # what runs; backend.fallbacks: what was skipped and why
"""

from hetskel_ros.runtime.backends import BACKENDS, DEFAULT_ORDER, create_backend, load_backend
from hetskel_ros.runtime.base import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    Backend,
    BackendError,
    BackendOptions,
    BackendUnavailableError,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_ORDER",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "Backend",
    "BackendError",
    "BackendOptions",
    "BackendUnavailableError",
    "create_backend",
    "load_backend",
]
