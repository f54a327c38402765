"""`medmat cg run` for every kind of CG experiment, from the subsets' own configs in a hub folder or repo.

Each experiment of `manifests/cg/` is run the way the paper ran it:

- the training set is drawn per subset config (`subset-NN-paper`, or `subset-NN` when `caps.split` is full) under
  the experiment's caps (`medmat.mat.cg.select_training_ids`: per-subset cap, total in equal shares, a constant
  volume refused when short, `target_train_samples` of the target's own train split on top);
- arms: Baseline (untrained, when `controls.baseline`), Baseline+ (the unrelated subsets, as many samples as the
  trained arm), and the trained arm (the Related pair, the Unrelated set of a data-limited curve, a scaling setting,
  a pilot's single or multi-task set); the untrained few-shot baseline has no trained arm;
- `repeats`: the trained arm n times with seeds seed, seed+1, ... and the mean ± SD (n-1 in the denominator: it
  reproduces Table 9's printed SDs from its runs);
- `shots`: each model scored with k examples per label of the target's train split in the prompt (earlier chat
  turns, one image each), drawn anew in every repeat;
- `shares_training_with` (the pilot's multi-task arm): one model trained once, scored on every target of the group
  whose test split is present;
- `answer: box | mask`: detection rows are asked in the open form with the answer in the backbone's own box text
  (`medmat.train.scoring`), and scored by cIoU; classification rows keep their lettered options.

Results: `results.json` (every run of every arm with counts, the summary per arm and the paper's numbers) and
`results.csv`, byte-identical for the same inputs and seed. `medmat cg report` renders them beside the paper.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from .config import DataSpec, EvalConfig, TrainConfig

TRAINED = "trained"
ARM_ORDER = ("baseline", "baseline_plus", TRAINED)
CSV_COLUMNS = ("experiment", "kind", "arm", "run", "seed", "shots", "target", "metric", "value", "correct", "total",
               "train_samples", "unparsed")


class KindError(ValueError):
    """An experiment that cannot be run from this data; the message names the fix."""


def subset_config(sid: str, split: str) -> str:
    return f"subset-{sid}-paper" if split == "paper" else f"subset-{sid}"


def _load(data: str, config: str, split: str, seed: int):
    from .data import DataError, load_split

    try:
        return load_split(DataSpec(path=data, config=config, split=split), seed)
    except DataError as exc:
        raise KindError(f"{exc}\nBuild the subsets this experiment names into the hub folder "
                        f"(`medmat build` + `medmat hub build`), or pick an experiment whose subsets it holds") from exc


def as_box_rows(ds, style: str):
    """Detection/segmentation rows asked in the open form, answered in `style`'s box text (in the choice columns,
    so one training set can mix them with lettered classification rows)."""
    from .scoring import format_answer

    def convert(row):
        if row.get("task_type") not in ("detection", "segmentation"):
            return {}
        width, height = row.get("width") or row["image"].size[0], row.get("height") or row["image"].size[1]
        return {"question_choice": row["question"], "answer_choice": format_answer(row["boxes"] or [], width, height,
                                                                                   style)}

    if "task_type" not in ds.column_names:
        return ds
    return ds.map(lambda row: {**row, **convert(row)}, desc=None)


def training_rows(exp, data: str, seed: int, parts: list[str] | None = None, total: int | None = None,
                  box_style: str | None = None):
    """The training rows of `exp` (or of `parts` with `total` in equal shares: the Baseline+ draw), caps applied."""
    from datasets import concatenate_datasets

    from ..mat.cg import TARGET_PART, select_training_ids
    from .data import prepare

    caps = exp.caps
    if parts is not None:
        exp = exp.model_copy(update={"train": list(parts), "target_train_samples": 0,
                                     "caps": caps.model_copy(update={"total": total, "exact": False})})
    loaded = {sid: _load(data, subset_config(sid, exp.caps.split), "train", seed) for sid in exp.train}
    if exp.target_train_samples:
        loaded[TARGET_PART] = _load(data, subset_config(exp.target, "paper"), "train", seed)
    if not loaded:
        return None
    keep = select_training_ids(exp, {part: ds["id"] for part, ds in loaded.items()}, seed)
    picked = []
    for part, ds in loaded.items():
        wanted = set(keep.get(part, []))
        part_rows = ds.filter(lambda row: row["id"] in wanted)
        if box_style:
            part_rows = as_box_rows(part_rows, box_style)
        picked.append(prepare(part_rows, "choice", f"{exp.id}:{part}"))
    rows = concatenate_datasets([p.cast(picked[0].features) for p in picked])
    return rows.sort("id").shuffle(seed=seed).flatten_indices()


def shot_rows(train_ds, k: int, seed: int) -> list[dict]:
    """k examples per label of `train_ds` (by the answer text), seeded; labels in sorted order."""
    import random

    by_label: dict[str, list[int]] = {}
    for i, answer in enumerate(train_ds["answer"]):
        by_label.setdefault(str(answer), []).append(i)
    rng = random.Random(seed)
    chosen = [i for label in sorted(by_label) for i in rng.sample(by_label[label], min(k, len(by_label[label])))]
    return [train_ds[i] for i in chosen]


class FewShotCollator:
    """Generation inputs with earlier chat turns (image, question, answer) before the question scored."""

    def __init__(self, base, shots: list[dict]):
        self.base, self.shots, self.pad_id = base, shots, base.pad_id

    def _encode(self, row: dict) -> dict:
        import torch

        from .collate import _rgb

        turns = []
        for s in self.shots:
            turns += [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": s["question_choice"]}]},
                      {"role": "assistant", "content": [{"type": "text", "text": str(s["answer_choice"])}]}]
        turns.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": row["question_choice"]}]})
        processor = self.base.processor
        prompt = processor.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        images = [_rgb(s["image"]) for s in self.shots] + [_rgb(row["image"])]
        enc = processor(text=[prompt], images=images, return_tensors="pt")
        ids = enc["input_ids"][0]
        per_token = {k: v[0] for k, v in enc.items() if torch.is_tensor(v) and v.shape == enc["input_ids"].shape}
        if self.base.add_mm_token_type_ids and "mm_token_type_ids" not in per_token:
            kinds = torch.zeros_like(ids)
            for kind, token_id in enumerate(self.base.image_token_ids, start=1):
                kinds[ids == token_id] = kind
            per_token["mm_token_type_ids"] = kinds
        return {"tokens": per_token, "images": {k: v for k, v in enc.items() if k not in per_token
                                                and torch.is_tensor(v)}}

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        encoded = [self._encode(row) for row in rows]
        width = max(len(e["tokens"]["input_ids"]) for e in encoded)
        batch = {}
        for key in encoded[0]["tokens"]:
            fill = self.pad_id if key == "input_ids" else 0
            batch[key] = torch.stack([torch.cat([torch.full((width - len(e["tokens"][key]),), fill,
                                                            dtype=e["tokens"][key].dtype), e["tokens"][key]])
                                      for e in encoded])
        for key in encoded[0]["images"]:
            batch[key] = torch.cat([e["images"][key] for e in encoded])
        return batch


def score_arm(net, processor, test_raw, exp, eval_cfg: EvalConfig, box_style: str | None, shots: list[dict] | None):
    """One evaluation: option accuracy, or cIoU of the answered boxes; with `shots` in the prompt."""
    from .collate import collator_for
    from .data import prepare
    from .evaluate import predict, score

    if exp.answer == "choice":
        test = prepare(test_raw, "choice", exp.target)
        collator = collator_for(net, processor, "choice", train=False)
        if shots:
            collator = FewShotCollator(collator, shots)
        replies = predict(net, processor, test, "choice", eval_cfg.batch_size, eval_cfg.max_new_tokens, collator)
        result = score(test.remove_columns(["image"]).to_list(), replies, "choice")
        o = result["overall"]
        return {"metric": "accuracy", "value": o["accuracy"], "correct": o["correct"], "total": o["total"],
                "unparsed": result["unparsed"]}
    from .scoring import score_boxes

    style = box_style or "medmat"
    test = prepare(as_box_rows(test_raw, style), "choice", exp.target)
    replies = predict(net, processor, test, "choice", eval_cfg.batch_size, eval_cfg.max_new_tokens or 96,
                      collator_for(net, processor, "choice", train=False))
    rows = test_raw.remove_columns(["image"]).to_list()
    result = score_boxes(rows, replies, style)
    return {"metric": "ciou", "value": result["ciou"], "correct": round(result["intersection"], 1),
            "total": round(result["union"], 1), "unparsed": result["unparsed"]}


def summarise(runs: list[dict]) -> dict:
    """Mean ± SD (sample SD, n - 1) of the values of repeated runs, per (arm, shots, target)."""
    groups: dict[tuple, list[float]] = {}
    for r in runs:
        groups.setdefault((r["arm"], r["shots"], r["target"]), []).append(r["value"] if r["value"] is not None else 0)
    out = []
    for (arm, shots, target), values in sorted(groups.items(), key=lambda kv: (
            ARM_ORDER.index(kv[0][0]), kv[0][1] if kv[0][1] is not None else -1, kv[0][2])):
        out.append({"arm": arm, "shots": shots, "target": target, "n": len(values),
                    "mean": round(statistics.fmean(values), 2),
                    "sd": round(statistics.stdev(values), 2) if len(values) > 1 else None})
    return out


def scaled(exp, scale: float | None):
    """`exp` with every sample count (caps, target data) times `scale`, at least 1: smoke runs on small data."""
    if not scale or scale == 1:
        return exp

    def f(n):
        return None if n is None else max(1, round(n * scale))

    caps = exp.caps.model_copy(update={"per_subset": f(exp.caps.per_subset), "total": f(exp.caps.total)})
    return exp.model_copy(update={"caps": caps, "target_train_samples": f(exp.target_train_samples)
                                  if exp.target_train_samples else 0})


def group_of(cg, exp) -> list:
    """The experiments trained with `exp`'s one model (the pilot's multi-task targets), `exp` first."""
    head = exp.shares_training_with or exp.id
    members = [e for e in cg.experiments.values() if e.id == head or e.shares_training_with == head]
    return sorted(members, key=lambda e: (e.id != exp.id, e.id))


def run_kind(exp_id: str, data: str, model: str, out: Path, train_cfg: dict, eval_cfg: EvalConfig,
             manifests: Path | None = None, box_style: str | None = None, max_test_samples: int | None = None,
             scale: float | None = None, log=print) -> dict:
    """Run one experiment of any kind; write results.json / results.csv under `out`; return the results."""
    from ..mat.cg import get_experiment
    from ..registry import default_manifests_dir
    from ..registry.cg_models import CGError, Direction, load_cg
    from .model import load_model, load_processor, pick_dtype
    from .trainer import train

    cg, _ = load_cg(Path(manifests) if manifests else default_manifests_dir())
    try:
        exp = scaled(get_experiment(cg, exp_id), scale)
    except CGError as exc:
        raise KindError(str(exc)) from exc
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(train_cfg.get("seed", 42))
    targets = group_of(cg, exp) if exp.direction is Direction.multi_task else [exp]
    tests = {}
    for t in targets:
        try:
            ds = _load(data, subset_config(t.target, "paper"), "test", seed)
        except KindError:
            if t is exp:
                raise
            log(f"[{exp.id}] {t.target}: no test split here, not scored")
            continue
        if max_test_samples and len(ds) > max_test_samples:
            ds = ds.shuffle(seed=seed).select(range(max_test_samples)).flatten_indices()
        tests[t.target] = ds
    shot_source = _load(data, subset_config(exp.target, "paper"), "train", seed) if exp.shots else None
    style = box_style or "medmat"  # detection rows (trained or scored) answer in this box text
    runs: list[dict] = []

    def evaluate_all(net, processor, arm: str, run: int, run_seed: int, samples: int) -> None:
        for target, test in tests.items():
            for k in (exp.shots or [None]):
                shots = shot_rows(shot_source, k, run_seed) if k else None
                res = score_arm(net, processor, test, exp, eval_cfg, style, shots)
                runs.append({"experiment": exp.id, "kind": exp.kind.value, "arm": arm, "run": run, "seed": run_seed,
                             "shots": k, "target": target, "train_samples": samples, **res})
                log(f"[{exp.id}] {arm} run {run}" + (f" {k}-shot" if k is not None else "") + f" on {target}: "
                    f"{res['metric']} {res['value']}")

    def trained_model(rows, arm: str, run_seed: int):
        cfg = TrainConfig(**{**train_cfg, "seed": run_seed, "model": model, "output_dir": out / f"{arm}-{run_seed}"})
        net, processor, summary = train(cfg, rows, processor=load_processor(model))
        return net, processor, summary["samples"]

    trainable = exp.direction is not Direction.untrained
    repeats = exp.repeats
    if exp.controls.baseline or not trainable:
        base_runs = repeats if exp.shots else 1  # shots are drawn anew per repeat; the untrained model is one
        net = load_model(model, dtype=pick_dtype(eval_cfg.precision))
        processor = load_processor(model)
        for r in range(base_runs):
            evaluate_all(net, processor, "baseline", r, seed + r, 0)
        del net
    n_trained = 0
    if trainable:
        # Few-shot repeats draw the shots anew for one trained model; other repeats train anew.
        for r in range(1 if exp.shots else repeats):
            try:
                rows = training_rows(exp, data, seed + r, box_style=style)
            except CGError as exc:
                raise KindError(str(exc)) from exc
            net, processor, n_trained = trained_model(rows, TRAINED, seed + r)
            for e in range(repeats if exp.shots else 1):
                evaluate_all(net, processor, TRAINED, r + e, seed + r + e, n_trained)
            del net
    bp = exp.controls.baseline_plus
    if bp and trainable:
        rows = training_rows(exp, data, bp.seed, parts=list(bp.subsets), total=n_trained, box_style=style)
        net, processor, samples = trained_model(rows, "baseline_plus", bp.seed)
        evaluate_all(net, processor, "baseline_plus", 0, bp.seed, samples)
        del net
    runs.sort(key=lambda r: (ARM_ORDER.index(r["arm"]), r["run"], r["shots"] if r["shots"] is not None else -1,
                             r["target"]))
    paper = {t.target: json.loads(t.paper.model_dump_json()) if t.paper else None for t in targets}
    results = {"experiment": exp.id, "kind": exp.kind.value, "direction": exp.direction.value, "target": exp.target,
               "targets": [t.target for t in targets], "experiments": [t.id for t in targets],
               "train": list(exp.train), "target_train_samples": exp.target_train_samples, "arm": exp.arm,
               "derived_from": exp.derived_from, "answer": exp.answer, "box_style": style, "model": model,
               "paper": paper.get(exp.target), "paper_by_target": paper,
               "also": [json.loads(p.model_dump_json()) for p in exp.also],
               "runs": runs, "summary": summarise(runs), "scale": scale or 1,
               "train_settings": {k: str(v) for k, v in sorted(train_cfg.items())}}
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for r in runs:
            writer.writerow({k: "" if r.get(k) is None else r[k] for k in CSV_COLUMNS})
    return results
