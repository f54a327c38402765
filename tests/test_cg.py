"""CG experiments: the shipped manifests, the invariants (each broken on purpose), the generator, the hash-leak
check and the `medmat cg` commands."""

from __future__ import annotations

import csv
import re

import pytest
from typer.testing import CliRunner

from medmat.cli import app
from medmat.mat.cg import (
    HashLeakError,
    allocate,
    baseline_plus,
    check_no_hash_leak,
    find_hash_leaks,
    get_experiment,
    relations,
    scaling_sets,
)
from medmat.registry.cg_models import CGError, Direction, Relatedness, load_cg
from medmat.registry.triplets import mat_table
from medmat.validation import load_experiments, validate
from tests.conftest import MANIFESTS

TWO = "cg/two-source.yaml"
PAPER_ROWS = {int(r["row"]): r for r in csv.DictReader(open(MANIFESTS / "upstream" / "paper-cg-two-source.csv",
                                                            encoding="utf-8"))}


@pytest.fixture(scope="module")
def shipped():
    reg, cg = load_experiments()  # raises with every problem listed if anything is wrong
    return reg, cg


# --- the shipped experiments ---------------------------------------------------------------------


def test_every_paper_experiment_is_present(shipped):
    _, cg = shipped
    by_kind = {}
    for exp in cg.experiments.values():
        by_kind.setdefault(exp.kind.value, []).append(exp.id)
    assert sorted(by_kind["two-source"]) == [f"two-{i:02d}" for i in range(1, 44)]
    paper = {}
    for exp in cg.experiments.values():
        if exp.origin == "paper":
            paper.setdefault(exp.kind.value, []).append(exp.id)
    # Counts of the paper's tables (shared/spec/paper-facts.md): Table 10 has 9 rows; Fig. 4 six bars per target;
    # Tables 13-14 eight pairs + Table 5 two detection + Table 6 two segmentation targets; Table 1 25 ID subsets
    # (single-task) and Tables 1-2 25 + 12 columns (multi-task); Tables 4/11/12/15 and 9 eight combinations; Table 16
    # two model rows.
    assert {k: len(v) for k, v in paper.items()} == {
        "two-source": 43, "three-source": 9, "scaling": 12, "data-limited": 64, "cls-det": 12, "pilot": 25 + 37,
        "backbones": 8, "repeats": 8, "few-shot": 2}
    assert sorted(by_kind["scaling"]) == sorted(f"scale-{t}-{s}" for t in ("03", "28") for s in (
        "all-data", "all-related", "all-unrelated", "no-modality", "no-area", "no-task"))
    # Ours stays, apart: our data-limited grid (related 0..3000 x target 0..2000 less (0, 0)) and cls-det pairs.
    ours = sorted(e.id for e in cg.experiments.values() if e.origin == "ours")
    assert ours == sorted([f"limited-{t}-r{r}-t{d}" for t in ("03", "28") for r in range(0, 3001, 1000)
                           for d in range(0, 2001, 500) if r or d] + [f"ours-clsdet-{i:02d}" for i in range(1, 9)])
    assert all(cg.files[i].split("/")[-1].startswith("ours-") for i in ours)


def test_ids_are_safe_hub_config_names(shipped):
    _, cg = shipped
    for exp in cg.experiments.values():
        assert not re.search(r'[<>:/\\|?*\s]', exp.config_name) and exp.config_name != "data"
        assert re.fullmatch(r"cg-[a-z0-9-]+", exp.config_name)


def test_validate_passes_and_checks_the_cg_folder(shipped):
    registry, problems = validate()
    assert problems == []
    cg, load_problems = load_cg(registry.root)
    assert load_problems == [] and len(cg.experiments) == 43 + 9 + 12 + 64 + 12 + 62 + 8 + 8 + 2 + 38 + 8


def test_two_source_rows_match_the_paper_table(shipped):
    reg, cg = shipped
    for row, paper in PAPER_ROWS.items():
        exp = cg.experiments[f"two-{row:02d}"]
        assert exp.paper.reference == f"Table 3, row {row}"
        assert (exp.paper.baseline, exp.paper.baseline_plus, exp.paper.trained) == (
            float(paper["baseline"]), float(paper["baseline_plus"]), float(paper["trained"]))
        assert exp.paper.helps is (paper["cg_helps"] == "yes")
        assert exp.inference.paper_mapping == paper["inferred_subset_ids"]
        # Every subset we use is one the transcribed mapping names (row 21's X-ray Bones subset is a "?").
        named = set(re.findall(r"\b\d{2}\b", paper["inferred_subset_ids"]))
        used = set(exp.train) | {exp.target}
        assert used - named == ({"26"} if row == 21 else set()), row
        # The paper's direction is kept where ours differs; ours is what the MAT table supports.
        assert (exp.paper.direction or exp.direction.value) == paper["direction"]
        # Where the mapping offered choices, the manifest records them.
        if re.search(r" or |/|\?", paper["inferred_subset_ids"]):
            assert exp.inference.confidence != "high" and (exp.inference.alternatives or exp.notes), row


def test_two_source_baselines_are_the_targets_zero_shot_accuracy(shipped):
    reg, cg = shipped
    off = [row for row in PAPER_ROWS if cg.experiments[f"two-{row:02d}"].paper.baseline
           != reg.subsets[cg.experiments[f"two-{row:02d}"].target].paper.llava_zero_shot_acc]
    assert off == [21]  # documented: the paper re-prompted subset 32 in that row
    assert "25" in cg.experiments["two-21"].notes and cg.experiments["two-21"].inference.confidence == "low"


def test_stored_lists_are_what_the_generator_makes(shipped):
    reg, cg = shipped
    for exp in cg.experiments.values():
        bp = exp.controls.baseline_plus
        if bp:
            assert bp.subsets == baseline_plus(reg, exp.target, exp.train, bp.seed, cg.relatedness), exp.id
        if exp.kind.value == "scaling":
            reading = cg.relatedness.reading(exp.reading)
            assert exp.train == scaling_sets(reg, exp.target, cg.relatedness, reading)[exp.direction], exp.id
            assert (exp.caps.total, exp.caps.per_subset, exp.caps.exact) == (15000, None, True)


def test_paper_scaling_numbers_for_03(shipped):
    _, cg = shipped
    assert [cg.experiments[f"scale-03-{s}"].paper.trained for s in ("all-related", "all-data", "all-unrelated")] == [
        73, 76, 51]


def test_cls_det_pairs_join_one_detection_and_one_classification_subset(shipped):
    reg, cg = shipped
    kinds = set()
    for exp in cg.experiments.values():
        if exp.kind.value != "cls-det":
            continue
        types = sorted("det" if reg.subsets[s].role == "detseg" else "cls" for s in exp.train)
        assert types == ["cls", "det"], exp.id
        assert (exp.origin == "ours") == exp.id.startswith("ours-")
        if exp.origin == "paper":
            kinds.add((reg.subsets[exp.target].role == "detseg", exp.answer))
    assert kinds == {(False, "choice"), (True, "box"), (True, "mask")}  # Tables 13-14, 5 and 6


# --- the generator, checked by hand against the MAT table ----------------------------------------


def test_mat_table_rows(shipped):
    reg, _ = shipped
    table = mat_table(reg)
    assert (table["03"].modality, table["03"].area, table["03"].task) == ("CT", "lung", "State")
    assert str(table["21"]) == "Mic / cell / Cancer"
    assert str(table["50"]) == "X-ray / chest / Detection"


def test_relations_of_03_by_hand(shipped):
    reg, cg = shipped
    rel = relations(reg, "03", cg.relatedness)
    # 03 is CT / lung / State.
    assert rel.related == {
        "04": ("modality", "area"),  # CT lung Cancer
        "05": ("modality", "task"),  # CT brain State
        "28": ("area", "task"),  # X-ray lung State
        "02": ("modality",), "06": ("modality",),  # CT kidney Diseases, CT brain Cancer
        "30": ("area",), "47": ("area",), "48": ("area",),  # X-ray lung Diseases / Segmentation x2
        "09": ("task",), "26": ("task",), "32": ("task",),  # DP mouth, X-ray bones, X-ray brain: State
    }
    assert len(rel.unrelated) == 53 - 1 - 11 and "03" not in rel.unrelated
    assert rel.near == {"31": ("area",), "50": ("area",)}  # X-ray chest: chest ~ lung
    assert [g for g, _ in rel.groups()] == [("modality", "area"), ("modality", "task"), ("area", "task"),
                                            ("modality",), ("area",), ("task",)]


def test_relations_of_21_by_hand(shipped):
    reg, cg = shipped
    rel = relations(reg, "21", cg.relatedness)
    # 21 is Mic / cell / Cancer: the other Mic-cell subsets share two elements, the Cancer tasks one.
    assert rel.related == {**dict.fromkeys(["18", "19", "20", "33", "42"], ("modality", "area")),
                           **dict.fromkeys(["04", "06", "07", "10", "24"], ("task",))}
    assert rel.near == {}


def test_scaling_sets_for_03_by_hand(shipped):
    reg, cg = shipped
    sets = scaling_sets(reg, "03", cg.relatedness)
    # Pool: ID classification subsets. Related to CT/lung/State: 02 (CT), 28, 30 (lung), 09, 26, 28, 32 (State).
    assert sets[Direction.all_related] == ["02", "09", "26", "28", "30", "32"]
    assert sets[Direction.related_without_modality] == ["09", "26", "28", "30", "32"]
    assert sets[Direction.related_without_area] == ["02", "09", "26", "32"]
    assert sets[Direction.related_without_task] == ["02", "30"]
    assert "31" not in sets[Direction.all_unrelated] and "31" in sets[Direction.all_data]  # chest ~ lung
    assert set(sets[Direction.all_related]) | set(sets[Direction.all_unrelated]) | {"31"} == set(
        sets[Direction.all_data])


def test_baseline_plus_is_deterministic_and_unrelated(shipped):
    reg, cg = shipped
    table = mat_table(reg)
    first = baseline_plus(reg, "03", ["05", "28"], 42, cg.relatedness)
    assert first == baseline_plus(reg, "03", ["28", "05"], 42, cg.relatedness)  # order of train is irrelevant
    assert len(first) == 2 and first == sorted(first)
    draws = {tuple(baseline_plus(reg, "03", ["05", "28"], seed, cg.relatedness)) for seed in range(20)}
    assert len(draws) > 1  # the seed matters
    for draw in draws:
        for s in draw:
            assert not {table[s].modality, table[s].area, table[s].task} & {"CT", "lung", "chest", "State"}
            assert reg.subsets[s].role == "ID"  # trainable: >= 3,000 training samples in the paper


def test_baseline_plus_mirrors_detection_and_falls_back(shipped):
    reg, cg = shipped
    # 08 (Der skin Diseases) from 38 (det/seg) + 14 (cls): one unrelated det/seg and one classification subset.
    draw = baseline_plus(reg, "08", ["38", "14"], 42, cg.relatedness)
    assert sorted(reg.subsets[s].role == "detseg" for s in draw) == [False, True]
    # 48 (X-ray lung Segmentation): every det/seg subset is X-ray or a box task, so both come from classification.
    draw = baseline_plus(reg, "48", ["28", "38"], 42, cg.relatedness)
    assert all(reg.subsets[s].role == "ID" for s in draw)


def test_relations_refuses_unknown_target(shipped):
    reg, _ = shipped
    with pytest.raises(CGError, match="does not exist"):
        relations(reg, "99", Relatedness())


def test_allocate_fills_equal_shares():
    assert allocate({"a": 5000, "b": 1000, "c": 3000}, per_subset=3000, total=6000) == {"a": 2500, "b": 1000, "c": 2500}
    assert allocate({"a": 5000, "b": 1000}, per_subset=3000) == {"a": 3000, "b": 1000}
    assert allocate({"b": 10, "a": 10}, total=5) == {"a": 3, "b": 2}  # ties to the lower id
    assert sum(allocate({"a": 900, "b": 800, "c": 100}, total=1000).values()) == 1000


# --- image-hash leaks --------------------------------------------------------------------------------


def test_hash_leaks_are_found_and_named():
    h = [f"{i:064x}" for i in range(6)]
    test = [h[0], h[1]]
    assert find_hash_leaks({"05": [h[2], h[3]], "28": iter([h[4]])}, test) == {}
    check_no_hash_leak("two-25", {"05": [h[2]], "28": [h[4]]}, test)  # no leak: no error
    leaks = find_hash_leaks({"28": [h[5], h[1].upper(), h[1]], "05": [h[0]]}, test)
    assert leaks == {"05": [h[0]], "28": [h[1]]}
    with pytest.raises(HashLeakError, match=r"cg-two-25: .*28: 1 image"):
        check_no_hash_leak("two-25", {"28": [h[1]], "target-train": [h[2]]}, test)


# --- each invariant, broken on purpose ---------------------------------------------------------------


def _exp(copy, pattern, exp_id, change):
    data = copy.load(pattern)
    index = next(i for i, e in enumerate(data["experiments"]) if e["id"] == exp_id)
    change(data["experiments"][index])
    copy.save(pattern, data)
    return index


FAULTS = [
    # (case, file, experiment, change, field under experiments[i], words in the message)
    ("target-in-train", TWO, "two-01", lambda e: e.update(train=["04", "06"]), "train", "in its own training set"),
    ("unknown-subset", TWO, "two-01", lambda e: e.update(train=["03", "77"]), "train[1]", "'77' does not exist"),
    ("unknown-target", TWO, "two-01", lambda e: e.update(target="60"), "target", "'60' does not exist"),
    ("baseline-plus-shares", TWO, "two-02", lambda e: e["controls"]["baseline_plus"].update(subsets=["02", "25"]),
     "controls.baseline_plus.subsets[0]", "shares modality 'CT'"),
    ("baseline-plus-near", TWO, "two-02", lambda e: e["controls"]["baseline_plus"].update(subsets=["31", "25"]),
     "controls.baseline_plus.subsets[0]", "shares area 'chest'"),
    ("baseline-plus-size", TWO, "two-02", lambda e: e["controls"]["baseline_plus"].update(subsets=["25"]),
     "controls.baseline_plus.subsets", "1 subsets for 2 train"),
    ("fixed-modality-broken", TWO, "two-04", lambda e: e.update(train=["25", "03"]), "direction",
     "03 shares task, not the target's modality"),
    ("element-missing", TWO, "two-04", lambda e: e.update(train=["25", "30"]), "direction", "lack the target's task"),
    ("wrong-direction", TWO, "two-01", lambda e: e.update(direction="fixed_area"), "direction", "fixed_area"),
    ("pair-broken", TWO, "two-31", lambda e: e.update(train=["14", "23"]), "direction",
     "no train subset shares both modality and area"),
    ("treat-as-unknown-element", TWO, "two-18", lambda e: e["treat_as"][0].update(task="Tumour"), "treat_as[0].task",
     "not a task element"),
    ("treat-as-removed", TWO, "two-18", lambda e: e.pop("treat_as"), "direction", "lack the target's task"),
    ("target-data-outside-limited", TWO, "two-01", lambda e: e.update(target_train_samples=500),
     "target_train_samples", "is 500 in a two-source experiment"),
    ("three-not-one-each", "cg/three-source.yaml", "three-01", lambda e: e.update(train=["03", "02", "26"]),
     "direction", "one_element_each"),
    ("unrelated-not-unrelated", "cg/scaling.yaml", "scale-03-all-unrelated",
     lambda e: e.update(train=e["train"] + ["31"]), "direction", "31 share(s) an element (or a near one)"),
    ("without-area-has-area", "cg/scaling.yaml", "scale-03-no-area", lambda e: e.update(train=e["train"] + ["30"]),
     "direction", "30 share(s) the target's area"),
    ("target-only-with-train", "cg/ours-data-limited.yaml", "limited-03-r0-t500", lambda e: e.update(train=["05"]),
     "direction", "target_only takes no train"),
    ("scaling-not-exact", "cg/scaling.yaml", "scale-03-no-task", lambda e: e["caps"].update(exact=False), "caps",
     "exact False"),
    ("scaling-capped", "cg/scaling.yaml", "scale-03-no-task", lambda e: e["caps"].update(per_subset=3000),
     "caps.per_subset", "cannot reach the constant 15000"),
    ("unrelated-arm-not-baseline-plus", "cg/data-limited.yaml", "dl51-modality-unrelated-r1000",
     lambda e: e.update(train=["15", "16"]), "train", "differs from two-05's Baseline+"),
    ("re-run-other-pair", "cg/backbones.yaml", "backbone-09", lambda e: e.update(train=["26", "31"]), "train",
     "differs from two-09's"),
    ("data-limited-row-not-picked", "cg/data-limited.yaml", "dl51-modality-related-r1000",
     lambda e: e.update(derived_from="two-15", target="03", train=["04", "28"], direction="fixed_area"),
     "derived_from", "is not a row the paper's selection rule picks"),
    ("multi-task-misses-a-subset", "cg/pilot.yaml", "pilot-multi-02", lambda e: e.update(train=e["train"][1:]),
     "train", "multi-task trains on every ID subset"),
    ("single-task-other-subset", "cg/pilot.yaml", "pilot-single-02", lambda e: e.update(train=["03"]), "train",
     "single-task trains on the target alone"),
    ("box-answer-on-classification", "cg/cls-det.yaml", "clsdet-01", lambda e: e.update(answer="box"), "answer",
     "need a detection/segmentation target"),
    ("repeats-once", "cg/repeats.yaml", "repeat-09", lambda e: e.update(repeats=1), "repeats", "is 1 in a repeats"),
    ("few-shot-without-shots", "cg/few-shot.yaml", "fewshot-cg", lambda e: e.update(shots=[]), "shots", "is empty"),
    ("unknown-reading", "cg/scaling.yaml", "scale-28-no-area", lambda e: e.update(reading="paper-x"), "reading",
     "names no reading"),
    ("unsafe-id", TWO, "two-01", lambda e: e.update(id="two/01"), "id", "pattern"),
    ("unknown-key", TWO, "two-01", lambda e: e.update(trian=["03"]), "trian", "Extra inputs"),
    ("bad-direction", TWO, "two-01", lambda e: e.update(direction="sideways"), "direction", "fixed_modality"),
]


@pytest.mark.parametrize("case,pattern,exp_id,change,field,words", FAULTS, ids=[f[0] for f in FAULTS])
def test_each_fault_names_file_and_field(full_copy, case, pattern, exp_id, change, field, words):
    index = _exp(full_copy, pattern, exp_id, change)
    _, problems = validate(full_copy.root)
    wanted = f"experiments[{index}].{field}"
    hits = [p for p in problems if p.file.endswith(pattern) and p.field == wanted]
    assert hits, f"no problem on {pattern} {wanted}; got:\n" + "\n".join(map(str, problems))
    assert any(words in p.message for p in hits), "\n".join(map(str, hits))
    assert all(p.fix for p in hits)
    # Only the broken experiment is reported, and the experiments that re-run it (derived_from).
    assert all(p.file.endswith(pattern) or f"{exp_id}'s" in p.message for p in problems), "\n".join(map(str, problems))


def test_duplicate_id_across_files(full_copy):
    _exp(full_copy, "cg/three-source.yaml", "three-01", lambda e: e.update(id="two-01"))
    _, problems = validate(full_copy.root)
    # Files are read in name order, so the second holder of the id (two-source.yaml) is the one reported.
    assert [(p.field, p.message) for p in problems if p.file.endswith(TWO)] == [
        ("experiments[0].id", "'two-01' is already used by manifests/cg/three-source.yaml")]


def test_kind_must_match_family(full_copy):
    _exp(full_copy, TWO, "two-05", lambda e: e.update(kind="backbones"))
    _, problems = validate(full_copy.root)
    assert [(p.field, "two-source" in p.message) for p in problems if p.file.endswith(TWO)] == [
        ("experiments[4].kind", True)]


def test_near_groups_must_use_the_vocabulary(full_copy):
    full_copy.edit("cg/relatedness.yaml", lambda d: d["near"][0].update(values=["lung", "thorax"]))
    _, problems = validate(full_copy.root)
    assert [(p.field, "'thorax'" in p.message) for p in problems] == [("near[0].values", True)]


def test_a_reading_must_give_the_paper_counts(full_copy):
    full_copy.edit("cg/relatedness.yaml", lambda d: d["readings"][0]["task"].pop("21"))
    _, problems = validate(full_copy.root)
    assert [(p.field, p.message) for p in problems if p.file.endswith("relatedness.yaml")] == [
        ("readings[0].expected.28", "reading paper-scaling gives 10:14 Related:Unrelated for 28, the paper states "
                                    "11:13")]


def test_validate_cli_reports_cg_faults(full_copy):
    _exp(full_copy, TWO, "two-01", lambda e: e.update(train=["04", "06"]))
    result = CliRunner().invoke(app, ["validate", str(full_copy.root)])
    assert result.exit_code == 1
    assert "cg/two-source.yaml: experiments[0].train: two-01: the target 04 is in its own training set" in result.output


def test_registry_without_cg_folder_is_valid(mini_copy):
    _, problems = validate(mini_copy.root)
    assert problems == []


# --- the commands ------------------------------------------------------------------------------------


def _run(*args):
    result = CliRunner().invoke(app, ["cg", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_cg_related_03_prints_related_and_unrelated_with_shared_elements():
    out = _run("related", "03")
    assert out.startswith("target 03: CT Lung COVID-19 Classification [CT / lung / State]")
    related, unrelated = out.split("\nUnrelated (41): share no element\n")
    assert "Related (11): share at least one of modality, area, task element" in related
    blocks = dict(re.findall(r"  sharing ([^\n]+):\n((?:    [^\n]+\n)+)", related))
    assert set(blocks) == {"modality CT + area lung", "modality CT + task State", "area lung + task State",
                           "modality CT", "area lung", "task State"}
    ids = {k: re.findall(r"^    (\d{2}) ", v, re.M) for k, v in blocks.items()}
    assert ids == {"modality CT + area lung": ["04"], "modality CT + task State": ["05"],
                   "area lung + task State": ["28"], "modality CT": ["02", "06"], "area lung": ["30", "47", "48"],
                   "task State": ["09", "26", "32"]}
    assert re.search(r"^    28 .*\[shares area lung, task State\]$", related, re.M)
    rows = re.findall(r"^    (\d{2}) .*\[(shares nothing[^\]]*)\]$", unrelated, re.M)
    assert len(rows) == 41 and {r[0] for r in rows}.isdisjoint({"03", "04", "28"})
    assert dict(rows)["31"].startswith("shares nothing; near: area chest ~ lung")
    assert "Baseline+ for two classification train subsets (seed 42): " in unrelated


def test_cg_related_json_and_unknown_subset():
    import json

    data = json.loads(_run("related", "3", "--json", "--trainable"))
    assert data["target"] == "03" and data["related"]["28"] == {"area": "lung", "task": "State"}
    assert "04" not in data["related"]  # OOD: not trainable
    result = CliRunner().invoke(app, ["cg", "related", "99"])
    assert result.exit_code == 2 and "no subset '99'" in result.output


def test_cg_list_and_show():
    out = _run("list", "--kind", "two-source")
    assert out.splitlines()[0].startswith("43 experiment(s)")
    assert re.search(r"^cg-two-04 +two-source +fixed_modality +25 \+ 28 -> 26 +LLaVA 49 / 53 / 51$", out, re.M)
    assert re.search(r"^  two-source +43 of the paper \(Table 3\)$", out, re.M)
    out = _run("list")
    for family, count, table in (("three-source", 9, "Table 10"), ("scaling", 12, "Fig. 4"),
                                 ("pilot", 62, "Tables 1-2"), ("cls-det", 12, "Tables 13-14, 5, 6"), ("repeats", 8, "Table 9"),
                                 ("backbones", 8, "Tables 4, 11, 12, 15"), ("few-shot", 2, "Table 16")):
        assert re.search(rf"^  {family} +{count} of the paper \({table}\)", out, re.M), family
    assert re.search(r"^cg-backbone-09 .* Qwen2-VL 61 / \? / 65; Llama-3.2 52 / \? / 59; HuatuoGPT \+6.12$", out, re.M)
    assert re.search(r"^cg-repeat-16 .* x3 +LLaVA 30 / \? / 48.66 ±1.15$", out, re.M)
    assert re.search(r"^cg-clsdet-det-02 .* box +Next-Chat \+8.4 ciou; MiniGPT-v2 \+7.6 ciou$", out, re.M)
    out = _run("list", "--target", "3")
    assert "cg-scale-03-all-data" in out and "cg-two-25" in out and "cg-two-04 " not in out
    out = _run("show", "cg-two-21")
    assert "origin: paper" in out and "inference (low confidence)" in out and "chose 26 over 25, 35, 27, 36" in out
    assert "paper's direction: fixed_task" in out
    out = _run("show", "two-18")
    assert "treat 32 as task Cancer" in out and "shares: area brain, task Cancer" in out
    result = CliRunner().invoke(app, ["cg", "show", "two-99"])
    assert result.exit_code == 2 and "medmat cg list" in result.output


def test_get_experiment_by_config_name(shipped):
    _, cg = shipped
    assert get_experiment(cg, "cg-two-25").train == ["05", "28"]
    with pytest.raises(CGError):
        get_experiment(cg, "nope")


def test_caps_give_the_capped_training_size_by_a_seeded_rule(shipped):
    """caps.total and target_train_samples decide the training set's size exactly (issue 9); which samples are
    kept depends on the seed and the ids alone, not on their order."""
    from medmat.mat.cg import TARGET_PART, select_training_ids, training_plan

    _, cg = shipped
    exp = cg.experiments["limited-03-r1000-t500"]  # related 1000 in all over 05 + 28, plus 500 of 03's own
    assert exp.caps.total == 1000 and exp.target_train_samples == 500
    ids = {"05": [f"a/{i}" for i in range(3000)], "28": [f"b/{i}" for i in range(300)],
           TARGET_PART: [f"t/{i}" for i in range(2500)]}
    chosen = select_training_ids(exp, ids, seed=42)
    assert {k: len(v) for k, v in chosen.items()} == {"05": 700, "28": 300, TARGET_PART: 500}
    shuffled = {k: list(reversed(v)) for k, v in ids.items()}
    assert select_training_ids(exp, shuffled, seed=42) == chosen
    assert select_training_ids(exp, ids, seed=7) != chosen
    assert training_plan(cg.experiments["two-04"], {s: 5000 for s in cg.experiments["two-04"].train}) == {
        s: 3000 for s in cg.experiments["two-04"].train}  # per-subset cap 3,000, no total
    with pytest.raises(CGError, match="needs 500"):
        training_plan(exp, {"05": 10, "28": 10, TARGET_PART: 20})


def test_table9_sds_are_sample_sds_of_its_runs(shipped):
    """Table 9 prints runs and mean +- SD: the SD is the sample SD (n - 1), which `medmat cg run` reports too."""
    import statistics

    from medmat.train.cg_kinds import summarise

    _, cg = shipped
    repeats = [e for e in cg.experiments.values() if e.kind.value == "repeats"]
    assert len(repeats) == 8
    for e in repeats:
        p = e.paper
        assert statistics.stdev(p.runs) == pytest.approx(p.sd, abs=0.011), e.id
        assert statistics.fmean(p.runs) == pytest.approx(p.trained, abs=0.011), e.id
        got = summarise([{"arm": "trained", "shots": None, "target": e.target, "value": v} for v in p.runs])[0]
        assert got["sd"] == pytest.approx(p.sd, abs=0.011) and got["n"] == 3


def test_paper_relatedness_reading_reproduces_13_11_and_11_13(shipped):
    reg, cg = shipped
    from medmat.registry.cg_checks import reading_counts

    # §4: "13:11 for Subset 03 and 11:13 for Subset 28"; the vocabulary's own elements give 6:18 and 10:14.
    assert reading_counts(reg, cg, "paper-scaling", "03") == (13, 11)
    assert reading_counts(reg, cg, "paper-scaling", "28") == (11, 13)
    assert reading_counts(reg, cg, "", "03") == (6, 18) and reading_counts(reg, cg, "", "28") == (10, 14)
    out = _run("related", "28")
    assert "10 Related : 14 Unrelated" in out and "11 : 13 as reading paper-scaling" in out
    assert "the paper states 11:13" in out


def test_data_limited_follows_the_paper_selection_rule(shipped):
    from medmat.registry.cg_checks import data_limited_rows

    _, cg = shipped
    picks = data_limited_rows(cg)
    # §5.1 candidates, by hand from Table 3: CG helps and Trained - max(Baseline, Baseline+) >= 10.
    assert picks["5.1"]["fixed_modality"]["candidates"] == ["two-05"]
    assert picks["5.1"]["fixed_area"]["candidates"] == ["two-15", "two-16", "two-17"]
    assert picks["5.1"]["fixed_task"]["candidates"] == [f"two-{r}" for r in (19, 20, 21, 23, 24, 25, 26, 30)]
    assert picks["5.1"]["modality_area_pair"]["candidates"] == ["two-33", "two-34", "two-40"]
    # §5.2 candidates: the ✗ rows of each segment (rows 4, 18, 22, 27, 38, 39).
    assert [v["candidates"] for v in picks["5.2"].values()] == [["two-04"], ["two-18"], ["two-22", "two-27"],
                                                                 ["two-38", "two-39"]]
    for exp in cg.experiments.values():
        if exp.kind.value == "data-limited" and exp.origin == "paper":
            src = cg.experiments[exp.derived_from]
            bp = src.controls.baseline_plus.subsets
            assert exp.train == (src.train if exp.arm == "related" else bp), exp.id
