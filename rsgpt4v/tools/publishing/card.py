"""The dataset card of an `hf` export: DEST/README.md, DEST/LICENSE.md and the figures it shows.

README.md opens with the YAML front matter the Hub reads (licence, task categories, tags, size,
language, pretty name, source datasets, and `configs` mapping each split to its files), checked
against the Hub's vocabularies (`core.hub_terms.check_front_matter`) before it is written. Its body:
how to load the folder, records per source and task (the exported rows, counted), answer lengths
with the two figures (`rsgpt4v.tools.publishing.figures`), how the data was made (model, prompt digests, date,
requests and cost, QC, failures, input issues, leakage), each source's licence, known limitations,
and the BibTeX of RS-GPT4V and of every source present. LICENSE.md lists each source's terms as its
authors state them: the duties of whoever publishes the data.

Everything comes from a `Publication` (`rsgpt4v.tools.publishing.publication`): the rows and the build's manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rsgpt4v import __version__
from rsgpt4v.core.card_facts import RSGPT4V_CITATION, RSGPT4V_CITATION_FROM, RSGPT4V_URL, UNKNOWN, CardFacts
from rsgpt4v.core.hub_terms import check_front_matter
from rsgpt4v.tools.publishing.figures import ANSWER_LENGTHS, TASK_MIX, answer_lengths, task_mix
from rsgpt4v.tools.publishing.hf_folder import shard_glob
from rsgpt4v.tools.publishing.publication import LICENSE_FILE, TAGS, Publication


class CardError(Exception):
    """Front matter the Hub would refuse; the message lists why."""


def front_matter(pub: Publication) -> dict[str, Any]:
    """The card's YAML metadata, in the order the Hub's template writes it."""
    meta: dict[str, Any] = {"pretty_name": pub.title, "license": pub.licence.id}
    if pub.licence.name:
        meta["license_name"] = pub.licence.name
        meta["license_link"] = pub.licence.link
    meta |= {"language": ["en"], "task_categories": pub.task_categories, "tags": TAGS,
             "size_categories": [pub.size_category], "source_datasets": [f.title for f in pub.facts.values()]}
    files = [{"split": split, "path": shard_glob(split) if pub.form.parquet else f"{split}.jsonl"}
             for split in pub.data_files]
    meta["configs"] = [{"config_name": "default", "data_files": files}]
    return meta


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    return [*lines, *("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows), ""]


def _counts(pub: Publication) -> list[str]:
    t = pub.tally
    tasks, sources = t.tasks(), t.sources()
    cells = t.by(0, 1)
    by_task, by_source = t.by(1), t.by(0)
    rows: list[list[object]] = [[s, *(cells.get((s, k), 0) for k in tasks), by_source[(s,)]] for s in sources]
    rows.append(["**total**", *(by_task[(k,)] for k in tasks), t.total])
    splits = t.by(2)
    return ["## Contents", "",
            f"{t.total:,} records: one per (image window, task) with one or more question/answer turns. Records per "
            "source and task:", "",
            *_table(["source", *tasks, "total"], rows),
            "Records per split:", "",
            *_table(["split", "records"], [[s, splits[(s,)]] for s in t.splits()])]


def _lengths(pub: Publication) -> list[str]:
    rows = []
    for task in pub.tally.tasks():
        h = pub.tally.answer_words.get(task)
        if h is not None and h.n:
            rows.append([task, h.n, h.mean(), h.percentile(50), h.percentile(95), h.max()])
    return ["## Task mix and answer lengths", "",
            f"![Records per task, split by source]({TASK_MIX})", "",
            f"![Answer length in words per task: median and 95th percentile]({ANSWER_LENGTHS})", "",
            "Answer lengths in words (every answer turn of every record):", "",
            *_table(["task", "answers", "mean", "median", "p95", "max"], rows)]


def _loading(pub: Publication) -> list[str]:
    where = pub.repo or "path/to/this/folder"
    image = ("an `Image` holding the image file's own bytes" if pub.form.parquet
             else "the path of the image under `images/`, relative to this folder")
    boxes = ", ".join(f"`{fmt}` boxes in `{space}` space" for fmt, space in sorted(pub.tally.boxes))
    return ["## Loading", "",
            "```python", "import datasets", "", f'ds = datasets.load_dataset("{where}")', "```", "",
            f"Data files: {pub.form.why}.", "",
            f"Each row: `id`, `image` ({image}), `conversations` (alternating `human`/`gpt` turns, `<image>` at the "
            "start of the first), `task`, `source`, `split`, and `meta`: a JSON string holding the box format and "
            f"space of the text ({boxes}), the pixel boxes in the order the text names them with their polygons, "
            "categories and difficulty, and the provenance (source image, window, model, prompt digest).", ""]


def _made(pub: Publication) -> list[str]:
    m = pub.manifest
    lines = ["## How it was made", ""]
    if m is None:
        return [*lines, "The build folder held no manifest.json: how the records were made is not known.", ""]
    u = m.usage
    built_from = f"recipe {m.source.removeprefix('recipe:')}, seed {m.recipe.seed}" if m.recipe else f"source {m.source}"
    cost = (f"${u.cost_usd:,.2f} at the price table of {u.prices_date}" if u.priced
            else f"not priced (the price table of {u.prices_date} has no price for `{m.model}`)")
    rejected = m.qc.rejected if m.qc else {}
    kinds = " (" + ", ".join(f"{k} {r.count:,}" for k, r in rejected.items()) + ")" if rejected else ""
    left_out = (f" ({pub.left_out:,} could not be written in the export's box format and were left out)"
                if pub.left_out else "")
    lines += [f"- Built by rsgpt4v {m.rsgpt4v_version} ({built_from}), backend `{m.backend}`, model `{m.model}`; "
              f"this card written on {pub.date} by rsgpt4v {__version__}.",
              f"- Requests: {u.api_calls:,} sent, {u.cache_hits:,} answered from the cache; {u.prompt_tokens:,} "
              f"prompt and {u.completion_tokens:,} completion tokens; cost {cost}.",
              f"- Quality control: {sum(r.count for r in rejected.values()):,} records rejected{kinds}; "
              f"{m.failures.count:,} model answers failed and made no record.",
              f"- Input: {m.counts.samples:,} images read, {m.issues.skipped:,} input entries skipped and "
              f"{m.issues.warnings:,} warnings (listed in the build's manifest.json).",
              f"- Records: {m.counts.records:,} built, {pub.tally.total:,} exported{left_out}."]
    for model in sorted({model for model, _ in pub.tally.verdicts}):
        verdicts = {v: n for (judge, v), n in sorted(pub.tally.verdicts.items()) if judge == model}
        lines.append(f"- Judge `{model}`: {sum(verdicts.values()):,} exported records checked against their image ("
                     + ", ".join(f"{verdict} {n:,}" for verdict, n in verdicts.items()) + ").")
    if m.leakage is not None:
        dropped = sum(m.leakage.dropped_from_train.values())
        lines.append(f"- Leakage guard (`{m.leakage.policy}`): {m.leakage.images:,} images fingerprinted, "
                     f"{m.leakage.clusters:,} clusters of the same picture across sources and splits, {dropped:,} "
                     "training images dropped because another source evaluates on them.")
    lines.append("")
    if m.prompts is not None:
        digests = [[k, f"`{v}`"] for k, v in sorted(m.prompts.sha.items())]
        lines += ["Prompt files and their digests (the `prompt_sha` in each record's meta names the one used):", "",
                  *_table(["prompt", "sha256 (first 16 hex)"], digests)]
    return lines


def _licence_row(name: str, f: CardFacts) -> list[object]:
    lic = f.license
    named = lic.name if lic.id in (UNKNOWN, "other") or lic.name == lic.id else f"{lic.name} (`{lic.id}`)"
    if lic.link:
        named = f"[{named}]({lic.link})"
    return [f"{f.title} (`{name}`)", named + (" (second-hand)" if lic.second_hand else ""), lic.stated_in,
            f.images or ""]


def _licences(pub: Publication) -> list[str]:
    own = f"`{pub.licence.id}`" + (f" ([{pub.licence.name}]({pub.licence.link}))" if pub.licence.name else "")
    rows = [_licence_row(n, f) for n, f in pub.facts.items()]
    return ["## Licences", "",
            f"This card's licence: {own}. The records redistribute images and annotations of the datasets below, "
            f"each under its own terms as its authors state them; [{LICENSE_FILE}]({LICENSE_FILE}) lists them. "
            "Whoever publishes or uses this data must respect each.", "",
            *_table(["source", "licence", "as stated in", "images"], rows), _generated_text(pub), ""]


def _generated_text(pub: Publication) -> str:
    if pub.mock:
        return ("The instructions and answers were written by rsgpt4v's offline mock model (`--dry-run`): placeholder "
                "text, not training data.")
    if pub.manifest is None or not pub.model_written:
        return "No record text was written by a model: the texts are the sources' own, in template instructions."
    return (f"Instructions and answers were written by `{pub.manifest.model}`: the terms its provider sets for "
            "model outputs apply to them as well.")


def _limitations(pub: Publication) -> list[str]:
    items = []
    if pub.mock:
        items.append("**Not training data.** The records were written by the offline mock model of `rsgpt4v build "
                     "--dry-run`: they show the format, not the content, of a real build.")
    if pub.model_written and not pub.mock:
        items.append("Model-written text (descriptions, region notes, dialogues) can state what the image does not "
                     "show. The rule checks compare counts, boxes and categories with the annotations and refuse "
                     "refusals; they do not judge every claim.")
    unknown = [f.title for f in pub.facts.values() if f.license.id == UNKNOWN]
    if unknown:
        items.append(f"No licence is stated by the authors of {', '.join(unknown)}: ask them before redistributing.")
    second = [f.title for f in pub.facts.values() if f.license.second_hand]
    if second:
        items.append(f"The licence of {', '.join(second)} was read second-hand (another project quoting the authors): "
                     "check it at the source.")
    if pub.unstated:
        items.append(f"The manifest gives no card facts for {', '.join(pub.unstated)} (a plugin adapter or an older "
                     "build): their licence and citation are unknown here.")
    m = pub.manifest
    if m is not None and m.leakage is None:
        items.append("Built from one source: no check for the same picture in another dataset's evaluation split.")
    if m is not None and not m.finished:
        items.append(f"The build did not finish (status `{m.status}`): the records are a part of it.")
    if pub.left_out:
        items.append(f"{pub.left_out:,} records of the build are not in this export (their boxes could not be written "
                     "in its box format; `rsgpt4v export` names them).")
    if not pub.form.parquet:
        items.append("The images are files beside JSON Lines: the Hub's viewer shows no pictures.")
    items.append("Boxes are normalised as the box format says (`meta.box_format`, `meta.box_space`); a trainer "
                 "expecting another convention will misplace them.")
    return ["## Known limitations", "", *(f"- {item}" for item in items), ""]


def _citations(pub: Publication) -> list[str]:
    lines = ["## Citation", "", f"RS-GPT4V, whose construction this data follows ([arXiv]({RSGPT4V_URL})):", "",
             "```bibtex", RSGPT4V_CITATION, "```", "", f"(From {RSGPT4V_CITATION_FROM}.)", "",
             "And every source dataset present:", ""]
    for name, f in pub.facts.items():
        lines.append(f"**{f.title}** (`{name}`)" + (f", {f.homepage}" if f.homepage else "")
                     + (f", version {f.version}" if f.version else "") + ":")
        lines.append("")
        if f.citation:
            lines += ["```bibtex", f.citation, "```", "", f"(BibTeX {f.citation_from}.)", ""]
        else:
            lines += [f"No citation known: {f.citation_from}.", ""]
    return lines


def readme(pub: Publication) -> str:
    """README.md's text; CardError when the front matter would not pass the Hub's checks."""
    meta = front_matter(pub)
    problems = check_front_matter(meta)
    if problems:
        raise CardError("the dataset card's front matter would be refused: " + "; ".join(problems))
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    sources = ", ".join(f"{f.title} (`{n}`)" for n, f in pub.facts.items())
    intro = (f"Instruction-following records for remote-sensing multimodal LLMs, in the manner of RS-GPT4V (Xu et al., "
             f"2024), built with rsgpt4v from {sources}.")
    warning = (["> **Not training data**: written by rsgpt4v's offline mock model (`--dry-run`).", ""]
               if pub.mock else [])
    body = [f"# {pub.title}", "", *warning, intro, "", *_loading(pub), *_counts(pub), *_lengths(pub), *_made(pub),
            *_licences(pub), *_limitations(pub), *_citations(pub)]
    return f"---\n{head}---\n\n" + "\n".join(body).rstrip("\n") + "\n"


def licence_file(pub: Publication) -> str:
    """LICENSE.md: each source's terms as its authors state them, and those of the generated text."""
    lines = ["# Licences of this dataset's parts", "",
             "This dataset redistributes images and annotations of the datasets below. Each keeps its own terms, "
             "as its authors state them; whoever publishes or uses this dataset must respect every one of them. "
             "Where no licence is stated, none is granted: ask the authors.", ""]
    for name, f in pub.facts.items():
        lic = f.license
        lines += [f"## {f.title} (`{name}`)", "",
                  f"- Licence: {lic.name}" + (f" <{lic.link}>" if lic.link else "") + f" (Hub id `{lic.id}`)",
                  f"- As stated in: {lic.stated_in}" + (" (second-hand: check it at the source)" if lic.second_hand
                                                         else "")]
        if f.images:
            lines.append(f"- Images: {f.images}")
        if f.homepage:
            lines.append(f"- Homepage: {f.homepage}")
        lines.append("")
    lines += ["## Generated text", "", _generated_text(pub), ""]
    return "\n".join(lines)


def write_card(pub: Publication) -> list[Path]:
    """README.md, LICENSE.md and the two figures under the export folder; the paths written."""
    texts = {LICENSE_FILE: licence_file(pub), "README.md": readme(pub)}  # CardError before anything is written
    written = [task_mix(pub.tally, pub.dest / TASK_MIX), answer_lengths(pub.tally, pub.dest / ANSWER_LENGTHS)]
    for name, text in texts.items():
        path = pub.dest / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
