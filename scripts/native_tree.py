"""Synthetic copies of the ten RS-GPT4V sources in their native layouts, with planted duplicates.

Used by the recipe tests and by scripts/simulate_scale.py. Every image is a distinct seeded texture
(so perceptual hashes tell them apart) unless it is planted: the same picture written into another
source, byte for byte, resized, re-encoded as JPEG or slightly cropped.

    write_tree(DATA, n)  ->  DATA/<source>/... for rsicd, rsitmd, ucm-captions, sydney-captions,
                             nwpu-captions, rsvqa-lr, rsvqa-hr, floodnet-vqa, rsivqa, dior-rsvg
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

SOURCES = ("rsicd", "rsitmd", "ucm-captions", "sydney-captions", "nwpu-captions", "rsvqa-lr", "rsvqa-hr",
           "floodnet-vqa", "rsivqa", "dior-rsvg")
SIZE = 96
PLANTED = 10**9  # seed of the DIOR-RSVG picture planted in NWPU-Captions (Random(-n) is Random(n))


def texture(seed: int, size: int = SIZE) -> Image.Image:
    """A seeded smooth colour field with a little noise: distinct seeds give distinct pictures."""
    rng = random.Random(seed)
    small = Image.new("RGB", (8, 8))
    small.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(64)])
    field_ = small.resize((size, size), Image.Resampling.BICUBIC)
    noise = Image.effect_noise((size, size), 20).convert("RGB")
    return Image.blend(field_, noise, 0.1)


def _save(im: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        im.save(path, quality=92)
    else:
        im.save(path)


def _split(i: int) -> str:
    return ("train", "train", "train", "val", "test")[i % 5]


@dataclass
class Plant:
    """A picture of `source` (split, file) copied into another source as `how`."""

    source: str
    split: str
    image_id: str
    copy_source: str
    copy_split: str
    copy_id: str
    how: str


@dataclass
class Tree:
    root: Path
    images: dict[str, int] = field(default_factory=dict)
    plants: list[Plant] = field(default_factory=list)


def _karpathy(folder: Path, json_name: str, image_dir: str, names: list[tuple[str, str]], pics: dict[str, Image.Image]
              ) -> None:
    entries = []
    for imgid, (name, split) in enumerate(names):
        raws = [f"there are some buildings and trees in scene {name} .", f"a view of area {imgid} ."]
        sents = [{"tokens": r.split(), "raw": r, "imgid": imgid, "sentid": imgid * 5 + k} for k, r in enumerate(raws)]
        entries.append({"filename": name, "imgid": imgid, "sentences": sents, "split": split,
                        "sentids": [s["sentid"] for s in sents]})
        _save(pics[name], folder / image_dir / name)
    (folder / json_name).parent.mkdir(parents=True, exist_ok=True)
    (folder / json_name).write_text(json.dumps({"images": entries}), encoding="utf-8")


def _rsvqa(folder: Path, prefix: str, image_dir: str, ids: list[tuple[int, str]], pics: dict[str, Image.Image]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        mine = [i for i, s in ids if s == split]
        images = [{"id": i, "original_name": f"tile_{i}.tif", "sensor": "x", "questions_ids": [2 * i, 2 * i + 1],
                   "active": True} for i in mine]
        questions, answers = [], []
        for i in mine:
            for q, (kind, text, ans) in enumerate((("presence", "Is there a road?", "yes"),
                                                    ("count", "How many buildings are there?", str(i % 7)))):
                questions.append({"id": 2 * i + q, "img_id": i, "type": kind, "question": text,
                                  "answers_ids": [2 * i + q], "active": True})
                answers.append({"id": 2 * i + q, "question_id": 2 * i + q, "answer": ans, "active": True})
        for kind, rows in (("images", images), ("questions", questions), ("answers", answers)):
            (folder / f"{prefix}_split_{split}_{kind}.json").write_text(json.dumps({kind: rows}), encoding="utf-8")
        for i in mine:
            _save(pics[str(i)], folder / image_dir / f"{i}.tif")


def _voc(filename: str, boxes: list[tuple[str, tuple[int, int, int, int], str]]) -> str:
    objects = "".join(
        f"  <object>\n    <name>{name}</name>\n    <pose>Unspecified</pose>\n    <bndbox>\n"
        f"      <xmin>{b[0]}</xmin>\n      <ymin>{b[1]}</ymin>\n      <xmax>{b[2]}</xmax>\n      <ymax>{b[3]}</ymax>\n"
        f"    </bndbox>\n    <description>{text}</description>\n  </object>\n" for name, b, text in boxes)
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<annotation>\n  <filename>{filename}</filename>\n'
            f"  <size>\n    <width>{SIZE}</width>\n    <height>{SIZE}</height>\n    <depth>3</depth>\n  </size>\n"
            f"{objects}</annotation>")


def write_tree(data: Path, per_source: int = 5, seed: int = 0, plant: bool = True) -> Tree:
    """`per_source` images for each of the ten sources under `data`, splits cycling train, train, train,
    val, test; with `plant`, the duplicates listed in the returned Tree."""
    tree = Tree(data)
    next_seed = [seed * 1_000_003]

    def fresh() -> Image.Image:
        next_seed[0] += 1
        return texture(next_seed[0])

    n = per_source
    # captions
    for name, json_name, image_dir, ext in (("rsicd", "dataset_rsicd.json", "RSICD_images", ".jpg"),
                                            ("rsitmd", "dataset_RSITMD.json", "images", ".tif"),
                                            ("ucm-captions", "dataset.json", "imgs", ".tif"),
                                            ("sydney-captions", "dataset.json", "images", ".tif")):
        names = [(f"{'scene_' if name != 'ucm-captions' else ''}{i + 1}{ext}", _split(i)) for i in range(n)]
        pics = {fname: fresh() for fname, _ in names}
        if plant and name == "rsitmd":
            # RSITMD overlaps RSICD: its test image 5 is RSICD's training image 1, resized
            rsicd_pic = Image.open(data / "rsicd" / "RSICD_images" / "scene_1.jpg").convert("RGB")
            pics[names[4][0]] = rsicd_pic.resize((SIZE * 3 // 4, SIZE * 3 // 4))
            tree.plants.append(Plant("rsitmd", "test", "scene_5", "rsicd", "train", "scene_1", "resized"))
        _karpathy(data / name, json_name, image_dir, names, pics)
        tree.images[name] = n
    # NWPU: json keyed by class
    nwpu = data / "nwpu-captions"
    classes: dict[str, list[dict]] = {}
    for i in range(n):
        cls = ("airplane", "harbor")[i % 2]
        fname = f"{cls}_{i + 1:03d}.jpg"
        entry = {"filename": fname, "imgid": i, "split": _split(i)}
        for k in range(5):
            entry[f"raw{'_' + str(k) if k else ''}"] = f"a {cls} scene number {i} ."
            entry[f"sentids{'_' + str(k) if k else ''}"] = i * 5 + k
        classes.setdefault(cls, []).append(entry)
        pic = fresh()
        if plant and i == 0:
            # a DIOR-RSVG test picture, slightly cropped and re-encoded, as an NWPU training image
            pic = texture(PLANTED)
            w = pic.width
            pic = pic.crop((2, 2, w - 2, w - 2)).resize((w, w))
            tree.plants.append(Plant("dior-rsvg", "test", "00005", "nwpu-captions", "train",
                                     fname.rsplit(".", 1)[0], "cropped"))
        _save(pic, nwpu / "NWPU_images" / cls / fname)
    (nwpu / "dataset_nwpu.json").write_text(json.dumps(classes), encoding="utf-8")
    tree.images["nwpu-captions"] = n
    # RSVQA LR / HR
    for name, prefix, image_dir in (("rsvqa-lr", "LR", "Images_LR"), ("rsvqa-hr", "USGS", "Data")):
        ids = [(i, _split(i)) for i in range(n)]
        _rsvqa(data / name, prefix, image_dir, ids, {str(i): fresh() for i, _ in ids})
        tree.images[name] = n
    # FloodNet Track 2
    flood = data / "floodnet-vqa"
    for split, qname, folder in (("train", "Training Question.json", "Train_Image"),
                                 ("val", "Valid Question.json", "Valid_Image"),
                                 ("test", "Test_Question.json", "Test_Image")):
        rows = {}
        for i in range(n):
            if _split(i) != split:
                continue
            image = f"{7000 + i}.jpg"
            entry = {"Image_ID": image, "Question": "Is the road flooded?"}
            if split == "train":
                entry["Ground_Truth"] = "No"
            entry["Question_Type"] = "Yes_No"
            rows[str(len(rows))] = entry
            pic = fresh()
            if plant and i == 0:
                # an RSVQA-LR test tile re-encoded as a JPEG FloodNet training image
                pic = Image.open(data / "rsvqa-lr" / "Images_LR" / "4.tif").convert("RGB")
                tree.plants.append(Plant("rsvqa-lr", "test", "4", "floodnet-vqa", "train", "7000", "jpeg"))
            path = flood / "Images" / folder / image
            path.parent.mkdir(parents=True, exist_ok=True)
            pic.save(path, quality=70)
        (flood / "Questions").mkdir(parents=True, exist_ok=True)
        (flood / "Questions" / qname).write_text(json.dumps(rows, indent=4), encoding="utf-8")
    tree.images["floodnet-vqa"] = n
    # RSIVQA: UCM subset (train) and DOTA val
    rsivqa = data / "rsivqa"
    ucm_lines = []
    for i in range(n):
        stem = f"{i + 1}.tif"
        pic = fresh()
        if plant and i == 3:
            # UC Merced tile 4 is an evaluation (val) image of UCM-Captions: the same file here, in training
            pic = Image.open(data / "ucm-captions" / "imgs" / "4.tif").convert("RGB")
            tree.plants.append(Plant("ucm-captions", "val", "4", "rsivqa", "train", "UCM_4", "identical"))
        _save(pic, rsivqa / "UCM" / "images" / stem)
        ucm_lines.append(f"{stem}:what is the theme of this picture?scene{i}\n")
    (rsivqa / "UCM" / "ucm_vqa.txt").write_text("".join(ucm_lines), encoding="ascii")
    dota_lines = []
    for i in range(2):
        stem = f"P{i:04d}"
        _save(fresh(), rsivqa / "DOTA" / "images" / f"{stem}.png")
        dota_lines.append(f"{stem}: how many planes are there in this picture?{i}\n")
    (rsivqa / "DOTA" / "dota_val_vqa2.txt").write_text("".join(dota_lines), encoding="ascii")
    tree.images["rsivqa"] = n + 2
    # DIOR-RSVG: global object indices; image 00001 has objects in train and in test
    rsvg = data / "dior-rsvg"
    split_lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    index = 0
    for i in range(n):
        stem = f"{i + 1:05d}"
        boxes = [("vehicle", (4, 4, 30, 30), "the vehicle at the top left"),
                 ("ship", (50, 50, 90, 90), "the ship at the bottom right")]
        (rsvg / "Annotations").mkdir(parents=True, exist_ok=True)
        (rsvg / "Annotations" / f"{stem}.xml").write_text(_voc(f"{stem}.jpg", boxes), encoding="utf-8")
        pic = texture(PLANTED) if plant and i == 4 else fresh()
        _save(pic, rsvg / "JPEGImages" / f"{stem}.jpg")
        first, second = (_split(i), "test") if i == 0 else (_split(i), _split(i))
        split_lines[first].append(str(index))
        split_lines[second].append(str(index + 1))
        index += 2
    for split, lines in split_lines.items():
        (rsvg / f"{split}.txt").write_text("".join(f"{x}\n" for x in lines), encoding="utf-8")
    tree.images["dior-rsvg"] = n
    return tree
