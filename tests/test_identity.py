"""Image identity: perceptual hashes survive resizing, JPEG and slight crops; multi-index clustering
finds exactly the pairs a brute-force comparison finds; the fingerprint store rereads changed files."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from rsgpt4v.identity import Fingerprint, FingerprintStore, ImageRef, clusters, fingerprint, is_training, leakage_report
from scripts.native_tree import texture

BITS = 8


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
    a = fingerprint(tmp_path / "a.png")
    for name in ("resized.png", "reencoded.jpg", "cropped.png"):
        assert distance(a, fingerprint(tmp_path / name)) <= BITS, name
    assert distance(a, fingerprint(tmp_path / "other.png")) > BITS
    assert fingerprint(tmp_path / "a.png").sha256 == a.sha256 != fingerprint(tmp_path / "reencoded.jpg").sha256


def test_multi_index_clusters_equal_brute_force() -> None:
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
    refs = [ImageRef("src", "train", str(i)) for i in range(len(prints))]
    found = {frozenset(r.image_id for r in c.members) for c in clusters(refs, prints, BITS)}
    parent = list(range(len(prints)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(prints)):
        for j in range(i + 1, len(prints)):
            if prints[i].sha256 == prints[j].sha256 or distance(prints[i], prints[j]) <= BITS:
                parent[root(j)] = root(i)
    groups: dict[int, set[str]] = {}
    for i in range(len(prints)):
        groups.setdefault(root(i), set()).add(str(i))
    assert found == {frozenset(g) for g in groups.values() if len(g) > 1}
    assert frozenset({"0", str(len(prints) - 1)}) in found


def test_policy_drops_only_training_copies_of_another_sources_evaluation_images() -> None:
    fp = Fingerprint("x", 1, 1)
    refs = [ImageRef("a", "test", "1"), ImageRef("b", "train", "9"),
            ImageRef("a", "train", "1"), ImageRef("c", "trainval", "3")]
    found = clusters(refs, [fp] * 4, BITS)
    section, dropped = leakage_report(found, "drop-from-train")
    assert dropped == {("b", "train", "9"), ("c", "trainval", "3")}
    assert section["dropped_from_train"] == {"b": 1, "c": 1}
    assert set(section["list"][0]["kinds"]) == {"cross_source_leak", "within_source_overlap", "cross_source"}
    assert leakage_report(found, "report")[1] == set()
    assert is_training("train") and is_training("trainval") and not is_training("test_phili")


def test_store_reuses_fingerprints_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    texture(1).save(path)
    store = FingerprintStore(tmp_path / "identity.sqlite")
    first = store.get(path)
    store.close()
    store = FingerprintStore(tmp_path / "identity.sqlite")
    assert store.get(path) == first
    texture(2).save(path)
    os.utime(path, ns=(1, 1))
    assert store.get(path) != first
    store.close()


def test_exact_duplicates_inside_one_split_are_reported_not_dropped() -> None:
    refs = [ImageRef("rsicd", "train", "a"), ImageRef("rsicd", "train", "b"),
            ImageRef("rsicd", "test", "c")]
    prints = [Fingerprint("same", 5, 5), Fingerprint("same", 5, 5), Fingerprint("other", ~5 & (2**64 - 1), 9)]
    (cluster,) = clusters(refs, prints, BITS)
    section, dropped = leakage_report([cluster], "drop-from-train")
    assert section["list"] == [{"match": "exact", "kinds": ["duplicate_in_split"],
                                "members": [r.as_dict() for r in refs[:2]]}]
    assert dropped == set()
