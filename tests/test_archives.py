"""Archives are extracted without path traversal, absolute paths, links or bombs."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from medmat.download.extract import UnsafeArchiveError, extract


def _zip(path, members: dict[str, bytes], symlink: tuple[str, str] | None = None):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink[0])
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, symlink[1])
    return path


def _tar(path, members: dict[str, bytes], link: tuple[str, str, bytes] | None = None):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = link[2], link[1]
            tf.addfile(info)
    return path


def test_zip_extracts(tmp_path):
    archive = _zip(tmp_path / "ok.zip", {"top/a.png": b"1", "top/sub/b.csv": b"2"})
    assert extract(archive, tmp_path / "out") == ["top/a.png", "top/sub/b.csv"]
    assert (tmp_path / "out" / "top" / "sub" / "b.csv").read_bytes() == b"2"


def test_tar_extracts(tmp_path):
    archive = _tar(tmp_path / "ok.tar.gz", {"images/00000001_000.png": b"x"})
    assert extract(archive, tmp_path / "out") == ["images/00000001_000.png"]


@pytest.mark.parametrize("name, words", [("../evil.txt", "'..'"), ("a/../../evil.txt", "'..'"),
                                         ("/etc/evil.txt", "absolute"), ("C:/evil.txt", "absolute")])
def test_zip_traversal_refused(tmp_path, name, words):
    archive = _zip(tmp_path / "bad.zip", {"fine.txt": b"ok", name: b"evil"})
    with pytest.raises(UnsafeArchiveError, match=words):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-extracted
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlink_refused(tmp_path):
    archive = _zip(tmp_path / "link.zip", {"a.txt": b"ok"}, symlink=("link", "/etc/passwd"))
    with pytest.raises(UnsafeArchiveError, match="symlink"):
        extract(archive, tmp_path / "out")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_links_refused(tmp_path, kind):
    archive = _tar(tmp_path / "link.tar.gz", {"a.txt": b"ok"}, link=("escape", "/etc/passwd", kind))
    with pytest.raises(UnsafeArchiveError, match="link"):
        extract(archive, tmp_path / "out")


def test_tar_traversal_refused(tmp_path):
    archive = _tar(tmp_path / "bad.tar.gz", {"../../evil.txt": b"evil"})
    with pytest.raises(UnsafeArchiveError, match="'..'"):
        extract(archive, tmp_path / "out")


def test_declared_size_limit(tmp_path):
    archive = _zip(tmp_path / "big.zip", {"a.bin": b"0" * 5000})
    with pytest.raises(UnsafeArchiveError, match="limit"):
        extract(archive, tmp_path / "out", max_bytes=1000)


def test_not_an_archive(tmp_path):
    (tmp_path / "page.zip").write_text("<html>login</html>")
    with pytest.raises(UnsafeArchiveError, match="neither"):
        extract(tmp_path / "page.zip", tmp_path / "out")


def test_archives_sharing_a_folder_are_merged(tmp_path):
    first = _tar(tmp_path / "images_001.tar.gz", {"images/00000001_000.png": b"a"})
    second = _tar(tmp_path / "images_002.tar.gz", {"images/00000002_000.png": b"b"})
    extract(first, tmp_path / "nih")
    extract(second, tmp_path / "nih")
    assert sorted(p.name for p in (tmp_path / "nih" / "images").iterdir()) == ["00000001_000.png", "00000002_000.png"]
