"""Issue 15: a label the manifest does not list is quarantined as unknown in every family and custom adapter,
and a name found several times in a name-matched table is quarantined, never silently one of them.

Each case builds a small tree on disk, runs the family's adapter and the per-item work (`process_item`, where
labels are harmonised) exactly as `medmat build` does, and reads what came out. The expected verdicts are the
cases' own construction (which label the map lacks, which name was written twice), not the code's output.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmat.prepare.process import SourceContext, process_item
from medmat.registry import load_registry
from medmat.sources import RawBox, RawItem, Skipped, adapter_for
from medmat.sources.custom import chestx_det, coronahack_cxr, sicapv2_seg
from medmat.sources.families.boxes_and_rle import ImageBoxesParams, RleMasksParams, iter_image_boxes, iter_rle_masks
from medmat.sources.families.class_folders import ClassFoldersParams, iter_class_folders
from medmat.sources.families.image_mask import ImageMaskParams, iter_image_mask
from medmat.sources.families.label_table import LabelTableParams, iter_label_table
from medmat.sources.families.studies import DicomStudyParams, VolumeStudyParams, iter_dicom_study, iter_volume_study
from tests.fakes import package_file

KNOWN = {"Cyst": "Cyst", "Normal": "Normal"}  # the manifest's map: 'Abscess' is deliberately not in it


def _png(root: Path, *paths: str, size=(8, 8), value=0) -> None:
    for rel in paths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = np.random.default_rng(abs(hash(rel)) % 2**32).integers(0, 255, size[::-1], dtype=np.uint8)
        Image.fromarray(np.full(size[::-1], value, np.uint8) if value else arr).save(path, format="PNG")


def _text(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def _ctx(root: Path, mapping=KNOWN, task_type="single-label") -> SourceContext:
    labels = tuple(sorted({v for v in mapping.values()}))
    return SourceContext(source_id="t", source_row=1, subset="99", modality="CT", area="kidney", task="t",
                         task_element="disease", task_type=task_type, license="cc-by-4.0", root=str(root),
                         layout_root="", label_map=tuple((k, (v,)) for k, v in sorted(mapping.items())),
                         excluded=(), subset_labels=labels)


def _built(entries, root: Path, mapping=KNOWN) -> dict[str, dict | Skipped]:
    """path -> the MAT row or the Skipped, as a build gets them."""
    ctx, out = _ctx(root, mapping), {}
    for entry in entries:
        if isinstance(entry, RawItem):
            out[entry.key] = process_item(entry, ctx)
        else:
            out[entry.path] = entry
    return out


def _unknown(result, label="Abscess") -> bool:
    return isinstance(result, Skipped) and result.kind == "quarantined" and f"unknown label {label!r}" in result.reason


# ---- unknown labels, family by family ----

def test_class_folders_unknown_folder(tmp_path):
    _png(tmp_path, "Cyst/a.png", "Abscess/b.png")
    out = _built(iter_class_folders(tmp_path, ClassFoldersParams(extensions=["png"])), tmp_path)
    assert out["Cyst/a.png"]["labels"] == ["Cyst"]
    assert _unknown(out["Abscess/b.png"])


def test_label_table_unknown_label_and_unknown_one_hot_value(tmp_path):
    _png(tmp_path, "img/a.png", "img/b.png")
    _text(tmp_path, "labels.csv", "image,dx\na,Cyst\nb,Abscess\n")
    params = LabelTableParams(extensions=["png"], table="labels.csv", path_column="image", label_column="dx",
                              path_template="img/{}.png")
    out = _built(iter_label_table(tmp_path, params), tmp_path)
    assert out["img/a.png"]["labels"] == ["Cyst"] and _unknown(out["img/b.png"])

    # One-hot: '2' is neither positive, negative nor uncertain: the row is quarantined, not read as 'absent'
    # (which, with all_zero_label, would have made it Normal).
    _text(tmp_path, "onehot.csv", "image,Cyst\na,1\nb,2\n")
    params = LabelTableParams(extensions=["png"], table="onehot.csv", path_column="image", label_from="columns",
                              label_columns=["Cyst"], all_zero_label="Normal", path_template="img/{}.png")
    out = _built(iter_label_table(tmp_path, params), tmp_path)
    assert out["img/a.png"]["labels"] == ["Cyst"]
    assert out["img/b.png"].kind == "quarantined" and "{'Cyst': '2'}" in out["img/b.png"].reason


def test_image_mask_unknown_folder_label(tmp_path):
    _png(tmp_path, "Cyst/a.png", "Abscess/b.png")
    _png(tmp_path, "Cyst/a_mask.png", "Abscess/b_mask.png", value=255)
    params = ImageMaskParams(extensions=["png"], mask_suffix="_mask", label_from="folder")
    out = _built(iter_image_mask(tmp_path, params), tmp_path)
    assert out["Cyst/a.png"]["labels"] == ["Cyst"] and _unknown(out["Abscess/b.png"])


def test_image_boxes_unknown_box_label(tmp_path):
    _png(tmp_path, "a.png", "b.png")
    _text(tmp_path, "boxes.csv", "image,label,x0,y0,x1,y1\na.png,Cyst,1,1,4,4\nb.png,Cyst,1,1,4,4\n"
                                 "b.png,Abscess,2,2,5,5\n")
    params = ImageBoxesParams(extensions=["png"], table="boxes.csv", path_column="image", label_column="label",
                              box_columns=["x0", "y0", "x1", "y1"])
    out = _built(iter_image_boxes(tmp_path, params), tmp_path)
    assert [b["label"] for b in out["a.png"]["boxes"]] == ["Cyst"]
    assert _unknown(out["b.png"])  # one unknown box is enough: its known sibling must not carry the image


def test_rle_masks_unknown_label(tmp_path):
    _png(tmp_path, "a.png", "b.png")
    _text(tmp_path, "rle.csv", "image,kind,rle\na.png,Cyst,1 3\nb.png,Abscess,1 3\n")
    params = RleMasksParams(extensions=["png"], table="rle.csv", path_column="image", label_column="kind",
                            rle_column="rle", rle_order="absolute-row-major")
    out = _built(iter_rle_masks(tmp_path, params), tmp_path)
    assert out["a.png"]["labels"] == ["Cyst"] and _unknown(out["b.png"])


def test_dicom_study_label_outside_the_map(tmp_path):
    for rel in ("p1/series/1.dcm", "p1/series/2.dcm"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(package_file("pydicom:data/test_files/CT_small.dcm"), tmp_path / rel)
    out = _built(iter_dicom_study(tmp_path, DicomStudyParams(extensions=["dcm"], label="Abscess")), tmp_path)
    assert _unknown(out["p1/series"])


def test_volume_study_unknown_folder_label(tmp_path):
    for rel in ("Cyst/a.nii", "Abscess/b.nii"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(package_file("nibabel:tests/data/anatomical.nii"), tmp_path / rel)
    out = _built(iter_volume_study(tmp_path, VolumeStudyParams(extensions=["nii"], label_from="folder")), tmp_path)
    assert out["Cyst/a.nii"]["labels"] == ["Cyst"] and _unknown(out["Abscess/b.nii"])


def test_custom_coronahack_unknown_label(tmp_path):
    _png(tmp_path, "train/a.png", "train/b.png")
    _text(tmp_path, "meta.csv", "name,label,detail,split\na.png,Cyst,,TRAIN\nb.png,Normal,Abscess,TRAIN\n")
    params = coronahack_cxr.Params(extensions=["png"], table="meta.csv", path_column="name",
                                   label_columns=["detail", "label"], split_column="split",
                                   image_dirs={"TRAIN": ["train"]})
    out = _built(coronahack_cxr.iter_items(tmp_path, params), tmp_path)
    assert out["train/a.png"]["labels"] == ["Cyst"] and _unknown(out["train/b.png"])


def test_custom_json_records_unknown_label(tmp_path):
    _png(tmp_path, "train/a.png", "train/b.png")
    _text(tmp_path, "train.json", json.dumps([{"file_name": "a.png", "syms": ["Cyst"]},
                                              {"file_name": "b.png", "syms": ["Cyst", "Abscess"]}]))
    params = chestx_det.Params(extensions=["png"], tables={"train": "train.json"}, split_dirs={"train": "train"},
                               path_column="file_name", label_column="syms")
    out = _built(chestx_det.iter_items(tmp_path, params), tmp_path)
    assert out["train/a.png"]["labels"] == ["Cyst"] and _unknown(out["train/b.png"])


def test_custom_sicapv2_unknown_one_hot_value(tmp_path):
    _png(tmp_path, "images/a.png", "images/b.png")
    _png(tmp_path, "masks/a.png", "masks/b.png", value=255)
    _text(tmp_path, "Train.csv", "image_name,Cyst\na.png,1\nb.png,?\n")
    params = sicapv2_seg.Params(extensions=["png"], tables={"train": "Train.csv"}, path_column="image_name",
                                path_template="images/{}", label_columns=["Cyst"], mask_paths=["masks/{stem}.png"])
    out = _built(sicapv2_seg.iter_items(tmp_path, params), tmp_path)
    assert out["images/a.png"]["labels"] == ["Cyst"]
    assert out["images/b.png"].kind == "quarantined" and "'?'" in out["images/b.png"].reason
    assert out["masks/b.png"].kind == "excluded"  # goes with its patch, still accounted for


def test_annotation_label_outside_the_map_quarantines_the_item(tmp_path):
    """A custom adapter's box or mask may carry a label its image-level labels lack: still unknown."""
    _png(tmp_path, "a.png")
    item = RawItem(key="a.png", paths=("a.png",), source_labels=("Cyst",), boxes=(RawBox("Abscess", 1, 1, 3, 3),))
    assert _unknown(process_item(item, _ctx(tmp_path)))


# ---- names found N times in name-matched tables ----

def test_image_boxes_match_by_name_quarantines_a_name_found_twice(tmp_path):
    _png(tmp_path, "part1/a.png", "part2/a.png", "part1/b.png")
    _text(tmp_path, "boxes.csv", "image,label,x0,y0,x1,y1\na.png,Cyst,1,1,4,4\nb.png,Cyst,1,1,4,4\n")
    params = ImageBoxesParams(extensions=["png"], table="boxes.csv", path_column="image", label_column="label",
                              box_columns=["x0", "y0", "x1", "y1"], match_by="name")
    out = _built(iter_image_boxes(tmp_path, params), tmp_path)
    assert out["part1/b.png"]["labels"] == ["Cyst"]
    for rel in ("part1/a.png", "part2/a.png"):
        assert out[rel].kind == "quarantined" and "found 2 times" in out[rel].reason
    assert out["a.png"].kind == "quarantined" and "rows [2]" in out["a.png"].reason  # the row too


def test_rle_masks_match_by_name_and_path_key_quarantine_duplicates(tmp_path):
    _png(tmp_path, "s1/x/a.dcm.png", "s2/y/a.dcm.png", "s1/x/b.dcm.png")
    _text(tmp_path, "rle.csv", "image,rle\na.dcm.png,1 3\nb.dcm.png,-1\n")
    params = RleMasksParams(extensions=["png"], table="rle.csv", path_column="image", rle_column="rle",
                            label="Cyst", rle_order="absolute-row-major", match_by="name")
    out = _built(iter_rle_masks(tmp_path, params), tmp_path)
    assert isinstance(out["s1/x/b.dcm.png"], dict)
    assert all("found 2 times" in out[r].reason for r in ("s1/x/a.dcm.png", "s2/y/a.dcm.png"))

    keyed = params.model_copy(update={"match_by": "path_key", "path_key_regex": r"/(\w+)\.dcm\.png$"})
    _text(tmp_path, "rle.csv", "image,rle\na,1 3\nb,-1\n")
    out = _built(iter_rle_masks(tmp_path, keyed), tmp_path)
    assert isinstance(out["s1/x/b.dcm.png"], dict)
    assert all("path key 'a' found 2 times" in out[r].reason for r in ("s1/x/a.dcm.png", "s2/y/a.dcm.png"))


def test_image_mask_cross_folder_stems_found_twice(tmp_path):
    _png(tmp_path, "images/Cyst/a.png", "images/Normal/a.png", "images/Cyst/b.png")
    _png(tmp_path, "masks/a.png", "masks/b.png", value=255)
    params = ImageMaskParams(extensions=["png"], image_dirs=["images"], mask_dir="masks", label_from="folder")
    out = _built(iter_image_mask(tmp_path, params), tmp_path)
    assert out["images/Cyst/b.png"]["labels"] == ["Cyst"]
    for rel in ("images/Cyst/a.png", "images/Normal/a.png"):
        assert out[rel].kind == "quarantined" and "found 2 times" in out[rel].reason
    assert out["masks/a.png"].kind == "quarantined"  # not paired with either, and said so

    # One image, two masks of its name in different sub-folders of mask_dir: which is its own is unknown.
    _png(tmp_path, "masks/old/b.png", value=255)
    out = _built(iter_image_mask(tmp_path, params), tmp_path)
    assert out["images/Cyst/b.png"].kind == "quarantined" and "found more than once" in out["images/Cyst/b.png"].reason


def test_label_table_image_dirs_name_found_twice(tmp_path):
    _png(tmp_path, "part1/a.png", "part2/a.png")
    _text(tmp_path, "labels.csv", "image,dx\na.png,Cyst\n")
    params = LabelTableParams(extensions=["png"], table="labels.csv", path_column="image", label_column="dx",
                              image_dirs=["part1", "part2"])
    out = _built(iter_label_table(tmp_path, params), tmp_path)
    assert out["a.png"].kind == "quarantined" and "found 2 times" in out["a.png"].reason


# ---- the shipped manifests ----

# Every parameter that gives a label to something no label cell names, with the sources allowed to use it after
# review (and why). Adding one to a manifest without adding it here fails this test.
REVIEWED_CATCH_ALLS = {
    ("acrima", "default_label"): "names matching the anchored regex without '_g_' are the normal eyes "
                                 "(ACRIMA's own naming: Im001_ACRIMA.jpg vs Im310_g_ACRIMA.jpg)",
    ("isic-2017-task3", "all_zero_label"): "neither melanoma nor seborrheic keratosis = nevus (the challenge's "
                                           "three classes, two one-hot columns)",
    ("vindr-pcxr-det", "no_box_labels"): "'No finding' rows carry no box (VinDr annotation format)",
    ("vindr-spinexr-det", "no_box_labels"): "'No finding' rows carry no box (VinDr annotation format)",
}
CATCH_ALL_FIELDS = ("default_label", "all_zero_label", "no_box_labels")


def test_no_shipped_source_uses_an_unreviewed_catch_all():
    registry, _ = load_registry()
    used = set()
    for sid, source in registry.sources.items():
        params = adapter_for(source).params
        for name in CATCH_ALL_FIELDS:
            if getattr(params, name, None):
                used.add((sid, name))
    assert used == set(REVIEWED_CATCH_ALLS)


def test_default_label_without_an_anchored_regex_is_refused():
    with pytest.raises(ValueError, match="no catch-all"):
        ClassFoldersParams(extensions=["png"], label_from="filename", default_label="ng")
    with pytest.raises(ValueError, match="no catch-all"):
        ClassFoldersParams(extensions=["png"], label_from="filename", default_label="ng", filename_regex=r"_g_")


def test_label_table_group_table_naming_a_key_twice_with_two_groups(tmp_path):
    """A lesion-grouping table (ISIC 2018/2019 style) that gives one image two lesion ids cannot say which keeps
    the image with its lesion's other images: quarantined, not the last row's id."""
    _png(tmp_path, "img/a.png", "img/b.png")
    _text(tmp_path, "labels.csv", "image,dx\na,Cyst\nb,Cyst\n")
    _text(tmp_path, "groups.csv", "image,lesion_id\na,L1\nb,L2\nb,L3\n")
    params = LabelTableParams(extensions=["png"], table="labels.csv", path_column="image", label_column="dx",
                              path_template="img/{}.png", groups={"table": "groups.csv", "key_column": "image",
                                                                  "group_column": "lesion_id"})
    out = _built(iter_label_table(tmp_path, params), tmp_path)
    assert out["img/a.png"]["group_id"] == "L1"
    assert out["img/b.png"].kind == "quarantined" and "two different lesion_id" in out["img/b.png"].reason


def test_a_folder_turned_into_a_link_is_refused_in_the_next_run(tmp_path):
    # Folders checked for links are remembered per run (one build of a source), never across runs: a notebook
    # or a reused Ray worker that builds again after `class/` became a link must refuse the file.
    import dataclasses
    import shutil

    from medmat.prepare.process import confined
    from medmat.readers import ReadError

    folder, elsewhere = tmp_path / "src", tmp_path / "elsewhere"
    (folder / "class").mkdir(parents=True)
    (folder / "class" / "a.png").write_bytes(b"x")
    ctx = dataclasses.replace(_ctx(folder), source_dir=str(folder), run="first")
    assert confined(folder, "class/a.png", ctx) == folder / "class" / "a.png"
    shutil.move(folder / "class", elsewhere)
    (folder / "class").symlink_to(elsewhere, target_is_directory=True)
    assert confined(folder, "class/a.png", ctx)  # the same run remembers its check (one build, one tree)
    with pytest.raises(ReadError, match="symbolic link"):
        confined(folder, "class/a.png", dataclasses.replace(ctx, run="second"))
