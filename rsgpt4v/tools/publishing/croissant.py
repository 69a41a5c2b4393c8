"""DEST/croissant.json: the `hf` export described in Croissant 1.1 (MLCommons' JSON-LD metadata for ML
datasets, which dataset venues ask for), from the same facts as the dataset card.

The dataset's name, description, licences (one per source, as its authors state them), date,
keywords, citation (RS-GPT4V's BibTeX and every source's) and the sources it is based on; the
Hub page as `url` when the export is pushed there. Each data file is a FileObject with its SHA-256
(Croissant requires a checksum per file); the records are read through a FileSet of those files:
`id`, `image`, `conversations` (repeated `from`/`value`), `task`, `source`, `split` (a reference
to the `splits` record set) and `meta`. In the Parquet form `image` is the image itself (the
`bytes` of its struct); in the JSON Lines form it is the image's path relative to DEST.

`mlcroissant validate --jsonld DEST/croissant.json` checks it (the tests do, and read its records).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from rsgpt4v.core.card_facts import RSGPT4V_CITATION, RSGPT4V_URL
from rsgpt4v.core.files import file_sha256
from rsgpt4v.tools.publishing.publication import TAGS, Publication

CROISSANT = "croissant.json"
_CONFORMS_TO = "http://mlcommons.org/croissant/1.1"
# mlcroissant's own @context (mlcroissant/_src/core/rdf.py make_context): any other is "not standard".
_CONTEXT: dict[str, Any] = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    **{k: f"cr:{k}" for k in ("equivalentProperty", "samplingRate", "citeAs", "column", "containedIn", "excludes",
                              "extract", "field", "fileProperty", "fileObject", "fileSet", "format", "includes",
                              "isLiveDataset", "jsonPath", "key", "md5", "parentField", "path", "recordSet",
                              "references", "regex", "repeated", "replace", "separator", "source", "subField",
                              "transform")},
    "conformsTo": "dct:conformsTo",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "examples": {"@id": "cr:examples", "@type": "@json"},
}
_FILES = "data-files"
_RECORDS = "records"
_SPLITS = "splits"


def _name(pub: Publication) -> str:
    if pub.repo:
        return pub.repo.rsplit("/", 1)[-1]
    return "rsgpt4v-" + "-".join(re.sub(r"[^a-z0-9]+", "-", n) for n in pub.facts)[:80].strip("-")


def _field(name: str, data_type: str, column: str, **transform: str) -> dict[str, Any]:
    source: dict[str, Any] = {"fileSet": {"@id": _FILES}, "extract": {"column": column}}
    if transform:
        source["transform"] = transform
    return {"@type": "cr:Field", "@id": f"{_RECORDS}/{name}", "name": name, "dataType": data_type, "source": source}


def _licences(pub: Publication) -> list[dict[str, Any]]:
    licences = []
    for f in pub.facts.values():
        work = {"@type": "sc:CreativeWork", "name": f"{f.title}: {f.license.name}"}
        if f.license.link:
            work["url"] = f.license.link
        licences.append(work)
    return licences


def croissant(pub: Publication) -> dict[str, Any]:
    """The JSON-LD document for the export folder `pub.dest`."""
    files = [p for paths in pub.data_files.values() for p in paths]
    mime = "application/x-parquet" if pub.form.parquet else "application/jsonlines"
    distribution: list[dict[str, Any]] = [
        {"@type": "cr:FileObject", "@id": p.relative_to(pub.dest).as_posix(), "name": p.name,
         "contentUrl": p.relative_to(pub.dest).as_posix(), "encodingFormat": mime, "sha256": file_sha256(p)}
        for p in files]
    distribution.append({"@type": "cr:FileSet", "@id": _FILES, "name": _FILES, "encodingFormat": mime,
                         "includes": "data/*.parquet" if pub.form.parquet else "*.jsonl"})
    image = (_field("image", "sc:ImageObject", "image", jsonPath="bytes") if pub.form.parquet
             else _field("image", "sc:Text", "image"))
    split = {**_field("split", "sc:Text", "split"), "references": {"field": {"@id": f"{_SPLITS}/name"}}}
    turns = {"@type": "cr:Field", "@id": f"{_RECORDS}/conversations", "name": "conversations", "repeated": True,
             "subField": [{**_field(f"conversations/{k}", "sc:Text", "conversations", jsonPath=k), "name": k}
                          for k in ("from", "value")]}
    records = {"@type": "cr:RecordSet", "@id": _RECORDS, "name": _RECORDS, "key": {"@id": f"{_RECORDS}/id"},
               "field": [_field("id", "sc:Text", "id"), image, turns, _field("task", "sc:Text", "task"),
                         _field("source", "sc:Text", "source"), split, _field("meta", "sc:Text", "meta")]}
    splits = {"@type": "cr:RecordSet", "@id": _SPLITS, "name": _SPLITS, "dataType": "cr:Split",
              "key": {"@id": f"{_SPLITS}/name"},
              "field": [{"@type": "cr:Field", "@id": f"{_SPLITS}/name", "name": "name", "dataType": "sc:Text"}],
              "data": [{f"{_SPLITS}/name": s} for s in pub.data_files]}
    citations = [RSGPT4V_CITATION, *(f.citation for f in pub.facts.values() if f.citation)]
    doc: dict[str, Any] = {
        "@context": _CONTEXT, "@type": "sc:Dataset", "conformsTo": _CONFORMS_TO, "name": _name(pub),
        "description": f"{pub.title}: {pub.tally.total} instruction-following records (image, multi-turn "
                       f"conversation, task, source) in the manner of RS-GPT4V ({RSGPT4V_URL}), made with rsgpt4v.",
        "license": _licences(pub), "datePublished": pub.date, "keywords": TAGS,
        "citeAs": "\n\n".join(citations),
        "isBasedOn": [{"@type": "sc:Dataset", "name": f.title, **({"url": f.homepage} if f.homepage else {})}
                      for f in pub.facts.values()],
        "distribution": distribution, "recordSet": [splits, records]}
    if pub.url:
        doc["url"] = pub.url
    return doc


def write_croissant(pub: Publication) -> Path:
    path = pub.dest / CROISSANT
    path.write_text(json.dumps(croissant(pub), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
