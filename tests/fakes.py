"""Materialise fake source archives from `tests/fixtures/sources/<source-id>/fake.yaml`.

Each fake.yaml describes a tiny tree laid out exactly like the real archive (same folder names, label file names
and columns, file naming). Images are seeded noise unique per path (so no two are duplicates), or real files
that ship inside installed packages (pydicom, nibabel, scikit-image); label files are written verbatim, or copied
from real label files shipped in packages (torchxrayvision). Run `python -m tests.fakes OUT [SOURCE-ID...]` to
write fake data dirs for manual builds.

fake.yaml keys:
  images:      list of paths, or {path, size: [w, h], mode: L|RGB|I;16, from: <package file>, position: z, mask: bool}
  masks:       list of paths, or {path, size, mode, value, invert}: a filled rectangle on black
  files:       {path: text} written verbatim; a .xlsx path takes CSV text and is written as a workbook
  real_files:  {path: "<package>:<file inside the package>"}; .gz and single-member .zip are unpacked
  corrupt:     {path: text} files written as given (e.g. a text file named .png)
  expect:      {written, quarantined, excluded, labels: {subset label: count}}
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures" / "sources"
DEFAULT_SIZE = (24, 24)


def package_file(spec: str) -> Path:
    """'pydicom:data/test_files/CT_small.dcm' -> its path, without importing the package."""
    package, _, inner = spec.partition(":")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed (needed for {spec})")
    path = Path(list(found.submodule_search_locations)[0]) / inner
    if not path.exists():
        raise FileNotFoundError(spec)
    return path


def _seed(path: str) -> int:
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "little")


def _noise(path: str, size, mode: str) -> Image.Image:
    rng = np.random.default_rng(_seed(path))
    w, h = size
    if mode == "RGB":
        return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    return Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8))


def _write_image(target: Path, rel: str, spec: dict) -> None:
    source = spec.get("from")
    if source:
        origin = package_file(source if ":" in source else _known(source))
        name = origin.name.lower()
        if name.endswith(".dcm"):
            _write_dicom(target, rel, origin, spec)
        elif name.endswith((".nii", ".nii.gz", ".mgz")):
            _write_volume(target, rel, origin)
        else:
            _save(_perturbed(Image.open(origin), rel), target)
        return
    _save(_noise(rel, spec.get("size", DEFAULT_SIZE), spec.get("mode", "L")), target)


def _perturbed(image: Image.Image, rel: str) -> Image.Image:
    """A real image with one pixel changed, seeded by its path, so that copies are not duplicates."""
    arr = np.array(image)
    rng = np.random.default_rng(_seed(rel))
    y, x = rng.integers(0, arr.shape[0]), rng.integers(0, arr.shape[1])
    arr[y, x] = 255 - arr[y, x]
    return Image.fromarray(arr)


def _save(image: Image.Image, target: Path) -> None:
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP", ".gif": "GIF",
           ".pgm": "PPM", ".ppm": "PPM"}.get(target.suffix.lower(), "PNG")
    if fmt == "JPEG":
        image.save(target, format=fmt, quality=95)
    else:
        image.save(target, format=fmt)


def _write_volume(target: Path, rel: str, origin: Path) -> None:
    import nibabel as nib

    img = nib.load(origin)
    data = np.asanyarray(img.dataobj).copy()
    data.flat[_seed(rel) % data.size] += 1
    nib.save(nib.Nifti1Image(data, img.affine), target)


def _known(name: str) -> str:
    """Short names for the real files tests use most."""
    table = {
        "CT_small.dcm": "pydicom:data/test_files/CT_small.dcm",
        "MR_small.dcm": "pydicom:data/test_files/MR_small.dcm",
        "anatomical.nii": "nibabel:tests/data/anatomical.nii",
        "example4d.nii.gz": "nibabel:tests/data/example4d.nii.gz",
        "retina.jpg": "skimage:data/retina.jpg",
        "microaneurysms.png": "skimage:data/microaneurysms.png",
        "ihc.png": "skimage:data/ihc.png",
        "cell.png": "skimage:data/cell.png",
    }
    return table[name]


def _write_dicom(target: Path, rel: str, origin: Path, spec: dict) -> None:
    """A real DICOM, made unique (pixel noise seeded by path) and optionally placed at a slice position."""
    import pydicom

    ds = pydicom.dcmread(origin)
    arr = ds.pixel_array.copy()
    if "size" in spec:  # e.g. a 1024 x 1024 radiograph, to match real run-length masks
        w, h = spec["size"]
        arr = np.resize(arr, (h, w))
        ds.Rows, ds.Columns = h, w
    rng = np.random.default_rng(_seed(rel))
    if spec.get("mask"):
        arr = np.zeros_like(arr)
        h, w = arr.shape
        arr[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
    else:
        arr = (arr + rng.integers(0, 3, arr.shape)).astype(arr.dtype)
    ds.PixelData = arr.tobytes()
    if "position" in spec:
        z = float(spec["position"])
        ds.ImagePositionPatient = [0.0, 0.0, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = int(spec.get("instance", z))
    ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[rel])
    ds.save_as(target)


def _write_mask(target: Path, spec: dict) -> None:
    w, h = spec.get("size", DEFAULT_SIZE)
    value = int(spec.get("value", 255))
    arr = np.zeros((h, w), dtype=np.uint8)
    arr[h // 4: 3 * h // 4, w // 3: 2 * w // 3] = value
    if spec.get("invert"):
        arr = np.where(arr > 0, 0, 255).astype(np.uint8)
    image = Image.fromarray(arr)
    _save(image.convert("RGB") if spec.get("mode") == "RGB" else image, target)


def _unpack(origin: Path) -> bytes:
    if origin.name.endswith(".gz"):
        return gzip.decompress(origin.read_bytes())
    if origin.suffix == ".zip":
        with zipfile.ZipFile(origin) as archive:
            (member,) = [n for n in archive.namelist() if not n.endswith("/")]
            return archive.read(member)
    return origin.read_bytes()


def _entries(items) -> list[tuple[str, dict]]:
    return [(i, {}) if isinstance(i, str) else (i["path"], i) for i in items or []]


def load_spec(source_id: str) -> dict:
    return yaml.safe_load((FIXTURES / source_id / "fake.yaml").read_text(encoding="utf-8"))


def materialise(source_id: str, data_dir: Path) -> Path:
    """Write the fake archive of `source_id` to data_dir/<source_id>/ and return that folder."""
    spec = load_spec(source_id)
    root = data_dir / source_id
    for rel, item in _entries(spec.get("images")):
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_image(target, rel, item)
    for rel, item in _entries(spec.get("masks")):
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_mask(target, item)
    for rel, text in (spec.get("files") or {}).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".xlsx"):
            pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False).to_excel(target, index=False)
        else:
            target.write_text(text, encoding="utf-8")
    for rel, origin in (spec.get("real_files") or {}).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_unpack(package_file(origin)))
    for rel, text in (spec.get("corrupt") or {}).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.encode())
    return root


def fixture_ids() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "fake.yaml").is_file())


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.fakes",
                                     description="Write fake source archives (data dirs) for manual builds.")
    parser.add_argument("out", type=Path, help="folder to write OUT/<source-id>/ into")
    parser.add_argument("source_ids", nargs="*", metavar="SOURCE-ID", help="sources to write (default: every fixture)")
    args = parser.parse_args(argv)
    known = set(fixture_ids())
    unknown = [s for s in args.source_ids if s not in known]
    if unknown:
        parser.error(f"no fake archive for {', '.join(unknown)} (fixtures are in {FIXTURES})")
    for sid in args.source_ids or fixture_ids():
        print(materialise(sid, args.out))


if __name__ == "__main__":
    main()
