"""Each adapter's dataset card facts: present for every built-in, BibTeX that parses, licences the
Hub knows and stated with where they were read; shown by `rsgpt4v sources --details`; copied into
the manifest by a build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.core.card_facts import RSGPT4V_CITATION, UNKNOWN, CardFacts, License, bibtex_entries
from rsgpt4v.core.hub_terms import HUB_LICENSES, check_front_matter, size_category
from rsgpt4v.sources import _BUILTIN, available, sample_root
from rsgpt4v.sources.dior import DIOR
from rsgpt4v.sources.dota import DOTA

BUILTIN = sorted(_BUILTIN)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_adapter_carries_its_card_facts(name: str) -> None:
    facts = available()[name].card
    assert isinstance(facts, CardFacts), name
    assert facts.title and facts.citation_from and facts.license.stated_in
    assert facts.license.id in HUB_LICENSES
    if name != "coco":  # coco reads any dataset in COCO format: only its user knows whose
        assert facts.homepage.startswith(("https://", "http://"))
        entries = bibtex_entries(facts.citation)
        assert entries and all(e.kind and e.key for e in entries)
    if facts.license.id == UNKNOWN:
        assert facts.license.name == UNKNOWN and facts.license.link is None
    else:
        assert facts.license.link and facts.license.link.startswith("https://")
    # a licence read only in another project is flagged, and the flag is said where it was read
    assert facts.license.second_hand == facts.license.stated_in.startswith("second-hand")


def test_licences_are_the_authors_not_guesses() -> None:
    cards = {name: cls.card for name, cls in available().items() if name in _BUILTIN}
    assert cards["dota"].license.id == "other" and "academic" in cards["dota"].license.name
    assert "Google Earth" in cards["dota"].images
    assert {cards[n].license.id for n in ("dior", "nwpu-resisc45")} == {"cc-by-nc-4.0"}
    assert cards["fair1m"].license.second_hand and cards["rsvqa-lr"].license.second_hand
    stated_none = {"dior-rsvg", "rsicd", "ucm-captions", "sydney-captions", "rsitmd", "nwpu-captions", "floodnet-vqa",
                   "rsivqa", "aid", "ucm", "coco"}
    assert {n for n, c in cards.items() if c.license.id == UNKNOWN} == stated_none


@pytest.mark.parametrize(("text", "fault"), [
    ("@article{x, title={a}", "unbalanced"),
    ("@article{, title={a}}", "without a key"),
    ("article{x, title={a}}", "outside"),
    ("@article{x, author={a}}", "no title"),
    ("", "no BibTeX entry"),
])
def test_bibtex_faults_are_named(text: str, fault: str) -> None:
    with pytest.raises(ValueError, match=fault):
        bibtex_entries(text)


def test_bibtex_entries_read_type_and_key_in_order() -> None:
    text = "@article{\n9444570,\n title = {{M}},\n}\n\n@misc{k2, title={t}}"
    assert [tuple(e) for e in bibtex_entries(text)] == [("article", "9444570"), ("misc", "k2")]
    assert [tuple(e) for e in bibtex_entries(RSGPT4V_CITATION)] == [("misc", "xu2024rsgpt4v")]


def test_facts_refuse_a_licence_the_hub_does_not_know_or_a_broken_citation() -> None:
    with pytest.raises(ValueError, match="not one of the Hub's"):
        License(id="cc-by-nc", name="CC BY-NC", stated_in="x")
    with pytest.raises(ValueError, match="unknown in both"):
        License(id=UNKNOWN, name="research use", stated_in="x")
    with pytest.raises(ValueError, match="link"):
        License(id="other", name="terms", stated_in="x")
    with pytest.raises(ValueError, match="unbalanced"):
        CardFacts(title="x", homepage="", license=License(id=UNKNOWN, name=UNKNOWN, stated_in="x"),
                  citation="@article{k, title={x}", citation_from="x")


def test_facts_that_depend_on_options_follow_them(tmp_path: Path) -> None:
    assert DOTA(sample_root("dota")).card_facts().version == "v1.0"
    assert DOTA(sample_root("dota"), version="2.0").card_facts().version == "v2.0"
    root = tmp_path / "dior"
    (root / "Annotations" / "Oriented Bounding Boxes").mkdir(parents=True)
    (root / "Annotations" / "Horizontal Bounding Boxes").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("00001\n")
    oriented = DIOR(root, obb=True).card_facts()
    assert oriented.title == "DIOR-R" and [e.key for e in bibtex_entries(oriented.citation)] == ["LI2020296", "9795321"]
    assert [e.key for e in bibtex_entries(DIOR(root).card_facts().citation)] == ["LI2020296"]


def test_sources_details_shows_each_adapters_facts() -> None:
    result = CliRunner().invoke(app, ["sources", "--details"])
    assert result.exit_code == 0, result.output
    for name in BUILTIN:
        facts = available()[name].card
        assert f"homepage: {facts.homepage}" in result.output or name == "coco"
        assert f"licence stated in: {facts.license.stated_in}" in result.output
    assert "@ARTICLE{9560031," in result.output and "[second-hand]" in result.output
    plain = CliRunner().invoke(app, ["sources"]).output
    assert "homepage:" not in plain and "@ARTICLE" not in plain


def test_a_build_writes_its_sources_facts_into_the_manifest(sample_build: Path) -> None:
    cards = json.loads((sample_build / "manifest.json").read_text())["cards"]
    assert list(cards) == ["dota"]
    assert CardFacts.model_validate(cards["dota"]) == DOTA(sample_root("dota")).card_facts()


def test_a_merge_keeps_the_facts_of_every_input(sample_build: Path, tmp_path: Path) -> None:
    from rsgpt4v.tools.merge import merge
    from scripts.native_tree import write_tree

    write_tree(tmp_path / "data", per_source=2, plant=False)
    other = tmp_path / "rsicd"
    result = CliRunner().invoke(app, ["build", "--source", "rsicd", "--root", str(tmp_path / "data" / "rsicd"),
                                      "--dry-run", "--no-progress", "--out", str(other)])
    assert result.exit_code == 0, result.output
    merged = merge([sample_build, other], tmp_path / "merged")
    assert merged.cards is not None and list(merged.cards) == ["dota", "rsicd"]
    assert merged.cards["rsicd"] == available()["rsicd"].card


def test_size_buckets_at_their_edges() -> None:
    assert [size_category(n) for n in (0, 999, 1000, 9999, 10_000, 999_999, 1_000_000)] == \
        ["n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M"]


def test_front_matter_check_names_what_the_hub_refuses() -> None:
    good = {"license": "other", "license_name": "rsgpt4v-mixed-source-licenses", "license_link": "LICENSE.md",
            "task_categories": ["visual-question-answering"], "tags": ["remote-sensing"], "size_categories": ["n<1K"],
            "language": ["en"], "pretty_name": "x", "configs": [{"config_name": "default",
                                                                 "data_files": [{"split": "train", "path": "d"}]}]}
    assert check_front_matter(good) == []
    bad = {**good, "license": "asdf", "task_categories": ["vqa"], "size_categories": ["small"],
           "configs": [{"config_name": "default", "data_files": [{"split": "test-dev", "path": "d"}]}]}
    problems = check_front_matter(bad)
    assert len(problems) == 4 and "'asdf'" in problems[0] and "'vqa'" in problems[1] and "'test-dev'" in problems[3]
    assert check_front_matter({**good, "license_name": "Mixed Licences"}) == \
        ["license other needs a license_name of lower-case words joined by dashes"]
