"""Data parallelism over sampled inits with torch.distributed (launched by ``torchrun``).

Each rank samples its own θ_0 (from seeds derived from the run seed, the iteration and the init's global index),
computes their meta-gradients, and the sums are combined with ``all_reduce`` so that every rank takes the same
optimiser step. With the same seeds, N ranks × k inits equal 1 rank × N·k inits up to float summation order.
Only rank 0 logs and writes files. Outside torchrun (no ``WORLD_SIZE``) everything runs in one process.
"""

from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from datadistill.config.settings import check_device

# A rank that dies makes its peers' collectives fail; this bounds the wait if a peer hangs instead.
COLLECTIVE_TIMEOUT = datetime.timedelta(
    seconds=int(os.environ.get("DATADISTILL_DIST_TIMEOUT", "120"))
)
EXIT_WAIT = datetime.timedelta(
    seconds=30
)  # how long a rank waits for the others before leaving at exit


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, tensors: list[Tensor]) -> list[Tensor]:
        """Element-wise sums over ranks (one flattened collective for all tensors)."""
        if self.size == 1:
            return tensors
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        out, offset = [], 0
        for t in tensors:
            out.append(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()
        return out

    def gather_floats(self, values: list[float]) -> list[float]:
        """Concatenate every rank's list, in rank order."""
        if self.size == 1:
            return values
        gathered: list[list[float] | None] = [None] * self.size
        dist.all_gather_object(gathered, values)
        return [v for part in gathered for v in (part or [])]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def init_world(device: str = "cpu") -> World:
    """Join the process group that torchrun set up (env:// rendezvous), or return a one-process world."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        resolve_device(device)  # "no CUDA GPU is visible; use --device cpu", not "no NCCL built in"
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
        # Without it, gloo's worker threads can outlive the interpreter and abort the process at exit
        # ("terminate called without an active exception", SIGABRT) after all work is done.
        atexit.register(shutdown)
    return World(dist.get_rank(), dist.get_world_size())


def local_device(device: str) -> str:
    """``cuda`` becomes this rank's GPU (``cuda:LOCAL_RANK``) under torchrun."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def resolve_device(device: str) -> torch.device:
    """``--device`` as this process's ``torch.device`` (``local_device``), refused in one line where it names
    something this machine lacks: a GPU without CUDA, or ``cuda:N`` past the last GPU."""
    check_device(device)
    resolved = torch.device(local_device(device))
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {device} was asked for but no CUDA GPU is visible; use --device cpu"
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(
                f"--device {resolved} names a GPU this machine lacks: it has {count} "
                f"(cuda:0 to cuda:{count - 1})"
            )
    return resolved


def shutdown() -> None:
    """Leave the process group (registered to run at exit by ``init_world``; safe to call twice).

    With gloo the ranks first meet (for at most ``EXIT_WAIT``): a rank that tore gloo down while another still
    talked to it was seen to abort the other at exit (SIGABRT, once in a CI run; rare).
    """
    if not dist.is_initialized():
        return
    if dist.get_backend() == "gloo":
        try:
            dist.monitored_barrier(timeout=EXIT_WAIT)
        except RuntimeError:
            pass  # another rank has already gone (it failed): leave without it
    dist.destroy_process_group()
