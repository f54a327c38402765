"""Readers on real files shipped in pydicom, nibabel and scikit-image, and on broken ones made here."""

from __future__ import annotations

import gzip
import io
import random
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import skimage
from PIL import Image

from medmat.readers import ReadError, nifti_gz_bytes, read_dicom_series, read_file

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
NIBABEL_FILES = Path(nib.__file__).parent / "tests" / "data"
SKIMAGE_FILES = Path(skimage.__file__).parent / "data"


# --- raster --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, shape", [("retina.jpg", (1411, 1411, 3)), ("microaneurysms.png", (102, 102)),
                                         ("ihc.png", (512, 512, 3)), ("cell.png", (660, 550))])
def test_real_raster_images(name, shape):
    decoded = read_file(SKIMAGE_FILES / name)
    assert decoded.pixels.shape == shape and decoded.pixels.dtype == np.uint8
    assert decoded.volume is None


def test_unchanged_png_and_jpeg_pass_their_bytes_through(tmp_path):
    arr = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    decoded = read_file(tmp_path / "a.png")
    assert decoded.passthrough == (tmp_path / "a.png").read_bytes()
    assert np.array_equal(decoded.pixels, arr)


def test_sixteen_bit_png_stays_sixteen_bit(tmp_path):
    arr = (np.arange(100, dtype=np.uint16) * 600).reshape(10, 10)
    Image.fromarray(arr).save(tmp_path / "x16.png")
    decoded = read_file(tmp_path / "x16.png")
    assert decoded.pixels.dtype == np.uint16 and np.array_equal(decoded.pixels, arr)


def test_multipage_tiff_becomes_a_volume():
    decoded = read_file(SKIMAGE_FILES / "multipage.tif")
    assert decoded.volume is not None and decoded.volume.shape[-1] == 2
    assert decoded.view.axis == "page"


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((4, 6, 3), np.uint8)
    arr[0, 0] = 255  # mark the top-left corner
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    im.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    decoded = read_file(tmp_path / "rot.jpg")
    assert decoded.pixels.shape[:2] == (6, 4)
    assert decoded.passthrough is None  # rotated pixels must be re-encoded


@pytest.mark.parametrize("mode", ["P", "CMYK", "RGBA", "LA", "1"])
def test_modes_are_normalised(tmp_path, mode):
    im = Image.fromarray(np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)).convert(mode)
    suffix = "tif" if mode == "CMYK" else "png"
    im.save(tmp_path / f"m.{suffix}")
    decoded = read_file(tmp_path / f"m.{suffix}")
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.shape[:2] == (5, 7)
    assert decoded.pixels.ndim == 2 or decoded.pixels.shape[2] == 3


def test_gif_and_bmp(tmp_path):
    arr = np.random.default_rng(1).integers(0, 255, (6, 6), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.bmp")
    Image.fromarray(arr).save(tmp_path / "a.gif")
    assert np.array_equal(read_file(tmp_path / "a.bmp").pixels, arr)
    assert read_file(tmp_path / "a.gif").pixels.shape == (6, 6)


# --- bad raster input ----------------------------------------------------------------------------


def test_zero_byte_image(tmp_path):
    (tmp_path / "z.png").write_bytes(b"")
    with pytest.raises(ReadError) as err:
        read_file(tmp_path / "z.png")
    assert err.value.reason == "empty file" and "z.png" in str(err.value)


def test_text_named_png(tmp_path):
    (tmp_path / "page.png").write_text("<html><body>Please log in</body></html>")
    with pytest.raises(ReadError) as err:
        read_file(tmp_path / "page.png")
    assert err.value.reason == "not an image"


def test_truncated_jpeg(tmp_path):
    data = (SKIMAGE_FILES / "retina.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ReadError) as err:
        read_file(tmp_path / "cut.jpg")
    assert err.value.reason == "corrupt image"


def test_decompression_bomb_refused_before_decoding(tmp_path):
    # A valid PNG header claiming 100,000 x 100,000 pixels: refused from the header alone.
    from tests.test_build import _bomb_png

    (tmp_path / "bomb.png").write_bytes(_bomb_png())
    with pytest.raises(ReadError) as err:
        read_file(tmp_path / "bomb.png")
    assert err.value.reason == "too large"


# --- DICOM ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm",
                                  "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "liver_1frame.dcm"])
def test_real_dicom_greyscale(name):
    decoded = read_file(PYDICOM_FILES / name)
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.ndim == 2
    assert decoded.view.window_width > 0
    # Enhanced (multi-frame-style) objects keep spacing in functional groups, which this reader does not parse.
    assert len(decoded.spacing) == (0 if name == "liver_1frame.dcm" else 2)


def test_compressed_and_uncompressed_mr_agree():
    plain = read_file(PYDICOM_FILES / "MR_small.dcm").pixels
    for variant in ("MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"):
        assert np.array_equal(read_file(PYDICOM_FILES / variant).pixels, plain), variant


def test_ct_rescale_gives_hounsfield_window():
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    decoded = read_file(PYDICOM_FILES / "CT_small.dcm")
    assert float(ds.RescaleIntercept) == -1024  # the modality LUT matters in this file
    hounsfield = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    low, high = np.percentile(hounsfield, [0.5, 99.5])
    assert decoded.view.window_center == pytest.approx((low + high) / 2)
    assert decoded.view.window_width == pytest.approx(high - low)


def test_file_window_is_used_when_present():
    view = read_file(PYDICOM_FILES / "MR_small.dcm").view  # the file says centre 600, width 1600
    assert (view.window_center, view.window_width) == (600.0, 1600.0)


@pytest.mark.parametrize("name", ["SC_rgb_rle.dcm", "SC_ybr_full_422_uncompressed.dcm", "SC_rgb_jpeg_dcmtk.dcm",
                                  "examples_palette.dcm"])
def test_real_dicom_colour(name):
    decoded = read_file(PYDICOM_FILES / name)
    assert decoded.pixels.ndim == 3 and decoded.pixels.shape[2] == 3 and decoded.pixels.dtype == np.uint8


def test_multiframe_dicom_is_a_volume():
    decoded = read_file(PYDICOM_FILES / "rtdose.dcm")
    assert decoded.volume is not None and decoded.depth == 15
    assert decoded.view.axis == "axial"


def test_monochrome1_is_inverted(tmp_path):
    ds = pydicom.dcmread(PYDICOM_FILES / "MR_small.dcm")
    normal = read_file(PYDICOM_FILES / "MR_small.dcm").pixels
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    assert np.array_equal(read_file(tmp_path / "m1.dcm").pixels, 255 - normal)


def test_dicom_without_pixel_data(tmp_path):
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    del ds.PixelData
    ds.save_as(tmp_path / "nopix.dcm")
    with pytest.raises(ReadError) as err:
        read_file(tmp_path / "nopix.dcm")
    assert err.value.reason == "DICOM without pixel data"


def test_truncated_dicom():
    with pytest.raises(ReadError) as err:
        read_file(PYDICOM_FILES / "MR_truncated.dcm")
    assert err.value.reason == "undecodable DICOM pixels"


def test_dicom_found_by_magic_without_suffix(tmp_path):
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", tmp_path / "IM0001")
    assert read_file(tmp_path / "IM0001").pixels.shape == (128, 128)


def test_series_ordered_by_position_not_file_name(tmp_path):
    series_dir = PYDICOM_FILES / "dicomdirtests" / "98892001" / "CT5N"
    files = sorted(series_dir.iterdir())
    shuffled = files[:]
    random.Random(3).shuffle(shuffled)
    decoded = read_dicom_series(shuffled)
    assert decoded.depth == len(files)
    z = sorted(float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in files)
    by_z = sorted(files, key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    # Canonical RAS: slice k of the volume is the k-th lowest z (superior last).
    lowest = pydicom.dcmread(by_z[0])
    expected = pydicom.pixels.apply_modality_lut(lowest.pixel_array, lowest)
    assert np.allclose(decoded.volume[:, :, 0], np.transpose(expected)[:, ::-1] if decoded.affine[1, 1] < 0 else
                       np.transpose(expected), atol=1e-3) or np.allclose(
        np.sort(decoded.volume[:, :, 0].ravel()), np.sort(expected.ravel()))
    assert z[0] < z[-1]
    assert decoded.spacing[2] == pytest.approx(2.5, abs=1e-3)
    assert read_dicom_series(files).volume.tobytes() == decoded.volume.tobytes()


# --- volumes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["anatomical.nii", "functional.nii", "example4d.nii.gz", "example_nifti2.nii.gz",
                                  "standard.nii.gz", "test.mgz"])
def test_real_volumes(name):
    decoded = read_file(NIBABEL_FILES / name)
    assert decoded.volume.ndim == 3
    assert nib.aff2axcodes(decoded.affine) == ("R", "A", "S")
    assert decoded.view.axis == "axial" and decoded.view.index == decoded.volume.shape[2] // 2
    assert decoded.pixels.dtype == np.uint8


def test_reorientation_keeps_spacing():
    decoded = read_file(NIBABEL_FILES / "standard.nii.gz")
    original = nib.load(NIBABEL_FILES / "standard.nii.gz")
    assert sorted(decoded.spacing) == sorted(float(z) for z in original.header.get_zooms()[:3])


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_simpleitk_formats_match_nibabel(tmp_path, suffix):
    original = read_file(NIBABEL_FILES / "anatomical.nii")
    img = sitk.ReadImage(str(NIBABEL_FILES / "anatomical.nii"))
    sitk.WriteImage(img, str(tmp_path / f"a{suffix}"))
    decoded = read_file(tmp_path / f"a{suffix}")
    assert np.array_equal(decoded.volume, original.volume)
    assert np.allclose(decoded.affine, original.affine, atol=1e-4)


def test_broken_nifti_header(tmp_path):
    raw = bytearray((NIBABEL_FILES / "anatomical.nii").read_bytes())
    raw[0:4] = (12345).to_bytes(4, "little")  # sizeof_hdr must be 348
    raw[344:348] = b"xxxx"  # and the magic string is gone
    (tmp_path / "broken.nii").write_bytes(bytes(raw))
    with pytest.raises(ReadError) as err:
        read_file(tmp_path / "broken.nii")
    assert err.value.reason.startswith("corrupt volume")


def test_nifti_bytes_are_deterministic_and_round_trip():
    decoded = read_file(NIBABEL_FILES / "anatomical.nii")
    a = nifti_gz_bytes(decoded.volume, decoded.affine)
    assert a == nifti_gz_bytes(decoded.volume, decoded.affine)
    back = nib.Nifti1Image.from_bytes(gzip.decompress(a))
    assert np.array_equal(np.asanyarray(back.dataobj), decoded.volume)
