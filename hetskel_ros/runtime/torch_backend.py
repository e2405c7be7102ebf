"""PyTorch eager backend: the bundle's own model, on CPU or CUDA; the reference the graph backends are checked against.

torch.set_num_threads is process-wide, so this backend only sets it when ``threads`` is configured explicitly.
"""

from __future__ import annotations

import numpy as np

from hetskel_ros.model.bundle import Bundle
from hetskel_ros.runtime.base import INPUT_NAMES, Backend, BackendOptions, BackendUnavailableError


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, bundle: Bundle, options: BackendOptions):
        super().__init__(bundle, options)
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailableError(f"the 'torch' package is not installed ({exc})") from exc
        self._torch = torch
        cuda = torch.cuda.is_available()
        if options.device == "cuda" and not cuda:
            raise BackendUnavailableError("device 'cuda' asked for, but torch.cuda.is_available() is False")
        self.device = f"cuda:{options.gpu}" if options.device != "cpu" and cuda else "cpu"
        if options.threads is not None:
            torch.set_num_threads(options.threads)
        self.threads = torch.get_num_threads()
        self.model = bundle.build_model().to(self.device)

    def _run(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            args = [torch.from_numpy(feeds[name]).to(self.device, non_blocking=True) for name in INPUT_NAMES]
            features, scores = self.model(*args)
            return features.cpu().numpy(), scores.cpu().numpy()
