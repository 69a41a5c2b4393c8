"""Write the bundled synthetic DOTA sample to rsgpt4v/sample_data/dota/.

Four procedurally drawn aerial-looking scenes in DOTA's native layout and label format (v1.0:
integer pixel corners, clockwise from the object's head, CRLF line endings, `imagesource:` and
`gsd:` headers), so `rsgpt4v` can be tried without downloading DOTA, whose images may only be used
for research. Every label is the oriented box of a shape drawn here, computed from the same numbers.

    python scripts/make_sample.py      (stdlib + Pillow; the output is the same on every run)
"""

from __future__ import annotations

import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageOps

OUT = Path(__file__).resolve().parents[1] / "rsgpt4v" / "sample_data" / "dota"

RGB = tuple[int, int, int]
Pt = tuple[float, float]

GRASS: tuple[RGB, RGB] = ((62, 84, 48), (118, 128, 78))
FIELD: tuple[RGB, RGB] = ((120, 112, 74), (168, 156, 110))
CONCRETE: tuple[RGB, RGB] = ((150, 150, 146), (186, 185, 178))
ASPHALT: tuple[RGB, RGB] = ((58, 60, 62), (86, 88, 90))
WATER: tuple[RGB, RGB] = ((28, 52, 62), (48, 78, 88))
CAR_COLOURS: tuple[RGB, ...] = ((225, 225, 222), (190, 192, 196), (30, 32, 36), (150, 30, 28),
                                (38, 62, 120), (120, 122, 126), (210, 200, 170))
SHADOW = (0, 0, 0, 85)


@dataclass(frozen=True)
class Label:
    corners: tuple[tuple[int, int], ...]
    category: str
    difficult: int | None = 0  # None: write the 9-field form DOTA also allows

    def line(self) -> str:
        coords = " ".join(f"{x} {y}" for x, y in self.corners)
        return f"{coords} {self.category}" + ("" if self.difficult is None else f" {self.difficult}")


def pose(cx: float, cy: float, heading: float, local: list[Pt]) -> list[Pt]:
    """Local shape (nose towards -y) turned to a compass heading in degrees and moved to cx, cy."""
    a = math.radians(heading)
    c, s = math.cos(a), math.sin(a)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in local]


def obb(cx: float, cy: float, heading: float, length: float, width: float) -> list[Pt]:
    """The oriented box DOTA labels: head-left corner first, then clockwise on screen."""
    l, w = length / 2, width / 2
    return pose(cx, cy, heading, [(-w, -l), (w, -l), (w, l), (-w, l)])


def rect(x0: float, y0: float, x1: float, y1: float) -> list[Pt]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def square(cx: float, cy: float, r: float) -> list[Pt]:
    """Round objects (tanks, roundabouts) are labelled, as in DOTA, by their upright square."""
    return rect(cx - r, cy - r, cx + r, cy + r)


def disc(cx: float, cy: float, r: float) -> tuple[float, float, float, float]:
    return (cx - r, cy - r, cx + r, cy + r)


def shifted(poly: list[Pt], dx: float, dy: float) -> list[Pt]:
    return [(x + dx, y + dy) for x, y in poly]


class Scene:
    """One image being drawn, the labels of what is on it, and the space already taken."""

    def __init__(self, width: int, height: int, seed: int) -> None:
        self.w, self.h = width, height
        self.rng = random.Random(seed)
        self.img = Image.new("RGB", (width, height))
        self.draw = ImageDraw.Draw(self.img, "RGBA")
        self.labels: list[Label] = []
        self.taken: list[tuple[float, float, float]] = []

    def texture(self, colours: tuple[RGB, RGB], cell: int = 48) -> Image.Image:
        """Soft noise: two coarse random layers, upscaled and blurred, so the PNG stays small."""
        layers = []
        for c in (cell, cell // 3):
            small = Image.new("L", (self.w // c + 2, self.h // c + 2))
            small.putdata([self.rng.randrange(256) for _ in range(small.width * small.height)])
            big = small.resize((self.w + 2 * c, self.h + 2 * c), Image.BICUBIC)
            layers.append(big.crop((c, c, c + self.w, c + self.h)))
        grey = Image.blend(layers[0], layers[1], 0.35).filter(ImageFilter.GaussianBlur(3))
        return ImageOps.colorize(ImageOps.autocontrast(grey), colours[0], colours[1])

    def ground(self, colours: tuple[RGB, RGB], poly: list[Pt] | None = None, cell: int = 48) -> None:
        tex = self.texture(colours, cell)
        if poly is None:
            self.img.paste(tex)
            return
        mask = Image.new("L", (self.w, self.h))
        ImageDraw.Draw(mask).polygon(poly, fill=255)
        self.img.paste(tex, mask=mask)

    def free(self, cx: float, cy: float, r: float, margin: float = 4) -> bool:
        inside = r + margin <= cx <= self.w - r - margin and r + margin <= cy <= self.h - r - margin
        return inside and all(math.dist((cx, cy), (x, y)) > r + rr + margin for x, y, rr in self.taken)

    def label(self, poly: list[Pt], category: str, difficult: int | None = 0, radius: float | None = None) -> None:
        corners = tuple((round(x), round(y)) for x, y in poly)
        self.labels.append(Label(corners, category, difficult))
        xs, ys = [p[0] for p in poly], [p[1] for p in poly]
        cx, cy = sum(xs) / 4, sum(ys) / 4
        self.taken.append((cx, cy, radius or max(math.dist((cx, cy), p) for p in poly)))

    # ---- objects ------------------------------------------------------------------------------

    def part(self, cx: float, cy: float, heading: float, local: list[Pt], fill: tuple[int, ...]) -> None:
        self.draw.polygon(pose(cx, cy, heading, local), fill=fill)

    def plane(self, cx: float, cy: float, heading: float, length: float, tail: RGB, difficult: int = 0) -> None:
        L, f, span = length, length * 0.11, length * 0.95
        h = L / 2
        parts = [[(0, -h), (f * 0.35, -h + 0.04 * L), (f / 2, -h + 0.12 * L), (f / 2, h - 0.12 * L), (f * 0.2, h),
                  (-f * 0.2, h), (-f / 2, h - 0.12 * L), (-f / 2, -h + 0.12 * L), (-f * 0.35, -h + 0.04 * L)]]
        for k in (1, -1):  # wings, then tailplanes
            root, tip, tail_tip = k * f / 2, k * span / 2, k * 0.18 * L
            parts.append([(root, -0.08 * L), (tip, 0.14 * L), (tip, 0.21 * L), (root, 0.12 * L)])
            parts.append([(root * 0.6, 0.35 * L), (tail_tip, 0.45 * L), (tail_tip, 0.49 * L), (root * 0.6, 0.47 * L)])
        posed = [pose(cx, cy, heading, p) for p in parts]
        for p in posed:
            self.draw.polygon(shifted(p, 8, 6), fill=SHADOW)
        for p in posed:
            self.draw.polygon(p, fill=(232, 233, 236), outline=(170, 172, 176))
        for k in (1, -1):  # engines under the wings
            x = k * 0.2 * L
            self.part(cx, cy, heading, rect(x - f * 0.2, -0.04 * L, x + f * 0.2, 0.06 * L), (120, 122, 128))
        self.part(cx, cy, heading, rect(-f * 0.3, -h + 0.05 * L, f * 0.3, -h + 0.08 * L), (40, 50, 60))  # cockpit
        self.draw.line(pose(cx, cy, heading, [(0, 0.33 * L), (0, h)]), fill=tail, width=max(2, round(f * 0.35)))
        self.label(obb(cx, cy, heading, L, span), "plane", difficult)

    def car(self, cx: float, cy: float, heading: float, length: float = 16, width: float = 8,
            colour: RGB | None = None, difficult: int | None = 0) -> None:
        body = obb(cx, cy, heading, length, width)
        self.draw.polygon(shifted(body, 2, 2), fill=SHADOW)
        self.draw.polygon(body, fill=colour or self.rng.choice(CAR_COLOURS))
        l, w = length / 2, width / 2
        self.part(cx, cy, heading, rect(-w * 0.8, -l * 0.55, w * 0.8, -l * 0.2), (22, 26, 32))  # windscreen
        self.part(cx, cy, heading, rect(-w * 0.8, l * 0.5, w * 0.8, l * 0.7), (40, 44, 50))  # rear window
        self.label(body, "small-vehicle", difficult)

    def truck(self, cx: float, cy: float, heading: float, length: float = 44, width: float = 13,
              cab: RGB = (180, 40, 30), load: RGB = (214, 214, 210)) -> None:
        body = obb(cx, cy, heading, length, width)
        self.draw.polygon(shifted(body, 4, 3), fill=SHADOW)
        l, w = length / 2, width / 2
        self.part(cx, cy, heading, rect(-w, -l, w, -l + 0.2 * length), cab)
        self.part(cx, cy, heading, rect(-w, -l + 0.24 * length, w, l), load)
        self.part(cx, cy, heading, rect(-w * 0.8, -l + 0.03 * length, w * 0.8, -l + 0.08 * length), (25, 28, 34))
        self.label(body, "large-vehicle")

    def ship(self, cx: float, cy: float, heading: float, length: float, hull: RGB, wake: bool = False,
             difficult: int = 0) -> None:
        L, W = length, length * 0.18
        w, h = W / 2, L / 2
        if wake:  # a trail that widens and fades behind the stern
            for i in range(6):
                y0, y1 = L * (0.45 + 0.13 * i), L * (0.58 + 0.13 * i)
                a, b = w * (0.8 + 0.5 * i), w * (1.3 + 0.5 * i)
                self.part(cx, cy, heading, [(-a, y0), (a, y0), (b, y1), (-b, y1)], (200, 215, 220, 70 - 11 * i))
        shape = [(0, -h), (w, -h + 0.25 * L), (w, h - 0.03 * L), (w * 0.8, h), (-w * 0.8, h), (-w, h - 0.03 * L),
                 (-w, -h + 0.25 * L)]
        self.draw.polygon(shifted(pose(cx, cy, heading, shape), 4, 3), fill=(0, 0, 0, 70))
        self.part(cx, cy, heading, shape, hull)
        deck = [(0, -h + 0.06 * L), (w * 0.7, -h + 0.27 * L), (w * 0.7, h - 0.06 * L), (-w * 0.7, h - 0.06 * L),
                (-w * 0.7, -h + 0.27 * L)]
        self.part(cx, cy, heading, deck, tuple(min(255, c + 45) for c in hull))
        for y0 in (-0.18, -0.02, 0.14):  # cargo hatches
            self.part(cx, cy, heading, rect(-w * 0.5, y0 * L, w * 0.5, (y0 + 0.12) * L), (90, 70, 55))
        self.part(cx, cy, heading, rect(-w * 0.65, 0.3 * L, w * 0.65, 0.43 * L), (236, 236, 232))  # bridge
        self.label(obb(cx, cy, heading, L, W), "ship", difficult)

    def pier(self, cx: float, cy: float, heading: float, length: float, width: float) -> None:
        poly = obb(cx, cy, heading, length, width)
        self.draw.polygon(shifted(poly, 4, 4), fill=(0, 0, 0, 60))
        self.draw.polygon(poly, fill=(170, 168, 160), outline=(120, 118, 112))
        spine = pose(cx, cy, heading, [(0, -length / 2 + 6), (0, length / 2 - 2)])
        self.draw.line(spine, fill=(150, 148, 140), width=2)
        self.label(poly, "harbor")

    def tank(self, cx: float, cy: float, r: float) -> None:
        self.draw.ellipse(disc(cx + 5, cy + 4, r), fill=SHADOW)
        self.draw.ellipse(disc(cx, cy, r), fill=(150, 152, 150))
        for i in range(8):  # a lit dome: lighter rings towards the upper left
            k, c = 1 - i / 8, 175 + i * 9
            off = -(1 - k) * r * 0.25
            self.draw.ellipse(disc(cx + off, cy + off, r * k * 0.92), fill=(c, c, c - 4))
        self.draw.ellipse(disc(cx, cy, 2), fill=(120, 120, 118))
        self.label(square(cx, cy, r), "storage-tank", radius=r)

    def roundabout(self, cx: float, cy: float, outer: float, inner: float) -> None:
        self.draw.ellipse(disc(cx, cy, outer), fill=ASPHALT[1])
        self.draw.ellipse(disc(cx, cy, inner), fill=(70, 104, 56), outline=(205, 205, 200), width=3)
        self.draw.ellipse(disc(cx, cy, inner * 0.4), fill=(52, 80, 44))
        self.label(square(cx, cy, outer), "roundabout", radius=outer)

    def tree(self, cx: float, cy: float, r: float) -> None:
        self.draw.ellipse(disc(cx + 6, cy + 5, r), fill=SHADOW)
        for dx, dy, k, colour in ((-0.3, 0.1, 0.7, (30, 56, 28)), (0.25, -0.15, 0.75, (36, 64, 32)),
                                  (0, 0, 0.8, (42, 72, 36)), (-0.15, -0.25, 0.45, (58, 90, 48))):
            self.draw.ellipse(disc(cx + dx * r, cy + dy * r, k * r), fill=colour + (235,))

    def scatter(self, n: int, area: tuple[float, float, float, float], radius: float,
                put: Callable[[float, float, float], None]) -> None:
        """Call put(cx, cy, heading) at n free places in area, found by seeded trial and error."""
        x0, y0, x1, y1 = area
        for _ in range(n):
            for _ in range(200):
                cx, cy = self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)
                if self.free(cx, cy, radius):
                    put(cx, cy, self.rng.uniform(0, 360))
                    break

    def save(self, split: str, stem: str, header: list[str]) -> None:
        (OUT / split / "images").mkdir(parents=True, exist_ok=True)
        (OUT / split / "labelTxt").mkdir(parents=True, exist_ok=True)
        self.img.save(OUT / split / "images" / f"{stem}.png", optimize=True)
        lines = header + [lab.line() for lab in self.labels]
        (OUT / split / "labelTxt" / f"{stem}.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))


# ---- scenes ----------------------------------------------------------------------------------

def airport_apron() -> None:
    """Planes on an apron with service vehicles; larger than the 1024 px window so it gets tiled."""
    s = Scene(1400, 1100, seed=9001)
    s.ground(GRASS, cell=64)
    s.ground(CONCRETE, [(0, 130), (1400, 130), (1400, 900), (0, 900)], cell=96)
    s.ground(ASPHALT, [(0, 930), (1400, 930), (1400, 1050), (0, 1050)], cell=96)
    for x in range(0, 1400, 60):
        s.draw.line([(x, 990), (x + 30, 990)], fill=(215, 180, 40), width=3)
    for x in range(0, 1400, 70):  # concrete slab joints
        s.draw.line([(x, 130), (x, 900)], fill=(138, 138, 134, 120), width=1)
    for y in range(130, 900, 70):
        s.draw.line([(0, y), (1400, y)], fill=(138, 138, 134, 120), width=1)
    s.ground(ASPHALT, [(0, 40), (1400, 40), (1400, 100), (0, 100)], cell=96)  # service road
    tails = [(200, 30, 40), (30, 70, 150), (20, 120, 90), (230, 150, 20), (120, 30, 120)]
    for i, x in enumerate((170, 430, 690, 950, 1220)):
        s.draw.line([(x, 140), (x, 620)], fill=(220, 185, 50), width=2)  # stand lead-in line
        s.plane(x, 380 + s.rng.uniform(-15, 15), 180 + s.rng.uniform(-6, 6), s.rng.uniform(150, 200), tails[i])
    s.plane(520, 760, 35, 170, (200, 30, 40))
    s.plane(1180, 990, 90, 150, (30, 70, 150))  # taxiing, crosses the 1024 px window edge
    s.truck(870, 690, 120)
    s.truck(300, 620, 200, cab=(230, 200, 30))
    s.scatter(12, (40, 160, 1360, 880), 10, lambda x, y, h: s.car(x, y, h, 16, 8))
    s.car(300, 1005, 270, 16, 8, colour=(34, 36, 40), difficult=1)  # dark on asphalt: hard to see
    for x, h in ((200, 90), (420, 90), (760, 270), (1100, 90), (1330, 270)):
        s.car(x, 62 + (8 if h == 90 else -8), h, 16, 8)
    s.save("train", "P9001", ["imagesource:GoogleEarth", "gsd:0.3"])


def harbour() -> None:
    """Piers into water, ships docked and under way, tanks on the quay."""
    s = Scene(800, 600, seed=9002)
    s.ground(WATER, cell=80)
    coast = [(560, 0), (800, 0), (800, 600), (610, 600), (590, 420), (575, 260), (585, 120)]
    s.ground(FIELD, coast, cell=64)
    s.ground(CONCRETE, [(560, 0), (640, 0), (650, 600), (610, 600), (590, 420), (575, 260), (585, 120)], cell=64)
    s.pier(470, 170, 270, 210, 24)
    s.pier(495, 400, 270, 180, 24)
    s.ship(440, 140, 270, 150, (150, 40, 36))
    s.ship(470, 432, 90, 120, (40, 60, 90))
    s.ship(555, 290, 0, 70, (60, 64, 70))  # moored at the quay
    s.ship(200, 300, 215, 130, (30, 34, 40), wake=True)
    s.ship(260, 520, 300, 90, (200, 200, 196), wake=True)
    s.ship(120, 80, 160, 30, (170, 170, 166), difficult=1)  # small boat, few pixels
    for cx, cy, r in ((700, 90, 30), (705, 190, 26), (720, 300, 34), (710, 420, 22), (735, 520, 28)):
        s.tank(cx, cy, r)
    s.save("train", "P9002", ["imagesource:GF", "gsd:1"])


def parking_lot() -> None:
    """A dense lot: about 60 cars in marked stalls, trucks and a bus on the access road, trees."""
    s = Scene(640, 640, seed=9003)
    s.ground(GRASS, cell=48)
    s.ground(ASPHALT, [(20, 20), (620, 20), (620, 540), (20, 540)], cell=64)
    s.ground(ASPHALT, [(0, 560), (640, 560), (640, 630), (0, 630)], cell=64)
    stall, car_l, car_w = 22, 28, 13
    rows = [(60, 180), (140, 0), (290, 180), (370, 0), (480, 180)]  # row centre y, heading (nose to aisle)
    for cy, heading in rows:
        top = cy - 20
        for i in range(26):
            x = 40 + i * stall
            s.draw.line([(x, top), (x, top + 40)], fill=(210, 210, 205), width=2)
            if i < 25 and s.rng.random() < 0.52:
                s.car(x + stall / 2, cy + s.rng.uniform(-2, 2), heading + s.rng.uniform(-4, 4), car_l, car_w)
    s.truck(140, 595, 90, 56, 16)
    s.truck(330, 595, 270, 48, 15, cab=(30, 70, 150))
    s.truck(520, 595, 90, 70, 17, cab=(230, 230, 228), load=(230, 230, 228))  # a bus
    s.car(40, 255, 10, car_l, car_w, colour=(190, 192, 196), difficult=1)
    for cx, cy, r in ((12, 262, 30), (10, 330, 26), (630, 200, 28)):  # the first crown half hides that car
        s.tree(cx, cy, r)
    s.save("train", "P9003", ["imagesource:GoogleEarth", "gsd:null"])


def tank_farm() -> None:
    """Storage tanks by a roundabout with traffic; the validation image."""
    s = Scene(700, 560, seed=9004)
    s.ground(FIELD, cell=64)
    s.ground(GRASS, [(0, 330), (300, 330), (300, 560), (0, 560)], cell=48)
    s.ground(CONCRETE, [(20, 20), (290, 20), (290, 230), (20, 230)], cell=64)
    s.ground(CONCRETE, [(440, 340), (690, 340), (690, 550), (440, 550)], cell=64)
    s.draw.rectangle((0, 262, 700, 298), fill=ASPHALT[1])
    s.draw.rectangle((342, 0, 378, 560), fill=ASPHALT[1])
    for i in range(0, 700, 24):
        s.draw.line([(i, 280), (i + 12, 280)], fill=(220, 220, 214), width=1)
        s.draw.line([(360, i), (360, i + 12)], fill=(220, 220, 214), width=1)
    for cx, cy in ((310, 440), (400, 120), (420, 470), (40, 380), (120, 470), (230, 400)):
        s.tree(cx, cy, 16)
    s.roundabout(360, 280, 62, 36)
    for i, (cx, cy) in enumerate(((70, 75), (155, 75), (240, 75), (70, 170), (155, 170), (240, 170))):
        s.tank(cx, cy, 32 + (i % 3) * 4)
    s.tank(520, 420, 44)
    s.tank(625, 470, 34)
    for x, y, h in ((60, 289, 90), (160, 271, 270), (250, 289, 90), (470, 271, 270), (560, 289, 90), (650, 271, 270),
                    (351, 80, 180), (369, 160, 0), (351, 420, 180), (369, 500, 0)):
        s.car(x, y, h, 13, 6)
    s.car(610, 289, 90, 13, 6, difficult=None)  # written with 9 fields
    s.save("val", "P9004", ["imagesource:GoogleEarth", "gsd:0.5"])


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    for scene in (airport_apron, harbour, parking_lot, tank_farm):
        scene()
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
