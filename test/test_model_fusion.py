"""Early fusion (eq. 8) per joint: which input's tokens a fused token holds under each ``ModelConfig.fusion``.

A robot with a depth camera and an RGB pose estimator on one person relies on this: with "prefer_3d" (the default)
a lifted 2D joint never overrides a measured 3D joint, and it fills the joints the 3D skeleton lost.
"""

from __future__ import annotations

import pytest
import torch

from hetskel_ros.model.config import preset
from hetskel_ros.model.model import HetSkelModel

B, T, J, D = 2, 8, 5, 16  # two tokens of patch 4 per joint
PATCH = 4


def model_with(fusion: str) -> HetSkelModel:
    cfg = preset("small", joints=J, window=T, patch=PATCH, dim=D, use_semantic=False, fusion=fusion, topologies=("a",),
                 hips=(1, 2), root=0)
    model = HetSkelModel(cfg)
    with torch.no_grad():  # the fusion layer as identity, so fused() returns the averaged tokens themselves
        model.fuse.weight.copy_(torch.eye(D))
        model.fuse.bias.zero_()
    return model


def masks() -> tuple[torch.Tensor, torch.Tensor]:
    """Joint 0: both inputs measured; 1: 3D only; 2: 2D only; 3: neither; 4: 3D in half of each token's frames."""
    m3d, m2d = torch.zeros(B, T, J), torch.zeros(B, T, J)
    m3d[:, :, [0, 1]] = 1
    m2d[:, :, [0, 2, 4]] = 1
    m3d[:, ::2, 4] = 1
    return m3d, m2d


@pytest.mark.parametrize(("fusion", "expected"), [
    # per joint: the share of the fused token that comes from the 3D token (the rest from the lifted 2D token)
    ("mean", [0.5, 0.5, 0.5, 0.5, 0.5]),  # as published: prompts and measurements alike
    ("masked", [0.5, 1.0, 0.0, 0.5, 1 / 3]),  # the inputs that measured the joint, by frames seen
    ("prefer_3d", [1.0, 1.0, 0.0, 1.0, 0.5]),  # 3D, its prompt included; 2D fills what only 2D measured
])
def test_fused_tokens_take_each_joint_from_the_inputs_the_fusion_rule_names(fusion, expected):
    model = model_with(fusion)
    h = {"J": torch.randn(B, T // PATCH, J, D), "C": torch.randn(B, T // PATCH, J, D)}
    both = torch.ones(B)
    fused = model.fused(h, both, both, *masks())
    share = torch.tensor(expected)[None, None, :, None]
    torch.testing.assert_close(fused, share * h["J"] + (1 - share) * h["C"])


@pytest.mark.parametrize("fusion", ["mean", "masked", "prefer_3d"])
def test_a_single_input_is_passed_through_whatever_the_fusion(fusion):
    model = model_with(fusion)
    h = {"J": torch.randn(B, T // PATCH, J, D), "C": torch.randn(B, T // PATCH, J, D)}
    one, none = torch.ones(B), torch.zeros(B)
    torch.testing.assert_close(model.fused(h, one, none, *masks()), h["J"])
    torch.testing.assert_close(model.fused(h, none, one, *masks()), h["C"])


def test_with_a_complete_3d_skeleton_prefer_3d_features_ignore_the_2d_input():
    """End to end through lifting, prompts and encoder: 2D input changes nothing while 3D measures every joint,
    and changes the features once 3D loses a joint."""
    model = model_with("prefer_3d").eval()
    torch.manual_seed(0)
    x3d, m3d, t = torch.randn(B, T, J, 3), torch.ones(B, T, J), torch.zeros(B, dtype=torch.long)
    x2d, m2d = torch.randn(B, T, J, 2), torch.ones(B, T, J)
    one, none = torch.ones(B), torch.zeros(B)
    only3d = model.encode(x3d, m3d, t, x2d, m2d, t, one, none)
    fused = model.encode(x3d, m3d, t, x2d, m2d, t, one, one)
    torch.testing.assert_close(fused, only3d)
    m3d[:, :, 3] = 0  # the depth camera lost joint 3
    fused_a = model.encode(x3d, m3d, t, x2d, m2d, t, one, one)
    fused_b = model.encode(x3d, m3d, t, x2d + 1.0, m2d, t, one, one)
    assert (fused_a - fused_b).abs().max() > 1e-4, "the 2D input fills the joint the 3D input lost"


def test_unknown_fusion_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown fusion 'average'"):
        model_with("average")
