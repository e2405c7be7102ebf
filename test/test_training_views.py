"""Training views on real mocap: the crops and view pairs pretraining sees (training/views.py).

What a user relies on: a training window can look like the node's first windows of a new track (padded with the
first frame), and with `shared_crop` the 2D view shows the same frames as the 3D view, as fused input does at run
time. Data: Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0.
"""

from __future__ import annotations

import numpy as np
import pytest
from recognizer_support import mocap_sample

from hetskel_ros.topology import load_topology, load_unified
from training.views import ViewMaker, ViewSettings, clips_from_sequences, crop_times

WINDOW, FPS = 32, 15.0


@pytest.fixture(scope="module")
def clips():
    mocap = mocap_sample()
    return clips_from_sequences(mocap, load_topology(mocap.topology), load_unified())


def long_clip(clips):
    return max(clips, key=lambda c: c.duration)


def test_padded_crops_start_before_the_clip_by_at_most_half_a_window(clips):
    clip = long_clip(clips)
    rng = np.random.default_rng(0)
    span = (WINDOW - 1) / FPS
    starts = np.array([crop_times(clip, WINDOW, FPS, rng, pad_start=1.0)[0] for _ in range(200)])
    assert (starts <= 0).all() and (starts >= -span / 2).all()
    unpadded = np.array([crop_times(clip, WINDOW, FPS, rng)[0] for _ in range(200)])
    assert (unpadded >= 0).all() and (unpadded <= clip.duration - span).all()


def test_a_padded_crop_repeats_the_first_frame_like_a_new_track(clips):
    clip = long_clip(clips)
    maker = ViewMaker(load_unified(), WINDOW, FPS, ViewSettings(pad_start=1.0, speed=(1.0, 1.0)))
    frames, _ = maker.training_frames(clip, np.random.default_rng(3))
    first = clip.positions[0]
    repeated = [np.allclose(f[clip.mask[0]], first[clip.mask[0]]) for f in frames]
    assert repeated[0] and sum(repeated) >= 2  # at least the padded frame and the clip's own first frame
    assert not all(repeated)  # and then the clip moves on


def test_whole_clip_and_young_track_crops_fill_the_window_with_motion(clips):
    """What the node's stretched windows of a young track look like (ModelConfig.short_tracks "stretch"): a crop
    of the whole short clip, or of a young track's 1-2 s, resampled over the window, never a repeated first frame."""
    short = min(clips, key=lambda c: c.duration)
    rng = np.random.default_rng(1)
    whole = ViewMaker(load_unified(), WINDOW, FPS, ViewSettings(whole_clip=1.0, whole_clip_speed=(0.1, 10.0)))
    frames, _ = whole.training_frames(short, rng)
    np.testing.assert_allclose(frames[0][short.mask[0]], short.positions[0][short.mask[0]], atol=1e-5)
    np.testing.assert_allclose(frames[-1][short.mask[-1]], short.positions[-1][short.mask[-1]], atol=1e-5)
    young = ViewMaker(load_unified(), WINDOW, FPS, ViewSettings(young_track=1.0, speed=(1.0, 1.0)))
    for _ in range(20):
        frames, _ = young.training_frames(long_clip(clips), rng)
        steps = np.abs(np.diff(frames, axis=0)).sum(axis=(1, 2))
        assert (steps > 0).all()  # every frame moves on: no padding


@pytest.mark.parametrize("shared", [True, False])
def test_shared_crop_gives_the_2d_view_the_3d_views_frames(clips, shared):
    """The lifter's target is the 2D view's frames in camera coordinates: its pose (root-relative, up to the
    camera's rotation) matches the 3D view's frames exactly when the crop is shared."""
    settings = ViewSettings(shared_crop=shared, view3d=["bandai_mocap"], view2d=["coco17"], drop_joint=0.0,
                            rotate_deg=0.0, shear=0.0, scale=(1.0, 1.0), noise_3d=0.0)
    maker = ViewMaker(load_unified(), WINDOW, FPS, settings)
    batch = maker.training_batch([long_clip(clips)] * 8, np.random.default_rng(1), {"bandai_mocap": 0, "coco17": 1})
    root = load_unified().root_index
    same = []
    for x3, target, tmask in zip(batch["x3d"], batch["target"], batch["target_mask"], strict=True):
        pose3 = x3 - x3[:, root:root + 1]
        # rotation-invariant comparison: distances of every joint to the root, per frame
        d3 = np.linalg.norm(pose3, axis=-1)[tmask]
        dt = np.linalg.norm(target, axis=-1)[tmask]
        same.append(np.allclose(d3 / d3.mean(), dt / dt.mean(), atol=1e-3))
    assert all(same) if shared else not all(same)
