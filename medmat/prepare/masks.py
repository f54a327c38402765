"""Masks: run-length decoding and boxes from a mask's outer extent (the paper's rule for segmentation sources)."""

from __future__ import annotations

import numpy as np


class MaskError(Exception):
    pass


def decode_rle(rle: str, shape: tuple[int, int], order: str | None) -> np.ndarray:
    """Decode one run-length string into a boolean (height, width) mask.

    relative-column-major: SIIM-ACR; pairs of (offset from the end of the previous run, length), column-major.
    absolute-row-major: UW-Madison and most Kaggle RLE; pairs of (1-based start, length), row-major.
    """
    height, width = shape
    try:
        numbers = [int(x) for x in rle.split()]
    except ValueError as exc:
        raise MaskError(f"run-length string is not integers: {rle[:40]!r}") from exc
    if len(numbers) % 2:
        raise MaskError("run-length string has an odd number of values")
    flat = np.zeros(height * width, dtype=bool)
    position = 0
    for start, length in zip(numbers[0::2], numbers[1::2]):
        begin = position + start if order == "relative-column-major" else start - 1
        end = begin + length
        if begin < 0 or length < 0 or end > flat.size:
            raise MaskError(f"run ({start}, {length}) falls outside a {width}x{height} image")
        flat[begin:end] = True
        position = end
    if order == "relative-column-major":
        return flat.reshape(width, height).T
    return flat.reshape(height, width)


def extent_boxes(binary: np.ndarray, label: str) -> list[dict]:
    """One box per label: the outer extent of all its pixels (inclusive-exclusive pixel coordinates)."""
    rows = np.flatnonzero(binary.any(axis=1))
    cols = np.flatnonzero(binary.any(axis=0))
    if rows.size == 0:
        return []
    return [{"label": label, "x_min": float(cols[0]), "y_min": float(rows[0]),
             "x_max": float(cols[-1] + 1), "y_max": float(rows[-1] + 1)}]
