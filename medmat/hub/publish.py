"""Publish a built hub folder (README.md with `configs:` + Parquet shards) to a Hugging Face dataset repo.

The upload is `HfApi.upload_folder`, which in huggingface_hub 2.x is the resumable multi-commit upload (with
`hf_xet` installed, as it is by default): large folders go up in several commits, and re-running the same call
after an interruption skips every file the repo already holds unchanged. The token is never read into this
module's messages: huggingface_hub resolves it (HF_TOKEN, then the standard `hf auth login` file), and every
error text that leaves this module is redacted in case a library echoed it.

Before any request, the folder is checked: a card `load_dataset` can read, an example naming this repo, and no
pixels of a source whose license forbids republishing them (in the Parquet shards, whose row-group statistics say
which source and whether the media columns are all null, and in the card's montage images, whose PNG text chunk
names the sources shown). A local build keeps those pixels, so only a `--publishable` build passes.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from ..mat.schema import MEDIA_COLUMNS

REPO_TYPE = "dataset"
_REPO_ID = re.compile(r"^[\w.-]{1,96}/[\w.-]{1,96}$")
_BAD_CONFIG_CHARS = set('<>:/\\|?*')
_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")


class PublishError(Exception):
    """A refusal or failure, with the next step in its message; never contains the token."""


@dataclass(frozen=True)
class PublishResult:
    repo_url: str
    commit_url: str
    revision: str
    files: int
    configs: list[str]


def read_card_configs(folder: Path) -> list[dict]:
    """The `configs:` list of `folder/README.md`'s YAML header; PublishError naming the fix when unusable."""
    readme = folder / "README.md"
    if not readme.is_file():
        raise PublishError(f"{readme} is missing: a dataset repo needs a README.md whose YAML header declares "
                           "`configs:` (run `medmat build ... --out OUT` and publish OUT/hub)")
    text = readme.read_text(encoding="utf-8")
    match = re.match(r"^---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|$)", text, re.S)
    if not match:
        raise PublishError(f"{readme} has no YAML header (a block between '---' lines at the top) declaring `configs:`")
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise PublishError(f"{readme}: the YAML header does not parse: {exc}") from None
    configs = meta.get("configs") if isinstance(meta, dict) else None
    if not isinstance(configs, list) or not configs:
        raise PublishError(f"{readme}: the YAML header has no `configs:` list; without it `load_dataset` cannot "
                           "find the subsets (rebuild the hub folder with `medmat build`)")
    return configs


def _redistributable(registry, source_id: str | None, license_key: str | None) -> bool:
    if registry is not None and source_id in registry.sources:
        return registry.sources[source_id].redistributable
    lic = registry.licenses.licenses.get(license_key) if registry is not None and license_key else None
    return lic is not None and lic.redistribution.value == "allowed"


def _group_values(pf: pq.ParquetFile, group: int, column: str) -> set:
    """The distinct values of a string column in one row group: from its statistics when min == max."""
    meta = pf.metadata.row_group(group)
    index = pf.schema_arrow.get_field_index(column)
    if index >= 0:
        leaf = next((i for i in range(meta.num_columns) if meta.column(i).path_in_schema == column), None)
        stats = meta.column(leaf).statistics if leaf is not None else None
        if stats is not None and stats.has_min_max and stats.min == stats.max and stats.null_count == 0:
            return {stats.min}
        return set(pf.read_row_group(group, columns=[column]).column(0).to_pylist())
    return {None}


def _group_has_media(pf: pq.ParquetFile, group: int) -> bool:
    """Whether any media column of the row group holds bytes (statistics' null counts, else the values)."""
    meta = pf.metadata.row_group(group)
    for i in range(meta.num_columns):
        column = meta.column(i)
        if column.path_in_schema not in {f"{m}.bytes" for m in MEDIA_COLUMNS}:
            continue
        stats = column.statistics
        if stats is not None and stats.null_count is not None and stats.null_count == meta.num_rows:
            continue
        if stats is not None and stats.null_count is not None:
            return True
        media = column.path_in_schema.split(".")[0]
        values = pf.read_row_group(group, columns=[media]).column(0).to_pylist()
        if any(v and v.get("bytes") for v in values):
            return True
    return False


def restricted_pixels(folder: Path, registry=None) -> dict[str, list[str]]:
    """{source id: [files]} of the sources whose licenses forbid republishing pixels that still hold some, in the
    Parquet shards under `folder` and in its montage images (PNG text chunk `medmat:sources`)."""
    from .figures import montage_sources

    if registry is None:
        from ..registry.loader import load_registry

        registry, _ = load_registry()
    found: dict[str, list[str]] = {}
    for path in sorted(Path(folder).rglob("*.parquet")):
        pf = pq.ParquetFile(path)
        for group in range(pf.metadata.num_row_groups):
            sources = _group_values(pf, group, "source_id")
            licenses = _group_values(pf, group, "license")
            if all(_redistributable(registry, s, lic) for s in sources for lic in licenses):
                continue
            if _group_has_media(pf, group):
                for s in sorted(sources, key=str):
                    if not all(_redistributable(registry, s, lic) for lic in licenses):
                        found.setdefault(str(s), []).append(path.relative_to(folder).as_posix())
                break
    for path in sorted(Path(folder).rglob("*.png")):
        for s in montage_sources(path):
            if not _redistributable(registry, s, None):
                found.setdefault(s, []).append(path.relative_to(folder).as_posix())
    return found


def check_pixels(folder: Path, registry=None) -> None:
    found = restricted_pixels(folder, registry)
    if found:
        files = sorted({f for fs in found.values() for f in fs})
        raise PublishError(
            f"{folder} holds pixels of {len(found)} source(s) whose licenses do not allow republishing them "
            f"({', '.join(sorted(found))}) in {len(files)} file(s), e.g. {files[0]}: this is a local build. Build a "
            "publishable folder with `medmat build ... --publishable --repo ORG/NAME` (with `--hub-only` it reuses "
            "OUT/sources; it leaves those pixels and montages out and marks each row) and publish that")


def check_card_repo(folder: Path, repo_id: str) -> None:
    """The card's loading example must name the repo it is published to."""
    text = (folder / "README.md").read_text(encoding="utf-8")
    named = sorted(set(re.findall(r'load_dataset\(\s*"([^"]+)"', text)) - {repo_id})
    if named:
        raise PublishError(f"{folder / 'README.md'}: its example loads {named[0]!r}, not {repo_id!r}: rebuild the "
                           f"folder with `--publishable --repo {repo_id}` so the card points at this repo")


def check_hub_folder(folder: Path, repo_id: str, registry=None) -> list[str]:
    """Refuse folders that would publish a repo `load_dataset` cannot read, a card naming another repo, or pixels
    that may not be republished; return the config names. Makes no network call."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"{folder} is not a folder: pass the hub folder written by `medmat build` (OUT/hub)")
    script = folder / f"{repo_id.split('/')[-1]}.py"
    if script.exists():
        raise PublishError(f"{script} would be taken for a loading script, which datasets>=4 refuses, so the "
                           f"repo could not be loaded: remove or rename it before publishing")
    names: list[str] = []
    for i, config in enumerate(read_card_configs(folder)):
        where = f"{folder / 'README.md'}: configs[{i}]"
        if not isinstance(config, dict) or not isinstance(config.get("config_name"), str):
            raise PublishError(f"{where} has no `config_name`")
        name = config["config_name"]
        if name == "data" or _BAD_CONFIG_CHARS & set(name):
            raise PublishError(f"{where}: config name {name!r} is refused by the Hub "
                               "(`data` is reserved; no <>:/\\|?* characters)")
        if name in names:
            raise PublishError(f"{where}: config name {name!r} appears twice")
        names.append(name)
        for split, patterns in config_data_files(config, where):
            if split is not None and not _SPLIT_NAME.match(split):
                raise PublishError(f"{where} ({name}): split name {split!r} must match ^\\w+(\\.\\w+)*$ (no dashes)")
            for pattern in patterns:
                if not glob.glob(pattern, root_dir=folder, recursive=True):
                    raise PublishError(f"{where} ({name}): data_files pattern {pattern!r} matches no file in "
                                       f"{folder}; loading this config would fail")
    check_pixels(folder, registry)
    check_card_repo(folder, repo_id)
    return names


def config_data_files(config: dict, where: str) -> list[tuple[str | None, list[str]]]:
    """[(split or None, [pattern, ...])] of one `configs:` entry, in the forms the datasets library accepts."""
    files = config.get("data_files")
    if isinstance(files, str):
        return [(None, [files])]
    if isinstance(files, list) and files and all(isinstance(f, dict) for f in files):
        out = []
        for entry in files:
            paths = entry.get("path")
            paths = [paths] if isinstance(paths, str) else paths
            if not isinstance(entry.get("split"), str) or not isinstance(paths, list) or not paths:
                raise PublishError(f"{where}: each data_files entry needs `split` and `path`")
            out.append((entry["split"], list(paths)))
        return out
    if isinstance(files, list) and files and all(isinstance(f, str) for f in files):
        return [(None, files)]
    raise PublishError(f"{where}: `data_files` must be a pattern, a list of patterns, or a list of "
                       "{split, path} entries")


def publish(folder: Path, repo_id: str, *, private: bool = False, revision: str | None = None,
            commit_message: str | None = None, token: str | None = None,
            endpoint: str | None = None, registry=None) -> PublishResult:
    """Check `folder` (no network), create the dataset repo if missing, then upload it (resumable; re-run to
    resume). Every failure is a PublishError naming the step that failed."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    folder = Path(folder)
    if not _REPO_ID.match(repo_id) or repo_id.startswith(("-", ".")):
        raise PublishError(f"--repo {repo_id!r} must be <org>/<name> (letters, digits, '-', '_', '.')")
    configs = check_hub_folder(folder, repo_id, registry)
    if token is None and get_token() is None:
        raise PublishError("no Hugging Face token found: set HF_TOKEN in the environment or run `hf auth login`, "
                           "with a token that can write to the target organisation")
    secret = token or get_token()
    api = HfApi(endpoint=endpoint, token=token)
    step = f"creating the repo {repo_id} at {api.endpoint}"
    try:
        repo_url = api.create_repo(repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
        if revision and revision != "main":
            step = f"creating branch {revision!r}"
            api.create_branch(repo_id, branch=revision, repo_type=REPO_TYPE, exist_ok=True)
        step = "uploading"
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type=REPO_TYPE, revision=revision,
                                 commit_message=commit_message or f"Publish {folder.name} with medmat")
    except Exception as exc:  # noqa: BLE001 - network errors come from several libraries (httpx, requests, hf_xet)
        hint = " Re-run the same command to resume: files already committed are skipped." if step == "uploading" else ""
        known = isinstance(exc, (HfHubHTTPError, HFValidationError, ValueError, OSError))
        detail = str(exc) if known else f"{type(exc).__name__}: {exc}"
        raise PublishError(redact(f"{repo_id}: failed while {step}: {detail}.{hint}", secret)) from None
    files = sum(1 for p in folder.rglob("*")
                if p.is_file() and not {".git", ".cache"} & set(p.relative_to(folder).parts))
    return PublishResult(str(repo_url), info.commit_url, revision or "main", files, configs)


def redact(text: str, secret: str | None) -> str:
    """Hide the token (and any `hf_...` token-looking string) in text that may reach a terminal or a log."""
    if secret:
        text = text.replace(secret, "***")
    return re.sub(r"\bhf_[A-Za-z0-9]{8,}\b", "hf_***", text)
