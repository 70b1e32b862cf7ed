"""The seeding scheme: every random draw is seeded from a tuple of integers and names, never a running stream.

``derived_seed(run_seed, iteration, "init", j)`` gives the same 63-bit seed in any process, so a run resumes
bit-for-bit from a checkpoint and N processes × k inits reproduce 1 process × N·k inits.
"""

from __future__ import annotations

import hashlib

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
