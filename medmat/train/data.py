"""Load MAT datasets for training and evaluation, check the columns a mode needs, and mix datasets.

Takes any `datasets.Dataset`, or a `DataSpec` naming a hub folder / Hub repo config, Parquet files or a
`save_to_disk` folder. Rows keep only the columns training and scoring read; nothing is silently dropped: rows
without the fields a mode needs are an error that names the dataset and the count.
"""

from __future__ import annotations

import glob
from pathlib import Path

from .config import DataSpec, Mode

# Columns carried into training / scoring (others, such as volumes and masks, stay on disk).
KEEP = ("id", "image", "subset", "labels", "question", "answer", "options", "question_choice", "answer_choice",
        "width", "height")
FIELDS = {"choice": ("question_choice", "answer_choice"), "open": ("question", "answer")}


class DataError(ValueError):
    """A dataset that cannot be used as asked; the message names it and the fix."""


def load_split(spec: DataSpec, seed: int = 42):
    """The rows `spec` names, as a `datasets.Dataset` (shuffled and capped when `max_samples` is set)."""
    import datasets

    path = Path(spec.path)
    try:
        if path.is_dir() and (path / "dataset_info.json").exists() and (path / "state.json").exists():
            ds = datasets.load_from_disk(str(path))
        elif spec.path.endswith(".parquet") or glob.has_magic(spec.path) or (
                path.is_dir() and not (path / "README.md").exists() and any(path.rglob("*.parquet"))):
            files = sorted(glob.glob(spec.path)) if glob.has_magic(spec.path) else (
                sorted(str(p) for p in path.rglob("*.parquet")) if path.is_dir() else [spec.path])
            if not files:
                raise DataError(f"{spec.path}: no Parquet file matches")
            ds = datasets.load_dataset("parquet", data_files={spec.split: files}, split=spec.split)
        else:
            ds = datasets.load_dataset(spec.path, spec.config, split=spec.split)
    except DataError:
        raise
    except (ValueError, FileNotFoundError) as exc:
        raise DataError(f"cannot load {spec.label()}: {exc}\nCheck the path, the config name (`--config`) and the "
                        "split (`--split`); a hub folder lists its configs in README.md") from exc
    if isinstance(ds, datasets.DatasetDict):
        if spec.split not in ds:
            raise DataError(f"{spec.label()}: no split {spec.split!r}; available: {', '.join(ds)}")
        ds = ds[spec.split]
    if spec.max_samples is not None and len(ds) > spec.max_samples:
        ds = ds.shuffle(seed=seed).select(range(spec.max_samples))
    return ds


def prepare(ds, mode: Mode, name: str = "dataset"):
    """Keep the columns training reads, fill the optional ones, and refuse rows missing what `mode` needs."""
    from datasets import Value

    if "image" not in ds.column_names:
        raise DataError(f"{name}: no `image` column; columns are {', '.join(ds.column_names)}")
    need = FIELDS[mode]
    missing = [c for c in need if c not in ds.column_names]
    if missing:
        raise DataError(f"{name}: no {', '.join(missing)} column for --mode {mode}; "
                        f"{'use --mode open' if mode == 'choice' else 'use --mode choice'} or add the QA fields")
    table = ds.select_columns(list(need)).data
    empty = sum(table.column(c).null_count for c in need)
    if empty:
        raise DataError(f"{name}: {empty} value(s) of {', '.join(need)} are null; generate the QA fields for every "
                        "row (or filter those rows out explicitly) before training")
    ds = ds.select_columns([c for c in KEEP if c in ds.column_names])
    n = len(ds)
    defaults = {"id": [f"{name}/{i}" for i in range(n)], "subset": [name] * n, "labels": [[] for _ in range(n)],
                "question": [None] * n, "answer": [None] * n, "options": [[] for _ in range(n)],
                "question_choice": [None] * n, "answer_choice": [None] * n, "width": [None] * n,
                "height": [None] * n}
    for column, values in defaults.items():
        if column not in ds.column_names:
            feature = {"labels": None, "options": None, "width": Value("int32"), "height": Value("int32")}.get(
                column, Value("string"))
            ds = ds.add_column(column, values, feature=feature)
    return ds.select_columns(list(KEEP))


def mix(primary, extras: list, seed: int = 42):
    """`primary` with every dataset in `extras` appended, then shuffled with `seed` (same seed, same order)."""
    from datasets import concatenate_datasets

    if not extras:
        return primary
    parts = [primary] + [extra.cast(primary.features) for extra in extras]
    return concatenate_datasets(parts).shuffle(seed=seed).flatten_indices()


def add_lengths(ds, processor, mode: Mode, batch_size: int = 512):
    """A `length` column: text tokens plus image tokens per row, for length-grouped batching.

    Image token counts come from the `width`/`height` the MAT schema stores when present, so images are not
    decoded; they are exact for the processors that report them (`_get_num_multimodal_tokens`).
    """
    question, answer = FIELDS[mode]
    tokenizer = getattr(processor, "tokenizer", processor)
    sizes = _image_sizes(ds)
    count = getattr(processor, "_get_num_multimodal_tokens", None)
    lengths: list[int] = []
    for start in range(0, len(ds), batch_size):
        rows = ds[start:start + batch_size]
        texts = [f"{q} {a}" for q, a in zip(rows[question], rows[answer])]
        text_lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        image_tokens = [0] * len(texts)
        if count is not None:
            try:
                image_tokens = list(count(image_sizes=sizes[start:start + batch_size]).num_image_tokens)
            except (TypeError, ValueError, AttributeError, KeyError):
                image_tokens = [0] * len(texts)
        lengths.extend(t + i for t, i in zip(text_lengths, image_tokens))
    if "length" in ds.column_names:
        ds = ds.remove_columns("length")
    return ds.add_column("length", lengths)


def _image_sizes(ds) -> list[tuple[int, int]]:
    known = {"height", "width"} <= set(ds.column_names)
    pairs = list(zip(ds["height"], ds["width"])) if known else [(None, None)] * len(ds)
    missing = [i for i, (h, w) in enumerate(pairs) if not (h and w)]
    for i in missing:  # decode only the rows whose size the table does not record
        image = ds[i]["image"]
        pairs[i] = (image.height, image.width)
    return pairs
