"""What the recognizer consumes: one person's unified skeleton at one instant, and how bad input is reported.

Kept free of ROS so the same pipeline runs in the node, in offline bag evaluation and in tests. The ROS input
adapters (hetskel_ros.ros.adapters) produce these and re-export them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class InputRejected(ValueError):  # noqa: N818 - the adapters' established name
    """A message (or one person in it) the node drops.

    ``reason`` is a short stable key counted in diagnostics (e.g. "wrong_joint_count", "wrong_dims", "non_finite",
    "unknown_topology", "out_of_range", "unknown_joint_names"); the message says what was wrong.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Observation:
    """One person at one instant, mapped to the unified skeleton."""

    track_id: int  # stable per person and source; 0 if the source does not track
    stamp: float  # seconds (message header stamp: capture time)
    topology: str  # name of the topology (or robot mapping) it came from: selects the model's prompts
    dims: int  # 2 or 3
    positions: np.ndarray  # (J, dims) float32 unified joints, 0 where missing
    mask: np.ndarray  # (J,) bool, True where the joint is present
    frame_id: str = ""
    # Which native axis points up ("+y", "-y", "+z", ...). Empty: the topology's own ``up`` (config/topologies);
    # adapters whose "topology" is not a file there (robot mappings) must set it, normalisation depends on it.
    up: str = ""
    # 2D: (width, height) in pixels of the image the positions refer to, when the source says; joints far outside
    # it are out of range (the topology's limits.image_margin). None: unknown, the topology's pixel limits apply.
    image_size: tuple[int, int] | None = None
