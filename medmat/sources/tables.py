"""Reading label tables (CSV, TSV, whitespace text, XLSX, JSON records) as strings, exactly as written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

TableFormat = Literal["csv", "tsv", "txt", "xlsx", "json"]


class TableReading(BaseModel):
    """How to read a label file (the file itself is named by `TableSpec.table`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table_format: TableFormat | None = Field(default=None, description="default: from the file suffix")
    separator: str | None = Field(default=None, description="column separator for csv/txt; regex allowed (e.g. '\\\\s+')")
    header: int | None = Field(default=0, description="header row index, or null when the file has none")
    column_names: list[str] | None = Field(default=None, description="names for header-less files")
    sheet: str | int = 0
    encoding: str = "utf-8"
    clean_headers: bool = Field(default=False, description="strip spaces and stray bytes from column names")
    column_renames: dict[str, str] = Field(default={}, description="old column name -> new (fixes header typos)")


class TableSpec(TableReading):
    table: str = Field(description="label file, relative to the layout root")


class TableError(Exception):
    pass


def read_table(root: Path, spec: TableSpec) -> pd.DataFrame:
    """The table with every cell a string exactly as written (no NaN, no number parsing)."""
    path = root / spec.table
    if not path.is_file():
        raise TableError(f"label file {spec.table} is missing under {root}")
    fmt = spec.table_format or {".tsv": "tsv", ".txt": "txt", ".xlsx": "xlsx", ".xls": "xlsx", ".json": "json"}.get(
        path.suffix.lower(), "csv")
    names = spec.column_names
    header = None if names else spec.header
    try:
        if fmt == "xlsx":
            frame = pd.read_excel(path, sheet_name=spec.sheet, header=header, names=names, dtype=str)
        elif fmt == "json":
            frame = pd.DataFrame(json.loads(path.read_text(encoding=spec.encoding))).astype(str)
        else:
            sep = spec.separator or {"tsv": "\t", "txt": r"\s+"}.get(fmt, ",")
            frame = pd.read_csv(path, sep=sep, header=header, names=names, dtype=str, keep_default_na=False,
                                encoding=spec.encoding, engine="python" if len(sep) > 1 else "c")
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise TableError(f"label file {spec.table} cannot be parsed as {fmt}: {exc}") from exc
    frame = frame.fillna("")
    if spec.clean_headers:
        frame.columns = ["".join(ch for ch in str(c) if ch.isprintable()).strip() for c in frame.columns]
    return frame.rename(columns=spec.column_renames)


def require_columns(frame: pd.DataFrame, columns: list[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TableError(f"label file {table} lacks columns {missing}; it has {list(frame.columns)}")
