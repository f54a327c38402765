"""The unified MAT schema: one row per image (or volume), defined once as `datasets.Features`.

Every built source, subset and CG split uses exactly these features, so `load_dataset` returns the same
columns whatever the config. Each field carries a one-line description used for the docs and the card.
"""

from __future__ import annotations

from datasets import Features, Image, List, Nifti, Value

from .parquet_layout import MEDIA_COLUMNS as _MEDIA_COLUMNS

_BOX = {
    "label": Value("string"),
    "x_min": Value("float32"),
    "y_min": Value("float32"),
    "x_max": Value("float32"),
    "y_max": Value("float32"),
}

_VIEW = {
    "axis": Value("string"),
    "index": Value("int32"),
    "window_center": Value("float32"),
    "window_width": Value("float32"),
}

# (name, feature, description); the order is the column order of every table.
FIELDS: list[tuple[str, object, str]] = [
    ("id", Value("string"), "stable sample id: '<source-id>/<key inside the source>'"),
    ("source_id", Value("string"), "manifest id of the source (manifests/sources/<id>.yaml)"),
    ("source_row", Value("int16"), "upstream Med-MAT source number (its `data-no`)"),
    ("subset", Value("string"), "two-digit Med-MAT subset number"),
    ("modality", Value("string"), "modality key from the vocabulary (CT, X-ray, FP, ...)"),
    ("area", Value("string"), "anatomical area key from the vocabulary (lung, fundus, ...)"),
    ("task", Value("string"), "fine task key of the subset"),
    ("task_element", Value("string"), "coarse task element: State, Cancer, Diseases, Level, Recognition, Detection, Segmentation"),
    ("task_type", Value("string"), "single-label, multi-label, detection or segmentation"),
    ("image", Image(), "the 2D image (for a 3D sample, its 2D view as recorded in `view`)"),
    ("volume", Nifti(), "gzipped NIfTI-1 volume for 3D sources, canonical (RAS) orientation; null for 2D"),
    ("view", _VIEW, "how the 2D view of a 3D sample was taken: axis, slice index, window; null for 2D"),
    ("labels", List(Value("string")), "harmonised subset labels (empty list = no finding)"),
    ("source_labels", List(Value("string")), "labels as the source spells them (Med-MAT's `caption`)"),
    ("boxes", List(_BOX), "labelled boxes in pixel coordinates of `image` (detection/segmentation)"),
    ("mask", Image(), "label mask aligned with `image` (segmentation); null otherwise"),
    ("split", Value("string"), "split of this build: train or test"),
    ("original_split", Value("string"), "split as the source publishes it, if any"),
    ("group_id", Value("string"), "patient/study/lesion id; samples sharing it never straddle train and test"),
    ("pixel_sha256", Value("string"), "SHA-256 of the decoded pixel array (dtype, shape and bytes)"),
    ("phash", Value("string"), "64-bit perceptual hash (hex) of the 2D image, for near-duplicate detection"),
    ("width", Value("int32"), "image width in pixels"),
    ("height", Value("int32"), "image height in pixels"),
    ("depth", Value("int32"), "number of slices of the volume; null for 2D"),
    ("spacing", List(Value("float32")), "pixel/voxel spacing in mm (x, y[, z]) where the source records it"),
    ("original_path", Value("string"), "path of the file inside the source folder"),
    ("license", Value("string"), "license key of the source (manifests/licenses.yaml)"),
    ("question", Value("string"), "the instruction drawn for this sample (open form)"),
    ("answer", Value("string"), "open-form answer: the label, comma-joined labels, 'Normal', or boxes as text"),
    ("options", List(Value("string")), "up to four answer options, the answer among them"),
    ("question_choice", Value("string"), "question + lettered options + the upstream answer instruction"),
    ("answer_choice", Value("string"), "the letter of the correct option"),
    ("pixels_withheld", Value("string"), "null when `image`/`volume`/`mask` hold the source's pixels; in a publishable "
     "hub, why they were left out (the source's license) and the commands that rebuild them locally"),
]

MAT_FEATURES = Features({name: feature for name, feature, _ in FIELDS})
COLUMNS = tuple(name for name, _, _ in FIELDS)
MEDIA_COLUMNS = _MEDIA_COLUMNS  # stored as {"bytes", "path"}, bytes already compressed


class RowError(ValueError):
    """A row whose keys are not exactly the schema's columns."""


def make_row(**values) -> dict:
    """A row in schema order with exactly the schema's columns: a missing or mistyped key is an error, never a
    silent null."""
    missing = [c for c in COLUMNS if c not in values]
    extra = sorted(set(values) - set(COLUMNS))
    if missing or extra:
        raise RowError(f"row keys differ from the MAT schema: missing {missing}, unknown {extra}")
    return {c: values[c] for c in COLUMNS}
FIELD_DESCRIPTIONS = {name: text for name, _, text in FIELDS}
