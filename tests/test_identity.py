"""Image identity: perceptual hashes survive resizing, JPEG and slight crops; the sample plan's
multi-index clustering finds exactly the pairs a brute-force comparison finds; the fingerprint
store rereads changed files; the plan's decisions."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

import pytest

from rsgpt4v.builder.identity import (
    Cluster,
    Fingerprint,
    FingerprintStore,
    ImageRef,
    fingerprint,
    is_training,
    leakage_report,
)
from rsgpt4v.builder.sample_plan import NOT_LISTED, SamplePlan
from scripts.native_tree import texture

BITS = 8
MAX_PIXELS = 400_000_000


def clusters(tmp_path: Path, refs: list[ImageRef], prints: list[Fingerprint | None], bits: int = BITS
             ) -> list[Cluster]:
    plan = SamplePlan(tmp_path / "identity.sqlite", MAX_PIXELS)
    for ref, fp in zip(refs, prints):
        plan.add(ref, fp, 0.5)
    plan.listed()
    found = plan.clusters(bits)
    plan.close()
    return found


def distance(a: Fingerprint, b: Fingerprint) -> int:
    return max((a.dhash ^ b.dhash).bit_count(), (a.ahash ^ b.ahash).bit_count())


@pytest.mark.parametrize("seed", range(12))
def test_copies_stay_close_and_other_pictures_far(tmp_path: Path, seed: int) -> None:
    im = texture(seed, 128)
    im.save(tmp_path / "a.png")
    im.resize((80, 80)).save(tmp_path / "resized.png")
    im.save(tmp_path / "reencoded.jpg", quality=60)
    im.crop((3, 3, 125, 125)).save(tmp_path / "cropped.png")
    texture(seed + 500, 128).save(tmp_path / "other.png")
    a = fingerprint(tmp_path / "a.png", MAX_PIXELS)
    for name in ("resized.png", "reencoded.jpg", "cropped.png"):
        assert distance(a, fingerprint(tmp_path / name, MAX_PIXELS)) <= BITS, name
    assert distance(a, fingerprint(tmp_path / "other.png", MAX_PIXELS)) > BITS
    again = fingerprint(tmp_path / "a.png", MAX_PIXELS)
    assert again.digest == a.digest != fingerprint(tmp_path / "reencoded.jpg", MAX_PIXELS).digest


def test_multi_index_clusters_equal_brute_force(tmp_path: Path) -> None:
    rng = random.Random(7)
    prints = []
    for i in range(400):
        if i % 10 == 9:  # a near copy of the one before: a few flipped bits
            base = prints[-1]
            flips = sum(1 << b for b in rng.sample(range(64), rng.randrange(BITS + 3)))
            prints.append(Fingerprint(f"near{i}", base.dhash ^ flips, base.ahash))
        else:
            prints.append(Fingerprint(f"s{i}", rng.getrandbits(64), rng.getrandbits(64)))
    prints.append(Fingerprint("s0", prints[0].dhash, prints[0].ahash))  # byte-identical copy
    prints.append(Fingerprint("top", 2**64 - 1, 2**63))  # high bits set: stored as negative SQLite integers
    prints.append(Fingerprint("top2", 2**64 - 1 - 2**62 - 1, 2**63 + 2**5))
    refs = [ImageRef("src", "train", str(i), f"images/{i}.png") for i in range(len(prints))]
    found_clusters = clusters(tmp_path, refs, prints)
    assert [min(int(r.image_id) for r in c.members) for c in found_clusters] == sorted(
        min(int(r.image_id) for r in c.members) for c in found_clusters)  # in listing order
    found = {frozenset(r.image_id for r in c.members) for c in found_clusters}
    parent = list(range(len(prints)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(prints)):
        for j in range(i + 1, len(prints)):
            if prints[i].digest == prints[j].digest or distance(prints[i], prints[j]) <= BITS:
                parent[root(j)] = root(i)
    groups: dict[int, set[str]] = {}
    for i in range(len(prints)):
        groups.setdefault(root(i), set()).add(str(i))
    assert found == {frozenset(g) for g in groups.values() if len(g) > 1}
    assert frozenset({"0", str(len(prints) - 3)}) in found
    assert frozenset({str(len(prints) - 2), str(len(prints) - 1)}) in found


def test_policy_drops_only_training_copies_of_another_sources_evaluation_images(tmp_path: Path) -> None:
    fp = Fingerprint("x", 1, 1)
    refs = [ImageRef("a", "test", "1", "test/images/1.png"), ImageRef("b", "train", "9", "imgs/9.jpg"),
            ImageRef("a", "train", "1", "train/images/1.png"), ImageRef("c", "trainval", "3", "3.tif")]
    found = clusters(tmp_path, refs, [fp] * 4)
    section, dropped = leakage_report(found, "drop-from-train")
    assert dropped == {("b", "train", "9"), ("c", "trainval", "3")}
    # members named by source and file, so same-named images of two sources or folders stay apart
    assert [(m["source"], m["path"]) for m in section["list"][0]["members"]] == [(r.source, r.path) for r in refs]
    assert section["dropped_from_train"] == {"b": 1, "c": 1}
    assert set(section["list"][0]["kinds"]) == {"cross_source_leak", "within_source_overlap", "cross_source"}
    assert leakage_report(found, "report")[1] == set()
    assert is_training("train") and is_training("trainval") and not is_training("test_phili")


def test_store_reuses_fingerprints_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    texture(1).save(path)
    db = sqlite3.connect(tmp_path / "identity.sqlite")
    first = FingerprintStore(db, MAX_PIXELS).get(path)
    db.commit()
    db.close()
    db = sqlite3.connect(tmp_path / "identity.sqlite")
    store = FingerprintStore(db, MAX_PIXELS)
    assert db.execute("SELECT COUNT(*) FROM fingerprints").fetchone() == (1,)
    assert store.get(path) == first
    texture(2).save(path)
    os.utime(path, ns=(1, 1))
    assert store.get(path) != first
    db.close()


def test_exact_duplicates_inside_one_split_are_reported_not_dropped(tmp_path: Path) -> None:
    refs = [ImageRef("rsicd", "train", "a", "a.png"), ImageRef("rsicd", "train", "b", "b.png"),
            ImageRef("rsicd", "test", "c", "c.png"), ImageRef("rsicd", "test", "unreadable", "unreadable.png")]
    prints = [Fingerprint("same", 5, 5), Fingerprint("same", 5, 5), Fingerprint("other", ~5 & (2**64 - 1), 9), None]
    (cluster,) = clusters(tmp_path, refs, prints)
    section, dropped = leakage_report([cluster], "drop-from-train")
    assert section["list"] == [{"match": "exact", "kinds": ["duplicate_in_split"],
                                "members": [r.as_dict() for r in refs[:2]]}]
    assert dropped == set()


def test_plan_decides_splits_leakage_fraction_and_max_images_in_that_order(tmp_path: Path) -> None:
    plan = SamplePlan(tmp_path / "identity.sqlite", MAX_PIXELS)
    draws = {"a": 0.9, "b": 0.1, "c": 0.3, "d": 0.2, "e": 0.05, "f": 0.6}
    for image, draw in draws.items():
        split = "test" if image == "f" else "train"
        fp = Fingerprint(image, 0, 0) if image != "c" else None
        plan.add(ImageRef("src", split, image, f"{split}/{image}.png"), fp, draw)
    plan.add(ImageRef("other", "train", "a", "a.png"), None, 0.99)
    plan.listed()
    assert plan.counts() == (7, 5)
    plan.drop([("src", "train", "e"), ("src", "test", "f")])
    plan.decide("src", ["train"], 0.8, 2)
    plan.decide("other", None, 1.0, None)
    reasons = {image: plan.left_out(("src", "test" if image == "f" else "train", image)) for image in draws}
    assert reasons == {"a": "not drawn (fraction)", "b": None, "c": "not drawn (max_images)", "d": None,
                       "e": "leakage: evaluation image of another source", "f": "split not in the recipe"}
    assert plan.left_out(("src", "val", "b")) == NOT_LISTED
    assert plan.left_out(("other", "train", "a")) is None
    assert plan.chosen("src") == 2 and plan.chosen("other") == 1
    plan.close()
    again = SamplePlan(tmp_path / "identity.sqlite", MAX_PIXELS)  # a new run starts from an empty plan
    again.listed()
    assert again.counts() == (0, 0)
    again.close()
