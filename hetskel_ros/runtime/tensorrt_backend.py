"""TensorRT backend (the ``tensorrt`` and ``pycuda`` packages): an engine built from the bundle's ONNX graph.

Build: FP16 by default (FP32 on request, with TF32 off so FP32 means FP32), one optimisation profile for batch
1..max_batch tuned at opt_batch, a workspace limit. The serialised engine is cached (engine_cache.py) and rebuilt
when the graph, TensorRT version, GPU, precision or batch range changes.
Run: page-locked host buffers and device buffers sized for max_batch, allocated once; one CUDA stream; asynchronous
host->device copies, ``execute_async_v3``, device->host copies, one synchronise. The device's primary CUDA context is
retained (shared with PyTorch or ONNX Runtime in the same process) and made current around every call, so any ROS
executor thread may call ``infer``.
Written against the TensorRT 10 Python API (JetPack 6 ships 10.3). TensorRT 11 removed the FP16 builder flag
(strong typing only): there the engine is built from the FP32 graph as typed, and the log says so.
"""

from __future__ import annotations

import logging

import numpy as np

from hetskel_ros.model.bundle import Bundle
from hetskel_ros.runtime.base import OUTPUT_NAMES, Backend, BackendError, BackendOptions, BackendUnavailableError
from hetskel_ros.runtime.engine_cache import EngineCache, EngineKey, engine_key

log = logging.getLogger("hetskel_ros.runtime")


def import_tensorrt():
    """(tensorrt, pycuda.driver), or BackendUnavailableError naming what is missing."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the 'tensorrt' package is not installed ({exc}; see requirements-gpu.txt)") from exc
    try:
        import pycuda.driver as cuda
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the 'pycuda' package is not installed ({exc}; see requirements-gpu.txt)") from exc
    return trt, cuda


def effective_precision(requested: str, has_fp16_flag: bool) -> str:
    """The precision an engine is built at: FP16 needs the weak-typing flag that TensorRT 11 removed."""
    return "fp16" if requested == "fp16" and has_fp16_flag else "fp32"


class _Tensor:
    """One engine input/output: page-locked host buffer and device buffer for max_batch rows."""

    def __init__(self, cuda, name: str, shape: tuple[int, ...], dtype: np.dtype, is_input: bool):
        self.name = name
        self.row_shape = shape[1:]
        self.dtype = np.dtype(dtype)
        self.is_input = is_input
        self.host = cuda.pagelocked_empty(shape, self.dtype)
        self.device = cuda.mem_alloc(self.host.nbytes)


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, bundle: Bundle, options: BackendOptions):
        super().__init__(bundle, options)
        trt, cuda = import_tensorrt()
        if options.device == "cpu":
            raise BackendUnavailableError("device 'cpu' asked for; TensorRT runs on a GPU only")
        if bundle.onnx is None:
            raise BackendUnavailableError(f"bundle {bundle.path or '(in memory)'} holds no model.onnx")
        try:
            cuda.init()
            count = cuda.Device.count()
        except Exception as exc:  # pycuda's driver errors; no driver or no device means the same to the user
            raise BackendUnavailableError(f"CUDA driver not usable ({exc})") from exc
        if options.gpu >= count:
            raise BackendUnavailableError(f"no CUDA GPU {options.gpu} (found {count})")
        self._trt, self._cuda = trt, cuda
        device = cuda.Device(options.gpu)
        self.gpu_name = device.name()
        self.device = f"cuda:{options.gpu}"
        self._context = device.retain_primary_context()
        self._context.push()
        try:
            self.precision = effective_precision(options.precision, hasattr(trt.BuilderFlag, "FP16"))
            if self.precision != options.precision:
                log.warning("TensorRT %s has no FP16 builder flag (strong typing only): building the FP32 graph",
                            trt.__version__)
            self.key = engine_key(bundle.onnx, trt.__version__, self.gpu_name, self.precision, options.max_batch,
                                  options.opt_batch)
            self.cache = EngineCache(options.cache_dir)
            self._logger = trt.Logger(trt.Logger.WARNING)
            self.engine_path, self.engine = self._load_or_build()
            self._execution = self.engine.create_execution_context()
            if self._execution is None:
                raise BackendError("TensorRT could not create an execution context (GPU memory?)")
            self._stream = cuda.Stream()
            self._tensors = self._allocate()
            self._batch = 0
        except Exception:
            self._context.pop()
            self._context.detach()
            raise
        self._context.pop()

    # -- engine -------------------------------------------------------------------------------------------------
    def _load_or_build(self):
        runtime = self._runtime = self._trt.Runtime(self._logger)  # must outlive the engines it deserialises
        lookup = self.cache.lookup(self.key)
        if lookup.hit:
            engine = runtime.deserialize_cuda_engine(lookup.engine)
            if engine is not None:
                log.info("TensorRT: loaded %s", lookup.reason)
                return self.cache.engine_path(self.key), engine
            reason = f"cached engine {self.cache.engine_path(self.key)} did not deserialise"
        else:
            reason = lookup.reason
        log.info("TensorRT: building a %s engine for %s on %s (%s); this takes a while once, later starts load it",
                 self.precision, self.bundle.path or "the bundle", self.gpu_name, reason)
        blob = build_engine(self._trt, self._logger, self.bundle.onnx, self.key, self.options.workspace_mb)
        try:
            path = self.cache.store(self.key, blob)
            for stale in self.cache.superseded(self.key):
                log.info("TensorRT: removing %s (built by another TensorRT version)", stale)
                self.cache.remove(stale)
        except OSError as exc:  # a read-only home on a robot: run anyway, build again next start
            log.warning("TensorRT: could not cache the engine in %s (%s); it will be rebuilt next start",
                        self.cache.root, exc)
            path = None
        engine = runtime.deserialize_cuda_engine(blob)
        if engine is None:
            raise BackendError("TensorRT could not deserialise the engine it just built")
        return path, engine

    def _allocate(self) -> dict[str, _Tensor]:
        trt, engine = self._trt, self.engine
        tensors = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            shape = tuple(engine.get_tensor_shape(name))
            if any(d < 0 for d in shape[1:]):
                raise BackendError(f"TensorRT tensor {name!r} has dynamic dims {shape} beyond the batch axis")
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            tensor = _Tensor(self._cuda, name, (self.max_batch, *shape[1:]), trt.nptype(engine.get_tensor_dtype(name)),
                             is_input)
            self._execution.set_tensor_address(name, int(tensor.device))
            tensors[name] = tensor
        missing = [n for n in OUTPUT_NAMES if n not in tensors]
        if missing:
            raise BackendError(f"TensorRT engine lacks outputs {missing}")
        return tensors

    # -- inference ------------------------------------------------------------------------------------------------
    def _run(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        cuda = self._cuda
        batch = len(feeds["x3d"])
        self._context.push()
        try:
            inputs = [t for t in self._tensors.values() if t.is_input]
            if batch != self._batch:
                for tensor in inputs:
                    self._execution.set_input_shape(tensor.name, (batch, *tensor.row_shape))
                self._batch = batch
            for tensor in inputs:
                rows = tensor.host[:batch]
                rows[...] = feeds[tensor.name]  # casts int64 topology indices where the engine took int32
                cuda.memcpy_htod_async(tensor.device, rows, self._stream)
            if not self._execution.execute_async_v3(self._stream.handle):
                raise BackendError("TensorRT execute_async_v3 failed (see the TensorRT log above)")
            outputs = [self._tensors[name] for name in OUTPUT_NAMES]
            for tensor in outputs:
                cuda.memcpy_dtoh_async(tensor.host[:batch], tensor.device, self._stream)
            self._stream.synchronize()
            features, scores = (t.host[:batch].astype(np.float32, copy=True) for t in outputs)
        finally:
            self._context.pop()
        return features, scores

    def describe(self) -> str:
        return f"{super().describe()}, {self.gpu_name}, engine {self.engine_path}"

    def close(self) -> None:
        if getattr(self, "_tensors", None) is None:
            return
        self._context.push()
        try:
            for tensor in self._tensors.values():
                tensor.device.free()
            self._tensors = None
            self._execution = self.engine = self._runtime = None
        finally:
            self._context.pop()
            self._context.detach()


def build_engine(trt, logger, onnx: bytes, key: EngineKey, workspace_mb: int) -> bytes:
    """Serialised engine for ``key`` from the ONNX graph (TensorRT 10 API: explicit batch, named tensors)."""
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode since TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT could not parse the ONNX graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if key.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default on Ampere and later: FP32 should mean FP32
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rows = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *rows), (key.opt_batch, *rows), (key.max_batch, *rows))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError("TensorRT failed to build the engine (see the TensorRT log above)")
    return bytes(serialized)
