"""Backend selection: try the configured backends in order, take the first that works, say why others were skipped.

Each backend module is imported only when tried, so a machine without TensorRT (or torch) never imports it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence

from hetskel_ros.model.bundle import Bundle
from hetskel_ros.runtime.base import Backend, BackendError, BackendOptions, BackendUnavailableError

log = logging.getLogger("hetskel_ros.runtime")

DEFAULT_ORDER = ("tensorrt", "onnxruntime", "torch")
# name -> "module:class", imported lazily
BACKENDS = {
    "tensorrt": "hetskel_ros.runtime.tensorrt_backend:TensorRTBackend",
    "onnxruntime": "hetskel_ros.runtime.onnxruntime_backend:OnnxRuntimeBackend",
    "torch": "hetskel_ros.runtime.torch_backend:TorchBackend",
}


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise ValueError(f"unknown inference backend {name!r}; known: {list(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def create_backend(name: str, bundle: Bundle, **options) -> Backend:
    """One named backend, no fallback (benchmarks and tests that must measure exactly this one)."""
    return backend_class(name)(bundle, BackendOptions.from_kwargs(options))


def load_backend(bundle: Bundle, order: Sequence[str] | str = DEFAULT_ORDER, **options) -> Backend:
    """The first backend in ``order`` that loads for ``bundle``.

    Each one skipped logs one warning line with the reason (logger "hetskel_ros.runtime"); the one chosen logs an
    info line and carries the skipped ones in ``backend.fallbacks``. Options (BackendOptions) go to every backend.
    Raises BackendError listing every reason when none works, ValueError for an unknown name or option.
    """
    names = [order] if isinstance(order, str) else list(order)
    if not names:
        raise ValueError("backend order is empty; give at least one of " + ", ".join(BACKENDS))
    for name in names:
        if name not in BACKENDS:
            raise ValueError(f"unknown inference backend {name!r} in order {names}; known: {list(BACKENDS)}")
    settings = BackendOptions.from_kwargs(options)
    skipped: list[tuple[str, str]] = []
    for position, name in enumerate(names):
        try:
            backend = backend_class(name)(bundle, settings)
        except BackendUnavailableError as exc:
            reason = f"unavailable: {exc}"
        except ImportError as exc:  # the backend module's own imports (a broken install)
            reason = f"unavailable: {exc}"
        except Exception as exc:  # a backend that is present but fails to build or load: try the next one
            reason = f"failed: {type(exc).__name__}: {exc}"
        else:
            backend.fallbacks = skipped
            log.info("inference backend: %s%s", backend.describe(),
                     f" (skipped {', '.join(n for n, _ in skipped)})" if skipped else "")
            return backend
        reason = " ".join(reason.split())  # one line, whatever the library's message looked like
        then = f"trying {names[position + 1]}" if position + 1 < len(names) else "no backend left to try"
        log.warning("inference backend %s %s; %s", name, reason, then)
        skipped.append((name, reason))
    details = "; ".join(f"{name}: {reason}" for name, reason in skipped)
    raise BackendError(f"no inference backend could run bundle {bundle.path or '(in memory)'}: {details}")
