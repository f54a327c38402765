"""The MAT schema and the committed JSON descriptions."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pyarrow.parquet as pq
from datasets import Dataset, load_dataset
from PIL import Image as PILImage

from medmat.mat.schema import FIELD_DESCRIPTIONS, MAT_FEATURES
from medmat.reference_docs import schema_documents

DOCS = Path(__file__).resolve().parents[1] / "docs" / "schema"
REQUIRED = {"id", "source_id", "source_row", "subset", "modality", "area", "task", "task_type", "image", "volume",
            "labels", "source_labels", "boxes", "mask", "split", "original_split", "group_id", "pixel_sha256",
            "phash", "width", "height", "depth", "spacing", "original_path", "license", "question", "answer",
            "options", "question_choice", "answer_choice"}


def test_schema_has_every_required_field_described():
    assert REQUIRED <= set(MAT_FEATURES)
    assert set(FIELD_DESCRIPTIONS) == set(MAT_FEATURES)
    assert all(FIELD_DESCRIPTIONS.values())


def test_committed_schema_docs_are_current():
    for name, doc in schema_documents().items():
        committed = json.loads((DOCS / name).read_text())
        assert committed == json.loads(json.dumps(doc)), f"docs/schema/{name} is stale: run `medmat schema`"


def test_frozen_parquet_layout_is_what_datasets_derives_now():
    # The source stage writes Parquet without importing `datasets` (medmat.mat.parquet_layout); the frozen schema,
    # writer options and byte targets must mean exactly what `datasets` derives from MAT_FEATURES today. Compared
    # by meaning (types, the features `load_dataset` reads back), so a `datasets` release that only respells the
    # metadata JSON does not fail this; a change of type, option or target does.
    from datasets import Features

    from medmat.mat.parquet_layout import _layout, derive_layout, mat_arrow_schema

    fresh, frozen = derive_layout(), _layout()
    problem = "stale medmat/mat/parquet_layout.json: run `python -m medmat.mat.parquet_layout`"
    schema = mat_arrow_schema()
    assert schema.equals(MAT_FEATURES.arrow_schema, check_metadata=False), problem
    assert Features.from_arrow_schema(schema) == MAT_FEATURES, problem
    for key in ("column_options", "content_defined_chunking", "shard_bytes", "row_group_bytes"):
        assert fresh[key] == frozen[key], f"{key}: {problem}"


def test_the_source_stage_imports_no_datasets():
    import subprocess
    import sys

    code = ("import sys, medmat.prepare.source, medmat.validation, medmat.cli.build; "
            "print('datasets' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"], "the source stage must not import datasets or pandas at startup"


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _nifti_gz_bytes(volume: np.ndarray) -> bytes:
    img = nib.Nifti1Image(volume, affine=np.diag([0.7, 0.7, 2.5, 1.0]))
    return gzip.compress(img.to_bytes(), mtime=0)


def test_rows_round_trip_through_parquet(tmp_path):
    rng = np.random.default_rng(0)
    image16 = rng.integers(0, 4096, (8, 9), dtype=np.uint16)
    volume = rng.integers(0, 100, (8, 9, 4)).astype(np.int16)
    common = dict(source_row=2, subset="02", modality="CT", area="kidney", task="kidney-diseases",
                  task_element="Diseases", split="train", original_split=None, license="unknown",
                  question="q", answer="Cyst", options=["Cyst", "Stone"], question_choice="q\nA: Cyst\nB: Stone",
                  answer_choice="A", pixel_sha256="0" * 64, phash="0" * 16, original_path="a.png", group_id="p1",
                  pixels_withheld=None)
    rows = [
        dict(common, id="s/2d", source_id="s", task_type="single-label", image={"bytes": _png_bytes(image16), "path": None},
             volume=None, view=None, labels=["Cyst"], source_labels=["Cyst"], boxes=[], mask=None, width=9, height=8,
             depth=None, spacing=[0.7, 0.7]),
        dict(common, id="s/3d", source_id="s", task_type="segmentation",
             image={"bytes": _png_bytes(image16.astype(np.uint8)), "path": None},
             volume={"bytes": _nifti_gz_bytes(volume), "path": None},
             view={"axis": "axial", "index": 2, "window_center": 40.0, "window_width": 400.0},
             labels=["Cyst"], source_labels=["cyst"],
             boxes=[{"label": "Cyst", "x_min": 1, "y_min": 2, "x_max": 5, "y_max": 6}],
             mask={"bytes": _png_bytes(np.zeros((8, 9), np.uint8)), "path": None}, width=9, height=8, depth=4,
             spacing=[0.7, 0.7, 2.5]),
    ]
    ds = Dataset.from_list(rows, features=MAT_FEATURES)
    path = tmp_path / "part.parquet"
    ds.to_parquet(str(path))
    assert "huggingface" in json.dumps({k.decode(): 1 for k in pq.read_schema(path).metadata})

    back = load_dataset("parquet", data_files=str(path), split="train")
    assert back.features == MAT_FEATURES
    first, second = back[0], back[1]
    assert np.array_equal(np.asarray(first["image"]), image16)  # 16-bit survives
    assert first["volume"] is None and first["depth"] is None
    assert np.array_equal(np.asarray(second["volume"].dataobj), volume)
    assert second["boxes"][0]["x_max"] == 5.0
    assert second["view"]["axis"] == "axial"


def test_committed_schema_markdown_is_current():
    from medmat.reference_docs import features_markdown

    assert (DOCS.parent / "schema.md").read_text() == features_markdown(), "docs/schema.md is stale: run `medmat schema`"
