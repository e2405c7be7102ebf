"""Pretraining on the union of the real data sets, end to end on the shipped samples (what CI can run): the loss
falls, each data set's protocol table is written beside the bundle, the head covers the merged vocabulary, and the
bundle carries the bone-length template and every data set's credit.

Data credits: NW-UCLA (Wang et al., CVPR 2014), UTD-MHAD (Chen et al., ICIP 2015), Penn Action (Zhang et al.,
ICCV 2013), Bandai Namco Research Motion Dataset (CC BY-NC 4.0); non-commercial research use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hetskel_ros.model.bundle import load_bundle
from hetskel_ros.runtime.features import open_extractor
from training.actions import merged_vocabulary
from training.datasets import load_dataset
from training.train import batch_indices

REPO = Path(__file__).resolve().parent.parent
SETS = ["bandai", "nw_ucla", "utd_mhad", "penn_action"]


def test_batches_by_data_set_come_from_one_set_each_drawn_with_its_share():
    groups = np.repeat([0, 1, 2], [300, 100, 50])  # three sets' clips
    sizes = np.bincount(groups)
    weights = sizes[groups] ** (0.5 - 1.0)  # square-root balancing, as load_union computes it
    weights = weights / weights.sum()
    drawn = []
    for step in range(600):
        idx = batch_indices(step, 10, len(groups), 32, seed=0, weights=weights, groups=groups)
        assert len(set(groups[idx])) == 1 and len(set(idx)) == 32  # one set, no clip twice
        drawn.append(groups[idx[0]])
    share = np.bincount(drawn) / len(drawn)
    assert np.allclose(share, np.sqrt(sizes) / np.sqrt(sizes).sum(), atol=0.05)
    assert np.array_equal(batch_indices(7, 10, len(groups), 32, 0, weights, groups),
                          batch_indices(7, 10, len(groups), 32, 0, weights, groups))  # resumable: (seed, step)


def test_the_merged_vocabulary_joins_only_the_same_actions(tmp_path):
    labels = {name: load_dataset(name, sample=True).data.label_names for name in SETS}
    vocabulary = merged_vocabulary(labels)
    walk = vocabulary.names.index("walk")
    assert vocabulary.labels("nw_ucla", [labels["nw_ucla"].index("walk-around")])[0] == walk
    assert vocabulary.labels("bandai", [labels["bandai"].index("walk")])[0] == walk
    in_place = vocabulary.labels("utd_mhad", [labels["utd_mhad"].index("walking")])[0]
    assert vocabulary.names[in_place] == "walk-in-place"  # walking on the spot is not walking
    assert len(vocabulary.names) == sum(len(v) for v in labels.values()) - 10
    clash = tmp_path / "actions.yaml"
    clash.write_text(yaml.safe_dump({"datasets": {"utd_mhad": {"walking": "walk"}, "penn_action": {}}}))
    accidental = {"utd_mhad": labels["utd_mhad"], "penn_action": labels["penn_action"]}
    with pytest.raises(ValueError, match=r"'squat' of penn_action .* map it explicitly") as error:
        merged_vocabulary(accidental, clash)
    assert str(clash) in str(error.value)


@pytest.mark.slow
def test_union_pretraining_on_the_samples_writes_every_data_sets_table(tmp_path):
    config = tmp_path / "union.yaml"
    config.write_text(yaml.safe_dump({
        "datasets": SETS, "sample_data": True, "max_sequences": 16, "epochs": 4, "batch_size": 16,
        "warmup_steps": 2, "checkpoint_every": 4, "lr": 2e-3, "model": {"use_semantic": False},
        "objective_args": {"lam": 5.0}, "views": {"view2d": ["coco17", "penn_action"]}}))
    out = tmp_path / "models" / "union.hetskel"
    done = subprocess.run([sys.executable, "-m", "training.cli", "report", "--config", str(config), "--run-dir",
                           str(tmp_path / "run"), "--out", str(out), "--quiet"], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    log_file = tmp_path / "run" / "pretrain" / "log.jsonl"
    log = [json.loads(line)["loss"] for line in log_file.read_text().splitlines()]
    assert len(log) >= 6 and np.mean(log[-3:]) < np.mean(log[:3]), f"loss did not fall: {log}"
    summary = json.loads((tmp_path / "run" / "pretrain" / "train_summary.json").read_text())
    assert set(summary["train_sequences_per_set"]) == {"nw_ucla", "utd_mhad", "penn_action"}
    assert any(reason.startswith("bandai: no training sequences") for reason in summary["skipped"])  # counted
    report = out.with_suffix(".report.md").read_text()
    for name in SETS:
        assert f"| {name} |" in report
    tables = json.loads(out.with_suffix(".report.json").read_text())["datasets"]
    for name in ("nw_ucla", "utd_mhad", "penn_action"):
        row = tables[name]["standard"]
        assert {"encoder", "raw, windows", "raw, sequence"} <= set(row)
        assert 0.0 <= row["encoder"]["linear"] <= 1.0 and 0.0 <= row["raw, sequence"]["knn1"] <= 1.0
        assert not tables[name]["file"].startswith("/")  # results record repository-relative paths
    bundle = load_bundle(out)
    trained = {n: load_dataset(n, sample=True).data.label_names for n in ("nw_ucla", "utd_mhad", "penn_action")}
    assert bundle.label_names == list(merged_vocabulary(trained).names)
    assert sum(v is not None for v in bundle.normalization["bone_lengths"].values()) >= 15
    assert any(c.startswith("UTD-MHAD") for c in bundle.provenance["data_credit"])
    assert {"kinect_v1", "penn_action"} <= set(bundle.config.topologies)  # real topologies got their own prompts
    ucla = load_dataset("nw_ucla", sample=True).data
    features = open_extractor(bundle, threads=1).sequence_set_features(ucla)  # the deployed graph runs it
    assert features.shape == (len(ucla), bundle.config.feature_dim) and np.isfinite(features).all()
