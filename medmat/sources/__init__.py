"""Source adapters: one per layout family (`families/`), chosen and parameterised by a manifest's `layout`.

Sources whose layout no family expresses have a small module `custom/<source_id>.py` (dashes become
underscores) defining `Params` (a subclass of `AdapterParams`) and `iter_items(root, params)`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from pydantic import ValidationError

from ..registry import Problem, Registry
from ..registry.models import LayoutFamily, Source
from .base import AdapterParams, Entry, RawBox, RawItem, Skipped
from .families.boxes_and_rle import ImageBoxesParams, RleMasksParams, iter_image_boxes, iter_rle_masks
from .families.class_folders import ClassFoldersParams, iter_class_folders
from .families.image_mask import ImageMaskParams, iter_image_mask
from .families.label_table import LabelTableParams, iter_label_table
from .families.studies import DicomStudyParams, VolumeStudyParams, iter_dicom_study, iter_volume_study

FAMILIES: dict[LayoutFamily, tuple[type[AdapterParams], Callable[[Path, AdapterParams], Iterator[Entry]]]] = {
    LayoutFamily.class_folders: (ClassFoldersParams, iter_class_folders),
    LayoutFamily.label_table: (LabelTableParams, iter_label_table),
    LayoutFamily.image_mask: (ImageMaskParams, iter_image_mask),
    LayoutFamily.image_boxes: (ImageBoxesParams, iter_image_boxes),
    LayoutFamily.rle_masks: (RleMasksParams, iter_rle_masks),
    LayoutFamily.dicom_study: (DicomStudyParams, iter_dicom_study),
    LayoutFamily.volume_study: (VolumeStudyParams, iter_volume_study),
}


class AdapterError(Exception):
    pass


def builder_module_name(source_id: str) -> str:
    return "medmat.sources.custom." + source_id.replace("-", "_")


def _custom(source: Source):
    name = builder_module_name(source.id)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise AdapterError(f"layout family 'custom' needs {name.replace('.', '/')}.py defining Params and "
                           "iter_items(root, params)") from exc
    return module.Params, module.iter_items


@dataclass(frozen=True)
class Adapter:
    source: Source
    params: AdapterParams
    iterate: Callable[[Path, AdapterParams], Iterator[Entry]]

    def entries(self, source_dir: Path) -> Iterator[Entry]:
        """Everything under DIR/<source-id>/<layout.root>, in a stable order."""
        root = source_dir / self.source.layout.root if self.source.layout.root else source_dir
        if not root.is_dir():
            raise AdapterError(f"{root} is missing: put the {self.source.id} files under {source_dir} "
                               f"(expected: {', '.join(f.path for f in self.source.expected_files)})")
        return self.iterate(root, self.params)


def adapter_for(source: Source) -> Adapter:
    """The adapter of a source, its params checked; raises ValidationError (pydantic) for bad params."""
    family = source.layout.family
    model, iterate = _custom(source) if family is LayoutFamily.custom else FAMILIES[family]
    params = model.model_validate(source.layout.params)
    return Adapter(source=source, params=params, iterate=iterate)


def check_params(source: Source) -> list[tuple[str, str]]:
    """(field, message) for each problem with a source's layout.params; [] when they fit the family."""
    try:
        adapter_for(source)
    except AdapterError as exc:
        return [("layout.family", str(exc))]
    except ValidationError as exc:
        return [(".".join(str(p) for p in ("layout", "params", *err["loc"])), err["msg"].removeprefix("Value error, "))
                for err in exc.errors(include_url=False)]
    return []


def layout_problems(registry: Registry) -> list[Problem]:
    """A problem for each source whose `layout.params` do not fit its family (part of `medmat validate`)."""
    from ..readers.registry import ReaderOptions  # pydantic only

    found = []
    for sid, source in sorted(registry.sources.items()):
        shown = registry.source_files.get(sid, sid)
        found += [Problem(shown, field, message, "see docs/layouts.md for the parameters of each layout family")
                  for field, message in check_params(source)]
        try:
            ReaderOptions.model_validate(source.layout.reader)
        except ValidationError as exc:
            found += [Problem(shown, ".".join(str(p) for p in ("layout", "reader", *e["loc"])), e["msg"],
                              "see medmat.readers.ReaderOptions for the reader options") for e in exc.errors()]
    return found


__all__ = ["layout_problems", "FAMILIES", "Adapter", "AdapterError", "AdapterParams", "Entry", "RawBox", "RawItem", "Skipped",
           "adapter_for", "check_params", "builder_module_name"]
