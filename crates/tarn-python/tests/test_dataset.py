"""tarn.torch.TarnDataset: sharding over ranks and workers, epochs, pinning; PyTorch's own
DataLoader when it is installed."""

from __future__ import annotations

import collections
import pickle

import numpy as np
import pyarrow as pa
import pytest

import tarn
from tarn import _shards
from tarn.torch import TarnDataset
from conftest import run


def ids_of(dataset, rank, world_size, worker, workers):
    """The ids reader (rank, worker) yields, in order."""
    dataset.rank, dataset.world_size = rank, world_size
    dataset.worker = lambda: (worker, workers)
    return [i for batch in dataset for i in batch.column("id").to_pylist()]


def test_ranks_and_workers_read_disjoint_shards_covering_the_table(events):
    dataset = TarnDataset(events, output="arrow", batch_size=64, shuffle=True, seed=7)
    seen = collections.Counter()
    per_reader = []
    for rank in range(2):
        for worker in range(3):
            ids = ids_of(dataset, rank, 2, worker, 3)
            per_reader.append(len(ids))
            seen.update(ids)
    assert sorted(seen) == list(range(1200))
    assert set(seen.values()) == {1}
    assert all(n > 0 for n in per_reader)


def test_few_files_are_split_by_row_group(conn, warehouse):
    run(conn, "CREATE TABLE one (id BIGINT) WITH ('write.parquet.row-group-rows' = '100')")
    run(conn, "INSERT INTO one SELECT * FROM unnest(range(1000))")
    uri = str(warehouse / "default" / "one")
    assert len(tarn.Table(uri).shards()) == 1
    dataset = TarnDataset(uri, output="arrow")
    lengths = [len(ids_of(dataset, 0, 1, w, 4)) for w in range(4)]
    assert sum(lengths) == 1000 and min(lengths) >= 200
    seen = [i for w in range(4) for i in ids_of(dataset, 0, 1, w, 4)]
    assert sorted(seen) == list(range(1000))


def test_set_epoch_changes_the_order_and_a_seed_repeats_it(events):
    def epoch_order(seed, epoch):
        dataset = TarnDataset(events, output="arrow", shuffle=True, seed=seed, shuffle_buffer=100)
        dataset.set_epoch(epoch)
        return ids_of(dataset, 0, 1, 0, 1)

    first = epoch_order(1, 0)
    assert sorted(first) == list(range(1200))
    assert epoch_order(1, 0) == first
    assert epoch_order(1, 1) != first
    assert epoch_order(2, 0) != first
    # The row buffer shuffles within files, not only their order.
    unshuffled = TarnDataset(events, output="arrow")
    in_file_order = ids_of(unshuffled, 0, 1, 0, 1)
    assert in_file_order != first and sorted(in_file_order) == sorted(first)


def test_equal_length_gives_every_rank_the_same_rows(events):
    dataset = TarnDataset(events, output="arrow", equal_length=True, filter="score > 100")
    lengths = [len(ids_of(dataset, r, 2, w, 3)) for r in range(2) for w in range(3)]
    assert len(set(lengths)) == 1 and lengths[0] > 0


def test_a_commit_during_iteration_is_not_seen(conn, events):
    dataset = TarnDataset(events, output="arrow", batch_size=100)
    batches = iter(dataset)
    first = next(batches)
    run(conn, "DELETE FROM events WHERE id >= 0")
    run(conn, "INSERT INTO events VALUES (5000, 'x', 1.0, [1, 2, 3])")
    ids = first.column("id").to_pylist() + [i for b in batches for i in b.column("id").to_pylist()]
    assert sorted(ids) == list(range(1200))
    # A dataset made now reads the new version.
    assert ids_of(TarnDataset(events, output="arrow"), 0, 1, 0, 1) == [5000]


def test_deleted_rows_are_not_yielded(conn, events):
    run(conn, "ALTER TABLE events SET TBLPROPERTIES ('write.delete-mode' = 'merge-on-read')")
    run(conn, "DELETE FROM events WHERE id % 2 = 0")
    table = tarn.Table(events)
    assert sum(s[2] for s in table.shards()) == 600
    assert sum(s[2] for s in table.shards(split_row_groups=True)) == 600
    for split in (False, True):
        dataset = TarnDataset(events, output="arrow", split_row_groups=split)
        ids = [i for w in range(3) for i in ids_of(dataset, 0, 1, w, 3)]
        assert sorted(ids) == list(range(1, 1200, 2))


def test_numpy_output_has_embeddings_as_matrices(events):
    dataset = TarnDataset(events, output="numpy", columns=["id", "score", "emb"], batch_size=50, filter="id < 100")
    batches = list(dataset)
    assert all(len(b["id"]) == 50 for b in batches)
    assert all(b["emb"].shape == (50, 3) and b["emb"].dtype == np.float32 for b in batches)
    ids = np.concatenate([b["id"] for b in batches])
    emb = np.concatenate([b["emb"] for b in batches])
    score = np.concatenate([b["score"] for b in batches])
    assert sorted(ids.tolist()) == list(range(100))
    assert emb[ids == 3].tolist() == [[3.0, 4.5, -3.25]]
    # NULL scores become NaN.
    assert np.isnan(score[ids == 7]).all() and score[ids == 8].tolist() == [4.0]


def test_decimals_become_floats_and_strings_lists(conn, warehouse):
    run(conn, "CREATE TABLE prices (id INT, price DECIMAL(15, 2), name VARCHAR)")
    run(conn, "INSERT INTO prices VALUES (1, 12.25, 'a b'), (2, NULL, NULL), (3, -0.5, 'ü')")
    dataset = TarnDataset(str(warehouse / "default" / "prices"), output="numpy")
    [batch] = list(dataset)
    order = np.argsort(batch["id"])
    assert batch["price"].dtype == np.float64
    assert batch["price"][order][[0, 2]].tolist() == [12.25, -0.5] and np.isnan(batch["price"][order][1])
    assert [batch["name"][i] for i in order] == ["a b", None, "ü"]


def test_pickles_settings_not_the_open_table(events):
    dataset = TarnDataset(events, output="arrow", columns=["id"])
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._table is None and copy.version == dataset.version
    assert sorted(ids_of(copy, 0, 1, 0, 1)) == list(range(1200))


def test_bad_settings_are_errors(events):
    with pytest.raises(ValueError, match="output"):
        TarnDataset(events, output="pandas")
    with pytest.raises(ValueError, match="rank 2"):
        ids_of(TarnDataset(events, output="arrow"), 2, 2, 0, 1)
    with pytest.raises(ValueError, match="fewer than"):
        ids_of(TarnDataset(events, output="arrow", equal_length=True), 0, 4, 0, 8)


def test_assignment_balances_rows_and_places_every_shard_once():
    shards = [(f"f{i}", None, rows) for i, rows in enumerate([50, 10, 40, 30, 20, 60, 5])]
    assigned = _shards.assign(shards, 3)
    assert sorted(s for mine in assigned for s in mine) == sorted(shards)
    totals = [sum(s[2] for s in mine) for mine in assigned]
    assert max(totals) - min(totals) <= 60
    assert _shards.equal_length(assigned) == min(totals)
    assert _shards.epoch_order(shards, shuffle=False, seed=0, epoch=3) == shards
    assert _shards.epoch_order(shards, shuffle=True, seed=0, epoch=3) == _shards.epoch_order(
        shards, shuffle=True, seed=0, epoch=3
    )


@pytest.mark.parametrize("start", ["spawn", "fork", "forkserver"])
def test_torch_dataloader_with_two_workers(events, start):
    torch = pytest.importorskip(
        "torch", reason="PyTorch is optional (about 3 GB from PyPI): install it to run DataLoader tests"
    )
    dataset = TarnDataset(events, columns=["id", "emb"], batch_size=100, shuffle=True)
    # The parent has used the table (and its runtime) before the workers start.
    assert len(list(dataset)) == 12
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2, multiprocessing_context=start)
    ids = []
    for batch in loader:
        assert batch["emb"].dtype == torch.float32 and batch["emb"].shape[1] == 3
        ids.extend(batch["id"].tolist())
    assert sorted(ids) == list(range(1200))
