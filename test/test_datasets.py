"""The real data sets as the package reads them: Kinect v1 and Penn Action topologies, joint order by name,
confidence, bone-length normalisation, and the feature API cutting the node's own windows.

Uses the shipped credited samples (data/*_sample.npz), so it runs on a fresh clone.
Data credits: NW-UCLA (Wang et al., CVPR 2014), UTD-MHAD (Chen et al., ICIP 2015), Penn Action (Zhang et al.,
ICCV 2013), Bandai Namco Research Motion Dataset (CC BY-NC 4.0); non-commercial research use.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hetskel_ros.model.bundle import load_bundle
from hetskel_ros.model.features import FeatureExtractor, raw_joint_infer
from hetskel_ros.runtime.backends import create_backend
from hetskel_ros.runtime.observation import Observation
from hetskel_ros.runtime.recognizer import InputSpec, Recognizer, RecognizerConfig
from hetskel_ros.runtime.samples import default_bundle_path
from hetskel_ros.topology import TopologyError, load_topology, load_unified
from hetskel_ros.topology.normalize import Normalization, measured_bone_lengths, rescale_bones, template_lengths
from hetskel_ros.topology.sequences import load_sequences, write_sequences
from training.datasets import load_dataset

SKELETON = load_unified()


def test_a_file_in_its_own_joint_order_is_read_in_the_topology_order(tmp_path):
    ucla = load_dataset("nw_ucla", sample=True).data
    order = np.random.default_rng(0).permutation(len(ucla.joints))  # e.g. UTD-MHAD's own order
    shuffled = replace(ucla, sequences=[s[:, order] for s in ucla.sequences],
                       joints=tuple(ucla.joints[i] for i in order), confidence=[c[:, order] for c in ucla.confidence])
    path = write_sequences(tmp_path / "shuffled.npz", shuffled)
    np.savez(path, **{k: v for k, v in np.load(path).items() if k != "topology"})  # found by its joint names
    again = load_sequences(path)
    assert again.topology == "kinect_v1" and again.joints == ucla.joints
    for a, b in zip(again.sequences, ucla.sequences, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(again.confidence[0], ucla.confidence[0])


def test_kinect_v1_spine_is_not_the_middle_of_the_spine():
    utd = load_dataset("utd_mhad", sample=True).data
    topology = load_topology("kinect_v1")
    native = utd.sequences[0]
    unified, _ = topology.to_unified(native, utd.confidence[0])
    mid = SKELETON.index("spine_mid")
    base, top = native[:, topology.index("hip_center")], native[:, topology.index("shoulder_center")]
    np.testing.assert_allclose(unified[:, mid], (base + top) / 2, atol=1e-6)
    sdk_spine = native[:, topology.index("spine")]
    assert np.median(np.linalg.norm(sdk_spine - base, axis=1)) < 0.1  # the SDK joint sits just above the pelvis
    assert "spine_navel" in topology.provided_canonical()


def test_penn_action_left_and_right_are_the_persons_own():
    penn = load_dataset("penn_action", sample=True).data
    views, view_names = penn.group("view")
    topology = load_topology("penn_action")
    left, right = SKELETON.index("left_shoulder"), SKELETON.index("right_shoulder")
    person_left_on_image_right = []
    for i in np.flatnonzero(views == view_names.index("front")):
        unified, mask = topology.to_unified(penn.sequences[i], penn.confidence[i])
        both = mask[:, left] & mask[:, right]
        person_left_on_image_right += list(unified[both, left, 0] > unified[both, right, 0])
    assert len(person_left_on_image_right) > 100
    # facing the camera, a person's left shows on the image right (the release's own names: 20% of these frames)
    assert np.mean(person_left_on_image_right) > 0.75


def test_occluded_but_annotated_joints_are_present_and_unannotated_ones_missing():
    penn = load_dataset("penn_action", sample=True).data
    confidence = np.concatenate(penn.confidence)
    assert set(np.unique(confidence)) <= {0.0, 0.5, 1.0} and (confidence == 0.5).any()
    topology = load_topology("penn_action")
    i = next(k for k, c in enumerate(penn.confidence) if (c == 0.5).any())
    _, mask = topology.to_unified(penn.sequences[i], penn.confidence[i])
    frame, joint = np.argwhere(penn.confidence[i] == 0.5)[0]
    assert mask[frame, SKELETON.index(topology.canonical[topology.joints[joint]])]


@pytest.mark.parametrize("change, message", [
    ("unknown_joint", "key 'joints'"),
    ("unknown_topology", "unknown topology"),
    ("wrong_shape", "key 'positions'"),
    ("wrong_dims", "3D"),
])
def test_a_bad_sequence_file_names_the_file_and_the_key(tmp_path, change, message):
    ucla = load_dataset("nw_ucla", sample=True).data
    path = write_sequences(tmp_path / "bad.npz", ucla)
    arrays = dict(np.load(path))
    if change == "unknown_joint":
        arrays["joints"] = np.array(["hip_centre", *ucla.joints[1:]])
    elif change == "unknown_topology":
        arrays["topology"] = np.array("kinect_v9")
    elif change == "wrong_shape":
        arrays["positions"] = arrays["positions"][:, :5]
    else:
        arrays["positions"] = arrays["positions"][..., :2]
    np.savez(path, **arrays)
    with pytest.raises(TopologyError, match=message) as error:
        load_sequences(path)
    assert str(path) in str(error.value) or "kinect_v9" in str(error.value)


def test_bone_rescaling_gives_every_body_the_template_proportions():
    utd = load_dataset("utd_mhad", sample=True).data
    topology = load_topology("kinect_v1")
    clips = [topology.to_unified(s, c) for s, c in zip(utd.sequences, utd.confidence, strict=True)]
    template = template_lengths(clips, SKELETON)
    left, right = SKELETON.index("left_elbow"), SKELETON.index("right_elbow")
    assert template[left] == template[right]  # mirrored bones share one length
    positions, mask = clips[0]
    rescaled = rescale_bones(positions, mask, SKELETON, template)
    lengths = measured_bone_lengths(rescaled, mask, SKELETON)
    measured = np.isfinite(lengths).any(axis=0) & np.isfinite(template)
    np.testing.assert_allclose(lengths[:, measured], np.broadcast_to(template[measured], lengths[:, measured].shape),
                               rtol=1e-4)
    root = SKELETON.root_index
    np.testing.assert_allclose(rescaled[:, root], positions[:, root], atol=1e-6)  # whole-body motion is kept
    # a missing elbow: the wrist keeps its direction from the shoulder, at upper arm + forearm template length
    mask = mask.copy()
    mask[:, left] = False
    rescaled = rescale_bones(positions, mask, SKELETON, template)
    shoulder, wrist = SKELETON.index("left_shoulder"), SKELETON.index("left_wrist")
    reach = np.linalg.norm(rescaled[:, wrist] - rescaled[:, shoulder], axis=1)
    np.testing.assert_allclose(reach, template[left] + template[wrist], rtol=1e-4)


def test_normalisation_round_trips_through_the_bundle_metadata():
    template = tuple(float(v) for v in np.linspace(0.05, 0.5, SKELETON.num_joints))
    normalization = Normalization(yaw_align=True, bone_lengths=template)
    again = Normalization.from_dict(normalization.to_dict(SKELETON), SKELETON)
    np.testing.assert_allclose(again.bone_lengths, template, rtol=1e-4)
    assert Normalization.from_dict({"yaw_align": True}, SKELETON).bone_lengths is None  # older bundles: as measured
    with pytest.raises(TopologyError, match="bone_lengths"):
        Normalization.from_dict({"bone_lengths": {"tail": 0.3}}, SKELETON)


@pytest.fixture(scope="module")
def shipped():
    bundle = load_bundle(default_bundle_path())
    return bundle, create_backend("onnxruntime", bundle, threads=1)


def test_feature_api_cuts_and_scores_exactly_the_windows_the_node_classifies(shipped):
    """The same UTD-MHAD sequence fed frame by frame to the runtime Recognizer (what the node runs) and given whole
    to the feature API: the same window ends and the same class scores."""
    bundle, backend = shipped
    utd = load_dataset("utd_mhad", sample=True).data
    i = int(np.argmax([len(s) for s in utd.sequences]))
    extractor = FeatureExtractor.from_bundle(bundle, backend.infer)
    windows = extractor.windows(utd.sequences[i], "kinect_v1", utd.fps, utd.confidence[i])
    recognizer = Recognizer(bundle, backend, [InputSpec("depth", rate_hz=utd.fps)],
                            RecognizerConfig(smoothing=0.0, stagger=False, top_k=len(bundle.label_names)))
    topology = load_topology("kinect_v1")
    decisions = []
    for frame, (native, confidence) in enumerate(zip(utd.sequences[i], utd.confidence[i], strict=True)):
        unified, mask = topology.to_unified(native, confidence)
        stamp = frame / utd.fps
        recognizer.observe("depth", [Observation(1, stamp, "kinect_v1", 3, unified, mask, "camera")], stamp)
        decisions += recognizer.step(stamp)
    assert len(decisions) == len(windows.ends) >= 2
    np.testing.assert_allclose([d.stamp for d in decisions], windows.ends, atol=1e-9)
    for decision, scores in zip(decisions, windows.scores, strict=True):
        by_label = {h.label: h.score for h in decision.hypotheses}
        np.testing.assert_allclose([by_label[n] for n in bundle.label_names], scores, atol=1e-5)


def test_a_sequence_shorter_than_the_first_window_still_gets_a_feature(shipped):
    bundle, backend = shipped
    ucla = load_dataset("nw_ucla", sample=True).data
    extractor = FeatureExtractor.from_bundle(bundle, backend.infer)
    short = ucla.sequences[0][:10]  # a third of a second
    windows = extractor.windows(short, "kinect_v1", ucla.fps, ucla.confidence[0][:10])
    assert windows.features.shape == (1, bundle.config.feature_dim) and np.isfinite(windows.features).all()
    assert windows.ends[0] == pytest.approx(9 / ucla.fps)
    features = extractor.sequence_set_features(ucla)
    assert features.shape == (len(ucla), bundle.config.feature_dim)  # every sequence, none skipped
    raw = FeatureExtractor.from_bundle(bundle, raw_joint_infer).sequence_set_features(ucla)
    assert raw.shape[0] == len(ucla) and np.isfinite(raw).all()


def test_the_whole_sequence_feature_fills_the_window_with_the_clip(shipped):
    """A 1 s NW-UCLA gesture as one window spanning it (the standard protocols' view of a trimmed clip): the clip's
    first and last frames are the window's, no frame is padding, and it is one feature per sequence."""
    bundle, backend = shipped
    ucla = load_dataset("nw_ucla", sample=True).data
    extractor = FeatureExtractor.from_bundle(bundle, backend.infer)
    index = int(np.argmin([len(s) for s in ucla.sequences]))
    rows, ends = extractor.window_rows(ucla.sequences[index], "kinect_v1", ucla.fps, ucla.confidence[index],
                                       whole=True)
    padded, _ = extractor.window_rows(ucla.sequences[index], "kinect_v1", ucla.fps, ucla.confidence[index])
    assert len(rows) == 1 and ends[0] == pytest.approx((len(ucla.sequences[index]) - 1) / ucla.fps)
    moving = np.abs(np.diff(rows[0]["x3d"], axis=0)).sum(axis=(1, 2))
    assert (moving > 0).all()  # every frame differs from the last: nothing repeats the first frame
    assert (np.abs(np.diff(padded[0]["x3d"], axis=0)).sum(axis=(1, 2)) == 0).any()  # the node's window pads
    whole = extractor.sequence_set_features(ucla, whole=True)
    assert whole.shape == (len(ucla), bundle.config.feature_dim) and np.isfinite(whole).all()
    np.testing.assert_allclose(whole[index], extractor.sequence_features(
        ucla.sequences[index], "kinect_v1", ucla.fps, ucla.confidence[index], whole=True), atol=1e-5)


def test_the_rounds_model_options_run_the_same_in_onnx_runtime_as_in_torch():
    """A bundle with the lifted stream reading the 2D joints, ordered stretch pooling and per-joint stretches (the
    options union pretraining measured) exports, and the node's backend computes what PyTorch computes, on real
    Kinect v1 (3D) and Penn Action (2D) sequences."""
    import torch

    from hetskel_ros.model.bundle import Bundle, state_to_numpy
    from hetskel_ros.model.config import preset
    from hetskel_ros.model.export import export_onnx
    from hetskel_ros.model.features import torch_infer
    from hetskel_ros.model.model import HetSkelModel

    torch.manual_seed(0)
    cfg = preset("small", topologies=("kinect_v1", "penn_action"), num_classes=4, lift_keeps_2d=True,
                 time_segments=4, joint_segment_dim=4, feature_dim=128)
    model = HetSkelModel(cfg).eval()
    bundle = Bundle(config=cfg, unified_joints=list(SKELETON.names), label_names=list("abcd"),
                    weights=state_to_numpy(model), onnx=export_onnx(model))
    onnx = FeatureExtractor.from_bundle(bundle, create_backend("onnxruntime", bundle, threads=1).infer)
    eager = FeatureExtractor.from_bundle(bundle, torch_infer(model))
    for name in ("utd_mhad", "penn_action"):
        data = load_dataset(name, sample=True).data.subset(range(3))
        got, want = onnx.sequence_set_features(data), eager.sequence_set_features(data)
        np.testing.assert_allclose(got, want, atol=1e-4 * max(1.0, float(np.abs(want).max())))
