"""Bundles and real model inputs for the runtime's tests and benchmarks.

``bench_bundle`` prefers the shipped model (models/default.hetskel) and otherwise builds an untrained bundle of the
named size: latency and graph-vs-eager parity do not depend on what the weights learned. ``mocap_inputs`` cuts
windows of the real mocap (data/bandai_sample.npz, or the full set beside the repository) the way the node does:
map to the unified skeleton, sample at the model's frame rate, normalise; the 2D view is the same motion seen by an
orthographic camera at an angle, with only the joints COCO-17 provides.
Data credit: "Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hetskel_ros.model.bundle import Bundle, load_bundle
from hetskel_ros.model.config import INDEX_INPUTS, preset
from hetskel_ros.paths import models_dir
from hetskel_ros.runtime.base import INPUT_NAMES
from hetskel_ros.topology import load_topology, load_unified, normalize
from hetskel_ros.topology.normalize import Normalization
from hetskel_ros.topology.sequences import SequenceSet, default_mocap_path, load_sequences
from hetskel_ros.topology.window import interpolate_frames, window_times

DEFAULT_BUNDLE = "default.hetskel"
STAND_IN_TOPOLOGIES = ("bandai_mocap", "kinect_v2", "coco17", "mediapipe_pose")
MODES = ("both", "3d", "2d")
VIEW_2D = "coco17"
CAMERA_YAW_DEG = 30.0


def default_bundle_path() -> Path:
    return models_dir() / DEFAULT_BUNDLE


def untrained_bundle(size: str = "small", *, topologies: tuple[str, ...] = STAND_IN_TOPOLOGIES,
                     label_names: list[str] | None = None, seed: int = 0) -> Bundle:
    """A complete bundle (weights and ONNX graph) of an untrained model of the named size preset."""
    import torch

    from hetskel_ros.model.bundle import state_to_numpy
    from hetskel_ros.model.export import export_onnx
    from hetskel_ros.model.model import HetSkelModel

    labels = list(label_names) if label_names is not None else [f"action_{i}" for i in range(10)]
    cfg = preset(size, topologies=tuple(topologies), num_classes=len(labels))
    torch.manual_seed(seed)
    model = HetSkelModel(cfg).eval()
    return Bundle(config=cfg, unified_joints=list(load_unified().names), label_names=labels,
                  weights=state_to_numpy(model), onnx=export_onnx(model),
                  provenance={"note": f"untrained stand-in ({size} preset, seed {seed}) for tests and benchmarks"})


def bench_bundle(size: str) -> tuple[Bundle, str]:
    """(bundle, where it came from): the shipped default for "small" when it exists, else an untrained one."""
    path = default_bundle_path()
    if size == "small" and path.is_file():
        bundle = load_bundle(path)
        if bundle.onnx is not None:
            return bundle, str(path)
    return untrained_bundle(size), f"untrained {size} preset"


def mocap_inputs(bundle: Bundle, count: int, mode: str = "both", *, data: SequenceSet | None = None,
                 offset: float = 0.5) -> dict[str, np.ndarray]:
    """``count`` windows from sequences spread over the mocap set, as model inputs (batch = count).

    mode: "both" (3D and 2D), "3d", "2d", or "mixed" (rows cycle through the three). ``offset`` places each
    window's end along its clip (0: first frame, 1: last).
    """
    if mode not in (*MODES, "mixed"):
        raise ValueError(f"mode must be one of {(*MODES, 'mixed')}, got {mode!r}")
    data = data if data is not None else load_sequences(default_mocap_path())
    cfg = bundle.config
    skeleton = load_unified()
    normalization = Normalization.from_dict(bundle.normalization, skeleton)
    native = load_topology(data.topology)
    coverage_2d = load_topology(VIEW_2D).coverage(skeleton)
    t3, t2 = bundle.topology_index(data.topology), bundle.topology_index(VIEW_2D)
    yaw = np.deg2rad(CAMERA_YAW_DEG)
    camera = np.array([[np.cos(yaw), 0.0, -np.sin(yaw)], [0.0, -1.0, 0.0]], np.float32)  # world -> pixels, y down
    rows: dict[str, list] = {name: [] for name in INPUT_NAMES}
    for row, index in enumerate(np.linspace(0, len(data) - 1, count).round().astype(int)):
        row_mode = MODES[row % len(MODES)] if mode == "mixed" else mode
        clip = data.sequences[index]
        unified, mask = native.to_unified(clip, unified=skeleton)
        stamps = np.arange(len(clip)) / data.fps
        span = (cfg.window - 1) / cfg.fps
        end = max(span, offset * stamps[-1]) if stamps[-1] > span else stamps[-1]
        frames, present = interpolate_frames(stamps, unified, mask, window_times(end, cfg.window, cfg.fps))
        x3d = normalization.apply(frames, present, skeleton, up=native.up)
        m2d = present & coverage_2d[None]
        pixels = np.where(m2d[..., None], frames @ camera.T, 0.0)
        x2d = normalize(pixels, m2d, skeleton, up="-y", yaw_align=False)
        use3d, use2d = row_mode in ("both", "3d"), row_mode in ("both", "2d")
        values = {"x3d": x3d * use3d, "m3d": present * use3d, "t3d": t3, "x2d": x2d * use2d, "m2d": m2d * use2d,
                  "t2d": t2, "has3d": float(use3d), "has2d": float(use2d)}
        for name in INPUT_NAMES:
            rows[name].append(values[name])
    return {name: np.asarray(rows[name], dtype=np.int64 if name in INDEX_INPUTS else np.float32)
            for name in INPUT_NAMES}
