"""ISBI 2016 / ISIC 2016 Part 3B (lesion classification): two header-less ground-truth files, one per official
split, each row `ISIC_<id>,<label>` naming <split folder>/ISIC_<id>.jpg; the _Segmentation.png masks beside the
images are excluded. Shared logic: builders/_split_tables.py."""

from builders._split_tables import SplitTablesParams as Params
from builders._split_tables import iter_split_tables as iter_items

__all__ = ["Params", "iter_items"]
