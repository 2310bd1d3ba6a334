"""How a dataset's shards are split among readers: pure Python, so it is testable (and
usable) without PyTorch.

A shard is a tuple ``(path, row_groups, rows)`` as ``Table.shards`` returns it. Readers are
numbered ``rank * num_workers + worker``: every DataLoader worker of every rank is one.
"""

from __future__ import annotations

import random
from typing import Sequence

Shard = tuple  # (path: str, row_groups: tuple[int, int] | None, rows: int)


def epoch_order(shards: Sequence[Shard], *, shuffle: bool, seed: int, epoch: int) -> list[Shard]:
    """The shards in the order of ``epoch``: as listed, or shuffled by ``(seed, epoch)``
    (the same on every reader and in every run)."""
    order = list(shards)
    if shuffle:
        random.Random(f"tarn:{seed}:{epoch}").shuffle(order)
    return order


def assign(shards: Sequence[Shard], readers: int) -> list[list[Shard]]:
    """Splits ``shards`` (in epoch order) among ``readers``: each shard, in turn, goes to
    the reader with the fewest rows so far (the lowest-numbered on a tie). Every shard goes
    to exactly one reader, and readers' row counts differ by at most one shard's rows."""
    if readers < 1:
        raise ValueError(f"readers must be at least 1, got {readers}")
    out: list[list[Shard]] = [[] for _ in range(readers)]
    rows = [0] * readers
    for shard in shards:
        reader = min(range(readers), key=lambda r: (rows[r], r))
        out[reader].append(shard)
        rows[reader] += shard[2]
    return out


def equal_length(assigned: Sequence[Sequence[Shard]]) -> int:
    """The rows every reader yields when all must yield the same number: the fewest any
    reader has (distributed training steps in lockstep, so no rank waits forever)."""
    return min(sum(s[2] for s in shards) for shards in assigned)
