"""The per-item work: raw item -> MAT row, as a pure function of the item and a static context.

Nothing here depends on the order of items or on which process runs it, so the same function runs in a
process pool here and could run unchanged in a distributed engine (a Ray Data `map_batches`, say).
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

from ..sources.base import RawItem, Skipped, item_labels
from ..readers import Decoded, ReaderOptions, ReadError, read_file
from ..readers.base import inside, regular_file
from ..readers.masks import read_mask
from ..registry.loader import Registry
from ..registry.models import Source
from ..mat.parquet_layout import mat_arrow_schema
from .hashes import perceptual_hash, pixel_sha256
from .masks import MaskError, decode_rle, extent_boxes


@dataclass(frozen=True)
class SourceContext:
    """Everything the per-item work needs about its source; small and picklable."""

    source_id: str
    source_row: int | None
    subset: str
    modality: str
    area: str
    task: str
    task_element: str
    task_type: str
    license: str
    root: str  # DIR/<source-id>/<layout.root>
    layout_root: str  # <layout.root>, to report paths relative to DIR/<source-id>/
    label_map: tuple[tuple[str, tuple[str, ...]], ...]
    excluded: tuple[tuple[str, str], ...]
    subset_labels: tuple[str, ...]
    reader: ReaderOptions = ReaderOptions()

    source_dir: str = ""  # DIR/<source-id>/: no file outside it is ever opened
    run: str = ""  # one per build of this source: folders checked for links are remembered for this run only

    @property
    def max_bytes(self) -> int:
        return self.reader.max_bytes

    @classmethod
    def of(cls, registry: Registry, source: Source, source_dir: Path, max_bytes: int | None = None):
        (subset,) = registry.subset_of(source.id)
        task = registry.vocabulary.task(source.task)
        root = source_dir / source.layout.root if source.layout.root else source_dir
        mapping = tuple((k, (v,) if isinstance(v, str) else tuple(v)) for k, v in sorted(source.labels.map.items()))
        return cls(source_id=source.id, source_row=source.upstream.row, subset=subset.id, modality=source.modality,
                   area=source.area, task=source.task, task_element=task.element, task_type=source.task_type.value,
                   license=source.license, root=str(root), layout_root=source.layout.root, label_map=mapping,
                   excluded=tuple(sorted(source.labels.exclude.items())), subset_labels=tuple(subset.labels),
                   reader=reader_options(source, max_bytes, source_dir), source_dir=str(source_dir),
                   run=uuid.uuid4().hex)


def reader_options(source: Source, max_bytes: int | None = None, source_dir: Path | None = None) -> ReaderOptions:
    """The source's `layout.reader` options, with a command-line byte limit taking precedence and the source
    folder as the one place readers may open files in."""
    options = ReaderOptions.model_validate(source.layout.reader)
    update = {"confine_to": str(source_dir) if source_dir is not None else None}
    if max_bytes:
        update["max_bytes"] = max_bytes
    return options.model_copy(update=update)


def _nifti_gz(volume: np.ndarray, affine: np.ndarray) -> bytes:
    from ..readers.volume import nifti_gz_bytes  # nibabel only for sources that have volumes

    return nifti_gz_bytes(volume, affine)


def harmonise(source_labels: tuple[str, ...], ctx: SourceContext) -> tuple[list[str], Skipped | None, str]:
    """Subset labels of an item, or why it is skipped. A sample with any excluded label is excluded whole:
    dropping only that label would make a multi-label answer wrong."""
    mapping, excluded = dict(ctx.label_map), dict(ctx.excluded)
    labels: set[str] = set()
    for label in source_labels:
        if label in excluded:
            return [], Skipped("", "excluded", f"label {label!r} is excluded: {excluded[label]}"), label
        if label not in mapping:
            return [], Skipped("", "quarantined", f"unknown label {label!r} (not in labels.vocabulary; "
                               "add it there and map it, or exclude it)"), label
        labels.update(mapping[label])
    order = {name: i for i, name in enumerate(ctx.subset_labels)}
    return sorted(labels, key=lambda x: order.get(x, len(order))), None, ""


def encode_png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def confined(root: Path, rel: str, ctx: SourceContext) -> Path:
    """`root/rel`, which must be a regular file whose every component stays inside the source folder: a relative
    path that climbs out, an absolute one, a link (anywhere on the way) or a device is refused before it is opened."""
    path = root / rel
    folder = ctx.source_dir or str(root)
    if os.path.isabs(rel) or ".." in Path(rel).parts:
        raise ReadError(path, "path outside the source folder", rel, "fix the label table or the adapter")
    # With no `..` and no link on the way, `path` is inside the folder; each folder on the way is checked once per
    # process (a build reads thousands of files from one folder).
    text = str(path)
    if not text.startswith(folder.rstrip(os.sep) + os.sep):  # spelled differently: resolve, then walk every step
        if not inside(path, folder):
            raise ReadError(path, "path outside the source folder", rel, "fix the label table or the adapter")
        probe = path
        while probe != Path(folder) and probe != probe.parent:
            if probe.is_symlink():
                raise ReadError(path, "symbolic link", f"{probe.name} is a link: never followed",
                                "copy the file into the source folder")
            probe = probe.parent
    elif os.path.islink(text):
        raise ReadError(path, "symbolic link", f"{path.name} is a link: never followed",
                        "copy the file into the source folder")
    else:
        link = _link_on_the_way(folder.rstrip(os.sep), os.path.dirname(text), ctx.run)
        if link is not None:
            raise ReadError(path, "symbolic link", f"{os.path.basename(link)} is a link: never followed",
                            "copy the file into the source folder")
    regular_file(path)
    return path


@lru_cache(maxsize=4096)
def _link_on_the_way(folder: str, directory: str, run: str) -> str | None:
    """The first symbolic link between `folder` (excluded) and `directory` (included), or None. `run` keys the
    cache: a later build (in a notebook, or a reused Ray worker) checks the folders again."""
    if directory == folder or not directory.startswith(folder + os.sep):
        return None
    if os.path.islink(directory):
        return directory
    return _link_on_the_way(folder, os.path.dirname(directory), run)


def _read(item: RawItem, root: Path, ctx: SourceContext) -> Decoded:
    if len(item.paths) > 1:
        from ..readers.dicom import read_dicom_series  # imported on first use: most sources hold no DICOM series

        return read_dicom_series([confined(root, p, ctx) for p in item.paths], ctx.max_bytes)
    return read_file(confined(root, item.paths[0], ctx), ctx.reader)


def _mask_from_file(path: Path, shape: tuple[int, int], invert: bool, ctx: SourceContext) -> np.ndarray:
    pixels = read_mask(path, ctx.reader)
    if pixels.shape != shape:
        raise MaskError(f"mask {path.name} is {pixels.shape[::-1]} but the image is {shape[::-1]}")
    # Half the brightest value: 0/1, 0/255 and JPEG-compressed masks (values near 0 and near 255) all binarise right.
    threshold = max(float(pixels.max()), 1.0) / 2.0
    return (pixels <= threshold) if invert else (pixels > threshold)


def _segmentation(item: RawItem, decoded: Decoded, root: Path, ctx: SourceContext):
    """(decoded, index mask or None, boxes) for an item with masks; the mask pixel value is 1 + the label's
    position in the subset's labels."""
    order = {name: i + 1 for i, name in enumerate(ctx.subset_labels)}
    mapping = dict(ctx.label_map)
    shape = decoded.pixels.shape[:2]
    layers: list[tuple[str, np.ndarray]] = []
    if item.mask_series:
        from ..readers.dicom import read_dicom_series
        from ..readers.volume import middle_slice_view

        volume = read_dicom_series([confined(root, p, ctx) for p in item.mask_series], ctx.max_bytes).volume
        if decoded.volume is None or volume.shape != decoded.volume.shape:
            raise MaskError("mask series and image series differ in shape")
        binary = volume > 0
        index = int(np.argmax(binary.sum(axis=(0, 1))))  # the view shows the slice with the most object
        pixels, view = middle_slice_view(decoded.volume, index=index,
                                         window=(decoded.view.window_center, decoded.view.window_width))
        decoded = Decoded(pixels=pixels, source_format=decoded.source_format, volume=decoded.volume,
                          affine=decoded.affine, spacing=decoded.spacing, view=view, meta=decoded.meta)
        layers.append((item.source_labels[0], np.flipud(binary[:, :, index].T)))
        shape = pixels.shape[:2]
    for label, rel in item.masks:
        layers.append((label, _mask_from_file(confined(root, rel, ctx), shape, item.mask_invert, ctx)))
    for label, rle in item.rles:
        layers.append((label, decode_rle(rle, shape, item.rle_order)))
    if not layers:
        return decoded, None, []
    mask = np.zeros(shape, dtype=np.uint8)
    boxes = []
    for label, binary in layers:
        for target in mapping[label]:  # known: harmonise quarantined the item otherwise
            mask[binary & (mask == 0)] = order.get(target, 255)
            boxes += extent_boxes(binary, target)
    return decoded, mask, boxes


def process_item(item: RawItem, ctx: SourceContext) -> dict | Skipped:
    """One raw item -> a MAT row (QA and split fields empty: those come with the subset build), or a Skipped.
    Whatever goes wrong with one item becomes its quarantine reason: never a traceback that stops the build."""
    try:
        return _process_item(item, ctx)
    except MemoryError:
        return Skipped(item.key, "quarantined", "decoder error (MemoryError: out of memory decoding this file; "
                       "lower --num-proc or --max-bytes)")
    except Exception as exc:  # a decoder's own bug or an input no check foresaw
        text = _relative_text(str(exc).splitlines()[0] if str(exc) else "", Path(ctx.root), ctx)
        return Skipped(item.key, "quarantined", f"decoder error ({type(exc).__name__}: {text[:300]})")


def _process_item(item: RawItem, ctx: SourceContext) -> dict | Skipped:
    where = item.key
    labels, skipped, _ = harmonise(item_labels(item), ctx)
    if skipped is not None:
        return Skipped(where, skipped.kind, skipped.reason)
    root = Path(ctx.root)
    try:
        decoded = _read(item, root, ctx)
        decoded, mask, boxes = _segmentation(item, decoded, root, ctx)
    except ReadError as err:
        detail = f" ({_relative_text(err.detail, root, ctx)})" if err.detail else ""
        shown = _relative_text(err.path, root, ctx)
        prefix = "" if shown == where else f"{shown}: "
        return Skipped(where, "quarantined", f"{prefix}{err.reason}{detail}")
    except MaskError as err:
        return Skipped(where, "quarantined", str(err))

    boxes += [{"label": t, "x_min": b.x_min, "y_min": b.y_min, "x_max": b.x_max, "y_max": b.y_max}
              for b in item.boxes for t in dict(ctx.label_map)[b.label]]
    image_bytes = decoded.passthrough if decoded.passthrough is not None else encode_png(decoded.pixels)
    primary = decoded.volume if decoded.volume is not None else decoded.pixels
    return {
        "id": f"{ctx.source_id}/{item.key}",
        "source_id": ctx.source_id,
        "source_row": ctx.source_row,
        "subset": ctx.subset,
        "modality": ctx.modality,
        "area": ctx.area,
        "task": ctx.task,
        "task_element": ctx.task_element,
        "task_type": ctx.task_type,
        "image": {"bytes": image_bytes, "path": None},
        "volume": None if decoded.volume is None else {"bytes": _nifti_gz(decoded.volume, decoded.affine),
                                                       "path": None},
        "view": None if decoded.view is None else decoded.view.as_row(),
        "labels": labels,
        "source_labels": list(item.source_labels),
        "boxes": sorted(boxes, key=lambda b: (b["label"], b["y_min"], b["x_min"], b["y_max"], b["x_max"])),
        "mask": None if mask is None else {"bytes": encode_png(mask), "path": None},
        "split": None,
        "original_split": item.original_split,
        "group_id": item.group_id,
        "pixel_sha256": pixel_sha256(primary),
        "phash": perceptual_hash(decoded.pixels),
        "width": decoded.width,
        "height": decoded.height,
        "depth": decoded.depth,
        "spacing": [float(s) for s in decoded.spacing],
        "original_path": "/".join(p for p in (ctx.layout_root.strip("/"), item.paths[0] if len(item.paths) == 1
                                                else item.key) if p),
        "license": ctx.license,
        "question": None,
        "answer": None,
        "options": [],
        "question_choice": None,
        "answer_choice": None,
    }


def _relative_text(text: str, root: Path, ctx: SourceContext) -> str:
    """`text` with the machine's folders left out: reports are the same wherever the data lives."""
    text = str(text)
    for folder in (str(root), ctx.source_dir):
        if folder:
            text = text.replace(folder.rstrip("/") + "/", "").replace(folder, ".")
    return text


def process_batch(batch: list[RawItem], ctx: SourceContext) -> list[dict | Skipped]:
    """A list in, a list out, same order."""
    return [process_item(item, ctx) for item in batch]


@dataclass(frozen=True)
class BatchResult:
    """A batch's rows as one Arrow table in the MAT schema (cheap to send between processes and nodes: its buffers
    travel as they are) and its skipped items, each with its place in the batch."""

    table: pa.Table
    skipped: tuple[tuple[int, Skipped], ...]

    @property
    def size(self) -> int:
        return self.table.num_rows + len(self.skipped)


def process_batch_table(batch: list[RawItem], ctx: SourceContext) -> BatchResult:
    """The unit of parallel work: `process_batch`, its rows converted to Arrow where they were made (in the
    worker), so the process that writes only appends tables."""
    rows, skipped = [], []
    for index, result in enumerate(process_batch(batch, ctx)):
        if isinstance(result, Skipped):
            skipped.append((index, result))
        else:
            rows.append(result)
    return BatchResult(pa.Table.from_pylist(rows, schema=mat_arrow_schema()), tuple(skipped))
