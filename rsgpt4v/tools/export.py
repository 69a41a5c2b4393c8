"""`rsgpt4v export`: write a finished build folder again for a model family, without an API call.

Every record keeps its boxes in `meta` (pixel box, polygon, category, difficulty, in the order the
text names them), so changing the box flavour or space is a text substitution: the runs of boxes
of `meta.box_format` (with their category labels and separators) are found in the conversation,
checked to be exactly as many boxes as `meta.boxes`, and written again by `boxtext` in the new
flavour and space. A record whose count disagrees, or whose box cannot be written (outside its
image), is not exported but reported as `FILE:LINE: reason`, as is every unreadable line.

Formats, one output file per split, written as a stream and renamed into place when complete:

- `llava-json`   DEST/<split>.json, one JSON list: LLaVA's `--data_path` training file. Records keep
                 task/source/split/meta beside id/image/conversations; LLaVA's loader ignores them.
- `llava-jsonl`  DEST/<split>.jsonl, the same records one per line.
- `sharegpt`     DEST/<split>.jsonl of {"id", "images": [image], "messages": [{"role", "content"}]},
                 roles user/assistant, `<image>` left at the start of the first user message, and
                 DEST/dataset_info.json with one LLaMA-Factory entry per split (`dataset_info`),
                 checked against LLaMA-Factory's parser.py (entry keys), converter.py (sharegpt roles,
                 images joined to `media_dir`) and hparams (`media_dir` defaults to `dataset_dir`).
- `hf`           a folder `datasets.load_dataset` reads and the Hub shows: Parquet shards with the
                 images embedded when pyarrow is installed (the `hf` extra), else JSON Lines with
                 image paths (`rsgpt4v.tools.publishing.hf_folder` says which and why); the dataset card
                 (README.md, LICENSE.md, figures/; `rsgpt4v.tools.publishing.card`) and croissant.json
                 (`rsgpt4v.tools.publishing.croissant`), from the rows written and the build's manifest.

`meta` is a JSON string in every format: its keys and value types vary with the source and the
split (an unlabelled test split has no boxes; some sources have no gsd), and `datasets` infers the
first split's types for all of them ("Couldn't cast list<double> to null" otherwise).

Except for the hf export's Parquet, which carries each image's bytes, the referenced images are
hard-linked (copied across file systems) to the same relative path under DEST, so DEST is
self-contained; an image already there with the same size and modification time, or the same file,
is left alone.

When the build has a split named `test`, DEST/eval/ also gets LLaVA's `model_vqa` evaluation pair:
`test_questions.jsonl` ({"question_id", "image", "text", "category"}: the record id, its image
relative to DEST, the first human turn without the `<image>\\n` prefix, the task) and
`test_answers.jsonl` ({"question_id", "image", "text", "category"}: the first gpt answer in
"text", beside its question's image and task, so a reference answer can be scored, or grouped by
image or task, without the question file). Verified against haotian-liu/LLaVA
llava/eval/model_vqa.py: it reads each question line's "question_id", "image" (joined to
--image-folder, so pass DEST) and "text", and prepends `<image>\\n` itself (hence the prefix is
removed); it writes answers keyed "question_id" with the model's reply in "text", the keys a scorer
pairs our reference answers by. "category" is not read by model_vqa.py; LLaVA's GPT-review scripts
(llava/eval/eval_gpt_review*.py) read it from the question lines.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from rsgpt4v.core.files import dumps, jsonl_writer, located, place_file
from rsgpt4v.core.hub_terms import SPLIT_NAME
from rsgpt4v.core.paths import is_within
from rsgpt4v.core.schema import RecordBox
from rsgpt4v.records.boxtext import (
    MENTION_TASKS,
    TASK_TOKENS,
    RenderError,
    check_space,
    fill,
    flavour,
    to_placeholders,
)
from rsgpt4v.records.model import box_text_fault, first_problem
from rsgpt4v.records.reader import finite_box, finite_number, image_header, image_outside, read_records
from rsgpt4v.records.writer import box_meta, meta_boxes
from rsgpt4v.tools.publishing.card import CardError
from rsgpt4v.tools.publishing.hf_folder import HfForm, ShardedParquet, hf_form, hf_row
from rsgpt4v.tools.publishing.publication import Tally
from rsgpt4v.tools.publishing.publish import HubError, describe, push_to_hub

FORMATS = ("llava-json", "llava-jsonl", "sharegpt", "hf")
_ROLES = {"human": "user", "gpt": "assistant"}
_IMAGE_PREFIX = "<image>\n"
DATASET_INFO_PREFIX = "rsgpt4v"


class ExportError(Exception):
    """An export that cannot start (bad arguments or not a build folder); the message says why."""


class _Unusable(Exception):
    """A well-formed record that is not exported; the message is the reason reported after FILE:LINE."""


@dataclass
class ExportReport:
    """What an export wrote and what it left out."""

    dest: Path
    fmt: str
    box_format: str | None
    box_space: str | None = None
    records: dict[str, int] = field(default_factory=dict)  # split -> records written
    data_files: dict[str, list[Path]] = field(default_factory=dict)  # split -> the files holding it
    form: HfForm | None = None  # hf: the form its data files take, and why
    tally: Tally = field(default_factory=Tally)  # hf: the rows written, counted for the dataset card
    files: list[Path] = field(default_factory=list)  # every file written, in writing order
    images_linked: int = 0  # images linked or copied to DEST
    images_present: int = 0  # images found already in place
    bad_lines: int = 0  # not JSON, not an object, or a record of the wrong shape
    skipped: int = 0  # well-formed records that could not be exported faithfully
    problems: list[str] = field(default_factory=list)  # "FILE:LINE: reason", in reading order


def _shape_error(obj: Any) -> str | None:
    """The first thing keeping the record from an export, or None: a fault against the record
    contract, or what an export needs beyond it (an image inside the folder, box text it can parse)."""
    problem = first_problem(obj)
    if problem:
        return problem
    outside = image_outside(obj["image"])
    if outside:
        return f"record of the wrong shape: {outside}"
    fault = box_text_fault(obj.get("meta"))
    if fault:
        return str(fault)
    boxes = obj["meta"].get("boxes")
    if not isinstance(boxes, list) or not all(finite_box(b) for b in boxes):
        return "record of the wrong shape: meta.boxes is not a list of [x1, y1, x2, y2]"
    return None


@lru_cache(maxsize=4096)
def _header_size(path: Path) -> tuple[int, int]:
    # Only the header is read; the pixels are never decoded. Bounded, so memory stays flat.
    return image_header(path)


def _image_size(record: dict[str, Any], image: Path) -> tuple[int, int]:
    """The size of the record's image: from meta.window when present (the builder crops exactly it)."""
    window = record["meta"].get("window")
    if isinstance(window, list) and len(window) == 4 and all(finite_number(v) for v in window):
        w, h = window[2] - window[0], window[3] - window[1]
        if w > 0 and h > 0:
            return int(w), int(h)
    try:
        return _header_size(image)
    except OSError as exc:
        raise _Unusable(f"image {record['image']} cannot be read ({exc})") from None


@dataclass(frozen=True)
class _Target:
    """How records are written: box flavour and space (None: as each record was built), task tokens."""

    box_format: str | None
    box_space: str | None
    task_tokens: bool


def _rebox(record: dict[str, Any], target: _Target, width: int, height: int) -> dict[str, Any]:
    """The record with its boxes written again from meta, for a `width` x `height` image.

    The source flavour's box runs (with their category labels and separators) become placeholders,
    which the target flavour fills from meta. Raises _Unusable when the text holds a different number
    of boxes than meta lists, or a box cannot be written in the target flavour.
    """
    meta = record["meta"]
    source = flavour(meta["box_format"])
    try:
        boxes = meta_boxes(meta)
    except ValueError as exc:
        raise _Unusable(str(exc)) from None
    to = flavour(target.box_format or meta["box_format"])
    frame = to.frame(width, height, target.box_space or meta.get("box_space", "image"))
    mention = record.get("task") in MENTION_TASKS
    phrases = [b.label for b in boxes] if mention else None
    templates, found = [], 0
    for turn in record["conversations"]:
        value = _strip_task_token(turn["value"]) if turn["from"] == "human" else turn["value"]
        try:
            text, found = to_placeholders(value, source, found, phrases)
        except ValueError as exc:
            raise _Unusable(f"a grounded description's {exc}") from None
        templates.append(text)
    if found != len(boxes):
        raise _Unusable(f"{found} {source.name} box strings in the text but {len(boxes)} in meta.boxes")
    named = {f"b{i}": box for i, box in enumerate(boxes)}
    used: list[RecordBox] = []
    conversations = []
    token = TASK_TOKENS.get(record.get("task")) if target.task_tokens else None
    try:
        for turn, text in zip(record["conversations"], templates):
            value = fill(text, named, to, frame, turn["from"] == "gpt", used, mention)
            if token and turn["from"] == "human":
                value = _with_task_token(value, token)
            conversations.append({**turn, "value": value})
    except RenderError as exc:
        raise _Unusable(f"a box cannot be written as {to.name}: {exc}") from None
    return {**record, "conversations": conversations, "meta": {**meta, **box_meta(used, to.name, frame.space)}}


def _strip_task_token(text: str) -> str:
    head = _IMAGE_PREFIX if text.startswith(_IMAGE_PREFIX) else ""
    rest = text[len(head):]
    for token in set(TASK_TOKENS.values()):
        if rest.startswith(token + " "):
            return head + rest[len(token) + 1:]
    return text


def _with_task_token(text: str, token: str) -> str:
    """GeoChat's task token at the start of the instruction, after the `<image>` line."""
    head = _IMAGE_PREFIX if text.startswith(_IMAGE_PREFIX) else ""
    return f"{head}{token} {text[len(head):]}"


def _llava(record: dict[str, Any]) -> dict[str, Any]:
    # meta as a JSON string: its keys and value types vary with the source and with the split (no boxes
    # in an unlabelled test split, no gsd), and `datasets` takes one split's inferred types for all.
    return {**record, "meta": dumps(record["meta"])}


def _sharegpt(record: dict[str, Any]) -> dict[str, Any]:
    messages = [{"role": _ROLES[t["from"]], "content": t["value"]} for t in record["conversations"]]
    return {"id": record["id"], "images": [record["image"]], "messages": messages}


class _Sink:
    """One output file, written beside its final name and renamed into place by `finish`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def finish(self) -> list[Path]:
        self._close()
        os.replace(self.partial, self.path)
        return [self.path]

    def abandon(self) -> None:
        self._close()
        self.partial.unlink(missing_ok=True)


class _JsonLines(_Sink):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._w = jsonl_writer(self.partial)

    def add(self, row: dict[str, Any]) -> None:
        self._w.write(row)

    def _close(self) -> None:
        self._w.close()


class _JsonList(_Sink):
    """A JSON list written element by element, so a split never has to fit in memory."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._f: IO[str] = open(self.partial, "w", encoding="utf-8", newline="\n")
        self._f.write("[\n")
        self._first = True

    def add(self, row: dict[str, Any]) -> None:
        self._f.write(("" if self._first else ",\n") + dumps(row))
        self._first = False

    def _close(self) -> None:
        if not self._f.closed:
            self._f.write("\n]\n")
        self._f.close()


def _embedded(out: Path, image: str) -> dict[str, Any]:
    """The hf Parquet's image cell: the file's own bytes; _Unusable when they cannot be read."""
    try:
        return {"bytes": (out / image).read_bytes(), "path": image}
    except OSError as exc:
        raise _Unusable(f"image {image} cannot be read ({exc.strerror or exc})") from None


def _sink(fmt: str, out: Path, dest: Path, split: str, form: HfForm | None
          ) -> tuple[_Sink | ShardedParquet, Callable[[dict[str, Any]], dict[str, Any]]]:
    """The file(s) a split goes to in `fmt`, and how a record becomes one of its rows."""
    if fmt == "llava-json":
        return _JsonList(dest / f"{split}.json"), _llava
    if fmt == "llava-jsonl":
        return _JsonLines(dest / f"{split}.jsonl"), _llava
    if fmt == "sharegpt":
        return _JsonLines(dest / f"{split}.jsonl"), _sharegpt
    if form is not None and form.parquet:
        return ShardedParquet(dest, split), lambda r: hf_row(r, _embedded(out, r["image"]))
    return _JsonLines(dest / f"{split}.jsonl"), lambda r: hf_row(r, r["image"])


class _EvalFiles:
    """LLaVA model_vqa question and reference-answer files for the test split."""

    def __init__(self, dest: Path) -> None:
        self.questions = _JsonLines(dest / "eval" / "test_questions.jsonl")
        self.answers = _JsonLines(dest / "eval" / "test_answers.jsonl")

    def add(self, record: dict[str, Any]) -> None:
        conv = record["conversations"]
        question = next(t["value"] for t in conv if t["from"] == "human")
        answer = next((t["value"] for t in conv if t["from"] == "gpt"), "")
        self.questions.add({"question_id": record["id"], "image": record["image"],
                            "text": question.removeprefix(_IMAGE_PREFIX), "category": record.get("task")})
        self.answers.add({"question_id": record["id"], "image": record["image"], "text": answer,
                          "category": record.get("task")})

    def finish(self) -> list[Path]:
        return [*self.questions.finish(), *self.answers.finish()]

    def abandon(self) -> None:
        self.questions.abandon()
        self.answers.abandon()


def _exported(item: dict[str, Any], image: Path, target: _Target) -> dict[str, Any]:
    """The record as exported; _Unusable naming why it cannot be: its image missing or unreadable
    (a name too long for the file system among them), or numbers no image frame can hold."""
    try:
        if not image.is_file():
            raise _Unusable(f"image {item['image']} not found")
        width, height = _image_size(item, image)
        return _rebox(item, target, width, height)
    except OSError as exc:
        raise _Unusable(f"image {item['image'][:80]}{'...' if len(item['image']) > 80 else ''} cannot be read "
                        f"({exc.strerror or exc})") from None
    except (ArithmeticError, ValueError) as exc:
        raise _Unusable(f"numbers out of range in its boxes or window ({exc})") from None


def _place(image: Path, dest: Path) -> bool:
    """The record's image at `dest` (see `place_file`); _Unusable when this one file cannot be placed,
    OSError when nothing can be written (the disk full, the folder read-only)."""
    try:
        return place_file(image, dest)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise
        raise _Unusable(f"image cannot be placed at {str(dest)[:120]} ({exc.strerror or exc})") from None


def _export_split(src: Path, out: Path, dest: Path, fmt: str, target: _Target, report: ExportReport) -> None:
    split = src.stem
    sink, to_row = _sink(fmt, out, dest, split, report.form)
    # The hf export's Parquet carries each image's bytes in its rows: no image files needed.
    link_images = not (report.form is not None and report.form.parquet)
    evals = _EvalFiles(dest) if split == "test" else None
    written = 0
    placed = None  # a window's records are consecutive: its image is placed once, not once per task
    try:
        for lineno, item, reason in read_records(src):
            reason = reason or _shape_error(item)
            if reason:
                report.bad_lines += 1
                report.problems.append(located(src, lineno, reason))
                continue
            image = out / item["image"]
            try:
                record = _exported(item, image, target)
                row = to_row(record)
                if link_images and item["image"] != placed:
                    if _place(image, dest / item["image"]):
                        report.images_linked += 1
                    else:
                        report.images_present += 1
                    placed = item["image"]
            except _Unusable as exc:
                report.skipped += 1
                report.problems.append(located(src, lineno, str(exc)))
                continue
            sink.add(row)
            if report.form is not None:
                report.tally.add(record)
            if evals is not None:
                evals.add(record)
            written += 1
    except BaseException:
        sink.abandon()
        if evals is not None:
            evals.abandon()
        raise
    report.data_files[split] = sink.finish()
    report.files.extend(report.data_files[split])
    if evals is not None:
        report.files.extend(evals.finish())
    report.records[split] = written


def dataset_info(report: ExportReport) -> dict[str, Any]:
    """LLaMA-Factory's `dataset_info.json` for a sharegpt export: one entry per split file.

    LLaMA-Factory joins each image path to `media_dir`, which defaults to `dataset_dir`, the folder
    holding dataset_info.json: with `dataset_dir` set to the export folder, `images/...` resolves.
    """
    entry = {"formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"},
             "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}
    return {f"{DATASET_INFO_PREFIX}_{split}": {"file_name": paths[0].relative_to(report.dest).as_posix(), **entry}
            for split, paths in report.data_files.items()}


def export(out: Path, dest: Path, fmt: str, box_format: str | None = None, box_space: str | None = None,
           task_tokens: bool = False, repo: str | None = None) -> ExportReport:
    """Export the build folder `out` to `dest` in `fmt`, boxes written again in `box_format` and
    `box_space` (None: as each record was built), with GeoChat's task tokens when `task_tokens`; an hf
    export's card names the Hub dataset `repo` when it is to be pushed there.
    Raises ExportError when the export cannot start."""
    out, dest = Path(out), Path(dest)
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    try:
        canonical = flavour(box_format).name if box_format is not None else None
        space = check_space(box_space) if box_space is not None else None
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    if task_tokens and canonical != "geochat":
        raise ExportError("--task-tokens are GeoChat's ([refer], [identify]): use them with --box-format geochat")
    splits = sorted(out.glob("*.jsonl")) if out.is_dir() else []
    if not splits:
        raise ExportError(f"{out}: no <split>.jsonl files in it, not an rsgpt4v output folder; give the --out "
                          "folder of a build")
    if is_within(dest, out):
        raise ExportError(f"--out {dest} is {'the' if dest.resolve() == out.resolve() else 'inside the'} build folder "
                          f"{out}: export never writes into a folder it reads; choose another --out")
    if fmt != "hf" and repo is not None:
        raise ExportError("--push-to-hub uploads an hf export: use it with --format hf")
    if fmt == "hf" and (bad := next((p for p in splits if not SPLIT_NAME.match(p.stem)), None)):
        raise ExportError(f"{bad}: split name {bad.stem!r} is not letters, digits and _, which `datasets` "
                          "requires of a split; rename the file")
    dest.mkdir(parents=True, exist_ok=True)
    report = ExportReport(dest=dest, fmt=fmt, box_format=canonical, box_space=space,
                          form=hf_form() if fmt == "hf" else None)
    target = _Target(canonical, space, task_tokens)
    for src in splits:
        _export_split(src, out, dest, fmt, target, report)
    if report.form is not None:
        try:
            report.files += describe(out, dest, report.form, report.data_files, report.tally, repo,
                                     report.bad_lines + report.skipped, report.problems)
        except CardError as exc:
            raise ExportError(str(exc)) from None
    if fmt == "sharegpt":
        info = dest / "dataset_info.json"
        info.write_text(json.dumps(dataset_info(report), indent=2) + "\n", encoding="utf-8")
        report.files.append(info)
    return report


def main_export(out: Path, dest: Path, fmt: str, box_format: str | None, box_space: str | None = None,
                task_tokens: bool = False, push_to: str | None = None, private: bool = False) -> int:
    """Run an export (and its upload to the Hub dataset `push_to`) and print its summary; 0 when every
    line was exported, 1 when some were not, 2 when the export could not start or the upload failed."""
    try:
        report = export(out, dest, fmt, box_format, box_space, task_tokens, push_to)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in report.problems:
        print(problem, file=sys.stderr)
    per_split = ", ".join(f"{split} {n}" for split, n in report.records.items())
    boxes = f"{report.box_format or 'built'} boxes in {report.box_space or 'built'} space"
    print(f"exported {sum(report.records.values())} records ({per_split}) as {fmt} with {boxes} to {dest}")
    if report.form is not None:
        print(f"form: {report.form.why}")
    print(f"images: {report.images_linked} linked or copied, {report.images_present} already in place")
    for path in report.files:
        print(f"  {path}")
    if push_to is not None:
        try:
            print(f"pushed to https://huggingface.co/datasets/{push_to}: {push_to_hub(dest, push_to, private)}")
        except HubError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if report.bad_lines or report.skipped:
        print(f"not exported: {report.bad_lines} bad lines, {report.skipped} records skipped (listed above)")
        return 1
    return 0
