"""The MAT table as pyarrow writes it, without importing `datasets` (about a second of startup).

`medmat.mat.schema` defines the columns once, as `datasets.Features`; this module ships what `datasets` derives
from them for writing Parquet, frozen in `parquet_layout.json` beside it: the Arrow schema (with the `huggingface`
features metadata `load_dataset` reads back), `datasets`' per-column writer options (`get_parquet_column_options`:
media bytes uncompressed and PLAIN, the rest snappy with dictionaries), its content-defined chunking options and
its shard and row-group byte targets. A test derives all of it again from `datasets` and compares; after changing
the schema or upgrading `datasets`, regenerate the file with

    python -m medmat.mat.parquet_layout
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from pathlib import Path

import pyarrow as pa

LAYOUT_FILE = Path(__file__).with_name("parquet_layout.json")
MEDIA_COLUMNS = ("image", "volume", "mask")  # stored as {"bytes", "path"}, bytes already compressed


@lru_cache(maxsize=1)
def _layout() -> dict:
    return json.loads(LAYOUT_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def mat_arrow_schema() -> pa.Schema:
    """`MAT_FEATURES.arrow_schema`, metadata included."""
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(_layout()["arrow_schema"])))


def mat_parquet_options() -> dict:
    """`pq.ParquetWriter` keyword arguments for MAT tables, as `datasets` writes Parquet."""
    layout = _layout()
    return {**layout["column_options"], "write_page_index": True,
            "use_content_defined_chunking": layout["content_defined_chunking"]}


def content_defined_chunking() -> dict:
    return dict(_layout()["content_defined_chunking"])


def shard_bytes() -> int:
    """`datasets.config.MAX_SHARD_SIZE` in bytes: uncompressed data per Parquet file."""
    return int(_layout()["shard_bytes"])


def row_group_bytes() -> int:
    """`datasets.config.MAX_ROW_GROUP_SIZE` in bytes: uncompressed data per row group."""
    return int(_layout()["row_group_bytes"])


def derive_layout() -> dict:
    """The layout as `datasets` derives it now from `medmat.mat.schema.MAT_FEATURES` (imports `datasets`)."""
    import datasets
    from datasets import config
    from datasets.arrow_writer import get_parquet_column_options
    from datasets.utils.py_utils import convert_file_size_to_int

    from .schema import MAT_FEATURES

    schema = MAT_FEATURES.arrow_schema
    return {
        "datasets_version": datasets.__version__,
        "arrow_schema": base64.b64encode(schema.serialize().to_pybytes()).decode("ascii"),
        "column_options": get_parquet_column_options(MAT_FEATURES, schema),
        "content_defined_chunking": config.DEFAULT_CDC_OPTIONS,
        "shard_bytes": convert_file_size_to_int(config.MAX_SHARD_SIZE),
        "row_group_bytes": convert_file_size_to_int(config.MAX_ROW_GROUP_SIZE),
    }


def write_layout(path: Path = LAYOUT_FILE) -> Path:
    path.write_text(json.dumps(derive_layout(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_layout())
