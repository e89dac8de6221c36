"""Data parallelism over ``torch.distributed``: gloo on CPU, nccl on GPUs.

Launch with torchrun, which sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT:

    torchrun --nproc_per_node 2 -m pythia.cli train --suite micro --model 1.8M --dataset standard

Every rank reads the step's whole global batch with ``get_batch`` (a memory-mapped slice, so
this is cheap) and trains on its contiguous share of rows ``rank_rows``; DDP averages the
gradients, so the update equals the single-process update on the whole batch. Rank 0 alone
writes checkpoints, state and logs. Without torchrun everything runs in one process.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from pythia.errors import UsageError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 or self.backend is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_context() -> DistContext:
    """The rank layout from torchrun's environment (one process when unset)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistContext(
        int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))
    )


def default_backend(device: str) -> str:
    return "nccl" if device.startswith("cuda") else "gloo"


def ensure_env() -> None:
    """Single-process defaults for the variables torch.distributed's env:// init reads."""
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))


def init_distributed(device: str = "cpu", force: bool = False) -> DistContext:
    """Join the process group when launched by torchrun (or ``force``: a group of one)."""
    ctx = env_context()
    if ctx.world_size == 1 and not force:
        return ctx
    backend = default_backend(device)
    if not dist.is_initialized():
        ensure_env()
        if device.startswith("cuda"):
            torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), ctx.local_rank, backend)


def rank_rows(global_batch: int, ctx: DistContext) -> slice:
    """This rank's contiguous share of a step's rows (the batch must divide evenly)."""
    if global_batch % ctx.world_size:
        raise UsageError(
            f"global batch {global_batch} is not divisible by world size {ctx.world_size}; start a number of ranks that divides it"
        )
    per = global_batch // ctx.world_size
    return slice(ctx.rank * per, (ctx.rank + 1) * per)


def rank_batch(batch: np.ndarray, ctx: DistContext) -> np.ndarray:
    return batch[rank_rows(batch.shape[0], ctx)]


def barrier(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.barrier()


def all_mean(value: float, ctx: DistContext, device: str = "cpu") -> float:
    """Mean of a scalar over ranks (the logged loss is the whole batch's loss)."""
    if not (ctx.enabled and dist.is_initialized()) or ctx.world_size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def wrap_ddp(model: torch.nn.Module, ctx: DistContext, device: str) -> torch.nn.Module:
    if ctx.world_size == 1:
        return model
    ids = [ctx.local_rank] if device.startswith("cuda") else None
    return DDP(model, device_ids=ids, broadcast_buffers=False)


def shutdown(ctx: DistContext) -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
