"""Kaggle datasets and competitions, through Kaggle's own client (`kaggle`), with the user's credentials.

Credentials come from where Kaggle's client looks for them: the environment (KAGGLE_API_TOKEN, or KAGGLE_USERNAME
and KAGGLE_KEY), `kaggle.json` in KAGGLE_CONFIG_DIR, ~/.kaggle or ~/.config/kaggle, ~/.kaggle/access_token, or
the OAuth file ~/.kaggle/credentials.json. medmat only says *where* it found them; the values never reach an
output, a log or an error message (everything the client prints or logs passes through `Redactor`). The archive
is fetched into `<slug>.zip.part` beside its target and moved into place once it is a complete zip.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from ..registry.models import AccessKind, Source
from .http import DownloadSettings, looks_like_html
from .redact import Redactor

SETTINGS_PAGE = "https://www.kaggle.com/settings"


class KaggleError(Exception):
    """A Kaggle download that did not happen; the message is scrubbed and says what to do."""


@dataclass
class KaggleCredentials:
    origin: str  # where they were found, safe to print
    username: str | None = None
    key: SecretStr | None = None
    token: SecretStr | None = None
    # Every secret and user name seen in any location: the client may combine them differently.
    all_secrets: list[SecretStr] = field(default_factory=list)
    all_usernames: list[str] = field(default_factory=list)

    def redactor(self) -> Redactor:
        secrets = [s.get_secret_value() for s in (self.key, self.token, *self.all_secrets) if s is not None]
        users = {u for u in (self.username, *self.all_usernames) if u}
        return Redactor(secrets, [(u, k) for u in users for k in secrets])


def config_dir(env=None) -> Path:
    """Kaggle's own rule: KAGGLE_CONFIG_DIR, else ~/.kaggle if it exists, else $XDG_CONFIG_HOME/kaggle."""
    env = os.environ if env is None else env
    if env.get("KAGGLE_CONFIG_DIR"):
        return Path(env["KAGGLE_CONFIG_DIR"]).expanduser()
    legacy = Path.home() / ".kaggle"
    if legacy.exists():
        return legacy
    xdg = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "kaggle"


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def find_credentials(env=None) -> KaggleCredentials | None:
    """The credentials Kaggle's client would use, or None; every secret seen anywhere is kept for redaction."""
    env = os.environ if env is None else env
    found: list[KaggleCredentials] = []
    secrets: list[SecretStr] = [SecretStr(env[k]) for k in ("KAGGLE_KEY", "KAGGLE_API_TOKEN") if env.get(k)]
    usernames: list[str] = [env["KAGGLE_USERNAME"]] if env.get("KAGGLE_USERNAME") else []

    token = env.get("KAGGLE_API_TOKEN")
    if token:
        value = _read_text(Path(token)) if Path(token).is_file() else token
        if value:
            found.append(KaggleCredentials("the KAGGLE_API_TOKEN environment variable", token=SecretStr(value)))
    for name in ("access_token", "access_token.txt"):
        value = _read_text(Path.home() / ".kaggle" / name)
        if value:
            found.append(KaggleCredentials(f"~/.kaggle/{name}", token=SecretStr(value)))
    if env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY"):
        found.append(KaggleCredentials("the KAGGLE_USERNAME and KAGGLE_KEY environment variables",
                                       username=env["KAGGLE_USERNAME"], key=SecretStr(env["KAGGLE_KEY"])))
    config = config_dir(env) / "kaggle.json"
    data = _read_json(config)
    if data.get("username") and data.get("key"):
        found.append(KaggleCredentials(str(config), username=str(data["username"]), key=SecretStr(str(data["key"]))))
    oauth = _read_json(Path.home() / ".kaggle" / "credentials.json")
    secrets += [SecretStr(v) for k, v in oauth.items() if k != "username" and isinstance(v, str) and v]
    if oauth.get("refresh_token"):
        found.append(KaggleCredentials("~/.kaggle/credentials.json (OAuth)", username=oauth.get("username")))
    if not found:
        return None
    for creds in found:
        secrets += [s for s in (creds.key, creds.token) if s is not None]
        usernames += [creds.username] if creds.username else []
    chosen = found[0]
    chosen.all_secrets, chosen.all_usernames = secrets, usernames
    return chosen


def _read_json(path: Path) -> dict:
    text = _read_text(path)
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def kaggle_page(source: Source) -> str:
    ref = source.access.kaggle
    if source.access.kind is AccessKind.kaggle_competition:
        return f"https://www.kaggle.com/competitions/{ref}"
    return f"https://www.kaggle.com/datasets/{ref}"


def archive_name(source: Source) -> str:
    return f"{source.access.kaggle.split('/')[-1]}.zip"


def setup_steps(source: Source, data_dir: Path) -> list[str]:
    """Numbered steps for a person who has no credentials yet (or whose download was refused)."""
    steps = [
        f"Sign in at https://www.kaggle.com, open {SETTINGS_PAGE} and, under API, create a new token.",
        ("Save the kaggle.json it gives you as ~/.kaggle/kaggle.json and run `chmod 600 ~/.kaggle/kaggle.json` "
         "(or set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN, in the environment)."),
    ]
    if source.access.kind is AccessKind.kaggle_competition:
        steps.append(f"Join the competition and accept its rules at {kaggle_page(source)}/rules "
                     "(Kaggle refuses competition downloads until you do).")
    else:
        steps.append(f"Open {kaggle_page(source)} once while signed in and accept its terms if it shows any.")
    steps.append(f"Run `medmat download {source.id} --data-dir {data_dir}` again.")
    return steps


def _import_client():
    # Importing `kaggle` runs its own authenticate(), which prints help when it finds nothing: keep that quiet.
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            from kaggle.api.kaggle_api_extended import KaggleApi
            from kagglesdk.competitions.types.competition_api_service import ApiDownloadDataFilesRequest
            from kagglesdk.datasets.types.dataset_api_service import ApiDownloadDatasetRequest
    except ImportError as exc:
        raise KaggleError(f"Kaggle's client is not installed ({exc.name}); run `pip install kaggle`") from None
    return KaggleApi, ApiDownloadDatasetRequest, ApiDownloadDataFilesRequest


def _refusal(source: Source, status: int, creds: KaggleCredentials) -> str:
    ref, page = source.access.kaggle, kaggle_page(source)
    if status == 401:
        return (f"Kaggle refused the credentials from {creds.origin} (HTTP 401); create a new token at "
                f"{SETTINGS_PAGE} and save it as ~/.kaggle/kaggle.json")
    if status == 403 and source.access.kind is AccessKind.kaggle_competition:
        return (f"Kaggle answered 403 Forbidden for competition {ref}: competition data can be downloaded only "
                f"after you join the competition and accept its rules. Open {page}/rules, accept them with the "
                f"account in {creds.origin}, then run the same command again")
    if status == 403:
        return (f"Kaggle answered 403 Forbidden for dataset {ref}: it may be private or need its terms accepted; "
                f"open {page} while signed in")
    if status == 404:
        return (f"Kaggle has no {'competition' if '/' not in ref else 'dataset'} {ref} (HTTP 404): the manifest's "
                f"`access.kaggle` may be out of date; check {page}")
    if status == 429:
        return "Kaggle is rate limiting this account (HTTP 429); wait a while and run the same command again"
    return f"Kaggle answered HTTP {status} for {ref}; run the same command again later"


def download(source: Source, archive: Path, settings: DownloadSettings = DownloadSettings(),
             credentials: KaggleCredentials | None = None) -> Path:
    """Fetch the source's Kaggle archive to `archive` (a zip); raises KaggleError with a scrubbed message."""
    import requests

    creds = credentials or find_credentials()
    if creds is None:
        raise KaggleError("no Kaggle credentials were found (looked in KAGGLE_API_TOKEN, KAGGLE_USERNAME/"
                          f"KAGGLE_KEY, {config_dir() / 'kaggle.json'}, ~/.kaggle/access_token, "
                          "~/.kaggle/credentials.json)")
    redactor = creds.redactor()
    archive.parent.mkdir(parents=True, exist_ok=True)
    part = archive.with_name(archive.name + ".part")
    try:
        with redactor.guard():
            KaggleApi, DatasetRequest, CompetitionRequest = _import_client()
            api = KaggleApi()
            api.args = []  # never --verbose: it prints request headers, credentials included
            cfg = config_dir()
            api.config_dir, api.config = str(cfg), str(cfg / "kaggle.json")
            try:
                api.authenticate()
            except SystemExit:
                raise KaggleError(f"Kaggle's client could not use the credentials from {creds.origin}") from None
            with api.build_kaggle_client() as client:
                if source.access.kind is AccessKind.kaggle_competition:
                    request = CompetitionRequest()
                    request.competition_name = source.access.kaggle
                    response = client.competitions.competition_api_client.download_data_files(request)
                else:
                    owner, slug = source.access.kaggle.split("/", 1)
                    request = DatasetRequest()
                    request.owner_slug, request.dataset_slug = owner, slug
                    response = client.datasets.dataset_api_client.download_dataset(request)
                if "text/html" in response.headers.get("Content-Type", "").lower():
                    response.close()
                    raise KaggleError(f"Kaggle sent an HTML page instead of the archive of {source.access.kaggle}; "
                                      f"open {kaggle_page(source)} in a browser to see what it asks for")
                api.download_file(response, str(part), client.http_client(), quiet=settings.progress is False,
                                  resume=True, max_retries=max(0, settings.attempts - 1))
    except KaggleError as exc:
        raise KaggleError(redactor.scrub(str(exc))) from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        raise KaggleError(redactor.scrub(_refusal(source, status, creds))) from None
    except (requests.RequestException, OSError, ValueError) as exc:
        raise KaggleError(redactor.scrub(f"the Kaggle download of {source.access.kaggle} failed "
                                         f"({type(exc).__name__}: {exc}); run the same command again to resume")) from None
    Path(str(part) + ".kaggle-partial").unlink(missing_ok=True)
    with open(part, "rb") as fh:
        head = fh.read(1024)
    if looks_like_html(head) or not zipfile.is_zipfile(part):
        part.unlink()
        what = "an HTML page" if looks_like_html(head) else "a file that is not a zip archive"
        raise KaggleError(f"Kaggle sent {what} instead of the archive of {source.access.kaggle}; it was deleted; "
                          f"open {kaggle_page(source)} in a browser to check the dataset")
    os.replace(part, archive)
    return archive
