"""Reads the data files of the table scripts/interop/nested.sql makes with pyarrow alone:
nested columns are plain Parquet, and every nested field carries its field id."""

import sys

import pyarrow.dataset as ds

FIELD_ID = b"PARQUET:field_id"


def ids(field, out):
    if field.metadata and FIELD_ID in field.metadata:
        out[int(field.metadata[FIELD_ID])] = field.name
    t = field.type
    children = []
    if hasattr(t, "num_fields") and t.num_fields and not hasattr(t, "key_field"):
        children = [t.field(i) for i in range(t.num_fields)]
    if hasattr(t, "value_field") and not hasattr(t, "key_field"):
        children = [t.value_field]
    if hasattr(t, "key_field"):
        children = [t.key_field, t.item_field]
    for child in children:
        ids(child, out)


def main(data_dir):
    dataset = ds.dataset(data_dir, format="parquet")
    # Files written before and after the rename: each file has its own field names, bound
    # by id by tarn; pyarrow reads each file as written.
    rows = {}
    for fragment in dataset.get_fragments():
        table = fragment.to_table()
        found = {}
        for field in table.schema:
            ids(field, found)
        # 5 columns, then s.a, s.b, s.b.c, the list element, the embedding element, the
        # map key and value.
        assert sorted(found) == list(range(1, 13)), found
        for row in table.to_pylist():
            rows[row["id"]] = row
    assert rows[1]["s"] == {"a": 1, "b": {"c": "x"}}, rows[1]
    assert rows[1]["tags"] == [1, 2], rows[1]
    assert rows[1]["emb"] == [0.5, 0.25, 1.0], rows[1]
    assert rows[1]["m"] == [("k", 10)], rows[1]
    assert rows[2]["s"] is None and rows[2]["tags"] == [] and rows[2]["emb"] is None, rows[2]
    assert rows[2]["m"] == [("j", 1), ("k", None)], rows[2]
    # Written after the rename: the file names the field by its new name, same id.
    assert rows[3]["s"] == {"renamed": 3, "b": {"c": "z"}}, rows[3]
    print(f"interop: pyarrow read {len(rows)} rows of nested columns with their field ids")


if __name__ == "__main__":
    main(sys.argv[1])
