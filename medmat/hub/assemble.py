"""Built sources -> the Hub folder: subsets with QA and leak-free splits, per-source and CG configs, counts.

Layout (every config is Parquet in the MAT schema; no pixel is stored twice):
    data/subset-NN/{train,test}/<source-id>-NNNNN.parquet         rows only in config subset-NN (every sample)
    data/subset-NN/{train,test}/<source-id>-paper-NNNNN.parquet   rows also in subset-NN-paper (the paper's caps)
    config subset-NN: every file of data/subset-NN/; config subset-NN-paper: the `-paper` files
    config source-<id>: the subset-NN files of that source
    config cg-<id>: the paper-flavour train files of its training subsets + the target's paper test files
Two passes over each subset: the first reads only the columns the split needs, the second streams the rows in
small batches as Arrow (media bytes never become Python objects), so memory stays bounded by one batch plus one
hash per sample.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..engines import EngineOptions, map_tasks
from ..prepare.atomic import worker_init
from ..mat.qa import QASample, QASettings, make_qa
from ..registry.loader import Registry
from ..registry.models import Subset, TaskType
from ..mat.parquet_layout import MEDIA_COLUMNS
from ..shards import ROW_GROUP_BYTES, ShardWriter, open_streaming
from ..mat.splits import KEY_SCHEMA, TEST, TRAIN, paper_plan, plan_splits, split_statistics

READ_BATCH = 64  # rows read back per batch from a source table
_KEY_COLUMNS = ["id", "group_id", "original_split", "pixel_sha256", "phash", "labels"]
SPLIT_STATS_FILE = "split_stats.json"  # per-subset split statistics, in the hub folder


@dataclass
class ConfigInfo:
    name: str
    data_files: dict[str, list[str]]  # split -> glob patterns or files, relative to the hub folder
    num_examples: dict[str, int]
    description: str
    num_bytes: dict[str, int] = field(default_factory=dict)  # split -> uncompressed bytes (datasets' num_bytes)
    file_bytes: dict[str, int] = field(default_factory=dict)  # split -> bytes of its Parquet files on disk


@dataclass
class HubContents:
    configs: list[ConfigInfo] = field(default_factory=list)
    subsets: dict[str, dict] = field(default_factory=dict)  # id -> {"sources": [...], "labels": {split: Counter}}
    skipped_cg: dict[str, str] = field(default_factory=dict)  # cg id -> why no config was written
    hashes: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)  # (subset, flavour, split) -> sha256
    split_stats: dict[str, dict] = field(default_factory=dict)  # subset id -> medmat.mat.splits.split_statistics
    publishable: bool = False  # pixels of non-redistributable sources were left out
    # source id -> rows (full flavour) of each non-redistributable source: without pixels when `publishable`
    restricted: dict[str, int] = field(default_factory=dict)

    def merge(self, part: HubContents) -> None:
        """Add one subset's contents (subsets share no source, so nothing overlaps)."""
        self.configs += part.configs
        self.subsets.update(part.subsets)
        self.hashes.update(part.hashes)
        self.split_stats.update(part.split_stats)
        self.restricted.update(part.restricted)


def withheld_note(registry: Registry, source_id: str) -> str:
    """What a stripped row says in `pixels_withheld`: the license that forbids republishing, and the rebuild."""
    source = registry.sources[source_id]
    lic = registry.licenses.licenses[source.license]
    return (f"license {source.license} ({lic.name}) does not allow republishing the pixels; rebuild them locally: "
            f"medmat download {source_id} --data-dir DATA && medmat build {source_id} --data-dir DATA --out OUT")


def _source_files(out: Path, source_id: str) -> list[Path]:
    return sorted((out / "sources" / source_id).glob("part-*.parquet"))


def _sample_keys(source_id: str, files: list[Path]) -> pa.Table:
    """The columns the split needs (medmat.mat.splits.KEY_SCHEMA), read column-wise; no row object per sample."""
    parts = []
    for path in files:
        table = pq.read_table(path, columns=_KEY_COLUMNS)
        table = table.append_column("source", pa.array([source_id] * table.num_rows, pa.string()))
        parts.append(table.select(KEY_SCHEMA.names).cast(KEY_SCHEMA))
    return pa.concat_tables(parts) if parts else KEY_SCHEMA.empty_table()


def _qa_settings(registry: Registry, subset: Subset, seed: int) -> dict[str, QASettings]:
    """Per task type: the subset's instructions and labels, its label relations, and (when the manifest asks for
    `distractors: source`) the labels each source uses."""
    related = subset.label_relations.related(subset.labels)
    source_labels = None
    if subset.distractors == "source":
        source_labels = {}
        for sid in subset.sources:
            mapped = set()
            for target in registry.sources[sid].labels.map.values():
                mapped |= {target} if isinstance(target, str) else set(target)
            source_labels[sid] = [label for label in subset.labels if label in mapped]
    return {t.value: QASettings(t.value, subset.instructions, subset.labels, seed, related=related,
                                source_labels=source_labels) for t in TaskType}


_QA_COLUMNS = ("question", "answer", "options", "question_choice", "answer_choice")
_PAPER_SUFFIX = "-paper"  # file prefix `<source-id>-paper`: rows of both flavours


@dataclass
class _SourceWriters:
    """One source's writers in one subset: per split, rows only in the full flavour and rows of both flavours."""

    root: Path
    source_id: str
    writers: dict[tuple[str, bool], ShardWriter] = field(default_factory=dict)

    def write(self, split: str, in_paper: bool, table: pa.Table) -> None:
        key = (split, in_paper)
        if key not in self.writers:
            prefix = self.source_id + (_PAPER_SUFFIX if in_paper else "")
            self.writers[key] = ShardWriter(self.root / split, prefix)
        self.writers[key].write(table)
        # Up to four writers fill row groups at once: together they hold at most one row group's bytes (the
        # fullest is written early, as a smaller group), so memory does not grow with the number of splits.
        while sum(w.pending_bytes for w in self.writers.values()) > ROW_GROUP_BYTES:
            max(sorted(self.writers.items()), key=lambda kv: kv[1].pending_bytes)[1].flush_group()

    def close(self) -> dict[tuple[str, bool], tuple[list[str], int, int, int]]:
        """(split, in paper) -> (files relative to the hub folder, rows, uncompressed bytes, bytes on disk)."""
        done = {}
        for (split, in_paper), writer in sorted(self.writers.items()):
            writer.close()
            on_disk = sum((self.root / split / f).stat().st_size for f in writer.files)
            files = [f"data/{self.root.name}/{split}/{f}" for f in writer.files]
            done[(split, in_paper)] = (files, writer.rows, writer.bytes, on_disk)
        return done


_QA_INPUTS = ["id", "labels", "boxes", "width", "height", "task_type"]  # the only columns read into Python


def _with_qa(batch: pa.RecordBatch, small: list[dict], splits: list[str], settings: dict[str, QASettings],
             source_id: str, withheld: str | None) -> pa.Table:
    """The batch with its split, QA columns and (for a publishable hub of a restricted source) media left out;
    `small` is the batch's `_QA_INPUTS` as rows. The media bytes stay in Arrow buffers, never copied into Python
    objects."""
    qa = [make_qa(QASample(r["id"], r["labels"], r["boxes"] or [], r["width"] or 0, r["height"] or 0,
                           source=source_id), settings[r["task_type"]]).as_row() for r in small]
    table = pa.Table.from_batches([batch])
    schema = table.schema
    updates = {"split": splits, **{c: [q[c] for q in qa] for c in _QA_COLUMNS}}
    if withheld is not None:  # the license forbids republishing pixels: keep QA, metadata and hashes
        updates.update({m: [None] * table.num_rows for m in MEDIA_COLUMNS},
                       pixels_withheld=[withheld] * table.num_rows)
    for name, values in updates.items():
        index = schema.get_field_index(name)
        table = table.set_column(index, schema.field(index), pa.array(values, schema.field(index).type))
    return table


def build_subset(registry: Registry, subset: Subset, out: Path, hub: Path, seed: int,
                 publishable: bool) -> HubContents:
    """Both flavours of a subset in one pass, every row written once: the full flavour's files of each source
    and split are `<source-id>-NNNNN` (rows only in the full flavour) and `<source-id>-paper-NNNNN` (rows also
    in the paper flavour, whose config lists exactly those files). Writes only under hub/data/subset-NN/ (cleared
    first, so a retried task starts clean) and returns what it wrote: one independent task per subset."""
    contents = HubContents(publishable=publishable)
    name = f"subset-{subset.id}"
    shutil.rmtree(hub / "data" / name, ignore_errors=True)
    built = [s for s in subset.sources if _source_files(out, s)]
    if not built:
        return contents
    keys = pa.concat_tables([_sample_keys(s, _source_files(out, s)) for s in built])
    if not keys.num_rows:
        return contents
    plan = plan_splits(keys, seed)
    full = plan.as_dict()
    per_label = subset.task_type is not TaskType.single_label  # balance on each label, not on label combinations
    paper_rows = paper_plan(keys, plan.is_test, seed, per_label=per_label)
    paper = paper_rows.as_dict(plan.ids)
    if any(full[i] != split for i, split in paper.items()):  # the paper flavour takes rows from the full one's sides
        raise AssertionError(f"subset {subset.id}: the paper flavour moved a sample across train/test")
    contents.split_stats[subset.id] = split_statistics(plan, keys, paper_rows, per_label)
    sha = dict(zip(keys["id"].to_pylist(), keys["pixel_sha256"].to_pylist()))
    labels_count: dict[str, Counter] = {TRAIN: Counter(), TEST: Counter()}
    qa_settings = _qa_settings(registry, subset, seed)
    flavours: dict[str, dict] = {flavour: {"files": defaultdict(list), "rows": Counter(), "bytes": Counter(),
                                           "disk": Counter()} for flavour in ("", _PAPER_SUFFIX)}

    for source_id in built:
        source = registry.sources[source_id]
        withheld = withheld_note(registry, source_id) if publishable and not source.redistributable else None
        writers = _SourceWriters(hub / "data" / name, source_id)
        for path in _source_files(out, source_id):
            for batch in open_streaming(path).iter_batches(batch_size=READ_BATCH):
                small = batch.select(_QA_INPUTS).to_pylist()
                splits = [full.get(r["id"]) for r in small]
                table = _with_qa(batch, small, [s or TRAIN for s in splits], qa_settings, source_id, withheld)
                groups: dict[tuple[str, bool], list[int]] = defaultdict(list)
                for index, (row, split) in enumerate(zip(small, splits)):
                    if split is not None:
                        groups[(split, row["id"] in paper)].append(index)
                        labels_count[split].update(row["labels"] or ["(no label)"])
                for (split, in_paper), rows in sorted(groups.items()):
                    writers.write(split, in_paper, table.take(rows))
                if not source.redistributable:
                    contents.restricted[source_id] = contents.restricted.get(source_id, 0) + sum(
                        s is not None for s in splits)
        done = writers.close()
        for split in (TRAIN, TEST):
            parts = [done[(split, p)] for p in (False, True) if (split, p) in done]
            for flavour, chosen in (("", parts), (_PAPER_SUFFIX, [done[(split, True)]] if (split, True) in done
                                                  else [])):
                for files, rows, size, on_disk in chosen:
                    stats = flavours[flavour]
                    stats["files"][split] += files
                    stats["rows"][split] += rows
                    stats["bytes"][split] += size
                    stats["disk"][split] += on_disk
                chosen_ids = full if not flavour else paper
                contents.hashes.setdefault((subset.id, flavour or "full", split), set()).update(
                    sha[i] for i, s in chosen_ids.items() if s == split and i.startswith(source_id + "/"))
            if parts:
                # Exact file names, not a glob: `<id>-*` would also match a source whose id extends this one.
                _add_source_split(contents, source_id, split, [f for files, *_ in parts for f in files],
                                  sum(p[1] for p in parts), sum(p[2] for p in parts), sum(p[3] for p in parts))

    for flavour, stats in flavours.items():
        splits_built = [s for s in (TRAIN, TEST) if stats["rows"][s]]
        if not splits_built:
            continue
        data_files = {s: [f"data/{name}/{s}/*.parquet"] if not flavour else stats["files"][s] for s in splits_built}
        how = ("every sample; train/test from the sources' own splits (validation as test where a source has "
               "no test split) or 9:1, grouped by patient and by exact and near-duplicate pixels" if not flavour
               else "the paper's flavour: train capped at 3,000 label-balanced samples, test strictly "
               "label-balanced and as large as balance allows (at most 50 per label); its files are a part of "
               f"{name}'s, so no pixel is stored twice")
        contents.configs.append(ConfigInfo(name + flavour, data_files, {s: stats["rows"][s] for s in splits_built},
                                           how, {s: stats["bytes"][s] for s in splits_built},
                                           {s: stats["disk"][s] for s in splits_built}))
    contents.subsets[subset.id] = {"sources": built, "labels": labels_count}
    return contents


def _subset_task(subset_id: str, registry: Registry, out: Path, hub: Path, seed: int,
                 publishable: bool) -> HubContents:
    return build_subset(registry, registry.subsets[subset_id], out, hub, seed, publishable)


def _add_source_split(contents: HubContents, source_id: str, split: str, files: list[str], count: int,
                      num_bytes: int = 0, on_disk: int = 0) -> None:
    name = f"source-{source_id}"
    config = next((c for c in contents.configs if c.name == name), None)
    if config is None:
        config = ConfigInfo(name, {}, {}, f"the samples of source {source_id}, as split in its subset")
        contents.configs.append(config)
    config.data_files[split] = files
    config.num_examples[split] = count
    config.num_bytes[split] = num_bytes
    config.file_bytes[split] = on_disk


def add_cg_configs(registry: Registry, contents: HubContents) -> None:
    """A config per CG experiment whose subsets are all in the hub: the training subsets' shards (the flavour its
    caps name) and the target's paper test shards. Sample caps are applied by the trainer (`medmat cg run`), since a
    config can only point at whole shards. Experiments whose training data would contain a test image are refused."""
    from ..mat.cg import find_hash_leaks
    from ..registry.cg_models import load_cg

    cg, _ = load_cg(registry.root)
    have = {c.name: c for c in contents.configs}
    for exp_id, exp in sorted(cg.experiments.items()):
        flavour = "-paper" if exp.caps.split == "paper" else ""
        # Data-limited settings also train on some of the target's own train split (disjoint from its test split).
        train_ids = list(exp.train) + ([exp.target] if exp.target_train_samples else [])
        train_names = [f"subset-{s}{flavour}" for s in train_ids]
        target = f"subset-{exp.target}-paper"
        missing = [n for n in train_names + [target] if n not in have]
        if missing or TEST not in have[target].data_files:
            contents.skipped_cg[exp_id] = f"not built here: {', '.join(missing) or target + ' has no test split'}"
            continue
        leaks = find_hash_leaks({s: contents.hashes.get((s, flavour or "full", TRAIN), set()) for s in train_ids},
                                contents.hashes.get((exp.target, "-paper", TEST), set()))
        if leaks:
            count = sum(len(v) for v in leaks.values())
            contents.skipped_cg[exp_id] = f"{count} test image(s) of subset {exp.target} are in its training data"
            continue
        train_files = [f for n in train_names for f in have[n].data_files.get(TRAIN, [])]
        if not train_files:
            contents.skipped_cg[exp_id] = "no training data (a target-only setting: train on the target itself)"
            continue
        contents.configs.append(ConfigInfo(
            f"cg-{exp_id}", {TRAIN: train_files, TEST: have[target].data_files[TEST]},
            {TRAIN: sum(have[n].num_examples.get(TRAIN, 0) for n in train_names),
             TEST: have[target].num_examples[TEST]},
            f"CG {exp.kind.value} ({exp.direction.value}): train on subsets {', '.join(exp.train)}, test on "
            f"{exp.target}; caps applied at training time",
            {TRAIN: sum(have[n].num_bytes.get(TRAIN, 0) for n in train_names), TEST: have[target].num_bytes[TEST]},
            {TRAIN: sum(have[n].file_bytes.get(TRAIN, 0) for n in train_names), TEST: have[target].file_bytes[TEST]}))


def build_hub_data(registry: Registry, out: Path, subset_ids: list[str], seed: int = 42,
                   publishable: bool = False, engine: EngineOptions | None = None) -> HubContents:
    """Local builds (the default) keep every pixel the user downloaded; `publishable` leaves out the pixels of
    every source whose license forbids republishing them and says so in each such row (`pixels_withheld`).
    Each subset is one task of `engine` (worker processes here, or Ray tasks); their contents are merged in
    subset order, so the folder is the same whatever ran them."""
    hub = out / "hub"
    if (hub / "data").exists():
        shutil.rmtree(hub / "data")
    contents = HubContents(publishable=publishable)
    work = partial(_subset_task, registry=registry, out=out, hub=hub, seed=seed, publishable=publishable)
    for part in map_tasks(work, sorted(subset_ids), engine or EngineOptions(), initializer=worker_init):
        contents.merge(part)
    add_cg_configs(registry, contents)
    write_split_stats(contents, hub)
    order = {"subset": 0, "source": 1, "cg-": 2}
    contents.configs.sort(key=lambda c: (next(v for k, v in order.items() if c.name.startswith(k)), c.name))
    return contents


def write_split_stats(contents: HubContents, hub: Path) -> Path:
    """hub/split_stats.json: every built subset's split statistics (sorted keys, so the file is deterministic)."""
    hub.mkdir(parents=True, exist_ok=True)
    path = hub / SPLIT_STATS_FILE
    path.write_text(json.dumps(contents.split_stats, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path
