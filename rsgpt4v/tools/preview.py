"""`rsgpt4v preview`: a static HTML gallery of a sample of a build's records, to look at before paying
for the full run.

The build folder's JSONL files are streamed and N records reservoir-sampled with a seeded generator,
so the page is deterministic and memory stays flat however large the build. DEST/index.html carries
its CSS and JS inline and DEST/images/ holds the sampled records' images (hard-linked, else copied),
so the folder opens offline and can be zipped.

Boxes are drawn from the box text each record actually contains, decoded back to pixels with the
record's own `meta.box_format` and `meta.box_space` (LLaVA's padded square or the image), not from
`meta.boxes`: a wrong conversion shows as a misplaced box. GeoChat boxes are drawn at their angle.
Bad lines and missing images are listed on the page and in the report; nothing is fatal.
"""

from __future__ import annotations

import html
import json
import os
import random
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rsgpt4v.core.files import located, place_file, write_atomic
from rsgpt4v.core.paths import is_within
from rsgpt4v.records.boxtext import Shape, flavour, parse_shape
from rsgpt4v.records.model import IMAGE_TOKEN, box_text_fault, first_problem
from rsgpt4v.records.reader import image_header, image_outside, read_records


class PreviewError(Exception):
    """Nothing to preview: the folder holds no JSONL files."""


@dataclass
class PreviewReport:
    """What `preview` wrote; `problems` are `FILE:LINE: reason` lines, bad lines first."""

    index: Path
    shown: int
    total: int
    boxes: int
    bad_lines: list[str] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.bad_lines + self.missing_images


@dataclass
class _Item:
    file_no: int
    file: Path
    line: int
    record: dict[str, Any]


def _shape_error(obj: Any) -> str | None:
    """Why `obj` is not a record the page can show, or None: a fault against the record contract, or
    what the page needs beyond it (labels to show, box text it can draw)."""
    problem = first_problem(obj)
    if problem:
        return problem
    for key in ("task", "source", "split"):
        if not isinstance(obj.get(key), str):
            return f"record has no string {key!r}"
    fault = box_text_fault(obj.get("meta"))
    return str(fault) if fault else None


def _records(files: list[Path], bad: list[str]) -> Iterator[_Item]:
    """Every well-formed record of `files` as an _Item, streamed; the others go to `bad`."""
    for file_no, path in enumerate(files):
        for line, obj, reason in read_records(path):
            reason = reason or _shape_error(obj)
            if reason:
                bad.append(located(path, line, reason))
                continue
            yield _Item(file_no, path, line, obj)


def _sample(files: list[Path], n: int, seed: int, bad: list[str]) -> tuple[list[_Item], int]:
    """Reservoir sample (algorithm R) of `n` records, back in file order; also the number of records seen."""
    rng = random.Random(seed)
    kept: list[_Item] = []
    total = 0
    for total, item in enumerate(_records(files, bad), 1):
        if len(kept) < n:
            kept.append(item)
        else:
            j = rng.randrange(total)
            if j < n:
                kept[j] = item
    kept.sort(key=lambda it: (it.file_no, it.line))
    return kept, total


class _Images:
    """Places source images under DEST/images/, each once, under names that cannot collide."""

    def __init__(self, dest: Path) -> None:
        self.root = dest / "images"
        self.names: dict[Path, str] = {}
        self.taken: set[str] = set()

    def place(self, src: Path, rel: str) -> str:
        """The image's URL relative to index.html."""
        key = src.resolve()
        if key not in self.names:
            name = self._free_name(rel)
            self.taken.add(name)
            self.names[key] = name
            place_file(key, self.root / name)
        return "images/" + quote(self.names[key])

    def _free_name(self, rel: str) -> str:
        parts = Path(rel).parts
        if parts and parts[0] == "images":
            parts = parts[1:]
        # Paths that could climb out of DEST/images/ keep only their file name.
        if not parts or Path(rel).is_absolute() or ".." in parts:
            parts = (Path(rel).name or "image",)
        name = Path(*parts).as_posix()
        stem, suffix = os.path.splitext(name)
        k = 1
        while name in self.taken:
            k += 1
            name = f"{stem}-{k}{suffix}"
        return name


def _image_size(folder: Path, image: str) -> tuple[int, int] | str:
    """Width and height from the file header of a record's image, or why it cannot be shown: missing,
    unreadable, over the build's pixel limit, or (absolute, or climbing out with `..`) outside the
    folder, which is never copied into the gallery."""
    if image_outside(image):
        return "is outside the data folder"
    try:
        return image_header(folder / image)
    except FileNotFoundError:
        return "not found"
    except OSError as exc:
        return f"cannot be read ({exc})"


@dataclass
class _Box:
    n: int
    text: str
    shape: Shape | None


def _find_boxes(record: dict[str, Any], size: tuple[int, int] | None) -> list[_Box]:
    """The box strings of the conversation in order of appearance, decoded to pixels (in the record's
    box space: on LLaVA's padded square, or on the image) when the size is known."""
    meta = record["meta"]
    fmt, space = meta["box_format"], meta.get("box_space", "image")
    boxes = []
    for turn in record["conversations"]:
        for m in flavour(fmt).pattern.finditer(turn["value"]):
            shape = parse_shape(m.group(0), fmt, *size, space) if size else None
            boxes.append(_Box(len(boxes) + 1, m.group(0), shape))
    return boxes


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _text_html(text: str, fmt: str, numbers: list[int]) -> str:
    """Escaped turn text with `<image>` as a badge and each box string numbered; consumes `numbers`."""
    out, pos = [], 0
    for m in flavour(fmt).pattern.finditer(text):
        out.append(_plain_html(text[pos:m.start()]))
        n = numbers.pop(0)
        out.append(f'<span class="boxref" data-n="{n}"><b class="num">{n}</b><code>{_esc(m.group(0))}</code></span>')
        pos = m.end()
    out.append(_plain_html(text[pos:]))
    return "".join(out)


def _plain_html(text: str) -> str:
    return '<span class="token">&lt;image&gt;</span>'.join(_esc(part) for part in text.split(IMAGE_TOKEN))


def _box_html(box: _Box, w: int, h: int) -> str:
    assert box.shape is not None
    x1, y1, x2, y2 = box.shape.box
    left, right = sorted((x1, x2))
    top, bottom = sorted((y1, y2))
    # A box that leaves the image or has no area is a conversion bug worth seeing, not hiding.
    suspect = left < -0.5 or top < -0.5 or right > w + 0.5 or bottom > h + 0.5 or x2 <= x1 or y2 <= y1
    rotate = ""
    if box.shape.rect is not None and box.shape.rect[4]:
        # GeoChat's angle: its unrotated rectangle, turned about the centre (counter-clockwise on screen).
        cx, cy, rw, rh, theta = box.shape.rect
        left, top, right, bottom = cx - rw / 2, cy - rh / 2, cx + rw / 2, cy + rh / 2
        rotate = f";transform:rotate({-theta:g}deg)"
    style = (f"left:{left / w * 100:.3f}%;top:{top / h * 100:.3f}%;"
             f"width:{(right - left) / w * 100:.3f}%;height:{(bottom - top) / h * 100:.3f}%{rotate}")
    title = f"{box.n}: {box.text} = pixels [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}]"
    return (f'<div class="box{" suspect" if suspect else ""}" data-n="{box.n}" style="{style}" '
            f'title="{_esc(title)}"><span class="label">{box.n}</span></div>')


def _meta_html(record: dict[str, Any], boxes: list[_Box]) -> str:
    meta = record["meta"]
    facts = [("box format", meta["box_format"]), ("box space", meta.get("box_space", "image")),
             ("boxes in text", len(boxes))]
    if isinstance(meta.get("boxes"), list):
        facts.append(("meta.boxes", len(meta["boxes"])))
    facts += [(key, meta[key]) for key in ("window", "source_image", "gsd", "model") if key in meta]
    rows = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(json.dumps(v) if isinstance(v, list) else v)}</dd>"
                   for k, v in facts)
    full = _esc(json.dumps(meta, ensure_ascii=False, sort_keys=True, indent=1))
    return f'<dl class="meta">{rows}</dl><details><summary>meta</summary><pre>{full}</pre></details>'


def _card_html(item: _Item, images: _Images, missing: list[str]) -> tuple[str, int]:
    """One record's article, and the number of boxes drawn on its image."""
    rec = item.record
    src = item.file.parent / rec["image"]
    size = _image_size(item.file.parent, rec["image"])
    if isinstance(size, str):
        missing.append(f"{item.file}:{item.line}: image {rec['image']} {size}")
        boxes = _find_boxes(rec, None)
        figure = (f'<figure class="frame missing"><div class="placeholder">image {_esc(size)}<br>'
                  f'<code>{_esc(rec["image"])}</code></div></figure>')
        drawn = 0
    else:
        w, h = size
        boxes = _find_boxes(rec, size)
        url = images.place(src, rec["image"])
        drawn_boxes = "".join(_box_html(b, w, h) for b in boxes)
        figure = (f'<figure class="frame" title="click to enlarge"><img src="{_esc(url)}" width="{w}" '
                  f'height="{h}" alt="{_esc(rec["image"])}">{drawn_boxes}</figure>')
        drawn = len(boxes)
    numbers = [b.n for b in boxes]
    fmt = rec["meta"]["box_format"]
    turns = "".join(f'<div class="turn {t["from"]}"><span class="who">{t["from"]}</span>'
                    f'<div class="text">{_text_html(t["value"], fmt, numbers)}</div></div>'
                    for t in rec["conversations"])
    head = (f'<header><code class="id">{_esc(rec["id"])}</code><span class="tag task">{_esc(rec["task"])}</span>'
            f'<span class="tag">{_esc(rec["source"])}</span><span class="tag">{_esc(rec["split"])}</span>'
            f'<span class="where">{_esc(item.file.name)}:{item.line}</span></header>')
    article = (f'<article class="record" data-id="{_esc(rec["id"])}" data-task="{_esc(rec["task"])}" '
               f'data-source="{_esc(rec["source"])}" data-boxes="{len(boxes)}">{head}'
               f'<div class="body">{figure}<div class="side"><div class="conversation">{turns}</div>'
               f'{_meta_html(rec, boxes)}</div></div></article>')
    return article, drawn


def _filter_html(kind: str, counts: Counter[str]) -> str:
    boxes = "".join(f'<label><input type="checkbox" data-filter="{kind}" value="{_esc(v)}" checked> '
                    f'{_esc(v)} <small>({n})</small></label>' for v, n in sorted(counts.items()))
    return f'<fieldset><legend>{kind}</legend>{boxes}</fieldset>'


def _problems_html(bad: list[str], missing: list[str]) -> str:
    if not bad and not missing:
        return ""
    items = "".join(f'<li class="problem" data-kind="{kind}">{_esc(p)}</li>'
                    for kind, group in (("bad-line", bad), ("missing-image", missing)) for p in group)
    return (f'<details id="problems" open><summary>{len(bad)} bad lines, {len(missing)} missing images</summary>'
            f'<ul>{items}</ul></details>')


_CSS = """
:root{--box:#ff00d4;--ink:#1d232b;--mute:#5d6773;--line:#d5dae0;--bg:#f3f5f7;--human:#e8f0fb;--gpt:#fff;}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
.top{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);padding:8px 16px;
 display:flex;flex-wrap:wrap;gap:6px 18px;align-items:center}
.top h1{font-size:16px;margin:0 8px 0 0}
.top fieldset{border:0;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:2px 10px;align-items:center}
.top legend{float:left;font-weight:600;margin-right:4px}
.top label{white-space:nowrap;cursor:pointer}
.top small,.where,.meta dt{color:var(--mute)}
#status{margin-left:auto;color:var(--mute);white-space:nowrap}
#problems{margin:12px 16px;background:#fff4f2;border:1px solid #f0b8ad;border-radius:6px;padding:8px 12px}
#problems summary{font-weight:600;color:#a3271a;cursor:pointer}
#problems ul{margin:6px 0 0;padding-left:20px;font:12px/1.5 ui-monospace,Menlo,Consolas,monospace}
main{padding:12px 16px;display:grid;gap:14px;align-items:start;
 grid-template-columns:repeat(auto-fill,minmax(min(100%,620px),1fr))}
.record{background:#fff;border:1px solid var(--line);border-radius:8px;overflow:hidden}
.record[hidden]{display:none}
.record header{display:flex;flex-wrap:wrap;gap:6px;align-items:center;padding:6px 12px;
 border-bottom:1px solid var(--line);background:#fafbfc}
.id{font-size:12px;font-weight:600;margin-right:4px;word-break:break-all}
.tag{font-size:12px;padding:0 7px;border-radius:9px;background:#e6e9ed}
.tag.task{background:#dff3e4;color:#1b6b35}
.where{margin-left:auto;font-size:12px}
.body{display:grid;grid-template-columns:minmax(0,300px) minmax(0,1fr);gap:12px;padding:10px}
@media (max-width:560px){.body{grid-template-columns:1fr}}
.frame{position:relative;margin:0;align-self:start;line-height:0;background:#000;cursor:zoom-in}
.record.wide{grid-column:1/-1}
.record.wide .body{grid-template-columns:minmax(0,820px) minmax(0,1fr)}
.record.wide .frame{cursor:zoom-out}
.frame img{display:block;width:100%;height:auto}
.frame.missing{aspect-ratio:1;background:repeating-linear-gradient(45deg,#eee 0 10px,#e2e2e2 10px 20px);line-height:1.4}
.placeholder{position:absolute;inset:0;display:flex;flex-direction:column;align-items:center;justify-content:center;
 text-align:center;color:#a3271a;font-weight:600;padding:12px;word-break:break-all}
.box{position:absolute;border:2px solid var(--box);box-shadow:0 0 0 1px rgba(0,0,0,.55)}
.box.suspect{border-style:dashed}
.box .label{position:absolute;left:-2px;top:-2px;transform:translateY(-100%);background:var(--box);color:#fff;
 font:700 11px/14px system-ui,sans-serif;padding:0 4px;border-radius:3px 3px 3px 0;text-shadow:0 0 2px #000}
.box.hl,.boxref.hl{outline:3px solid #ffe600}
.box.hl{z-index:2}
.side{min-width:0;display:flex;flex-direction:column;gap:8px}
.conversation{display:flex;flex-direction:column;gap:6px;max-height:420px;overflow:auto}
.turn{border:1px solid var(--line);border-radius:6px;padding:6px 10px;background:var(--gpt)}
.turn.human{background:var(--human);border-color:#c8d8ef}
.who{display:block;font-size:11px;font-weight:700;text-transform:uppercase;letter-spacing:.04em;color:var(--mute)}
.turn.human .who{color:#2a5ea8}
.turn.gpt .who{color:#1b6b35}
.text{white-space:pre-wrap;overflow-wrap:anywhere}
.token{display:inline-block;font:600 11px/16px ui-monospace,monospace;background:#5b4bc4;color:#fff;
 border-radius:3px;padding:0 5px;vertical-align:1px}
.boxref{white-space:nowrap;border-radius:3px;cursor:default}
.boxref .num{display:inline-block;min-width:16px;text-align:center;font:700 11px/15px system-ui,sans-serif;
 background:var(--box);color:#fff;border-radius:3px;margin-right:2px;text-shadow:0 0 2px #000}
.boxref code{font-size:12.5px;background:#fdf0fb;padding:0 2px;border-radius:2px}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:0 10px;margin:0;font-size:12px}
.meta dd{margin:0;word-break:break-all}
details pre{font-size:11px;max-height:240px;overflow:auto;background:#f6f8fa;padding:6px;margin:4px 0 0}
details summary{cursor:pointer;font-size:12px;color:var(--mute)}
"""

_JS = """
(function(){
  var status = document.getElementById('status');
  var imgs = document.querySelectorAll('.record img');
  var loaded = 0, broken = 0;
  function show(){
    status.dataset.imagesLoaded = loaded;
    status.dataset.imagesBroken = broken;
    document.getElementById('images').textContent =
      loaded + '/' + imgs.length + ' images loaded' + (broken ? ', ' + broken + ' broken' : '');
  }
  function done(img, ok){
    if (img.dataset.loaded || img.dataset.broken) return;
    if (ok) { img.dataset.loaded = '1'; loaded++; } else { img.dataset.broken = '1'; broken++; }
    show();
  }
  imgs.forEach(function(img){
    if (img.complete) done(img, img.naturalWidth > 0);
    else {
      img.addEventListener('load', function(){ done(img, true); });
      img.addEventListener('error', function(){ done(img, false); });
    }
  });
  status.dataset.boxes = document.querySelectorAll('.record .box').length;
  show();

  function checked(kind){
    var on = {};
    document.querySelectorAll('input[data-filter="' + kind + '"]:checked').forEach(function(i){ on[i.value] = 1; });
    return on;
  }
  function filter(){
    var tasks = checked('task'), sources = checked('source'), n = 0;
    document.querySelectorAll('.record').forEach(function(r){
      var on = !!(tasks[r.dataset.task] && sources[r.dataset.source]);
      r.hidden = !on;
      n += on;
    });
    document.getElementById('shown').textContent = n;
  }
  document.querySelectorAll('input[data-filter]').forEach(function(i){ i.addEventListener('change', filter); });
  filter();

  // Clicking an image widens its record to full width, to check small boxes.
  document.querySelectorAll('.frame').forEach(function(f){
    f.addEventListener('click', function(){ f.closest('.record').classList.toggle('wide'); });
  });

  // Hovering a numbered box string lights up its rectangle, and the other way round.
  function pair(el){
    var rec = el.closest('.record'), n = el.dataset.n;
    return rec.querySelectorAll('.box[data-n="' + n + '"], .boxref[data-n="' + n + '"]');
  }
  document.querySelectorAll('.box, .boxref').forEach(function(el){
    el.addEventListener('mouseenter', function(){ pair(el).forEach(function(x){ x.classList.add('hl'); }); });
    el.addEventListener('mouseleave', function(){ pair(el).forEach(function(x){ x.classList.remove('hl'); }); });
  });
})();
"""


def _page(title: str, cards: list[str], items: list[_Item], total: int, n_files: int, seed: int, boxes: int,
          bad: list[str], missing: list[str]) -> str:
    tasks = Counter(it.record["task"] for it in items)
    sources = Counter(it.record["source"] for it in items)
    status = (f'<div id="status" data-records="{len(items)}" data-images="{len(items) - len(missing)}" '
              f'data-images-loaded="0" data-images-broken="0" data-boxes="{boxes}" data-missing="{len(missing)}" '
              f'data-bad-lines="{len(bad)}"><span id="shown">{len(items)}</span> of {len(items)} shown '
              f'(sample of {total} records in {n_files} files, seed {seed}) · <span id="images"></span></div>')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{_esc(title)}</title><style>{_CSS}</style></head><body>'
            f'<div class="top"><h1>{_esc(title)}</h1>{_filter_html("task", tasks)}{_filter_html("source", sources)}'
            f'{status}</div>{_problems_html(bad, missing)}<main>\n' + "\n".join(cards) +
            f'\n</main><script>{_JS}</script></body></html>\n')


def preview(out: Path, dest: Path, n: int = 200, seed: int = 0, files: list[Path] | None = None) -> PreviewReport:
    """Write DEST/index.html and DEST/images/ for a seeded sample of `n` records of OUT/*.jsonl (or `files`)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    out, dest = Path(out), Path(dest)
    files = [Path(f) for f in files] if files is not None else sorted(out.glob("*.jsonl"))
    if not files:
        raise PreviewError(f"{out} holds no *.jsonl files: not an rsgpt4v output folder")
    if is_within(dest, out):
        raise PreviewError(f"--out {dest} is inside the build folder {out}: preview never writes into a folder it "
                           "reads; choose another --out")
    bad: list[str] = []
    items, total = _sample(files, n, seed, bad)
    images = _Images(dest)
    missing: list[str] = []
    cards, boxes = [], 0
    for item in items:
        card, drawn = _card_html(item, images, missing)
        cards.append(card)
        boxes += drawn
    index = dest / "index.html"
    page = _page(f"rsgpt4v preview: {out.name or out}", cards, items, total, len(files), seed, boxes, bad, missing)
    write_atomic(index, page.encode("utf-8"))
    return PreviewReport(index=index, shown=len(items), total=total, boxes=boxes, bad_lines=bad,
                         missing_images=missing)


def main_preview(out: Path, dest: Path, n: int, seed: int) -> int:
    """The `rsgpt4v preview` command: 0 when clean, 1 when there were bad lines or missing images."""
    try:
        report = preview(out, dest, n=n, seed=seed)
    except PreviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in report.problems:
        print(problem, file=sys.stderr)
    print(f"wrote {report.shown} records to {report.index} ({len(report.missing_images)} with missing images, "
          f"{len(report.bad_lines)} bad lines)")
    return 1 if report.problems else 0
