"""The attack suite's machinery: a small registry of two real sources, generated data, the real CLI, and checks
whose expected values come from outside the code under test (an independent walk of the data folder, the Parquet
rows read back, the exit code, the files left on disk).

Each attack returns a list of findings `(column, message)`; an empty list means the attack was met exactly as the
guarantees promise. Columns: crash (a traceback or an unexpected exit code), hang (past its time limit), escape
(something outside the source or out folder was read or written), silent loss (a file on disk that the report
does not account for), bad data (a file that should have been refused was written as a sample).
"""

from __future__ import annotations

import copy
import os
import signal
import stat
import subprocess
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = REPO / "manifests"
KIDNEY = "ct-kidney-normal-cyst-tumor-stone"
HEADCT = "head-ct-hemorrhage"
KIDNEY_ROOT = "CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone/CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone"
HEADCT_DIR = "head_ct/head_ct"
KIDNEY_EXTENSIONS = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "gif", "dcm", "nii", "nii.gz", "mha", "mhd",
                     "nrrd", "nhdr", "mgz"]
COLUMNS = ("crash", "hang", "escape", "silent loss", "bad data")

Finding = tuple[str, str]


@dataclass
class Attack:
    name: str
    kind: str  # the class: confinement, isolation, accounting, bounds, values, atomic, downloads
    run: Callable[["Env"], list[Finding]]
    slow: bool = False


@dataclass
class Env:
    """One attack's folders: manifests, data, out, and `outside` (a folder nothing may read or write)."""

    root: Path
    manifests: Path = field(init=False)
    data: Path = field(init=False)
    out: Path = field(init=False)
    outside: Path = field(init=False)

    def __post_init__(self):
        self.manifests, self.data = self.root / "manifests", self.root / "data"
        self.out, self.outside = self.root / "out", self.root / "outside"
        write_registry(self.manifests)
        self.outside.mkdir(parents=True, exist_ok=True)
        noise(self.outside / "secret.png", 4242, (24, 24))  # a canary: its pixels must never become a sample

    @property
    def kidney(self) -> Path:
        return self.data / KIDNEY / KIDNEY_ROOT

    @property
    def headct(self) -> Path:
        return self.data / HEADCT


# --- registry and data ------------------------------------------------------------------------------------


def write_registry(root: Path) -> None:
    """Two real sources (class folders; a label table) with their subsets; the kidney source also accepts the
    volume and DICOM suffixes so that bad files of every reader can be planted."""
    if root.exists():
        return
    (root / "sources").mkdir(parents=True)
    (root / "subsets").mkdir()
    for name in ("vocabulary.yaml", "licenses.yaml"):
        (root / name).write_bytes((MANIFESTS / name).read_bytes())
    for sid in (KIDNEY, HEADCT):
        (root / "sources" / f"{sid}.yaml").write_bytes((MANIFESTS / "sources" / f"{sid}.yaml").read_bytes())
    for pattern in ("02-*.yaml", "05-*.yaml"):
        for path in (MANIFESTS / "subsets").glob(pattern):
            (root / "subsets" / path.name).write_bytes(path.read_bytes())
    edit_manifest(root, KIDNEY, lambda d: d["layout"]["params"].update(extensions=KIDNEY_EXTENSIONS))


def edit_manifest(root: Path, source_id: str, change) -> None:
    path = root / "sources" / f"{source_id}.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def noise(path: Path, seed: int, size=(20, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, size, dtype=np.uint8)).save(path)
    return path


def good_kidney(env: Env, per_label: int = 2) -> None:
    seed = 0
    for label in ("Cyst", "Normal", "Stone", "Tumor"):
        for i in range(1, per_label + 1):
            seed += 1
            noise(env.kidney / label / f"{label}- ({i}).png", seed)
    (env.data / KIDNEY / "kidneyData.csv").write_text("x\n")


def good_headct(env: Env, n: int = 4) -> None:
    rows = ["id, hemorrhage"]
    for i in range(n):
        noise(env.headct / HEADCT_DIR / f"{i:03d}.png", 100 + i)
        rows.append(f"{i},{i % 2}")
    (env.headct / "labels.csv").write_text("\n".join(rows) + "\n")


# --- running the real CLI ---------------------------------------------------------------------------------


@dataclass
class Ran:
    code: int | None  # None: it did not finish in time
    output: str
    traceback: str = ""


class _Timeout(BaseException):
    pass


@contextmanager
def _deadline(seconds: float):
    def fire(signum, frame):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def cli(args: list[str], timeout: float = 60.0) -> Ran:
    """`medmat ARGS` in this process (typer's runner), with a wall-clock limit."""
    from typer.testing import CliRunner

    from medmat.cli import app

    runner = CliRunner()
    try:
        with _deadline(timeout):
            result = runner.invoke(app, [str(a) for a in args], catch_exceptions=True)
    except _Timeout:
        return Ran(None, "")
    tb = ""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        tb = "".join(traceback.format_exception(result.exception))
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    return Ran(result.exit_code, output, tb)


def cli_process(args: list[str], timeout: float = 120.0, preexec=None, env: dict | None = None,
                start_only: bool = False):
    """`python -m medmat ARGS` in a child process (for kill -9, SIGINT and resource limits)."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    cmd = [sys.executable, "-m", "medmat", *[str(a) for a in args]]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env,
                            preexec_fn=preexec, start_new_session=True)
    if start_only:
        return proc
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Ran(None, "")
    text = out.decode("utf-8", "replace")
    return Ran(proc.returncode, text, text if "Traceback (most recent call last)" in text else "")


def build_args(env: Env, *sources: str, hub: bool = False, extra=()) -> list[str]:
    return ["build", *sources, "--data-dir", env.data, "--out", env.out, "--manifests", env.manifests,
            *(() if hub else ("--no-hub",)), *extra]


# --- independent checks -----------------------------------------------------------------------------------


def disk_entries(folder: Path) -> dict[str, str]:
    """Every non-folder entry under `folder` (relative, as bytes-safe text), found by this module's own walk."""
    found = {}
    for base, dirs, files in os.walk(os.fsencode(folder)):
        for name in dirs + files:
            path = os.path.join(base, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode):
                continue
            rel = os.path.relpath(path, os.fsencode(folder)).decode("utf-8", "backslashreplace")
            found[rel] = "link" if stat.S_ISLNK(mode) else "file" if stat.S_ISREG(mode) else "special"
    return found


def read_report(out: Path, source_id: str) -> dict | None:
    import json

    path = out / "sources" / source_id / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


def written_paths(out: Path, source_id: str) -> list[str]:
    import pyarrow.parquet as pq

    folder = out / "sources" / source_id
    paths = []
    for shard in sorted(folder.glob("*.parquet")):
        paths += pq.read_table(shard, columns=["original_path"]).column("original_path").to_pylist()
    return paths


def layout_root(source_id: str) -> str:
    return KIDNEY_ROOT if source_id == KIDNEY else ""


TOTALS = {"on disk": 0, "written": 0, "quarantined": 0, "excluded": 0, "beside root": 0, "unaccounted": 0}


def account(env: Env, source_id: str, report: dict) -> list[Finding]:
    """Files on disk = written + quarantined + excluded (+ beside layout.root), file by file, by this walk.
    Adds to TOTALS, which the bench prints: the identity summed over every attack."""
    root = layout_root(source_id)
    disk = disk_entries(env.data / source_id)
    written = set(written_paths(env.out, source_id))
    prefix = f"{root}/" if root else ""
    named = {}
    for kind in ("quarantined_files", "excluded_files"):
        for entry in report[kind]:
            for p in (entry["path"], prefix + entry["path"]):
                named.setdefault(p, kind)
    findings = []
    beside = 0
    counted = {"written": 0, "quarantined_files": 0, "excluded_files": 0}
    for rel in disk:
        if rel in written:
            counted["written"] += 1
        elif rel in named:
            counted[named[rel]] += 1
        elif root and not rel.startswith(prefix):
            beside += 1
        else:
            findings.append(("silent loss", f"{source_id}: {rel} is on disk but neither written, quarantined nor "
                                            "excluded in the report"))
    TOTALS["on disk"] += len(disk)
    TOTALS["written"] += counted["written"]
    TOTALS["quarantined"] += counted["quarantined_files"]
    TOTALS["excluded"] += counted["excluded_files"]
    TOTALS["beside root"] += beside
    TOTALS["unaccounted"] += len(findings)
    if report["files"]["on_disk"] != len(disk):
        findings.append(("silent loss", f"{source_id}: report counts {report['files']['on_disk']} files on disk, "
                                        f"the walk finds {len(disk)}"))
    if not findings and not report["reconciled"]:
        findings.append(("silent loss", f"{source_id}: every file is accounted for but the report says "
                                        "reconciled: false"))
    if findings and report["reconciled"]:
        findings.append(("silent loss", f"{source_id}: the report says reconciled although files are missing"))
    return findings


def expect_entry(env: Env, source_id: str, report: dict, path: str, kind: str, reason: str,
                 leaked: str = "bad data") -> list[Finding]:
    """`path` (relative to the layout root) is listed under `kind` with `reason` in its text, and not written."""
    root = layout_root(source_id)
    full = f"{root}/{path}" if root else path
    entries = report["quarantined_files" if kind == "quarantined" else "excluded_files"]
    hit = [e for e in entries if e["path"] in (path, full)]
    if full in set(written_paths(env.out, source_id)):
        return [(leaked, f"{path} was written as a sample; expected {kind}: {reason}")]
    if not hit:
        other = [e for k in ("quarantined_files", "excluded_files") for e in report[k] if e["path"] in (path, full)]
        if other:
            return [("silent loss", f"{path}: listed as {other}, expected {kind} with {reason!r}")]
        return [("silent loss", f"{path} is nowhere in the report; expected {kind}: {reason}")]
    if not any(reason.lower() in e["reason"].lower() for e in hit):
        return [("silent loss", f"{path}: reason {hit[0]['reason']!r} does not say {reason!r}")]
    return []


def check_ran(ran: Ran, code: int = 0, says: str | None = None) -> list[Finding]:
    if ran.code is None:
        return [("hang", "the command did not finish within its time limit")]
    if ran.traceback:
        return [("crash", ran.traceback.strip().splitlines()[-1])]
    findings = []
    if ran.code != code:
        findings.append(("crash", f"exit code {ran.code}, expected {code}: {ran.output.strip()[-300:]}"))
    if says is not None and says.lower() not in ran.output.lower():
        findings.append(("crash", f"output does not say {says!r}: {ran.output.strip()[-300:]}"))
    return findings


def no_absolute_paths(report: dict, env: Env) -> list[Finding]:
    import json

    text = json.dumps(report)
    if str(env.root) in text:
        return [("escape", "the report holds an absolute path of this machine")]
    return []


def planted_build(env: Env, plant: Callable[[Env], str | None], kind: str, reason: str, *, source: str = KIDNEY,
                  leaked: str = "bad data", extra=(), timeout: float = 60.0) -> list[Finding]:
    """The common attack: good data, one bad thing planted, a build, and the exact outcome for that thing."""
    (good_kidney if source == KIDNEY else good_headct)(env)
    path = plant(env)
    ran = cli(build_args(env, source, extra=extra), timeout=timeout)
    findings = check_ran(ran)
    if findings:
        return findings
    report = read_report(env.out, source)
    if report is None:
        return [("crash", f"no report for {source}: {ran.output[-300:]}")]
    if path is not None:
        findings += expect_entry(env, source, report, path, kind, reason, leaked)
    return findings + account(env, source, report) + no_absolute_paths(report, env)


def summarise(results: dict[str, list[Finding]]) -> dict[str, int]:
    table = {"tried": len(results)}
    for column in COLUMNS:
        table[column] = sum(1 for findings in results.values() if any(c == column for c, _ in findings))
    return table


def copy_tree_attrs(data):  # pragma: no cover - convenience for interactive use
    return copy.deepcopy(data)
