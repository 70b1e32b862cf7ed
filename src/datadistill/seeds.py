"""The seeding scheme: every random draw is seeded from a tuple of integers and names, never a running stream.

``derived_seed(run_seed, iteration, "init", j)`` gives the same 63-bit seed in any process, so a run resumes
bit-for-bit from a checkpoint and N processes × k inits reproduce 1 process × N·k inits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed from integers (run seed, iteration, init index, …), independent of process layout.

    Every random draw of an iteration is seeded this way instead of from one running generator, so a run
    resumes bit-for-bit from any checkpoint and N processes × k inits reproduce 1 process × N·k inits.
    """
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def generator(*parts: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derived_seed(*parts)``."""
    return torch.Generator().manual_seed(derived_seed(*parts))


@contextmanager
def global_rng(*parts: int | str, device: torch.device | None = None) -> Iterator[None]:
    """Run the block with torch's global generator (and ``device``'s CUDA one) seeded with
    ``derived_seed(*parts)``, the caller's states restored after.

    The draws a user's network makes itself, such as dropout masks, come from the global generators; seeded
    here they are a function of ``parts`` alone, so a run resumes bit-for-bit and ``--jobs`` does not change
    an evaluation.
    """
    seed = derived_seed(*parts)
    cuda = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for dev in cuda:
            with torch.cuda.device(dev):
                torch.cuda.manual_seed(seed)
        yield
