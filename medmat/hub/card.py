"""The dataset card (README.md): configs YAML with exact counts, coverage figure, licenses, citations, access."""

from __future__ import annotations

from pathlib import Path

import yaml
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from huggingface_hub import DatasetCardData

from ..registry.loader import Registry
from ..mat.schema import MAT_FEATURES
from .assemble import HubContents
from .figures import coverage_figure, montage


def card_yaml(contents: HubContents) -> dict:
    data = DatasetCardData(license="other", pretty_name="Med-MAT (rebuilt with medmat)",
                           task_categories=["visual-question-answering", "image-classification",
                                            "object-detection", "image-segmentation"],
                           tags=["medical", "compositional-generalization", "med-mat"])
    infos = {}
    for config in contents.configs:
        splits = SplitDict()
        for split, count in config.num_examples.items():
            splits.add(SplitInfo(name=split, num_examples=count))
        infos[config.name] = DatasetInfo(features=MAT_FEATURES, splits=splits)
    DatasetInfosDict(infos).to_dataset_card_data(data)
    data.configs = [{"config_name": c.name,
                     "data_files": [{"split": s, "path": p if len(p) > 1 else p[0]} for s, p in c.data_files.items()]}
                    for c in contents.configs]
    return data.to_dict()


def _cell(text: str) -> str:
    return " ".join(str(text).replace("|", "/").split())


def write_card(registry: Registry, contents: HubContents, hub: Path, repo_id: str = "<org>/Med-MAT") -> Path:
    built_counts = {sid: sum(c.num_examples.values()) for c in contents.configs
                    for sid in [c.name.removeprefix("subset-")] if c.name == f"subset-{sid}"}
    coverage_figure(registry, built_counts, hub / "assets" / "mat-coverage.png")
    lines = ["---", yaml.safe_dump(card_yaml(contents), sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             "# Med-MAT, rebuilt from the original sources", "",
             "Med-MAT (Cai et al., ACL 2025) turns public medical-imaging datasets into multiple-choice VQA organised "
             "by **MAT triplet** (Modality, Anatomical area, Task). This repository was built by "
             "[medmat](https://github.com) from the original archives; every row follows one schema (see `features`).",
             "", "```python", "from datasets import load_dataset", "",
             f'ds = load_dataset("{repo_id}", "{contents.configs[0].name if contents.configs else "subset-02"}")',
             'print(ds["train"][0]["question_choice"])', "```", "",
             "## MAT coverage", "", "![MAT coverage](assets/mat-coverage.png)", "",
             "## Configs", "", "| config | train | test | how it was made |", "|---|---|---|---|"]
    for c in contents.configs:
        lines.append(f"| `{c.name}` | {c.num_examples.get('train', 0)} | {c.num_examples.get('test', 0)} | "
                     f"{_cell(c.description)} |")
    if contents.skipped_cg:
        lines += ["", "CG experiments without a config here:", ""]
        lines += [f"- `cg-{cid}`: {why}" for cid, why in sorted(contents.skipped_cg.items())]

    lines += ["", "## Samples", ""]
    for sid in sorted(contents.subsets):
        files = sorted((hub / "data" / f"subset-{sid}" / "train").glob("*.parquet")) + sorted(
            (hub / "data" / f"subset-{sid}" / "test").glob("*.parquet"))
        sub = registry.subsets[sid]
        picture = montage(files, hub / "assets" / f"montage-subset-{sid}.png", f"subset {sid}: {sub.name}")
        lines.append(f"### subset-{sid}: {sub.name}")
        lines.append("")
        lines.append(f"![subset {sid}](assets/montage-subset-{sid}.png)" if picture else
                     "(no redistributable pixels in this subset: see Access below)")
        lines.append("")

    sources = sorted({s for info in contents.subsets.values() for s in info["sources"]},
                     key=lambda s: registry.sources[s].upstream.row or 0)
    lines += ["## Sources, licenses and access", "",
              "| row | source | subset | access | license | pixels here |", "|---|---|---|---|---|---|"]
    for sid in sources:
        src = registry.sources[sid]
        lic = registry.licenses.licenses[src.license]
        subset = registry.subset_of(sid)[0].id
        lines.append(f"| {src.upstream.row} | [{_cell(src.name)}]({src.homepage}) | {subset} | {src.access.kind.value} "
                     f"| [{_cell(lic.name)}]({src.license_url or lic.url}) | "
                     f"{'yes' if src.redistributable else 'no: rebuild locally'} |")
    restricted = [s for s in sources if not registry.sources[s].redistributable]
    if restricted:
        lines += ["", "### Rebuilding pixels that may not be redistributed", "",
                  "Rows of these sources carry QA, labels, metadata and `pixel_sha256` but no pixels. Rebuild them "
                  "from your own copy (the hashes check it is the same data):", "", "```bash",
                  f"medmat download {' '.join(restricted)} --data-dir DATA   # follow the printed steps",
                  f"medmat build {' '.join(restricted)} --data-dir DATA --out OUT --keep-pixels", "```"]
    lines += ["", "## Citations", "", "Cite Med-MAT and every source you use:", "", "```bibtex"]
    lines += [registry.sources[s].citation.strip() + "\n" for s in sources]
    lines += ["```", ""]
    path = hub / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
