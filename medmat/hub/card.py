"""The dataset card (README.md) and LICENSES.md: metadata the Hub's card spec asks for, configs with exact counts
and byte sizes, the pixels policy on top, coverage figure and montages (when asked for), licenses per source,
citations, access.

The YAML header follows the Hub's dataset card spec (huggingface_hub's `DatasetCardData` and the datasets
library's `dataset_info`): license identifiers from the Hub's list, `license_name`/`license_link` when the
license is `other`, `size_categories` from the total sample count, one config marked `default: true`. The
`dataset_info` entries carry splits and byte counts but no `features`: the columns are the same in every config
and each Parquet file already holds them (the `huggingface` key of its schema metadata), and repeating them 295
times made the header half a megabyte, which `load_dataset` parses on every call.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from huggingface_hub import DatasetCardData

from .. import __version__
from ..mat.schema import FIELDS
from ..mat.split_report import split_stats_markdown
from ..prepare.writer import REPORT_FORMAT_VERSION
from ..registry.loader import Registry
from .assemble import HubContents

ARXIV_ID = "2412.20070"  # Cai et al., "Exploring Compositional Generalization of Multimodal LLMs for Medical Imaging"
PAPER_CITATION = """@inproceedings{cai-etal-2025-exploring,
    title = "Exploring Compositional Generalization of Multimodal {LLM}s for Medical Imaging",
    author = "Cai, Zhenyang and Chen, Junying and Wang, Rongsheng and Wang, Weihong and Deng, Yonglin and
      Song, Dingjie and Chen, Yize and Zhang, Zixu and Wang, Benyou",
    booktitle = "Proceedings of the 63rd Annual Meeting of the Association for Computational Linguistics (Volume 1: Long Papers)",
    month = jul,
    year = "2025",
    address = "Vienna, Austria",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2025.acl-long.639/",
    doi = "10.18653/v1/2025.acl-long.639",
    pages = "13057--13079",
    eprint = "2412.20070",
    archivePrefix = "arXiv"
}"""  # as the ACL Anthology gives it (2025.acl-long.639), with the arXiv id added
PRETTY_NAME = "Med-MAT (rebuilt with medmat)"
LICENSE_NAME = "med-mat-per-source"  # `license_name` when the sources' licenses are mixed
LICENSE_FILE = "LICENSES.md"
FIGURES_HINT = ("Figures: rebuild with `medmat build ... --figures` (or `--publishable`) to include the MAT coverage "
                "grid and sample montages.")

# License identifiers the Hub accepts in `license:` (https://huggingface.co/docs/hub/repositories-licenses), for the
# keys of manifests/licenses.yaml that have one; every other key is `other`.
HUB_LICENSE_IDS = {
    "cc0-1.0": "cc0-1.0", "cc-by-4.0": "cc-by-4.0", "cc-by-3.0": "cc-by-3.0", "cc-by-sa-4.0": "cc-by-sa-4.0",
    "cc-by-sa-3.0": "cc-by-sa-3.0", "cc-by-nc-4.0": "cc-by-nc-4.0", "cc-by-nc-3.0": "cc-by-nc-3.0",
    "cc-by-nc-sa-4.0": "cc-by-nc-sa-4.0", "cc-by-nc-sa-3.0": "cc-by-nc-sa-3.0", "cc-by-nc-nd-4.0": "cc-by-nc-nd-4.0",
    "odbl-1.0": "odbl", "odc-by-1.0": "odc-by", "mit": "mit", "apache-2.0": "apache-2.0", "gpl-2.0": "gpl-2.0",
}
# The Hub's size_categories buckets (huggingface_hub's dataset card template).
_SIZE_BUCKETS = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                 (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]


def size_category(n: int) -> str:
    return next((name for limit, name in _SIZE_BUCKETS if n < limit), "n>1T")


def built_sources(registry: Registry, contents: HubContents) -> list[str]:
    return sorted({s for info in contents.subsets.values() for s in info["sources"]},
                  key=lambda s: (registry.sources[s].upstream.row or 0, s))


def total_samples(contents: HubContents) -> int:
    """Every sample once: the full-flavour subset configs (paper, source and CG configs reuse their rows)."""
    return sum(sum(c.num_examples.values()) for c in contents.configs
               if c.name.startswith("subset-") and not c.name.endswith("-paper"))


def license_fields(registry: Registry, sources: list[str]) -> dict:
    """`license` (+ `license_name`/`license_link` when `other`) for the built sources' licenses."""
    keys = sorted({registry.sources[s].license for s in sources})
    hub_ids = sorted({HUB_LICENSE_IDS[k] for k in keys if k in HUB_LICENSE_IDS})
    if len(hub_ids) == 1 and all(k in HUB_LICENSE_IDS for k in keys):
        return {"license": hub_ids[0]}
    return {"license": "other", "license_name": LICENSE_NAME, "license_link": LICENSE_FILE}


def card_yaml(registry: Registry, contents: HubContents) -> dict:
    sources = built_sources(registry, contents)
    data = DatasetCardData(
        pretty_name=PRETTY_NAME, language=["en"], **license_fields(registry, sources),
        size_categories=[size_category(total_samples(contents))],
        source_datasets=[f"extended|{s}" for s in sorted(sources)],
        task_categories=["visual-question-answering", "image-classification", "object-detection",
                         "image-segmentation"],
        tags=["medical", "compositional-generalization", "med-mat", f"arxiv:{ARXIV_ID}"])
    infos = {}
    for config in contents.configs:
        splits = SplitDict()
        for split, count in config.num_examples.items():
            splits.add(SplitInfo(name=split, num_examples=count, num_bytes=config.num_bytes.get(split, 0)))
        infos[config.name] = DatasetInfo(splits=splits, download_size=sum(config.file_bytes.values()),
                                         dataset_size=sum(config.num_bytes.values()))
    DatasetInfosDict(infos).to_dataset_card_data(data)
    default = next((c.name for c in contents.configs if c.name.startswith("subset-")), None)
    data.configs = [{"config_name": c.name, **({"default": True} if c.name == default else {}),
                     "data_files": [{"split": s, "path": p if len(p) > 1 else p[0]} for s, p in c.data_files.items()]}
                    for c in contents.configs]
    return data.to_dict()


def _cell(text: str) -> str:
    return " ".join(str(text).replace("|", "/").split())


def pixels_notice(registry: Registry, contents: HubContents, repo_id: str | None) -> list[str]:
    """The pixels policy of this folder, stated before anything else in the card."""
    restricted, rows = contents.restricted, sum(contents.restricted.values())
    if contents.publishable:
        if not restricted:
            return ["> **Pixels:** every source in this repository allows republishing its images; all pixels are "
                    "included.", ""]
        return [f"> **Pixels:** {rows} rows of {len(restricted)} sources whose licenses do not allow republishing "
                "images carry **no pixels** here (`image`, `volume` and `mask` are null). Each such row says why and "
                "how to rebuild it in its `pixels_withheld` column; the sources are marked \"no\" under *Sources, "
                "licenses and access* below, and *Rebuilding pixels* gives the commands. QA, labels, boxes, splits "
                "and `pixel_sha256` are complete for every row.", ""]
    where = f" (for `{repo_id}`)" if repo_id else ""
    return ["> **Pixels: local build.** This folder holds every pixel that was downloaded, including those of "
            f"{rows} rows of {len(restricted)} sources whose licenses do not allow republishing them. It is for your own use: "
            f"`medmat publish` refuses it. Build a publishable folder{where} with "
            "`medmat build ... --publishable --repo ORG/NAME` (add `--hub-only` to reuse the sources already built), "
            "which leaves those pixels out and marks each row.", ""]


def write_licenses(registry: Registry, sources: list[str], hub: Path) -> Path:
    """LICENSES.md: the license of every source in this folder, from manifests/licenses.yaml."""
    lines = ["# Licenses of the sources in this dataset", "",
             "Each row keeps the license of the source it comes from (the `license` column holds its key). medmat "
             "itself adds QA text, splits and metadata; the images and labels remain under the sources' terms.", "",
             "| source | license key | license | SPDX | redistribution | pixels in a publishable build |",
             "|---|---|---|---|---|---|"]
    for sid in sources:
        src = registry.sources[sid]
        lic = registry.licenses.licenses[src.license]
        lines.append(f"| [{_cell(src.name)}]({src.homepage}) (`{sid}`) | `{src.license}` | "
                     f"[{_cell(lic.name)}]({src.license_url or lic.url}) | {lic.spdx or '-'} | "
                     f"{lic.redistribution.value} | {'yes' if src.redistributable else 'no'} |")
    path = hub / LICENSE_FILE
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def loading_example(repo_id: str | None, config: str) -> list[str]:
    if repo_id:
        return ["```python", "from datasets import load_dataset", "",
                f'ds = load_dataset("{repo_id}", "{config}")', 'print(ds["train"][0]["question_choice"])', "```"]
    return ["```python", "from datasets import load_dataset", "",
            f'ds = load_dataset("path/to/OUT/hub", "{config}")  # this folder, built locally',
            'print(ds["train"][0]["question_choice"])', "```"]


def write_card(registry: Registry, contents: HubContents, hub: Path, repo_id: str | None = None,
               figures: bool = False) -> Path:
    """README.md and LICENSES.md; with `figures`, also assets/mat-coverage.png and a montage per subset. Without,
    matplotlib is never imported (drawing is about half the hub stage) and the card says how to get them."""
    sources = built_sources(registry, contents)
    for old in sorted((hub / "assets").glob("*.png")):  # a rebuild must not keep an earlier build's pixels
        old.unlink()
    if figures:
        from .figures import coverage_figure

        built_counts = {sid: sum(c.num_examples.values()) for c in contents.configs
                        for sid in [c.name.removeprefix("subset-")] if c.name == f"subset-{sid}"}
        coverage_figure(registry, built_counts, hub / "assets" / "mat-coverage.png")
    write_licenses(registry, sources, hub)
    default = next((c.name for c in contents.configs if c.name.startswith("subset-")), "subset-02")
    lines = ["---", yaml.safe_dump(card_yaml(registry, contents), sort_keys=False, allow_unicode=True).rstrip(),
             "---", "", "# Med-MAT, rebuilt from the original sources", ""]
    lines += pixels_notice(registry, contents, repo_id)
    lines += ["Med-MAT ([Cai et al., ACL 2025](https://aclanthology.org/2025.acl-long.639/), "
              f"[arXiv:{ARXIV_ID}](https://arxiv.org/abs/{ARXIV_ID})) turns public medical-imaging datasets into "
              "multiple-choice VQA organised by **MAT triplet** (Modality, Anatomical area, Task). This repository "
              "was built by medmat from the original archives; every row follows one schema "
              f"({len(FIELDS)} columns, the same in every config; see the Parquet files' schema or `ds.features`).",
              "", f"`{default}` is the default config; `load_dataset` needs a config name for the others.", ""]
    lines += loading_example(repo_id, default)
    lines += ["", "Licenses differ per source: see *Sources, licenses and access* below and "
              f"[{LICENSE_FILE}]({LICENSE_FILE}). Croissant metadata: [croissant.json](croissant.json).", "",
              "## MAT coverage", "", "![MAT coverage](assets/mat-coverage.png)" if figures else FIGURES_HINT, "",
              "## Configs", "", "| config | train | test | how it was made |", "|---|---|---|---|"]
    for c in contents.configs:
        lines.append(f"| `{c.name}` | {c.num_examples.get('train', 0)} | {c.num_examples.get('test', 0)} | "
                     f"{_cell(c.description)} |")
    if contents.skipped_cg:
        lines += ["", "CG experiments without a config here:", ""]
        lines += [f"- `cg-{cid}`: {why}" for cid, why in sorted(contents.skipped_cg.items())]

    if contents.split_stats:
        lines += ["", "## Splits", "", "How each subset was split (rules: medmat's docs/splits.md):", ""]
        lines += split_stats_markdown(contents.split_stats)
    lines += [""]
    if figures:  # the Samples section is montages only: without figures, the hint under MAT coverage stands for it
        from .figures import montage

        lines += ["## Samples", ""]
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

    lines += ["## Sources, licenses and access", "",
              "| row | source | subset | access | license | pixels here |", "|---|---|---|---|---|---|"]
    for sid in sources:
        src = registry.sources[sid]
        lic = registry.licenses.licenses[src.license]
        subset = registry.subset_of(sid)[0].id
        here = "yes" if src.redistributable else ("no: rebuild locally" if contents.publishable else
                                                  "yes (local build only: not redistributable)")
        lines.append(f"| {src.upstream.row} | [{_cell(src.name)}]({src.homepage}) | {subset} | {src.access.kind.value} "
                     f"| [{_cell(lic.name)}]({src.license_url or lic.url}) | {here} |")
    restricted = [s for s in sources if not registry.sources[s].redistributable]
    if restricted:
        lines += ["", "### Rebuilding pixels that may not be redistributed", "",
                  ("Rows of these sources carry QA, labels, metadata and `pixel_sha256` but no pixels; their "
                   "`pixels_withheld` column says so. " if contents.publishable else
                   "In a publishable build, rows of these sources carry QA, labels, metadata and `pixel_sha256` but no "
                   "pixels. ") + "Rebuild them from your own copy (the hashes check it is the same data):", "",
                  "```bash", f"medmat download {' '.join(restricted)} --data-dir DATA   # follow the printed steps",
                  f"medmat build {' '.join(restricted)} --data-dir DATA --out OUT", "```"]
    lines += ["", "## Build", "", f"Built by medmat {__version__}; report format {REPORT_FORMAT_VERSION} "
              "(release notes: medmat's docs/release-notes.md).", ""]
    lines += ["", "## Citations", "", "Cite Med-MAT and every source you use:", "", "```bibtex", PAPER_CITATION, ""]
    lines += [registry.sources[s].citation.strip() + "\n" for s in sources]
    lines += ["```", ""]
    path = hub / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
