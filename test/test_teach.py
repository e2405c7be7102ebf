"""hetskel-teach on real recordings: a rosbag2 bag of real Kinect v1 skeletons with CSV labels, a sequence-set npz,
the errors of a bad label file (each naming its row), unusable segments listed, and the bundle it writes (same
encoder graph, so the same TensorRT engine key; the head beside it; the refitted calibration; provenance).

Data: UTD-MHAD sample (data/utd_mhad_sample.npz; C. Chen, R. Jafari, N. Kehtarnavaz, ICIP 2015) and the Bandai Namco
mocap sample (Bandai Namco Research Motion Dataset, Bandai Namco Research Inc., CC BY-NC 4.0); non-commercial use.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from hetskel_ros.model.bundle import load_bundle, save_bundle
from hetskel_ros.model.calibration import IDLE, fit_calibration, read_calibration, write_calibration
from hetskel_ros.model.fewshot import fit_head
from hetskel_ros.paths import share_dir
from hetskel_ros.ros.bagtools.bag_io import read_bag
from hetskel_ros.ros.bagtools.make import Selection, make_bag
from hetskel_ros.ros.bagtools.offline import run_offline
from hetskel_ros.ros.bagtools.stream import StreamOptions
from hetskel_ros.ros.teach import main, mark_rows
from hetskel_ros.runtime.engine_cache import engine_key
from hetskel_ros.runtime.features import open_extractor
from hetskel_ros.runtime.samples import default_bundle_path
from hetskel_ros.runtime.teach import LabelError, path_sha256
from hetskel_ros.topology.sequences import load_sequences

DATA = share_dir() / "data"
TAUGHT = ("draw-x", "squat", "two-hand-front-clap")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Two people, each doing the three actions (the clips dealt between them), and the CSV of the clips."""
    out = tmp_path_factory.mktemp("teach")
    stream = make_bag(DATA / "utd_mhad_sample.npz", out / "bag", Selection(labels=TAUGHT),
                      StreamOptions(people=2, idle_s=(1.0, 2.0), seed=0))
    rows = [f"{s.track_id},{s.start / stream.fps:.4f},{s.end / stream.fps:.4f},{s.label}" for s in stream.segments]
    return out, stream, rows


def write_csv(path, rows):
    path.write_text("track_id,start_s,end_s,label\n" + "\n".join(rows) + "\n")
    return path


def teach(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_bag_with_csv_labels_becomes_a_bundle_with_the_same_encoder(recording, capsys):
    out, stream, rows = recording
    labels = write_csv(out / "labels.csv", rows)
    code, stdout, err = teach(capsys, out / "bag", "--labels", labels, "--replace", "--out", out / "t.hetskel")
    assert code == 0, err
    assert "centroid: cross-validated accuracy" in stdout and "logistic: cross-validated accuracy" in stdout
    assert "confusion" in stdout and "two-hand-front-clap" in stdout
    base, taught = load_bundle(default_bundle_path()), load_bundle(out / "t.hetskel")
    assert sorted(taught.label_names) == sorted(TAUGHT)
    assert taught.onnx == base.onnx and taught.head is not None and taught.head.classes == 3
    # a head-only change never rebuilds a TensorRT engine: the engine is keyed by the graph, which did not change
    assert engine_key(taught.onnx, "10.0", "gpu", "fp16", 32) == engine_key(base.onnx, "10.0", "gpu", "fp16", 32)
    record = taught.provenance["taught"]
    assert record["recording_sha256"] == path_sha256(out / "bag")
    assert record["labels_sha256"] == path_sha256(labels) and record["labels"].endswith("labels.csv")
    assert record["examples"] == dict(Counter(s.label for s in stream.segments)) and record["unusable"] == []
    calibration = read_calibration(out / "t.hetskel")
    assert calibration is not None and calibration.labels == taught.label_names
    # the node's own pipeline, offline, on the same bag: the taught actions are what it says
    result = run_offline(read_bag(out / "bag"), overrides={"model": str(out / "t.hetskel"), "backend": "onnxruntime"})
    said = Counter(p.label for p in result.predictions)
    assert all(said[label] >= 2 for label in TAUGHT), said  # each taught action is recognised
    # the rest is idle gaps and unknown; a new action waits for confirm_windows (2) confident windows
    assert sum(said[label] for label in TAUGHT) >= 0.3 * sum(said.values()), said


@pytest.mark.parametrize(("extra", "wanted"), [
    (["9,1.0,2.0,squat"], "row 8 (track 9, 1.00-2.00 s, 'squat'): track 9 is not in the recording"),
    (["1,5.0,5.0,squat"], "row 8 (track 1, 5.00-5.00 s, 'squat'): empty segment"),
    (["1,3.0,1.0,squat"], "row 8 (track 1, 3.00-1.00 s, 'squat'): empty segment"),
    (["1,0.0,0.5,wave"], "row 8 (track 1, 0.00-0.50 s, 'wave'): label 'wave' has 1 example"),
    (["1,0.5,a,wave"], "row 8: track_id must be an integer"),
    (["1,2.0"], "row 8: expected 4 fields"),
])
def test_a_bad_label_file_names_the_row(recording, capsys, tmp_path, extra, wanted):
    out, _, rows = recording
    labels = write_csv(tmp_path / "bad.csv", rows + extra)
    code, _, err = teach(capsys, out / "bag", "--labels", labels, "--replace", "--out", tmp_path / "x.hetskel")
    assert code == 1 and wanted in err, err
    assert "Traceback" not in err and not (tmp_path / "x.hetskel").exists()


def test_overlapping_segments_of_one_person_name_both_rows(recording, capsys, tmp_path):
    out, _, rows = recording
    first = rows[0].split(",")
    overlap = f"{first[0]},{float(first[1]) + 0.2:.4f},{float(first[2]) + 1.0:.4f},squat"
    code, _, err = teach(capsys, out / "bag", "--labels", write_csv(tmp_path / "o.csv", [*rows, overlap]),
                         "--replace", "--out", tmp_path / "x.hetskel")
    assert code == 1 and "bad.csv" not in err and "o.csv row 8" in err and "overlaps o.csv row 2" in err, err


def test_an_unusable_segment_is_listed_and_counted_never_dropped_silently(recording, capsys, tmp_path):
    out, _, rows = recording
    labels = write_csv(tmp_path / "late.csv", [*rows, "1,500.0,502.0,squat"])
    code, stdout, err = teach(capsys, out / "bag", "--labels", labels, "--replace", "--out", tmp_path / "u.hetskel")
    assert code == 0, err
    assert "1 of 7 segment(s) unusable" in stdout and "late.csv row 8" in stdout and "0 frame(s)" in stdout
    record = load_bundle(tmp_path / "u.hetskel").provenance["taught"]
    assert len(record["unusable"]) == 1 and record["segments"] == 7


def test_marks_pair_into_rows_and_a_bad_mark_is_named():
    from hetskel_msgs.msg import Mark

    def mark(label, start, t, track=0):
        m = Mark(label=label, start=start, track_id=track)
        m.header.stamp.sec, m.header.stamp.nanosec = int(t), round((t % 1) * 1e9)
        return m

    rows = mark_rows([mark("wave", True, 101.0), mark("wave", False, 103.5), mark("stop", True, 104.0),
                      mark("stop", False, 105.0)], 100.0, [7])
    assert [(r.track_id, r.start, r.end, r.label) for r in rows] == [(7, 1.0, 3.5, "wave"), (7, 4.0, 5.0, "stop")]
    with pytest.raises(LabelError, match="mark 1: stop of 'wave' on track 7 without a start"):
        mark_rows([mark("wave", False, 101.0)], 100.0, [7])
    with pytest.raises(LabelError, match="mark 1: 'wave' on track 7 was started and never stopped"):
        mark_rows([mark("wave", True, 101.0)], 100.0, [7])
    with pytest.raises(LabelError, match="track 0 means the only person"):
        mark_rows([mark("wave", True, 101.0)], 100.0, [1, 2])


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """The shipped model with a calibration fitted on the mocap sample (its actions' per-class statistics; idle's
    from the shipped calibration, real standing phases the sample does not hold)."""
    out = tmp_path_factory.mktemp("calibrated") / "calibrated.hetskel"
    extractor = open_extractor(default_bundle_path(), threads=1)
    labels = list(load_bundle(default_bundle_path(), weights=False).label_names)
    mocap = load_sequences(DATA / "bandai_sample.npz")
    assert list(mocap.label_names) == labels[:len(mocap.label_names)]  # the head's actions first, then idle
    windows = extractor.sequence_set_features(mocap, per_window=True)
    train = {n: np.concatenate([w.features for i, w in enumerate(windows) if mocap.labels[i] == k])
             for k, n in enumerate(mocap.label_names)}
    calibration = fit_calibration(train, labels, np.concatenate(list(train.values())))
    shipped = read_calibration(default_bundle_path())
    if shipped is not None and IDLE in shipped.stats:
        calibration.stats[IDLE] = shipped.stats[IDLE]
    write_calibration(default_bundle_path(), calibration, out)
    return out, windows, mocap


def test_add_extends_the_vocabulary_from_a_sequence_set_and_keeps_the_old_actions(calibrated, capsys, tmp_path):
    base, windows, mocap = calibrated
    code, _, err = teach(capsys, DATA / "utd_mhad_sample.npz", "--only", ",".join(TAUGHT), "--add",
                              "--model", base, "--out", tmp_path / "added.hetskel")
    assert code == 0, err
    added = load_bundle(tmp_path / "added.hetskel")
    old = list(load_bundle(base, weights=False).label_names)
    assert added.label_names[:len(old)] == old and sorted(added.label_names[len(old):]) == sorted(TAUGHT)
    assert read_calibration(tmp_path / "added.hetskel").labels == added.label_names
    assert json.loads(json.dumps(added.provenance["taught"]["examples"])) == {n: 2 for n in TAUGHT}
    # the old actions, window by window on the mocap sample, through the new head (prototypes from their statistics)
    features = np.concatenate([w.features for w in windows])
    truth = np.concatenate([np.full(len(w.features), mocap.labels[i]) for i, w in enumerate(windows)])
    # adding actions costs the old ones little: against the same kind of head over the old labels alone
    old_only = fit_head("centroid", [], old, read_calibration(base).stats, added.head.info.get("temperature", 16.0))
    accuracy = np.mean(added.head.probabilities(features).argmax(axis=1) == truth)
    before = np.mean(old_only.probabilities(features).argmax(axis=1) == truth)
    assert accuracy >= before - 0.02, (accuracy, before)

    uncalibrated = tmp_path / "uncalibrated.hetskel"  # a bundle that keeps no class statistics
    save_bundle(replace(load_bundle(base), parts={}), uncalibrated)
    code, _, err = teach(capsys, DATA / "utd_mhad_sample.npz", "--only", ",".join(TAUGHT), "--add",
                         "--model", uncalibrated, "--out", tmp_path / "nostats.hetskel")
    assert code == 1 and "neither examples nor stored statistics" in err and "raise-up-both-hands" in err


def test_save_bundle_keeps_the_calibration(calibrated, tmp_path):
    base, _, _ = calibrated
    again = save_bundle(load_bundle(base), tmp_path / "again.hetskel")
    assert read_calibration(again) is not None and read_calibration(again).labels == read_calibration(base).labels


@pytest.mark.slow
def test_a_robot_recording_joint_state_and_tf_teaches_through_the_robot_adapter(tmp_path, capsys):
    """Any input the node reads: mocap retargeted onto the Unitree G1, recorded as the robot sends it (JointState,
    odom -> pelvis on /tf), taught through the joint_state adapter with its URDF."""
    import yaml
    from rclpy.serialization import serialize_message
    from rosbags.rosbag2 import StoragePlugin, Writer

    from hetskel_ros.ros import robot_eval
    from hetskel_ros.ros.bag_types import make_typestore
    from hetskel_ros.topology import load_robot, load_topology, load_unified
    from hetskel_ros.topology.normalize import Normalization, template_lengths
    from hetskel_ros.topology.retarget import Retargeter
    from hetskel_ros.topology.sequences import sample_path, select_sample

    sample = load_sequences(sample_path())
    bundle = load_bundle(default_bundle_path())  # robots need a bone-length template (see test_robot_eval)
    if not bundle.normalization.get("bone_lengths"):
        skeleton, topology = load_unified(), load_topology(sample.topology)
        template = template_lengths([topology.to_unified(s) for s in sample.sequences], skeleton)
        bundle.normalization = Normalization(True, tuple(float(v) for v in template)).to_dict(skeleton)
    model = save_bundle(bundle, tmp_path / "with_template.hetskel")
    wanted = ("wave-right-hand", "raise-up-left-hand")
    indices = [i for i in select_sample(sample, per_label=2) if sample.label_names[sample.labels[i]] in wanted]
    clips = robot_eval.lay_out(sample, indices)
    retargeter = Retargeter("unitree_g1")
    motions = [retargeter.retarget(sample.sequences[c.index], sample.fps) for c in clips]
    samples = robot_eval.robot_samples(motions, clips, 60.0)
    names = tuple(retargeter.kinematics.joint_names)
    mapping = load_robot("unitree_g1")
    odom, base = mapping.base_motion.odom_frame, mapping.base_motion.base_frame
    typestore = make_typestore()
    with Writer(tmp_path / "robot", version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        joints = writer.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=typestore)
        tf = writer.add_connection("/tf", "tf2_msgs/msg/TFMessage", typestore=typestore)
        for s in samples:
            stamp = round(s.stamp * 1e9)
            writer.write(tf, stamp, serialize_message(robot_eval.tf_message(odom, base, s)))
            writer.write(joints, stamp, serialize_message(robot_eval.joint_state(names, s)))
    config = tmp_path / "robot.yaml"
    config.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"inputs": {
        "names": ["robot"], "robot": robot_eval.input_config("unitree_g1", 60.0, True)}}}}))
    start = samples[0].stamp
    labels = write_csv(tmp_path / "robot.csv", [f"0,{c.start - start:.3f},{c.end - start:.3f},{c.label}"
                                                 for c in clips])
    code, _, err = teach(capsys, tmp_path / "robot", "--labels", labels, "--replace", "--config", config,
                              "--model", model, "--out", tmp_path / "robot.hetskel")
    assert code == 0, err
    record = load_bundle(tmp_path / "robot.hetskel").provenance["taught"]
    assert record["examples"] == {label: 2 for label in wanted} and record["unusable"] == []
    assert record["input_topic"] == "/joint_states" and not record["dropped_frames"], record
