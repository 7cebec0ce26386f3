"""Global batches and each rank's slice of them.

A data-parallel step works on one *global* batch, the batch a single process
would train on; rank r of R reads only its own contiguous slice of it (the
global batch's indices are sorted, so each slice is a run of nearby samples of
the memory-mapped files). The global batches come from the single-process rule
of the model being trained (for InversionNet: :func:`epoch_batches`, the rule
of ``InversionNet.fit``), so the same seed visits the same samples whatever
the number of ranks.
"""
from __future__ import annotations

import numpy as np


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list:
    """InversionNet.fit's batches of an epoch: a permutation by ``default_rng(seed + epoch)``
    cut into n // batch_size batches of batch_size (sorted indices; a final partial
    batch is dropped)."""
    n, bs = int(n), int(batch_size)
    if bs < 1 or n < bs:
        raise ValueError(f"need 1 <= batch_size <= n, got batch_size={batch_size}, n={n}")
    order = np.random.default_rng(int(seed) + int(epoch)).permutation(n)
    return [np.sort(order[i * bs:(i + 1) * bs]) for i in range(n // bs)]


def shard_bounds(count: int, rank: int, size: int) -> tuple:
    """[start, stop) of rank's part when ``count`` items are split into ``size`` contiguous
    parts as evenly as possible (the first count % size parts one longer)."""
    if not 0 <= rank < size:
        raise ValueError(f"rank must be in 0..{size - 1}, got {rank}")
    q, r = divmod(int(count), int(size))
    start = rank * q + min(rank, r)
    return start, start + q + (1 if rank < r else 0)


def shard(batch: np.ndarray, rank: int, size: int) -> np.ndarray:
    """Rank's contiguous slice of a global batch (see shard_bounds)."""
    a, b = shard_bounds(len(batch), rank, size)
    return batch[a:b]


class ShardedBatches:
    """The global batches of an epoch, seen by one rank: iterating gives
    ``(local_indices, global_batch_size)`` per optimiser step."""

    def __init__(self, batches: list, rank: int, size: int, min_local: int = 1):
        self.batches, self.rank, self.size = list(batches), int(rank), int(size)
        for b in self.batches:
            if len(b) < min_local * self.size:
                raise ValueError(f"a global batch of {len(b)} samples cannot give each of {self.size} ranks "
                                 f"{min_local} samples; use a larger batch or fewer ranks")

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for b in self.batches:
            yield shard(b, self.rank, self.size), len(b)
