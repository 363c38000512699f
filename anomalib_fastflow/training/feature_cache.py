"""Backbone features of training views, computed once and reused in every later epoch.

The backbone is frozen, so the features of a given view of a given image never change. The cache
keeps them per sample in half precision in memory up to a budget, and spills the rest to disk.
Under DDP each process caches the samples of its own shard (``training.samplers``).
"""

import hashlib
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

CacheKey = tuple[str, int]  # (image path, view index)


class FeatureCache:
    """Per-sample feature maps, in memory up to ``memory_budget_bytes`` and on disk beyond.

    Args:
        memory_budget_bytes: Bytes of features kept in memory; later samples go to ``spill_dir``.
        spill_dir: Folder for samples over the budget (created when needed, removed by ``clear``).
            Whatever a previous run left there (one that was killed before it could clean up) is
            deleted when the cache opens.
        dtype: Storage precision (features are returned in the precision they were given in).
    """

    def __init__(self, memory_budget_bytes: int, spill_dir: Path, dtype: torch.dtype = torch.float16) -> None:
        self.memory_budget_bytes = memory_budget_bytes
        self.spill_dir = Path(spill_dir)
        if self.spill_dir.exists():
            logger.info("Removing the feature cache a previous run left in %s", self.spill_dir)
            shutil.rmtree(self.spill_dir)
        self.dtype = dtype
        self.memory_bytes = 0
        self._in_memory: dict[CacheKey, list[torch.Tensor]] = {}
        self._on_disk: dict[CacheKey, Path] = {}

    def __len__(self) -> int:
        return len(self._in_memory) + len(self._on_disk)

    @property
    def images(self) -> int:
        """Distinct images among the cached samples."""
        return len({path for path, _ in [*self._in_memory, *self._on_disk]})

    @property
    def spilled(self) -> int:
        """Samples stored on disk."""
        return len(self._on_disk)

    def __contains__(self, key: CacheKey) -> bool:
        return key in self._in_memory or key in self._on_disk

    def keys(self) -> frozenset[CacheKey]:
        """The keys of every cached sample, in memory or on disk."""
        return frozenset(self._in_memory) | frozenset(self._on_disk)

    def get(self, key: CacheKey) -> list[torch.Tensor] | None:
        """One sample's features, a ``(C_i, H_i, W_i)`` map per scale in storage precision, or None."""
        if key in self._in_memory:
            return self._in_memory[key]
        if key in self._on_disk:
            return torch.load(self._on_disk[key], weights_only=True)
        return None

    def store(self, keys: Sequence[CacheKey], features: Sequence[torch.Tensor]) -> None:
        """Keep the features of each sample of a batch (maps ``(N, C_i, H_i, W_i)``, one per scale)."""
        for index, key in enumerate(keys):
            sample = [feature[index].detach().to("cpu", self.dtype).clone() for feature in features]
            size = sum(tensor.numel() * tensor.element_size() for tensor in sample)
            if self.memory_bytes + size <= self.memory_budget_bytes:
                self._in_memory[key] = sample
                self.memory_bytes += size
            else:
                self.spill_dir.mkdir(parents=True, exist_ok=True)
                path = self.spill_dir / f"{hashlib.sha1(repr(key).encode()).hexdigest()}.pt"
                torch.save(sample, path)
                self._on_disk[key] = path

    def clear(self) -> None:
        """Forget every sample and delete the spill folder."""
        self._in_memory.clear()
        self._on_disk.clear()
        self.memory_bytes = 0
        shutil.rmtree(self.spill_dir, ignore_errors=True)
