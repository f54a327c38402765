"""The one Parquet shard writer: every table medmat writes (source tables, hub configs) goes through it.

Files and row groups are sized by bytes, not rows, with the targets `datasets` itself uses when it writes Parquet
(`push_to_hub`, `to_parquet`): at most `datasets.config.MAX_SHARD_SIZE` (500 MB) of uncompressed data per file and
`datasets.config.MAX_ROW_GROUP_SIZE` (100 MB) per row group. The Hub's dataset viewer refuses row groups above
286.10 MiB in memory ("Rows from parquet row groups are too big to be read ... (max=286.10 MiB)", its
TooBigContentError) and recommends 100-300 MB, so one full-size mammogram or CT volume per row group still fits,
and a row larger than the target gets a row group of its own. The writer options are `datasets`' own
(`get_parquet_column_options`: no compression and PLAIN encoding for embedded media bytes, which are already JPEG,
PNG or gzipped NIfTI; snappy and dictionaries for the rest), with its content-defined chunking (so re-uploads of
a changed file deduplicate on the Hub's Xet storage) and a page index. Memory stays bounded by one row group.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from .mat.parquet_layout import (MEDIA_COLUMNS, content_defined_chunking, mat_arrow_schema, mat_parquet_options,
                                 row_group_bytes, shard_bytes)

SHARD_BYTES = shard_bytes()  # uncompressed bytes per Parquet file
ROW_GROUP_BYTES = row_group_bytes()  # uncompressed bytes per row group
VIEWER_MAX_ROW_GROUP_BYTES = int(286.10 * 2**20)  # the dataset viewer's refusal threshold (TooBigContentError)
SHARD_ROWS = None  # no row cap by default: files roll over by bytes


def parquet_options(schema: pa.Schema) -> dict:
    """`pq.ParquetWriter` keyword arguments as `datasets` writes Parquet (per-leaf compression and encoding,
    content-defined chunking, page index): frozen for the MAT schema (medmat.mat.parquet_layout), derived by
    `datasets` for any other."""
    if schema.equals(mat_arrow_schema()):
        return mat_parquet_options()
    from datasets import Features
    from datasets.arrow_writer import get_parquet_column_options

    return {**get_parquet_column_options(Features.from_arrow_schema(schema), schema), "write_page_index": True,
            "use_content_defined_chunking": content_defined_chunking()}


READ_BUFFER_BYTES = 1 << 20


def open_streaming(path) -> pq.ParquetFile:
    """A Parquet file to read in small batches with bounded memory: pyarrow's default (`pre_buffer`) reads whole
    row groups ahead, several at once (measured: 482 MB held to stream a file of 100 MB row groups in batches of
    64 rows, 9 MB with this)."""
    return pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER_BYTES)


def row_sizes(table: pa.Table) -> np.ndarray:
    """Approximate uncompressed bytes of each row: its media bytes exactly, the other columns averaged."""
    sizes = np.zeros(table.num_rows, dtype=np.int64)
    media = 0
    for name in MEDIA_COLUMNS:
        if name in table.column_names:
            lengths = pc.binary_length(pc.struct_field(table.column(name), "bytes"))
            values = np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=float)
            values = np.nan_to_num(values).astype(np.int64)
            sizes += values
            media += int(values.sum())
    if table.num_rows:
        sizes += max(0, table.nbytes - media) // table.num_rows
    return sizes


class ShardWriter:
    """Rows go to `<folder>/<prefix>-NNNNN.parquet`; `files` lists what was written, `rows` how many, `bytes` the
    uncompressed bytes (as `datasets` counts a split's `num_bytes`)."""

    def __init__(self, folder: Path, prefix: str, schema: pa.Schema | None = None,
                 shard_bytes: int = SHARD_BYTES, row_group_bytes: int = ROW_GROUP_BYTES,
                 rows_per_shard: int | None = SHARD_ROWS, row_group_rows: int | None = None):
        self.folder, self.prefix = Path(folder), prefix
        self.schema = schema if schema is not None else mat_arrow_schema()
        self.shard_bytes, self.row_group_bytes = shard_bytes, min(row_group_bytes, VIEWER_MAX_ROW_GROUP_BYTES)
        self.rows_per_shard, self.row_group_rows = rows_per_shard, row_group_rows
        self.options = parquet_options(self.schema)
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = self._pending_bytes = 0
        self._index = self._rows_in_file = self._bytes_in_file = 0
        self.rows = self.bytes = 0
        self.files: list[str] = []

    def _open(self) -> pq.ParquetWriter:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.prefix}-{self._index:05d}.parquet"
        self.files.append(path.name)
        writer = pq.ParquetWriter(path, self.schema, **self.options)
        writer.add_key_value_metadata({"content_defined_chunking": json.dumps(content_defined_chunking())})
        return writer

    def write_rows(self, rows: list[dict]) -> None:
        if rows:
            self.write(pa.Table.from_pylist(rows, schema=self.schema))

    def write(self, table: pa.Table) -> None:
        sizes = row_sizes(table)
        start = 0
        while start < table.num_rows:
            group_room = self.row_group_bytes - self._pending_bytes
            file_room = self.shard_bytes - self._bytes_in_file - self._pending_bytes
            room = min(group_room, file_room)
            cumulative = np.cumsum(sizes[start:])
            take = int(np.searchsorted(cumulative, room, side="right"))
            take = max(take, 0 if self._pending_rows else 1)  # an oversized row still gets a row group of its own
            for cap, have in ((self.row_group_rows, self._pending_rows),
                              (self.rows_per_shard, self._rows_in_file + self._pending_rows)):
                if cap is not None:
                    take = min(take, cap - have)
            if take > 0:
                self._pending.append(table.slice(start, take))
                self._pending_rows += take
                self._pending_bytes += int(cumulative[take - 1])
                start += take
            if start < table.num_rows:  # the group (and maybe the file) is full
                self._flush_group()
                if (self._bytes_in_file >= self.shard_bytes - int(sizes[start])
                        or (self.rows_per_shard is not None and self._rows_in_file >= self.rows_per_shard)):
                    self._close_file()

    @property
    def pending_bytes(self) -> int:
        """Bytes held for the row group being filled (written when it is full, or by `flush_group`)."""
        return self._pending_bytes

    def flush_group(self) -> None:
        """Write the rows held so far as a row group now (a smaller one): for callers that bound the memory of
        several writers together."""
        self._flush_group()
        if self._bytes_in_file >= self.shard_bytes:
            self._close_file()

    def _flush_group(self) -> None:
        if not self._pending_rows:
            return
        if self._writer is None:
            self._writer = self._open()
        group = pa.concat_tables(self._pending)
        self._writer.write_table(group, row_group_size=group.num_rows)
        self._rows_in_file += group.num_rows
        self._bytes_in_file += self._pending_bytes
        self.rows += group.num_rows
        self.bytes += self._pending_bytes
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._index, self._rows_in_file, self._bytes_in_file = self._index + 1, 0, 0

    def close(self, keep_empty: bool = False) -> list[str]:
        """Finish the open file; with `keep_empty`, an empty writer still leaves one file holding the schema."""
        self._flush_group()
        if self._writer is None and keep_empty and not self.files:
            self._writer = self._open()
        self._close_file()
        return self.files
