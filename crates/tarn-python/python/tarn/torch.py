"""``TarnDataset``: a PyTorch ``IterableDataset`` over a tarn table at one version.

PyTorch is imported only when this module is, and only if installed: without it the
dataset still iterates (``output="numpy"`` or ``"arrow"``), which is how its sharding is
tested.

Every DataLoader worker of every rank is one *reader*, numbered
``rank * num_workers + worker_id``. Each epoch, the table's shards (data files, or row
groups when there are fewer files than readers) are put in an order fixed by
``(seed, epoch)`` and dealt to the readers, balancing rows; a reader reads only its own.
So the readers of one epoch together yield every row of the pinned version exactly once
(or, with ``equal_length``, the same number of rows each, dropping the fewest rows).
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

import pyarrow as pa

from . import _shards
from ._tarn import Table

try:  # PyTorch is optional.
    import torch as _torch
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # pragma: no cover - exercised where torch is absent
    _torch = None
    _Base = object

__all__ = ["TarnDataset"]

_OUTPUTS = ("torch", "numpy", "arrow")


class TarnDataset(_Base):  # type: ignore[misc, valid-type]
    """Batches of a tarn table, pinned to the version current at construction.

    Args:
        uri: the table's location (a path or an object store URL).
        version: the version to read; by default the newest when the dataset is made.
            A commit after that is not seen.
        columns: the columns to read (all by default).
        filter: a SQL predicate over the table's columns, pushed into the scan.
        batch_size: rows per yielded batch (the last of a reader's epoch may be shorter).
            Use ``DataLoader(dataset, batch_size=None)``: batches are already made.
        shuffle: put the shards in a new order every epoch (see ``set_epoch``).
        shuffle_buffer: also shuffle rows within a window of this many rows (0: off).
        seed: the shuffles' seed; the same seed and epoch give the same order.
        equal_length: every reader yields the same number of rows (the smallest share),
            so DDP ranks take the same number of steps.
        rank, world_size: this process's place in distributed training; by default from
            ``torch.distributed`` when initialized, else the ``RANK`` and ``WORLD_SIZE``
            environment variables, else a single process.
        output: ``"torch"`` (a dict of tensors), ``"numpy"`` (a dict of arrays) or
            ``"arrow"`` (a ``pyarrow.RecordBatch``).
        readahead: batches each scan reads ahead, in Rust, while Python works.
        split_row_groups: shard by row group instead of by file; by default only when the
            table has fewer data files than readers.
        storage_options: the object store's options (as ``tarn.Table`` takes them).
    """

    def __init__(
        self,
        uri: str,
        *,
        version: int | None = None,
        columns: Sequence[str] | None = None,
        filter: str | None = None,
        batch_size: int = 1024,
        shuffle: bool = False,
        shuffle_buffer: int = 0,
        seed: int = 0,
        equal_length: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        output: str = "torch",
        readahead: int = 4,
        split_row_groups: bool | None = None,
        storage_options: dict[str, str] | None = None,
    ) -> None:
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, got {output!r}")
        if output == "torch" and _torch is None:
            raise ImportError('output="torch" needs PyTorch; install it or use output="numpy"')
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must not be negative, got {shuffle_buffer}")
        table = Table(uri, version, storage_options)
        self.uri = uri
        self.version = table.version
        self.columns = list(columns) if columns is not None else None
        self.filter = filter
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.equal_length = equal_length
        self.rank = rank
        self.world_size = world_size
        self.output = output
        self.readahead = readahead
        self.split_row_groups = split_row_groups
        self.storage_options = dict(storage_options or {})
        self.epoch = 0
        self._table: Table | None = table
        self._pid = os.getpid()

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch the next iteration reads: with ``shuffle``, each epoch has its
        own order, the same for a given ``seed``. Call it before each epoch, as with
        ``DistributedSampler``."""
        self.epoch = epoch

    # Pickled for `spawn` and `forkserver` workers: settings only; each worker opens the
    # table (at the pinned version) the first time it iterates.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_table"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _open(self) -> Table:
        # A worker forked from the process that opened the table opens it again: an
        # object store's connections belong to the process that made them.
        if self._table is None or self._pid != os.getpid():
            self._table = Table(self.uri, self.version, self.storage_options)
            self._pid = os.getpid()
        return self._table

    def world(self) -> tuple[int, int]:
        """``(rank, world_size)`` of this process."""
        if self.rank is not None or self.world_size is not None:
            rank, size = self.rank or 0, self.world_size or 1
        elif _torch is not None and _torch.distributed.is_available() and _torch.distributed.is_initialized():
            rank, size = _torch.distributed.get_rank(), _torch.distributed.get_world_size()
        else:
            rank, size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        if not 0 <= rank < size:
            raise ValueError(f"rank {rank} is not in a world of {size}")
        return rank, size

    @staticmethod
    def worker() -> tuple[int, int]:
        """``(worker_id, num_workers)`` of the DataLoader worker this runs in."""
        if _torch is not None:
            info = _torch.utils.data.get_worker_info()
            if info is not None:
                return info.id, info.num_workers
        return 0, 1

    def reader_shards(self, rank: int, world_size: int, worker: int, num_workers: int) -> tuple[list, int | None]:
        """The shards reader ``(rank, worker)`` reads this epoch, in order, and the rows it
        yields when ``equal_length`` (``None`` otherwise)."""
        table = self._open()
        readers = world_size * num_workers
        split = self.split_row_groups
        shards = table.shards(bool(split))
        if split is None and len(shards) < readers:
            shards = table.shards(True)
        ordered = _shards.epoch_order(shards, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch)
        assigned = _shards.assign(ordered, readers)
        limit = None
        if self.equal_length:
            if self.filter is not None:
                # Rows per shard after the filter: counted by scanning the filter's columns.
                assigned = [[(p, g, self._count([(p, g, r)])) for p, g, r in mine] for mine in assigned]
            limit = _shards.equal_length(assigned)
            if limit == 0 and any(assigned):
                raise ValueError(
                    f"equal_length: the table has {len(shards)} shards, fewer than the "
                    f"{readers} readers (ranks x workers), so some reader has no rows; use "
                    "fewer workers or turn equal_length off"
                )
        return assigned[rank * num_workers + worker], limit

    def _count(self, shards: list) -> int:
        stream = self._open().scan_shards(shards, columns=[], filter=self.filter)
        return sum(b.num_rows for b in pa.RecordBatchReader.from_stream(stream))

    def __iter__(self) -> Iterator[Any]:
        rank, world_size = self.world()
        worker, num_workers = self.worker()
        mine, limit = self.reader_shards(rank, world_size, worker, num_workers)
        batches = self._batches(mine)
        if self.shuffle_buffer:
            import numpy as np

            rng = np.random.default_rng([self.seed, self.epoch, rank, worker])
            batches = _shuffled(batches, self.shuffle_buffer, rng)
        batches = _rebatched(batches, self.batch_size, limit)
        for batch in batches:
            yield self._convert(batch)

    def _batches(self, shards: list) -> Iterator[pa.RecordBatch]:
        """The shards' batches, shard by shard in order; the next shard's scan starts (and
        reads ahead) while this one's batches are consumed."""
        table = self._open()

        def scan(shard: tuple) -> pa.RecordBatchReader:
            stream = table.scan_shards(
                [shard],
                columns=self.columns,
                filter=self.filter,
                batch_size=self.batch_size,
                readahead=self.readahead,
            )
            return pa.RecordBatchReader.from_stream(stream)

        upcoming = scan(shards[0]) if shards else None
        for i in range(len(shards)):
            current = upcoming
            upcoming = scan(shards[i + 1]) if i + 1 < len(shards) else None
            yield from current

    def _convert(self, batch: pa.RecordBatch) -> Any:
        if self.output == "arrow":
            return batch
        arrays = {name: _to_numpy(column) for name, column in zip(batch.schema.names, batch.columns)}
        if self.output == "numpy":
            return arrays
        return {name: _to_tensor(value) for name, value in arrays.items()}



def _to_numpy(column: pa.Array) -> Any:
    """Numbers and booleans as a NumPy array (without a copy when there are no nulls;
    decimals as float64, which tensors can hold); fixed-size lists of numbers (embeddings)
    as a 2-D array; timestamps and dates as datetime64; anything else as a list."""
    kind = column.type
    if pa.types.is_fixed_size_list(kind) and (pa.types.is_integer(kind.value_type) or pa.types.is_floating(kind.value_type)):
        if column.null_count:
            raise ValueError("a fixed-size list column with NULL rows cannot become a tensor; filter them out")
        values = column.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(column), kind.list_size)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return column.to_numpy(zero_copy_only=False)
    if pa.types.is_decimal(kind):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_temporal(kind):
        return column.to_numpy(zero_copy_only=False)
    return column.to_pylist()


def _to_tensor(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        if not value.flags.writeable:
            value = value.copy()
        return _torch.from_numpy(value)
    return value


def _shuffled(batches: Iterator[pa.RecordBatch], window: int, rng: Any) -> Iterator[pa.RecordBatch]:
    """Rows in a random order within windows of about ``window`` rows: once the buffer
    holds ``window`` rows, it is shuffled and all but half a window is let out."""
    buffered: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        buffered.append(batch)
        rows += batch.num_rows
        if rows >= window:
            # One gather of the whole buffer (no concatenation first): the rows let out and
            # the rows kept are slices of it.
            table = pa.Table.from_batches(buffered)
            table = table.take(rng.permutation(table.num_rows))
            keep = window // 2
            buffered = table.slice(table.num_rows - keep).to_batches()
            rows = keep
            yield from table.slice(0, table.num_rows - keep).to_batches()
    if buffered:
        table = pa.Table.from_batches(buffered)
        yield from table.take(rng.permutation(table.num_rows)).to_batches()


def _rebatched(batches: Iterator[pa.RecordBatch], size: int, limit: int | None) -> Iterator[pa.RecordBatch]:
    """Batches of exactly ``size`` rows (the last may be shorter), stopping after ``limit``
    rows when given."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    left = limit
    for batch in batches:
        if left is not None:
            if left <= 0:
                break
            batch = batch.slice(0, left)
            left -= batch.num_rows
        pending.append(batch)
        rows += batch.num_rows
        while rows >= size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, size).combine_chunks().to_batches()[0]
            rest = table.slice(size)
            pending = rest.combine_chunks().to_batches() if rest.num_rows else []
            rows -= size
    if rows:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
