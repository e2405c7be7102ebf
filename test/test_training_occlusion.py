"""Occluded-recognition inputs (paper 002, sec. 4.2) on real motion capture mapped to the unified skeleton.

Data: "Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0" (the shipped sample).
"""

from __future__ import annotations

import numpy as np
import pytest

from hetskel_ros.topology import load_topology, load_unified, normalize
from hetskel_ros.topology.sequences import load_sequences, sample_path
from training.metrics import linear_eval
from training.occlusion import (
    body_part_indices,
    choose_body_parts,
    mask_body_parts,
    occlude,
    occluded_test_set,
    zero_frame_blocks,
)


@pytest.fixture(scope="module")
def unified_mocap():
    """Every sample sequence as normalised unified (T, 30, 3) positions and (T, 30) masks."""
    data = load_sequences(sample_path())
    topology, skeleton = load_topology(data.topology), load_unified()
    positions, masks = [], []
    for native in data.sequences:
        unified, mask = topology.to_unified(native, unified=skeleton)
        positions.append(normalize(unified, mask, skeleton, up=topology.up))
        masks.append(mask)
    return {"data": data, "skeleton": skeleton, "positions": positions, "masks": masks}


def test_body_parts_cover_distinct_unified_joints() -> None:
    skeleton = load_unified()
    parts = body_part_indices(skeleton)
    assert set(parts) == {"left_arm", "right_arm", "left_leg", "right_leg", "trunk", "head"}
    joined = np.concatenate(list(parts.values()))
    assert len(joined) == len(set(joined.tolist())) == skeleton.num_joints  # each of the 30 joints in one part
    assert skeleton.index("left_wrist") in parts["left_arm"] and skeleton.index("spine_mid") in parts["trunk"]


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7])
def test_body_part_masking_hides_whole_parts_near_the_ratio(unified_mocap, ratio: float) -> None:
    skeleton, mask = unified_mocap["skeleton"], unified_mocap["masks"][0]
    available = mask.any(axis=0)  # the mocap has no face, hand-tip or thumb joints
    parts = body_part_indices(skeleton)
    largest_share = max(available[p].sum() for p in parts.values()) / available.sum()
    for seed in range(20):
        occluded = mask_body_parts(mask, skeleton, ratio, np.random.default_rng(seed))
        assert occluded.shape == mask.shape and not (occluded & ~mask).any()  # only ever removes joints
        hidden = available & ~occluded.any(axis=0)
        assert (occluded[:, ~hidden] == mask[:, ~hidden]).all()  # same joints hidden in every frame
        for indices in parts.values():  # whole parts: a part is either fully hidden or untouched
            assert hidden[indices][available[indices]].all() or not hidden[indices].any()
        share = hidden.sum() / available.sum()
        assert share > 0 and abs(share - ratio) <= largest_share / 2 + 1e-9


def test_body_part_choice_is_seeded_and_varies(unified_mocap) -> None:
    skeleton, mask = unified_mocap["skeleton"], unified_mocap["masks"][0]
    first = choose_body_parts(mask, skeleton, 0.5, np.random.default_rng(7))
    assert first == choose_body_parts(mask, skeleton, 0.5, np.random.default_rng(7))
    choices = {tuple(sorted(choose_body_parts(mask, skeleton, 0.5, np.random.default_rng(s)))) for s in range(30)}
    assert len(choices) > 3
    with pytest.raises(ValueError, match="ratio"):
        mask_body_parts(mask, skeleton, 1.5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="29 joints"):
        mask_body_parts(mask[:, :29], skeleton, 0.5, np.random.default_rng(0))


@pytest.mark.parametrize("blocks", [1, 3])
def test_frame_blocks_are_zeroed_and_masked(unified_mocap, blocks: int) -> None:
    x, mask = unified_mocap["positions"][8], unified_mocap["masks"][8]
    frames = len(x)
    occluded_x, occluded_mask = zero_frame_blocks(x, mask, 0.4, np.random.default_rng(3), blocks=blocks)
    hidden = ~occluded_mask.any(axis=1)
    assert hidden.sum() == round(0.4 * frames)
    runs = np.flatnonzero(np.diff(np.concatenate([[0], hidden.astype(int), [0]])) == 1)
    assert 1 <= len(runs) <= blocks  # contiguous blocks (adjacent ones may touch)
    assert (occluded_x[hidden] == 0).all()
    np.testing.assert_array_equal(occluded_x[~hidden], x[~hidden])
    np.testing.assert_array_equal(occluded_mask[~hidden], mask[~hidden])
    assert x.any(axis=(1, 2)).all()  # the input was not modified in place


def test_occluded_test_set_is_identical_for_every_method(unified_mocap) -> None:
    skeleton, positions, masks = unified_mocap["skeleton"], unified_mocap["positions"], unified_mocap["masks"]
    for kind in ("spatial", "temporal"):
        xs, ms, ratios = occluded_test_set(positions, masks, kind, skeleton, seed=5)
        again_xs, again_ms, again_ratios = occluded_test_set(positions, masks, kind, skeleton, seed=5)
        np.testing.assert_array_equal(ratios, again_ratios)
        assert all((a == b).all() for a, b in zip(ms, again_ms, strict=True))
        assert all((a == b).all() for a, b in zip(xs, again_xs, strict=True))
        assert ((ratios >= 0.3) & (ratios <= 0.7)).all() and ratios.std() > 0
        for x, m in zip(xs, ms, strict=True):
            assert (x[~m] == 0).all()  # hidden joints read as zero, as an occluded tracker reports them
    with pytest.raises(ValueError, match="unknown occlusion kind 'both'"):
        occlude(positions[0], masks[0], "both", 0.5, np.random.default_rng(0), skeleton)


def test_occlusion_costs_a_clean_classifier_accuracy(unified_mocap) -> None:
    """A linear classifier fitted on clean poses loses accuracy on occluded ones: the masks remove information."""
    data, skeleton = unified_mocap["data"], unified_mocap["skeleton"]
    positions, masks = unified_mocap["positions"], unified_mocap["masks"]
    first: dict[int, int] = {}
    train = [i for i, label in enumerate(data.labels) if first.setdefault(int(label), i) == i]
    test = [i for i in range(len(data)) if i not in train]

    def features(sequences):
        picked = [s[np.linspace(0, len(s) - 1, 8).round().astype(int)] for s in sequences]
        return np.stack([p.reshape(-1) for p in picked]).astype(np.float64)

    result = linear_eval(features([positions[i] for i in train]), data.labels[train],
                         features([positions[i] for i in test]), data.labels[test], seed=0)  # fmt: skip
    head = (result["weight"], result["bias"])
    clean = result["top1"]
    for kind in ("spatial", "temporal"):
        occluded, _, _ = occluded_test_set([positions[i] for i in test], [masks[i] for i in test], kind, skeleton)
        scores = features(occluded) @ head[0].T + head[1]
        accuracy = float(np.mean(np.argmax(scores, axis=1) == data.labels[test]))
        assert accuracy < clean, (kind, accuracy, clean)
