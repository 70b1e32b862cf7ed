"""p(θ_0): the distributions of initial weights that distilled data must work for (Wang et al. 2018, §3.2, §3.5).

- ``fixed``: one θ_0 drawn with a seed; distillation and evaluation both use it.
- ``random``: a fresh θ_0 from the init scheme (Xavier normal by default) for every sampled network. Evaluation
  draws held-out inits from seeds that distillation never uses.
- ``pretrained-fixed``: one network pre-trained on (usually) another data set.
- ``pretrained-random``: networks sampled from a pool of pre-trained ones; evaluation uses the pool's held-out part.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from datadistill.models import init_params
from datadistill.types import Params

INIT_KINDS = ("fixed", "random", "pretrained-fixed", "pretrained-random")

# Held-out evaluation inits of `random` use seeds EVAL_SEED_BASE + i. Distillation draws its inits from one
# generator stream seeded with the run's --seed (< EVAL_SEED_BASE), so the two never coincide.
EVAL_SEED_BASE = 1_000_000_000


@dataclass
class InitDistribution:
    """A distribution over θ_0 for one network architecture.

    Attributes:
        kind: one of ``INIT_KINDS``.
        model: the network whose parameters are drawn (its own weights are never used).
        scheme: weight-init scheme for ``fixed``/``random`` (see ``datadistill.models.INIT_SCHEMES``).
        seed: the seed of the ``fixed`` init.
        pool: pre-trained parameter dicts to sample from (``pretrained-*``); ``pool[0]`` is the fixed one.
        heldout: pre-trained networks never used in distillation, for evaluating ``pretrained-random``.
    """

    kind: str
    model: nn.Module
    scheme: str = "xavier"
    seed: int = 0
    pool: Sequence[Params] = ()
    heldout: Sequence[Params] = ()

    def __post_init__(self) -> None:
        if self.kind not in INIT_KINDS:
            raise ValueError(
                f"unknown init kind {self.kind!r}: choose one of {', '.join(INIT_KINDS)}"
            )
        if self.kind.startswith("pretrained") and not self.pool:
            raise ValueError(
                f"init {self.kind!r} needs pre-trained networks: pass --pretrained DIR"
            )
        if self.kind == "pretrained-random" and not self.heldout:
            raise ValueError(
                "init 'pretrained-random' needs held-out pre-trained networks for evaluation; "
                "the pool's manifest lists none (re-run `datadistill pretrain` with --heldout > 0)"
            )

    @property
    def is_fixed(self) -> bool:
        return self.kind in ("fixed", "pretrained-fixed")

    def _fresh(self, generator: torch.Generator) -> Params:
        return init_params(self.model, self.scheme, generator)

    def sample(self, generator: torch.Generator) -> Params:
        """θ_0 for one network in distillation, drawn with ``generator`` (unused by fixed kinds)."""
        if self.kind == "fixed":
            return self._fresh(torch.Generator().manual_seed(self.seed))
        if self.kind == "random":
            return self._fresh(generator)
        if self.kind == "pretrained-fixed":
            return _clone(self.pool[0])
        index = int(torch.randint(len(self.pool), (1,), generator=generator))
        return _clone(self.pool[index])

    def evaluation_inits(self, n: int, start: int = 0) -> Iterator[Params]:
        """Inits ``start … start+n−1`` for evaluation; never ones seen in distillation for random kinds.

        Fixed kinds always yield their one init (so ``n`` should be 1).
        """
        for i in range(start, start + n):
            if self.kind == "random":
                yield self._fresh(torch.Generator().manual_seed(EVAL_SEED_BASE + i))
            elif self.kind == "pretrained-random":
                if i >= len(self.heldout):
                    raise ValueError(
                        f"asked for {start + n} evaluation networks but the pool holds only "
                        f"{len(self.heldout)} held-out ones: lower --models or pre-train more"
                    )
                yield _clone(self.heldout[i])
            else:
                yield self.sample(torch.Generator())

    def max_evaluation_models(self) -> int | None:
        """How many distinct evaluation inits exist (None: unlimited)."""
        if self.is_fixed:
            return 1
        if self.kind == "pretrained-random":
            return len(self.heldout)
        return None


def _clone(params: Params) -> Params:
    return {name: p.detach().clone() for name, p in params.items()}
