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


def _bomb_png(width=100_000, height=100_000, depth=8) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
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
        if os.access(env.out, os.W_OK):  # root ignores permissions: sysfs refuses new folders (EPERM) even to root
            env.out = Path("/sys/medmat-attack-out")
        return check_ran(cli(build_args(env, KIDNEY)), code=1, says=str(env.out))
    finally:
        (env.root / "out").chmod(0o755)


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


# --- atomic, locked output ---------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _parquet_ok(folder: Path) -> list[str]:
    import pyarrow.parquet as pq

    bad = []
    for shard in sorted(folder.rglob("*.parquet")):
        try:
            pq.read_metadata(shard)
        except Exception as exc:  # noqa: BLE001 - any unreadable shard is the finding
            bad.append(f"{shard.name}: {exc}")
    return bad


@attack("atomic")
def atk_second_build_refused_while_locked(env: Env) -> list[Finding]:
    from medmat.prepare.atomic import OutLock

    good_kidney(env)
    with OutLock(env.out):
        ran = cli(build_args(env, KIDNEY))
    findings = check_ran(ran, code=1, says=f"pid {os.getpid()}")
    if (env.out / "sources" / KIDNEY).exists():
        findings.append(("bad data", "a second build wrote into a locked --out"))
    return findings


@attack("atomic")
def atk_stale_lock_file(env: Env) -> list[Finding]:
    good_kidney(env)
    env.out.mkdir()
    (env.out / ".medmat.lock").write_text('{"pid": 999999, "host": "gone"}')
    ran = cli(build_args(env, KIDNEY))
    findings = check_ran(ran)
    report = read_report(env.out, KIDNEY)
    return findings + ([] if report else [("crash", "a stale lock file blocked the build")])


def _kill_during(env: Env, marker: str, sig: int, per_label: int = 60, hub: bool = True) -> tuple[list[Finding], int]:
    """Build once (complete), add data, start a second build and send `sig` once `marker` appears under OUT."""
    import signal as _signal
    import time

    from .attack_kit import cli_process

    good_kidney(env, per_label=per_label)
    first = cli(build_args(env, KIDNEY, hub=hub))
    findings = check_ran(first)
    if findings:
        return findings, 0
    before_hub = _snapshot(env.out / "hub") if hub else {}
    before_src = _snapshot(env.out / "sources" / KIDNEY)
    for i in range(per_label):
        noise(env.kidney / "Cyst" / f"extra-{i}.png", 5000 + i)
    proc = cli_process(build_args(env, KIDNEY, hub=hub), start_only=True)
    deadline = time.monotonic() + 120
    target = env.out / marker
    while proc.poll() is None and time.monotonic() < deadline and not target.exists():
        time.sleep(0.005)
    if proc.poll() is not None:
        return [("crash", f"the build ended before {marker} appeared: {proc.stdout.read().decode()[-300:]}")], 0
    if sig == _signal.SIGKILL:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    try:
        out, _ = proc.communicate(timeout=60)
    except Exception:
        os.killpg(proc.pid, _signal.SIGKILL)
        return [("hang", "the build did not stop after the signal")], 0
    text = out.decode("utf-8", "replace")
    if sig != _signal.SIGKILL and "Traceback (most recent call last)" in text:
        findings.append(("crash", text.strip().splitlines()[-1]))
    if hub:
        after = _snapshot(env.out / "hub") if (env.out / "hub").exists() else {}
        if after != before_hub:
            findings.append(("bad data", "the previous hub folder changed after an interrupted build"))
        findings += [("bad data", f"unreadable Parquet in hub: {b}") for b in _parquet_ok(env.out / "hub")]
    src = env.out / "sources" / KIDNEY
    after_src = _snapshot(src) if src.exists() else {}
    if after_src != before_src and after_src:
        import json as _json
        report = _json.loads(after_src.get("report.json", b"{}") or b"{}")
        rows = sum(__import__("pyarrow.parquet", fromlist=["x"]).read_metadata(p).num_rows
                   for p in src.glob("*.parquet"))
        if report.get("written") != rows:
            findings.append(("bad data", f"report says {report.get('written')} written over {rows} Parquet rows"))
    elif not after_src:
        findings.append(("silent loss", "the previous source folder is gone after an interrupted build"))
    return findings, proc.returncode


@attack("atomic", slow=True)
def atk_kill9_in_hub_stage(env: Env) -> list[Finding]:
    findings, _ = _kill_during(env, ".hub-staging/hub", signal_kill())
    again = cli(build_args(env, KIDNEY, hub=True))
    findings += check_ran(again)
    if (env.out / ".hub-staging").exists():
        findings.append(("bad data", "the staging folder of the killed run survived a complete rerun"))
    return findings


@attack("atomic", slow=True)
def atk_kill9_in_source_stage(env: Env) -> list[Finding]:
    findings, _ = _kill_during(env, f"sources/.{KIDNEY}.partial/part-00000.parquet", signal_kill(), hub=False)
    return findings


@attack("atomic", slow=True)
def atk_sigint_in_source_stage(env: Env) -> list[Finding]:
    import signal as _signal

    findings, code = _kill_during(env, f"sources/.{KIDNEY}.partial/part-00000.parquet", _signal.SIGINT)
    if code != 130:
        findings.append(("crash", f"exit code {code} after SIGINT, expected 130"))
    if (env.out / "sources" / f".{KIDNEY}.partial").exists():
        findings.append(("bad data", "a partial source folder was left behind after SIGINT"))
    return findings


def signal_kill():
    import signal as _signal
    return _signal.SIGKILL


@attack("atomic", slow=True)
def atk_workers_die_with_parent(env: Env) -> list[Finding]:
    import time

    from .attack_kit import cli_process

    good_kidney(env, per_label=150)
    proc = cli_process(build_args(env, KIDNEY, extra=("--num-proc", "2")), start_only=True)
    children: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(children) < 2 and proc.poll() is None:
        children = _children(proc.pid)
        time.sleep(0.02)
    if len(children) < 2:
        proc.kill()
        proc.communicate()
        return [("crash", f"no worker processes appeared ({children})")]
    proc.kill()  # kill -9 of the parent only: the workers must notice and end
    proc.wait()  # not communicate(): orphaned workers would hold the output pipe open
    time.sleep(2.0)
    alive = [c for c in children if _alive(c)]
    for c in alive:
        os.kill(c, 9)
    proc.stdout.close()
    return [("hang", f"worker processes {alive} outlived their parent")] if alive else []


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@attack("atomic", slow=True)
def atk_two_builds_race(env: Env) -> list[Finding]:
    from .attack_kit import cli_process

    good_kidney(env, per_label=40)
    first = cli_process(build_args(env, KIDNEY), start_only=True)
    second = cli_process(build_args(env, KIDNEY), start_only=True)
    out1, out2 = first.communicate(timeout=120)[0].decode(), second.communicate(timeout=120)[0].decode()
    codes = sorted([first.returncode, second.returncode])
    findings = []
    if codes == [0, 1]:
        loser = out1 if first.returncode else out2
        if "being written by another medmat build" not in loser:
            findings.append(("crash", f"the refused build does not name the holder: {loser[-200:]}"))
    elif codes != [0, 0]:  # both may succeed one after the other when the first ends before the second starts
        findings.append(("crash", f"exit codes {codes}: {out1[-200:]} / {out2[-200:]}"))
    report = read_report(env.out, KIDNEY)
    import pyarrow.parquet as pq
    rows = sum(pq.read_metadata(p).num_rows for p in (env.out / "sources" / KIDNEY).glob("*.parquet"))
    if report is None or report["written"] != rows:
        findings.append(("bad data", f"report says {report and report['written']} written over {rows} rows"))
    return findings + (account(env, KIDNEY, report) if report else [])


# --- downloads ----------------------------------------------------------------------------------------------


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    import warnings
    import zipfile

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names warn
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return buf.getvalue()


def _bad_crc_zip() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("images/a.png", b"A" * 200)
    data = bytearray(buf.getvalue())
    data[data.index(b"A" * 200) + 5] = ord("B")
    return bytes(data)


def _lying_zip() -> bytes:
    """A zip whose central directory declares 4 GiB for a 1 KiB member (a bomb's signature)."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("images/a.png", b"\0" * 1024)
    data = bytearray(buf.getvalue())
    cd = data.rindex(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 24, 0xFFFFFFF0)
    return bytes(data)


def _tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Server:
    def __enter__(self):
        from .loopback import start
        self.lb = start()
        return self.lb

    def __exit__(self, *exc):
        self.lb.server.shutdown()
        self.lb.server.server_close()


def _open_source(env: Env, files: list[dict], expected: list[dict] | None = None) -> None:
    def change(d):
        d["access"] = {"kind": "open"}
        d["files"] = files
        d["expected_files"] = expected or [{"path": "images/"}]
    edit_manifest(env.manifests, KIDNEY, change)


def _download(env: Env, *extra, timeout: float = 30.0):
    return cli(["download", KIDNEY, "--data-dir", env.data, "--manifests", env.manifests, "--retries", "1",
                "--backoff", "0", *extra], timeout=timeout)


def _archive_refused(payload_fn, says: str, name: str = "a.zip"):
    def run(env: Env) -> list[Finding]:
        from .loopback import send_bytes
        payload = payload_fn()
        with _Server() as lb:
            lb.routes[f"/{name}"] = lambda h: send_bytes(h, payload)
            _open_source(env, [{"name": name, "url": lb.url(f"/{name}"), "extract": True}])
            ran = _download(env)
        findings = check_ran(ran, code=1, says=says)
        written = [p for p in (env.data / KIDNEY).rglob("*")] if (env.data / KIDNEY).exists() else []
        if any(p.is_file() for p in written):
            findings.append(("bad data", f"files from a refused archive were written: {written[:3]}"))
        return findings
    return run


for _name, _payload, _says in [
    ("zip-duplicate-members", lambda: _zip([("images/a.png", b"one"), ("images/a.png", b"two")]), "appears twice"),
    ("zip-bad-crc", _bad_crc_zip, "images/a.png"),
    ("zip-file-folder-clash", lambda: _zip([("images/a", b"file"), ("images/a/b.png", b"x")]), "both a file and a folder"),
    ("zip-name-too-long", lambda: _zip([("images/" + "n" * 300 + ".png", b"x")]), "longer than"),
    ("zip-declared-size-bomb", _lying_zip, "bomb"),
    ("zip-absolute-member", lambda: _zip([("/tmp/medmat-attack-abs.png", b"x")]), "absolute path"),
    ("zip-climbing-member", lambda: _zip([("images/../../x.png", b"x")]), "climbs out"),
]:
    ATTACKS.append(Attack(_name, "downloads", _archive_refused(_payload, _says)))

ATTACKS.append(Attack("tar-gz-truncated", "downloads", _archive_refused(
    lambda: _tar_gz([("images/a.png", os.urandom(50_000))])[:20_000], "truncated", name="a.tar.gz")))
ATTACKS.append(Attack("tar-duplicate-members", "downloads", _archive_refused(
    lambda: _tar_gz([("images/a.png", b"one"), ("images/a.png", b"two")]), "appears twice", name="a.tar.gz")))


@attack("downloads")
def atk_extract_through_symlinked_folder(env: Env) -> list[Finding]:
    from .loopback import send_bytes
    payload = _zip([("images/a.png", b"payload")])
    (env.data / KIDNEY).mkdir(parents=True)
    (env.data / KIDNEY / "images").symlink_to(env.outside, target_is_directory=True)
    with _Server() as lb:
        lb.routes["/a.zip"] = lambda h: send_bytes(h, payload)
        _open_source(env, [{"name": "a.zip", "url": lb.url("/a.zip"), "extract": True}])
        ran = _download(env)
    findings = check_ran(ran, code=1, says="symbolic link")
    if (env.outside / "a.png").exists():
        findings.append(("escape", "extraction wrote through a link into the outside folder"))
    return findings


@attack("downloads")
def atk_trickling_server(env: Env) -> list[Finding]:
    import time

    def trickle(h):
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        try:
            for _ in range(60):
                h.wfile.write(b"x")
                h.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    with _Server() as lb:
        lb.routes["/slow.bin"] = trickle
        _open_source(env, [{"name": "slow.bin", "url": lb.url("/slow.bin"), "extract": False}], [{"path": "slow.bin"}])
        start = time.monotonic()
        ran = _download(env, "--timeout", "1", "--min-rate", "1000", timeout=20)
        took = time.monotonic() - start
    findings = check_ran(ran, code=1, says="stalled")
    if took > 10:
        findings.append(("hang", f"a 5 byte/s server held the download for {took:.0f} s"))
    part = env.data / KIDNEY / "slow.bin.part"
    if not part.is_file() or part.stat().st_size == 0:
        findings.append(("silent loss", "the bytes received before the stall were not kept"))
    return findings


@attack("downloads")
def atk_fifo_where_archive_should_be(env: Env) -> list[Finding]:
    with _Server() as lb:
        from .loopback import send_bytes
        payload = _zip([("images/a.png", b"x")])
        lb.routes["/a.zip"] = lambda h: send_bytes(h, payload)
        _open_source(env, [{"name": "a.zip", "url": lb.url("/a.zip"), "extract": True}])
        cache = env.data / ".downloads" / KIDNEY
        cache.mkdir(parents=True)
        os.mkfifo(cache / "a.zip")
        doctor = cli(["doctor", KIDNEY, "--data-dir", env.data, "--manifests", env.manifests], timeout=20)
        ran = _download(env, timeout=20)
    findings = check_ran(doctor, code=1, says="not a regular file")
    return findings + check_ran(ran, code=0)


@attack("downloads")
def atk_token_in_url_not_stored(env: Env) -> list[Finding]:
    from .loopback import send_bytes
    data = os.urandom(60_000)
    with _Server() as lb:
        lb.routes["/f.bin"] = lambda h: send_bytes(h, data, cut_at=20_000)
        url = lb.url("/f.bin") + "?token=SECRET-TOKEN-123"
        _open_source(env, [{"name": "f.bin", "url": url, "size": len(data), "extract": False}], [{"path": "f.bin"}])
        ran = _download(env)
    findings = check_ran(ran, code=1)
    if "SECRET-TOKEN-123" in ran.output:
        findings.append(("escape", "the token was printed"))
    state = env.data / KIDNEY / "f.bin.part.json"
    if not state.is_file():
        return findings + [("silent loss", "no resume state was kept after the interruption")]
    if "SECRET-TOKEN-123" in state.read_text():
        findings.append(("escape", "the token is stored in clear in the resume state"))
    if state.stat().st_mode & 0o077:
        findings.append(("escape", f"the resume state is mode {oct(state.stat().st_mode & 0o777)}, not 0600"))
    part = env.data / KIDNEY / "f.bin.part"
    if not part.is_file() or part.stat().st_size != 20_000:
        findings.append(("silent loss", "the 20,000 bytes received before the interruption were not kept"))
    return findings


@attack("downloads")
def atk_publisher_md5_checked(env: Env) -> list[Finding]:
    from .loopback import send_bytes
    data = os.urandom(5000)
    with _Server() as lb:
        lb.routes["/f.bin"] = lambda h: send_bytes(h, data)
        _open_source(env, [{"name": "f.bin", "url": lb.url("/f.bin"), "md5": "0" * 32, "extract": False}], [{"path": "f.bin"}])
        ran = _download(env)
    findings = check_ran(ran, code=1, says="md5")
    if (env.data / KIDNEY / "f.bin").exists():
        findings.append(("bad data", "a file whose md5 differs from the publisher's was kept"))
    return findings


@attack("downloads")
def atk_unverified_said_plainly(env: Env) -> list[Finding]:
    from .loopback import send_bytes
    data = os.urandom(5000)
    with _Server() as lb:
        lb.routes["/f.bin"] = lambda h: send_bytes(h, data)
        _open_source(env, [{"name": "f.bin", "url": lb.url("/f.bin"), "extract": False}], [{"path": "f.bin"}])
        ran = _download(env)
    # --no-labels: this attack is about checksums; the folder holds no images for doctor's label walk.
    doctor = cli(["doctor", KIDNEY, "--data-dir", env.data, "--manifests", env.manifests, "--json", "--no-labels"])
    return check_ran(ran, says="UNVERIFIED") + check_ran(doctor, says="UNVERIFIED")


@attack("downloads")
def atk_gzip_encoded_response(env: Env) -> list[Finding]:
    data = os.urandom(5000)
    body = gzip.compress(data)

    def route(h):
        h.send_response(200)
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    with _Server() as lb:
        lb.routes["/f.bin"] = route
        _open_source(env, [{"name": "f.bin", "url": lb.url("/f.bin"), "extract": False}], [{"path": "f.bin"}])
        ran = _download(env)
    findings = check_ran(ran)
    target = env.data / KIDNEY / "f.bin"
    if target.is_file() and target.read_bytes() != data:
        findings.append(("bad data", "the gzip-encoded bytes were kept as the file"))
    return findings


@attack("downloads")
def atk_resume_of_changed_file(env: Env) -> list[Finding]:
    """The server's file changed since the partial download and it ignores If-Range: the resume must restart."""
    from medmat.download.http import url_key

    new = os.urandom(30_000)

    def route(h):
        rng = h.headers.get("Range")
        start = int(rng[6:].split("-")[0]) if rng else 0
        h.send_response(206 if start else 200)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(new) - 1}/{len(new)}")
        h.send_header("ETag", '"v2"')
        h.send_header("Content-Length", str(len(new) - start))
        h.end_headers()
        h.wfile.write(new[start:])

    with _Server() as lb:
        lb.routes["/f.bin"] = route
        url = lb.url("/f.bin")
        _open_source(env, [{"name": "f.bin", "url": url, "extract": False}], [{"path": "f.bin"}])
        folder = env.data / KIDNEY
        folder.mkdir(parents=True)
        (folder / "f.bin.part").write_bytes(os.urandom(10_000))  # from the old version of the file
        (folder / "f.bin.part.json").write_text(
            __import__("json").dumps({"url": url_key(url), "validator": '"v1"', "total": 30_000}))
        ran = _download(env, "--retries", "3")
    findings = check_ran(ran)
    target = env.data / KIDNEY / "f.bin"
    if target.is_file() and target.read_bytes() != new:
        findings.append(("bad data", "old bytes were kept at the start of a resumed, changed file"))
    return findings


# --- DICOM series (the kidney source read as one series per folder) ----------------------------------------


def _series(folder: Path, positions: list[float | None], seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, z in enumerate(positions):
        extra = {} if z is None else {"ImagePositionPatient": [0, 0, z], "ImageOrientationPatient": [1, 0, 0, 0, 1, 0]}
        _dicom(folder / f"slice{i:02d}.dcm", rng.integers(0, 4000, (16, 16)).astype(np.uint16), InstanceNumber=i + 1,
               PixelSpacing=[1, 1], SliceThickness=2, **extra)


def _series_attack(positions_bad: list[float | None], reason: str | None):
    def run(env: Env) -> list[Finding]:
        def change(d):
            d["layout"]["family"] = "dicom-study"
            d["layout"]["params"] = {"extensions": ["dcm"], "label": "Cyst"}
            d["dimensionality"] = "3d"
        edit_manifest(env.manifests, KIDNEY, change)
        _series(env.kidney / "good", [0.0, 2.0, 4.0, 6.0], seed=1)
        _series(env.kidney / "bad", positions_bad, seed=2)
        (env.data / KIDNEY / "kidneyData.csv").write_text("x\n")
        ran = cli(build_args(env, KIDNEY))
        findings = check_ran(ran)
        if findings:
            return findings
        report = read_report(env.out, KIDNEY)
        from .attack_kit import written_paths
        written = written_paths(env.out, KIDNEY)
        if not any(p.endswith("/good") for p in written):
            findings.append(("silent loss", f"the good series was not built: {report['quarantined_files']}"))
        bad = [e for e in report["quarantined_files"] if e["path"] == "bad"]
        if reason is None:
            if not any(p.endswith("/bad") for p in written):
                findings.append(("silent loss", f"a series without positions (ordered by InstanceNumber by rule) was "
                                                f"not built: {report['quarantined_files']}"))
        elif any(p.endswith("/bad") for p in written):
            findings.append(("bad data", f"the series was written; expected quarantined: {reason}"))
        elif not bad or reason.lower() not in bad[0]["reason"].lower():
            findings.append(("silent loss", f"series 'bad' not quarantined with {reason!r}: {bad}"))
        return findings + account_series(env, report)
    return run


def account_series(env: Env, report: dict) -> list[Finding]:
    """Series items name folders; every slice file must be inside a written or quarantined series folder."""
    from .attack_kit import KIDNEY_ROOT, disk_entries, written_paths
    written = {p.removeprefix(KIDNEY_ROOT + "/") for p in written_paths(env.out, KIDNEY)}
    named = written | {e["path"] for e in report["quarantined_files"]} | {e["path"] for e in report["excluded_files"]}
    lost = [rel for rel in disk_entries(env.kidney)
            if rel not in named and rel.rsplit("/", 1)[0] not in named]
    return [("silent loss", f"{rel} is in no written, quarantined or excluded entry") for rel in lost]


ATTACKS.append(Attack("series-missing-slice", "values", _series_attack([0.0, 2.0, 6.0, 8.0], "missing slice")))
ATTACKS.append(Attack("series-repeated-slice", "values", _series_attack([0.0, 2.0, 2.0, 4.0], "repeated slice")))
ATTACKS.append(Attack("series-slice-without-position", "values",
                      _series_attack([0.0, 2.0, None, 6.0], "without ImagePositionPatient")))
ATTACKS.append(Attack("series-without-any-position", "values", _series_attack([None, None, None], None)))


@attack("atomic", slow=True)
def atk_disk_full_in_hub_stage(env: Env) -> list[Finding]:
    """A file-size limit between the largest source file and a larger hub file: the source stage passes, the hub
    stage hits the 'full disk'; the previous hub folder must stay exactly as it was."""
    import resource
    import signal as _signal

    from .attack_kit import cli_process

    good_kidney(env, per_label=6)
    args = build_args(env, KIDNEY, hub=True)  # a local build keeps every pixel
    findings = check_ran(cli(args))
    if findings:
        return findings
    before = _snapshot(env.out / "hub")
    biggest_source = max(p.stat().st_size for p in (env.out / "sources").rglob("*") if p.is_file())
    bigger = sorted(len(b) for b in before.values() if len(b) > biggest_source + 512)
    if not bigger:
        return []  # no hub file outgrows the source files here: the fault cannot be placed
    limit = (biggest_source + bigger[0]) // 2

    def cap():
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    ran = cli_process(args, preexec=cap)
    findings = check_ran(ran, code=1, says="disk full")
    if _snapshot(env.out / "hub") != before:
        findings.append(("bad data", "the previous hub folder changed when the disk filled in the hub stage"))
    if (env.out / ".hub-staging").exists():
        findings.append(("bad data", "the half-written staging folder was left behind"))
    return findings


# --- wider: more files, tables, headers and download faults ----------------------------------------------


def _sparse(size: int):
    def make(path, env):
        with open(path, "wb") as fh:
            fh.truncate(size)  # no disk used: a reader that reads first would allocate `size` bytes
    return make


def _tiff_pages(path, env):
    pages = [Image.fromarray(np.full((2, 2), i % 251, np.uint8)) for i in range(5000)]
    pages[0].save(path, save_all=True, append_images=pages[1:])


def _dicom_lying_header(path, env):
    ds = _dicom(path)
    ds.Rows, ds.Columns, ds.NumberOfFrames = 30000, 30000, 50
    ds.save_as(path, enforce_file_format=True)


def _mha_huge_header(path, env):
    path.write_bytes(b"ObjectType = Image\nNDims = 3\nDimSize = 100000 100000 100000\nElementType = MET_UCHAR\n"
                     b"ElementDataFile = LOCAL\n" + bytes(64))


def _mha_nan_spacing(path, env):
    data = np.random.default_rng(4).integers(0, 255, 8 * 8 * 4, np.uint8).tobytes()
    path.write_bytes(b"ObjectType = Image\nNDims = 3\nDimSize = 8 8 4\nElementType = MET_UCHAR\n"
                     b"ElementSpacing = nan 1 1\nElementDataFile = LOCAL\n" + data)


def _png_1bit_huge(path, env):
    path.write_bytes(_bomb_png(60000, 60000, depth=1))


def _tiff_minus_inf(path, env):
    values = np.random.default_rng(11).random((16, 16)).astype(np.float32)
    values[5, 5] = -np.inf
    _float_tiff(path, values)


def _nifti_inf(path, env):
    data = np.random.default_rng(12).random((8, 8, 4)).astype(np.float32)
    data[2, 2, 2] = np.inf
    _nifti(path, data)


def _nifti_gz_4d_lie(path, env):
    """A .nii.gz whose header claims 4000 frames of 64^3: 1 GB promised from a few kilobytes."""
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    header = img.header.copy()
    header.set_data_shape((64, 64, 64, 4000))
    path.write_bytes(gzip.compress(header.binaryblock + b"\0" * 4 + b"\0" * 1024))


def _dicom_zero_slope(path, env):
    _dicom(path, RescaleSlope=0, RescaleIntercept=-1024)


def _dicom_zero_width(path, env):
    _dicom(path, WindowCenter=40, WindowWidth=0)


for _args in [
    ("nested-hidden-folder", "accounting", "Cyst/.git/objects/ab.png", lambda p, e: noise(p, 31), "excluded", "hidden"),
    ("macosx-resource-fork", "accounting", "Cyst/__MACOSX/._Cyst- (1).png", _write(b"\0\5\26\7"), "excluded",
     "metadata"),
    ("sparse-5gib-png", "bounds", "Tumor/sparse.png", _sparse(5 * 1024**3), "quarantined", "too large"),
    ("tiff-5000-pages", "bounds", "Tumor/pages.tif", _tiff_pages, "quarantined", "frames"),
    ("dicom-header-lies", "bounds", "Stone/lies.dcm", _dicom_lying_header, "quarantined", "too large"),
    ("mha-header-huge", "bounds", "Tumor/huge.mha", _mha_huge_header, "quarantined", "promises more data"),
    ("png-1bit-huge", "bounds", "Tumor/onebit.png", _png_1bit_huge, "quarantined", "too large"),
    ("nifti-gz-4d-lie", "bounds", "Tumor/lie4d.nii.gz", _nifti_gz_4d_lie, "quarantined", "promises more data"),
    ("float-tiff-minus-inf", "values", "Cyst/minf.tif", _tiff_minus_inf, "quarantined", "non-finite"),
    ("nifti-inf-voxel", "values", "Tumor/inf.nii", _nifti_inf, "quarantined", "non-finite"),
    ("mha-nan-spacing", "values", "Tumor/nan.mha", _mha_nan_spacing, "quarantined", "spacing"),
    ("dicom-zero-slope", "values", "Stone/zero-slope.dcm", _dicom_zero_slope, "quarantined", "slope"),
    ("dicom-zero-window-width", "values", "Stone/zero-width.dcm", _dicom_zero_width, "quarantined", "window width"),
    ("png-bad-crc", "isolation", "Normal/crc.png", lambda p, e: p.write_bytes(_bomb_png(8, 8)[:-8] + b"\0\0\0\0"
                                                                                 + b"IEND"), "quarantined", "image"),
]:
    register_planted(*_args)


@attack("accounting")
def atk_uppercase_extension_is_built(env: Env) -> list[Finding]:
    good_kidney(env)
    noise(env.kidney / "Cyst" / "SHOUT.PNG", 71)
    ran = cli(build_args(env, KIDNEY))
    findings = check_ran(ran)
    if findings:
        return findings
    from .attack_kit import written_paths
    if not any(p.endswith("Cyst/SHOUT.PNG") for p in written_paths(env.out, KIDNEY)):
        findings.append(("silent loss", "an image with an upper-case suffix was not built"))
    return findings + account(env, KIDNEY, read_report(env.out, KIDNEY))


@attack("accounting")
def atk_folder_named_like_an_image(env: Env) -> list[Finding]:
    good_kidney(env)
    noise(env.kidney / "Cyst" / "dir.png" / "inner.png", 72)
    ran = cli(build_args(env, KIDNEY))
    findings = check_ran(ran)
    return findings + (account(env, KIDNEY, read_report(env.out, KIDNEY)) if not findings else [])


def _table_variant(content: bytes, check):
    def run(env: Env) -> list[Finding]:
        good_headct(env)
        (env.headct / "labels.csv").write_bytes(content)
        ran = cli(build_args(env, HEADCT))
        findings = check_ran(ran)
        if findings:
            return findings
        report = read_report(env.out, HEADCT)
        return findings + check(report) + account(env, HEADCT, report)
    return run


def _all_quarantined(says: str):
    def check(report):
        hits = [e for e in report["quarantined_files"] if says in e["reason"]]
        return [] if hits else [
            ("silent loss", f"expected quarantines saying {says!r}: {report['quarantined_files']}")]
    return check


ATTACKS.append(Attack("table-header-only", "accounting", _table_variant(b"id, hemorrhage\n",
                                                                       _all_quarantined("has no row"))))
ATTACKS.append(Attack("table-duplicate-rows", "accounting", _table_variant(
    b"id, hemorrhage\n0,0\n0,1\n1,1\n2,0\n3,1\n", _all_quarantined("repeats this image"))))
ATTACKS.append(Attack("table-row-for-missing-file", "accounting", _table_variant(
    b"id, hemorrhage\n0,0\n1,1\n2,0\n3,1\n99,1\n", _all_quarantined("missing"))))


def _table_format(name: str, content: bytes, fmt: str, says: str):
    def run(env: Env) -> list[Finding]:
        good_headct(env)
        good_kidney(env)
        (env.headct / name).write_bytes(content)
        edit_manifest(env.manifests, HEADCT, lambda d: d["layout"]["params"].update(table=name, table_format=fmt))
        ran = cli(build_args(env, HEADCT, KIDNEY))
        findings = check_ran(ran, code=1, says=says)
        if name not in ran.output:
            findings.append(("crash", f"the message does not name {name}"))
        if read_report(env.out, KIDNEY) is None:
            findings.append(("crash", "one bad table stopped the other source"))
        return findings
    return run


ATTACKS.append(Attack("table-xlsx-garbage", "isolation", _table_format("labels.xlsx", b"PK\3\4" + os.urandom(80),
                                                                       "xlsx", "cannot be parsed")))
ATTACKS.append(Attack("table-json-garbage", "isolation", _table_format("labels.json", b"{not json",
                                                                       "json", "cannot be parsed")))


@attack("confinement")
def atk_table_in_symlinked_folder(env: Env) -> list[Finding]:
    good_headct(env)
    (env.outside / "meta").mkdir()
    (env.outside / "meta" / "labels.csv").write_bytes((env.headct / "labels.csv").read_bytes())
    (env.headct / "meta").symlink_to(env.outside / "meta", target_is_directory=True)
    edit_manifest(env.manifests, HEADCT, lambda d: d["layout"]["params"].update(table="meta/labels.csv"))
    ran = cli(build_args(env, HEADCT))
    findings = check_ran(ran, code=1, says="link")
    if read_report(env.out, HEADCT) is not None:
        findings.append(("escape", "the label table was read through a linked folder"))
    return findings


def _bad_root(value: str):
    def run(env: Env) -> list[Finding]:
        edit_manifest(env.manifests, KIDNEY, lambda d: d["layout"].update(root=value))
        return check_ran(cli(["validate", env.manifests]), code=1, says="layout.root")
    return run


ATTACKS.append(Attack("layout-root-backslash", "confinement", _bad_root("..\\..\\outside")))
ATTACKS.append(Attack("layout-root-home", "confinement", _bad_root("~/outside")))
ATTACKS.append(Attack("layout-root-drive", "confinement", _bad_root("C:/outside")))


def _served(route, file: dict, *extra, expected=None, code=1, says=None, check=None):
    def run(env: Env) -> list[Finding]:
        with _Server() as lb:
            lb.routes["/f.bin"] = lambda h: route(h, lb)
            entry = {"name": "f.bin", "url": lb.url("/f.bin"), "extract": False} | file
            _open_source(env, [entry], expected or [{"path": "f.bin"}])
            if check is not None and hasattr(check, "before"):
                check.before(env)
            ran = _download(env, *extra)
        findings = check_ran(ran, code=code, says=says)
        if "Traceback" in ran.output:
            findings.append(("crash", "a traceback was printed"))
        return findings + (check(env) if check is not None else [])
    return run


def _html(h, lb):
    from .loopback import send_bytes
    send_bytes(h, b"<!doctype html><html><body>Please log in</body></html>", content_type="text/html")


def _redirect_away(h, lb):
    from .loopback import send_status
    port = lb.server.server_address[1]
    send_status(h, 302, headers={"Location": f"http://localhost:{port}/f.bin"})


def _not_found(h, lb):
    from .loopback import send_status
    send_status(h, 404, b"gone")


def _too_long(h, lb):
    from .loopback import send_bytes
    send_bytes(h, b"x" * 6000)


def _nothing_kept(env: Env) -> list[Finding]:
    target = env.data / KIDNEY / "f.bin"
    return [("bad data", "a refused download was kept")] if target.exists() else []


ATTACKS.append(Attack("html-instead-of-file", "downloads", _served(_html, {}, says="HTML page", check=_nothing_kept)))
ATTACKS.append(Attack("redirect-to-unnamed-host", "downloads", _served(_redirect_away, {}, says="refused to contact",
                                                                        check=_nothing_kept)))
ATTACKS.append(Attack("http-404", "downloads", _served(_not_found, {}, says="not found", check=_nothing_kept)))
ATTACKS.append(Attack("more-bytes-than-manifest", "downloads", _served(_too_long, {"size": 5000}, says="size is",
                                                                        check=_nothing_kept)))


def _links_in_download_folder(kind: str):
    def before(env: Env):
        folder = env.data / KIDNEY
        folder.mkdir(parents=True, exist_ok=True)
        (env.outside / "victim.txt").write_text("do not touch")
        name = {"target": "f.bin", "part": "f.bin.part", "state": "f.bin.part.json"}[kind]
        (folder / name).symlink_to(env.outside / "victim.txt")

    def check(env: Env) -> list[Finding]:
        victim = env.outside / "victim.txt"
        if victim.read_text() != "do not touch":
            return [("escape", f"the download wrote through a {kind} link into the outside folder")]
        target = env.data / KIDNEY / "f.bin"
        return [] if target.is_file() and not target.is_symlink() else [("silent loss", "the file was not fetched")]
    check.before = before
    return check


def _plain(h, lb):
    from .loopback import send_bytes
    send_bytes(h, b"y" * 4000)


for _kind in ("target", "part", "state"):
    ATTACKS.append(Attack(f"download-{_kind}-is-symlink", "downloads",
                          _served(_plain, {}, code=0, check=_links_in_download_folder(_kind))))


def _tar_with(kind: str) -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("images/a.png")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
        odd = tarfile.TarInfo("images/odd")
        if kind == "device":
            odd.type, odd.devmajor, odd.devminor = tarfile.CHRTYPE, 1, 3
        else:
            odd.type, odd.linkname = tarfile.LNKTYPE, "/etc/passwd"
        tf.addfile(odd)
    return buf.getvalue()


ATTACKS.append(Attack("tar-device-member", "downloads", _archive_refused(lambda: _tar_with("device"), "device",
                                                                         name="a.tar")))
ATTACKS.append(Attack("tar-hardlink-member", "downloads", _archive_refused(lambda: _tar_with("link"), "link",
                                                                          name="a.tar")))


def _zip_symlink() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("images/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


ATTACKS.append(Attack("zip-symlink-member", "downloads", _archive_refused(_zip_symlink, "symlink")))


@attack("confinement")
def atk_table_path_climbs_out(env: Env) -> list[Finding]:
    good_headct(env)
    good_kidney(env)
    (env.outside / "labels.csv").write_bytes((env.headct / "labels.csv").read_bytes())
    edit_manifest(env.manifests, HEADCT, lambda d: d["layout"]["params"].update(table="../../outside/labels.csv"))
    findings = check_ran(cli(["validate", env.manifests]), code=1, says="inside the source folder")
    ran = cli(build_args(env, HEADCT, KIDNEY))
    findings += check_ran(ran, code=1)
    if read_report(env.out, HEADCT) is not None:
        findings.append(("escape", "a label table outside the source folder was read"))
    return findings


# --- determinism (kept from before: same inputs give the same bytes) ---------------------------------------


@attack("determinism", slow=True)
def atk_same_bytes_whatever_the_environment(env: Env) -> list[Finding]:
    """Two builds in child processes that differ in working directory, TZ, LANG, PYTHONHASHSEED and --num-proc (and
    the hub built beside the old one in the second) must write byte-identical Parquet and reports."""
    from .attack_kit import cli_process

    good_kidney(env, per_label=5)
    (env.kidney / "Stone" / "vol.nii").parent.mkdir(parents=True, exist_ok=True)
    _nifti(env.kidney / "Stone" / "vol.nii", np.random.default_rng(21).integers(0, 255, (8, 8, 4), dtype=np.uint8))
    outs = []
    for i, (tz, lang, seed, procs) in enumerate([("UTC", "C.UTF-8", "0", "1"), ("Asia/Kolkata", "de_DE.UTF-8", "123",
                                                                                "2")]):
        out = env.root / f"out{i}"
        cwd = env.root / f"cwd{i}"
        cwd.mkdir()
        args = ["build", KIDNEY, "--data-dir", env.data, "--out", out, "--manifests", env.manifests,
                "--num-proc", procs, "--figures"]  # the card's figures must be byte-identical too
        old = os.getcwd()
        os.chdir(cwd)
        try:
            ran = cli_process(args, env={"TZ": tz, "LANG": lang, "LC_ALL": lang, "PYTHONHASHSEED": seed})
        finally:
            os.chdir(old)
        findings = check_ran(ran)
        if findings:
            return findings
        outs.append(out)
    first = {k: v for k, v in _snapshot(outs[0]).items() if "lock" not in k}
    second = {k: v for k, v in _snapshot(outs[1]).items() if "lock" not in k}
    if first.keys() != second.keys():
        return [("bad data", f"different files: {sorted(first.keys() ^ second.keys())[:5]}")]
    differ = [k for k in first if first[k] != second[k]]
    return [("bad data", f"bytes differ across environments: {differ[:5]}")] if differ else []
