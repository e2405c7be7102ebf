"""torchrun support: one process per GPU (or CPU processes with gloo), each taking its share of every batch."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Placement:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Only the main process logs, shows progress and writes checkpoints."""
        return self.rank == 0


def placement() -> Placement:
    """Read torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK); a plain `python` run is one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if torch.cuda.is_available() else torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Placement(rank, world, device)


def wrap(module: torch.nn.Module, where: Placement) -> torch.nn.Module:
    """DistributedDataParallel when there are several processes; the classifier head is unused while pretraining."""
    if where.world == 1:
        return module
    ids = [where.device.index] if where.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


def barrier(where: Placement) -> None:
    if where.world > 1:
        dist.barrier()
