"""The dataset card's two figures, drawn with Pillow: the task mix (records per task, each bar split by
source) and the answer lengths (per task, the median answer in words with a whisker to the 95th
percentile).

Pillow and not matplotlib: it is already a dependency, two labelled bar charts need nothing more,
and the PNG bytes depend only on the counts (no embedded version or date), so an export made twice
is identical.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from rsgpt4v.tools.publishing.publication import Tally

TASK_MIX = "figures/task_mix.png"
ANSWER_LENGTHS = "figures/answer_lengths.png"

# Okabe-Ito's colour-blind-safe eight, then lighter companions for mixes of more sources.
_PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
            "#7FB8D8", "#F2CF7F", "#7FCEB9", "#EAAE7F", "#E5BCD3", "#AAD9F4", "#F7F1A1", "#7F7F7F"]
_WIDTH = 960
_ROW = 26
_PAD = 12
_TEXT = "#222222"
_GRID = "#DDDDDD"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _canvas(rows: int, title: str, legend_rows: int = 0) -> tuple[Image.Image, ImageDraw.ImageDraw, int]:
    top = _PAD + 28 + legend_rows * 22
    height = top + rows * _ROW + _PAD + 22
    image = Image.new("RGB", (_WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((_PAD, _PAD), title, fill=_TEXT, font=_font(16))
    return image, draw, top


def _axis(most: int) -> tuple[int, int]:
    """A round tick step (1, 2 or 5 times a power of ten) giving at most five intervals, and the axis
    end: the first multiple of the step at or past `most`."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor * 5 >= max(most, 1):
                end = -(-max(most, 1) // (step * factor)) * step * factor
                return step * factor, end
        step *= 10


def _scale(draw: ImageDraw.ImageDraw, left: int, right: int, top: int, bottom: int, most: int) -> int:
    """Gridlines at round values up to past `most`, labelled below the plot; the axis end."""
    font = _font(11)
    step, end = _axis(most)
    for value in range(0, end + 1, step):
        x = left + (right - left) * value / end
        draw.line([(round(x), top), (round(x), bottom)], fill=_GRID)
        label = f"{value:,}"
        draw.text((x - draw.textlength(label, font=font) / 2, bottom + 4), label, fill=_TEXT, font=font)
    return end


def task_mix(tally: Tally, path: Path) -> Path:
    """Records per task, longest first, each bar split by source in the order of the legend."""
    by_task = tally.by(1)
    tasks = sorted(by_task, key=lambda t: (-by_task[t], t))
    sources = tally.sources()
    colours = {s: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(sources)}
    font = _font(13)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    legend: list[list[str]] = [[]]
    used = _PAD
    for s in sources:
        need = 18 + probe.textlength(s, font=font) + 16
        if used + need > _WIDTH - _PAD and legend[-1]:
            legend.append([])
            used = _PAD
        legend[-1].append(s)
        used += need
    image, draw, top = _canvas(len(tasks), f"Task mix: {tally.total:,} records", len(legend))
    for row, names in enumerate(legend):
        x = _PAD
        for s in names:
            y = _PAD + 28 + row * 22
            draw.rectangle([x, y + 2, x + 12, y + 14], fill=colours[s])
            draw.text((x + 18, y), s, fill=_TEXT, font=font)
            x += 18 + int(draw.textlength(s, font=font)) + 16
    left = _PAD + max((int(draw.textlength(t[0], font=font)) for t in tasks), default=0) + 10
    right = _WIDTH - _PAD - 70
    most = _scale(draw, left, right, top, top + len(tasks) * _ROW, max(by_task.values(), default=1))
    rows = tally.by(1, 0)
    for i, (task,) in enumerate(tasks):
        y = top + i * _ROW
        draw.text((_PAD, y + 5), task, fill=_TEXT, font=font)
        x = float(left)
        for s in sources:
            n = rows.get((task, s), 0)
            if n:
                w = (right - left) * n / most
                draw.rectangle([round(x), y + 4, max(round(x), round(x + w) - 1), y + _ROW - 4], fill=colours[s])
                x += w
        draw.text((round(x) + 6, y + 5), f"{by_task[(task,)]:,}", fill=_TEXT, font=font)
    return _save(image, path)


def answer_lengths(tally: Tally, path: Path) -> Path:
    """Per task: a bar to the median answer length in words, a whisker to the 95th percentile."""
    tasks = [t for t in tally.tasks() if tally.answer_words.get(t) and tally.answer_words[t].n]
    font = _font(13)
    image, draw, top = _canvas(len(tasks), "Answer length in words: median (bar) and 95th percentile (whisker)")
    left = _PAD + max((int(draw.textlength(t, font=font)) for t in tasks), default=0) + 10
    right = _WIDTH - _PAD - 150
    most = _scale(draw, left, right, top, top + len(tasks) * _ROW,
                  max((tally.answer_words[t].percentile(95) or 0 for t in tasks), default=1))
    for i, task in enumerate(tasks):
        h = tally.answer_words[task]
        median, p95 = h.percentile(50) or 0, h.percentile(95) or 0
        y = top + i * _ROW
        x50 = left + (right - left) * median / most
        x95 = left + (right - left) * p95 / most
        draw.text((_PAD, y + 5), task, fill=_TEXT, font=font)
        draw.rectangle([left, y + 5, max(left, round(x50)), y + _ROW - 5], fill=_PALETTE[0])
        mid = y + _ROW // 2
        draw.line([(round(x50), mid), (round(x95), mid)], fill=_TEXT, width=2)
        draw.line([(round(x95), mid - 5), (round(x95), mid + 5)], fill=_TEXT, width=2)
        draw.text((round(x95) + 8, y + 5), f"{median} / {p95}", fill=_TEXT, font=font)
    return _save(image, path)


def _save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    image.save(partial, format="PNG")
    partial.replace(path)
    return path
