"""The feature API: frozen-encoder features of real skeleton sequences of any topology, 2D or 3D.

    from hetskel_ros.runtime.features import open_extractor
    extractor = open_extractor("models/default.hetskel")                 # ONNX Runtime on CPU
    one_per_sequence = extractor.sequence_set_features(load_sequences("nw_ucla.npz"))    # (S, feature_dim)
    windows = extractor.windows(positions, "kinect_v1", fps=30.0, confidence=confidence)  # per window the node cuts

A sequence is mapped to the unified skeleton by its topology (confidence marks missing joints), and cut into windows
exactly as the ROS node cuts a track (``topology.window.window_ends`` with the node's stride and first-window fill,
``interpolate_frames``, the bundle's ``Normalization``), so a feature here is what the node computes on the same
motion. A sequence that ends before the node's first window is due still gets one window, ending at its last frame
and padded at the start with its first frame (as the node's own windows are), never skipped.
A sequence's feature is the mean of its window features, or (``whole=True``) the encoding of one window that spans
the whole sequence, resampled to the model's frame count: the standard protocols' view of a trimmed clip, which a
1 s gesture fills instead of sitting behind a second of padding. The inference callable is any backend's ``infer`` (ONNX
Runtime, TensorRT, PyTorch) or :func:`torch_infer` of a model in training; this module imports no torch itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hetskel_ros.model.config import INDEX_INPUTS, INPUT_NAMES, ModelConfig
from hetskel_ros.topology import borrowed_prompt, load_topology, load_unified, observation_topology
from hetskel_ros.topology.normalize import Normalization
from hetskel_ros.topology.sequences import SequenceSet
from hetskel_ros.topology.window import interpolate_frames, track_window_times, window_ends

Infer = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]
# The node's defaults (runtime.recognizer.RecognizerConfig): a window every 0.5 s, the first once half full.
NODE_STRIDE_S = 0.5
NODE_MIN_FILL = 0.5


def empty_row(window: int, joints: int) -> dict[str, np.ndarray | float | int]:
    """One model input row with neither input present."""
    return {"x3d": np.zeros((window, joints, 3), np.float32), "m3d": np.zeros((window, joints), np.float32),
            "t3d": 0, "x2d": np.zeros((window, joints, 2), np.float32), "m2d": np.zeros((window, joints), np.float32),
            "t2d": 0, "has3d": 0.0, "has2d": 0.0}


def fill_slot(row: dict, x: np.ndarray, present: np.ndarray, prompt: int) -> None:
    """Put one normalised view into the slot of its dimensionality (x3d for 3D, x2d for 2D)."""
    slot = "3d" if x.shape[-1] == 3 else "2d"
    row[f"x{slot}"], row[f"m{slot}"] = x.astype(np.float32), present.astype(np.float32)
    row[f"t{slot}"], row[f"has{slot}"] = int(prompt), 1.0


def stack_rows(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    """Rows -> the batched inputs of the inference graph (float32, topology indices int64)."""
    return {name: np.stack([np.asarray(r[name]) for r in rows]).astype(np.int64 if name in INDEX_INPUTS
                                                                       else np.float32) for name in INPUT_NAMES}


def torch_infer(model) -> Infer:
    """An ``Infer`` over a PyTorch HetSkelModel (training's evaluation of a model it is training)."""
    import torch

    def infer(inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            features, scores = model(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES))
        return features.numpy(), scores.numpy()

    return infer


RAW_FRAMES = 16  # the raw-joint baseline's window: the model's window resampled to this many frames


def raw_joint_infer(inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The raw-joint baseline as an ``Infer``: the window's normalised joints (both slots) resampled to RAW_FRAMES
    frames, plus each coordinate's spread over the window; scores empty. Plugged into a FeatureExtractor it sees
    exactly the windows and normalisation the model sees, so a learned feature is compared on equal terms."""
    parts = []
    for slot in ("3d", "2d"):
        x, m = inputs[f"x{slot}"], inputs[f"m{slot}"][..., None]
        x = x * m
        frames = np.linspace(0, x.shape[1] - 1, RAW_FRAMES).round().astype(int)
        parts += [x[:, frames].reshape(len(x), -1), x.std(axis=1).reshape(len(x), -1)]
    return np.concatenate(parts, axis=1).astype(np.float32), np.zeros((len(inputs["x3d"]), 0), np.float32)


@dataclass(frozen=True)
class WindowFeatures:
    ends: np.ndarray  # (W,) seconds from the sequence's first frame: each window's last frame
    features: np.ndarray  # (W, feature_dim)
    scores: np.ndarray  # (W, classes): the bundle head's probabilities


class FeatureExtractor:
    """Cuts, normalises and encodes windows of real sequences (see the module doc)."""

    def __init__(self, config: ModelConfig, normalization: Normalization, infer: Infer, *,
                 stride_s: float = NODE_STRIDE_S, min_fill: float = NODE_MIN_FILL, batch: int = 256):
        self.config, self.normalization, self.infer = config, normalization, infer
        self.stride_s, self.min_fill, self.batch = stride_s, min_fill, batch
        self.skeleton = load_unified()
        self.span = (config.window - 1) / config.fps
        self.prompt_fallbacks: dict[str, str] = {}

    @classmethod
    def from_bundle(cls, bundle, infer: Infer, **options) -> FeatureExtractor:
        return cls(bundle.config, Normalization.from_dict(bundle.normalization, load_unified()), infer, **options)

    def prompt(self, topology: str, dims: int) -> int:
        """The topology's prompt row; one the model has none for borrows a robot mapping's ``prompt_topology`` (as
        the node's joint_state input does), else the model's first topology of the same dims."""
        known = list(self.config.topologies)
        if topology in known:
            return known.index(topology)
        same = [t for t in known if load_topology(t).dims == dims]
        named = borrowed_prompt(topology)
        fallback = named if named in known else same[0] if same else known[0]
        self.prompt_fallbacks[topology] = fallback
        return known.index(fallback)

    def window_rows(self, positions: np.ndarray, topology: str, fps: float, confidence: np.ndarray | None = None,
                    stamps: np.ndarray | None = None, whole: bool = False) -> tuple[list[dict], np.ndarray]:
        """Model input rows of every window the node would cut from one native (T, N, C) sequence, and their ends;
        ``whole``: the one row of a window spanning the whole sequence."""
        native = observation_topology(topology)  # a topology file, or a robot's (robot_<name>: its links' positions)
        unified, mask = native.to_unified(positions, confidence, unified=self.skeleton)
        stamps = np.arange(len(unified)) / fps if stamps is None else np.asarray(stamps, np.float64)
        return self.unified_window_rows(stamps, unified, mask, native.up, self.prompt(topology, native.dims), whole)

    def unified_window_rows(self, stamps: np.ndarray, unified: np.ndarray, mask: np.ndarray, up: str,
                            prompt: int, whole: bool = False) -> tuple[list[dict], np.ndarray]:
        """The same for frames already on the unified skeleton (what the node's adapters give: a recorded
        track), with their stamps, the topology's ``up`` axis and prompt row (``prompt``)."""
        stamps = np.asarray(stamps, np.float64)
        if whole:
            ends = [float(stamps[-1])]
            times = [np.linspace(stamps[0], stamps[-1], self.config.window)]
        else:
            ends = window_ends(stamps, self.span, self.stride_s, self.min_fill) or [float(stamps[-1])]
            stretch = self.config.short_tracks == "stretch"
            times = [track_window_times(end, stamps[0], self.config.window, self.config.fps, stretch) for end in ends]
        rows = []
        for t in times:
            frames, present = interpolate_frames(stamps, unified, mask, t)
            row = empty_row(self.config.window, self.skeleton.num_joints)
            fill_slot(row, self.normalization.apply(frames, present, self.skeleton, up=up), present, prompt)
            rows.append(row)
        return rows, np.asarray(ends) - stamps[0]

    def encode(self, rows: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
        """(features, scores) of model input rows, in batches; no rows give (0, feature_dim) and (0, classes)."""
        if not rows:
            return (np.zeros((0, self.config.feature_dim), np.float32),
                    np.zeros((0, self.config.num_classes), np.float32))
        parts = [self.infer(stack_rows(rows[s:s + self.batch])) for s in range(0, len(rows), self.batch)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def windows(self, positions: np.ndarray, topology: str, fps: float, confidence: np.ndarray | None = None,
                stamps: np.ndarray | None = None) -> WindowFeatures:
        rows, ends = self.window_rows(positions, topology, fps, confidence, stamps)
        features, scores = self.encode(rows)
        return WindowFeatures(ends, features, scores)

    def sequence_features(self, positions: np.ndarray, topology: str, fps: float,
                          confidence: np.ndarray | None = None, whole: bool = False) -> np.ndarray:
        """(feature_dim,): the mean over the sequence's windows, or (``whole``) its whole-sequence window's."""
        rows, _ = self.window_rows(positions, topology, fps, confidence, whole=whole)
        return self.encode(rows)[0].mean(axis=0)

    def sequence_set_features(self, data: SequenceSet, indices: Sequence[int] | None = None,
                              per_window: bool = False, whole: bool = False) -> np.ndarray | list[WindowFeatures]:
        """(len(indices), feature_dim) mean window features of a sequence set (all of it by default), batched
        across sequences; ``per_window``: each sequence's WindowFeatures instead; ``whole``: one window spanning
        each sequence."""
        chosen = range(len(data)) if indices is None else [int(i) for i in indices]
        rows, owner, ends = [], [], []
        for k, i in enumerate(chosen):
            conf = None if data.confidence is None else data.confidence[i]
            r, e = self.window_rows(data.sequences[i], data.topology, data.fps, conf, whole=whole)
            rows += r
            owner += [k] * len(r)
            ends.append(e)
        features, scores = self.encode(rows)
        owner = np.asarray(owner, dtype=np.int64)
        if per_window:
            return [WindowFeatures(ends[k], features[owner == k], scores[owner == k]) for k in range(len(ends))]
        sums = np.zeros((len(ends), features.shape[1]), np.float64)
        np.add.at(sums, owner, features)
        return (sums / np.bincount(owner, minlength=len(ends))[:, None]).astype(np.float32)
