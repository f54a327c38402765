"""`medmat cg list | show | related` (and `run`, `report` from medmat.train): the CG experiments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..registry.cg_models import DEFAULT_SEED, ELEMENTS, CGError, Kind, PaperResult
from .common import JsonOpt, ManifestsOpt, load_experiments_or_exit

cg_app = typer.Typer(help="Compositional-generalisation experiments: list, show, and the related subsets of a target.",
                     no_args_is_help=True, add_completion=False)


MODEL_TAGS = {"LLaVA-1.5-7B": "LLaVA", "Qwen2-VL-7B-Instruct": "Qwen2-VL", "Llama-3.2-11B-Vision-Instruct": "Llama-3.2",
              "HuatuoGPT-Vision": "HuatuoGPT", "Next-Chat": "Next-Chat", "MiniGPT-v2": "MiniGPT-v2"}
FAMILY_TABLES = {"two-source": "Table 3", "three-source": "Table 10", "scaling": "Fig. 4", "data-limited": "Figs. 5-6",
                 "cls-det": "Tables 13-14, 5, 6", "pilot": "Tables 1-2", "backbones": "Tables 4, 11, 12, 15",
                 "repeats": "Table 9", "few-shot": "Table 16"}


def _numbers(p: PaperResult | None, tag: bool = False) -> str:
    """The paper's numbers: baseline / baseline+ / trained (± SD), a gain, or a column of points."""
    if p is None:
        return "-"
    fmt = lambda v: "?" if v is None else f"{v:g}"  # noqa: E731
    if p.points:
        text = " ".join(f"{x.x:g}:{x.value:g}" + (f"±{x.sd:g}" if x.sd is not None else "") for x in p.points)
    elif p.gain is not None and p.trained is None:
        text = f"{p.gain:+g}"
    else:
        text = f"{fmt(p.baseline)} / {fmt(p.baseline_plus)} / {fmt(p.trained)}" + (
            f" ±{p.sd:g}" if p.sd is not None else "")
    if p.metric != "accuracy":
        text += f" {p.metric}"
    return f"{MODEL_TAGS.get(p.model, p.model)} {text}" if tag else text


def _all_numbers(e) -> str:
    return "; ".join(_numbers(p, tag=True) for p in ([e.paper] if e.paper else []) + list(e.also)) or "-"


@cg_app.command("list")
def list_cmd(
    kind: Annotated[Optional[Kind], typer.Option(help="only this family")] = None,
    target: Annotated[Optional[str], typer.Option(help="only experiments on this target subset")] = None,
    as_json: JsonOpt = False,
    manifests: ManifestsOpt = None,
) -> None:
    """List the CG experiments: id, family, direction, train -> target, paper's baseline / baseline+ / trained."""
    _, cg = load_experiments_or_exit(manifests)
    rows = [e for e in cg.experiments.values()
            if (kind is None or e.kind is kind) and (target is None or e.target == target.zfill(2))]
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in rows], indent=2))
        return
    counts: dict[str, list[int]] = {}
    for e in rows:
        counts.setdefault(e.kind.value, [0, 0])[e.origin == "ours"] += 1
    typer.echo(f"{len(rows)} experiment(s); paper numbers: model baseline / baseline+ / trained (± SD over runs), a "
               "gain, or shots:value")
    for k, (paper, ours) in counts.items():
        typer.echo(f"  {k:<13} {paper:>3} of the paper ({FAMILY_TABLES.get(k, '')})"
                   + (f", {ours} ours" if ours else ""))
    for e in rows:
        extra = f" +{e.target_train_samples} target" if e.target_train_samples else ""
        train = " + ".join(e.train) if len(e.train) <= 4 else f"{len(e.train)} subsets"
        flags = "".join([f" x{e.repeats}" if e.repeats > 1 else "", f" shots {e.shots}" if e.shots else "",
                         f" {e.answer}" if e.answer != "choice" else "", " [ours]" if e.origin == "ours" else ""])
        typer.echo(f"cg-{e.id:<28} {e.kind.value:<12} {e.direction.value:<24} "
                   f"{train or '-'} -> {e.target}{extra}{flags}   {_all_numbers(e)}")


@cg_app.command("show")
def show_cmd(
    experiment: Annotated[str, typer.Argument(help="an experiment id, e.g. two-04 (or cg-two-04)")],
    as_json: JsonOpt = False,
    manifests: ManifestsOpt = None,
) -> None:
    """Show one experiment: subsets with their triplets, what each shares with the target, controls, paper."""
    from ..mat.cg import get_experiment
    from ..registry.triplets import effective_table, mat_table

    reg, cg = load_experiments_or_exit(manifests)
    try:
        exp = get_experiment(cg, experiment)
    except CGError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(exp.model_dump(mode="json"), indent=2))
        return
    table, plain = effective_table(reg, exp, cg.relatedness), mat_table(reg)
    tm = table[exp.target]
    out = [f"{exp.config_name}  ({exp.kind.value}, {exp.direction.value}, origin: {exp.origin})",
           f"file: {cg.files[exp.id]}",
           f"target: {exp.target} {reg.subsets[exp.target].name} [{tm}]"]
    for s in exp.train:
        read = " (as read here, see treat_as)" if table[s] != plain[s] else ""
        out.append(f"train:  {s} {reg.subsets[s].name} [{table[s]}]{read}  shares: {_shared_text(tm, table[s])}")
    if exp.target_train_samples:
        out.append(f"target data: {exp.target_train_samples} samples of {exp.target}'s train split")
    caps = exp.caps
    out.append(f"caps: split {caps.split}, per subset {caps.per_subset or 'none'}, total {caps.total or 'none'}"
               + (" (held constant, as the paper does)" if caps.exact else ""))
    if exp.reading:
        out.append(f"relatedness: reading {exp.reading} ({cg.relatedness.reading(exp.reading).reference})")
    if exp.derived_from:
        out.append(f"derived from: cg-{exp.derived_from} ({exp.arm} arm)")
    runs = [f"repeats {exp.repeats}" if exp.repeats > 1 else "", f"shots {exp.shots}" if exp.shots else "",
            f"answer {exp.answer}" if exp.answer != "choice" else "",
            f"trained once with cg-{exp.shares_training_with}" if exp.shares_training_with else ""]
    if any(runs):
        out.append("run: " + ", ".join(r for r in runs if r))
    bp = exp.controls.baseline_plus
    out.append(f"controls: baseline {'yes' if exp.controls.baseline else 'no'}; Baseline+ "
               + (f"{' + '.join(bp.subsets)} ({bp.size}, seed {bp.seed}; origin {bp.origin}: one hash-ranked unrelated "
                  "subset per train subset is our rule)" if bp else "none"))
    if bp:
        for s in bp.subsets:
            out.append(f"  baseline+ {s} {reg.subsets[s].name} [{plain[s]}]")
    for t in exp.treat_as:
        changed = ", ".join(f"{e} {getattr(t, e)}" for e in ELEMENTS if getattr(t, e))
        out.append(f"treat {t.subset} as {changed}: {t.reason}")
    if exp.paper:
        p = exp.paper
        out.append(f"paper: {p.reference}; {' + '.join(p.names[:-1])} -> {p.names[-1]}" if p.names
                   else f"paper: {p.reference}")
        for q in [p, *exp.also]:
            out.append(f"  {q.model} {q.metric}: {_numbers(q)}" + (f" (runs {q.runs})" if q.runs else "")
                       + ("" if q.helps is None else f"; CG helps: {'yes' if q.helps else 'no'}")
                       + (f"; paper's direction: {q.direction}" if q.direction else "")
                       + (f"  [{q.reference}]" if q is not p else ""))
    if exp.inference:
        inf = exp.inference
        out.append(f"inference ({inf.confidence} confidence): {inf.paper_mapping}")
        for a in inf.alternatives:
            out.append(f"  chose {a.subset} over {', '.join(a.instead_of)}: {a.why}")
        if inf.notes:
            out.append(f"  {inf.notes}")
    if exp.notes:
        out.append(f"notes: {exp.notes}")
    typer.echo("\n".join(out))


def _shared_text(tm, m) -> str:
    from ..registry.triplets import shares

    shared = shares(tm, m)
    return ", ".join(f"{e} {m.get(e)}" for e in shared) or "nothing"


@cg_app.command("related")
def related_cmd(
    subset: Annotated[str, typer.Argument(help="the target subset, e.g. 03")],
    trainable_only: Annotated[bool, typer.Option("--trainable", help="only subsets that can supply training data "
                                                 "(ID classification and det/seg subsets)")] = False,
    seed: Annotated[int, typer.Option(help="seed of the Baseline+ draw")] = DEFAULT_SEED,
    as_json: JsonOpt = False,
    manifests: ManifestsOpt = None,
) -> None:
    """Print the Related subsets (grouped by the element each shares with the target) and the Unrelated ones."""
    from ..mat.cg import draw_unrelated, relations, subset_kind, trainable
    from ..registry.triplets import mat_table

    from ..registry.cg_checks import reading_counts

    reg, cg = load_experiments_or_exit(manifests)
    target = subset.zfill(2)
    if target not in reg.subsets:
        typer.echo(f"no subset {subset!r}; choose one of {', '.join(sorted(reg.subsets))}", err=True)
        raise typer.Exit(2)
    pool = [s for s in reg.subsets if trainable(reg, s)] if trainable_only else None
    rel = relations(reg, target, cg.relatedness, pool)
    table = mat_table(reg)
    if as_json:
        typer.echo(json.dumps({
            "target": target, "mat": vars(rel.mat),
            "related": {s: {e: table[s].get(e) for e in shared} for s, shared in rel.related.items()},
            "unrelated": rel.unrelated,
            "near": {s: {e: table[s].get(e) for e in close} for s, close in rel.near.items()},
            "id_counts": {"vocabulary": list(reading_counts(reg, cg, "", target)),
                          **{r.name: {"ours": list(reading_counts(reg, cg, r.name, target)),
                                      "paper": list(r.expected[target]) if target in r.expected else None}
                             for r in cg.relatedness.readings}},
        }, indent=2))
        return

    def line(s: str, note: str) -> str:
        sub = reg.subsets[s]
        return f"    {s}  {str(table[s]):<34} {sub.role:<6} {sub.name}  [{note}]"

    out = [f"target {target}: {reg.subsets[target].name} [{rel.mat}]", "",
           f"Related ({len(rel.related)}): share at least one of modality, area, task element"]
    for shared, members in rel.groups():
        out.append(f"  sharing {' + '.join(f'{e} {rel.mat.get(e)}' for e in shared)}:")
        out += [line(s, "shares " + ", ".join(f"{e} {table[s].get(e)}" for e in shared)) for s in members]
    out += ["", f"Unrelated ({len(rel.unrelated)}): share no element"]
    out += [line(s, "shares nothing" if s not in rel.near else "shares nothing; near: " + ", ".join(
        f"{e} {table[s].get(e)} ~ {rel.mat.get(e)}" for e in rel.near[s]) + " (never used for Baseline+)")
        for s in rel.unrelated]
    from ..registry.cg_checks import id_pool, reading_counts

    if target in id_pool(reg) or target in {t for r in cg.relatedness.readings for t in r.expected}:
        own = reading_counts(reg, cg, "", target)
        out += ["", f"Among the 25 ID subsets: {own[0]} Related : {own[1]} Unrelated with the vocabulary's task "
                "elements"]
        for r in cg.relatedness.readings:
            got = reading_counts(reg, cg, r.name, target)
            want = r.expected.get(target)
            out.append(f"  {got[0]} : {got[1]} as reading {r.name} reads them ("
                       + (f"the paper states {want[0]}:{want[1]}; " if want else "") + f"{r.reference})")
    try:
        draw = draw_unrelated(reg, target, {subset_kind(reg, target): 2}, seed, cg.relatedness)
        out += ["", f"Baseline+ for two {subset_kind(reg, target)} train subsets (seed {seed}): {' + '.join(draw)}"]
    except CGError as exc:
        out += ["", f"Baseline+: {exc}"]
    typer.echo("\n".join(out))



@cg_app.command("report")
def report_cmd(
    results: Annotated[list[Path], typer.Argument(help="results.json files or the folders `medmat cg run` wrote")],
    out: Annotated[Path, typer.Option("--out", help="folder for <table>.md, <table>.png and report.md")] = Path(
        "runs/report"),
    table: Annotated[Optional[list[str]], typer.Option(
        "--table", help="table3, table10, fig4, curves (Figs. 5-6), pilot, backbones, repeats, few-shot, cls-det, "
        "data-limited (repeatable; default: every table with a result of ours)")] = None,
    manifests: ManifestsOpt = None,
) -> None:
    """Render the paper's tables in the paper's shape, its numbers beside ours (Markdown and a chart each)."""
    from ..cg_report import ReportError, report

    reg, cg = load_experiments_or_exit(manifests)
    try:
        written = report(results, out, table, cg, reg)
    except ReportError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo((out / "report.md").read_text())
    typer.echo("-> " + ", ".join(str(p) for p in written))
