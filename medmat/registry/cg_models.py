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
    pilot = "pilot"  # single-task (one ID subset) and multi-task (all 25 ID subsets), Tables 1-2
    backbones = "backbones"  # a Table 3 row re-run on other backbones, Tables 4, 11, 12, 15
    repeats = "repeats"  # a Table 3 row run three times, mean +- SD, Table 9
    few_shot = "few-shot"  # n examples per label in the prompt, Table 16


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
    untrained = "untrained"  # no training: the model as it is (the few-shot baseline)
    single_task = "single_task"  # pilot: train on the target's own train split alone
    multi_task = "multi_task"  # pilot: train on every ID subset (the target among them when it is ID)


FIXED = {Direction.fixed_modality: "modality", Direction.fixed_area: "area", Direction.fixed_task: "task"}
PAIRS = {Direction.modality_area_pair: ("modality", "area"), Direction.modality_task_pair: ("modality", "task"),
         Direction.area_task_pair: ("area", "task")}
WITHOUT = {Direction.related_without_modality: "modality", Direction.related_without_area: "area",
           Direction.related_without_task: "task"}


class Caps(Strict):
    split: Literal["paper", "full"] = Field(default="paper", description="which subset split flavour feeds training")
    per_subset: int | None = Field(default=3000, ge=1, description="at most this many samples from each train subset")
    total: int | None = Field(default=None, ge=0, description="at most this many samples in all (equal shares)")
    exact: bool = Field(default=False, description="the paper holds `total` constant: fewer samples is an error, "
                                                   "so per_subset must not make it unreachable")


class BaselinePlus(Strict):
    subsets: list[SubsetId] = Field(min_length=1, description="unrelated subsets: share no M, A or T with the target")
    size: Literal["match-train"] = Field(default="match-train",
                                         description="draw as many samples as the related training set has")
    seed: int = DEFAULT_SEED
    origin: Literal["ours"] = Field(default="ours", description="the paper samples 'an equal number of data' from "
                                    "Unrelated subsets; one hash-ranked subset per train subset is our rule")


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


BACKBONES = ("LLaVA-1.5-7B", "Qwen2-VL-7B-Instruct", "Llama-3.2-11B-Vision-Instruct", "HuatuoGPT-Vision",
             "Next-Chat", "MiniGPT-v2")


class PaperPoint(Strict):
    """One point of a paper curve or column (few-shot: x = shots per label)."""

    x: float
    value: float = Field(ge=0, le=100)
    sd: float | None = Field(default=None, ge=0)


class PaperResult(Strict):
    reference: NonEmptyStr = Field(description="where in the paper, e.g. 'Table 3, row 4'")
    names: list[str] = Field(default=[], description="the paper's names for the train subsets and the target")
    direction: str | None = Field(default=None, description="the paper's grouping, when it differs from ours")
    model: Literal[BACKBONES] = "LLaVA-1.5-7B"  # type: ignore[valid-type]
    metric: Literal["accuracy", "ciou"] = Field(default="accuracy", description="option accuracy (%) or cIoU (%)")
    baseline: float | None = Field(default=None, ge=0, le=100)
    baseline_plus: float | None = Field(default=None, ge=0, le=100)
    trained: float | None = Field(default=None, ge=0, le=100, description="the trained result (the mean of `runs`)")
    gain: float | None = Field(default=None, description="trained minus baseline, where the paper gives only that")
    runs: list[float] = Field(default=[], description="each repeated run's result (Table 9)")
    sd: float | None = Field(default=None, ge=0, description="standard deviation over `runs` as printed")
    points: list[PaperPoint] = Field(default=[], description="a curve or a column of values (few-shot)")
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
    derived_from: ExperimentId | None = Field(default=None, description="the experiment (a Table 3 row) this one "
                                              "re-runs or varies; its train, target and Baseline+ are checked "
                                              "against it")
    arm: Literal["related", "unrelated"] = Field(default="related", description="data-limited curves: the Related "
                                                  "pair, or an Unrelated set of the same size")
    reading: str | None = Field(default=None, description="a relatedness reading of relatedness.yaml (the paper's "
                                                           "task elements for this experiment)")
    repeats: int = Field(default=1, ge=1, description="train and score this many times (seeds 42, 43, ...)")
    shots: list[int] = Field(default=[], description="few-shot: examples per label in the prompt, each scored")
    shares_training_with: ExperimentId | None = Field(default=None, description="pilot multi-task: one model is "
                                                      "trained once and scored on every target of the group")
    answer: Literal["choice", "box", "mask"] = Field(
        default="choice", description="how the target is asked and scored: option letter (accuracy), a box in the "
        "backbone's own format (cIoU), or a mask (cIoU); box and mask need a detection/segmentation target")
    paper: PaperResult | None = None
    also: list[PaperResult] = Field(default=[], description="the paper's numbers for this setting on other "
                                                            "backbones or metrics")
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
    origin: Literal["ours"] = Field(default="ours", description="the paper has no near rule; this one is ours")


class Reading(Strict):
    """The paper's own task elements for one family of experiments, where they differ from the vocabulary's."""

    name: ExperimentId
    reference: NonEmptyStr
    task: dict[SubsetId, NonEmptyStr] = Field(description="subset -> the task element the paper reads it as")
    near: bool = Field(default=False, description="apply the near groups too (the paper's counts do not)")
    expected: dict[SubsetId, tuple[int, int]] = Field(
        default={}, description="target -> (related, unrelated) ID subsets as the paper states them")
    reason: NonEmptyStr


class Relatedness(Strict):
    """Distinct vocabulary keys that are too close for an *unrelated* control (e.g. lung and chest), and the
    paper's readings of task elements."""

    near: list[NearGroup] = []
    readings: list[Reading] = []

    def reading(self, name: str | None) -> Reading | None:
        return next((r for r in self.readings if r.name == name), None) if name else None


@dataclass
class CGSet:
    root: Path
    experiments: dict[str, Experiment] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # id -> shown path
    positions: dict[str, int] = field(default_factory=dict)  # id -> index in its file's `experiments`
    relatedness: Relatedness = Relatedness()
    unreadable: list[str] = field(default_factory=list)  # files that did not parse (their ids are unknown)

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
            cg.unreadable.append(shown)
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


