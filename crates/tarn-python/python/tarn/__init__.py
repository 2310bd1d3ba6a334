"""tarn lakehouse tables in Python.

- ``tarn.Table(uri, version=None)``: one table at one version. ``pyarrow.table(t)`` and
  ``t.scan(columns, filter)`` read it as Arrow; ``SessionContext.register_table("t", t)``
  registers it in datafusion-python 55 for SELECT and INSERT.
- ``tarn.connect(warehouse).sql("...")``: any statement the ``tarn`` shell runs, with its
  result as an Arrow stream (``pyarrow.table(result)``, polars, DuckDB).
- ``tarn.torch.TarnDataset``: a PyTorch ``IterableDataset`` over a pinned version, sharded
  over ranks and DataLoader workers.
"""

from ._tarn import Connection, RecordBatchStream, Table, TarnError, connect

__all__ = ["Connection", "RecordBatchStream", "Table", "TarnError", "connect"]
