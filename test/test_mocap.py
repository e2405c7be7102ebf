"""The real optical mocap (Bandai Namco Research Motion Dataset, CC BY-NC 4.0) through the topology layer.

Uses the full set (2,235 sequences, 273k frames) when it sits beside the repository or $HETSKEL_MOCAP points at
it, and the shipped 20-sequence sample otherwise. Every check is vectorised over all frames of all sequences.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hetskel_ros.paths import share_dir
from hetskel_ros.topology import TopologyError, load_topology, load_unified, normalize
from hetskel_ros.topology.sequences import (
    MOCAP_ENV,
    SequenceSet,
    default_mocap_path,
    full_mocap_path,
    load_sequences,
    make_sample,
    sample_path,
    write_sequences,
)

# Joint-centre distances of adults, in metres. Segment lengths as fractions of stature H (Winter, Biomechanics
# and Motor Control of Human Movement: upper arm 0.186 H, forearm 0.146 H, thigh 0.245 H, shank 0.246 H) give,
# for statures 1.45-1.95 m, upper arm 0.27-0.36, forearm 0.21-0.28, thigh 0.36-0.48, shank 0.36-0.48. The ranges
# below add margin for where a mocap rig or a sensor puts joint centres (this rig: upper arm 0.243, forearm
# 0.223, thigh 0.391, shin 0.410, torso 0.39-0.41), and still reject a wrong mapping (shoulder->wrist ~0.5 m,
# hip->ankle ~0.8 m, elbow->hand-tip) or a unit error.
BONE_RANGES_M = {
    "upper arm": (("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"), 0.20, 0.40),
    "forearm": (("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"), 0.18, 0.33),
    "thigh": (("left_hip", "left_knee"), ("right_hip", "right_knee"), 0.30, 0.55),
    "shin": (("left_knee", "left_ankle"), ("right_knee", "right_ankle"), 0.30, 0.55),
    "torso": (("spine_base", "spine_shoulder"), ("spine_base", "spine_shoulder"), 0.30, 0.65),
}


@pytest.fixture(scope="module")
def mocap() -> SequenceSet:
    return load_sequences(default_mocap_path())


@pytest.fixture(scope="module")
def mapped(mocap):
    """All frames of all sequences in the unified skeleton, in one array."""
    positions, offsets = mocap.stacked()
    unified = load_unified()
    points, mask = load_topology(mocap.topology).to_unified(positions, unified=unified)
    return points, mask, offsets, unified


def test_mocap_file_is_the_bandai_topology(mocap):
    topology = load_topology("bandai_mocap")
    assert mocap.topology == "bandai_mocap" and mocap.joints == topology.joints
    assert mocap.fps == 30 and len(mocap) >= 20
    assert len(mocap.label_names) == 10 and "youthful" in mocap.style_names
    if default_mocap_path() == full_mocap_path():
        assert len(mocap) == 2235 and mocap.num_frames == 273381


def test_mocap_maps_with_every_covered_joint_present(mapped):
    points, mask, _, unified = mapped
    coverage = load_topology("bandai_mocap").coverage(unified)
    assert coverage.sum() == 18
    assert mask[:, coverage].all() and not mask[:, ~coverage].any()
    assert np.isfinite(points).all()


@pytest.mark.parametrize("bone", sorted(BONE_RANGES_M))
def test_mocap_bone_lengths_are_human_on_every_sequence(bone, mapped, mocap):
    points, _, offsets, unified = mapped
    left, right, low, high = BONE_RANGES_M[bone]
    lengths = {}
    for side, (a, b) in (("left", left), ("right", right)):
        lengths[side] = np.linalg.norm(points[:, unified.index(a)] - points[:, unified.index(b)], axis=-1)
        per_sequence_min = np.minimum.reduceat(lengths[side], offsets[:-1])
        per_sequence_max = np.maximum.reduceat(lengths[side], offsets[:-1])
        bad = np.flatnonzero((per_sequence_min < low) | (per_sequence_max > high))
        assert bad.size == 0, (
            f"{side} {bone} outside {low}-{high} m in {bad.size} sequences, e.g. {mocap.names[bad[0]]}: "
            f"{per_sequence_min[bad[0]]:.3f}-{per_sequence_max[bad[0]]:.3f} m"
        )
    # the body is symmetric: left and right segments agree within a centimetre in every frame
    assert np.abs(lengths["left"] - lengths["right"]).max() < 0.01


def test_normalised_mocap_faces_plus_z_with_root_at_origin_and_unit_torso(mapped, mocap):
    """Yaw alignment uses the first frame's hips; independent cues (shoulders, feet) must then point to +Z."""
    points, mask, offsets, unified = mapped
    u = unified.index
    body = np.empty_like(points)
    for i in range(len(mocap)):
        a, b = offsets[i], offsets[i + 1]
        body[a:b] = normalize(points[a:b], mask[a:b], unified, up="+y")
    first = body[offsets[:-1]]  # (S, J, 3): the first frame of every sequence
    assert np.abs(first[:, unified.root_index]).max() < 1e-5
    torso = np.linalg.norm(body[:, u("spine_shoulder")] - body[:, u("spine_base")], axis=-1)
    medians = np.array([np.median(torso[a:b]) for a, b in itertools.pairwise(offsets)])
    np.testing.assert_allclose(medians, 1.0, atol=1e-5)
    hips = first[:, u("left_hip")] - first[:, u("right_hip")]
    assert (hips[:, 0] > 0).all() and (np.abs(hips[:, 2]) < 1e-5 * np.linalg.norm(hips, axis=-1)).all()
    # chest direction: horizontal normal of the shoulder line (left = up x forward => forward = left x up)
    chest = np.cross(first[:, u("left_shoulder")] - first[:, u("right_shoulder")], [0.0, 1.0, 0.0])
    shoulders_forward = chest[:, 2] / np.hypot(chest[:, 0], chest[:, 2])
    # feet point forward: ankle -> ball of the foot, averaged over each sequence
    feet = body[:, u("left_foot")] - body[:, u("left_ankle")] + body[:, u("right_foot")] - body[:, u("right_ankle")]
    feet = np.add.reduceat(feet, offsets[:-1], axis=0)
    feet_forward = feet[:, 2] / np.hypot(feet[:, 0], feet[:, 2])
    # measured on the full set: shoulders 100% (1st percentile cos 0.94), feet 99.96%
    assert (shoulders_forward > 0.5).mean() >= 0.99
    assert (feet_forward > 0).mean() >= 0.98
    # upright: the neck end of the torso is up in every frame of every sequence
    assert (body[:, u("spine_shoulder"), 1] > body[:, u("spine_base"), 1]).all()


def test_sequence_sets_round_trip_through_the_npz_format(mocap, tmp_path):
    subset = mocap.subset([0, len(mocap) - 1])
    path = write_sequences(tmp_path / "two.npz", subset)
    again = load_sequences(path)
    assert again.names == subset.names and again.label_names == mocap.label_names
    assert again.style_names == mocap.style_names and again.joints == mocap.joints and again.fps == mocap.fps
    assert np.array_equal(again.labels, subset.labels) and np.array_equal(again.styles, subset.styles)
    for x, y in zip(again.sequences, subset.sequences, strict=True):
        assert x.dtype == np.float32 and np.array_equal(x, y)


def test_broken_sequence_files_name_file_and_key(mocap, tmp_path):
    path = write_sequences(tmp_path / "good.npz", mocap.subset([0]))
    with np.load(path) as archive:
        content = {k: archive[k] for k in archive.files}
    bad = tmp_path / "no_offsets.npz"
    np.savez(bad, **{k: v for k, v in content.items() if k != "offsets"})
    with pytest.raises(TopologyError, match=r"no_offsets\.npz: missing key\(s\) offsets"):
        load_sequences(bad)
    wrong = tmp_path / "wrong_offsets.npz"
    np.savez(wrong, **{**content, "offsets": content["offsets"] + 1})
    with pytest.raises(TopologyError, match=r"wrong_offsets\.npz: key 'offsets'"):
        load_sequences(wrong)


def test_default_mocap_path_prefers_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(MOCAP_ENV, str(sample_path()))
    assert default_mocap_path() == sample_path()
    monkeypatch.setenv(MOCAP_ENV, str(tmp_path / "missing.npz"))
    with pytest.raises(TopologyError, match="HETSKEL_MOCAP"):
        default_mocap_path()
    monkeypatch.delenv(MOCAP_ENV)
    assert default_mocap_path() == (full_mocap_path() if full_mocap_path().is_file() else sample_path())


def test_shipped_sample_is_small_credited_and_held_out_style():
    path = sample_path()
    assert path.stat().st_size < 600_000
    sample = load_sequences(path)
    youthful = sample.style_names.index("youthful")
    assert len(sample) == 20 and (sample.styles == youthful).all()
    assert np.array_equal(np.bincount(sample.labels, minlength=10), np.full(10, 2))
    assert min(len(s) for s in sample.sequences) >= 60
    readme = (share_dir() / "data" / "README.md").read_text()
    assert "Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0" in readme


@pytest.mark.skipif(not full_mocap_path().is_file(), reason="full mocap set not beside the repository")
def test_shipped_sample_is_reproduced_by_its_command(tmp_path):
    remade = make_sample(full_mocap_path(), tmp_path / "sample.npz")
    shipped = load_sequences(sample_path())
    assert remade.names == shipped.names
    assert all(np.array_equal(a, b) for a, b in zip(remade.sequences, shipped.sequences, strict=True))
    assert (tmp_path / "sample.npz").read_bytes() == Path(sample_path()).read_bytes()


def cli_command() -> list[str]:
    """The installed console script (setup.py entry point), next to this interpreter or on PATH."""
    beside = Path(sys.executable).parent / "hetskel-topology"
    found = str(beside) if beside.exists() else shutil.which("hetskel-topology")
    assert found, "hetskel-topology is not installed (pip install -e . / the setup script installs it)"
    return [found]


def test_cli_mocap_summary_maps_a_sequence_set(tmp_path):
    result = subprocess.run([*cli_command(), "mocap", str(sample_path())], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "sequences: 20, frames: 2700 at 30 fps" in result.stdout
    assert "unified joints present in every frame: 18/30" in result.stdout
    assert "upper arm  0.243" in result.stdout and "chest faces +Z: 100.0%" in result.stdout
    missing = subprocess.run([*cli_command(), "mocap", str(tmp_path / "none.npz")], capture_output=True, text=True)
    assert missing.returncode == 2 and "none.npz" in missing.stderr
