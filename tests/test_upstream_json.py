"""Upstream Med-MAT JSON: export writes the upstream files exactly, import maps them back onto built samples."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from medmat.cli import app
from medmat.hub.upstream_json import (
    ANSWER_INSTRUCTION,
    UPSTREAM_FIELDS,
    UpstreamError,
    export_upstream,
    import_upstream,
    parse_file_name,
    parse_question_choice,
)

from .minihub import mat_rows, write_hub_folder, write_parquet

UPSTREAM_TYPES = {"id": int, "caption": str, "image": str, "Question": str, "Answer": str,
                  "Question-choice": str, "Answer-choice": str, "data-no": str}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("built")
    rows = mat_rows()
    return {"rows": {r["id"]: r for r in rows}, "hub": write_hub_folder(root / "hub", rows)}


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_export_writes_upstream_files_with_upstream_fields_and_types(built, tmp_path):
    out = tmp_path / "json"
    counts = export_upstream([built["hub"]], out, config="subset-03")
    counts |= export_upstream([built["hub"]], out, config="subset-10")
    counts |= export_upstream([built["hub"]], out, config="source-src-ct-b")
    rows = built["rows"]
    assert counts == {
        "Subset--03-train.json": sum(r["subset"] == "03" and r["split"] == "train" for r in rows.values()),
        "Subset--03-test.json": sum(r["subset"] == "03" and r["split"] == "test" for r in rows.values()),
        "Subset--10-train.json": sum(r["subset"] == "10" and r["split"] == "train" for r in rows.values()),
        "Subset--10-test.json": sum(r["subset"] == "10" and r["split"] == "test" for r in rows.values()),
        "ori--04-train.json": sum(r["source_id"] == "src-ct-b" for r in rows.values()),
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(counts)
    by_image = {f"{r['source_id']}/{r['original_path']}": r for r in rows.values()}
    for name in counts:
        records = _load(out / name)
        assert isinstance(records, list) and len(records) == counts[name]
        assert [rec["id"] for rec in records] == list(range(len(records)))  # sequential per file
        for rec in records:
            assert list(rec) == sorted(UPSTREAM_FIELDS)  # exactly the upstream fields, keys sorted
            assert {k: type(v) for k, v in rec.items()} == UPSTREAM_TYPES
            row = by_image[rec["image"]]
            assert rec["data-no"] == str(row["source_row"])
            assert rec["caption"] == ", ".join(row["source_labels"])
            assert (rec["Question"], rec["Answer"]) == (row["question"], row["answer"])
            question, options = parse_question_choice(rec["Question-choice"])
            assert question == rec["Question"]
            assert 1 <= len(options) <= 4 and "".join(options) == "ABCD"[: len(options)]
            assert options[rec["Answer-choice"]] == rec["Answer"]  # the answer is among the options, at its letter
            assert rec["Question-choice"].endswith("\n" + ANSWER_INSTRUCTION)
    multi = _load(out / "Subset--10-train.json") + _load(out / "Subset--10-test.json")
    assert {"Cataract, Glaucoma", "Myopia", "Normal"} == {rec["Answer"] for rec in multi}  # "Normal" when empty


def test_round_trip_export_import_maps_every_record_to_its_sample(built, tmp_path):
    out = tmp_path / "json"
    for config in ("subset-03", "subset-10", "source-src-ct-a", "source-src-fundus"):
        export_upstream([built["hub"]], out, config=config)
    report = import_upstream([out], [built["hub"] / "data"])
    assert report.unmatched == 0 and report.invalid == 0
    assert report.matched == sum(f.records for f in report.files) == len(report.mapping) > 0
    assert {f.file for f in report.files} == {p.name for p in out.iterdir()}
    for item in report.mapping:
        row = built["rows"][item["medmat_id"]]
        assert item["match"] == "exact"
        assert item["data-no"] == str(row["source_row"])
        assert item["image"] == f"{row['source_id']}/{row['original_path']}"
    # and the records' QA is the built sample's QA
    records = {(p.name, r["id"]): r for p in out.iterdir() for r in _load(p)}
    for item in report.mapping:
        rec, row = records[(item["file"], item["id"])], built["rows"][item["medmat_id"]]
        assert (rec["Answer"], rec["Answer-choice"], rec["Question-choice"]) == (
            row["answer"], row["answer_choice"], row["question_choice"])


def test_export_is_deterministic_whatever_the_input_order(built, tmp_path):
    rows = list(built["rows"].values())
    a = write_parquet(rows[: len(rows) // 2], tmp_path / "in" / "a.parquet")
    b = write_parquet(rows[len(rows) // 2:], tmp_path / "in" / "b.parquet")
    one = export_upstream([a, b], tmp_path / "one")
    two = export_upstream([b, a], tmp_path / "two")
    assert one == two and set(one) == {"Subset--03-train.json", "Subset--03-test.json",
                                        "Subset--10-train.json", "Subset--10-test.json"}
    for name in one:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    ori = export_upstream([b, a], tmp_path / "ori", kind="ori")
    assert ori == {"ori--03-train.json": 6, "ori--04-train.json": 6, "ori--41-train.json": 6}


@pytest.mark.parametrize("name, kind, number, split", [
    ("Subset--03-train.json", "subset", "03", "train"),
    ("Subset-03-test.json", "subset", "03", "test"),
    ("subset--3-train.json", "subset", "03", "train"),
    ("ori--04-train.json", "ori", "4", "train"),
    ("Ori--04-train.json", "ori", "4", "train"),
    ("Ori-104-train.json", "ori", "104", "train"),
])
def test_file_name_spellings(name, kind, number, split, tmp_path):
    parsed = parse_file_name(tmp_path / name)
    assert (parsed.kind, parsed.number, parsed.split) == (kind, number, split)


@pytest.mark.parametrize("name", ["Subset_03-train.json", "subset--03.json", "orig--04-train.json", "x.json"])
def test_file_name_refused_with_expected_pattern(name, tmp_path):
    with pytest.raises(UpstreamError, match="expected Subset--NN-<split>.json"):
        parse_file_name(tmp_path / name)


def test_import_tolerates_upstream_spellings(built, tmp_path):
    out = tmp_path / "json"
    export_upstream([built["hub"]], out, config="subset-03")
    export_upstream([built["hub"]], out, config="source-src-ct-a")
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    shutil.copy(out / "Subset--03-train.json", renamed / "Subset-03-train.json")
    shutil.copy(out / "Subset--03-test.json", renamed / "subset--03-test.json")
    shutil.copy(out / "ori--03-train.json", renamed / "Ori--03-train.json")
    report = import_upstream([renamed], [built["hub"] / "data"])
    assert [(f.file, f.kind, f.number, f.matched, f.unmatched) for f in report.files] == [
        ("Ori--03-train.json", "ori", "3", 6, 0),
        ("Subset-03-train.json", "subset", "03", 8, 0),
        ("subset--03-test.json", "subset", "03", 4, 0),
    ]


def _record(**change):
    rec = {"id": 0, "caption": "normal", "image": "src-ct-a/images/train/Normal/img_001.png", "Question": "Q?",
           "Answer": "Normal", "Question-choice": f"Q?\nA: COVID-19\nB: Normal\n{ANSWER_INSTRUCTION}",
           "Answer-choice": "B", "data-no": "3"}
    return rec | change


def test_import_matches_other_path_layouts_and_counts_unmatched(built, tmp_path):
    records = [
        _record(id=0),                                                             # exact
        _record(id=1, image="Subset/03/src-ct-a-files/images/train/Normal/img_001.png"),  # other prefix -> suffix
        _record(id=2, image="img_002.png", **{"data-no": 3}),                     # unique file name; int data-no
        _record(id=3, image="src-ct-a/images/train/Normal/img_999.png"),           # not built
        _record(id=4, **{"data-no": "77"}),                                        # no such source row
    ]
    path = tmp_path / "Subset--03-train.json"
    path.write_text(json.dumps(records))
    report = import_upstream([path], [built["hub"]], config="source-src-ct-a")
    assert [m["match"] for m in report.mapping] == ["exact", "suffix", "name", "none", "none"]
    first = "src-ct-a/images/train/Normal/img_001.png"
    assert report.mapping[1]["medmat_id"] == report.mapping[0]["medmat_id"] == first
    assert report.mapping[2]["medmat_id"].endswith("img_002.png") and report.mapping[2]["data-no"] == "3"
    assert (report.matched, report.unmatched, report.invalid) == (3, 2, 0)


@pytest.mark.parametrize("change, message", [
    ({"Answer-choice": "C"}, "not one of the options"),
    ({"Answer": "COVID-19"}, "not the Answer"),
    ({"Question-choice": "Q?\nA: Normal\nB: COVID-19"}, "must end with"),
    ({"Question-choice": f"Q?\nA: a\nB: b\nC: c\nD: d\nE: Normal\n{ANSWER_INSTRUCTION}"}, "at most 4"),
    ({"data-no": "three"}, "data-no: String should match pattern"),
    ({"id": "first"}, "id: Input should be a valid integer"),
    ({"extra": 1}, "extra: Extra inputs are not permitted"),
])
def test_invalid_records_are_reported_with_file_and_index(change, message, built, tmp_path):
    path = tmp_path / "Subset--03-train.json"
    path.write_text(json.dumps([_record(id=0), _record(**{"id": 1} | change)]))
    with pytest.raises(UpstreamError, match=message) as info:
        import_upstream([path], [built["hub"] / "data"])
    assert f"{path}: record 1" in str(info.value) and "--skip-invalid" in str(info.value)
    report = import_upstream([path], [built["hub"] / "data"], skip_invalid=True)
    assert (report.files[0].records, report.matched, report.invalid) == (2, 1, 1)


def test_missing_field_is_invalid(built, tmp_path):
    record = _record()
    del record["Answer-choice"]
    path = tmp_path / "Subset--03-train.json"
    path.write_text(json.dumps([record]))
    with pytest.raises(UpstreamError, match="Answer-choice: Field required"):
        import_upstream([path], [built["hub"] / "data"])


def test_export_refuses_rows_without_qa_and_unknown_configs(built, tmp_path):
    rows = [dict(r, question=None) for r in list(built["rows"].values())[:2]]
    bare = write_parquet(rows, tmp_path / "bare.parquet")
    with pytest.raises(UpstreamError, match=f"sample {rows[0]['id']}: no question"):
        export_upstream([bare], tmp_path / "out")
    with pytest.raises(UpstreamError, match="name a config with --config .*subset-03"):
        export_upstream([built["hub"]], tmp_path / "out")
    with pytest.raises(UpstreamError, match="no config 'subset-99'; available: .*source-src-ct-a"):
        export_upstream([built["hub"]], tmp_path / "out", config="subset-99")


def test_cli_export_then_import(built, tmp_path):
    runner = CliRunner()
    out = tmp_path / "json"
    result = runner.invoke(app, ["export", str(built["hub"]), "--config", "subset-03", "--format", "medmat-json",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Subset--03-train.json: 8 records" in result.output
    mapping = tmp_path / "map.jsonl"
    result = runner.invoke(app, ["import-upstream", str(out), "--built", str(built["hub"] / "data"),
                                 "--out", str(mapping)])
    assert result.exit_code == 0, result.output
    assert "matched 12, unmatched 0, invalid 0" in result.output
    lines = [json.loads(line) for line in mapping.read_text().splitlines()]
    assert len(lines) == 12 and all(line["medmat_id"] in built["rows"] for line in lines)
    result = runner.invoke(app, ["export", str(built["hub"]), "--out", str(out)])
    assert result.exit_code == 1 and "--config" in result.output
