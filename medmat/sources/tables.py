"""Reading label tables (CSV, TSV, whitespace text, XLSX, JSON records) as strings, exactly as written."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:
    import pandas as pd

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

    @field_validator("table")
    @classmethod
    def _inside(cls, v: str) -> str:
        if v.startswith(("/", "~", "\\")) or ".." in v.replace("\\", "/").split("/"):
            raise ValueError(f"{v!r} must be a relative path inside the source folder (no leading /, ~ or ..)")
        return v


class TableError(Exception):
    pass


def _check_file(root: Path, table: str) -> Path:
    """The label file, which must be a regular file inside the source folder (never a link, FIFO or device)."""
    if Path(table).is_absolute() or ".." in Path(table).parts:
        raise TableError(f"label file {table} is outside the source folder; name a file inside it")
    path = root / table
    probe = path
    while probe != root and probe != probe.parent:
        if probe.is_symlink():
            raise TableError(f"label file {table} is (or lies under) a symbolic link ({probe.name}); links are never "
                             "followed: copy the file into the source folder")
        probe = probe.parent
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise TableError(f"label file {table} is missing under {root.name or root}/; run `medmat doctor` to see "
                         "what the source needs") from None
    except OSError as exc:
        raise TableError(f"label file {table} cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise TableError(f"label file {table} is not a regular file (a folder, FIFO or device): never opened")
    if os.path.getsize(path) == 0:
        raise TableError(f"label file {table} is empty (0 bytes); re-download the source")
    return path


def read_table(root: Path, spec: TableSpec) -> pd.DataFrame:
    """The table with every cell a string exactly as written (no NaN, no number parsing)."""
    import pandas as pd  # only sources with label tables pay for pandas

    path = _check_file(Path(root), spec.table)
    fmt = spec.table_format or {".tsv": "tsv", ".txt": "txt", ".xlsx": "xlsx", ".xls": "xlsx", ".json": "json"}.get(
        path.suffix.lower(), "csv")
    names = spec.column_names
    header = None if names else spec.header
    if fmt != "xlsx":
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
        if b"\0" in head and spec.encoding.lower().replace("-", "") in ("utf8", "latin1", "ascii", "cp1252"):
            nul = head.index(b"\0")
            raise TableError(f"label file {spec.table} holds NUL bytes at byte {nul:,}: it is not a "
                             f"{fmt} text file (binary, or UTF-16?); check the file or set layout.params.encoding")
    try:
        if fmt == "xlsx":
            frame = pd.read_excel(path, sheet_name=spec.sheet, header=header, names=names, dtype=str)
        elif fmt == "json":
            frame = pd.DataFrame(json.loads(path.read_text(encoding=spec.encoding))).astype(str)
        else:
            sep = spec.separator or {"tsv": "\t", "txt": r"\s+"}.get(fmt, ",")
            frame = pd.read_csv(path, sep=sep, header=header, names=names, dtype=str, keep_default_na=False,
                                encoding=spec.encoding, engine="python" if len(sep) > 1 else "c")
    except UnicodeDecodeError as exc:
        raise TableError(f"label file {spec.table} is not {spec.encoding} text (byte 0x{exc.object[exc.start]:02x} at "
                         f"position {exc.start:,}; UTF-8 expected unless layout.params.encoding says otherwise, e.g. "
                         "latin-1)") from None
    except pd.errors.EmptyDataError:
        raise TableError(f"label file {spec.table} is empty (no header, no rows); re-download the source") from None
    except Exception as exc:  # pandas, openpyxl and json raise many types for a malformed file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TableError(f"label file {spec.table} cannot be parsed as {fmt}: {first}") from None
    if frame.columns.size == 0:
        raise TableError(f"label file {spec.table} has no columns; re-download the source")
    frame = frame.fillna("")
    if spec.clean_headers:
        frame.columns = ["".join(ch for ch in str(c) if ch.isprintable()).strip() for c in frame.columns]
    return frame.rename(columns=spec.column_renames)


def require_columns(frame: pd.DataFrame, columns: list[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise TableError(f"label file {table} lacks columns {missing}; it has {list(frame.columns)}")
