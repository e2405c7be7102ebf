"""A linear head on the frozen encoder's features, stored in the bundle beside (not inside) the inference graph.

A taught bundle (``hetskel-teach``) keeps the encoder's ``model.onnx`` byte for byte and adds ``head.npz``: the class
scores become ``softmax(weight @ unit(features) + bias)`` with ``unit`` the L2 normalisation. Because the graph is
unchanged, a TensorRT engine built for the encoder stays valid (its cache key is the graph's sha256) and a new head
never costs an engine build; every backend applies the head in ``Backend.infer`` after running the graph, so the
node, the feature API and the benches all see the taught vocabulary. The graph's own ``scores`` output (the
training head) is then ignored. numpy only: no torch, no ROS.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

HEAD_PART = "head.npz"


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class LinearHead:
    """Class scores ``softmax(weight @ unit(f) + bias)``: (C, D) weight, (C,) bias, one row per bundle label."""

    weight: np.ndarray
    bias: np.ndarray
    info: dict = field(default_factory=dict)  # how it was fitted (kind, temperature, cross-validation)

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, np.float64)
        self.bias = np.asarray(self.bias, np.float64)
        if self.weight.ndim != 2 or self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"head weight must be (C, D) and bias (C,), got {self.weight.shape} and "
                             f"{self.bias.shape}")

    @property
    def classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.weight.shape[1])

    def logits(self, features: np.ndarray) -> np.ndarray:
        return unit(np.atleast_2d(features)) @ self.weight.T + self.bias

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(N, C) float32 probabilities, the same contract as the graph's ``scores`` output."""
        return softmax(self.logits(features)).astype(np.float32)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, weight=self.weight.astype(np.float32), bias=self.bias.astype(np.float32))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, info: dict | None = None) -> LinearHead:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return cls(arrays["weight"], arrays["bias"], dict(info or {}))


def blend(first: LinearHead, first_labels: list[str], second: LinearHead, second_labels: list[str],
          first_weight: float) -> LinearHead:
    """One linear head whose logits are ``w * first + (1 - w) * second``, rows in ``second_labels``' order.

    A weighted product of two experts' probabilities, still one linear map on the unit features, so the node runs
    it as any head. Labels are matched by name; a label only ``second`` knows (an ``idle`` class) gets its weighted
    logit alone, which is what was measured (models/README.md, session 9). Every label of ``first`` must be in
    ``second_labels``: a class the blended head could not say would be lost silently.
    """
    if not 0.0 <= first_weight <= 1.0:
        raise ValueError(f"first_weight must lie in [0, 1], got {first_weight}")
    if first.feature_dim != second.feature_dim:
        raise ValueError(f"heads read different features: {first.feature_dim} and {second.feature_dim} values")
    lost = sorted(set(first_labels) - set(second_labels))
    if lost:
        raise ValueError(f"labels {lost} of the first head are not in the second head's {second_labels}")
    weight, bias = (1.0 - first_weight) * second.weight, (1.0 - first_weight) * second.bias
    for row, label in enumerate(first_labels):
        target = second_labels.index(label)
        weight[target] += first_weight * first.weight[row]
        bias[target] += first_weight * first.bias[row]
    return LinearHead(weight, bias, {"kind": "blend", "first_weight": first_weight,
                                     "first": first.info, "second": second.info})
