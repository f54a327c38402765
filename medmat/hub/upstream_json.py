"""Upstream Med-MAT JSON: write built rows as the upstream QA files, and map upstream files onto built data.

Upstream released one JSON list per file: `Subset--NN-train.json` / `Subset--NN-test.json` per subset and
`ori--NN-train.json` per source row, each record with the fields `id` (int), `caption`, `image`, `Question`,
`Answer`, `Question-choice`, `Answer-choice` and `data-no` (the source row, as a string). Export writes exactly
those fields from MAT rows; import validates upstream records and finds the built sample each one points at,
by its source row (`data-no`) and image path.
"""

from __future__ import annotations

import glob
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..shards import open_streaming
from ..mat.qa_format import ANSWER_INSTRUCTION, format_question_choice, parse_question_choice  # noqa: F401

UPSTREAM_FIELDS = ("id", "caption", "image", "Question", "Answer", "Question-choice", "Answer-choice", "data-no")

# The MAT columns export and import read; media columns are never loaded.
_COLUMNS = ["id", "source_id", "source_row", "subset", "split", "source_labels", "original_path",
            "question", "answer", "options", "question_choice", "answer_choice"]
_FILE_NAME = re.compile(r"^(?P<kind>subset|ori)-{1,2}(?P<number>\d{1,3})-(?P<split>[A-Za-z]\w*)\.json$", re.I)

Kind = Literal["subset", "ori"]


class UpstreamError(Exception):
    """Bad input (file, config or record), with the file and the fix in the message."""


# -- the record format ------------------------------------------------------------------------------


class UpstreamRecord(BaseModel):
    """One upstream QA record; field names as upstream spells them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    id: int = Field(ge=0)
    caption: str
    image: str = Field(min_length=1)
    Question: str = Field(min_length=1)
    Answer: str = Field(min_length=1)
    Question_choice: str = Field(alias="Question-choice")
    Answer_choice: str = Field(alias="Answer-choice", pattern=r"^[A-D]$")
    data_no: str = Field(alias="data-no", pattern=r"^\d+$")

    @field_validator("data_no", mode="before")
    @classmethod
    def _row_as_text(cls, value):
        # Upstream writes the row as a string; tolerate a bare integer.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _choice_is_consistent(self) -> UpstreamRecord:
        question, options = parse_question_choice(self.Question_choice)
        if question != self.Question.strip():
            raise ValueError("Question-choice does not start with Question")
        if self.Answer_choice not in options:
            raise ValueError(f"Answer-choice {self.Answer_choice!r} is not one of the options {sorted(options)}")
        if options[self.Answer_choice].strip() != self.Answer.strip():
            raise ValueError(f"option {self.Answer_choice} is {options[self.Answer_choice]!r}, not the Answer "
                             f"{self.Answer!r}")
        return self

    def dump(self) -> dict:
        return self.model_dump(by_alias=True)


def record_from_row(row: dict, record_id: int) -> UpstreamRecord:
    """The upstream record for one MAT row; UpstreamError naming the sample when its QA is unusable."""
    missing = [c for c in ("question", "answer", "question_choice", "answer_choice") if not row.get(c)]
    if missing:
        raise UpstreamError(f"sample {row['id']}: no {', '.join(missing)}; export rows that went through QA "
                            "generation (a subset-, source- or cg- config of the hub folder `medmat build` writes)")
    if row.get("source_row") is None:
        raise UpstreamError(f"sample {row['id']}: no source_row, so `data-no` is unknown")
    try:
        return UpstreamRecord.model_validate({
            "id": record_id,
            "caption": ", ".join(row.get("source_labels") or []),
            "image": f"{row['source_id']}/{row['original_path']}",
            "Question": row["question"],
            "Answer": row["answer"],
            "Question-choice": row["question_choice"],
            "Answer-choice": row["answer_choice"],
            "data-no": str(row["source_row"]),
        })
    except ValidationError as exc:
        raise UpstreamError(f"sample {row['id']}: its QA does not fit the upstream format: "
                            f"{_first_error(exc)}") from None


# -- reading built data -----------------------------------------------------------------------------


def hub_configs(folder: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """{config name: [(split, [pattern, ...]), ...]} from a hub folder's README YAML header."""
    from .publish import PublishError, config_data_files, read_card_configs

    try:
        configs = read_card_configs(folder)
        out = {}
        for i, config in enumerate(configs):
            where = f"{folder / 'README.md'}: configs[{i}]"
            out[config["config_name"]] = [(split or "train", patterns)
                                          for split, patterns in config_data_files(config, where)]
        return out
    except PublishError as exc:
        raise UpstreamError(str(exc)) from None


def iter_rows(inputs: Iterable[Path], config: str | None = None) -> Iterator[dict]:
    """MAT rows (text columns only) from Parquet files/folders, or from one config of a hub folder.

    Rows from a hub config carry the split its `data_files` assign; plain Parquet rows keep their `split` column.
    """
    inputs = [Path(p) for p in inputs]
    if len(inputs) == 1 and (inputs[0] / "README.md").is_file():
        folder = inputs[0]
        configs = hub_configs(folder)
        if config is None:
            raise UpstreamError(f"{folder} is a hub folder: name a config with --config "
                                f"(available: {', '.join(sorted(configs))})")
        if config not in configs:
            raise UpstreamError(f"{folder}: no config {config!r}; available: {', '.join(sorted(configs))}")
        for split, patterns in configs[config]:
            files = sorted({folder / f for pattern in patterns for f in glob.glob(pattern, root_dir=folder, recursive=True)})
            if not files:
                raise UpstreamError(f"{folder}: config {config!r} split {split!r} matches no file ({patterns})")
            for path in files:
                for row in _read_parquet(path):
                    row["split"] = split
                    yield row
        return
    if config is not None:
        raise UpstreamError("--config applies to a hub folder (a folder with README.md); pass one such folder")
    for item in inputs:
        if item.is_dir():
            files = sorted(item.rglob("*.parquet"))
            if not files:
                raise UpstreamError(f"{item} holds no .parquet file")
        elif item.is_file():
            files = [item]
        else:
            raise UpstreamError(f"{item} does not exist")
        for path in files:
            yield from _read_parquet(path)


def _read_parquet(path: Path) -> Iterator[dict]:
    try:
        parquet = open_streaming(path)
    except Exception as exc:
        raise UpstreamError(f"{path} is not a readable Parquet file: {exc}") from None
    missing = [c for c in _COLUMNS if c not in parquet.schema_arrow.names]
    if missing:
        raise UpstreamError(f"{path} lacks the MAT column(s) {', '.join(missing)}; pass tables built by medmat")
    for batch in parquet.iter_batches(batch_size=1024, columns=_COLUMNS):
        yield from batch.to_pylist()


# -- export -----------------------------------------------------------------------------------------


def upstream_file_name(kind: Kind, row: dict) -> str:
    if kind == "subset":
        if not row.get("subset"):
            raise UpstreamError(f"sample {row['id']} belongs to no subset; export it with --as ori")
        return f"Subset--{row['subset']}-{row['split']}.json"
    if row.get("source_row") is None:
        raise UpstreamError(f"sample {row['id']}: no source_row, so its ori file number is unknown")
    # Upstream's ori files hold a whole source before it was split, always named -train.
    return f"ori--{int(row['source_row']):02d}-train.json"


def export_upstream(inputs: Iterable[Path], out: Path, *, config: str | None = None,
                    kind: Kind | Literal["auto"] = "auto") -> dict[str, int]:
    """Write upstream JSON files into `out`; returns {file name: records}. Same input -> same bytes."""
    if kind == "auto":
        kind = "ori" if config and config.startswith("source-") else "subset"
    groups: dict[str, list[dict]] = defaultdict(list)
    seen: set[str] = set()
    for row in iter_rows(inputs, config):
        if row["id"] in seen:  # a sample in two inputs (e.g. two configs' shards) is one record
            continue
        seen.add(row["id"])
        groups[upstream_file_name(kind, row)].append(row)
    if not groups:
        raise UpstreamError("no rows to export")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in sorted(groups):
        rows = sorted(groups[name], key=lambda r: r["id"])
        records = [record_from_row(row, i).dump() for i, row in enumerate(rows)]
        text = json.dumps(records, ensure_ascii=False, indent=2, sort_keys=True)
        (out / name).write_text(text + "\n", encoding="utf-8")
        counts[name] = len(records)
    return counts


# -- import -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamFile:
    path: Path
    kind: Kind
    number: str  # subset number (two digits) or source row
    split: str


def parse_file_name(path: Path) -> UpstreamFile:
    """Name -> kind/number/split; accepts `Subset--NN`/`Subset-NN` and `ori`/`Ori`, any case."""
    match = _FILE_NAME.match(Path(path).name)
    if not match:
        raise UpstreamError(f"{path}: not an upstream file name; expected Subset--NN-<split>.json or "
                            "ori--NN-train.json (Subset-NN / Ori--NN spellings are accepted too)")
    kind = match["kind"].lower()
    number = match["number"].zfill(2) if kind == "subset" else str(int(match["number"]))
    return UpstreamFile(Path(path), kind, number, match["split"].lower())


def read_upstream_file(path: Path, *, skip_invalid: bool = False) -> tuple[list[UpstreamRecord], list[str]]:
    """Validated records and the problems found (UpstreamError on any problem unless skip_invalid)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UpstreamError(f"{path}: cannot read JSON: {exc}") from None
    if not isinstance(data, list):
        raise UpstreamError(f"{path}: an upstream file is one JSON list of records, found {type(data).__name__}")
    records, problems = [], []
    for i, item in enumerate(data):
        try:
            records.append(UpstreamRecord.model_validate(item))
        except ValidationError as exc:
            problems.append(f"{path}: record {i}: {_first_error(exc)}")
    if problems and not skip_invalid:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise UpstreamError(f"{len(problems)} invalid record(s):\n  {shown}{more}\n"
                            "fix the file, or pass --skip-invalid to map the valid records and count the rest")
    return records, problems


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "record"
    return f"{where}: {err['msg']} ({len(exc.errors())} error(s))"


@dataclass
class FileReport:
    file: str
    kind: str
    number: str
    split: str
    records: int = 0
    matched: int = 0
    unmatched: int = 0
    invalid: int = 0


@dataclass
class ImportReport:
    files: list[FileReport] = field(default_factory=list)
    mapping: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def matched(self) -> int:
        return sum(f.matched for f in self.files)

    @property
    def unmatched(self) -> int:
        return sum(f.unmatched for f in self.files)

    @property
    def invalid(self) -> int:
        return sum(f.invalid for f in self.files)


class BuiltIndex:
    """Built samples by source row and original path, for matching upstream `data-no` + `image`."""

    def __init__(self, rows: Iterable[dict]):
        self.by_path: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.by_name: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.source_of: dict[str, str] = {}
        for row in rows:
            if row.get("source_row") is None or not row.get("original_path"):
                continue
            path = _normalise(row["original_path"])
            self.by_path[int(row["source_row"])][path].add(row["id"])
            self.by_name[int(row["source_row"])][PurePosixPath(path).name].add(row["id"])
            self.source_of[row["id"]] = row["source_id"]

    def match(self, data_no: str, image: str) -> tuple[str | None, str]:
        """(sample id, how): the longest suffix of the upstream path that is a built original_path, else a
        file name unique within the source; how is exact | suffix | name | ambiguous | none."""
        row = int(data_no)
        paths = self.by_path.get(row, {})
        parts = _normalise(image).split("/")
        for i in range(len(parts)):
            ids = paths.get("/".join(parts[i:]))
            if ids:
                if len(ids) > 1:
                    return None, "ambiguous"
                sample_id = next(iter(ids))
                exact = i == 0 or (i == 1 and parts[0] == self.source_of[sample_id])
                return sample_id, "exact" if exact else "suffix"
        ids = self.by_name.get(row, {}).get(parts[-1])
        if ids and len(ids) == 1:
            return next(iter(ids)), "name"
        return None, "ambiguous" if ids else "none"


def _normalise(path: str) -> str:
    text = path.replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return text.lstrip("/")


def import_upstream(files: Iterable[Path], built: Iterable[Path], *, config: str | None = None,
                    skip_invalid: bool = False) -> ImportReport:
    """Validate upstream files and map each record onto a built sample; counts per file."""
    paths = []
    for item in files:
        item = Path(item)
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() == ".json")
        else:
            paths.append(item)
    if not paths:
        raise UpstreamError("no upstream JSON file given")
    parsed = sorted((parse_file_name(p) for p in paths), key=lambda f: f.path.name)
    index = BuiltIndex(iter_rows(built, config))
    report = ImportReport()
    for upstream in parsed:
        records, problems = read_upstream_file(upstream.path, skip_invalid=skip_invalid)
        entry = FileReport(upstream.path.name, upstream.kind, upstream.number, upstream.split,
                           records=len(records) + len(problems), invalid=len(problems))
        report.problems += problems
        for record in sorted(records, key=lambda r: r.id):
            sample_id, how = index.match(record.data_no, record.image)
            entry.matched += sample_id is not None
            entry.unmatched += sample_id is None
            report.mapping.append({"file": upstream.path.name, "id": record.id, "data-no": record.data_no,
                                   "image": record.image, "medmat_id": sample_id, "match": how})
        report.files.append(entry)
    return report


def write_mapping(report: ImportReport, out: Path) -> None:
    """The mapping as JSON Lines (one upstream record per line), in file then id order."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for item in report.mapping:
            fh.write(json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n")
