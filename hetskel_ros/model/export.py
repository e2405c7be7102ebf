"""ONNX export of the whole inference path: unified skeleton + mask + topology -> features, class scores.

The graph holds lifting, prompts, semantic motion encoding, fusion, encoder and classifier; batch is dynamic,
the window length fixed. Inputs and outputs are named as ``INPUT_NAMES`` / ``OUTPUT_NAMES`` so every backend feeds
them the same way.
"""

from __future__ import annotations

import io
import warnings

import torch

from .config import INPUT_NAMES, OUTPUT_NAMES
from .model import HetSkelModel

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "example_inputs", "export_onnx"]
OPSET = 17


def example_inputs(model: HetSkelModel, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Zero inputs of the right shapes and dtypes (3D present, 2D absent)."""
    T, J = model.cfg.window, model.cfg.joints
    return (torch.zeros(batch, T, J, 3), torch.ones(batch, T, J), torch.zeros(batch, dtype=torch.long),
            torch.zeros(batch, T, J, 2), torch.zeros(batch, T, J), torch.zeros(batch, dtype=torch.long),
            torch.ones(batch), torch.zeros(batch))


def export_onnx(model: HetSkelModel) -> bytes:
    """Serialised ONNX graph (opset 17, dynamic batch)."""
    model = model.eval()
    buffer = io.BytesIO()
    axes = {name: {0: "batch"} for name in INPUT_NAMES + OUTPUT_NAMES}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice is not for users
        torch.onnx.export(model, example_inputs(model), buffer, opset_version=OPSET, dynamo=False,
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES), dynamic_axes=axes)
    return buffer.getvalue()
