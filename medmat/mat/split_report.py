"""Split statistics as text: `medmat info NN` and the dataset card (hub/split_stats.json holds the numbers).

Pure formatting of `medmat.mat.splits.split_statistics` output; imports nothing heavy, so the CLI stays fast.
"""

from __future__ import annotations


def split_stats_lines(stats: dict) -> list[str]:
    """One subset's statistics, a line per fact."""
    links = stats.get("links", {})
    near = stats.get("near_duplicates", {})
    lines = [
        f"samples {stats['samples']:,}: train {stats['splits']['train']:,}, test {stats['splits']['test']:,} "
        f"(test share {stats['test_share']:.1%})",
        f"components {stats['components']:,}; largest {stats['largest_component']:,} samples "
        f"({stats['largest_component_share']:.1%})",
        f"links: group {links.get('group', 0):,}, exact {links.get('exact', 0):,}, near {links.get('near', 0):,} "
        f"(pairs within {near.get('max_bits', '?')} bits {near.get('near_pairs_within_bits', 0):,}; tightened "
        f"{near.get('near_pairs_tightened', 0):,}, cut {near.get('near_pairs_cut', 0):,}, refused "
        f"{near.get('near_pairs_refused', 0):,}; identical-hash samples left unlinked "
        f"{near.get('identical_phash_samples_unlinked', 0):,}; cluster cap {near.get('cluster_cap', '?')})",
    ]
    for source, rule in stats.get("split_rules", {}).items():
        lines.append(f"rule {source}: " + ", ".join(f"{name} -> {side}" for name, side in rule.items()))
    for split in ("train", "test"):
        labels = stats.get("labels", {}).get(split, {})
        lines.append(f"labels {split}: " + (", ".join(f"{k} {v}" for k, v in labels.items()) or "none"))
    paper = stats.get("paper")
    if paper:
        lines.append(f"paper flavour: train {paper['splits']['train']:,}, test {paper['splits']['test']:,} "
                     f"({paper['test_per_label']} per label, balanced on {paper['balanced_on']})")
        if paper.get("test_labels_left_out"):
            lines.append("paper test leaves out: " + ", ".join(paper["test_labels_left_out"]))
    lines += [f"WARNING: {w}" for w in stats.get("warnings", [])]
    return lines


def split_stats_markdown(stats_by_subset: dict[str, dict]) -> list[str]:
    """A Markdown table of every subset's split statistics, then its warnings (for the card)."""
    lines = ["| Subset | Samples | Train | Test | Test share | Components | Largest component | Links group / exact / "
             "near | Paper train / test (per label) |", "|---|---|---|---|---|---|---|---|---|"]
    warnings = []
    for sid, s in sorted(stats_by_subset.items()):
        links, paper = s.get("links", {}), s.get("paper") or {}
        paper_cell = (f"{paper['splits']['train']:,} / {paper['splits']['test']:,} ({paper['test_per_label']})"
                      if paper else "")
        lines.append(f"| {sid} | {s['samples']:,} | {s['splits']['train']:,} | {s['splits']['test']:,} | "
                     f"{s['test_share']:.1%} | {s['components']:,} | {s['largest_component_share']:.1%} | "
                     f"{links.get('group', 0):,} / {links.get('exact', 0):,} / {links.get('near', 0):,} | {paper_cell} |")
        warnings += [f"- subset {sid}: {w}" for w in s.get("warnings", [])]
    return lines + ([""] + warnings if warnings else [])
