"""Evaluation protocols on features of REAL motion capture, so the numbers mean something.

Features are the simplest honest encoder: the shipped Bandai Namco sample (youthful style, 10 actions x 2 sequences)
mapped to the unified skeleton, normalised, cut into 40-frame windows and resampled to 8 frames, flattened. Train and
test windows come from different sequences. With the full data set beside the repository, one more test runs the
issue's protocol (fit on four styles, test on youthful).
Data: "Bandai Namco Research Motion Dataset (Bandai Namco Research Inc.), CC BY-NC 4.0".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from hetskel_ros.topology import load_topology, load_unified, normalize
from hetskel_ros.topology.sequences import SequenceSet, full_mocap_path, load_sequences, sample_path
from training.metrics import (
    ABSENT_CLASS_BIAS,
    few_shot_eval,
    knn_eval,
    linear_eval,
    plot_confusion,
    plot_embedding,
    semi_supervised_eval,
    stratified_subset,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def window_features(data: SequenceSet, indices, *, frames: int = 8, length: int = 40, stride: int = 10):
    """(windows, features), labels and source-sequence index of every window of the chosen sequences."""
    topology, skeleton = load_topology(data.topology), load_unified()
    features, labels, sources = [], [], []
    for i in indices:
        unified, mask = topology.to_unified(data.sequences[i], unified=skeleton)
        body = normalize(unified, mask, skeleton, up=topology.up)[:, mask.any(axis=0)]
        for start in range(0, max(1, len(body) - length + 1), stride):
            window = body[start : start + length]
            picked = window[np.linspace(0, len(window) - 1, frames).round().astype(int)]
            features.append(picked.reshape(-1))
            labels.append(int(data.labels[i]))
            sources.append(int(i))
    return np.stack(features).astype(np.float64), np.array(labels), np.array(sources)


@pytest.fixture(scope="module")
def mocap():
    """Train on the first sequence of each action, test on the second (disjoint recordings)."""
    data = load_sequences(sample_path())
    first: dict[int, int] = {}
    train_ids = [i for i, label in enumerate(data.labels) if first.setdefault(int(label), i) == i]
    test_ids = [i for i in range(len(data)) if i not in train_ids]
    train_x, train_y, _ = window_features(data, train_ids)
    test_x, test_y, _ = window_features(data, test_ids)
    return {"data": data, "train": (train_x, train_y), "test": (test_x, test_y)}


def test_linear_eval_beats_chance_and_its_folded_head_is_the_classifier(mocap) -> None:
    (train_x, train_y), (test_x, test_y) = mocap["train"], mocap["test"]
    result = linear_eval(train_x, train_y, test_x, test_y, seed=0)
    chance = 1 / 10
    assert result["top1"] >= 0.6 > 5 * chance  # measured 0.70 on these windows
    assert result["top5"] >= result["top1"] and result["top5"] > 0.9
    assert result["confusion"].shape == (10, 10) and result["confusion"].sum() == len(test_y)
    assert np.trace(result["confusion"]) / len(test_y) == pytest.approx(result["top1"])
    assert result["per_class_accuracy"].shape == (10,)

    # the same pipeline fitted directly: standardise + logistic regression
    scaler = StandardScaler().fit(train_x)
    with threadpool_limits(limits=1):  # the same arithmetic path as linear_eval's default
        reference = LogisticRegression(max_iter=2000, random_state=0).fit(scaler.transform(train_x), train_y)
    expected = reference.predict(scaler.transform(test_x))
    weight, bias = result["weight"], result["bias"]
    assert weight.shape == (10, train_x.shape[1]) and bias.shape == (10,)
    head_scores = test_x @ weight.T + bias  # the head as the model applies it: raw features in, scores out
    np.testing.assert_array_equal(np.argmax(head_scores, axis=1), expected)
    np.testing.assert_array_equal(result["predictions"], expected)
    probabilities = np.exp(head_scores - head_scores.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities, reference.predict_proba(scaler.transform(test_x)), atol=1e-9)


def test_folded_head_for_two_classes_and_for_classes_never_seen(mocap) -> None:
    (train_x, train_y), (test_x, test_y) = mocap["train"], mocap["test"]
    pair_train, pair_test = np.isin(train_y, [3, 4]), np.isin(test_y, [3, 4])  # run vs walk
    binary = linear_eval(train_x[pair_train], train_y[pair_train], test_x[pair_test], test_y[pair_test], seed=0)
    scaler = StandardScaler().fit(train_x[pair_train])
    reference = LogisticRegression(max_iter=2000, random_state=0).fit(
        scaler.transform(train_x[pair_train]), train_y[pair_train]
    )
    scores = test_x[pair_test] @ binary["weight"].T + binary["bias"]
    np.testing.assert_array_equal(np.argmax(scores, axis=1), reference.predict(scaler.transform(test_x[pair_test])))
    assert binary["bias"][0] == ABSENT_CLASS_BIAS and not binary["weight"][:3].any()  # classes 0-2: never win
    assert "top5" not in binary  # only 5 classes exist in its label space

    wide = linear_eval(train_x, train_y, test_x, test_y, seed=0, num_classes=12)
    assert wide["weight"].shape[0] == 12 and (wide["bias"][10:] == ABSENT_CLASS_BIAS).all()
    assert np.isnan(wide["per_class_accuracy"][10:]).all()


def test_knn_retrieval(mocap) -> None:
    (train_x, train_y), (test_x, test_y) = mocap["train"], mocap["test"]
    result = knn_eval(train_x, train_y, test_x, test_y, k=1)
    assert result["top1"] >= 0.6  # measured 0.79
    assert result["precision"] == pytest.approx(result["top1"])  # k = 1: retrieval precision is accuracy
    assert knn_eval(train_x, train_y, train_x, train_y, k=1)["top1"] == 1.0  # every query retrieves itself
    five = knn_eval(train_x, train_y, test_x, test_y, k=5)
    assert 0.1 < five["precision"] <= 1.0 and five["k"] == 5
    with pytest.raises(ValueError, match="k must be"):
        knn_eval(train_x, train_y, test_x, test_y, k=0)


def test_semi_supervised_uses_a_stratified_label_subset(mocap) -> None:
    (train_x, train_y), (test_x, test_y) = mocap["train"], mocap["test"]
    subset = stratified_subset(train_y, 0.01, np.random.default_rng(0))
    assert set(train_y[subset]) == set(train_y) and len(subset) == 10  # 1% of ~10 per class: one each
    results = semi_supervised_eval(train_x, train_y, test_x, test_y, fractions=(0.01, 0.5), seed=0)
    assert list(results) == ["1%", "50%"]
    assert results["1%"]["num_labelled"] == 10
    assert results["50%"]["num_labelled"] > results["1%"]["num_labelled"]
    for result in results.values():
        assert result["top1"] > 3 * (1 / 10)  # one window per action already beats chance by far


def test_few_shot_episodes_beat_chance(mocap) -> None:
    features = np.concatenate([mocap["train"][0], mocap["test"][0]])
    labels = np.concatenate([mocap["train"][1], mocap["test"][1]])
    results = few_shot_eval(features, labels, ways=5, shots=(1, 5), episodes=60, seed=0)
    one, five = results["5-way 1-shot"], results["5-way 5-shot"]
    assert one["accuracy"] > 0.5 and five["accuracy"] > 0.6  # chance is 0.2; measured 0.74 and 0.82
    assert 0 < one["ci95"] < 0.1 and one["episodes"] == 60 and one["chance"] == 0.2
    again = few_shot_eval(features, labels, ways=5, shots=(1,), episodes=60, seed=0)
    assert again["5-way 1-shot"] == one  # seeded: the same episodes every run
    with pytest.raises(ValueError, match="11-way"):
        few_shot_eval(features, labels, ways=11, shots=(1,), episodes=2)


def test_plots_are_png_files(mocap, tmp_path: Path) -> None:
    (train_x, train_y), (test_x, test_y) = mocap["train"], mocap["test"]
    names = list(mocap["data"].label_names)
    result = linear_eval(train_x, train_y, test_x, test_y, seed=0)
    confusion = plot_confusion(result["confusion"], names, tmp_path / "plots" / "confusion.png")
    pca = plot_embedding(test_x, test_y, names, tmp_path / "embedding_pca.png")
    tsne = plot_embedding(test_x[::2], test_y[::2], names, tmp_path / "embedding_tsne.png", method="tsne")
    for path in (confusion, pca, tsne):
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5_000
    with pytest.raises(ValueError, match="does not match 3 label names"):
        plot_confusion(result["confusion"], names[:3], tmp_path / "bad.png")


def test_report_json_and_markdown(mocap, tmp_path: Path) -> None:
    (train_x, train_y), (test_x, test_y) = mocap["train"], mocap["test"]
    names = list(mocap["data"].label_names)
    results = {
        "data": "bandai_sample.npz",
        "linear": linear_eval(train_x, train_y, test_x, test_y, seed=0),
        "knn": knn_eval(train_x, train_y, test_x, test_y),
        "few_shot": few_shot_eval(np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y]), episodes=10),
    }
    json_path, md_path = write_report(results, tmp_path / "r.json", tmp_path / "r.md", label_names=names)
    loaded = json.loads(json_path.read_text())
    assert loaded["linear"]["top1"] == pytest.approx(results["linear"]["top1"])
    assert "weight" not in loaded["linear"] and "predictions" not in loaded["knn"]  # parameters stay out
    assert len(loaded["linear"]["confusion"]) == 10
    assert loaded["few_shot"]["5-way 1-shot"]["episodes"] == 10
    markdown = md_path.read_text()
    assert "## linear" in markdown and f"| top1 | {results['linear']['top1']:.4f} |" in markdown
    assert "| 5-way 5-shot / accuracy |" in markdown and "| walk-turn-left |" in markdown

    write_report({"x": {"nan": float("nan")}}, tmp_path / "n.json", tmp_path / "n.md")
    assert json.loads((tmp_path / "n.json").read_text()) == {"x": {"nan": None}}  # valid JSON, no NaN token


@pytest.mark.skipif(not full_mocap_path().is_file(), reason="full Bandai Namco data set not beside the repository")
def test_issue_protocol_on_the_full_data_four_styles_to_youthful() -> None:
    data = load_sequences(full_mocap_path())
    youthful = data.style_names.index("youthful")
    train_ids = np.flatnonzero(data.styles != youthful)[::3]  # a third of the training styles keeps this quick
    test_ids = np.flatnonzero(data.styles == youthful)
    one_window = {"length": 10_000, "stride": 10_000}  # whole sequence, resampled: one feature per sequence
    train_x, train_y, _ = window_features(data, train_ids, **one_window)
    test_x, test_y, _ = window_features(data, test_ids, **one_window)
    result = linear_eval(train_x, train_y, test_x, test_y, seed=0)
    # Measured 0.62 (kNN 0.55) on this third, 0.60 with all training styles: raw poses separate walking and
    # waving well but confuse the youthful style's raise-up-hand actions with waving; a learned encoder has to
    # beat this floor.
    assert result["top1"] > 0.5
    assert knn_eval(train_x, train_y, test_x, test_y)["top1"] > 0.45
