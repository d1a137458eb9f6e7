"""Process group set-up for ``torchrun``, and the collectives that keep ranks in step."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistEnv:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def init(env: DistEnv, device: torch.device) -> None:
    """Join the process group: NCCL on CUDA, gloo on CPU."""
    if env.world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def barrier(env: DistEnv) -> None:
    if env.world > 1:
        dist.barrier()


def all_finite(finite: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """``finite`` (a bool tensor) and-ed over every rank, on the device: no rank waits for its host."""
    if env.world == 1:
        return finite
    t = finite.to(torch.float32)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t > 0


def from_main(value: float, env: DistEnv, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (wall times: so that time-based decisions agree)."""
    if env.world == 1:
        return value
    t = torch.tensor([float(value)], device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def sync_buffers(model: torch.nn.Module, env: DistEnv) -> None:
    """Rank 0's buffers (BatchNorm statistics) on every rank. DDP broadcasts them before each
    training forward, but each rank's last batch then updates its own: without this, every rank
    would validate, and decide on, a different model."""
    if env.world > 1:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


def metrics_from_main(metrics: dict[str, float], env: DistEnv, device: torch.device) -> dict[str, float]:
    """Rank 0's metrics on every rank, so that the schedule, best checkpoint and early stop agree."""
    if env.world == 1:
        return metrics
    t = torch.tensor([float(v) for v in metrics.values()], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return dict(zip(metrics, t.tolist()))


def shutdown(env: DistEnv) -> None:
    if env.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
