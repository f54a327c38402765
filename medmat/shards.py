"""The one Parquet shard writer: every table medmat writes (source tables, hub configs) goes through it.

Rows stream in as Arrow tables or lists of rows; files roll over at `rows_per_shard`, row groups hold
`row_group_rows` rows so memory stays bounded while reading images and volumes back. Media bytes are already
compressed (JPEG, PNG, gzipped NIfTI): Parquet compression is off for them and zstd for everything else.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .mat.schema import MAT_FEATURES, MEDIA_COLUMNS

SHARD_ROWS = 2000  # rows per Parquet file
ROW_GROUP_ROWS = 64  # rows per row group


def column_compression(schema: pa.Schema) -> dict[str, str]:
    """zstd for every column, none for the bytes of media columns."""
    plain = {name: "zstd" for name in schema.names if name not in MEDIA_COLUMNS}
    return plain | {f"{m}.{leaf}": ("none" if leaf == "bytes" else "zstd")
                    for m in MEDIA_COLUMNS if m in schema.names for leaf in ("bytes", "path")}


class ShardWriter:
    """Rows go to `<folder>/<prefix>-NNNNN.parquet`; `files` lists what was written, `rows` how many."""

    def __init__(self, folder: Path, prefix: str, schema: pa.Schema = MAT_FEATURES.arrow_schema,
                 rows_per_shard: int = SHARD_ROWS, row_group_rows: int = ROW_GROUP_ROWS):
        self.folder, self.prefix, self.schema = Path(folder), prefix, schema
        self.rows_per_shard, self.row_group_rows = rows_per_shard, row_group_rows
        self.compression = column_compression(schema)
        self._writer: pq.ParquetWriter | None = None
        self._index = self._rows_in_file = 0
        self.rows = 0
        self.files: list[str] = []

    def _open(self) -> pq.ParquetWriter:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.prefix}-{self._index:05d}.parquet"
        self.files.append(path.name)
        return pq.ParquetWriter(path, self.schema, compression=self.compression)

    def write_rows(self, rows: list[dict]) -> None:
        if rows:
            self.write(pa.Table.from_pylist(rows, schema=self.schema))

    def write(self, table: pa.Table) -> None:
        start = 0
        while start < table.num_rows:
            if self._writer is None:
                self._writer = self._open()
            take = min(self.rows_per_shard - self._rows_in_file, table.num_rows - start)
            self._writer.write_table(table.slice(start, take), row_group_size=self.row_group_rows)
            start += take
            self._rows_in_file += take
            self.rows += take
            if self._rows_in_file >= self.rows_per_shard:
                self._close_file()

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._index, self._rows_in_file = self._index + 1, 0

    def close(self, keep_empty: bool = False) -> list[str]:
        """Finish the open file; with `keep_empty`, an empty writer still leaves one file holding the schema."""
        if self._writer is None and keep_empty and not self.files:
            self._writer = self._open()
        self._close_file()
        return self.files
