"""The linear head outside the graph (hetskel_ros.model.head): blending two heads is one head whose scores are
the weighted product of theirs, matched by label name, as the shipped default's head is made (models/README.md)."""

from __future__ import annotations

import numpy as np
import pytest

from hetskel_ros.model.head import LinearHead, blend, softmax, unit


def test_a_blend_scores_the_weighted_logits_of_both_heads_by_label_name():
    rng = np.random.default_rng(0)
    clip = LinearHead(rng.normal(size=(2, 5)), rng.normal(size=2))
    window = LinearHead(rng.normal(size=(3, 5)), rng.normal(size=3))
    features = rng.normal(size=(4, 5))
    mixed = blend(clip, ["wave", "walk"], window, ["walk", "wave", "idle"], 0.25)
    want = 0.75 * window.logits(features)
    want[:, 0] += 0.25 * clip.logits(features)[:, 1]  # "walk" is the clip head's second row
    want[:, 1] += 0.25 * clip.logits(features)[:, 0]
    assert np.allclose(mixed.logits(features), want)  # idle: the window head's logit alone
    assert np.allclose(mixed.probabilities(features), softmax(want), atol=1e-6)
    assert np.allclose(blend(clip, ["wave", "walk"], window, ["walk", "wave", "idle"], 0.0).logits(features),
                       window.logits(features))
    assert np.allclose(unit(features) @ mixed.weight.T + mixed.bias, want)  # still one linear map
    assert mixed.info["kind"] == "blend" and mixed.info["first_weight"] == 0.25


def test_a_blend_refuses_a_label_it_would_lose_a_weight_outside_0_1_and_different_features():
    clip, window = LinearHead(np.ones((2, 4)), np.zeros(2)), LinearHead(np.ones((2, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="'jump'"):
        blend(clip, ["wave", "jump"], window, ["wave", "idle"], 0.5)
    with pytest.raises(ValueError, match="first_weight"):
        blend(clip, ["a", "b"], window, ["a", "b"], 1.5)
    with pytest.raises(ValueError, match="different features"):
        blend(clip, ["a", "b"], LinearHead(np.ones((2, 3)), np.zeros(2)), ["a", "b"], 0.5)
