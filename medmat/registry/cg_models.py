"""Typed models of the CG experiment manifests (`manifests/cg/*.yaml`) and their loader.

Every experiment is explicit data: its direction type, training subsets, caps, controls and the paper's numbers.
`load_cg` reads the folder, collecting problems; the invariants live in `cg_checks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .loader import _display, parse_model
from .models import NonEmptyStr, SubsetId
from .problems import Problem

ELEMENTS = ("modality", "area", "task")
# `cg-<id>` is a Hub config name: lowercase slug, so never `<>:/\|?*`, and never the refused name `data`.
ExperimentId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", min_length=2, max_length=60)]
RELATEDNESS_FILE = "relatedness.yaml"
DEFAULT_SEED = 42
class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Kind(str, Enum):
    two_source = "two-source"
    three_source = "three-source"
    scaling = "scaling"
    data_limited = "data-limited"
    cls_det = "cls-det"


class Direction(str, Enum):
    """How the training subsets hold the target's elements (checked against the MAT table)."""

    fixed_modality = "fixed_modality"  # every train subset shares the modality; together they hold A and T
    fixed_area = "fixed_area"
    fixed_task = "fixed_task"
    modality_area_pair = "modality_area_pair"  # one train subset shares M and A; the others bring T
    modality_task_pair = "modality_task_pair"
    area_task_pair = "area_task_pair"
    one_element_each = "one_element_each"  # three subsets, one element from each
    all_data = "all_data"  # every trainable subset but the target
    all_related = "all_related"  # every trainable subset sharing at least one element
    all_unrelated = "all_unrelated"  # every trainable subset sharing none (near elements count as shared)
    related_without_modality = "related_without_modality"  # related, none sharing the modality
    related_without_area = "related_without_area"
    related_without_task = "related_without_task"
    target_only = "target_only"  # no related data; only the target's own training samples (data-limited)


FIXED = {Direction.fixed_modality: "modality", Direction.fixed_area: "area", Direction.fixed_task: "task"}
PAIRS = {Direction.modality_area_pair: ("modality", "area"), Direction.modality_task_pair: ("modality", "task"),
         Direction.area_task_pair: ("area", "task")}
WITHOUT = {Direction.related_without_modality: "modality", Direction.related_without_area: "area",
           Direction.related_without_task: "task"}


class Caps(Strict):
    split: Literal["paper", "full"] = Field(default="paper", description="which subset split flavour feeds training")
    per_subset: int | None = Field(default=3000, ge=1, description="at most this many samples from each train subset")
    total: int | None = Field(default=None, ge=0, description="at most this many samples in all (equal shares)")


class BaselinePlus(Strict):
    subsets: list[SubsetId] = Field(min_length=1, description="unrelated subsets: share no M, A or T with the target")
    size: Literal["match-train"] = Field(default="match-train",
                                         description="draw as many samples as the related training set has")
    seed: int = DEFAULT_SEED


class Controls(Strict):
    baseline: bool = Field(default=True, description="score the untrained model on the target's test set")
    baseline_plus: BaselinePlus | None = None


class TreatAs(Strict):
    """The paper named a subset by another element in this experiment (its task names are loose)."""

    subset: SubsetId
    modality: str | None = None
    area: str | None = None
    task: str | None = Field(default=None, description="a task element, e.g. Cancer")
    reason: NonEmptyStr


class Alternative(Strict):
    subset: SubsetId = Field(description="the subset we chose")
    instead_of: list[SubsetId] = Field(min_length=1, description="the other candidates the paper's name fits")
    why: NonEmptyStr


class Inference(Strict):
    """How the paper's loose names were mapped to subset numbers, and how sure we are."""

    confidence: Literal["high", "medium", "low"]
    paper_mapping: NonEmptyStr = Field(description="the mapping as transcribed (e.g. `inferred_subset_ids`)")
    alternatives: list[Alternative] = []
    notes: str = ""


class PaperResult(Strict):
    reference: NonEmptyStr = Field(description="where in the paper, e.g. 'Table 3, row 4'")
    names: list[str] = Field(default=[], description="the paper's names for the train subsets and the target")
    direction: str | None = Field(default=None, description="the paper's grouping, when it differs from ours")
    model: str = "LLaVA-1.5-7B"
    metric: Literal["accuracy", "iou"] = "accuracy"
    baseline: float | None = Field(default=None, ge=0, le=100)
    baseline_plus: float | None = Field(default=None, ge=0, le=100)
    trained: float | None = Field(default=None, ge=0, le=100)
    helps: bool | None = None


class Experiment(Strict):
    id: ExperimentId
    kind: Kind
    direction: Direction
    target: SubsetId
    train: list[SubsetId] = Field(description="training subsets; never the target")
    target_train_samples: int = Field(default=0, ge=0, description="samples of the target's own train split "
                                                                    "(data-limited settings only)")
    caps: Caps = Caps()
    controls: Controls = Controls()
    treat_as: list[TreatAs] = []
    origin: Literal["paper", "ours"] = Field(description="paper: the paper ran it; ours: our choice of subsets")
    paper: PaperResult | None = None
    inference: Inference | None = None
    notes: str = ""

    @property
    def config_name(self) -> str:
        return f"cg-{self.id}"


class ExperimentFile(Strict):
    family: Kind
    description: NonEmptyStr
    experiments: list[Experiment] = Field(min_length=1)


class NearGroup(Strict):
    element: Literal["modality", "area", "task"]
    values: list[NonEmptyStr] = Field(min_length=2)
    reason: NonEmptyStr


class Relatedness(Strict):
    """Distinct vocabulary keys that are too close for an *unrelated* control (e.g. lung and chest)."""

    near: list[NearGroup] = []


@dataclass
class CGSet:
    root: Path
    experiments: dict[str, Experiment] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # id -> shown path
    positions: dict[str, int] = field(default_factory=dict)  # id -> index in its file's `experiments`
    relatedness: Relatedness = Relatedness()

    def where(self, exp_id: str, attr: str = "") -> tuple[str, str]:
        """(file, field path) of an experiment's field, for problems."""
        path = f"experiments[{self.positions[exp_id]}]"
        return self.files[exp_id], f"{path}.{attr}" if attr else path


class CGError(ValueError):
    """A CG request that cannot be met; the message says what to do."""


def cg_dir(manifests_root: Path) -> Path:
    return Path(manifests_root) / "cg"


def load_cg(manifests_root: Path) -> tuple[CGSet, list[Problem]]:
    """Read `<manifests>/cg/`; a missing folder is an empty set (a minimal registry has no experiments)."""
    root = Path(manifests_root)
    folder = cg_dir(root)
    cg, problems = CGSet(root=folder), []
    if not folder.is_dir():
        return cg, problems
    near = folder / RELATEDNESS_FILE
    if near.is_file():
        parsed, found = parse_model(Relatedness, near, _display(near, root))
        problems += found
        cg.relatedness = parsed or Relatedness()
    for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
        if path.name == RELATEDNESS_FILE:
            continue
        shown = _display(path, root)
        parsed, found = parse_model(ExperimentFile, path, shown)
        problems += found
        if parsed is None:
            continue
        for i, exp in enumerate(parsed.experiments):
            if exp.kind is not parsed.family:
                problems.append(Problem(shown, f"experiments[{i}].kind", f"{exp.id!r} is {exp.kind.value!r} in a "
                                        f"{parsed.family.value!r} file", "move it to its family's file or fix `kind`"))
            if exp.id in cg.experiments:
                problems.append(Problem(shown, f"experiments[{i}].id", f"{exp.id!r} is already used by "
                                        f"{cg.files[exp.id]}", "give each experiment its own id"))
                continue
            cg.experiments[exp.id] = exp
            cg.files[exp.id] = shown
            cg.positions[exp.id] = i
    return cg, problems


