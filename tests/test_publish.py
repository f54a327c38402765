"""`medmat publish` against a local stand-in for the Hub's upload API (127.0.0.1, no network): the uploaded tree
is what `load_dataset` reads, uploads resume after an interruption, bad folders are refused before any request,
and the token never appears in output, logs or errors."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Image, load_dataset
from huggingface_hub import constants as hf_constants
from huggingface_hub.utils import logging as hf_logging
from typer.testing import CliRunner

from medmat.cli import app
from medmat.hub.publish import PublishError, check_hub_folder, publish, redact

from .hub_standin import HubStandIn
from .minihub import mat_rows, write_hub_folder, write_parquet

TOKEN = "hf_medmatTestToken0123456789abcdefXYZ"
REPO = "medmat-test/Med-MAT"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hub():
    with HubStandIn(TOKEN) as server:
        yield server


@pytest.fixture
def token_env(monkeypatch, tmp_path):
    """HF_TOKEN set; no stored login, so the token can only come from the environment."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    return write_hub_folder(tmp_path_factory.mktemp("out") / "hub")


def _local_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _rows(path: Path, config: str, cache: Path, streaming: bool = False) -> dict[str, list[dict]]:
    ds = load_dataset(str(path), config, cache_dir=str(cache), streaming=streaming)
    out = {}
    for split in sorted(ds):
        part = ds[split].cast_column("image", Image(decode=False))
        out[split] = sorted(part, key=lambda r: r["id"]) if streaming else sorted(part.to_list(), key=lambda r: r["id"])
    return out


def test_published_tree_is_what_load_dataset_reads(hub, hub_folder, token_env, tmp_path):
    result = publish(hub_folder, REPO, private=True, endpoint=hub.url)
    repo = hub.repo(REPO)
    assert repo.private and repo.repo_type == "dataset"
    assert repo.branches["main"] == _local_files(hub_folder)  # every file, byte for byte
    assert result.files == len(repo.branches["main"]) and result.revision == "main"
    assert result.commit_url.endswith(repo.heads["main"])
    assert set(result.configs) == {"subset-03", "subset-10", "source-src-ct-a", "source-src-ct-b", "source-src-fundus"}
    assert hub.unhandled == []  # nothing outside the upload API was asked for (no Xet, no LFS)

    tree = repo.write_tree(tmp_path / "clone")
    expected = {r["id"]: r for r in mat_rows()}
    for config in ("subset-03", "subset-10", "source-src-ct-b"):
        remote = _rows(tree, config, tmp_path / "cache")
        assert remote == _rows(hub_folder, config, tmp_path / "cache-local")
        assert _rows(tree, config, tmp_path / "cache-stream", streaming=True) == remote
        for split, rows in remote.items():
            assert rows, f"{config} {split} is empty"
            for row in rows:
                original = expected[row["id"]]
                assert row["split"] == split == original["split"]
                assert row["image"]["bytes"] == original["image"]["bytes"]
                assert (row["answer"], row["options"], row["labels"]) == (
                    original["answer"], original["options"], original["labels"])
        ids = {row["id"] for rows in remote.values() for row in rows}
        wanted = {i for i, r in expected.items() if config in (f"subset-{r['subset']}", f"source-{r['source_id']}")}
        assert ids == wanted


def test_upload_resumes_after_an_interruption(hub, hub_folder, token_env, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    for rel, content in _local_files(hub_folder).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(content)
    for i in range(300):  # enough files for the upload to need several commits
        (folder / "notes" / f"n{i:03d}.txt").parent.mkdir(exist_ok=True)
        (folder / "notes" / f"n{i:03d}.txt").write_text(f"note {i}\n")
    local = _local_files(folder)

    hub.fail_commits_after = 1  # the connection "drops" after the first commit
    with pytest.raises(PublishError, match="Re-run the same command to resume"):
        publish(folder, REPO, endpoint=hub.url)
    repo = hub.repo(REPO)
    first = set(repo.commits[0].added)
    assert len(repo.commits) == 1 and 0 < len(first) < len(local)

    hub.fail_commits_after = None
    publish(folder, REPO, endpoint=hub.url)
    later = [set(c.added) for c in repo.commits[1:]]
    assert later and not any(first & added for added in later)  # committed files are not sent again
    assert first.union(*later) == set(local)
    assert repo.branches["main"] == local

    n = len(repo.commits)
    publish(folder, REPO, endpoint=hub.url)  # nothing changed: nothing committed
    assert len(repo.commits) == n


def test_revision_goes_to_its_own_branch(hub, hub_folder, token_env):
    publish(hub_folder, REPO, revision="v1.0", endpoint=hub.url)
    repo = hub.repo(REPO)
    assert repo.branches["v1.0"] == _local_files(hub_folder)
    assert repo.branches["main"] == {} and all(c.branch == "v1.0" for c in repo.commits)
    assert not repo.private


def _readme(folder: Path, text: str) -> None:
    (folder / "README.md").write_text(text)


@pytest.mark.parametrize("breakage, message", [
    (lambda f: (f / "README.md").unlink(), "README.md is missing"),
    (lambda f: _readme(f, "# no YAML\n"), "no YAML header"),
    (lambda f: _readme(f, "---\nlicense: other\n---\n"), "no `configs:` list"),
    (lambda f: _readme(f, "---\nconfigs: [\n---\n"), "does not parse"),
    (lambda f: _readme(f, "---\nconfigs:\n- config_name: subset-03\n  data_files: data/nothing/*.parquet\n---\n"),
     "matches no file"),
    (lambda f: _readme(f, "---\nconfigs:\n- config_name: data\n  data_files: data/**/*.parquet\n---\n"),
     "`data` is reserved"),
    (lambda f: _readme(f, "---\nconfigs:\n- config_name: a\n  data_files:\n  - split: my-train\n"
                          "    path: data/**/*.parquet\n---\n"), "no dashes"),
    (lambda f: (f / "Med-MAT.py").write_text("# a loading script\n"), "Med-MAT.py would be taken for a loading script"),
])
def test_bad_folders_are_refused_before_any_request(breakage, message, hub, hub_folder, token_env, tmp_path):
    folder = tmp_path / "hub"
    for rel, content in _local_files(hub_folder).items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(content)
    breakage(folder)
    with pytest.raises(PublishError, match=message):
        publish(folder, REPO, endpoint=hub.url)
    assert hub.requests == []


def test_missing_token_and_bad_repo_id_are_refused(hub, hub_folder, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))
    with pytest.raises(PublishError, match="set HF_TOKEN .* or run `hf auth login`"):
        publish(hub_folder, REPO, endpoint=hub.url)
    with pytest.raises(PublishError, match="must be <org>/<name>"):
        publish(hub_folder, "Med-MAT", endpoint=hub.url)
    assert check_hub_folder(hub_folder, REPO)  # the folder itself is fine
    assert hub.requests == []


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs():
    """Every log record of the libraries involved, at DEBUG, whatever their propagation settings."""
    handler = _Capture()
    names = ["", "huggingface_hub", "httpx", "httpx2", "httpcore", "hf_xet", "urllib3", "medmat", "datasets"]
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.level, lg.handlers[:]) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)
    hf_logging.set_verbosity_debug()
    yield handler
    hf_logging.set_verbosity_warning()
    for lg, (level, _) in zip(loggers, saved):
        lg.setLevel(level)
        lg.removeHandler(handler)


def test_token_never_in_output_logs_or_errors(hub, hub_folder, token_env, all_logs, capfd, monkeypatch):
    publish(hub_folder, REPO, endpoint=hub.url)
    assert hub.repo(REPO).branches["main"]
    wrong = "hf_wrongTokenABCDEFGHIJ0123456789"
    monkeypatch.setenv("HF_TOKEN", wrong)  # the stand-in answers 401, as the Hub does for a bad token
    with pytest.raises(PublishError) as info:
        publish(hub_folder, REPO, endpoint=hub.url)
    out, err = capfd.readouterr()
    assert all_logs.lines, "the debug logs were not captured"
    seen = "\n".join([out, err, str(info.value), *all_logs.lines])
    assert TOKEN not in seen and wrong not in seen
    assert "401" in str(info.value) or "nauthorized" in str(info.value)


def test_cli_redacts_unexpected_errors(monkeypatch, token_env, hub_folder):
    def boom(*args, **kwargs):
        raise RuntimeError(f"request failed with headers {{'authorization': 'Bearer {TOKEN}'}}")

    monkeypatch.setattr("medmat.hub.publish.publish", boom)
    result = CliRunner().invoke(app, ["publish", str(hub_folder), "--repo", REPO])
    assert result.exit_code == 1
    assert TOKEN not in result.output and "publish failed: RuntimeError" in result.output and "***" in result.output
    assert redact(f"x {TOKEN} y", None) == "x hf_*** y"


@pytest.mark.parametrize("xet, login", [(True, "env"), (False, "stored")])
def test_cli_publish_with_hf_endpoint(xet, login, hub, hub_folder, tmp_path):
    """The real command in a fresh process: HF_ENDPOINT is read at import, as huggingface_hub requires."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
    env |= {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_VERBOSITY": "debug",
            "HF_HUB_DISABLE_TELEMETRY": "1", "NO_PROXY": "127.0.0.1,localhost", "PYTHONPATH": str(ROOT)}
    if not xet:  # the single-commit path huggingface_hub takes without hf_xet
        env["HF_HUB_DISABLE_XET"] = "1"
    if login == "env":
        env["HF_TOKEN"] = TOKEN
    else:  # what `hf auth login` leaves behind
        (tmp_path / "hf-home").mkdir()
        (tmp_path / "hf-home" / "token").write_text(TOKEN)
    cmd = [sys.executable, "-m", "medmat.cli", "publish", str(hub_folder), "--repo", REPO, "--private"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "published" in done.stdout and "subset-03" in done.stdout
    assert TOKEN not in done.stdout + done.stderr
    repo = hub.repo(REPO)
    assert repo.private and repo.branches["main"] == _local_files(hub_folder)
    assert hub.unhandled == []

    env["HF_TOKEN"] = "hf_wrongTokenABCDEFGHIJ0123456789"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1 and REPO in done.stderr
    assert "hf_wrongTokenABCDEFGHIJ0123456789" not in done.stdout + done.stderr and TOKEN not in done.stderr


def test_folder_paths_with_glob_characters(tmp_path):
    from medmat.hub.upstream_json import export_upstream

    folder = write_hub_folder(tmp_path / "out[1]" / "hub")  # '[' must not be read as a glob pattern
    assert "subset-03" in check_hub_folder(folder, REPO)
    assert export_upstream([folder], tmp_path / "json", config="subset-03")["Subset--03-train.json"] == 8


# -- the pixels policy: only a publishable build goes up ---------------------------------------------------------

RESTRICTED = "shenzhen-cxr"  # manifests: license unknown, redistributable: false


def _copy(src: Path, dest: Path) -> Path:
    for rel, content in _local_files(src).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(content)
    return dest


def _add_restricted_shard(folder: Path, with_pixels: bool) -> None:
    rows = [r | {"source_id": RESTRICTED, "id": f"{RESTRICTED}/{r['id']}", "license": "unknown"}
            for r in mat_rows() if r["subset"] == "03" and r["split"] == "train"][:2]
    if not with_pixels:
        rows = [r | {"image": None, "pixels_withheld": "license unknown ..."} for r in rows]
    write_parquet(rows, folder / "data" / "subset-03" / "train" / f"{RESTRICTED}-00000.parquet")


def test_a_folder_with_restricted_pixels_is_refused_before_any_request(hub, hub_folder, token_env, tmp_path):
    folder = _copy(hub_folder, tmp_path / "hub")
    _add_restricted_shard(folder, with_pixels=True)
    with pytest.raises(PublishError, match=rf"pixels of 1 source\(s\) .*\({RESTRICTED}\).*--publishable"):
        publish(folder, REPO, endpoint=hub.url)
    assert hub.requests == []
    result = CliRunner().invoke(app, ["publish", str(folder), "--repo", REPO])
    assert result.exit_code == 1 and "--publishable" in result.output

    _add_restricted_shard(folder, with_pixels=False)  # the same rows as a publishable build writes them
    assert "subset-03" in check_hub_folder(folder, REPO)


def test_a_montage_of_restricted_pixels_is_refused(hub, hub_folder, token_env, tmp_path):
    import matplotlib.pyplot as plt

    from medmat.hub.figures import SOURCES_KEY

    folder = _copy(hub_folder, tmp_path / "hub")
    (folder / "assets").mkdir()
    fig = plt.figure(figsize=(1, 1))
    fig.savefig(folder / "assets" / "montage-subset-03.png", format="png", metadata={SOURCES_KEY: RESTRICTED})
    plt.close(fig)
    with pytest.raises(PublishError, match="assets/montage-subset-03.png"):
        publish(folder, REPO, endpoint=hub.url)
    assert hub.requests == []


def test_a_card_naming_another_repo_is_refused(hub, hub_folder, token_env, tmp_path):
    folder = _copy(hub_folder, tmp_path / "hub")
    readme = folder / "README.md"
    readme.write_text(readme.read_text() + '\n```python\nload_dataset("path/to/OUT/hub", "subset-03")\n```\n')
    with pytest.raises(PublishError, match="rebuild the folder with `--publishable --repo medmat-test/Med-MAT`"):
        publish(folder, REPO, endpoint=hub.url)
    assert hub.requests == []


def test_a_network_failure_names_the_step(hub_folder, token_env):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PublishError, match=rf"{REPO}: failed while creating the repo {REPO} at http://127.0.0.1:{port}"):
        publish(hub_folder, REPO, endpoint=f"http://127.0.0.1:{port}")
