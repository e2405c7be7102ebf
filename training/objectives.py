"""Self-supervised objectives.

``HetSkelObjective``: the paper's total loss (paper 000, eq. 16): lambda * L_con (eq. 10) + L_reg (eqs. 12-15)
+ L_rec (eq. 11).
``MultiSkeletonMoCo``: MS-CLR's multi-skeleton MoCo-v2 InfoNCE (paper 001, eq. 6): views of one sequence in
different skeleton formats are positives, a queue of other sequences' keys are negatives.
Both take the model and a batch of tensors from ``training.views.ViewMaker.training_batch``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from hetskel_ros.model.model import HetSkelModel

STREAMS = ("J", "C", "S")


def variance_term(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """Eq. 12: hinge on each dimension's standard deviation, keeping features from collapsing."""
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_term(z: torch.Tensor) -> torch.Tensor:
    """Eq. 13: squared off-diagonal covariances, decorrelating feature dimensions."""
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = (z.T @ z) / max(n - 1, 1)
    off_diagonal = cov - torch.diag(torch.diag(cov))
    return off_diagonal.pow(2).sum() / d


def reconstruction_loss(lifted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 11: mean squared 3D error of the lifted 2D on the joints both skeletons have (the set B).

    Both are root-relative per frame (the views give the target so)."""
    m = mask.unsqueeze(-1).float()
    return ((lifted - target).pow(2) * m).sum() / (m.sum() * 3).clamp(min=1.0)


def modality_dropout(batch: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Which inputs the fused view sees: both (half the samples), 3D only or 2D only (a quarter each).

    The paper fuses all inputs; a robot often has one sensor, so the fusion layer (eq. 8) must also work on subsets.
    """
    pick = torch.rand(batch, generator=generator)
    has3d = (pick < 0.75).float()
    has2d = (pick >= 0.25).float()
    return has3d, has2d


def second_2d_view(model: HetSkelModel, b: dict[str, torch.Tensor], h: dict[str, torch.Tensor],
                   has3d: torch.Tensor, has2d: torch.Tensor) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Samples of 2D-only data sets (``real3d`` 0) have no 3D view: their second real 2D view, lifted, stands in for
    the 3D stream, and their fused view sees the 2D input only. Returns (embeddings, has3d, has2d)."""
    real3d = b.get("real3d")
    if real3d is None or bool((real3d > 0.5).all()):
        return h, has3d, has2d
    u_b, _, lifted_b = model.prompted_lift(b["x2d_b"], b["m2d_b"], b["t2d_b"])
    w = real3d[:, None, None, None]
    h = dict(h)
    h["J"] = w * h["J"] + (1 - w) * model.embed["C"](model.lifted_input(u_b, b["x2d_b"], b["m2d_b"]))
    if "S" in h:
        semantic_b = model.semantic_prompts(model.semantic(lifted_b), b["m2d_b"], b["t2d_b"])
        h["S"] = w * h["S"] + (1 - w) * model.embed["S"](semantic_b)
    return h, has3d * real3d, torch.maximum(has2d, 1 - real3d)


def batch_tensors(batch: dict) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in batch.items():
        t = torch.from_numpy(value)
        out[key] = t.float() if t.dtype in (torch.float64, torch.bool) else t
    return out


class HetSkelObjective(nn.Module):
    """L = lambda L_con + L_reg + L_rec (eq. 16)."""

    def __init__(self, model: HetSkelModel, lam: float = 25.0, mu: float = 25.0, gamma: float = 1.0):
        super().__init__()
        self.model, self.lam, self.mu, self.gamma = model, lam, mu, gamma

    def vc(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 15: VC(Z) = mu V(Z) + C(Z)."""
        return self.mu * variance_term(z, self.gamma) + covariance_term(z)

    def forward(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        model = self.model
        streams = model.unified_streams(b["x3d"], b["m3d"], b["t3d"], b["x2d"], b["m2d"], b["t2d"])
        l_rec = reconstruction_loss(streams["lifted"], b["target"], b["target_mask"])
        has3d, has2d = modality_dropout(len(b["x3d"]))
        h, has3d, has2d = second_2d_view(model, b, model.embed_streams(streams), has3d, has2d)
        names = [s for s in STREAMS if s in h]
        # one encoder call for y_J, y_C, y_S and y_F (eq. 9)
        fused = model.fused(h, has3d, has2d, b["m3d"], b["m2d"], model.training_fusion)
        y = model.encoder(torch.cat([h[s] for s in names] + [fused]))
        y = y.chunk(len(names) + 1)
        y_streams, y_fused = dict(zip(names, y[:-1], strict=True)), y[-1]
        z = {s: model.projectors[s](y_streams[s]) for s in names}  # Z_i
        z_fused = {s: model.projectors[s](y_fused) for s in names}  # Z'_i
        l_con = sum(F.mse_loss(z[s], z_fused[s]) for s in names)  # eq. 10, first sum
        l_con = l_con + sum(F.mse_loss(z[a], z[b_]) for a in names for b_ in names if a != b_)  # eq. 10, second
        l_reg = sum(self.vc(z[s]) + self.vc(z_fused[s]) for s in names)  # eq. 14
        loss = self.lam * l_con + l_reg + l_rec  # eq. 16
        return loss, {"loss": loss.item(), "con": l_con.item(), "reg": l_reg.item(), "rec": l_rec.item()}


class MaskedHetSkelObjective(HetSkelObjective):
    """Eq. 16 plus masked skeleton modelling, as PCM3 combines contrast with masked prediction (paper 002, sec. 3).

    A share ``mask_ratio`` of the (joint, time) tokens of the 3D stream and of the lifted 2D stream is replaced by a
    learned mask token; from the encoder's output tokens a linear decoder predicts the hidden tokens' coordinates (the
    measured 3D joints, and the 2D joints of the 2D input). Why: a consistency loss alone may keep only what the
    views share, while predicting hidden joints from the rest keeps where each joint is over the window, which a
    linear probe on a small data set needs.
    """

    def __init__(self, model: HetSkelModel, lam: float = 5.0, mu: float = 25.0, gamma: float = 1.0,
                 mask_ratio: float = 0.6, mask_weight: float = 1.0):
        super().__init__(model, lam, mu, gamma)
        dim, patch = model.cfg.dim, model.cfg.patch
        self.mask_ratio, self.mask_weight = mask_ratio, mask_weight
        self.mask_token = nn.Parameter(torch.zeros(dim))
        self.decode3d = nn.Linear(dim, patch * 3)
        self.decode2d = nn.Linear(dim, patch * 2)

    def masked_loss(self, tokens_in: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                    decoder: nn.Module, weight: torch.Tensor) -> torch.Tensor:
        """MSE of the decoded coordinates of the hidden, measured joints; target (B, T, J, C), mask (B, T, J)."""
        B, T, J, C = target.shape
        patch = self.model.cfg.patch
        hidden = torch.rand(tokens_in.shape[:3], device=tokens_in.device) < self.mask_ratio
        h = torch.where(hidden.unsqueeze(-1), self.mask_token.expand_as(tokens_in), tokens_in)
        predicted = decoder(self.model.encoder.tokens(h)).reshape(B, T // patch, J, patch, C)
        truth = target.reshape(B, T // patch, patch, J, C).transpose(2, 3)
        seen = mask.reshape(B, T // patch, patch, J).transpose(2, 3).unsqueeze(-1)
        keep = (hidden.unsqueeze(-1).unsqueeze(-1) * seen) * weight[:, None, None, None, None]
        return ((predicted - truth).pow(2) * keep).sum() / (keep.sum() * C).clamp(min=1.0)

    def forward(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        loss, parts = super().forward(b)
        model = self.model
        real3d = b.get("real3d", torch.ones(len(b["x3d"])))
        h3 = model.embed["J"](model.skeleton_prompts(b["x3d"], b["m3d"], b["t3d"]))
        l3 = self.masked_loss(h3, b["x3d"], b["m3d"], self.decode3d, real3d)
        u_c, _, _ = model.prompted_lift(b["x2d"], b["m2d"], b["t2d"])
        h2 = model.embed["C"](model.lifted_input(u_c, b["x2d"], b["m2d"]))
        l2 = self.masked_loss(h2, b["x2d"], b["m2d"], self.decode2d, torch.ones_like(real3d))
        l_mask = l3 + l2
        loss = loss + self.mask_weight * l_mask
        return loss, {**parts, "loss": loss.item(), "mask": l_mask.item()}


class MultiSkeletonMoCo(nn.Module):
    """MoCo-v2 over skeleton formats (paper 001, eq. 6): query = one format's view, key = another format's view
    of the same sequence from a momentum encoder; negatives from a queue."""

    def __init__(self, model: HetSkelModel, queue: int = 4096, momentum: float = 0.999, temperature: float = 0.07):
        super().__init__()
        self.model, self.momentum, self.temperature = model, momentum, temperature
        self.key_model = copy.deepcopy(model).requires_grad_(False)
        dim = model.cfg.projector_dim
        self.register_buffer("queue", F.normalize(torch.randn(queue, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    def embed(self, model: HetSkelModel, b: dict, use3d: bool) -> torch.Tensor:
        n = len(b["x3d"])
        ones, zeros = torch.ones(n), torch.zeros(n)
        h = model.embed_streams(model.unified_streams(b["x3d"], b["m3d"], b["t3d"], b["x2d"], b["m2d"], b["t2d"]))
        if use3d:  # a 2D-only data set's "3D" view is its second real 2D view, lifted (second_2d_view)
            h, _, _ = second_2d_view(model, b, h, ones, zeros)
        fused = model.fused(h, ones if use3d else zeros, zeros if use3d else ones, b["m3d"], b["m2d"],
                            model.training_fusion)
        return F.normalize(model.projectors["J" if use3d else "C"](model.encoder(fused)), dim=1)

    def forward(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        l_rec = reconstruction_loss(self.model.lift(b["x2d"], b["m2d"])[0], b["target"], b["target_mask"])
        q = torch.cat([self.embed(self.model, b, True), self.embed(self.model, b, False)])
        with torch.no_grad():
            for p_k, p_q in zip(self.key_model.parameters(), self.model.parameters(), strict=True):
                p_k.mul_(self.momentum).add_(p_q.detach(), alpha=1 - self.momentum)
            k = torch.cat([self.embed(self.key_model, b, False), self.embed(self.key_model, b, True)])
        positives = (q * k).sum(dim=1, keepdim=True)
        negatives = q @ self.queue.clone().T  # the queue is updated in place below, before backward
        logits = torch.cat([positives, negatives], dim=1) / self.temperature
        l_nce = F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))  # eq. 6
        with torch.no_grad():
            n = len(k)
            idx = (self.pointer + torch.arange(n)) % len(self.queue)
            self.queue[idx] = k
            self.pointer.fill_((self.pointer + n) % len(self.queue))
        loss = l_nce + l_rec
        return loss, {"loss": loss.item(), "nce": l_nce.item(), "rec": l_rec.item()}


class Supervised(nn.Module):
    """The baseline a user would otherwise pick: the same encoder trained from scratch with labels."""

    def __init__(self, model: HetSkelModel):
        super().__init__()
        self.model = model

    def forward(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        model = self.model
        l_rec = reconstruction_loss(model.lift(b["x2d"], b["m2d"])[0], b["target"], b["target_mask"])
        has3d, has2d = modality_dropout(len(b["x3d"]))
        h = model.embed_streams(model.unified_streams(b["x3d"], b["m3d"], b["t3d"], b["x2d"], b["m2d"], b["t2d"]))
        h, has3d, has2d = second_2d_view(model, b, h, has3d, has2d)
        fused = model.fused(h, has3d, has2d, b["m3d"], b["m2d"], model.training_fusion)
        logits = model.classifier(model.encoder(fused))
        l_ce = F.cross_entropy(logits, b["label"].long())
        loss = l_ce + l_rec
        return loss, {"loss": loss.item(), "ce": l_ce.item(), "rec": l_rec.item()}


OBJECTIVES = {"hetskel": HetSkelObjective, "hetskel_masked": MaskedHetSkelObjective, "msclr": MultiSkeletonMoCo,
              "supervised": Supervised}
