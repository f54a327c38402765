"""Typed models of the registry: vocabulary, licenses, sources and subsets.

These models check each manifest on its own (types, enums, formats). Checks that need more than one file
(a source's subset exists, labels land in the subset's vocabulary, ...) live in `medmat.registry.checks`.
"""

from __future__ import annotations

import re
from enum import Enum
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from .label_relations import LabelRelations

SLUG = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
SourceId = Annotated[str, StringConstraints(pattern=SLUG, min_length=2, max_length=64)]
SubsetId = Annotated[str, StringConstraints(pattern=r"^\d{2}$")]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Md5 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


class Strict(BaseModel):
    """Unknown keys are errors: a typo in a manifest must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- vocabulary -----------------------------------------------------------------------------------


class VocabularyTerm(Strict):
    key: NonEmptyStr
    name: NonEmptyStr
    aliases: list[str] = []
    terms: list[NonEmptyStr] = Field(min_length=1)

    def mentioned_in(self, text: str) -> bool:
        """True when one of `terms` starts a word of `text` (so "CT" does not match "detect")."""
        return any(re.search(rf"(?<![\w-]){re.escape(t.strip())}", text, re.IGNORECASE) for t in self.terms)


class TaskDefinition(Strict):
    key: Annotated[str, StringConstraints(pattern=SLUG)]
    element: NonEmptyStr
    name: NonEmptyStr


class Vocabulary(Strict):
    modalities: list[VocabularyTerm] = Field(min_length=1)
    areas: list[VocabularyTerm] = Field(min_length=1)
    task_elements: list[NonEmptyStr] = Field(min_length=1)
    tasks: list[TaskDefinition] = Field(min_length=1)

    @model_validator(mode="after")
    def _tasks_use_known_elements(self) -> Vocabulary:
        for task in self.tasks:
            if task.element not in self.task_elements:
                raise ValueError(
                    f"task {task.key!r} has element {task.element!r}; choose one of {self.task_elements}"
                )
        return self

    def modality(self, key: str) -> VocabularyTerm | None:
        return next((m for m in self.modalities if m.key == key), None)

    def area(self, key: str) -> VocabularyTerm | None:
        return next((a for a in self.areas if a.key == key), None)

    def task(self, key: str) -> TaskDefinition | None:
        return self._tasks_by_key.get(key)

    @cached_property
    def _tasks_by_key(self) -> dict[str, TaskDefinition]:  # looked up thousands of times by the CG checks
        return {t.key: t for t in reversed(self.tasks)}  # reversed: the first of duplicate keys wins, as before

    def normalise_modality(self, text: str) -> str | None:
        return _normalise(self.modalities, text)

    def normalise_area(self, text: str) -> str | None:
        return _normalise(self.areas, text)


def _normalise(terms: list[VocabularyTerm], text: str) -> str | None:
    wanted = text.strip().lower()
    for term in terms:
        if wanted == term.key.lower() or wanted in (a.lower() for a in term.aliases):
            return term.key
    return None


# --- licenses -------------------------------------------------------------------------------------


class Redistribution(str, Enum):
    allowed = "allowed"
    conditional = "conditional"
    forbidden = "forbidden"


class License(Strict):
    name: NonEmptyStr
    spdx: str | None = None
    url: AnyHttpUrl
    redistribution: Redistribution


class LicenseRegistry(Strict):
    licenses: dict[Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:[.-][a-z0-9]+)*$")], License] = Field(min_length=1)


# --- sources --------------------------------------------------------------------------------------


class AccessKind(str, Enum):
    open = "open"
    kaggle_dataset = "kaggle-dataset"
    kaggle_competition = "kaggle-competition"
    registration = "registration"
    credentialed = "credentialed"
    request = "request"


class TaskType(str, Enum):
    single_label = "single-label"
    multi_label = "multi-label"
    detection = "detection"
    segmentation = "segmentation"


class LayoutFamily(str, Enum):
    class_folders = "class-folders"  # <root>/[<split>/]<label>/<image>
    label_table = "label-table"  # CSV/XLSX/JSON rows of path + label(s)
    image_mask = "image-mask"  # image and mask files paired by name
    image_boxes = "image-boxes"  # boxes in CSV / COCO JSON / Pascal VOC XML / YOLO txt
    rle_masks = "rle-masks"  # run-length-encoded masks in a table
    dicom_study = "dicom-study"  # DICOM files or series per study
    volume_study = "volume-study"  # NIfTI / MHA / NRRD volumes
    custom = "custom"  # needs a module medmat/sources/custom/<source_id>.py


class ImageFormat(str, Enum):
    png = "png"
    jpg = "jpg"
    tif = "tif"
    bmp = "bmp"
    gif = "gif"
    pgm = "pgm"
    dcm = "dcm"
    nii = "nii"
    mha = "mha"
    nrrd = "nrrd"
    mat = "mat"
    npy = "npy"


class Upstream(Strict):
    """The source's row in the upstream Med-MAT README, copied verbatim (errors included)."""

    row: int | None = Field(ge=1, le=200)
    name: NonEmptyStr
    url: NonEmptyStr
    modality: NonEmptyStr
    area: NonEmptyStr
    task: NonEmptyStr
    qa_file: NonEmptyStr

    @field_validator("url")
    @classmethod
    def _url_well_formed(cls, v: str) -> str:
        # Kept verbatim (not normalised like AnyHttpUrl would), but it must still be an http(s) URL.
        if not re.match(r"^https?://[^\s/$.?#][^\s]*$", v):
            raise ValueError(f"{v!r} is not a well-formed http(s) URL")
        return v


class Correction(Strict):
    """One upstream erratum this manifest fixes, kept so the fix can be reviewed."""

    field: NonEmptyStr
    upstream: Any = None
    corrected: Any = None
    reason: NonEmptyStr


class Access(Strict):
    kind: AccessKind
    kaggle: Annotated[str, StringConstraints(pattern=r"^[\w.-]+(/[\w.-]+)?$")] | None = Field(
        default=None, description="owner/dataset for kaggle-dataset, the competition slug for kaggle-competition"
    )
    page: AnyHttpUrl | None = Field(default=None, description="where a person registers, signs or requests")
    instructions: list[NonEmptyStr] = Field(default=[], description="numbered steps a person follows")

    @model_validator(mode="after")
    def _kind_specific_fields(self) -> Access:
        if self.kind is AccessKind.kaggle_dataset and (self.kaggle is None or "/" not in self.kaggle):
            raise ValueError("kaggle-dataset access needs `kaggle: <owner>/<dataset>`")
        if self.kind is AccessKind.kaggle_competition and (self.kaggle is None or "/" in self.kaggle):
            raise ValueError("kaggle-competition access needs `kaggle: <competition-slug>`")
        if self.kind in (AccessKind.registration, AccessKind.credentialed, AccessKind.request):
            if self.page is None or not self.instructions:
                raise ValueError(f"{self.kind.value} access needs `page` and numbered `instructions`")
        return self


class DownloadFile(Strict):
    name: Annotated[str, StringConstraints(pattern=r"^[^/\\]+$")]
    url: AnyHttpUrl
    size: int | None = Field(default=None, ge=0)
    sha256: Sha256 | None = None
    md5: Md5 | None = Field(default=None, description="the publisher's stated MD5 (Zenodo, figshare), when no SHA-256 is")
    mirrors: list[AnyHttpUrl] = []
    extract: bool = True


def relative_inside(v: str) -> str:
    """A manifest path must stay inside the source folder: relative, no `..`, no drive letter or backslash."""
    if v.startswith(("/", "\\", "~")) or ".." in re.split(r"[/\\]", v) or re.match(r"^[A-Za-z]:", v) or "\0" in v:
        raise ValueError(f"{v!r} must be a relative path inside the source folder (no leading /, ~ or ..)")
    return v


class ExpectedFile(Strict):
    path: NonEmptyStr = Field(description="relative to DIR/<source-id>/; a trailing / means a folder")
    description: str = ""

    _relative = field_validator("path")(classmethod(lambda cls, v: relative_inside(v)))


class LabelFile(Strict):
    path: NonEmptyStr
    format: Literal["csv", "tsv", "xlsx", "json", "txt", "xml", "coco-json", "yolo-txt", "mat", "other"]
    columns: list[str] = []
    description: str = ""

    _relative = field_validator("path")(classmethod(lambda cls, v: relative_inside(v)))


class Layout(Strict):
    family: LayoutFamily
    root: str = Field(default="", description="folder inside DIR/<source-id>/ the adapter starts from")
    tree: NonEmptyStr = Field(description="the real archive's layout: top folders, naming, label files")
    label_files: list[LabelFile] = []
    params: dict[str, Any] = Field(default={}, description="family-specific adapter parameters")
    reader: dict[str, Any] = Field(default={}, description="reader options for this source (medmat.readers.ReaderOptions)")

    _relative = field_validator("root")(classmethod(lambda cls, v: relative_inside(v) if v else v))


SubsetLabels = str | list[str]


class Labels(Strict):
    vocabulary: list[NonEmptyStr] = Field(min_length=1, description="every label the source itself uses")
    map: dict[str, SubsetLabels] = Field(
        description="source label -> subset label (or list of them; [] = no finding, multi-label only)"
    )
    exclude: dict[str, NonEmptyStr] = Field(default={}, description="source label -> why its samples are left out")

    @model_validator(mode="after")
    def _vocabulary_unique(self) -> Labels:
        dupes = sorted({v for v in self.vocabulary if self.vocabulary.count(v) > 1})
        if dupes:
            raise ValueError(f"vocabulary lists {dupes} more than once")
        return self


class Splits(Strict):
    official: bool
    upstream_names: list[str] = Field(default=[], description="split names as the archive has them")
    group_by: str | None = Field(default=None, description="patient/study/lesion id column or rule, if any")
    notes: str = ""


class Overlap(Strict):
    source: SourceId
    relation: Literal["same-images", "subset-of", "superset-of", "partial"]
    note: str = ""


class KnownBadFile(Strict):
    path: NonEmptyStr
    reason: NonEmptyStr


class EvidenceStrength(str, Enum):
    """How strongly a layout fact is backed by public material outside this project."""

    confirmed = "confirmed"  # a file listing, a loader that reads the real archive, or the publisher's own text
    folder_level = "folder-level"  # the top folders are shown, the naming inside them is not
    inferred = "inferred"  # follows from other confirmed facts (a paper's counts, a sibling archive)
    unverified = "unverified"  # no public material found; the manifest's best guess


class EvidenceFact(str, Enum):
    top_folders = "top-folders"
    file_naming = "file-naming"
    label_files = "label-files"
    label_columns = "label-columns"
    label_spellings = "label-spellings"
    split_folders = "split-folders"
    patient_ids = "patient-ids"
    access = "access"
    counts = "counts"
    other = "other"


class Evidence(Strict):
    """Where one layout fact of the manifest was confirmed, outside this project (issue 15)."""

    fact: EvidenceFact
    claim: NonEmptyStr = Field(description="the fact as the manifest relies on it")
    where: NonEmptyStr = Field(description="a URL, or `owner/repo:path#Lstart-Lend` of public code reading the archive")
    shows: str = Field(default="", description="the lines or words there that show it")
    strength: EvidenceStrength


class Source(Strict):
    id: SourceId
    upstream: Upstream
    name: NonEmptyStr
    homepage: AnyHttpUrl
    description: NonEmptyStr
    modality: NonEmptyStr
    area: NonEmptyStr
    task: NonEmptyStr
    task_type: TaskType
    dimensionality: Literal["2d", "3d"]
    image_formats: list[ImageFormat] = Field(min_length=1)
    access: Access
    files: list[DownloadFile] = []
    expected_files: list[ExpectedFile] = Field(min_length=1)
    license: NonEmptyStr
    license_url: AnyHttpUrl | None = None
    redistributable: bool
    citation: NonEmptyStr
    layout: Layout
    labels: Labels
    splits: Splits
    expected_count: int | None = Field(default=None, ge=1, description="images in the full source, if known")
    known_bad_files: list[KnownBadFile] = []
    overlaps: list[Overlap] = []
    corrections: list[Correction] = []
    evidence: list[Evidence] = Field(default=[], description="where each layout fact was confirmed (issue 15)")
    notes: str = ""

    @field_validator("citation")
    @classmethod
    def _bibtex(cls, v: str) -> str:
        if not re.match(r"^\s*@\w+\s*\{", v):
            raise ValueError("citation must be a BibTeX entry starting with @type{key, ...")
        return v

    @model_validator(mode="after")
    def _open_sources_have_files(self) -> Source:
        if self.access.kind is AccessKind.open and not self.files:
            raise ValueError("open access needs at least one entry in `files` (url, optional size/sha256)")
        return self


# --- subsets --------------------------------------------------------------------------------------


class PaperFacts(Strict):
    name: NonEmptyStr
    source_rows: list[int]
    llava_zero_shot_acc: float | None = None


class Subset(Strict):
    id: SubsetId
    name: NonEmptyStr
    modality: NonEmptyStr
    area: NonEmptyStr
    task: NonEmptyStr
    task_type: TaskType
    role: Literal["ID", "OOD", "detseg"]
    sources: list[SourceId] = Field(min_length=1)
    labels: list[NonEmptyStr] = Field(min_length=1)
    instructions: list[NonEmptyStr]
    label_relations: LabelRelations = LabelRelations()
    distractors: Literal["subset", "source"] = Field(
        default="subset", description="draw distractors from every label of the subset (the paper) or only from the "
                                      "labels the sample's own source uses")
    paper: PaperFacts
    corrections: list[Correction] = []
    notes: str = ""

    @model_validator(mode="after")
    def _unique_lists(self) -> Subset:
        for name in ("sources", "labels"):
            values = getattr(self, name)
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"{name} lists {dupes} more than once")
        return self
