"""Model configuration and size presets; no torch, so bundles can be read where only ONNX Runtime exists."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

# The seven direction words of sec. 3.2, in the order the semantic index uses:
# axis c has its negative word at 2c and its positive word at 2c + 1; "unmove" is last.
DIRECTION_WORDS = ("left", "right", "down", "up", "back", "front", "unmove")
UNMOVE = len(DIRECTION_WORDS) - 1

# The inference graph's named inputs and outputs (ONNX export, every backend, training's feature extraction).
INPUT_NAMES = ("x3d", "m3d", "t3d", "x2d", "m2d", "t2d", "has3d", "has2d")
OUTPUT_NAMES = ("features", "scores")
INDEX_INPUTS = ("t3d", "t2d")  # topology indices, int64; every other input is float32


@dataclass
class ModelConfig:
    """Everything that fixes the network's shapes; stored in the bundle."""

    joints: int = 30
    window: int = 32  # frames per sample, at `fps`
    fps: float = 15.0
    patch: int = 4  # frames per temporal token
    dim: int = 64  # token width
    depth: int = 2  # spatial+temporal block pairs
    mlp_hidden: int = 128
    feature_dim: int = 256
    projector_dim: int = 256
    lifter_hidden: int = 512
    word_dim: int = 384  # width of the language-model word embeddings
    unmove_threshold: float = 0.01  # dead band of eqs. 4-6, in torso lengths per frame
    use_prompts: bool = True  # False: zero-padding ablation
    use_semantic: bool = True  # False: the "without S" ablation of Table 3
    topologies: tuple[str, ...] = ()
    num_classes: int = 0
    hips: tuple[int, int] = (11, 12)  # unified indices of left/right hip (set from the unified skeleton)
    root: int = 19  # unified index of the root joint (spine_base)
    dropout: float = 0.0  # attention/MLP dropout; off by default: it cost a tenth of a CPU training step
    pool: str = "mean_joint_std"  # how the encoder pools tokens into y: "mean", "mean_std" (adds temporal spread),
    # or "mean_joint_std" (adds each joint's temporal spread, reduced to joint_spread_dim channels)
    joint_spread_dim: int = 8
    lift_keeps_2d: bool = False  # the lifted stream's tokens also see the measured 2D joints (the lift is an
    # estimate: a pose no 3D training set shows, a press on a bench, is lifted badly, while its 2D is exact)
    joint_segment_dim: int = 0  # > 0: with time_segments, also keep each joint's token in each stretch, reduced
    # to this many channels (WHERE each joint is over the course of the window, as a raw-joint feature keeps it)
    time_segments: int = 0  # > 0: also pool the tokens of this many consecutive stretches of the window, in order
    # (mean and spread are blind to order: sit-down and stand-up, donning and doffing are each other's reverse)
    fusion: str = "prefer_3d"  # which tokens eq. 8 averages: "mean" (all inputs', as published), "masked" (per
    # joint, the inputs that measured it) or "prefer_3d" (measured 3D, lifted 2D where 3D lacks the joint)
    short_tracks: str = "pad"  # a track younger than a window: "pad" (its first frame repeated before it) or
    # "stretch" (its life resampled to fill the window; topology.window.track_window_times), as the model trained
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        values = dict(values)
        if values.get("short_tracks", "pad") not in ("pad", "stretch"):
            raise ValueError(f"model config short_tracks must be 'pad' or 'stretch', got {values['short_tracks']!r}")
        for key in ("topologies", "hips"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["topologies"] = list(self.topologies)
        out["hips"] = list(self.hips)
        return out


# Named sizes. "small" fits pretraining on 2 CPU cores and batch-1 inference in a few ms;
# "paper" follows sec. 4.1 (single-head spatial and temporal transformers, hidden 1024) at NTU's 64-frame window.
PRESETS: dict[str, dict] = {
    "small": {},
    "paper": {"dim": 1024, "mlp_hidden": 1024, "depth": 1, "window": 64, "fps": 30.0, "patch": 4,
              "feature_dim": 1024, "projector_dim": 2048, "lifter_hidden": 1024},
}


def preset(name: str, **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model size preset {name!r}; known: {sorted(PRESETS)}")
    return ModelConfig.from_dict({**PRESETS[name], **overrides})
