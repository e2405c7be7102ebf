"""Shared material of the recognizer tests: bundles, real mocap, Skeleton messages.

The stand-in bundle is an untrained small model (weights, ONNX graph) with the mocap's label names: the pipeline's
behaviour (windows, batching, resets, drops, determinism) does not depend on what the weights learned. Tests that
judge accuracy use the shipped models/default.hetskel and skip, saying so, when it is absent.
Data: the real Bandai Namco mocap sample (data/bandai_sample.npz: the held-out youthful style, 2 sequences per
action). Credit: "Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0".
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

from hetskel_ros.model.bundle import Bundle, save_bundle
from hetskel_ros.topology.sequences import SequenceSet, load_sequences, sample_path

STAND_IN_TOPOLOGIES = ("bandai_mocap", "kinect_v2", "azure_kinect", "coco17", "mediapipe_pose")
_TMP = Path(tempfile.mkdtemp(prefix="hetskel-recognizer-tests-"))


@functools.lru_cache(maxsize=1)
def mocap_sample() -> SequenceSet:
    return load_sequences(sample_path())


@functools.lru_cache(maxsize=1)
def stand_in_bundle() -> Bundle:
    from hetskel_ros.runtime.samples import untrained_bundle

    return untrained_bundle("small", topologies=STAND_IN_TOPOLOGIES, label_names=list(mocap_sample().label_names))


@functools.lru_cache(maxsize=1)
def stand_in_bundle_path() -> Path:
    return save_bundle(stand_in_bundle(), _TMP / "stand_in.hetskel")


def skeleton_msg(topology: str, native: np.ndarray, stamp: float, track_id: int = 1, frame_id: str = "world",
                 confidence: np.ndarray | None = None, dims: int | None = None):
    """A hetskel_msgs/Skeleton of ``native`` (N, C) positions, stamped ``stamp`` seconds."""
    from hetskel_msgs.msg import Skeleton

    from hetskel_ros.ros.recognizer_node import to_time

    msg = Skeleton()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.topology = topology
    msg.track_id = track_id
    msg.dims = native.shape[-1] if dims is None else dims
    msg.positions = np.ascontiguousarray(native, np.float32).ravel()
    if confidence is not None:
        msg.confidence = np.ascontiguousarray(confidence, np.float32)
    return msg


def skeleton_array(skeletons: list, stamp: float, frame_id: str = "world"):
    from hetskel_msgs.msg import SkeletonArray

    from hetskel_ros.ros.recognizer_node import to_time

    msg = SkeletonArray()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.skeletons = skeletons
    return msg
