"""Box and mask scoring (medmat.train.scoring): values worked out by hand, each backbone's text style round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from medmat.train.scoring import (
    BoxFormatError,
    box_of_mask,
    format_answer,
    format_box,
    iou,
    mask_ciou,
    parse_boxes,
    score_boxes,
)


def test_iou_by_hand():
    # Two 10x10 squares offset by 5: intersection 5x5 = 25, union 100 + 100 - 25 = 175.
    assert iou((0, 0, 10, 10), (5, 5, 15, 15)) == pytest.approx(25 / 175)
    assert iou((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0  # touching corners
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0


def test_formats_are_the_backbones_own():
    box, w, h = (20, 10, 120, 60), 200, 100  # normalised: 0.1, 0.1, 0.6, 0.6
    assert format_box(box, w, h, "qwen-vl") == "<|box_start|>(100,100),(600,600)<|box_end|>"
    assert format_box(box, w, h, "minigpt-v2") == "{<10><10><60><60>}"
    assert format_box(box, w, h, "nextchat") == "[0.100,0.100,0.600,0.600]"
    assert format_box(box, w, h, "medmat") == "[100, 100, 600, 600]"
    with pytest.raises(BoxFormatError, match="unknown box style"):
        format_box(box, w, h, "yolo")


@pytest.mark.parametrize("style", ["qwen-vl", "minigpt-v2", "nextchat", "medmat"])
def test_answers_round_trip(style):
    boxes = [{"label": "polyp", "x_min": 20, "y_min": 10, "x_max": 120, "y_max": 60},
             {"label": "polyp", "x_min": 150, "y_min": 50, "x_max": 190, "y_max": 90}]
    text = format_answer(boxes, 200, 100, style)
    got = parse_boxes(text, 200, 100, style)
    assert sorted(got) == sorted([(20.0, 10.0, 120.0, 60.0), (150.0, 50.0, 190.0, 90.0)])
    if style == "minigpt-v2":
        assert text.startswith("[detection] <p>polyp</p> {<10><10><60><60>}")


def test_cumulative_and_mean_iou_by_hand():
    rows = [{"id": "a", "width": 100, "height": 100, "boxes": [{"label": "x", "x_min": 0, "y_min": 0, "x_max": 10,
                                                                 "y_max": 10}]},
            {"id": "b", "width": 100, "height": 100, "boxes": [{"label": "x", "x_min": 0, "y_min": 0, "x_max": 20,
                                                                 "y_max": 20}]},
            {"id": "c", "width": 100, "height": 100, "boxes": []},
            {"id": "d", "width": 100, "height": 100, "boxes": [{"label": "x", "x_min": 50, "y_min": 50, "x_max": 60,
                                                                 "y_max": 60}]}]
    replies = ["<|box_start|>(0,0),(100,100)<|box_end|>",   # exact: 100 / 100
               "<|box_start|>(0,0),(100,100)<|box_end|>",   # inside gold: 100 / 400
               "anything",                                  # no gold box: skipped
               "I cannot tell"]                             # unparsed: 0 / 100
    out = score_boxes(rows, replies, "qwen-vl")
    # cIoU = (100 + 100 + 0) / (100 + 400 + 100) = 33.33; mean IoU = (1 + 0.25 + 0) / 3 = 41.67; Acc@0.5 = 1/3.
    assert (out["ciou"], out["mean_iou"], out["acc_at_50"]) == (33.33, 41.67, 33.33)
    assert (out["objects"], out["samples"], out["unparsed"], out["skipped"]) == (3, 3, 1, 1)


def test_an_extra_wrong_box_costs_in_the_union():
    row = {"id": "a", "width": 100, "height": 100, "boxes": [{"label": "x", "x_min": 0, "y_min": 0, "x_max": 10,
                                                               "y_max": 10}]}
    out = score_boxes([row], ["{<0><0><10><10>} {<50><50><60><60>}"], "minigpt-v2")
    assert out["ciou"] == 50.0 and out["mean_iou"] == 100.0  # 100 / (100 + 100)


def test_masks_and_their_outer_box():
    gold = np.zeros((10, 10), bool)
    gold[2:6, 3:7] = True  # 16 pixels
    pred = np.zeros((10, 10), bool)
    pred[4:8, 3:7] = True  # 16 pixels, 8 shared
    assert box_of_mask(gold) == (3, 2, 7, 6)
    assert box_of_mask(np.zeros((4, 4))) is None
    out = mask_ciou([pred, gold], [gold, gold])
    # (8 + 16) / (24 + 16) = 60%; mean of 8/24 and 1.
    assert out["ciou"] == 60.0 and out["mean_iou"] == pytest.approx(100 * (1 / 3 + 1) / 2, abs=0.01)
