"""Under DDP, give each process the same shard of the training set in every epoch.

Lightning's ``DistributedSampler`` draws a new permutation of the whole dataset each epoch and
deals it out, so each process sees new images every epoch and its feature cache ends up holding
most of the training set. ``FixedShardSampler`` keeps the shard the distributed sampler deals in
epoch 0 and reshuffles only the order within it each epoch: each process caches only its shard.
"""

from collections.abc import Iterator

import torch
from torch.utils.data import DistributedSampler, Sampler


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
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.shard), generator=generator)
        return iter([self.shard[index] for index in order.tolist()])

    def __len__(self) -> int:
        return len(self.shard)
