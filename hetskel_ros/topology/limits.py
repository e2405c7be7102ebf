"""How far a real person's joints can spread: the ``limits`` of a topology or robot file.

A joint at 1e30 is finite, so finiteness alone lets it through, and one such joint overflows the float32
normalisation. Bounds on absolute coordinates would be wrong (robots report in an odometry frame, mocap in a world
frame, both far from the origin), so the bounds are relative to the skeleton itself: how far any joint lies from the
root joint (``max_reach``) and the largest side of the box around the joints (``max_extent``), in the topology's
units. For 2D skeletons whose image size is known, joints must instead lie inside the image, enlarged by
``image_margin`` of its size on every side (pose estimators place cut-off limbs a little outside it).

Format (optional; a file without it has no bound)::

    limits: {max_reach: 2.0, max_extent: 3.0}                       # 3D, metres
    limits: {max_reach: 6000, max_extent: 8000, image_margin: 0.5}  # 2D, pixels
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetskel_ros.topology._yaml import Fields

DEFAULT_IMAGE_MARGIN = 0.5


@dataclass(frozen=True)
class Limits:
    """Bounds of one person's skeleton in its topology's units (see module doc)."""

    max_reach: float
    max_extent: float
    image_margin: float = DEFAULT_IMAGE_MARGIN

    def violation(self, positions: np.ndarray, mask: np.ndarray, root: int,
                  image_size: tuple[int, int] | None = None) -> str:
        """Why these (J, C) joints (``mask``: present) cannot be a person, or '' when they can."""
        present = np.asarray(positions, np.float64)[np.asarray(mask, bool)]
        if present.size == 0:
            return ""
        if image_size is not None and present.shape[1] == 2:
            size = np.asarray(image_size, np.float64)
            low, high = -self.image_margin * size, (1.0 + self.image_margin) * size
            outside = ((present < low) | (present > high)).any(axis=1)
            if outside.any():
                return (f"{int(outside.sum())} joint(s) lie outside the {image_size[0]}x{image_size[1]} image by more "
                        f"than {self.image_margin:g} of its size (first at {present[outside][0].tolist()})")
            return ""
        extent = float((present.max(axis=0) - present.min(axis=0)).max())
        if extent > self.max_extent:
            return f"the skeleton spans {extent:.3g}, more than limits.max_extent {self.max_extent:g}"
        if mask[root]:
            reach = float(np.linalg.norm(present - np.asarray(positions[root], np.float64), axis=1).max())
            if reach > self.max_reach:
                return f"a joint lies {reach:.3g} from the root joint, more than limits.max_reach {self.max_reach:g}"
        return ""


def parse_limits(fields: Fields) -> Limits | None:
    """The optional ``limits`` mapping of a topology or robot file; each bad value names file and key."""
    if not fields.has("limits"):
        return None
    section = fields.mapping("limits")
    unknown = sorted(set(section.data) - {"max_reach", "max_extent", "image_margin"})
    if unknown:
        raise section.error(unknown[0], "is not a limit (known: max_reach, max_extent, image_margin)")

    def positive(key: str, default: float | None = None) -> float:
        value = section.raw(key, ... if default is None else default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value) or value <= 0:
            raise section.error(key, f"must be a positive number, got {value!r}")
        return float(value)

    return Limits(positive("max_reach"), positive("max_extent"), positive("image_margin", DEFAULT_IMAGE_MARGIN))
