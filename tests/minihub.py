"""Small MAT datasets and hub folders for the export/import and publish tests (no dependency on the builder).

Rows follow the MAT schema exactly and carry QA in the upstream text format, written out literally here so the
tests check medmat's code against the format rather than against itself.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import yaml
from datasets import Dataset
from PIL import Image

from medmat.mat.schema import MAT_FEATURES

INSTRUCTION = "Answer with the option's letter from the given choices directly."

# subset -> (task type, labels, [(source id, upstream row)])
SUBSETS = {
    "03": ("single-label", ["COVID-19", "Normal", "Pneumonia"], [("src-ct-a", 3), ("src-ct-b", 4)]),
    "10": ("multi-label", ["Cataract", "Glaucoma", "Myopia", "Drusen", "Normal"], [("src-fundus", 41)]),
}


def _png(seed: int) -> bytes:
    image = Image.new("L", (8, 8), color=seed % 256)
    image.putpixel((seed % 8, (seed // 8) % 8), 255 - seed % 256)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _qa(sample: int, labels: list[str], vocabulary: list[str], multi: bool) -> dict:
    answer = ", ".join(labels) if labels else "Normal"
    pool = [v for v in vocabulary if v != answer]
    options = [answer] + pool[: 3]
    shift = sample % len(options)  # the answer moves around the letters
    options = options[shift:] + options[:shift]
    letter = "ABCD"[options.index(answer)]
    question = "List all conditions in this fundus image." if multi else f"What does this CT scan show? (case {sample})"
    choice = question + "".join(f"\n{'ABCD'[i]}: {o}" for i, o in enumerate(options)) + "\n" + INSTRUCTION
    return {"question": question, "answer": answer, "options": options, "question_choice": choice,
            "answer_choice": letter}


def mat_rows(per_source: int = 6) -> list[dict]:
    """Rows of two subsets from three sources, train and test, with nested original paths."""
    rows, n = [], 0
    for subset, (task_type, vocab, sources) in SUBSETS.items():
        multi = task_type == "multi-label"
        for source_id, row_no in sources:
            for i in range(per_source):
                n += 1
                if multi:
                    labels = [[], ["Cataract", "Glaucoma"], ["Myopia"]][i % 3]
                else:
                    labels = [vocab[i % len(vocab)]]
                source_labels = [label.lower().replace("-", "") for label in labels]
                image = _png(n)
                path = f"images/{'train' if i % 3 else 'test'}/{labels[0] if labels else 'none'}/img_{i:03d}.png"
                rows.append({
                    "id": f"{source_id}/{path}", "source_id": source_id, "source_row": row_no, "subset": subset,
                    "modality": "FP" if multi else "CT", "area": "fundus" if multi else "lung",
                    "task": "eye-diseases" if multi else "covid-19", "task_element": "Diseases" if multi else "State",
                    "task_type": task_type, "image": {"bytes": image, "path": None}, "volume": None, "view": None,
                    "labels": labels, "source_labels": source_labels, "boxes": [], "mask": None,
                    "split": "test" if i % 3 == 0 else "train", "original_split": None,
                    "group_id": f"{source_id}-p{i // 2}", "pixel_sha256": hashlib.sha256(image).hexdigest(),
                    "phash": f"{n:016x}", "width": 8, "height": 8, "depth": None, "spacing": [0.5, 0.5],
                    "original_path": path, "license": "cc-by-4.0", **_qa(n, labels, vocab, multi),
                    "pixels_withheld": None,
                })
    return rows


def write_parquet(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows, features=MAT_FEATURES).to_parquet(str(path))
    return path


def write_hub_folder(root: Path, rows: list[dict] | None = None) -> Path:
    """OUT/hub as the builder lays it out: data/subset-NN/<split>/<source-id>-00000.parquet and a README
    whose YAML declares `subset-NN` and `source-<id>` configs."""
    rows = mat_rows() if rows is None else rows
    configs = []
    for subset, (_, _, sources) in SUBSETS.items():
        for split in ("train", "test"):
            for source_id, _ in sources:
                part = [r for r in rows
                        if (r["subset"], r["split"], r["source_id"]) == (subset, split, source_id)]
                if part:
                    write_parquet(part, root / "data" / f"subset-{subset}" / split / f"{source_id}-00000.parquet")
        configs.append({"config_name": f"subset-{subset}", "data_files": [
            {"split": s, "path": f"data/subset-{subset}/{s}/*.parquet"} for s in ("train", "test")]})
        for source_id, _ in sources:
            configs.append({"config_name": f"source-{source_id}", "data_files": [
                {"split": s, "path": f"data/subset-{subset}/{s}/{source_id}-*.parquet"} for s in ("train", "test")]})
    header = yaml.safe_dump({"license": "other", "configs": configs}, sort_keys=False)
    (root / "README.md").write_text(f"---\n{header}---\n\n# Med-MAT (test)\n\nA tiny hub folder.\n")
    return root
