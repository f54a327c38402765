"""Break one thing in a valid registry and check that `validate` names the file and the field."""

from __future__ import annotations

import shutil

import pytest
import yaml

from medmat.validation import validate
from tests.conftest import TEMPLATE_SOURCE

SRC = f"sources/{TEMPLATE_SOURCE}.yaml"
SUB = "subsets/02-*.yaml"


def test_mini_registry_is_valid(mini_copy):
    registry, problems = validate(mini_copy.root)
    assert problems == []
    assert list(registry.sources) == [TEMPLATE_SOURCE]
    assert list(registry.subsets) == ["02"]


def _set(path: str, value):
    """Set a dotted path (a.b.c) in a nested dict."""

    def change(data):
        *parents, last = path.split(".")
        for key in parents:
            data = data[key]
        data[last] = value

    return change


def _delete(key: str):
    return lambda data: data.pop(key)


def _rename_key(old: str, new: str):
    return lambda data: data.__setitem__(new, data.pop(old))


# (case id, file pattern, change, expected file stem fragment, expected field, expected words in message)
SINGLE_FILE_FAULTS = [
    ("typo-key", SRC, _rename_key("license", "licence"), TEMPLATE_SOURCE, "licence", "Extra inputs"),
    ("missing-field", SRC, _delete("citation"), TEMPLATE_SOURCE, "citation", "required"),
    ("bad-access-kind", SRC, _set("access.kind", "torrent"), TEMPLATE_SOURCE, "access.kind", "open"),
    ("kaggle-without-ref", SRC, lambda d: d["access"].pop("kaggle"), TEMPLATE_SOURCE, "access", "kaggle"),
    ("bad-homepage", SRC, _set("homepage", "www.example"), TEMPLATE_SOURCE, "homepage", "URL"),
    ("bad-upstream-url", SRC, _set("upstream.url", "kaggle.com/x"), TEMPLATE_SOURCE, "upstream.url", "well-formed"),
    ("bad-download-url", SRC, _set("files", [{"name": "a.zip", "url": "ftp//x"}]), TEMPLATE_SOURCE, "files[0].url", "URL"),
    ("bad-sha256", SRC, _set("files", [{"name": "a.zip", "url": "https://x.org/a.zip", "sha256": "abc"}]),
     TEMPLATE_SOURCE, "files[0].sha256", "pattern"),
    ("open-without-files", SRC, _set("access", {"kind": "open"}), TEMPLATE_SOURCE, "", "at least one entry in `files`"),
    ("registration-without-steps", SRC, _set("access", {"kind": "registration"}), TEMPLATE_SOURCE, "access",
     "instructions"),
    ("unknown-license", SRC, _set("license", "wtfpl"), TEMPLATE_SOURCE, "license", "not in licenses.yaml"),
    ("redistribute-forbidden", SRC, _set("redistributable", True), TEMPLATE_SOURCE, "redistributable", "forbids"),
    ("citation-not-bibtex", SRC, _set("citation", "Islam et al. 2022"), TEMPLATE_SOURCE, "citation", "BibTeX"),
    ("bad-id", SRC, _set("id", "CT Kidney"), TEMPLATE_SOURCE, "id", "pattern"),
    ("id-not-file-name", SRC, _set("id", "ct-kidney"), TEMPLATE_SOURCE, "id", "differs from the file name"),
    ("unknown-modality", SRC, _set("modality", "PET"), TEMPLATE_SOURCE, "modality", "not in the vocabulary"),
    ("unknown-task", SRC, _set("task", "kidney-things"), TEMPLATE_SOURCE, "task", "not a task"),
    ("modality-changed-silently", SRC, _set("upstream.modality", "MRI"), TEMPLATE_SOURCE, "modality", "upstream row says"),
    ("row-unnumbered", SRC, _set("upstream.row", None), TEMPLATE_SOURCE, "upstream.row", "has no number"),
    ("label-unmapped", SRC, lambda d: d["labels"]["map"].pop("Stone"), TEMPLATE_SOURCE, "labels.map", "'Stone'"),
    ("label-outside-vocabulary", SRC, lambda d: d["labels"]["map"].update({"Polyp": "Tumor"}), TEMPLATE_SOURCE,
     "labels.map", "not in labels.vocabulary"),
    ("map-target-unknown", SRC, lambda d: d["labels"]["map"].update({"Cyst": "Cysts"}), TEMPLATE_SOURCE,
     "labels.map.Cyst", "not a label of subset 02"),
    ("empty-map-single-label", SRC, lambda d: d["labels"]["map"].update({"Normal": []}), TEMPLATE_SOURCE,
     "labels.map.Normal", "multi-label"),
    ("mapped-and-excluded", SRC, lambda d: d["labels"].update({"exclude": {"Stone": "too few"}}), TEMPLATE_SOURCE,
     "labels.exclude", "both mapped and excluded"),
    ("duplicate-vocabulary", SRC, lambda d: d["labels"]["vocabulary"].append("Cyst"), TEMPLATE_SOURCE, "labels",
     "more than once"),
    ("unknown-overlap", SRC, _set("overlaps", [{"source": "no-such-source", "relation": "partial"}]), TEMPLATE_SOURCE,
     "overlaps[0].source", "not a known source"),
    ("absolute-expected-path", SRC, _set("expected_files", [{"path": "/etc/passwd"}]), TEMPLATE_SOURCE,
     "expected_files[0].path", "relative"),
    ("subset-unknown-source", SUB, lambda d: d["sources"].append("no-such-source"), "02-", "sources[1]",
     "not a known source"),
    ("subset-five-instructions", SUB, lambda d: d["instructions"].pop(), "02-", "instructions", "has 5"),
    ("subset-repeated-instruction", SUB, lambda d: d["instructions"].__setitem__(1, d["instructions"][0].upper()),
     "02-", "instructions", "repeats"),
    ("instruction-without-modality", SUB, lambda d: d["instructions"].__setitem__(0, "Which kidney condition is it?"),
     "02-", "instructions[0]", "modality"),
    ("instruction-without-area", SUB, lambda d: d["instructions"].__setitem__(0, "Classify this CT scan."),
     "02-", "instructions[0]", "area"),
    ("subset-dead-label", SUB, lambda d: d["labels"].append("Abscess"), "02-", "labels", "'Abscess'"),
    ("subset-bad-role", SUB, _set("role", "train"), "02-", "role", "ID"),
    ("subset-rows-changed-silently", SUB, _set("paper.source_rows", [2, 3]), "02-", "sources", "differ from the paper"),
    ("subset-without-sources", SUB, _set("sources", []), "02-", "sources", "at least 1"),
]


@pytest.mark.parametrize("case, pattern, change, file_part, field, words", SINGLE_FILE_FAULTS,
                         ids=[c[0] for c in SINGLE_FILE_FAULTS])
def test_single_fault_is_named(mini_copy, case, pattern, change, file_part, field, words):
    mini_copy.edit(pattern, change)
    _, problems = validate(mini_copy.root)
    matching = [p for p in problems if file_part in p.file and p.field == field and words in str(p)]
    assert matching, f"no problem at {file_part}:{field} mentioning {words!r}; got:\n" + "\n".join(map(str, problems))
    assert all(p.fix or p.message for p in matching)


def test_source_in_no_subset_names_the_subset_to_join(mini_copy):
    mini_copy.edit(SUB, lambda d: d.update(sources=["x-source"]))
    other = mini_copy.load(SRC)
    other.update(id="x-source")
    (mini_copy.root / "sources" / "x-source.yaml").write_text(yaml.safe_dump(other))
    _, problems = validate(mini_copy.root)
    lonely = [p for p in problems if TEMPLATE_SOURCE in p.file and "in no subset" in p.message]
    assert lonely and "subset 02" in lonely[0].fix


def test_source_in_two_subsets(mini_copy):
    second = mini_copy.load(SUB)
    second.update(id="54", task="lung-cancer", area="lung")
    (mini_copy.root / "subsets" / "54-copy.yaml").write_text(yaml.safe_dump(second))
    _, problems = validate(mini_copy.root)
    assert any(TEMPLATE_SOURCE in p.file and "in subsets ['02', '54']" in p.message for p in problems)
    # ... and the copy lists a source of another triplet.
    assert any("54-copy" in p.file and p.field == "sources[0]" and "triplet" in p.message for p in problems)


def test_duplicate_source_id_and_row(mini_copy):
    shutil.copy(mini_copy.path(SRC), mini_copy.root / "sources" / "zz-copy.yaml")
    _, problems = validate(mini_copy.root)
    assert any("zz-copy" in p.file and p.field == "id" and "already used" in p.message for p in problems)


def test_duplicate_upstream_row(mini_copy):
    other = mini_copy.load(SRC)
    other["id"] = "zz-copy"
    (mini_copy.root / "sources" / "zz-copy.yaml").write_text(yaml.safe_dump(other))
    _, problems = validate(mini_copy.root)
    assert any("zz-copy" in p.file and p.field == "upstream.row" and "also claimed" in p.message for p in problems)


def test_duplicate_subset_triplet(mini_copy):
    twin = mini_copy.load(SUB)
    twin["id"] = "60"
    (mini_copy.root / "subsets" / "60-twin.yaml").write_text(yaml.safe_dump(twin))
    _, problems = validate(mini_copy.root)
    assert any("60-twin" in p.file and p.field == "task" and "also subset 02" in p.message for p in problems)


def test_correction_allows_a_recorded_change(mini_copy):
    def change(d):
        d["upstream"]["modality"] = "MRI"
        d["corrections"] = [{"field": "modality", "upstream": "MRI", "corrected": "CT", "reason": "test"}]

    mini_copy.edit(SRC, change)
    _, problems = validate(mini_copy.root)
    assert problems == []


def test_yaml_syntax_error_gives_line(mini_copy):
    mini_copy.path(SRC).write_text("id: x\nname: [unclosed\n")
    _, problems = validate(mini_copy.root)
    syntax = [p for p in problems if TEMPLATE_SOURCE in p.file and "not valid YAML" in p.message]
    assert syntax and "line" in syntax[0].message


@pytest.mark.parametrize("content, words", [("", "empty"), ("- a\n- b\n", "a list"), ("just text", "a str")])
def test_non_mapping_yaml(mini_copy, content, words):
    mini_copy.path(SRC).write_text(content)
    _, problems = validate(mini_copy.root)
    assert any(TEMPLATE_SOURCE in p.file and words in p.message for p in problems)


def test_missing_vocabulary(mini_copy):
    (mini_copy.root / "vocabulary.yaml").unlink()
    _, problems = validate(mini_copy.root)
    assert any(p.file.endswith("vocabulary.yaml") and "missing" in p.message for p in problems)


def test_vocabulary_task_with_unknown_element(mini_copy):
    mini_copy.edit("vocabulary.yaml", lambda d: d["tasks"][0].update(element="Mood"))
    _, problems = validate(mini_copy.root)
    assert any(p.file.endswith("vocabulary.yaml") and "Mood" in p.message for p in problems)


def test_license_registry_bad_redistribution(mini_copy):
    mini_copy.edit("licenses.yaml", lambda d: d["licenses"]["mit"].update(redistribution="maybe"))
    _, problems = validate(mini_copy.root)
    assert any(p.file.endswith("licenses.yaml") and p.field == "licenses.mit.redistribution" for p in problems)


def test_not_a_folder(tmp_path):
    _, problems = validate(tmp_path / "nowhere")
    assert problems and "is not a folder" in problems[0].message
