"""Occluded-recognition inputs (paper 002, sec. 4.2 item 4 and sec. 4.4.2, after Song et al. 2019).

Occluded joints are set to zero and marked missing, as a real tracker reports joints it cannot see:
  * spatial: whole body parts (an arm, a leg, the trunk, the head) are masked in every frame;
  * temporal: a contiguous block of frames is zeroed.
The masking ratio is drawn from [0.3, 0.7]. The test set must be built with the same masks for every method
compared, so :func:`occluded_test_set` derives each sample's masks from (seed, sample index) only.
Arrays are unified-skeleton sequences: positions (T, J, C) and a (T, J) bool mask (True = present).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hetskel_ros.topology import UnifiedSkeleton

# Body parts by canonical joint name. Names the unified skeleton lacks are skipped, so a different
# config/unified.yaml still works; a part left with no joints is dropped.
BODY_PARTS: Mapping[str, tuple[str, ...]] = {
    "left_arm": ("left_shoulder", "left_elbow", "left_wrist", "left_hand", "left_hand_tip", "left_thumb"),
    "right_arm": ("right_shoulder", "right_elbow", "right_wrist", "right_hand", "right_hand_tip", "right_thumb"),
    "left_leg": ("left_hip", "left_knee", "left_ankle", "left_foot"),
    "right_leg": ("right_hip", "right_knee", "right_ankle", "right_foot"),
    "trunk": ("spine_base", "spine_mid", "spine_shoulder", "neck"),
    "head": ("head", "nose", "left_eye", "right_eye", "left_ear", "right_ear"),
}

RATIO_RANGE = (0.3, 0.7)  # paper 002, sec. 4.4.2: "a masking ratio of [0.3, 0.7]"
OCCLUSION_KINDS = ("spatial", "temporal")


def body_part_indices(
    skeleton: UnifiedSkeleton, parts: Mapping[str, Sequence[str]] = BODY_PARTS
) -> dict[str, np.ndarray]:
    """Unified joint indices of each body part (parts with no joint in this skeleton are left out)."""
    present = set(skeleton.names)
    indices = {}
    for part, names in parts.items():
        members = [skeleton.index(name) for name in names if name in present]
        if members:
            indices[part] = np.array(members, dtype=np.int64)
    return indices


def _check_ratio(ratio: float) -> None:
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"occlusion ratio must be in (0, 1), got {ratio}")


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != np.bool_:
        raise ValueError(f"mask must be a (T, J) bool array, got {mask.dtype} {mask.shape}")
    return mask


def choose_body_parts(mask: np.ndarray, skeleton: UnifiedSkeleton, ratio: float, rng: np.random.Generator) -> list[str]:
    """Parts to hide: a random order of the parts, cut where the hidden share of joints comes closest to ``ratio``.

    The share counts joints the sequence actually has (present in any frame), so a COCO sequence without hands
    loses the same fraction of ITS joints as a Kinect one. At least one part is always hidden.
    """
    _check_ratio(ratio)
    mask = _check_mask(mask)
    if mask.shape[1] != skeleton.num_joints:
        raise ValueError(f"mask has {mask.shape[1]} joints but skeleton '{skeleton.name}' has {skeleton.num_joints}")
    parts = body_part_indices(skeleton)
    available = mask.any(axis=0)
    total = max(int(available.sum()), 1)
    order = [name for name in rng.permutation(sorted(parts)) if available[parts[name]].any()]
    if not order:
        return []
    hidden = np.zeros(skeleton.num_joints, dtype=bool)
    best_count, best_error = 1, np.inf
    for count, name in enumerate(order, start=1):
        hidden[parts[name]] = True
        error = abs(float((hidden & available).sum()) / total - ratio)
        if error < best_error:
            best_count, best_error = count, error
    return [str(name) for name in order[:best_count]]


def mask_body_parts(mask: np.ndarray, skeleton: UnifiedSkeleton, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``mask`` with whole body parts removed in every frame until about ``ratio`` of joints are gone."""
    mask = _check_mask(mask)
    parts = body_part_indices(skeleton)
    occluded = mask.copy()
    for name in choose_body_parts(mask, skeleton, ratio, rng):
        occluded[:, parts[name]] = False
    return occluded


def zero_frame_blocks(
    x: np.ndarray, mask: np.ndarray, ratio: float, rng: np.random.Generator, *, blocks: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Zero ``blocks`` contiguous, non-overlapping blocks of frames covering round(ratio * T) frames in total.

    Returns copies (positions, mask) with the blocked frames zeroed and marked missing. With one block (the
    protocol's "a random block of frames") the block starts anywhere it fits.
    """
    _check_ratio(ratio)
    mask = _check_mask(mask)
    x = np.asarray(x)
    if x.shape[:2] != mask.shape:
        raise ValueError(f"positions {x.shape} and mask {mask.shape} disagree on (T, J)")
    frames = len(x)
    hidden_total = min(frames, max(1, round(ratio * frames))) if frames else 0
    blocks = max(1, min(blocks, hidden_total)) if hidden_total else 0
    occluded_x, occluded_mask = x.copy(), mask.copy()
    if not blocks:
        return occluded_x, occluded_mask
    # split the hidden frames into block lengths and the visible frames into blocks + 1 gaps, then interleave
    lengths = _random_composition(hidden_total, blocks, rng, minimum=1)
    gaps = _random_composition(frames - hidden_total, blocks + 1, rng, minimum=0)
    start = 0
    for block in range(blocks):
        start += gaps[block]
        occluded_x[start : start + lengths[block]] = 0
        occluded_mask[start : start + lengths[block]] = False
        start += lengths[block]
    return occluded_x, occluded_mask


def _random_composition(total: int, parts: int, rng: np.random.Generator, *, minimum: int) -> np.ndarray:
    """``parts`` non-negative integers >= minimum summing to ``total``, uniformly over compositions."""
    free = total - minimum * parts
    if free < 0:
        raise ValueError(f"cannot split {total} into {parts} parts of at least {minimum}")
    cuts = np.sort(rng.integers(0, free + 1, size=parts - 1))
    return np.diff(np.concatenate([[0], cuts, [free]])) + minimum


def occlude(
    x: np.ndarray,
    mask: np.ndarray,
    kind: str,
    ratio: float,
    rng: np.random.Generator,
    skeleton: UnifiedSkeleton,
) -> tuple[np.ndarray, np.ndarray]:
    """One occluded copy: ``kind`` "spatial" (body parts) or "temporal" (frame block); hidden joints are zeroed."""
    if kind == "spatial":
        occluded_mask = mask_body_parts(mask, skeleton, ratio, rng)
        return np.where(occluded_mask[..., None], x, 0).astype(np.asarray(x).dtype, copy=False), occluded_mask
    if kind == "temporal":
        return zero_frame_blocks(x, mask, ratio, rng)
    raise ValueError(f"unknown occlusion kind '{kind}' (use one of {', '.join(OCCLUSION_KINDS)})")


def occluded_test_set(
    positions: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    kind: str,
    skeleton: UnifiedSkeleton,
    *,
    ratio_range: tuple[float, float] = RATIO_RANGE,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Occlude every sequence with a ratio drawn from ``ratio_range``; returns (positions, masks, ratios).

    Sample i's ratio and masks depend only on (seed, kind, i), so every method and ablation is tested on
    identical occlusions, as the protocol requires.
    """
    if len(positions) != len(masks):
        raise ValueError(f"{len(positions)} position arrays but {len(masks)} masks")
    low, high = ratio_range
    if not 0.0 < low <= high < 1.0:
        raise ValueError(f"ratio_range must satisfy 0 < low <= high < 1, got {ratio_range}")
    kind_id = OCCLUSION_KINDS.index(kind) if kind in OCCLUSION_KINDS else -1
    if kind_id < 0:
        raise ValueError(f"unknown occlusion kind '{kind}' (use one of {', '.join(OCCLUSION_KINDS)})")
    out_x, out_mask, ratios = [], [], np.empty(len(positions))
    for i, (x, mask) in enumerate(zip(positions, masks, strict=True)):
        rng = np.random.default_rng([seed, kind_id, i])
        ratios[i] = rng.uniform(low, high)
        occluded_x, occluded_mask = occlude(x, mask, kind, float(ratios[i]), rng, skeleton)
        out_x.append(occluded_x)
        out_mask.append(occluded_mask)
    return out_x, out_mask, ratios
