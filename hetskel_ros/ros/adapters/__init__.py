"""Input adapters: one class per message kind, looked up by the ``kind`` of an input in the node's configuration.

``ADAPTERS`` maps kind -> "module:Class"; modules are imported only when an input uses them, so a kind whose
library is missing here (e.g. the JointState adapter's kinematics) breaks only the inputs that ask for it.
"""

from __future__ import annotations

import importlib

from hetskel_ros.ros.adapters.base import InputAdapter, InputConfig, InputRejected, Observation

ADAPTERS: dict[str, str] = {
    "skeleton": "hetskel_ros.ros.adapters.skeleton:SkeletonAdapter",
    "skeleton_array": "hetskel_ros.ros.adapters.skeleton:SkeletonArrayAdapter",
    "azure_markers": "hetskel_ros.ros.adapters.azure_markers:AzureMarkersAdapter",
    "joint_state": "hetskel_ros.ros.adapters.joint_state:JointStateAdapter",
}


def adapter_class(kind: str) -> type[InputAdapter]:
    """The adapter class of an input kind; ValueError naming the known kinds for an unknown one."""
    if kind not in ADAPTERS:
        raise ValueError(f"unknown input kind {kind!r}; known: {', '.join(ADAPTERS)}")
    module, name = ADAPTERS[kind].split(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"input kind {kind!r} is not available: {ADAPTERS[kind]} ({exc})") from exc


__all__ = ["ADAPTERS", "InputAdapter", "InputConfig", "InputRejected", "Observation", "adapter_class"]
