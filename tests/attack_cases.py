"""The attacks: bad input and faults, each with the exact outcome the guarantees promise (docs/guarantees.md).

Every attack builds generated data through the real CLI and checks the result against an independent walk of the
data folder, the Parquet rows read back, the exit code and the files left on disk (see `attack_kit`).
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from .attack_kit import (HEADCT, HEADCT_DIR, KIDNEY, Attack, Env, Finding, account, build_args, check_ran, cli,
                         edit_manifest, good_headct, good_kidney, noise, planted_build, read_report)

ATTACKS: list[Attack] = []


def attack(kind: str, slow: bool = False):
    def register(fn):
        ATTACKS.append(Attack(fn.__name__.removeprefix("atk_").replace("_", "-"), kind, fn, slow))
        return fn
    return register


def planted(kind_of_attack: str, rel: str, make, kind: str, reason: str, leaked: str = "bad data", **kw):
    """An attack that writes one bad file at `rel` (under the kidney layout root) with `make(path, env)`."""
    def run(env: Env) -> list[Finding]:
        def plant(env: Env) -> str:
            path = env.kidney / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            make(path, env)
            return rel
        return planted_build(env, plant, kind, reason, leaked=leaked, **kw)
    return run


def register_planted(name: str, kind_of_attack: str, rel: str, make, kind: str, reason: str, **kw):
    ATTACKS.append(Attack(name, kind_of_attack, planted(kind_of_attack, rel, make, kind, reason, **kw)))


# --- file makers ------------------------------------------------------------------------------------------


def _dicom(path: Path, pixels: np.ndarray | None = None, **attrs) -> pydicom.Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    pixels = np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) if pixels is None else pixels
    frames = pixels.shape[0] if pixels.ndim == 3 else 1
    ds.Rows, ds.Columns = pixels.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.Modality = "CT"
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return ds


def _nifti(path: Path, data: np.ndarray, zooms=None) -> None:
    img = nib.Nifti1Image(data, np.eye(4))
    if zooms is not None:
        img.header.set_zooms(zooms)
    nib.save(img, str(path))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(width=100_000, height=100_000) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


def _lying_jpeg(width=19000, height=19000) -> bytes:
    """A small real JPEG whose SOF0 header is rewritten to claim `width` x `height`."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _mhd(path: Path, data_file: str, size=(8, 8, 4)) -> None:
    path.write_text("ObjectType = Image\nNDims = 3\nDimSize = " + " ".join(map(str, size)) + "\n"
                    "ElementType = MET_UCHAR\nElementSpacing = 1 1 1\nElementDataFile = " + data_file + "\n")


def _nhdr(path: Path, data_file: str) -> None:
    path.write_text("NRRD0004\ntype: uint8\ndimension: 3\nsizes: 8 8 4\nencoding: raw\n"
                    f"data file: {data_file}\n")


def _float_tiff(path: Path, values: np.ndarray) -> None:
    Image.fromarray(values.astype(np.float32), mode="F").save(path)


def _tiff_inf(path, env):
    values = np.random.default_rng(5).random((16, 16)).astype(np.float32)
    values[3, 3] = np.inf
    _float_tiff(path, values)


def _tiff_nan(path, env):
    values = np.random.default_rng(6).random((16, 16)).astype(np.float32)
    values[0, :4] = np.nan
    _float_tiff(path, values)


def _nifti_nan(path, env):
    data = np.random.default_rng(7).random((8, 8, 4)).astype(np.float32)
    data[1, 1, 1] = np.nan
    _nifti(path, data)


def _nifti_truncated_4d(path, env):
    _nifti(path, np.random.default_rng(8).integers(0, 255, (8, 8, 4, 5), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-200])


def _nifti_truncated(path, env):
    _nifti(path, np.random.default_rng(9).integers(0, 255, (8, 8, 4), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-50])


def _nifti_gz_bomb(path, env):
    """A header claiming 4096^3 uint8 (64 GiB) in a few kilobytes of gzip."""
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    header = img.header.copy()
    header.set_data_shape((4096, 4096, 4096))
    raw = header.binaryblock + b"\0" * 4 + b"\0" * (1 << 20)
    path.write_bytes(gzip.compress(raw))


def _nifti_complex(path, env):
    _nifti(path, (np.ones((4, 4, 3)) + 1j).astype(np.complex64))


def _nifti_zero_dim(path, env):
    img = nib.Nifti1Image(np.zeros((4, 4, 1), np.uint8), np.eye(4))
    img.header.set_data_shape((4, 0, 3))
    path.write_bytes(img.header.binaryblock + b"\0" * 4)


def _nifti_nan_spacing(path, env):
    _nifti(path, np.random.default_rng(10).integers(0, 255, (8, 8, 4), dtype=np.uint8))
    img = nib.load(str(path))
    header = img.header.copy()
    header["pixdim"][1] = np.nan
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), None, header), str(path))


def _dicom_nan_slope(path, env):
    _dicom(path, RescaleSlope="NaN", RescaleIntercept=0)


def _dicom_inf_window(path, env):
    _dicom(path, WindowCenter="inf", WindowWidth=400)


def _dicom_nan_spacing(path, env):
    _dicom(path, PixelSpacing=["NaN", "1"])


def _dicom_palette(path, env):
    ds = _dicom(path)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.save_as(path, enforce_file_format=True)


def _dicom_truncated_frames(path, env):
    ds = _dicom(path, pixels=np.ones((4, 16, 16), np.uint16))
    ds.PixelData = ds.PixelData[: 16 * 16 * 2 * 2]
    ds.save_as(path, enforce_file_format=True)


def _dicom_no_pixels(path, env):
    ds = _dicom(path)
    del ds.PixelData
    ds.save_as(path, enforce_file_format=True)


def _symlink_out(path, env):
    path.symlink_to(env.outside / "secret.png")


def _symlink_dangling(path, env):
    path.symlink_to(env.outside / "nothing-here.png")


def _symlink_folder(path, env):
    path.parent.rmdir() if path.parent.exists() and not any(path.parent.iterdir()) else None
    path.symlink_to(env.outside, target_is_directory=True)


def _fifo(path, env):
    os.mkfifo(path)


def _mhd_escape(path, env):
    (env.outside / "volume.raw").write_bytes(np.random.default_rng(1).integers(0, 255, 256, np.uint8).tobytes())
    _mhd(path, "../../../../../outside/volume.raw")


def _mhd_absolute(path, env):
    _mhd(path, "/dev/zero")


def _mhd_list(path, env):
    _mhd(path, "LIST\n/etc/hostname")


def _nhdr_escape(path, env):
    _nhdr(path, "/etc/hostname")


def _nhdr_relative(path, env):
    (env.outside / "volume.raw").write_bytes(bytes(256))
    _nhdr(path, "../../../../../outside/volume.raw")


def _mhd_inside_ok(path, env):
    """A detached header whose data file lies beside it: allowed (and built)."""
    (path.parent / "vol.raw").write_bytes(np.random.default_rng(3).integers(0, 255, 256, np.uint8).tobytes())
    _mhd(path, "vol.raw")


def _mhd_short(path, env):
    (path.parent / "short.raw").write_bytes(bytes(100))
    _mhd(path, "short.raw")


def _write(data: bytes):
    def make(path, env):
        path.write_bytes(data)
    return make


def _gif_many_frames(path, env):
    frames = [Image.fromarray(np.full((2, 2), i % 251, np.uint8)) for i in range(5000)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=10)


def _truncated_png(path, env):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (32, 32), np.uint8)).save(buf, format="PNG")
    path.write_bytes(buf.getvalue()[:70])


# --- confinement -------------------------------------------------------------------------------------------

register_planted("image-symlink-out", "confinement", "Cyst/link.png", _symlink_out, "excluded", "symbolic link",
                 leaked="escape")
register_planted("folder-symlink-out", "confinement", "Cyst/linked", _symlink_folder, "excluded",
                 "symbolic link", leaked="escape")
register_planted("dangling-symlink", "accounting", "Cyst/dangling.png", _symlink_dangling, "excluded",
                 "symbolic link")
register_planted("fifo-image", "confinement", "Cyst/pipe.png", _fifo, "excluded", "not a regular file")
register_planted("mhd-data-file-climbs-out", "confinement", "Cyst/vol.mhd", _mhd_escape, "quarantined",
                 "outside the source folder", leaked="escape")
register_planted("mhd-data-file-dev-zero", "confinement", "Cyst/zero.mhd", _mhd_absolute, "quarantined",
                 "outside the source folder", leaked="escape")
register_planted("mhd-data-file-list", "confinement", "Cyst/list.mhd", _mhd_list, "quarantined",
                 "data file", leaked="escape")
register_planted("nhdr-data-file-absolute", "confinement", "Cyst/vol.nhdr", _nhdr_escape, "quarantined",
                 "outside the source folder", leaked="escape")
register_planted("nhdr-data-file-climbs-out", "confinement", "Cyst/up.nhdr", _nhdr_relative, "quarantined",
                 "outside the source folder", leaked="escape")
register_planted("mhd-data-file-short", "bounds", "Cyst/short.mhd", _mhd_short, "quarantined",
                 "promises more data")


@attack("confinement")
def atk_mhd_data_file_beside_is_built(env: Env) -> list[Finding]:
    good_kidney(env)
    _mhd_inside_ok(env.kidney / "Cyst" / "ok.mhd", env)
    ran = cli(build_args(env, KIDNEY))
    findings = check_ran(ran)
    if findings:
        return findings
    report = read_report(env.out, KIDNEY)
    from .attack_kit import written_paths
    if not any(p.endswith("Cyst/ok.mhd") for p in written_paths(env.out, KIDNEY)):
        findings.append(("silent loss", f"a valid detached header was not built: {report['quarantined_files']}"))
    return findings + account(env, KIDNEY, report)


def _layout_root(value: str):
    def run(env: Env) -> list[Finding]:
        edit_manifest(env.manifests, KIDNEY, lambda d: d["layout"].update(root=value))
        good_kidney(env)
        findings = check_ran(cli(["validate", env.manifests]), code=1, says="layout.root")
        ran = cli(build_args(env, KIDNEY))
        findings += check_ran(ran, code=1)
        if (env.out / "sources" / KIDNEY / "report.json").exists():
            findings.append(("escape", f"a build ran with layout.root {value!r}"))
        return findings
    return run


ATTACKS.append(Attack("layout-root-climbs-out", "confinement", _layout_root("../../outside")))
ATTACKS.append(Attack("layout-root-absolute", "confinement", _layout_root("/etc")))


@attack("confinement")
def atk_layout_root_is_symlink_out(env: Env) -> list[Finding]:
    (env.data / KIDNEY).mkdir(parents=True)
    for label in ("Cyst", "Normal"):
        noise(env.outside / "tree" / KIDNEY_ROOT_LAST / label / "a.png", 7 if label == "Cyst" else 8)
    (env.data / KIDNEY / KIDNEY_ROOT_FIRST).symlink_to(env.outside / "tree", target_is_directory=True)
    ran = cli(build_args(env, KIDNEY))
    findings = check_ran(ran, code=1, says="outside")
    report = read_report(env.out, KIDNEY)
    if report is not None and report["written"]:
        findings.append(("escape", f"{report['written']} samples were read through a link out of the folder"))
    return findings


KIDNEY_ROOT_FIRST, KIDNEY_ROOT_LAST = "CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone", \
    "CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone"


@attack("confinement")
def atk_label_row_climbs_out(env: Env) -> list[Finding]:
    good_headct(env)
    with open(env.headct / "labels.csv", "a") as fh:
        fh.write("../../../outside/secret,1\n")
    ran = cli(build_args(env, HEADCT))
    findings = check_ran(ran)
    if findings:
        return findings
    report = read_report(env.out, HEADCT)
    hits = [e for e in report["quarantined_files"] if "outside" in e["path"]]
    if not hits:
        findings.append(("silent loss", "the row naming ../../outside is not quarantined"))
    elif "outside the source folder" not in hits[0]["reason"]:
        findings.append(("silent loss", f"reason {hits[0]['reason']!r} does not say 'outside the source folder'"))
    return findings + account(env, HEADCT, report)


@attack("confinement")
def atk_label_table_is_symlink(env: Env) -> list[Finding]:
    good_headct(env)
    (env.outside / "labels.csv").write_bytes((env.headct / "labels.csv").read_bytes())
    (env.headct / "labels.csv").unlink()
    (env.headct / "labels.csv").symlink_to(env.outside / "labels.csv")
    ran = cli(build_args(env, HEADCT))
    findings = check_ran(ran, code=1, says="link")
    if read_report(env.out, HEADCT) is not None:
        findings.append(("escape", "the label table was read through a link out of the folder"))
    return findings


@attack("confinement")
def atk_label_table_is_fifo(env: Env) -> list[Finding]:
    good_headct(env)
    (env.headct / "labels.csv").unlink()
    os.mkfifo(env.headct / "labels.csv")
    return check_ran(cli(build_args(env, HEADCT), timeout=20), code=1, says="not a regular file")


# --- accounting ------------------------------------------------------------------------------------------

register_planted("hidden-file", "accounting", "Cyst/.hidden.png", lambda p, e: noise(p, 77), "excluded", "hidden")
register_planted("macosx-folder", "accounting", "__MACOSX/Cyst/._a.png", _write(b"\0\5\26\7mac"), "excluded",
                 "metadata")
register_planted("ds-store", "accounting", "Cyst/.DS_Store", _write(b"Bud1"), "excluded", "metadata")
register_planted("thumbs-db", "accounting", "Cyst/Thumbs.db", _write(b"\xd0\xcf"), "excluded", "metadata")
register_planted("not-an-image-extension", "accounting", "Cyst/notes.txt", _write(b"notes"), "excluded",
                 "not an image extension")
register_planted("unknown-label-folder", "accounting", "Abscess/a.png", lambda p, e: noise(p, 55), "quarantined",
                 "unknown label")


@attack("accounting")
def atk_non_utf8_file_name(env: Env) -> list[Finding]:
    good_kidney(env)
    name = os.fsencode(env.kidney / "Cyst") + b"/bad-\xff\xfe.png"
    with open(name, "wb") as fh:
        Image.fromarray(np.full((8, 8), 9, np.uint8)).save(fh, format="PNG")
    ran = cli(build_args(env, KIDNEY))
    findings = check_ran(ran)
    if findings:
        return findings
    report = read_report(env.out, KIDNEY)
    hits = [e for e in report["quarantined_files"] if "bad-" in e["path"]]
    if not hits or "UTF-8" not in hits[0]["reason"]:
        findings.append(("silent loss", f"the non-UTF-8 name is not quarantined as such: {report['quarantined_files']}"))
    return findings + account(env, KIDNEY, report)


@attack("accounting")
def atk_reconciled_can_fail(env: Env) -> list[Finding]:
    """A file the adapter never mentions (a custom tree change) must make `reconciled` false."""
    good_headct(env)
    noise(env.headct / "elsewhere" / "stray.png", 3)
    edit_manifest(env.manifests, HEADCT, lambda d: d["layout"]["params"].update(exclude_regex="^elsewhere/"))
    ran = cli(build_args(env, HEADCT))
    findings = check_ran(ran)
    report = read_report(env.out, HEADCT)
    if report is None:
        return findings + [("crash", "no report")]
    return findings + account(env, HEADCT, report)


# --- fault isolation ---------------------------------------------------------------------------------------

register_planted("zero-byte-png", "isolation", "Cyst/zero.png", _write(b""), "quarantined", "empty file")
register_planted("truncated-png", "isolation", "Cyst/cut.png", _truncated_png, "quarantined", "corrupt image")
register_planted("html-named-png", "isolation", "Normal/login.png", _write(b"<html>sign in</html>"), "quarantined",
                 "not an image")
register_planted("garbage-jpeg", "isolation", "Normal/x.jpg", _write(b"\xff\xd8\xff\xe0" + os.urandom(200)),
                 "quarantined", "image")
register_planted("garbage-tiff", "isolation", "Normal/x.tif", _write(b"II*\0" + b"\xff" * 64), "quarantined",
                 "image")
register_planted("dicom-no-pixels", "isolation", "Stone/nopix.dcm", _dicom_no_pixels, "quarantined",
                 "without pixel data")
register_planted("dicom-garbage", "isolation", "Stone/junk.dcm", _write(b"\0" * 128 + b"DICM" + os.urandom(64)),
                 "quarantined", "DICOM")
register_planted("dicom-palette-without-lut", "isolation", "Stone/palette.dcm", _dicom_palette, "quarantined",
                 "palette")
register_planted("nifti-complex", "isolation", "Tumor/complex.nii", _nifti_complex, "quarantined", "complex")
register_planted("nifti-zero-dimension", "isolation", "Tumor/zero.nii", _nifti_zero_dim, "quarantined",
                 "dimension")
register_planted("nifti-garbage", "isolation", "Tumor/junk.nii", _write(os.urandom(400)), "quarantined", "volume")
register_planted("nifti-gz-garbage", "isolation", "Tumor/junk.nii.gz", _write(b"\x1f\x8b" + os.urandom(100)),
                 "quarantined", "volume")
register_planted("mha-garbage", "isolation", "Tumor/junk.mha", _write(b"ObjectType = Image\nNDims = x\n"),
                 "quarantined", "volume")
register_planted("mgz-garbage", "isolation", "Tumor/junk.mgz", _write(os.urandom(100)), "quarantined", "volume")


def _bad_table(content: bytes, says: str):
    def run(env: Env) -> list[Finding]:
        good_headct(env)
        good_kidney(env)
        (env.headct / "labels.csv").write_bytes(content)
        ran = cli(build_args(env, HEADCT, KIDNEY))
        findings = check_ran(ran, code=1, says=says)
        if "labels.csv" not in ran.output:
            findings.append(("crash", "the message does not name labels.csv"))
        report = read_report(env.out, KIDNEY)
        if report is None:
            findings.append(("crash", "one bad table stopped the other source from building"))
        else:
            findings += account(env, KIDNEY, report)
        if "1 source(s) failed" not in ran.output:
            findings.append(("crash", "no summary of the failed sources"))
        return findings
    return run


for _name, _content, _says in [
    ("table-missing-column", b"id,label\n0,1\n", "lacks columns"),
    ("table-ragged-rows", b"id, hemorrhage\n0,1\n1,0,7,8\n2\n", "labels.csv"),
    ("table-latin1", "id, hémorrhagie\n0,1\n".encode("latin-1"), "UTF-8"),
    ("table-empty", b"", "empty"),
    ("table-binary", b"\x89PNG\r\n\x1a\n" + os.urandom(50), "labels.csv"),
    ("table-nul-bytes", b"id, hemorrhage\n0\x00,1\n", "labels.csv"),
]:
    ATTACKS.append(Attack(_name, "isolation", _bad_table(_content, _says)))


@attack("isolation")
def atk_table_missing(env: Env) -> list[Finding]:
    return _bad_table(b"", "missing")(env) if False else _missing_table(env)


def _missing_table(env: Env) -> list[Finding]:
    good_headct(env)
    good_kidney(env)
    (env.headct / "labels.csv").unlink()
    ran = cli(build_args(env, HEADCT, KIDNEY))
    findings = check_ran(ran, code=1, says="missing")
    if read_report(env.out, KIDNEY) is None:
        findings.append(("crash", "one missing table stopped the other source from building"))
    return findings


@attack("isolation")
def atk_source_folder_missing(env: Env) -> list[Finding]:
    good_kidney(env)
    ran = cli(build_args(env, HEADCT, KIDNEY))
    findings = check_ran(ran, code=1, says=HEADCT)
    if read_report(env.out, KIDNEY) is None:
        findings.append(("crash", "a missing folder stopped the other source from building"))
    return findings


@attack("isolation")
def atk_out_is_read_only(env: Env) -> list[Finding]:
    good_kidney(env)
    env.out.mkdir()
    env.out.chmod(0o555)
    try:
        if os.access(env.out, os.W_OK):
            return []  # running as root: a read-only folder cannot be made; nothing to attack
        return check_ran(cli(build_args(env, KIDNEY)), code=1, says=str(env.out))
    finally:
        env.out.chmod(0o755)


@attack("isolation")
def atk_out_is_a_file(env: Env) -> list[Finding]:
    good_kidney(env)
    env.out.write_text("not a folder")
    return check_ran(cli(build_args(env, KIDNEY)), code=1, says="not a folder")


@attack("isolation", slow=True)
def atk_disk_full(env: Env) -> list[Finding]:
    """The file-size limit stands in for a full disk: every write past it fails with EFBIG, as ENOSPC would."""
    import resource
    import signal as _signal

    good_kidney(env, per_label=6)

    def limit():
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    ran = cli_process_(build_args(env, KIDNEY), preexec=limit)
    findings = check_ran(ran, code=1, says="disk")
    if (env.out / "sources" / KIDNEY).exists():
        findings.append(("bad data", "a partial source folder was left as if complete"))
    return findings


def cli_process_(*a, **k):
    from .attack_kit import cli_process
    return cli_process(*a, **k)


# --- bounds --------------------------------------------------------------------------------------------------

register_planted("png-bomb", "bounds", "Tumor/huge.png", _write(_bomb_png()), "quarantined", "too large")
register_planted("jpeg-header-lies", "bounds", "Tumor/lie.jpg", _write(_lying_jpeg()), "quarantined", "too large")
register_planted("jpeg-header-lies-small", "bounds", "Tumor/lie2.jpg", _write(_lying_jpeg(3000, 3000)),
                 "quarantined", "promises more data")
register_planted("jpeg-header-lies-ratio", "bounds", "Tumor/lie3.jpg", _write(_lying_jpeg(9000, 9000)),
                 "quarantined", "promises more data")
register_planted("nifti-gz-bomb", "bounds", "Tumor/bomb.nii.gz", _nifti_gz_bomb, "quarantined", "too large")
register_planted("gif-many-frames", "bounds", "Tumor/frames.gif", _gif_many_frames, "quarantined", "frames")


@attack("bounds")
def atk_max_bytes_limit(env: Env) -> list[Finding]:
    good_kidney(env)
    noise(env.kidney / "Cyst" / "big.png", 9, (200, 200))
    ran = cli(build_args(env, KIDNEY, extra=("--max-bytes", "100000")))
    findings = check_ran(ran)
    if findings:
        return findings
    report = read_report(env.out, KIDNEY)
    from .attack_kit import expect_entry
    return findings + expect_entry(env, KIDNEY, report, "Cyst/big.png", "quarantined", "too large") + \
        account(env, KIDNEY, report)


@attack("bounds")
def atk_max_pixels_flag_replaced(env: Env) -> list[Finding]:
    good_kidney(env)
    return check_ran(cli(build_args(env, KIDNEY, extra=("--max-pixels", "10"))), code=2, says="--max-bytes")


# --- values --------------------------------------------------------------------------------------------------

register_planted("float-tiff-inf", "values", "Cyst/inf.tif", _tiff_inf, "quarantined", "non-finite")
register_planted("float-tiff-nan", "values", "Cyst/nan.tif", _tiff_nan, "quarantined", "non-finite")
register_planted("nifti-nan-voxel", "values", "Tumor/nan.nii", _nifti_nan, "quarantined", "non-finite")
register_planted("nifti-nan-spacing", "values", "Tumor/nanspace.nii", _nifti_nan_spacing, "quarantined",
                 "spacing")
register_planted("nifti-truncated", "values", "Tumor/cut.nii", _nifti_truncated, "quarantined",
                 "promises more data")
register_planted("nifti-truncated-4d", "values", "Tumor/cut4d.nii", _nifti_truncated_4d, "quarantined",
                 "promises more data")
register_planted("dicom-nan-slope", "values", "Stone/slope.dcm", _dicom_nan_slope, "quarantined", "slope")
register_planted("dicom-inf-window", "values", "Stone/window.dcm", _dicom_inf_window, "quarantined", "window")
register_planted("dicom-nan-spacing", "values", "Stone/spacing.dcm", _dicom_nan_spacing, "quarantined", "spacing")
register_planted("dicom-truncated-frames", "values", "Stone/frames.dcm", _dicom_truncated_frames, "quarantined",
                 "DICOM")
