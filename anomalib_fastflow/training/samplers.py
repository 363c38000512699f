"""Training orders that depend on the seed and the epoch only.

- ``EpochSeededSampler`` (one process): a new permutation each epoch, drawn from ``(seed, epoch)``
  instead of torch's global random state, so a run resumed from a checkpoint sees the batches an
  uninterrupted run would have seen.
- ``FixedShardSampler`` (DDP): Lightning's ``DistributedSampler`` draws a new permutation of the
  whole dataset each epoch and deals it out, so each process sees new images every epoch and its
  feature cache ends up holding most of the training set. This keeps the shard the distributed
  sampler deals in epoch 0 and reshuffles only the order within it each epoch: each process caches
  only its shard.

``SeededOrder`` puts them in the training loader before the first epoch.
"""

from collections.abc import Iterator

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DistributedSampler, RandomSampler, Sampler


def _permutation(length: int, seed: int, epoch: int) -> list[int]:
    """A permutation drawn from ``(seed, epoch)``: every pair its own (``seed + epoch`` gave seed 1's
    epoch 0 the order of seed 0's epoch 1)."""
    mixed = np.random.SeedSequence([seed % 2**63, epoch]).generate_state(1)[
        0
    ]  # torch keeps 32 bits of a seed
    generator = torch.Generator().manual_seed(int(mixed))
    return torch.randperm(length, generator=generator).tolist()


class EpochSeededSampler(Sampler[int]):
    """A random order of ``range(length)`` per epoch, drawn from ``(seed, epoch)``.

    Args:
        length: Number of samples.
        seed: Seed of epoch 0's order.
    """

    def __init__(self, length: int, seed: int) -> None:
        self.length = length
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this before each epoch (also the first one after resuming)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(_permutation(self.length, self.seed, self.epoch))

    def __len__(self) -> int:
        return self.length


class FixedShardSampler(Sampler[int]):
    """Epoch 0's shard of a ``DistributedSampler`` in every epoch, reshuffled within each epoch.

    Args:
        sampler: Lightning's distributed sampler of this process (its dataset, ranks, seed and
            ``drop_last`` are taken over; the shard has its length, so epochs keep their batches).
    """

    def __init__(self, sampler: DistributedSampler) -> None:
        first_epoch = DistributedSampler(
            sampler.dataset,
            num_replicas=sampler.num_replicas,
            rank=sampler.rank,
            shuffle=sampler.shuffle,
            seed=sampler.seed,
            drop_last=sampler.drop_last,
        )
        self.shard = list(first_epoch)
        self.shuffle = sampler.shuffle
        self.seed = sampler.seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this before each epoch; the epoch seeds the order within the shard."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(self.shard)
        return iter([self.shard[index] for index in _permutation(len(self.shard), self.seed, self.epoch)])

    def __len__(self) -> int:
        return len(self.shard)


def seeded_sampler(sampler: Sampler[int] | None) -> Sampler[int] | None:
    """The seeded replacement for a training loader's shuffling sampler, or ``None`` to keep it.

    A one-process ``RandomSampler`` (without replacement) becomes an ``EpochSeededSampler`` seeded
    with ``torch.initial_seed()`` (the seed given to ``seed_everything``): torch's global random
    state, which it draws from, is not restored when a run resumes from a checkpoint. Lightning's
    ``DistributedSampler`` becomes a ``FixedShardSampler``, so that each process's feature cache
    holds its own shard only. A loader that does not shuffle keeps its sampler.
    """
    if isinstance(sampler, DistributedSampler):
        return FixedShardSampler(sampler)
    if isinstance(sampler, RandomSampler) and not sampler.replacement:
        return EpochSeededSampler(len(sampler.data_source), torch.initial_seed())
    return None


class SeededOrder(Callback):
    """Swaps the training loader's shuffling sampler for its seeded counterpart (``seeded_sampler``)."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Before the first epoch; a loader that does not shuffle is left alone."""
        del pl_module
        batch_sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        sampler = seeded_sampler(getattr(batch_sampler, "sampler", None))
        if sampler is not None:
            batch_sampler.sampler = sampler
