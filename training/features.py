"""Frozen-encoder features of whole sequences, from 3D input, 2D input or both (the input ablations).

A sequence's feature is the mean over the windows the ROS node cuts from it (``topology.window.window_ends`` with
the node's stride and first-window fill, as ``hetskel_ros.model.features`` cuts real sequences). 2D inputs are
virtual-camera views with a fixed seed per sequence, so every evaluation of every model sees the same 2D data.
"""

from __future__ import annotations

import numpy as np

from hetskel_ros.model.features import NODE_MIN_FILL, NODE_STRIDE_S, stack_rows, torch_infer
from hetskel_ros.model.model import HetSkelModel
from hetskel_ros.topology.window import window_ends, window_times

from .views import Clip, ViewMaker

MODES = ("3d", "2d", "fused")


def window_inputs(maker: ViewMaker, clip: Clip, times: np.ndarray, mode: str, topology_index: dict[str, int],
                  rng: np.random.Generator, view3d: str = "bandai_mocap", view2d: str = "coco17",
                  clip2d: Clip | None = None) -> dict[str, np.ndarray]:
    """Model inputs for one window of a clip in the given mode (no augmentation); the 2D view is of ``clip2d``
    when given (a camera that sees what the 3D sensor lost)."""
    frames, mask = maker.frames(clip, times)
    T, J = mask.shape
    x3d, m3d = np.zeros((T, J, 3), np.float32), np.zeros((T, J), bool)
    x2d, m2d = np.zeros((T, J, 2), np.float32), np.zeros((T, J), bool)
    if mode in ("3d", "fused"):
        x3d, m3d = maker.view3d(frames, mask, view3d, None)
    if mode in ("2d", "fused"):
        if clip2d is not None:
            frames, mask = maker.frames(clip2d, times)
        view = maker.view2d(frames, mask, view2d, rng)
        x2d, m2d = view["x2d"], view["m2d"]
    return {"x3d": x3d, "m3d": m3d, "t3d": topology_index[view3d], "x2d": x2d, "m2d": m2d,
            "t2d": topology_index[view2d], "has3d": float(mode != "2d"), "has2d": float(mode != "3d")}


def node_window_times(clip: Clip, window: int, fps: float) -> list[np.ndarray]:
    """Frame times of every window the node cuts from the clip (one padded window for a clip shorter than its
    first)."""
    stamps = np.arange(len(clip.positions)) / clip.fps
    ends = window_ends(stamps, (window - 1) / fps, NODE_STRIDE_S, NODE_MIN_FILL) or [float(stamps[-1])]
    return [window_times(end, window, fps) for end in ends]


def sequence_features(model: HetSkelModel, maker: ViewMaker, clips: list[Clip], mode: str, *, seed: int = 0,
                      view3d: str = "bandai_mocap", view2d: str = "coco17", batch: int = 256,
                      clips2d: list[Clip] | None = None) -> np.ndarray:
    """(len(clips), feature_dim) mean window features; ``clips2d``: other clips (same timing) to take 2D views of."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    infer = torch_infer(model.eval())
    topology_index = {name: i for i, name in enumerate(model.cfg.topologies)}
    rows, owner = [], []
    for i, clip in enumerate(clips):
        rng = np.random.default_rng([seed, i])
        for times in node_window_times(clip, model.cfg.window, model.cfg.fps):
            rows.append(window_inputs(maker, clip, times, mode, topology_index, rng, view3d, view2d,
                                      clips2d[i] if clips2d else None))
            owner.append(i)
    features = np.concatenate([infer(stack_rows(rows[s:s + batch]))[0] for s in range(0, len(rows), batch)])
    owner = np.asarray(owner)
    sums = np.zeros((len(clips), features.shape[1]), np.float64)
    np.add.at(sums, owner, features)
    return (sums / np.bincount(owner, minlength=len(clips))[:, None]).astype(np.float32)
