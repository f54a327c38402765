"""Built sources -> the Hub folder: subsets with QA and leak-free splits, per-source and CG configs, counts.

Layout (every config is Parquet in the MAT schema; no pixel is stored twice except in the capped paper flavour):
    data/subset-NN/{train,test}/<source-id>-NNNNN.parquet         config subset-NN (every sample)
    data/subset-NN-paper/{train,test}/<source-id>-NNNNN.parquet   config subset-NN-paper (the paper's caps)
    config source-<id>: the subset-NN shards of that source
    config cg-<id>: the paper-flavour train shards of its training subsets + the target's paper test shards
Two passes over each subset: the first reads only the columns the split needs, the second streams the rows in
small batches, so memory stays bounded by one batch plus one hash per sample.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..mat.qa import QASample, QASettings, make_qa
from ..registry.loader import Registry
from ..registry.models import Subset, TaskType
from ..mat.schema import MEDIA_COLUMNS
from ..shards import ShardWriter
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


def build_subset(registry: Registry, subset: Subset, out: Path, hub: Path, seed: int, publishable: bool,
                 contents: HubContents) -> None:
    built = [s for s in subset.sources if _source_files(out, s)]
    if not built:
        return
    keys = pa.concat_tables([_sample_keys(s, _source_files(out, s)) for s in built])
    if not keys.num_rows:
        return
    plan = plan_splits(keys, seed)
    full = plan.as_dict()
    per_label = subset.task_type is not TaskType.single_label  # balance on each label, not on label combinations
    paper_rows = paper_plan(keys, plan.is_test, seed, per_label=per_label)
    paper = paper_rows.as_dict(plan.ids)
    contents.split_stats[subset.id] = split_statistics(plan, keys, paper_rows, per_label)
    sha = dict(zip(keys["id"].to_pylist(), keys["pixel_sha256"].to_pylist()))
    labels_count: dict[str, Counter] = {TRAIN: Counter(), TEST: Counter()}
    qa_settings = _qa_settings(registry, subset, seed)

    for flavour, chosen in (("", full), ("-paper", paper)):
        name = f"subset-{subset.id}{flavour}"
        root = hub / "data" / name
        counts, sizes, disk = Counter(), Counter(), Counter()
        for source_id in built:
            source = registry.sources[source_id]
            strip = publishable and not source.redistributable
            note = withheld_note(registry, source_id) if strip else None
            writers = {split: ShardWriter(root / split, source_id) for split in (TRAIN, TEST)}
            for path in _source_files(out, source_id):
                for batch in pq.ParquetFile(path).iter_batches(batch_size=READ_BATCH):
                    rows_by_split = defaultdict(list)
                    for row in batch.to_pylist():
                        split = chosen.get(row["id"])
                        if split is None:
                            continue
                        row["split"] = split
                        sample = QASample(row["id"], row["labels"], row["boxes"] or [], row["width"] or 0,
                                          row["height"] or 0, source=source_id)
                        row.update(make_qa(sample, qa_settings[row["task_type"]]).as_row())
                        if strip:  # the license forbids republishing pixels: keep QA, metadata and hashes
                            row.update({m: None for m in MEDIA_COLUMNS}, pixels_withheld=note)
                        if not (flavour or source.redistributable):
                            contents.restricted[source_id] = contents.restricted.get(source_id, 0) + 1
                        rows_by_split[split].append(row)
                        if not flavour:
                            labels_count[split].update(row["labels"] or ["(no label)"])
                    for split, rows in rows_by_split.items():
                        writers[split].write_rows(rows)
            for split, writer in writers.items():
                writer.close()
                counts[split] += writer.rows
                sizes[split] += writer.bytes
                on_disk = sum((root / split / f).stat().st_size for f in writer.files)
                disk[split] += on_disk
                contents.hashes.setdefault((subset.id, flavour or "full", split), set()).update(
                    sha[i] for i, s in chosen.items() if s == split and i.startswith(source_id + "/"))
                if not flavour and writer.rows:
                    # Exact file names, not a glob: `<id>-*` would also match a source whose id extends this one.
                    _add_source_split(contents, source_id, split,
                                      [f"data/{name}/{split}/{f}" for f in writer.files], writer.rows,
                                      writer.bytes, on_disk)
        data_files = {split: [f"data/{name}/{split}/*.parquet"] for split in (TRAIN, TEST) if counts[split]}
        if data_files:
            how = ("every sample; train/test from the sources' own splits (validation as test where a source has "
                   "no test split) or 9:1, grouped by patient and by exact and near-duplicate pixels" if not flavour
                   else "the paper's flavour: train capped at 3,000 label-balanced samples, test strictly "
                   "label-balanced and as large as balance allows (at most 50 per label)")
            contents.configs.append(ConfigInfo(name, data_files, {s: counts[s] for s in data_files}, how,
                                               {s: sizes[s] for s in data_files}, {s: disk[s] for s in data_files}))
    contents.subsets[subset.id] = {"sources": built, "labels": labels_count}


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
                   publishable: bool = False) -> HubContents:
    """Local builds (the default) keep every pixel the user downloaded; `publishable` leaves out the pixels of
    every source whose license forbids republishing them and says so in each such row (`pixels_withheld`)."""
    hub = out / "hub"
    if (hub / "data").exists():
        shutil.rmtree(hub / "data")
    contents = HubContents(publishable=publishable)
    for sid in sorted(subset_ids):
        build_subset(registry, registry.subsets[sid], out, hub, seed, publishable, contents)
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
