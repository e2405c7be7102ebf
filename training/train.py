"""Pretraining loop: fixed seeds, progress bar, a checkpoint every N steps, resume after a kill.

The batch of step s is drawn from a generator seeded by (seed, s), so a resumed run sees exactly the batches the
killed one would have: a kill loses at most the steps since the last checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from hetskel_ros.model.config import ModelConfig, preset
from hetskel_ros.model.model import HetSkelModel, count_parameters
from hetskel_ros.topology import load_topology, load_unified
from hetskel_ros.topology.normalize import Normalization, template_lengths
from hetskel_ros.topology.sequences import default_mocap_path, load_sequences

from .distributed import barrier, placement, wrap
from .objectives import OBJECTIVES, batch_tensors
from .views import Clip, ViewMaker, ViewSettings, clips_from_sequences
from .words import embed_direction_words


@dataclass
class TrainConfig:
    """One YAML file (training/configs/*.yaml) sets these."""

    data: str | None = None  # mocap npz, NTU .skeleton directory or PYSKL .pkl; None: full mocap if found, else sample
    split: str | None = None  # NTU protocol (xsub60, xview60, xsub120, xset120) instead of train/test styles
    train_styles: list[str] = field(default_factory=lambda: ["active", "feminine", "masculine", "normal"])
    test_styles: list[str] = field(default_factory=lambda: ["youthful"])
    max_sequences: int | None = None  # a subset, for smoke tests
    model_preset: str = "small"
    model: dict = field(default_factory=dict)  # overrides of the preset
    objective: str = "hetskel"
    objective_args: dict = field(default_factory=dict)
    epochs: float = 40
    steps: int | None = None  # optimiser steps, overriding epochs (equal-step comparisons of data set choices)
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    seed: int = 0
    checkpoint_every: int = 100
    threads: int = 2
    amp: bool = True  # bfloat16 autocast on CUDA (ignored on CPU)
    views: dict = field(default_factory=dict)  # ViewSettings overrides
    # Real data sets of training/configs/datasets.yaml: their training splits are pretrained on together (the test
    # splits are never read here). Empty: the single set of `data` with train_styles/test_styles.
    datasets: list[str] = field(default_factory=list)
    sampling_alpha: float = 0.5  # a batch draws data set d with probability n_d^alpha / sum (1: by size, 0: equal)
    batch_by_dataset: bool = False  # every batch from one data set (drawn with that share): batch_indices
    bone_lengths: str = "template"  # "template": 3D rescaled to the training median bone lengths; "measured": not
    sample_data: bool = False  # read the shipped samples even where the full sets exist (CI smoke runs)
    # The deployed head (training/union.py) also learns from these robots' views of the mocap's training clips
    # (retargeted onto the URDF, forward kinematics as the joint_state input computes it): robot_clips per action.
    head_robots: list[str] = field(default_factory=list)
    robot_clips: int = 16

    @classmethod
    def load(cls, path: str | Path, **overrides) -> TrainConfig:
        values = yaml.safe_load(Path(path).read_text()) or {}
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown training config keys {sorted(unknown)}")
        return cls(**values)


@dataclass
class Data:
    train: list[Clip]
    test: list[Clip]
    label_names: list[str]
    source: str
    normalization: Normalization = field(default_factory=Normalization)
    datasets: dict = field(default_factory=dict)  # name -> training.datasets.LoadedDataset (multi-set runs)
    weights: np.ndarray | None = None  # per training clip: its probability of being drawn (multi-set runs)
    skipped: dict = field(default_factory=dict)  # reason -> count of sequences left out

    @property
    def topologies(self) -> list[str]:
        """The real topologies of the training clips, in order of appearance."""
        return list(dict.fromkeys(c.topology for c in self.train))


def read_sequence_set(path: Path):
    """Any supported data set as a SequenceSet: mocap npz, a directory of NTU .skeleton files, a PYSKL pickle."""
    from . import formats

    if path.is_dir():
        return formats.load_ntu_directory(path)
    if path.suffix in (".pkl", ".pickle"):
        return formats.load_pyskl(path)
    return load_sequences(path)


def load_union(cfg: TrainConfig) -> Data:
    """The training splits of several real data sets, each in its own topology; sampling weights; bone template.

    Sampling rule: a clip of data set d (n_d training clips) is drawn with probability n_d^(alpha - 1) / Z, so data
    set d fills a share n_d^alpha / sum_e n_e^alpha of each batch (alpha 0.5: square-root balancing, so the small
    UTD-MHAD is not drowned by the mocap while the large sets still give more distinct sequences).
    """
    from .datasets import load_dataset, relative

    skeleton = load_unified()
    train: list[Clip] = []
    sets, skipped = {}, {}
    for name in cfg.datasets:
        loaded = load_dataset(name, sample=cfg.sample_data)
        sets[name] = loaded
        indices = loaded.train
        if cfg.max_sequences and len(indices) > cfg.max_sequences:
            indices = np.sort(np.random.default_rng(cfg.seed).permutation(indices)[: cfg.max_sequences])
        if not len(indices):
            skipped[f"{name}: no training sequences in {relative(loaded.path)}"] = 0
            continue
        clips = clips_from_sequences(loaded.data.subset(indices), load_topology(loaded.data.topology), skeleton, name)
        empty = [c for c in clips if not c.mask.any()]
        if empty:
            skipped[f"{name}: no joint present"] = len(empty)
        train += [c for c in clips if c.mask.any()]
    if not train:
        raise ValueError(f"no training sequences in data sets {cfg.datasets}")
    sizes = {name: sum(c.dataset == name for c in train) for name in cfg.datasets}
    weights = np.array([sizes[c.dataset] ** (cfg.sampling_alpha - 1.0) for c in train])
    if cfg.bone_lengths not in ("template", "measured"):
        raise ValueError(f"bone_lengths must be 'template' or 'measured', got {cfg.bone_lengths!r}")
    template = None
    if cfg.bone_lengths == "template":
        template = tuple(float(v) for v in template_lengths([(c.positions, c.mask) for c in train if c.dims == 3],
                                                           skeleton))
    labels = [f"{name}:{label}" for name, loaded in sets.items() for label in loaded.data.label_names]
    offsets, start = {}, 0
    for name, loaded in sets.items():
        offsets[name], start = start, start + len(loaded.data.label_names)
    for clip in train:  # one label space over the union (only the supervised objective reads it)
        clip.label += offsets[clip.dataset]
    source = ", ".join(f"{n} ({relative(d.path)})" for n, d in sets.items())
    return Data(train, [], labels, source, Normalization(True, template), sets, weights / weights.sum(), skipped)


def load_data(cfg: TrainConfig) -> Data:
    if cfg.datasets:
        return load_union(cfg)
    path = Path(cfg.data) if cfg.data else default_mocap_path()
    sequences = read_sequence_set(path)
    topology = load_topology(sequences.topology)
    if topology.dims != 3:
        raise ValueError(f"{path}: pretraining makes its 2D views from 3D sequences; {topology.name} is 2D")
    clips = clips_from_sequences(sequences, topology, load_unified())
    rng = np.random.default_rng(cfg.seed)

    def subset(indices: np.ndarray) -> list[Clip]:
        if cfg.max_sequences and len(indices) > cfg.max_sequences:
            indices = np.sort(rng.permutation(indices)[: cfg.max_sequences])
        return [clips[i] for i in indices]

    if cfg.split:
        from .formats import ntu_split

        train, test = ntu_split(list(sequences.names), cfg.split)
        return Data(subset(train), subset(test), list(sequences.label_names), str(path))
    styles = list(sequences.style_names)

    def by_style(names: list[str]) -> np.ndarray:
        unknown = set(names) - set(styles)
        if unknown:
            raise ValueError(f"styles {sorted(unknown)} are not in {path} (it has {styles})")
        wanted = [styles.index(n) for n in names]
        return np.flatnonzero(np.isin([c.style for c in clips], wanted))

    return Data(subset(by_style(cfg.train_styles)), subset(by_style(cfg.test_styles)), list(sequences.label_names),
                str(path))


def build_model(cfg: TrainConfig, label_names: list[str], real_topologies: list[str] = ()) -> HetSkelModel:
    skeleton = load_unified()
    settings = ViewSettings(**cfg.views)
    topologies = tuple(dict.fromkeys([*settings.view3d, *settings.view2d, *real_topologies]))
    model_cfg: ModelConfig = preset(
        cfg.model_preset, **cfg.model, topologies=topologies, num_classes=len(label_names),
        hips=tuple(int(i) for i in skeleton.indices(skeleton.hips)), root=skeleton.root_index,
        joints=skeleton.num_joints,
    )
    model = HetSkelModel(model_cfg)
    model.semantic.words.copy_(torch.from_numpy(embed_direction_words()))
    return model


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def batch_indices(step: int, steps_per_epoch: int, n: int, batch: int, seed: int,
                  weights: np.ndarray | None = None, groups: np.ndarray | None = None) -> np.ndarray:
    """The clips of step `step`, a pure function of (seed, step): epoch-wise permutations, or with per-clip
    ``weights`` a weighted draw without replacement.

    With ``groups`` (a data set index per clip) the step first draws one data set with its share of ``weights``,
    then the batch from that set alone. The idea: in a mixed batch the variance hinge (eq. 12) can be met by the
    differences between data sets, leaving one set's actions close together. Measured (session 9, models/README.md),
    it lowers UTD-MHAD by 8 points against mixed batches, so ``batch_by_dataset`` is off by default."""
    if weights is not None:
        rng = np.random.default_rng([seed, step, 2])
        if groups is None:
            return rng.choice(n, size=min(batch, n), replace=False, p=weights)
        shares = np.bincount(groups, weights=weights)
        members = np.flatnonzero(groups == rng.choice(len(shares), p=shares / shares.sum()))
        return rng.choice(members, size=min(batch, len(members)), replace=False, p=weights[members] /
                          weights[members].sum())
    epoch, within = divmod(step, steps_per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[within * batch: (within + 1) * batch]


CHECKPOINT_KEYS = ("step", "objective", "optimizer")
RUN_STATE = ("checkpoint.pt", "checkpoint.tmp", "log.jsonl", "train_summary.json")  # what --restart discards


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file and how to go on."""


def save_checkpoint(path: Path, step: int, objective, optimizer) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"step": step, "objective": objective.state_dict(), "optimizer": optimizer.state_dict()}, tmp)
    os.replace(tmp, path)  # atomic: a kill mid-save leaves the previous checkpoint intact


def read_checkpoint(path: Path, device: torch.device | str | None = None) -> dict:
    """A checkpoint's contents (the format save_checkpoint writes); CheckpointError naming the file for an empty,
    truncated or foreign one, instead of torch's traceback."""
    hint = "pass --restart to discard it and train from step 0"
    try:
        state = torch.load(path, weights_only=False, map_location=device)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no checkpoint (has this run trained yet?)") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a damaged file
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        size = path.stat().st_size if path.exists() else 0
        raise CheckpointError(f"{path}: not a readable checkpoint ({size} bytes; {detail}); {hint}") from None
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint (lacks {', '.join(missing)}); {hint}")
    return state


def load_checkpoint(path: Path, objective, optimizer, device: torch.device | str | None = None) -> int:
    """Resume from ``path`` when it exists: the states go into ``objective`` and ``optimizer``; returns the step it
    was saved after (0 without a checkpoint). CheckpointError naming the file when it cannot be used."""
    if not path.exists():
        return 0
    state = read_checkpoint(path, device)
    try:
        objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: does not fit this run's model and optimizer ({detail}); pass --restart to "
                              f"discard it and train from step 0") from None
    return int(state["step"])


def discard_run_state(run_dir: Path) -> list[Path]:
    """``--restart``: remove the checkpoints, logs and summaries under ``run_dir``; returns what was removed."""
    removed = [p for name in RUN_STATE for p in run_dir.rglob(name) if p.is_file()] if run_dir.is_dir() else []
    for path in removed:
        path.unlink()
    return removed


def open_log(path: Path, start: int):
    """The training log, for appending from step ``start`` on: rows of later steps (done before a kill, redone after
    the resume) and a line the kill cut short are removed first, so the log holds each step once."""
    kept = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                step = json.loads(line)["step"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
            if step <= start:
                kept.append(line + "\n")
    path.write_text("".join(kept))
    return path.open("a", buffering=1)  # line-buffered: the log is readable while training


def pretrain(cfg: TrainConfig, run_dir: Path, data: Data | None = None, progress: bool = True) -> HetSkelModel:
    """Train (or resume) in run_dir; returns the trained model. Writes run_dir/checkpoint.pt and log.jsonl.

    Under torchrun every process takes its share of each batch (DDP); bfloat16 autocast on CUDA when cfg.amp.
    """
    torch.set_num_threads(cfg.threads)
    where = placement()
    run_dir.mkdir(parents=True, exist_ok=True)
    data = data or load_data(cfg)
    if not data.train:
        raise ValueError(f"no training sequences in {data.source} for styles {cfg.train_styles} / split {cfg.split}")
    model = build_model(cfg, data.label_names, data.topologies)
    objective = OBJECTIVES[cfg.objective](model, **cfg.objective_args).to(where.device)
    optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    maker = ViewMaker(load_unified(), model.cfg.window, model.cfg.fps, ViewSettings(**cfg.views), data.normalization)
    topology_index = {name: i for i, name in enumerate(model.cfg.topologies)}
    batch = min(cfg.batch_size, len(data.train))
    steps_per_epoch = max(1, len(data.train) // batch)
    total = cfg.steps or max(1, round(cfg.epochs * steps_per_epoch))

    groups = None
    if cfg.batch_by_dataset and data.weights is not None:
        groups = np.unique([c.dataset for c in data.train], return_inverse=True)[1]
    checkpoint = run_dir / "checkpoint.pt"
    start = load_checkpoint(checkpoint, objective, optimizer, where.device)
    trainer = wrap(objective, where)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.amp and where.device.type == "cuda")
    log = None
    if where.main:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.__dict__, sort_keys=False))
        (run_dir / "normalization.json").write_text(json.dumps(data.normalization.to_dict(load_unified())))
        log = open_log(run_dir / "log.jsonl", start)
    bar = tqdm(range(start, total), initial=start, total=total, disable=not (progress and where.main),
               desc=cfg.objective, dynamic_ncols=True)
    objective.train()
    began = time.monotonic()
    for step in bar:
        torch.manual_seed(cfg.seed * 1_000_003 + step)
        rng = np.random.default_rng([cfg.seed, step, 1, where.rank])
        idx = batch_indices(step, steps_per_epoch, len(data.train), batch, cfg.seed,
                            data.weights, groups)[where.rank::where.world]
        tensors = batch_tensors(maker.training_batch([data.train[i] for i in idx], rng, topology_index))
        tensors = {k: v.to(where.device, non_blocking=True) for k, v in tensors.items()}
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, total, cfg)
        with autocast:
            loss, parts = trainer(tensors)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(objective.parameters(), 5.0)
        optimizer.step()
        if where.main:
            bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()})
            log.write(json.dumps({"step": step + 1, "epoch": (step + 1) / steps_per_epoch, **parts}) + "\n")
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == total:
                save_checkpoint(checkpoint, step + 1, objective, optimizer)
    barrier(where)
    if where.main:
        log.close()
    if where.main and start < total:  # a resumed, already finished run keeps the summary of the run that trained
        summary = {"steps": total, "resumed_from": start, "seconds": time.monotonic() - began,
                   "parameters": count_parameters(model), "train_sequences": len(data.train),
                   "processes": where.world, "device": str(where.device),
                   "train_sequences_per_set": dict(Counter(c.dataset or "data" for c in data.train)),
                   "skipped": data.skipped}
        (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return model.cpu().eval()


def read_log(run_dir: Path) -> list[dict]:
    path = run_dir / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
