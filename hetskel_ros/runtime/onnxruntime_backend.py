"""ONNX Runtime backend: the default where no TensorRT GPU exists (CPU), or with the CUDA execution provider.

Session options are tuned for the latency of small batches on a few cores: full graph optimisation (operator
fusion: Gemm+activation, LayerNorm, GELU, MatMul+scale), sequential execution (the parallel executor, running the
3D and 2D branches side by side, measured slower: p50 3.7 against 2.7 ms), a small intra-op pool (see
``default_threads``) and a second session specialised for batch 1.
"""

from __future__ import annotations

import numpy as np

from hetskel_ros.model.bundle import Bundle
from hetskel_ros.runtime.base import OUTPUT_NAMES, Backend, BackendError, BackendOptions, BackendUnavailableError


def default_threads() -> int:
    """Intra-op threads when none are configured: 1.

    Measured on the small model, 2-core machine (bench/README.md): with both cores idle, 2 threads cut batch-1 p50
    from 2.7 to 2.2 ms, but when another process keeps a core busy (a robot running other nodes; this machine
    running other jobs) a second thread makes every call wait for it: p50 7-10 ms and p99 25-60 ms, against
    2.6 ms and 11 ms with one thread. Set ``threads`` higher for large batches on cores known to be idle.
    """
    return 1


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
            # Batch 1 (one person per update) is the latency that matters: a second session with the batch axis
            # fixed to 1 lets ONNX Runtime fold the graph's shape arithmetic and turn MatMul+Add into Gemm
            # (331 -> 210 nodes for the small model, ~8% faster; bench/README.md).
            session_options.add_free_dimension_override_by_name("batch", 1)
            self.single = ort.InferenceSession(bundle.onnx, session_options, providers=providers)
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
        session = self.single if len(feeds["x3d"]) == 1 else self.session
        features, scores = session.run(list(OUTPUT_NAMES), {name: feeds[name] for name in self._input_names})
        return features, scores

    def describe(self) -> str:
        return f"{super().describe()}, {self.threads} intra-op thread(s)"
