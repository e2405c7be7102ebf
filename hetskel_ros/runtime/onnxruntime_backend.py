"""ONNX Runtime backend: the default where no TensorRT GPU exists (CPU), or with the CUDA execution provider.

Session options are tuned for the latency of small batches on a few cores: full graph optimisation (operator
fusion: attention, LayerNorm, GELU, MatMul+Add), sequential execution (the graph is one chain, so an inter-op
pool only adds hand-offs), and a small intra-op pool (see ``default_threads``).
"""

from __future__ import annotations

import os

import numpy as np

from hetskel_ros.model.bundle import Bundle
from hetskel_ros.runtime.base import OUTPUT_NAMES, Backend, BackendError, BackendOptions, BackendUnavailableError


def default_threads() -> int:
    """Intra-op threads when none are configured: one per core up to 2.

    Measured on the small model (bench/README.md): a second thread gains little at batch 1 and more at batch 32;
    beyond 2, hand-off costs outweigh the gain for tensors this small, and a robot's CPU has other work to do.
    """
    return max(1, min(2, os.cpu_count() or 1))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, bundle: Bundle, options: BackendOptions):
        super().__init__(bundle, options)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailableError(f"the 'onnxruntime' package is not installed ({exc})") from exc
        if bundle.onnx is None:
            raise BackendUnavailableError(f"bundle {bundle.path or '(in memory)'} holds no model.onnx "
                                     f"(export it with `hetskel-train export`)")
        available = ort.get_available_providers()
        want_cuda = options.device in ("auto", "cuda") and "CUDAExecutionProvider" in available
        if options.device == "cuda" and not want_cuda:
            raise BackendUnavailableError(f"device 'cuda' asked for, but this onnxruntime has no CUDAExecutionProvider "
                                     f"(it has {available}; install onnxruntime-gpu)")
        providers = (["CUDAExecutionProvider"] if want_cuda else []) + ["CPUExecutionProvider"]
        self.threads = options.threads or default_threads()
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session_options.intra_op_num_threads = self.threads
        session_options.inter_op_num_threads = 1
        session_options.log_severity_level = 3  # errors only: ORT's warnings about provider fallbacks are ours to log
        try:
            self.session = ort.InferenceSession(bundle.onnx, session_options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types, with the reason in the message
            raise BackendError(f"onnxruntime could not load the graph of {bundle.path or '(in memory)'}: {exc}") \
                from exc
        active = self.session.get_providers()
        if options.device == "cuda" and active[0] != "CUDAExecutionProvider":
            raise BackendUnavailableError(
                f"CUDAExecutionProvider did not start (CUDA/cuDNN libraries?); active: {active}")
        self.device = f"cuda:{options.gpu}" if active[0] == "CUDAExecutionProvider" else "cpu"
        self.providers = active
        self._input_names = [i.name for i in self.session.get_inputs()]

    def _run(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        features, scores = self.session.run(list(OUTPUT_NAMES), {name: feeds[name] for name in self._input_names})
        return features, scores

    def describe(self) -> str:
        return f"{super().describe()}, {self.threads} intra-op thread(s)"
