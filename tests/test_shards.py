"""The shard writer sizes files and row groups by bytes, writes a page index and `datasets`' column options."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
from datasets import load_dataset

from medmat.shards import ShardWriter


def _rows(sizes):
    return [{"id": f"r{i:03d}", "image": {"bytes": os.urandom(n), "path": None}} for i, n in enumerate(sizes)]


def _layout(folder, files):
    out = []
    for name in files:
        meta = pq.ParquetFile(folder / name).metadata
        out.append([meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
    return out


def test_files_and_row_groups_roll_over_by_bytes(tmp_path):
    # 10,000-byte images (random, so incompressible) and targets of 35,000 bytes per row group and 100,000 per file:
    # three rows fill a group (a fourth would pass 40,000), nine a file (a tenth would pass 100,000).
    writer = ShardWriter(tmp_path, "src", row_group_bytes=35_000, shard_bytes=100_000)
    rows = _rows([10_000] * 25)
    for start in range(0, 25, 4):  # batches that do not line up with the groups
        writer.write_rows(rows[start:start + 4])
    files = writer.close()
    assert _layout(tmp_path, files) == [[3, 3, 3], [3, 3, 3], [3, 3, 1]]
    assert writer.rows == 25 and writer.bytes >= 250_000
    back = load_dataset("parquet", data_files=[str(tmp_path / f) for f in files], split="train")
    assert back["id"] == [r["id"] for r in rows]  # every row, in order (the bytes are noise, not an image)


def test_an_oversized_row_gets_a_row_group_of_its_own(tmp_path):
    writer = ShardWriter(tmp_path, "src", row_group_bytes=35_000, shard_bytes=10**9)
    writer.write_rows(_rows([10_000, 50_000, 10_000, 10_000]))
    assert _layout(tmp_path, writer.close()) == [[1, 1, 2]]


def test_page_index_and_datasets_column_options(tmp_path):
    writer = ShardWriter(tmp_path, "src")
    writer.write_rows(_rows([1000] * 3))
    meta = pq.ParquetFile(tmp_path / writer.close()[0]).metadata
    columns = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
    assert all(c.has_offset_index and c.has_column_index is not None for c in columns.values())
    assert columns["image.bytes"].compression == "UNCOMPRESSED"  # embedded media: as datasets writes it
    assert columns["id"].compression == "SNAPPY"
    assert b"content_defined_chunking" in meta.metadata and b"huggingface" in meta.metadata
