"""A deterministic, resumable batch sampler that gives W processes exactly the batches of one process.

Every epoch's order is a permutation drawn from ``numpy.random.default_rng([seed, epoch, ORDER_STREAM])``, so it
depends on nothing but (seed, epoch): no sampler state needs checkpointing, and a resumed run re-creates the epoch
and skips to the batch it had reached. The permutation is cut into *global* batches of ``batch_size * world_size``
items and process r takes the r-th contiguous slice of each. Gathered in rank order (as `all_gather_with_grad`
does), the W slices are the global batch, so W processes with per-process batch B see exactly what one process
with batch B*W sees, which is what makes a DDP run reproduce a single-process run step for step. The seed words,
the slicing and the padding of a partial last batch are those of `vlstudy.data.datasets.ShardedBatchSampler` (the
loader of the data package), so both give the same batches for the same seed; this one can also start in the
middle of an epoch.

Written by hand rather than with `torch.utils.data.DistributedSampler`, which deals items round-robin
(rank r gets items r, r+W, ...), pads the epoch by repeating items, draws its order from a torch generator, and
cannot start in the middle of an epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

__all__ = ["ORDER_STREAM", "GlobalBatchSampler", "num_global_batches"]

ORDER_STREAM = 2  # last seed word of the epoch order: [seed, epoch, 2]; items use [seed, epoch, index, 1]


def num_global_batches(num_items: int, global_batch: int, drop_last: bool) -> int:
    """Batches per epoch of `global_batch` items out of `num_items` (a partial last one counts unless dropped)."""
    full, rest = divmod(num_items, global_batch)
    return full + (1 if rest and not drop_last else 0)


class GlobalBatchSampler(Sampler[list[int]]):
    """Yields this process's slice of each global batch of one epoch, from batch `start_batch` on.

    Args:
        num_items: the dataset's length.
        batch_size: items per process per batch (B).
        seed: the run's seed.
        epoch: the epoch (0-based); together with `seed` it fixes the order.
        rank: this process's rank r in [0, world_size).
        world_size: the number of processes W.
        start_batch: the first global batch to yield (a resumed run's position in the epoch).
        shuffle: permute the items each epoch; False keeps table order (evaluation).
        drop_last: drop a partial last global batch. If kept, it is padded with the first items of the epoch's
            order to a multiple of W and split evenly, so every process runs the same number of batches.

    Example (11 items, B=2, W=2, drop_last=False, order o): the global batches are o[0:4], o[4:8] and o[8:11]
    padded to o[8:11] + o[0:1]; rank 0 gets o[0:2], o[4:6], o[8:10] and rank 1 gets o[2:4], o[6:8], [o[10], o[0]].
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside [0, {world_size})")
        global_batch = batch_size * world_size
        self.num_batches = num_global_batches(num_items, global_batch, drop_last)
        if not 0 <= start_batch <= self.num_batches:
            raise ValueError(f"start_batch {start_batch} is outside [0, {self.num_batches}] for epoch {epoch}")
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = epoch
        self.rank = rank
        self.world_size = world_size
        self.start_batch = start_batch
        self.shuffle = shuffle

    def __len__(self) -> int:
        return self.num_batches - self.start_batch

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch, ORDER_STREAM]).permutation(self.num_items)
        else:
            order = np.arange(self.num_items)
        global_batch = self.batch_size * self.world_size
        for b in range(self.start_batch, self.num_batches):
            items = order[b * global_batch : (b + 1) * global_batch]
            if len(items) < global_batch:  # the kept partial last batch
                padded = -(-len(items) // self.world_size) * self.world_size
                items = np.concatenate([items, np.resize(order, padded - len(items))])
            share = len(items) // self.world_size
            yield items[self.rank * share : (self.rank + 1) * share].tolist()
