"""croissant.json: the hub folder described in MLCommons Croissant 1.1 (JSON-LD), the metadata format the Hugging
Face Hub generates for its datasets and that the NeurIPS datasets track asks for.

One `cr:FileObject` for the repository when `repo_id` is known (a local folder has none: its file sets are then
read relative to croissant.json, so `mlcroissant` can read the records of a local build); per config,
one `cr:FileSet` (the Parquet files its `data_files` name, each split's files listed in its description), a
`cr:Split` record set of its split names and a `cr:RecordSet` of its rows whose fields are the MAT columns with
their descriptions (the `split` column references the split names), as the Hub lays out its own Croissant files. Types map as the Hub
maps them: strings to `sc:Text`, fixed-width numbers to `cr:Int16`/`cr:Int32`/`cr:Float32`, lists to
`isArray`, structs to `subField`s, `Image` columns to `sc:ImageObject` (the `bytes` of the stored struct). Croissant
has no NIfTI type: `volume` has `subField`s `bytes` (the gzipped NIfTI-1 file, typed `sc:Text`, which
Croissant readers return as raw bytes, plus the schema.org `sc:MediaObject` it is) and `path`, and its
description says how to decode it (nibabel, or `datasets.Nifti`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from datasets import Image, List, Nifti, Value

from .. import __version__
from ..mat.schema import FIELDS
from ..registry.loader import Registry
from .assemble import HubContents
from .card import ARXIV_ID, LICENSE_FILE, PAPER_CITATION, PRETTY_NAME, built_sources

CROISSANT_FILE = "croissant.json"
CONFORMS_TO = "http://mlcommons.org/croissant/1.1"
# The JSON-LD context of Croissant 1.1, as the Croissant spec and the Hub's generated files write it.
CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "arrayShape": "cr:arrayShape", "citeAs": "cr:citeAs",
    "column": "cr:column", "conformsTo": "dct:conformsTo", "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/", "data": {"@id": "cr:data", "@type": "@json"},
    "dataBiases": "cr:dataBiases", "dataCollection": "cr:dataCollection",
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"}, "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty", "rai": "http://mlcommons.org/croissant/RAI/",
    "samplingRate": "cr:samplingRate",
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract", "field": "cr:field",
    "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet",
    "format": "cr:format", "includes": "cr:includes", "isArray": "cr:isArray", "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path",
    "personalSensitiveInformation": "cr:personalSensitiveInformation", "recordSet": "cr:recordSet",
    "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated", "replace": "cr:replace",
    "sc": "https://schema.org/", "separator": "cr:separator", "source": "cr:source", "subField": "cr:subField",
    "transform": "cr:transform",
}
_VALUE_TYPES = {"string": "sc:Text", "int16": "cr:Int16", "int32": "cr:Int32", "int64": "cr:Int64",
                "float32": "cr:Float32", "float64": "cr:Float64", "bool": "sc:Boolean"}
_DESCRIPTIONS = {name: text for name, _, text in FIELDS}
_NIFTI_NOTE = (" Croissant has no NIfTI type: `bytes` holds a gzipped NIfTI-1 file (read it with nibabel, or load the "
               "config with `datasets`, whose Nifti feature decodes it).")


def _id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _field(fid: str, name: str, feature, source: dict, description: str | None = None) -> dict:
    """A cr:Field for one feature reading `source`: subFields for structs (each through a jsonPath), isArray for
    lists, sc:ImageObject for images (their `bytes`)."""
    out = {"@type": "cr:Field", "@id": fid, "name": name}
    if description:
        out["description"] = description
    if isinstance(feature, List):
        inner = _field(fid, name, feature.feature, source)  # the element's type, source or sub-fields
        return out | {k: v for k, v in inner.items() if k not in out} | {"isArray": True, "arrayShape": "-1"}
    if isinstance(feature, Image):
        return out | {"dataType": "sc:ImageObject", "source": _with_path(source, "bytes")}
    if isinstance(feature, Nifti):
        return out | {"subField": [
            {"@type": "cr:Field", "@id": f"{fid}/bytes", "name": "bytes", "dataType": ["sc:Text", "sc:MediaObject"],
             "description": "the gzipped NIfTI-1 file (application/gzip) as raw bytes", "source": _with_path(source, "bytes")},
            {"@type": "cr:Field", "@id": f"{fid}/path", "name": "path", "dataType": "sc:Text",
             "source": _with_path(source, "path")}]}
    if isinstance(feature, dict):
        return out | {"subField": [_field(f"{fid}/{key}", key, sub, _with_path(source, key))
                                   for key, sub in feature.items()]}
    if isinstance(feature, Value):
        return out | {"dataType": _VALUE_TYPES.get(feature.dtype, "sc:Text"), "source": source}
    raise TypeError(f"no Croissant mapping for {feature!r}")


def _with_path(source: dict, key: str) -> dict:
    path = source.get("transform", {}).get("jsonPath")
    return {**source, "transform": {"jsonPath": f"{path}.{key}" if path else key}}


def record_sets_of(config: str, splits: list[str], fileset: str) -> list[dict]:
    """The config's split names (a `cr:Split` record set, as the Hub writes it) and its rows, one field per MAT
    column; `split` references the split names."""
    rid, sid = _id(config), _id(f"{config}_splits")
    split_names = {"@type": "cr:RecordSet", "dataType": "cr:Split", "@id": sid, "name": sid,
                   "description": f"Splits of config {config}.", "key": {"@id": f"{sid}/split_name"},
                   "field": [{"@type": "cr:Field", "@id": f"{sid}/split_name", "name": "split_name",
                              "dataType": "sc:Text"}],
                   "data": [{f"{sid}/split_name": split} for split in splits]}
    fields = []
    for name, feature, text in FIELDS:
        description = text + (_NIFTI_NOTE if isinstance(feature, Nifti) else "")
        source = {"fileSet": {"@id": fileset}, "extract": {"column": name}}
        field = _field(f"{rid}/{name}", name, feature, source, description)
        if name == "split":
            field["references"] = {"field": {"@id": f"{sid}/split_name"}}
        fields.append(field)
    rows = {"@type": "cr:RecordSet", "@id": rid, "name": rid, "description": f"The rows of config {config}.",
            "field": fields}
    return [split_names, rows]


def croissant(registry: Registry, contents: HubContents, repo_id: str | None = None) -> dict:
    sources = built_sources(registry, contents)
    licenses = sorted({str(registry.sources[s].license_url or registry.licenses.licenses[registry.sources[s].license].url)
                       for s in sources})
    # The Hub's own form: the git repo, its sha256 a pointer to the spec issue on hashing repositories.
    repo = {"@type": "cr:FileObject", "@id": "repo", "name": "repo", "description": "The Hugging Face git repository.",
            "contentUrl": f"https://huggingface.co/datasets/{repo_id}/tree/main", "encodingFormat": "git+https",
            "sha256": "https://github.com/mlcommons/croissant/issues/80"}
    # A local folder's file sets have no `containedIn`: Croissant readers then read them relative to this file.
    distribution, record_sets = ([repo] if repo_id else []), []
    for config in contents.configs:
        fileset = _id(f"parquet-files-for-config-{config.name}")
        patterns = [p for split in config.data_files for p in config.data_files[split]]
        distribution.append({"@type": "cr:FileSet", "@id": fileset, "name": fileset,
                             "description": "Parquet files of config " + config.name + ": " + "; ".join(
                                 f"{split}: {', '.join(files)}" for split, files in config.data_files.items()),
                             **({"containedIn": {"@id": "repo"}} if repo_id else {}),
                             "encodingFormat": "application/x-parquet",
                             "includes": patterns if len(patterns) > 1 else patterns[0]})
        record_sets += record_sets_of(config.name, list(config.data_files), fileset)
    url = f"https://huggingface.co/datasets/{repo_id}" if repo_id else f"https://arxiv.org/abs/{ARXIV_ID}"
    return {
        "@context": CONTEXT, "@type": "sc:Dataset", "conformsTo": CONFORMS_TO, "name": _id(PRETTY_NAME),
        "alternateName": ["Med-MAT"],
        "description": ("Med-MAT (Cai et al., ACL 2025) rebuilt from its original public sources by medmat: "
                        "medical-imaging VQA organised by MAT triplet (Modality, Anatomical area, Task), with "
                        "per-subset, per-source and compositional-generalisation configs."
                        + (" Rows of sources whose licenses forbid republishing carry no pixels "
                           "(see `pixels_withheld`)." if contents.publishable else
                           " A local build: it holds pixels that may not be republished.")),
        "url": url, "version": __version__, "sameAs": f"https://arxiv.org/abs/{ARXIV_ID}", "citeAs": PAPER_CITATION,
        "license": licenses, "keywords": ["medical", "visual question answering", "compositional generalization",
                                          "Med-MAT", f"arXiv:{ARXIV_ID}"],
        "inLanguage": "en", "isBasedOn": [str(registry.sources[s].homepage) for s in sources],
        "usageInfo": f"Licenses differ per source: see {LICENSE_FILE} and the `license` column of every row.",
        "distribution": distribution, "recordSet": record_sets,
    }


def write_croissant(registry: Registry, contents: HubContents, hub: Path, repo_id: str | None = None) -> Path:
    path = Path(hub) / CROISSANT_FILE
    # Compact: with ~300 configs of 32 fields each, indentation alone would add megabytes.
    path.write_text(json.dumps(croissant(registry, contents, repo_id), separators=(",", ":"), ensure_ascii=False)
                    + "\n", encoding="utf-8")
    return path
