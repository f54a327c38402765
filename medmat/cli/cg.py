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


def _numbers(p: PaperResult | None) -> str:
    if p is None:
        return "-"
    fmt = lambda v: "?" if v is None else f"{v:g}"  # noqa: E731
    return f"{fmt(p.baseline)} / {fmt(p.baseline_plus)} / {fmt(p.trained)}"


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
    typer.echo(f"{len(rows)} experiment(s); paper numbers are baseline / baseline+ / trained (LLaVA-1.5-7B)")
    for e in rows:
        extra = f" +{e.target_train_samples} target" if e.target_train_samples else ""
        typer.echo(f"cg-{e.id:<28} {e.kind.value:<12} {e.direction.value:<24} "
                   f"{' + '.join(e.train) or '-'} -> {e.target}{extra}   {_numbers(e.paper)}")


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
    table, plain = effective_table(reg, exp), mat_table(reg)
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
    out.append(f"caps: split {caps.split}, per subset {caps.per_subset or 'none'}, total {caps.total or 'none'}")
    bp = exp.controls.baseline_plus
    out.append(f"controls: baseline {'yes' if exp.controls.baseline else 'no'}; Baseline+ "
               + (f"{' + '.join(bp.subsets)} ({bp.size}, seed {bp.seed})" if bp else "none"))
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
        out.append(f"  {p.model} {p.metric} (baseline / baseline+ / trained): {_numbers(p)}"
                   + ("" if p.helps is None else f"; CG helps: {'yes' if p.helps else 'no'}")
                   + (f"; paper's direction: {p.direction}" if p.direction else ""))
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
    try:
        draw = draw_unrelated(reg, target, {subset_kind(reg, target): 2}, seed, cg.relatedness)
        out += ["", f"Baseline+ for two {subset_kind(reg, target)} train subsets (seed {seed}): {' + '.join(draw)}"]
    except CGError as exc:
        out += ["", f"Baseline+: {exc}"]
    typer.echo("\n".join(out))

