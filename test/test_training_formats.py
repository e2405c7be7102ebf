"""NTU .skeleton and PYSKL pickle readers: files written here in the documented formats, read back."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from hetskel_ros.topology import load_topology, load_unified
from training.formats import (
    NTU60_XSUB_TRAIN_SUBJECTS,
    NTU_ACTIONS,
    FormatError,
    ScoredSequenceSet,
    load_ntu_directory,
    load_pyskl,
    ntu_split,
    parse_ntu_name,
    read_ntu_skeleton,
)


def _skeleton_text(bodies_per_frame: list[list[tuple[str, np.ndarray, np.ndarray]]], joints: int = 25) -> str:
    """The NTU .skeleton text: frame count; per frame body count, body info, joint count, joint lines."""
    lines = [str(len(bodies_per_frame))]
    for bodies in bodies_per_frame:
        lines.append(str(len(bodies)))
        for body_id, xyz, state in bodies:
            lines.append(f"{body_id} 0 1 1 1 1 0 0.1 -0.05 2")
            lines.append(str(joints))
            for j in range(joints):
                x, y, z = xyz[j % len(xyz)]
                depth, colour = f"{250 + j:.4f} {200 + j:.4f}", f"{1000 + j:.3f} {500 + j:.3f}"
                lines.append(f"{x:.7f} {y:.7f} {z:.7f} {depth} {colour} 0.9 0.1 0.2 0.3 {int(state[j % len(state)])}")
    return "\n".join(lines) + "\n"


def _body(seed: int, offset: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(scale=0.3, size=(25, 3)) + np.array([offset, 0.0, 3.0])).astype(np.float64)


def _two_body_file(path: Path) -> dict[str, np.ndarray]:
    """2 frames, 2 bodies: a moving actor (id ...101) and a still bystander (id ...202, listed first)."""
    mover = [_body(1), _body(2)]
    still = _body(3, offset=1.5)
    states = np.full(25, 2)
    states[7] = 1  # HandLeft inferred
    states[21] = 0  # HandTipLeft not tracked
    frames = [
        [("72057594037931202", still, np.full(25, 2)), ("72057594037931101", mover[0], states)],
        [("72057594037931202", still, np.full(25, 2)), ("72057594037931101", mover[1], states)],
    ]
    path.write_text(_skeleton_text(frames))
    return {"mover": np.stack(mover), "still": np.stack([still, still]), "states": states}


def test_skeleton_file_bodies_main_actor_first(tmp_path: Path) -> None:
    path = tmp_path / "S001C002P003R001A023.skeleton"
    truth = _two_body_file(path)
    bodies = read_ntu_skeleton(path)
    assert [b.body_id for b in bodies] == ["72057594037931101", "72057594037931202"]  # the one that moves leads
    main = bodies[0]
    assert main.positions.shape == (2, 25, 3) and main.positions.dtype == np.float32
    np.testing.assert_allclose(main.positions, truth["mover"], atol=1e-6)
    np.testing.assert_allclose(bodies[1].positions, truth["still"], atol=1e-6)
    assert main.tracking.shape == (2, 25)
    assert main.tracking[0, 7] == 1 and main.tracking[0, 21] == 0 and main.tracking[0, 0] == 2
    assert main.confidence[0, 7] == 0.5 and main.confidence[0, 21] == 0.0 and main.confidence[0, 0] == 1.0
    assert main.motion > 0 and bodies[1].motion == 0
    assert len(read_ntu_skeleton(path, max_bodies=1)) == 1


def test_body_absent_in_some_frames_is_nan_and_untracked(tmp_path: Path) -> None:
    path = tmp_path / "S001C001P001R001A001.skeleton"
    body = _body(5)
    path.write_text(_skeleton_text([[("7", body, np.full(25, 2))], [], [("7", body + 0.1, np.full(25, 2))]]))
    (main,) = read_ntu_skeleton(path)
    assert main.present.tolist() == [True, False, True]
    assert np.isnan(main.positions[1]).all() and not np.isnan(main.positions[[0, 2]]).any()
    assert (main.tracking[1] == 0).all()


def test_directory_labels_subjects_and_unified_mapping(tmp_path: Path) -> None:
    _two_body_file(tmp_path / "S001C002P003R001A023.skeleton")
    _two_body_file(tmp_path / "S002C001P001R002A060.skeleton")
    (tmp_path / "S003C001P008R001A005.skeleton").write_text("0\n")  # NTU ships samples without any skeleton
    with pytest.warns(UserWarning, match=r"S003C001P008R001A005\.skeleton"):
        data = load_ntu_directory(tmp_path)
    assert isinstance(data, ScoredSequenceSet)
    assert data.names == ("S001C002P003R001A023", "S002C001P001R002A060")
    assert data.labels.tolist() == [22, 59]  # A023 hand waving, A060 -> label A - 1
    assert data.label_names[22] == "hand waving" and len(data.label_names) == 60
    assert data.style_names == ("P001", "P003") and data.styles.tolist() == [1, 0]
    assert data.topology == "kinect_v2" and data.fps == 30.0 and len(data.joints) == 25
    assert data.sequences[0].shape == (2, 25, 3) and data.confidence[0].shape == (2, 25)

    topology = load_topology(data.topology)
    unified, mask = topology.to_unified(data.sequences[0], data.confidence[0], unified=load_unified())
    skeleton = load_unified()
    assert mask[0, skeleton.index("left_hand")]  # inferred (0.5) is kept
    assert not mask[0, skeleton.index("left_hand_tip")]  # not tracked is missing
    assert not mask[0, skeleton.index("nose")]  # Kinect has no face joints
    np.testing.assert_allclose(unified[0, skeleton.index("spine_base")], data.sequences[0][0, 0])

    assert len(load_ntu_directory(tmp_path, max_files=1)) == 1
    subset = data.subset([1])
    assert isinstance(subset, ScoredSequenceSet) and subset.names == ("S002C001P001R002A060",)
    assert subset.confidence[0] is data.confidence[1]


def test_ntu_names_and_standard_splits() -> None:
    name = parse_ntu_name("nturgb+d_skeletons/S017C003P020R002A120.skeleton")
    assert (name.setup, name.camera, name.subject, name.replication, name.action, name.label) == (
        17,
        3,
        20,
        2,
        120,
        119,
    )
    assert len(NTU_ACTIONS) == 120 and NTU_ACTIONS[59] == "walking apart from each other"
    assert len(NTU60_XSUB_TRAIN_SUBJECTS) == 20
    names = ["S001C001P001R001A001", "S001C002P003R001A001", "S002C003P045R001A061", "S003C001P002R001A002"]
    assert [a.tolist() for a in ntu_split(names, "xsub60")] == [[0, 3], [1, 2]]  # P045 is a test subject in NTU-60
    assert [a.tolist() for a in ntu_split(names, "xsub120")] == [[0, 2, 3], [1]]  # ... and a training one in NTU-120
    assert [a.tolist() for a in ntu_split(names, "xview60")] == [[1, 2], [0, 3]]
    assert [a.tolist() for a in ntu_split(names, "xset120")] == [[2], [0, 1, 3]]
    with pytest.raises(FormatError, match="walk_001"):
        parse_ntu_name("walk_001.skeleton")
    with pytest.raises(ValueError, match="xsub99"):
        ntu_split(names, "xsub99")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "2\n1\n7 0 1 1 1 1 0 0 0 2\n25\n"
            + "0 0 3 1 1 1 1 1 0 0 0 2\n" * 25
            + "1\n7 0 1 1 1 1 0 0 0 2\n25\n"
            + "0 0 3 1 1 1 1 1 0 0 0 2\n" * 10,
            "truncated",
        ),
        ("1\n1\n7 0 1 1 1 1 0 0 0 2\n20\n" + "0 0 3 1 1 1 1 1 0 0 0 2\n" * 20, "20 joints"),
        ("1\n1\n7 0 1 1 1 1 0 0 0 2\n25\n" + "0 0 3 1 1 1 1 1 0 0 0 2\n" * 24 + "0 0 3\n", "line 29: .*12 values"),
        ("1\n1\n7 0 1 1 0 0 0 2\n25\n", "10 values"),
        ("two\n", "line 1: expected the frame count"),
        ("1\n1\n7 0 1 1 1 1 0 0 0 2\n25\n" + "0 0 3 1 1 1 1 1 0 0 0 2\n" * 25 + "5\n", "unexpected content"),
    ],
)
def test_bad_skeleton_files_are_refused_naming_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text(content)
    with pytest.raises(FormatError, match=message) as error:
        read_ntu_skeleton(path)
    assert str(path) in str(error.value)


def test_directory_errors_name_the_place(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"no \*.skeleton files"):
        load_ntu_directory(tmp_path)
    (tmp_path / "walk.skeleton").write_text("0\n")
    with pytest.raises(FormatError, match=r"walk.skeleton"):
        load_ntu_directory(tmp_path)


# ------------------------------------------------------------------------------------------------------ PYSKL


def _pyskl_entry(
    name: str,
    label: int,
    persons: int,
    frames: int,
    joints: int,
    channels: int,
    *,
    scores: bool,
    padded: int = 0,
    seed: int = 0,
) -> dict:
    rng = np.random.default_rng(seed)
    keypoint = rng.normal(size=(persons, frames + padded, joints, channels)).astype(np.float32)
    if channels == 2:
        keypoint = (keypoint * 50 + [960, 540]).astype(np.float32)
    entry = {"frame_dir": name, "label": label, "keypoint": keypoint, "total_frames": frames}
    if scores:
        entry["keypoint_score"] = rng.uniform(0, 1, size=(persons, frames + padded, joints)).astype(np.float32)
        entry["img_shape"] = (1080, 1920)
        entry["original_shape"] = (1080, 1920)
    return entry


def _write_pickle(path: Path, annotations: list[dict], split: dict[str, list[str]]) -> Path:
    with path.open("wb") as handle:
        pickle.dump({"split": split, "annotations": annotations}, handle)
    return path


def test_pyskl_ntu_3d_with_split(tmp_path: Path) -> None:
    names = ["S001C001P001R001A001", "S001C001P003R001A002", "S001C002P002R001A003"]
    entries = [
        _pyskl_entry(n, i, persons=2, frames=20 + i, joints=25, channels=3, scores=False, padded=3, seed=i)
        for i, n in enumerate(names)
    ]
    entries[1]["keypoint"][0, 5] = 0  # person absent in frame 5: PYSKL pads with zeros
    path = _write_pickle(
        tmp_path / "ntu60_3danno.pkl", entries, {"xsub_train": [names[0], names[2]], "xsub_val": [names[1]]}
    )
    data = load_pyskl(path)
    assert data.topology == "kinect_v2" and len(data) == 3
    assert [s.shape for s in data.sequences] == [(20, 25, 3), (21, 25, 3), (22, 25, 3)]  # total_frames, person 0
    np.testing.assert_array_equal(data.sequences[2], entries[2]["keypoint"][0, :22])
    assert data.labels.tolist() == [0, 1, 2] and data.label_names[2] == "brushing teeth"
    assert (data.confidence[1][5] == 0).all() and (data.confidence[1][4] == 1).all()
    assert data.style_names == ("P001", "P002", "P003") and data.styles.tolist() == [0, 2, 1]

    train = load_pyskl(path, split="xsub_train")
    assert train.names == (names[0], names[2])
    with pytest.raises(FormatError, match=r"no split 'xview_train'.*xsub_train, xsub_val") as error:
        load_pyskl(path, split="xview_train")
    assert str(path) in str(error.value)


def test_pyskl_hrnet_2d_keeps_pixels_and_scores(tmp_path: Path) -> None:
    entries = [
        _pyskl_entry("S001C001P001R001A010", 9, persons=1, frames=15, joints=17, channels=2, scores=True),
        _pyskl_entry("S001C001P001R001A011", 10, persons=2, frames=12, joints=17, channels=2, scores=True, seed=4),
    ]
    path = _write_pickle(tmp_path / "ntu60_hrnet.pkl", entries, {"xsub_train": ["S001C001P001R001A010"]})
    data = load_pyskl(path)
    assert data.topology == "coco17" and data.joints[0] == "nose"
    assert data.sequences[0].shape == (15, 17, 2) and data.sequences[0].mean() > 100  # pixels, not normalised
    np.testing.assert_array_equal(data.confidence[1], entries[1]["keypoint_score"][0])
    assert data.image_shapes == [(1080, 1920), (1080, 1920)]
    unified, mask = load_topology("coco17").to_unified(data.sequences[0], data.confidence[0])
    assert unified.shape == (15, 30, 2) and mask.shape == (15, 30)

    custom = load_pyskl(path, split="xsub_train", label_names=[f"gym_{i}" for i in range(10)])
    assert custom.label_names[9] == "gym_9"


def test_pyskl_bad_files_are_refused_naming_the_file(tmp_path: Path) -> None:
    odd = _write_pickle(tmp_path / "odd.pkl", [_pyskl_entry("clip_a", 0, 1, 10, 18, 2, scores=True)], {})
    with pytest.raises(FormatError, match=r"odd.pkl.*clip_a.*18 joints x 2 channels"):
        load_pyskl(odd)
    mixed = _write_pickle(
        tmp_path / "mixed.pkl",
        [_pyskl_entry("a", 0, 1, 10, 25, 3, scores=False), _pyskl_entry("b", 1, 1, 10, 17, 2, scores=True)],
        {},
    )
    with pytest.raises(FormatError, match=r"mixed.pkl: sample 'b'.*one file must hold one topology"):
        load_pyskl(mixed)
    entry = _pyskl_entry("c", 0, 1, 10, 25, 3, scores=False)
    del entry["keypoint"]
    with pytest.raises(FormatError, match=r"nokp.pkl: sample 'c': missing key 'keypoint'"):
        load_pyskl(_write_pickle(tmp_path / "nokp.pkl", [entry], {}))
    entry = _pyskl_entry("d", 0, 1, 10, 25, 3, scores=False)
    entry["total_frames"] = 40
    with pytest.raises(FormatError, match=r"long.pkl: sample 'd': total_frames=40"):
        load_pyskl(_write_pickle(tmp_path / "long.pkl", [entry], {}))
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(odd.read_bytes()[:50])
    with pytest.raises(FormatError, match=r"truncated.pkl: cannot read"):
        load_pyskl(truncated)
