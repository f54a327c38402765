"""`medmat cg report RESULTS...`: the paper's tables in the paper's shape, its numbers beside ours.

Reads `results.json` files of `medmat cg run` (the kinds runner's `runs`/`summary`, or the two-source loop's `rows`)
and the experiments of `manifests/cg/`, and renders, as Markdown and a PNG chart:

- Table 3 (two-source): # | sources | target | Baseline | Baseline+ | Trained | CG helps, in the paper's four
  direction segments, each cell "paper / ours";
- Table 10 (three-source): modality, area, task sources | target | Baseline | Trained | CG helps;
- Fig. 4 (scaling): per target, Baseline and the six settings in the paper's x-axis order;
- Figs. 5-6 (`curves`): per panel, the Related and Unrelated curves over the samples added (ours only: the paper
  prints no values);
- the other families in one table each (pilot, backbones, repeats with runs and mean ± SD, few-shot by shots,
  classification <-> detection with cIoU, data-limited curves).

Every row of the paper is listed; rows without a result of ours read "–". Only the standard library, the manifests
and matplotlib (for charts) are needed: no torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .registry.cg_models import CGSet, Experiment, Kind, PaperResult

DASH = "–"
SEGMENTS = (("A. Fixed modality", range(1, 15)), ("B. Fixed area", range(15, 19)), ("C. Fixed task", range(19, 31)),
            ("D. Modality-area paired", range(31, 44)))
FIG4_ORDER = ("all-unrelated", "all-related", "no-modality", "no-area", "no-task", "all-data")
FIG4_TITLES = {"baseline": "Baseline", "all-unrelated": "All Unrelated", "all-related": "All Related",
               "no-modality": "w/o Modality", "no-area": "w/o Area", "no-task": "w/o Task", "all-data": "All Data"}
TABLES = ("table3", "table10", "fig4", "curves", "pilot", "backbones", "repeats", "few-shot", "cls-det",
          "data-limited")


class ReportError(ValueError):
    pass


# --- reading results ---------------------------------------------------------------------------------------------

def load_results(paths: Iterable[Path]) -> dict[str, dict]:
    """experiment id -> {(arm, shots): {"mean", "sd", "n", "metric"}} from results.json files (or folders)."""
    ours: dict[str, dict] = {}
    for path in paths:
        path = Path(path)
        files = sorted(path.rglob("results.json")) if path.is_dir() else [path]
        if not files:
            raise ReportError(f"{path}: no results.json here; give the folders `medmat cg run --out` wrote")
        for f in files:
            try:
                data = json.loads(f.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise ReportError(f"{f}: not a results.json of `medmat cg run` ({exc})") from exc
            if "summary" in data and "runs" in data:
                by_target = dict(zip(data.get("targets", [data["target"]]), data.get("experiments",
                                                                                        [data["experiment"]])))
                metric = {r["target"]: r["metric"] for r in data["runs"]}
                for s in data["summary"]:
                    exp_id = by_target.get(s["target"], data["experiment"])
                    ours.setdefault(exp_id, {})[(s["arm"], s["shots"])] = {
                        "mean": s["mean"], "sd": s["sd"], "n": s["n"], "metric": metric.get(s["target"], "accuracy")}
            elif "rows" in data and "plan" in data:  # the two-source loop of medmat.train.experiments
                for r in data["rows"]:
                    arm = "trained" if r["arm"] == "related" else r["arm"]
                    ours.setdefault(data["plan"]["experiment"], {})[(arm, None)] = {
                        "mean": r["accuracy"], "sd": None, "n": 1, "metric": "accuracy"}
            else:
                raise ReportError(f"{f}: neither `summary`/`runs` nor `plan`/`rows`; not written by `medmat cg run`")
    return ours


def _fmt(v, sd=None) -> str:
    if v is None:
        return DASH
    return f"{v:g}" + (f" ± {sd:g}" if sd is not None else "")


def _ours(ours: dict, exp_id: str, arm: str, shots=None) -> dict | None:
    return ours.get(exp_id, {}).get((arm, shots))


def _cell(paper_value, mine: dict | None) -> str:
    return f"{_fmt(paper_value)} / {_fmt(mine['mean'], mine['sd']) if mine else DASH}"


def _helps(b, bp, t) -> str:
    if t is None or b is None:
        return DASH
    return "✓" if t > b and (bp is None or t > bp) else "✗"


def _our_helps(ours, exp_id) -> str:
    get = lambda arm: (_ours(ours, exp_id, arm) or {}).get("mean")  # noqa: E731
    return _helps(get("baseline"), get("baseline_plus"), get("trained"))


def _row_no(exp: Experiment) -> int:
    return int(exp.paper.reference.rsplit(" ", 1)[-1])


def _names(reg, sids: Iterable[str]) -> str:
    return " + ".join(f"{s} {reg.subsets[s].name}" if reg and s in reg.subsets else s for s in sids)


# --- tables ------------------------------------------------------------------------------------------------------

def table3(cg: CGSet, ours: dict, reg=None) -> tuple[str, list[dict]]:
    rows = sorted((e for e in cg.experiments.values() if e.kind is Kind.two_source and e.origin == "paper"),
                  key=_row_no)
    lines = ["## Table 3: two-source CG (LLaVA-1.5-7B; each cell paper / ours, accuracy %)", "",
             "| # | Related combination (paper's names) | subsets | Target | Baseline | Baseline+ | Trained "
             "| CG helps |",
             "|---|---|---|---|---|---|---|---|"]
    chart = []
    for title, span in SEGMENTS:
        lines.append(f"| | **{title}** | | | | | | |")
        for e in (x for x in rows if _row_no(x) in span):
            p = e.paper
            names = " + ".join(p.names[:-1]) if p.names else ""
            lines.append(f"| {_row_no(e)} | {names} | {' + '.join(e.train)} | {p.names[-1] if p.names else ''} "
                         f"({e.target}) | {_cell(p.baseline, _ours(ours, e.id, 'baseline'))} | "
                         f"{_cell(p.baseline_plus, _ours(ours, e.id, 'baseline_plus'))} | "
                         f"{_cell(p.trained, _ours(ours, e.id, 'trained'))} | "
                         f"{'✓' if p.helps else '✗'} / {_our_helps(ours, e.id)} |")
            chart.append({"label": str(_row_no(e)), "paper": [p.baseline, p.baseline_plus, p.trained],
                          "ours": [(_ours(ours, e.id, a) or {}).get("mean") for a in
                                   ("baseline", "baseline_plus", "trained")]})
    return "\n".join(lines) + "\n", chart


def table10(cg: CGSet, ours: dict, reg=None) -> tuple[str, list[dict]]:
    rows = sorted((e for e in cg.experiments.values() if e.kind is Kind.three_source and e.origin == "paper"),
                  key=lambda e: e.id)
    lines = ["## Table 10: three-source CG (LLaVA-1.5-7B; each cell paper / ours, accuracy %)", "",
             "| Modality | Area | Task | Target | Baseline | Trained | CG helps |", "|---|---|---|---|---|---|---|"]
    chart = []
    for e in rows:
        p = e.paper
        m, a, t = e.train
        lines.append(f"| Subset{m} | Subset{a} | Subset{t} | {p.names[-1] if p.names else ''} ({e.target}) | "
                     f"{_cell(p.baseline, _ours(ours, e.id, 'baseline'))} | "
                     f"{_cell(p.trained, _ours(ours, e.id, 'trained'))} | "
                     f"{'✓' if p.helps else '✗'} / {_our_helps(ours, e.id)} |")
        chart.append({"label": e.id.removeprefix("three-"), "paper": [p.baseline, p.trained],
                      "ours": [(_ours(ours, e.id, a) or {}).get("mean") for a in ("baseline", "trained")]})
    return "\n".join(lines) + "\n", chart


def fig4(cg: CGSet, ours: dict, reg=None) -> tuple[str, list[dict]]:
    lines = ["## Fig. 4: scaling at a constant 15,000 samples (LLaVA-1.5-7B; paper / ours, accuracy %)", "",
             "| Target | " + " | ".join(FIG4_TITLES[k] for k in ("baseline", *FIG4_ORDER)) + " |",
             "|---|" + "---|" * (1 + len(FIG4_ORDER))]
    chart = []
    for target in sorted({e.target for e in cg.experiments.values() if e.kind is Kind.scaling}):
        exps = {e.id.removeprefix(f"scale-{target}-"): e for e in cg.experiments.values()
                if e.kind is Kind.scaling and e.target == target}
        base_paper = next((e.paper.baseline for e in exps.values() if e.paper), None)
        base_ours = next((_ours(ours, e.id, "baseline") for e in exps.values() if _ours(ours, e.id, "baseline")),
                         None)
        cells = [_cell(base_paper, base_ours)]
        paper_vals, our_vals = [base_paper], [base_ours["mean"] if base_ours else None]
        for key in FIG4_ORDER:
            e = exps.get(key)
            mine = _ours(ours, e.id, "trained") if e else None
            cells.append(_cell(e.paper.trained if e and e.paper else None, mine))
            paper_vals.append(e.paper.trained if e and e.paper else None)
            our_vals.append(mine["mean"] if mine else None)
        lines.append(f"| Subset {target} | " + " | ".join(cells) + " |")
        chart.append({"label": f"Subset {target}", "paper": paper_vals, "ours": our_vals})
    return "\n".join(lines) + "\n", chart


def _numbers(p: PaperResult | None) -> str:
    if p is None:
        return DASH
    if p.points:
        return "; ".join(f"{x.x:g}-shot {_fmt(x.value, x.sd)}" for x in p.points)
    if p.gain is not None and p.trained is None:
        return f"{p.gain:+g}"
    runs = f" (runs {' / '.join(f'{v:g}' for v in p.runs)})" if p.runs else ""
    return f"{_fmt(p.baseline)} → {_fmt(p.trained, p.sd)}{runs}"


def family_table(cg: CGSet, ours: dict, kind: Kind, reg=None) -> tuple[str, list[dict]]:
    """One row per experiment of a family: subsets, the paper's numbers (every backbone), ours per arm."""
    rows = sorted((e for e in cg.experiments.values() if e.kind is kind and e.origin == "paper"), key=lambda e: e.id)
    title = {Kind.pilot: "Tables 1-2: the pilot", Kind.backbones: "Tables 4, 11, 12, 15: other backbones",
             Kind.repeats: "Table 9: three runs", Kind.few_shot: "Table 16: few-shot",
             Kind.cls_det: "Tables 13-14, 5, 6: classification <-> detection",
             Kind.data_limited: "Figs. 5-6: data-limited curves"}[kind]
    lines = [f"## {title} (paper's numbers beside ours)", "",
             "| experiment | train -> target | paper | ours: Baseline | ours: Baseline+ | ours: Trained |",
             "|---|---|---|---|---|---|"]
    chart = []
    for e in rows:
        papers = "; ".join(f"{q.model}: {_numbers(q)}" for q in [e.paper, *e.also] if q) or DASH
        shots = e.shots or [None]
        mine = []
        for arm in ("baseline", "baseline_plus", "trained"):
            got = [(k, _ours(ours, e.id, arm, k)) for k in shots]
            mine.append("; ".join((f"{k}-shot " if k is not None else "") + _fmt(v["mean"], v["sd"])
                                  + (" cIoU" if v["metric"] == "ciou" else "") for k, v in got if v) or DASH)
        train = " + ".join(e.train) if len(e.train) <= 4 else f"{len(e.train)} subsets"
        extra = f" (+{e.target_train_samples} target)" if e.target_train_samples else ""
        lines.append(f"| {e.id} | {train or '(none)'}{extra} -> {e.target} | {papers} | " + " | ".join(mine) + " |")
        chart.append({"label": e.id, "paper": [e.paper.baseline if e.paper else None,
                                               e.paper.trained if e.paper else None],
                      "ours": [(_ours(ours, e.id, a) or {}).get("mean") for a in ("baseline", "trained")]})
    return "\n".join(lines) + "\n", chart


PANELS = (("modality", "Fix Modality"), ("area", "Fix Area"), ("task", "Fix Task"), ("pair", "Modality-area group"))


def curves(cg: CGSet, ours: dict, reg=None) -> tuple[str, list[dict]]:
    """Figs. 5-6: per panel, the Related and Unrelated curves over the data added (paper prints no values)."""
    lines = ["## Figs. 5-6: data-limited curves (LLaVA-1.5-7B; ours, accuracy %; the paper prints curves only)", ""]
    chart = []
    for section, fig, axis in (("51", "Fig. 5 (§5.1, no target data)", "r"),
                               ("52", "Fig. 6 (§5.2, target data)", "t")):
        exps = [e for e in cg.experiments.values() if e.kind is Kind.data_limited and e.id.startswith(f"dl{section}-")]
        sizes = sorted({int(e.id.rsplit("-", 1)[-1][1:]) for e in exps})
        xs = ([0] if section == "51" else []) + sizes
        lines += [f"### {fig}", "", "| panel (row) | curve | " + " | ".join(str(x) for x in xs) + " |",
                  "|---|---|" + "---|" * len(xs)]
        for short, title in PANELS:
            mine = [e for e in exps if e.id.startswith(f"dl{section}-{short}-")]
            if not mine:
                continue
            src = mine[0].derived_from
            base = (_ours(ours, mine[0].id, "baseline") or {}).get("mean")
            for arm in ("related", "unrelated"):
                values = [base] if section == "51" else []
                for n in sizes:
                    got = _ours(ours, f"dl{section}-{short}-{arm}-{axis}{n}", "trained")
                    values.append(got["mean"] if got else None)
                lines.append(f"| {title} ({src}) | {arm.title()} | " + " | ".join(_fmt(v) for v in values) + " |")
                chart.append({"label": f"{fig[:6]} {title} {arm}", "x": xs, "ours": values, "paper": []})
        lines.append("")
    return "\n".join(lines), chart


RENDER = {"table3": table3, "table10": table10, "fig4": fig4, "curves": curves}
FAMILY = {"pilot": Kind.pilot, "backbones": Kind.backbones, "repeats": Kind.repeats, "few-shot": Kind.few_shot,
          "cls-det": Kind.cls_det, "data-limited": Kind.data_limited}
SERIES = {"table3": ("Baseline", "Baseline+", "Trained"), "table10": ("Baseline", "Trained"),
          "fig4": tuple(FIG4_TITLES[k] for k in ("baseline", *FIG4_ORDER))}


def render(name: str, cg: CGSet, ours: dict, reg=None) -> tuple[str, list[dict]]:
    if name in RENDER:
        return RENDER[name](cg, ours, reg)
    if name in FAMILY:
        return family_table(cg, ours, FAMILY[name], reg)
    raise ReportError(f"unknown table {name!r}; choose from {', '.join(TABLES)}")


def chart(name: str, data: list[dict], path: Path) -> None:
    """Paper (hatched) and ours (solid) side by side for each row; only rows where we have a result of ours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if name == "curves":
        fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
        for r in data:
            pts = [(x, v) for x, v in zip(r["x"], r["ours"]) if v is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", linestyle="-" if r["label"].endswith(" related") else "--",
                        label=r["label"])
        ax.set_xlabel("samples added")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 105)
        ax.set_title("Figs. 5-6 (ours): Related solid, Unrelated dashed", fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=5, ncol=2)
        fig.tight_layout()
        fig.savefig(path, metadata={"Software": None})
        plt.close(fig)
        return
    rows = [r for r in data if any(v is not None for v in r["ours"])] or data[:1]
    series = SERIES.get(name, ("Baseline", "Trained"))
    k = len(series)
    fig, ax = plt.subplots(figsize=(2.0 + 0.9 * k * max(len(rows), 1), 3.8), dpi=100)
    width = 0.8 / (2 * k)
    colours = ("#9e9e9e", "#6fa8dc", "#3b75af", "#e69138", "#93c47d", "#c27ba0", "#8e7cc3")
    for j, title in enumerate(series):
        xs = [i + (2 * j) * width for i in range(len(rows))]
        ax.bar(xs, [r["paper"][j] or 0 for r in rows], width, color=colours[j % 7], alpha=0.45, hatch="//",
               label=f"{title} (paper)")
        ax.bar([x + width for x in xs], [r["ours"][j] or 0 for r in rows], width, color=colours[j % 7],
               label=f"{title} (ours)")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))], [r["label"] for r in rows], fontsize=7)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{name}: paper (hatched) beside ours", fontsize=9)
    ax.legend(fontsize=6, ncol=2, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def report(results: list[Path], out: Path, tables: list[str] | None, cg: CGSet, reg=None) -> list[Path]:
    """Render `tables` (default: every table with at least one result of ours) to `out`/<table>.md and .png."""
    ours = load_results(results)
    if not tables:
        kinds = {cg.experiments[e].kind for e in ours if e in cg.experiments}
        own = {"table3": Kind.two_source, "table10": Kind.three_source, "fig4": Kind.scaling,
               "curves": Kind.data_limited}
        tables = [t for t in TABLES if own.get(t, FAMILY.get(t)) in kinds]
    unknown = sorted(e for e in ours if e not in cg.experiments)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    parts = []
    for name in tables:
        text, data = render(name, cg, ours, reg)
        (out / f"{name}.md").write_text(text)
        chart(name, data, out / f"{name}.png")
        written += [out / f"{name}.md", out / f"{name}.png"]
        parts.append(text)
    if unknown:
        parts.append(f"Results for experiments not in the manifests (left out): {', '.join(unknown)}\n")
    (out / "report.md").write_text("\n".join(parts))
    return [out / "report.md", *written]
