"""Idle class and open-set rejection on the frozen features (hetskel_ros.model.calibration), with the shipped model
on real data: the mocap sample's actions, UTD-MHAD's real standing phases and actions the head does not know."""

from __future__ import annotations

import numpy as np
import pytest

from hetskel_ros.model.bundle import load_bundle
from hetskel_ros.model.calibration import (
    IDLE,
    UNKNOWN,
    Calibration,
    fit_calibration,
    read_calibration,
    write_calibration,
)
from hetskel_ros.paths import share_dir
from hetskel_ros.runtime.backends import load_backend
from hetskel_ros.runtime.features import open_extractor
from hetskel_ros.runtime.observation import Observation
from hetskel_ros.runtime.recognizer import InputSpec, Recognizer
from hetskel_ros.runtime.samples import default_bundle_path
from hetskel_ros.topology import load_topology
from hetskel_ros.topology.sequences import full_mocap_path, load_sequences
from hetskel_ros.topology.standing import ping_pong, standing_phase

DATA = share_dir() / "data"


@pytest.fixture(scope="module")
def fitted():
    extractor = open_extractor(default_bundle_path(), threads=1)
    labels = list(load_bundle(default_bundle_path(), weights=False).label_names)
    mocap = load_sequences(DATA / "bandai_sample.npz")
    windows = extractor.sequence_set_features(mocap, per_window=True)
    train = {name: np.concatenate([w.features for i, w in enumerate(windows)
                                   if mocap.labels[i] == k and i % 2 == 0]) for k, name in enumerate(mocap.label_names)}
    held = np.concatenate([w.features for i, w in enumerate(windows) if i % 2 == 1])
    utd = load_sequences(DATA / "utd_mhad_sample.npz")
    standing, actions = [], []
    for clip in utd.sequences:
        clip = np.asarray(clip, np.float32)
        phase = standing_phase(clip, utd.fps, at_end=True)
        if len(phase):
            standing.append(extractor.windows(ping_pong(phase, 90), utd.topology, utd.fps).features)
        actions.append(extractor.windows(clip, utd.topology, utd.fps).features)
    half = len(standing) // 2
    calibration = fit_calibration(train, labels, held, np.concatenate(standing[:half]), keep=0.95)
    return calibration, held, np.concatenate(standing[half:]), np.concatenate(actions)


def test_known_actions_are_kept_standing_is_idle_and_unknown_actions_are_mostly_rejected(fitted):
    calibration, held, standing, unknown_actions = fitted
    kept = np.mean([v == "" for v in calibration.judge(held)])
    assert kept >= 0.9  # fitted to keep 95% of them
    assert np.mean([v == IDLE for v in calibration.judge(standing)]) >= 0.8  # standing phases not used to fit
    # UTD-MHAD's actions (one wave aside, none of them in the mocap head's vocabulary): not a known action
    # (fitted here on half the small mocap sample: 54%; the full training split in bench_untrimmed: 69-80%)
    assert np.mean([v != "" for v in calibration.judge(unknown_actions)]) >= 0.5


def test_the_calibration_travels_in_the_bundle_and_the_recognizer_uses_it(fitted, tmp_path):
    calibration, *_ = fitted
    shipped = read_calibration(default_bundle_path())  # the shipped default is calibrated (models/README.md)
    path = write_calibration(default_bundle_path(), calibration, tmp_path / "calibrated.hetskel")
    again = read_calibration(path)
    assert again is not None and again.reject_distance == pytest.approx(calibration.reject_distance)
    assert np.allclose(again.stats[IDLE].mean, calibration.stats[IDLE].mean)
    # writing to a copy replaced the copy's calibration and left the source's as it was
    assert shipped is not None and read_calibration(default_bundle_path()).to_dict() == shipped.to_dict()
    bundle = load_bundle(path)
    recognizer = Recognizer(bundle, load_backend(bundle, "onnxruntime", threads=1), [InputSpec("kinect")])
    utd = load_sequences(DATA / "utd_mhad_sample.npz")
    topology = load_topology(utd.topology)
    phase = next(p for p in (standing_phase(np.asarray(c, np.float32), utd.fps, True) for c in utd.sequences)
                 if len(p))
    positions, mask = topology.to_unified(ping_pong(phase, 120))
    decisions = []
    for k in range(len(positions)):
        stamp = k / utd.fps
        recognizer.observe("kinect", [Observation(1, stamp, utd.topology, 3, positions[k], mask[k], "kinect")],
                           stamp)
        decisions += recognizer.step(stamp)
    assert decisions and np.mean([d.label == IDLE for d in decisions]) >= 0.8
    assert not any(d.started for d in decisions)


def test_a_calibration_for_other_labels_is_refused(fitted, tmp_path):
    calibration, *_ = fitted
    other = Calibration([*calibration.labels[1:], "dance"], calibration.stats, calibration.reject_distance, 0.95)
    path = write_calibration(default_bundle_path(), other, tmp_path / "other.hetskel")
    bundle = load_bundle(path)
    with pytest.raises(ValueError, match="calibration was fitted for labels"):
        Recognizer(bundle, load_backend(bundle, "onnxruntime", threads=1), [InputSpec("kinect")])
    assert UNKNOWN == "unknown"


@pytest.mark.skipif(not full_mocap_path().is_file(),
                    reason="full mocap set not beside the repository: the shipped sample has no training styles")
def test_the_calibrate_command_writes_a_calibrated_bundle_from_training_splits(tmp_path):
    from training.calibrate import main

    out = tmp_path / "calibrated.hetskel"
    assert main(["--out", str(out), "--per-class", "3", "--idle-per-set", "40", "--idle-sets", "utd_mhad"]) == 0
    calibration = read_calibration(out)
    assert calibration is not None and calibration.has_idle and set(calibration.labels) <= set(calibration.stats)
    assert calibration.provenance["idle_sets"] == "utd_mhad" and 0.0 < calibration.reject_distance < 2.0
