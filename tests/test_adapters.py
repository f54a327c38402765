"""The layout families on small trees made here: what each yields, and how every file is accounted for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medmat.sources import RawItem, Skipped
from medmat.sources.families.boxes_and_rle import ImageBoxesParams, RleMasksParams, iter_image_boxes, iter_rle_masks
from medmat.sources.families.class_folders import ClassFoldersParams, iter_class_folders
from medmat.sources.families.image_mask import ImageMaskParams, iter_image_mask
from medmat.sources.families.label_table import LabelTableParams, iter_label_table
from medmat.prepare.masks import MaskError, decode_rle, extent_boxes


def _touch(root: Path, *paths: str, text: str | None = None) -> None:
    for rel in paths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if text is not None:
            path.write_text(text)
        else:
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(path, format="PNG")


def _split(entries):
    entries = list(entries)
    items = {e.key: e for e in entries if isinstance(e, RawItem)}
    skipped = {e.path: e for e in entries if isinstance(e, Skipped)}
    return items, skipped


def test_class_folders_with_split_level(tmp_path):
    _touch(tmp_path, "train/Cyst/a.png", "val/Normal/b.png", "train/readme.txt")
    items, skipped = _split(iter_class_folders(tmp_path, ClassFoldersParams(
        extensions=["png"], split_from="folder", split_names={"val": "validation"})))
    assert items["train/Cyst/a.png"].source_labels == ("Cyst",)
    assert items["val/Normal/b.png"].original_split == "validation"
    assert skipped["train/readme.txt"].kind == "excluded"


def test_class_folders_label_from_filename_with_default(tmp_path):
    _touch(tmp_path, "Images/Im001_ACRIMA.png", "Images/Im309_g_ACRIMA.png", "Images/odd.png")
    params = ClassFoldersParams(extensions=["png"], label_from="filename", default_label="ng",
                                filename_regex=r"^Im\d+_(?:(?P<label>g)_)?ACRIMA\.png$")
    items, skipped = _split(iter_class_folders(tmp_path, params))
    assert items["Images/Im001_ACRIMA.png"].source_labels == ("ng",)
    assert items["Images/Im309_g_ACRIMA.png"].source_labels == ("g",)
    assert skipped["Images/odd.png"].kind == "quarantined"


def test_label_table_split_tables_groups_and_unlisted(tmp_path):
    _touch(tmp_path, "train/a.png", "train/b.png", "test/c.png", "train/extra.png")
    _touch(tmp_path, "train.csv", text="image,dx\na,MEL\nb,NV\nb,NV\nghost,MEL\n")
    _touch(tmp_path, "test.csv", text="image,dx\nc,MEL\n")
    _touch(tmp_path, "meta.csv", text="image,lesion_id\na,L1\nb,L1\nc,\n")
    params = LabelTableParams(extensions=["png"], path_column="image", label_column="dx", tables=[
        {"table": "train.csv", "split": "train", "path_template": "train/{}.png"},
        {"table": "test.csv", "split": "test", "path_template": "test/{}.png"}],
        groups={"table": "meta.csv", "key_column": "image", "group_column": "lesion_id"}, unlisted="exclude")
    items, skipped = _split(iter_label_table(tmp_path, params))
    assert set(items) == {"train/a.png", "train/b.png", "test/c.png"}
    assert items["train/a.png"].group_id == items["train/b.png"].group_id == "L1"
    assert items["test/c.png"].group_id is None and items["test/c.png"].original_split == "test"
    assert "repeats this image" in skipped["train/b.png"].reason
    assert "names a file that is missing" in skipped["train/ghost.png"].reason
    assert skipped["train/extra.png"].kind == "excluded"


def test_label_table_finds_images_by_stem_when_the_extension_varies(tmp_path):
    _touch(tmp_path, "images/(0001)aria_d_26.tif", "images/sub/12.png", "images/13.png")
    _touch(tmp_path, "train_data.csv", text="ID,DR\n(0001)aria_d_26,1\n12,0\nghost,1\n")
    params = LabelTableParams(extensions=["png", "tif"], table="train_data.csv", path_column="ID",
                              path_template="images/{}", image_dirs=["images"], match_stem=True,
                              label_from="columns", label_columns=["DR"], all_zero_label="none")
    items, skipped = _split(iter_label_table(tmp_path, params))
    assert items["images/(0001)aria_d_26.tif"].source_labels == ("DR",)
    assert items["images/sub/12.png"].source_labels == ("none",)
    assert "names a file that is missing" in skipped["images/ghost"].reason
    assert skipped["images/13.png"].kind == "quarantined"


def test_label_table_needs_exactly_one_table_source():
    with pytest.raises(ValueError, match="either `table`"):
        LabelTableParams(extensions=["png"], path_column="p", label_column="l")


def test_label_table_multi_label_cells(tmp_path):
    _touch(tmp_path, "a.png", "b.png", "c.png")
    _touch(tmp_path, "labels.csv", text='path,findings,lists\na.png,Mass|Mass|Nodule,"[\'Mass\', \'Nodule\']"\n'
                                        "b.png,No Finding,['No Finding']\nc.png,,[]\n")
    for column, extra in (("findings", {"label_separator": "|"}), ("lists", {"label_format": "python-list"})):
        params = LabelTableParams(extensions=["png"], table="labels.csv", path_column="path", label_column=column,
                                  **extra)
        items, skipped = _split(iter_label_table(tmp_path, params))
        assert items["a.png"].source_labels == ("Mass", "Nodule")
        assert items["b.png"].source_labels == ("No Finding",)
        assert "has no label" in skipped["c.png"].reason


def test_label_table_one_hot_with_uncertain_and_all_zero(tmp_path):
    _touch(tmp_path, "a.png", "b.png", "c.png")
    _touch(tmp_path, "gt.csv", text="image,MEL,NV,SK\na.png,1.0,0.0,0.0\nb.png,0,0,0\nc.png,-1.0,0,1\n")
    params = LabelTableParams(extensions=["png"], table="gt.csv", path_column="image", label_from="columns",
                              label_columns=["MEL", "NV", "SK"], uncertain_values=["-1.0"], all_zero_label="other")
    items, skipped = _split(iter_label_table(tmp_path, params))
    assert items["a.png"].source_labels == ("MEL",)
    assert items["b.png"].source_labels == ("other",)
    assert skipped["c.png"].kind == "excluded" and "uncertain" in skipped["c.png"].reason


def test_image_mask_suffix_mode_with_several_masks(tmp_path):
    _touch(tmp_path, "benign/b (1).png", "benign/b (1)_mask.png", "benign/b (1)_mask_1.png",
           "benign/b (2).png", "benign/orphan_mask.png")
    params = ImageMaskParams(extensions=["png"], mask_suffix="_mask", multiple_masks=True, label_from="folder")
    items, skipped = _split(iter_image_mask(tmp_path, params))
    assert [m for _, m in items["benign/b (1).png"].masks] == ["benign/b (1)_mask.png", "benign/b (1)_mask_1.png"]
    assert items["benign/b (1).png"].source_labels == ("benign",)
    assert skipped["benign/b (2).png"].reason == "image has no mask file"
    assert skipped["benign/orphan_mask.png"].reason == "mask file without a matching image"


def test_image_mask_template_mode(tmp_path):
    _touch(tmp_path, "train/Original/1.png", "train/Ground truth/1.png", "test/Original/2.png",
           "test/Ground truth/2.png", "test/Original/3.png")
    params = ImageMaskParams(extensions=["png"], image_regex=r"^(?P<split>\w+)/Original/(?P<stem>\d+)\.png$",
                             mask_paths={"vessel": "{split}/Ground truth/{stem}.png"})
    items, skipped = _split(iter_image_mask(tmp_path, params))
    assert set(items) == {"train/Original/1.png", "test/Original/2.png"}
    assert items["test/Original/2.png"].original_split == "test"
    assert items["train/Original/1.png"].masks == (("vessel", "train/Ground truth/1.png"),)
    assert "no mask file" in skipped["test/Original/3.png"].reason


def test_image_boxes_xywh_and_no_box_rows(tmp_path):
    _touch(tmp_path, "a.png", "b.png", "c.png")
    _touch(tmp_path, "boxes.csv", text="image,label,x,y,w,h\na,Nodule,1,2,3,4\na,Mass,0,0,2,2\nb,No finding,,,,\n"
                                       "c,Mass,5,5,-1,2\n")
    params = ImageBoxesParams(extensions=["png"], table="boxes.csv", path_column="image", path_template="{}.png",
                              label_column="label", box_columns=["x", "y", "w", "h"], box_encoding="xywh",
                              no_box_labels=["No finding"])
    items, skipped = _split(iter_image_boxes(tmp_path, params))
    assert [(b.label, b.x_max, b.y_max) for b in items["a.png"].boxes] == [("Nodule", 4.0, 6.0), ("Mass", 2.0, 2.0)]
    assert items["b.png"].boxes == () and items["b.png"].source_labels == ()
    assert "empty or inverted box" in skipped["c.png"].reason


def _rle_relative_column_major(mask: np.ndarray) -> str:
    flat = mask.T.ravel()
    runs, position, i = [], 0, 0
    while i < flat.size:
        if flat[i]:
            j = i
            while j < flat.size and flat[j]:
                j += 1
            runs += [i - position, j - i]
            position, i = j, j
        else:
            i += 1
    return " ".join(map(str, runs))


def _rle_absolute_row_major(mask: np.ndarray) -> str:
    flat = np.concatenate([[0], mask.ravel().astype(int), [0]])
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts, ends = edges[0::2], edges[1::2]
    return " ".join(f"{s} {e - s}" for s, e in zip(starts, ends))


@pytest.mark.parametrize("order, encode", [("relative-column-major", _rle_relative_column_major),
                                           ("absolute-row-major", _rle_absolute_row_major)])
def test_rle_round_trip(order, encode):
    mask = np.zeros((7, 9), bool)
    mask[1:4, 2:6] = True
    mask[5, 0:9] = True
    assert np.array_equal(decode_rle(encode(mask), mask.shape, order), mask)


def test_rle_outside_the_image_is_an_error():
    with pytest.raises(MaskError, match="outside"):
        decode_rle("60 10", (7, 9), "absolute-row-major")


def test_rle_table(tmp_path):
    _touch(tmp_path, "a.png", "b.png")
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    _touch(tmp_path, "train.csv", text=f"ImageId, EncodedPixels\na,{_rle_relative_column_major(mask)}\nb,-1\n")
    params = RleMasksParams(extensions=["png"], table="train.csv", path_column="ImageId", path_template="{}.png",
                            rle_column=" EncodedPixels", label="Pneumothorax", rle_order="relative-column-major")
    items, _ = _split(iter_rle_masks(tmp_path, params))
    assert items["a.png"].source_labels == ("Pneumothorax",) and items["b.png"].rles == ()


def test_extent_boxes_is_the_outer_extent():
    mask = np.zeros((10, 10), bool)
    mask[2:4, 3:5] = True
    mask[7, 8] = True
    assert extent_boxes(mask, "Polyp") == [{"label": "Polyp", "x_min": 3.0, "y_min": 2.0, "x_max": 9.0, "y_max": 8.0}]
    assert extent_boxes(np.zeros((3, 3), bool), "Polyp") == []
