"""DistributedDataParallel plumbing: one object that is a no-op in a single process.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; then gloo (CPU) or NCCL (CUDA)
joins the processes, the model is wrapped in DDP, the ranks share the validation passes
(:meth:`Distributed.gather`) and rank 0 alone writes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from tunesmith.model import pick_device

T = TypeVar("T")


class Distributed:
    """Rank, world size and device of this process, with the few collectives training needs."""

    def __init__(self, rank: int, world: int, device: torch.device):
        self.rank, self.world, self.device = rank, world, device
        self.is_main = rank == 0

    @classmethod
    def from_environment(cls, device_name: str) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(0, 1, pick_device(device_name))
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = pick_device(device_name)
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        elif device.type == "mps":  # no MPS backend for collectives: CPU processes instead
            device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), device)

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` itself, or a DDP wrapper of it when there are several processes."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda" else None)

    def rank_zero_first(self, work: Callable[[], T]) -> T:
        """Run ``work`` on rank 0, then on the others (so a shared cache is filled once)."""
        if self.world == 1:
            return work()
        import torch.distributed as dist

        if self.is_main:
            result = work()
            dist.barrier()
            return result
        dist.barrier()
        return work()

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on some rank (keeps collectives in step)."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: dict) -> dict:
        """Every rank's ``obj`` (a dict) merged into one, on every rank."""
        if self.world == 1:
            return dict(obj)
        import torch.distributed as dist

        parts: list[Any] = [None] * self.world
        dist.all_gather_object(parts, obj)
        return {key: value for part in parts for key, value in part.items()}

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
