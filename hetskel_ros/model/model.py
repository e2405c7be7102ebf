"""The heterogeneous-skeleton model of paper 000 (CVPR 2025), read top to bottom.

Inputs are unified skeletons (30 joints, paper sec. 3.1) already normalised by ``hetskel_ros.topology.normalize``:
  x3d  (B, T, J, 3) measured 3D joints, m3d (B, T, J) mask of present joints, t3d (B,) topology index
  x2d  (B, T, J, 2) 2D joints (y up),   m2d (B, T, J),                         t2d (B,)
  has3d, has2d (B,) 1.0 where that input exists for the sample (either may be absent, not both)
Pipeline:
  2D -> Lifter -> 3D (sec. 3.1) -> yaw alignment; missing joints <- skeleton-specific prompts (sec. 3.1)
  3D -> SemanticMotion (eqs. 4-6) -> missing joints <- semantic prompts (eq. 7)
  per-input embeddings h_J, h_C, h_S -> early fusion h_F = linear(mean(...)) (eq. 8) -> Encoder (eq. 9) -> y
  y -> linear classifier (scores); y -> skeleton-specific projectors (training losses only, eqs. 10-15).
Everything here exports to ONNX (no boolean indexing, no data-dependent control flow).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import DIRECTION_WORDS, UNMOVE, ModelConfig


class Lifter(nn.Module):
    """2D -> 3D pose estimation module (sec. 3.1, 4.1): BatchNorm on the input, 4-layer MLP, LeakyReLU; per frame.

    It predicts each frame's pose relative to its root joint, as pose lifters do: one frame cannot tell how far the
    body has moved in depth since the window began.
    """

    def __init__(self, joints: int, hidden: int, root: int):
        super().__init__()
        self.root = root
        width = joints * 3  # x, y and the mask bit, so a missing joint is not read as a joint at the root
        self.norm = nn.BatchNorm1d(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden), nn.LeakyReLU(0.1),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.1),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.1),
            nn.Linear(hidden, joints * 3),
        )

    def forward(self, x2d: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Root-relative 3D (B, T, J, 3), and the 2D root trajectory (B, T, 2) the pose rides on."""
        B, T, J, _ = x2d.shape
        m = mask.unsqueeze(-1)
        root = x2d[:, :, self.root] * m[:, :, self.root]
        relative = (x2d - root.unsqueeze(2)) * m
        inp = torch.cat([relative, m], dim=-1).reshape(B * T, J * 3)
        return self.mlp(self.norm(inp)).reshape(B, T, J, 3), root


def yaw_align(x: torch.Tensor, left_hip: int, right_hip: int) -> torch.Tensor:
    """Rotate about +Y so that the first frame's hip line lies along +X, i.e. the body faces +Z.

    The torch twin of the yaw step in ``topology.normalize``: needed here because lifted 3D comes out in the
    camera's frame. x: (B, T, J, 3).
    """
    across = x[:, 0, left_hip] - x[:, 0, right_hip]  # (B, 3): right hip -> left hip
    angle = torch.atan2(across[:, 2], across[:, 0])  # rotate this vector onto +X
    c, s = torch.cos(angle), torch.sin(angle)
    xs, ys, zs = x[..., 0], x[..., 1], x[..., 2]
    c, s = c[:, None, None], s[:, None, None]
    return torch.stack([c * xs + s * zs, ys, -s * xs + c * zs], dim=-1)


class SemanticMotion(nn.Module):
    """Semantic motion encoding (sec. 3.2, eqs. 4-6).

    Each coordinate's frame-to-frame change picks a direction word; the word's language-model embedding e (7 x l),
    reduced by a learned layer to one scalar, replaces the coordinate. Changes inside +-unmove_threshold count as
    "unmove": measured coordinates are never exactly still. The embeddings are a buffer, so inference needs no
    language model.
    """

    def __init__(self, word_dim: int, threshold: float):
        super().__init__()
        self.register_buffer("words", torch.zeros(len(DIRECTION_WORDS), word_dim))
        self.reduce = nn.Linear(word_dim, 1)
        self.threshold = threshold

    def forward(self, x3d: torch.Tensor) -> torch.Tensor:
        delta = x3d[:, 1:] - x3d[:, :-1]
        delta = torch.cat([torch.zeros_like(x3d[:, :1]), delta], dim=1)  # frame 0 has no motion: "unmove"
        axis = torch.arange(3, device=x3d.device)
        negative, positive = 2 * axis, 2 * axis + 1
        index = torch.where(delta > self.threshold, positive,
                            torch.where(delta < -self.threshold, negative, torch.full_like(positive, UNMOVE)))
        scalars = self.reduce(self.words).squeeze(-1)  # (7,): e~ of eqs. 4-6
        return scalars[index]


class Prompts(nn.Module):
    """One learnable (J x C) tensor per topology, filling the unified joints an input lacks (sec. 3.1, eq. 7).

    With ``enabled=False`` the tensors stay zero: the zero-padding ablation.
    """

    def __init__(self, topologies: int, joints: int, channels: int, enabled: bool):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(max(topologies, 1), joints, channels), requires_grad=enabled)
        if enabled:
            nn.init.normal_(self.table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, topology: torch.Tensor) -> torch.Tensor:
        prompt = self.table[topology].unsqueeze(1)  # (B, 1, J, C)
        return torch.where(mask.unsqueeze(-1) > 0.5, x, prompt)


class Attention(nn.Module):
    """Single-head self-attention (sec. 4.1), written out so it exports to any ONNX opset >= 17."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        weights = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)
        return self.out(self.drop(weights) @ v)


class Block(nn.Module):
    """Spatial attention over joints, then temporal attention over time tokens, then an MLP (pre-norm)."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.norm_s, self.spatial = nn.LayerNorm(dim), Attention(dim, dropout)
        self.norm_t, self.temporal = nn.LayerNorm(dim), Attention(dim, dropout)
        self.norm_m = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, J, D)
        B, T, J, D = x.shape
        s = x.reshape(B * T, J, D)
        s = s + self.spatial(self.norm_s(s))
        t = s.reshape(B, T, J, D).transpose(1, 2).reshape(B * J, T, D)
        t = t + self.temporal(self.norm_t(t))
        x = t.reshape(B, J, T, D).transpose(1, 2)
        return x + self.mlp(self.norm_m(x))


class Embedding(nn.Module):
    """Per-input embedding layer (sec. 3.3): each joint's coordinates over `patch` frames -> one token."""

    def __init__(self, patch: int, channels: int, dim: int):
        super().__init__()
        self.patch = patch
        self.proj = nn.Linear(patch * channels, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, J, C) -> (B, T/patch, J, D)
        B, T, J, C = x.shape
        x = x.reshape(B, T // self.patch, self.patch, J, C).transpose(2, 3).reshape(B, T // self.patch, J, -1)
        return self.proj(x)


POOLINGS = ("mean", "mean_std", "mean_joint_std")


class Encoder(nn.Module):
    """The shared encoder (eq. 9): position embeddings, transformer blocks, pooling, feature y.

    Pooling: the mean of all tokens says where the body is on average; a token channel's spread over time says how
    much it moves. "mean_std" adds the spread averaged over joints; "mean_joint_std" keeps it per joint (reduced to
    `joint_spread_dim` channels each), so the feature says WHICH joints move: a wave moves the hand around a raised
    arm, a raise moves the whole arm once. On the mocap (held-out style, 10 epochs, linear top-1 from 3D input) mean
    pooling gave 70%, "mean_std" 75-95% depending on the seed, "mean_joint_std" 98-100% over four runs
    (models/README.md).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        tokens = cfg.window // cfg.patch
        self.joint_pos = nn.Parameter(torch.randn(1, 1, cfg.joints, cfg.dim) * 0.02)
        self.time_pos = nn.Parameter(torch.randn(1, tokens, 1, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.mlp_hidden, cfg.dropout) for _ in range(cfg.depth))
        if cfg.pool not in POOLINGS:
            raise ValueError(f"unknown pooling {cfg.pool!r}; known: {', '.join(POOLINGS)}")
        self.pool = cfg.pool
        pooled = cfg.dim * (2 if cfg.pool == "mean_std" else 1)
        if cfg.pool == "mean_joint_std":  # each joint's spread, reduced to a few channels, kept per joint
            self.joint_spread = nn.Linear(cfg.dim, cfg.joint_spread_dim)
            pooled = cfg.dim + cfg.joints * cfg.joint_spread_dim
        self.segments = cfg.time_segments
        if self.segments:
            if tokens % self.segments:
                raise ValueError(f"{tokens} time tokens do not split into time_segments={self.segments}")
            pooled += self.segments * cfg.dim
            if cfg.joint_segment_dim:
                self.joint_segment = nn.Linear(cfg.dim, cfg.joint_segment_dim)
                pooled += self.segments * cfg.joints * cfg.joint_segment_dim
        self.norm = nn.LayerNorm(pooled)
        self.head = nn.Linear(pooled, cfg.feature_dim)

    def tokens(self, h: torch.Tensor) -> torch.Tensor:
        """The transformer's output tokens (B, T/patch, J, D), before pooling (masked modelling reads them)."""
        h = h + self.joint_pos + self.time_pos
        for block in self.blocks:
            h = block(h)
        return h

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.tokens(h)
        pooled = h.mean(dim=(1, 2))
        if self.pool != "mean":
            spread = (h.var(dim=1, unbiased=False) + 1e-6).sqrt()  # (B, J, D): each joint's motion over the window
            spread = spread.mean(dim=1) if self.pool == "mean_std" else self.joint_spread(spread).flatten(1)
            pooled = torch.cat([pooled, spread], dim=-1)
        if self.segments:  # each stretch of the window, in order: the motion's course, not just its extent
            B, T, J, D = h.shape
            per_joint = h.reshape(B, self.segments, T // self.segments, J, D).mean(dim=2)  # (B, S, J, D)
            pooled = torch.cat([pooled, per_joint.mean(dim=2).flatten(1)], dim=-1)
            if hasattr(self, "joint_segment"):
                pooled = torch.cat([pooled, self.joint_segment(per_joint).flatten(1)], dim=-1)
        return self.head(self.norm(pooled))


FUSIONS = ("mean", "masked", "prefer_3d")


def projector(dim_in: int, dim_out: int) -> nn.Module:
    """Skeleton-specific projector into the space where the losses (eqs. 10-15) compare features."""
    return nn.Sequential(nn.Linear(dim_in, dim_out), nn.BatchNorm1d(dim_out), nn.ReLU(), nn.Linear(dim_out, dim_out))


class HetSkelModel(nn.Module):
    """Unified model: prompts, lifting, semantic motion, early fusion, shared encoder, heads."""

    STREAMS = ("J", "C", "S")  # measured 3D joints, lifted 2D joints, semantic motion

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.window % cfg.patch:
            raise ValueError(f"window {cfg.window} is not a multiple of patch {cfg.patch}")
        self.cfg = cfg
        n_topo = len(cfg.topologies)
        self.lifter = Lifter(cfg.joints, cfg.lifter_hidden, cfg.root)
        self.skeleton_prompts = Prompts(n_topo, cfg.joints, 3, cfg.use_prompts)
        self.semantic = SemanticMotion(cfg.word_dim, cfg.unmove_threshold)
        self.semantic_prompts = Prompts(n_topo, cfg.joints, 3, cfg.use_prompts)
        channels = {"J": 3, "C": 5 if cfg.lift_keeps_2d else 3, "S": 3}
        self.embed = nn.ModuleDict({s: Embedding(cfg.patch, channels[s], cfg.dim) for s in self.STREAMS})
        if cfg.fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {cfg.fusion!r}; known: {', '.join(FUSIONS)}")
        self.fuse = nn.Linear(cfg.dim, cfg.dim)  # eq. 8
        self.encoder = Encoder(cfg)
        self.projectors = nn.ModuleDict({s: projector(cfg.feature_dim, cfg.projector_dim) for s in self.STREAMS})
        self.classifier = nn.Linear(cfg.feature_dim, max(cfg.num_classes, 1))

    # -- heterogeneous skeleton processing (sec. 3.1, 3.2) --------------------------------------------------
    def lift(self, x2d: torch.Tensor, m2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """2D unified skeleton -> (root-relative 3D in the camera's frame, which eq. 11 compares with the measured
        3D; the same pose moved along the 2D root trajectory, at the root's starting depth)."""
        relative, root = self.lifter(x2d, m2d)
        trajectory = torch.cat([root, torch.zeros_like(root[..., :1])], dim=-1).unsqueeze(2)
        return relative, relative + trajectory

    def unified_streams(self, x3d, m3d, t3d, x2d, m2d, t2d) -> dict[str, torch.Tensor]:
        """Prompted unified skeletons u_J, u_C, semantic encodings u_S (from 3D) and u_S2 (from lifted 2D),
        and the lifter's root-relative camera-frame output ("lifted", for eq. 11)."""
        u_c, relative, lifted = self.prompted_lift(x2d, m2d, t2d)
        u_j = self.skeleton_prompts(x3d, m3d, t3d)
        u_c = self.lifted_input(u_c, x2d, m2d)
        streams = {"J": u_j, "C": u_c, "lifted": relative}
        if self.cfg.use_semantic:
            # eq. 7: the semantic encoding is prompted like a skeleton, on the joints the input lacks
            streams["S"] = self.semantic_prompts(self.semantic(x3d), m3d, t3d)
            streams["S2"] = self.semantic_prompts(self.semantic(lifted), m2d, t2d)
        return streams

    def prompted_lift(self, x2d, m2d, t2d) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """2D -> (prompted unified 3D u_C, the lifter's root-relative camera-frame output, the yaw-aligned lift)."""
        left_hip, right_hip = self.cfg.hips
        relative, lifted_camera = self.lift(x2d, m2d)
        lifted = yaw_align(lifted_camera, left_hip, right_hip)
        return self.skeleton_prompts(lifted, m2d, t2d), relative, lifted

    def lifted_input(self, u_c: torch.Tensor, x2d: torch.Tensor, m2d: torch.Tensor) -> torch.Tensor:
        """What the lifted stream's embedding reads: the prompted lift, and with ``lift_keeps_2d`` the 2D joints."""
        if not self.cfg.lift_keeps_2d:
            return u_c
        return torch.cat([u_c, x2d * m2d.unsqueeze(-1)], dim=-1)

    def embed_streams(self, streams: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {s: self.embed[s](streams[s]) for s in ("J", "C")}
        if self.cfg.use_semantic:
            out["S"] = self.embed["S"](streams["S"])
            out["S2"] = self.embed["S"](streams["S2"])
        return out

    def fused(self, h: dict[str, torch.Tensor], has3d: torch.Tensor, has2d: torch.Tensor, m3d: torch.Tensor,
              m2d: torch.Tensor, rule: str | None = None) -> torch.Tensor:
        """Early fusion h_F = linear(mean of the available embeddings) (eq. 8), with "available" per token by
        ``rule`` (default ``cfg.fusion``; training passes ``training_fusion``):

        - "mean", as published: every input's tokens, prompts included where an input lacks the joint;
        - "masked": only the inputs that measured the joint in the token's frames, so a prompt standing in for a joint
          one sensor lacks (COCO-17 has no spine) does not dilute the other sensor's measurement of it;
        - "prefer_3d": the 3D input's tokens, except where it lacks a joint that the 2D input measured. The lift is an
          estimate of the very coordinates a 3D sensor measures, so where 3D is there averaging it in mostly adds the
          lift's error (fused fell below 3D in four of six runs, models/README.md); it fills what the 3D skeleton
          misses (occluded, untracked, outside the topology). A complete 3D skeleton is thus fused exactly as it is
          seen alone: adding a camera never changes its answer.

        Where no input measured a joint, "mean" and "masked" average the prompts and "prefer_3d" keeps the 3D input's
        prompt. The semantic stream comes from measured 3D when there is any, else from the lifted 2D.
        """
        rule = rule or self.cfg.fusion
        w3 = has3d[:, None, None, None]
        w2 = has2d[:, None, None, None]
        total = w3 * h["J"] + w2 * h["C"]
        count = w3 + w2
        if rule != "mean":
            j3 = w3 * self.token_coverage(m3d)  # (B, T/patch, J, 1): share of the token's frames measured
            j2 = w2 * self.token_coverage(m2d)
            unmeasured = total / count  # the prompts' mean
            if rule == "prefer_3d":
                j2 = j2 * (1 - j3)
                unmeasured = w3 * h["J"] + (1 - w3) * h["C"]  # the 3D input's own prompt
            measured = j3 + j2
            per_joint = (j3 * h["J"] + j2 * h["C"]) / measured.clamp(min=1e-6)
            total = torch.where(measured > 0, per_joint, unmeasured) * count
        if self.cfg.use_semantic:
            semantic = w3 * h["S"] + (1 - w3) * h["S2"]
            total = total + semantic
            count = count + 1
        return self.fuse(total / count)

    @property
    def training_fusion(self) -> str:
        """The rule of the fused view the training objectives see. "prefer_3d" trains on "masked": the fused view of a
        complete 3D skeleton would be the 3D view itself, which leaves eq. 10's consistency between the 3D stream and
        the fused view nothing to learn and never shows the fusion layer a mix of both inputs."""
        return "masked" if self.cfg.fusion == "prefer_3d" else self.cfg.fusion

    def token_coverage(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, J) joint mask -> (B, T/patch, J, 1): the share of each token's frames in which the joint is seen."""
        B, T, J = mask.shape
        return mask.reshape(B, T // self.cfg.patch, self.cfg.patch, J).mean(dim=2).unsqueeze(-1)

    # -- inference path: what the ONNX graph and every backend compute ------------------------------------
    def forward(self, x3d, m3d, t3d, x2d, m2d, t2d, has3d, has2d) -> tuple[torch.Tensor, torch.Tensor]:
        """Features y (B, feature_dim) and class probabilities (B, classes) for any mix of 2D and 3D input."""
        h = self.embed_streams(self.unified_streams(x3d, m3d, t3d, x2d, m2d, t2d))
        features = self.encoder(self.fused(h, has3d, has2d, m3d, m2d))
        return features, torch.softmax(self.classifier(features), dim=-1)

    def encode(self, *inputs) -> torch.Tensor:
        """Features only (linear evaluation, retrieval)."""
        return self.forward(*inputs)[0]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
