"""A small example data dir made at run time from real medical images that ship inside installed packages.

The files are laid out exactly as the archives of five real sources, so they go through the same adapters,
builder and Hub writer as a real download:
  ct-kidney-normal-cyst-tumor-stone  CT slices rendered from pydicom's CT_small.dcm (JPEG class folders)
  acrima                             fundus photographs from scikit-image's retina.jpg (label in the file name)
  nct-crc-he-100k                    microscopy tiles from scikit-image's ihc.png (TIFF class folders, 2 splits)
  duke-liver-mri-v2                  3D MRI DICOM series (+ mask series) from pydicom's MR_small.dcm
  uw-madison-gi-tract                16-bit MRI slices from nibabel's example4d.nii.gz with run-length masks
The pixels are real; the labels are placeholders chosen to exercise every class, not diagnoses.
Every image is a different seeded crop / flip / rotation of its original, so no two are duplicates.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from PIL import Image

from .readers import read_file

EXAMPLE_SOURCES = ["ct-kidney-normal-cyst-tumor-stone", "acrima", "nct-crc-he-100k", "duke-liver-mri-v2",
                   "uw-madison-gi-tract"]


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the example needs the package {name}; install it with `pip install {name}`")
    return Path(list(spec.submodule_search_locations)[0])


def _variant(image: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """A random crop (60-95 % of the side), flip and quarter turn, resized to size x size."""
    h, w = image.shape[:2]
    side = int(min(h, w) * rng.uniform(0.6, 0.95))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = image[y:y + side, x:x + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = np.rot90(crop, int(rng.integers(0, 4)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BILINEAR))


def _kidney(root: Path, rng: np.random.Generator, per_class: int) -> None:
    ct = read_file(_package_dir("pydicom") / "data" / "test_files" / "CT_small.dcm").pixels  # windowed CT slice
    base = root / "CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone" / "CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone"
    for label in ("Cyst", "Normal", "Stone", "Tumor"):
        (base / label).mkdir(parents=True, exist_ok=True)
        for n in range(1, per_class + 1):
            Image.fromarray(_variant(ct, rng, 128)).save(base / label / f"{label}- ({n}).jpg", quality=92)


def _acrima(root: Path, rng: np.random.Generator, per_class: int) -> None:
    retina = np.asarray(Image.open(_package_dir("skimage") / "data" / "retina.jpg").reduce(4))
    folder = root / "Database" / "Images"
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, 2 * per_class + 1):
        name = f"Im{n:03d}_ACRIMA.jpg" if n <= per_class else f"Im{n:03d}_g_ACRIMA.jpg"
        Image.fromarray(_variant(retina, rng, 192)).save(folder / name, quality=92)


def _nct_crc(root: Path, rng: np.random.Generator, per_class: int) -> None:
    ihc = np.asarray(Image.open(_package_dir("skimage") / "data" / "ihc.png").convert("RGB"))
    for part, count in (("NCT-CRC-HE-100K", per_class), ("CRC-VAL-HE-7K", max(1, per_class // 3))):
        for label in ("ADI", "LYM", "NORM", "STR", "TUM"):
            folder = root / part / label
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                tag = "".join(chr(65 + int(c)) for c in rng.integers(0, 26, 8))
                name = f"{label}-{tag}.tif" if part.startswith("NCT") else f"{label}-TCGA-{tag}.tif"
                Image.fromarray(_variant(ihc, rng, 112)).save(folder / name, format="TIFF")


def _duke_liver(root: Path, rng: np.random.Generator, series: int) -> None:
    source = pydicom.dcmread(_package_dir("pydicom") / "data" / "test_files" / "MR_small.dcm")
    base = source.pixel_array.astype(np.int32)
    for s in range(series):
        folder = root / "Segmentation" / f"{s // 2 + 1:04d}" / str(s + 3)
        for z in range(1, 6):
            slice_ = np.clip(np.roll(base, int(rng.integers(-8, 8)), axis=int(rng.integers(0, 2))) + z * 7, 0, 4095)
            mask = np.zeros_like(base)
            r = 10 + 3 * z
            mask[32 - r // 2: 32 + r // 2, 30 - r // 2: 30 + r // 2] = 1
            for kind, pixels in (("images", slice_), ("masks", mask)):
                ds = source.copy()
                ds.PixelData = pixels.astype(source.pixel_array.dtype).tobytes()
                ds.ImagePositionPatient = [0.0, 0.0, float(5 * z)]
                ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
                ds.InstanceNumber = z
                ds.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=[f"{s}/{kind}/{z}"])
                (folder / kind).mkdir(parents=True, exist_ok=True)
                ds.save_as(folder / kind / f"{z}.dicom")


def _rle(mask: np.ndarray) -> str:
    """Run-length pairs (1-based start, length), row-major: the encoding of UW-Madison's train.csv."""
    flat = np.concatenate([[0], mask.ravel().astype(np.int8), [0]])
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    return " ".join(f"{s} {e - s}" for s, e in zip(edges[0::2], edges[1::2]))


def _uw_madison(root: Path, rng: np.random.Generator, slices: int) -> None:
    volume = np.asanyarray(nib.load(_package_dir("nibabel") / "tests" / "data" / "example4d.nii.gz").dataobj)
    rows = ["id,class,segmentation"]
    for n in range(slices):
        case, day = 100 + n // 4, 10 + n // 4
        index = int(rng.integers(2, volume.shape[2] - 2))
        plane = volume[:, :, index, int(rng.integers(0, volume.shape[3]))].T.astype(np.float64)
        pixels = (plane / max(plane.max(), 1) * 12000).astype(np.uint16)
        h, w = pixels.shape
        name = f"slice_{n + 1:04d}_{w}_{h}_1.50_1.50.png"
        folder = root / "train" / f"case{case}" / f"case{case}_day{day}" / "scans"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / name)
        for organ, (cy, cx) in (("large_bowel", (h // 3, w // 3)), ("small_bowel", (h // 2, w // 2)),
                                ("stomach", (2 * h // 3, 2 * w // 3))):
            mask = np.zeros((h, w), bool)
            if rng.random() < 0.6:
                r = int(rng.integers(4, 10))
                mask[cy - r: cy + r, cx - r: cx + r] = True
            rows.append(f"case{case}_day{day}_slice_{n + 1:04d},{organ},{_rle(mask)}")
    (root / "train.csv").write_text("\n".join(rows) + "\n")


def assemble(data_dir: Path, seed: int = 0, scale: int = 1) -> list[str]:
    """Write DIR/<source-id>/ for each example source; returns the source ids."""
    rng = np.random.default_rng(seed)
    writers = {"ct-kidney-normal-cyst-tumor-stone": lambda r: _kidney(r, rng, 12 * scale),
               "acrima": lambda r: _acrima(r, rng, 15 * scale),
               "nct-crc-he-100k": lambda r: _nct_crc(r, rng, 9 * scale),
               "duke-liver-mri-v2": lambda r: _duke_liver(r, rng, 4 * scale),
               "uw-madison-gi-tract": lambda r: _uw_madison(r, rng, 16 * scale)}
    for source_id, write in writers.items():
        root = data_dir / source_id
        root.mkdir(parents=True, exist_ok=True)
        write(root)
    return list(writers)
