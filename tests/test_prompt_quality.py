"""The text rsgpt4v itself writes or shows the model passes its own QC: the worked examples on
scenes built from their inputs, the instruction pools and the template answers; every instruction
template reads right with every category of every source; examples are picked per request."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rsgpt4v.core.config import load_config
from rsgpt4v.core.responses import DialogueResponse, GlobalResponse, LocalResponse
from rsgpt4v.core.schema import Obj, Sample, Scene
from rsgpt4v.imaging.geometry import bounding_box
from rsgpt4v.language.mentions import mentions
from rsgpt4v.language.naming import display, is_dataset_spelling
from rsgpt4v.prompting.templates import PromptError, PromptSet
from rsgpt4v.quality.qc import QualityChecker
from rsgpt4v.sources.dior import DIOR_CLASSES
from rsgpt4v.sources.dota import VOCABULARIES
from rsgpt4v.sources.fair1m import FAIR1M_CLASSES
from rsgpt4v.tasks.from_annotations import counting_record, detection_record, presence_record

PROMPTS = PromptSet.load()
CFG = load_config()
SOURCES = {"dota": VOCABULARIES["2.0"], "dior": DIOR_CLASSES, "fair1m": FAIR1M_CLASSES}
_GRID = {"top": 1 / 6, "middle": 0.5, "bottom": 5 / 6, "left": 1 / 6, "centre": 0.5, "right": 5 / 6}


def _qc() -> QualityChecker:
    return QualityChecker(CFG.qc, lambda: VOCABULARIES["2.0"], exhaustive_labels=True)


def _obj(category: str, cx: float, cy: float, size: int = 1000) -> Obj:
    x, y = cx * size, cy * size
    poly = ((x - 8, y - 4), (x + 8, y - 4), (x + 8, y + 4), (x - 8, y + 4))
    return Obj(category=category, polygon=poly, box=bounding_box(poly))


def _where(position: str) -> tuple[float, float]:
    words = position.replace(";", ",").split(",")[0].split()
    if words == ["centre"]:
        return 0.5, 0.5
    row, col = (words + ["centre"])[:2] if words[0] in ("top", "middle", "bottom") else ("middle", words[0])
    return _GRID[col], _GRID[row]


# The prompts name categories as the records do ("14 small vehicles"): back to DOTA's labels.
_CATEGORY = {name: c for c in VOCABULARIES["2.0"] for name in (display(c, "dota").singular, display(c, "dota").plural)}


def example_scene(example: str) -> Scene:
    """A scene whose labels are the example's: noted objects where their notes put them (and, where a
    note gives its id, as the object of that id), the rest spread over the middle of the image."""
    counts = {_CATEGORY[m.group(2)]: int(m.group(1)) for m in re.finditer(r"^- (\d+) ([a-z ]+)$", example, re.M)}
    noted = [(int(m.group(1)) if m.group(1) else None, _obj(_CATEGORY[m.group(2)], *_where(m.group(3))))
             for m in re.finditer(r"^- (?:\[(\d+)\] )?([a-z ]+) \(([^)]*)\): ", example, re.M)]
    rest = [_obj(category, 0.35 + 0.3 * i / max(n, 1), 0.5)
            for category, n in counts.items() for i in range(n - sum(o.category == category for _, o in noted))]
    slots: list[Obj | None] = [None] * max([len(noted) + len(rest), *(i for i, _ in noted if i)])
    for i, obj in noted:
        if i is not None:
            slots[i - 1] = obj
    free = iter([o for i, o in noted if i is None] + rest)
    objs = [o if o is not None else next(free) for o in slots]
    sample = Sample(source="dota", split="train", image_id="ex", image_path=Path("/ex.png"), rel_image="ex.png",
                    objects=tuple(objs))
    return Scene(sample=sample, window=(0, 0, 1000, 1000), objects=tuple(objs))


def _answer(example: str) -> dict:
    return json.loads(example.split("Answer:", 1)[1])


@pytest.mark.parametrize("stage", ["global", "dialogue"])
def test_stages_have_several_worked_examples_of_different_scenes(stage: str) -> None:
    examples = PROMPTS.examples[stage]
    assert len(examples) >= 3
    kinds = [frozenset(re.findall(r"^- \d+ (.+)$", e, re.M)) for e in examples]
    assert len(set(kinds)) == len(examples)


@pytest.mark.parametrize("index", range(3))
def test_global_examples_pass_qc(index: int) -> None:
    example = PROMPTS.examples["global"][index]
    scene = example_scene(example)
    assert _qc().scene_text(scene)(GlobalResponse.model_validate(_answer(example))) is None


@pytest.mark.parametrize("index", range(3))
def test_global_examples_tie_mentions_to_noted_ids_only(index: int) -> None:
    example = PROMPTS.examples["global"][index]
    noted = {int(i) for i in re.findall(r"^- \[(\d+)\] ", example, re.M)}
    found = mentions(_answer(example)["description"])
    ids = [i for m in found for i in m.ids]
    assert found and set(ids) <= noted and len(ids) == len(set(ids))
    assert "[" not in _answer(example)["caption"]


@pytest.mark.parametrize("index", range(3))
def test_dialogue_examples_pass_qc(index: int) -> None:
    example = PROMPTS.examples["dialogue"][index]
    scene = example_scene(example)
    resp = DialogueResponse.model_validate(_answer(example))
    assert CFG.dialogue.min_turns <= len(resp.turns) <= CFG.dialogue.max_turns
    assert _qc().dialogue(scene)(resp) is None


@pytest.mark.parametrize("stage", ["global", "dialogue"])
def test_the_prompts_ask_for_the_display_names(stage: str) -> None:
    """One naming: the words a prompt gives for a dataset spelling are its display name or other words."""
    told = re.findall(r"\b[Aa] ([a-z]+(?:-[a-z]+)*) is ([^;.]+)", PROMPTS.stages[stage]["system"])
    assert len(told) >= 3
    for category, words in told:
        names = [re.sub(r"^(?:a|an) ", "", w.strip()) for w in re.split(r",| or ", words) if w.strip()]
        assert set(names) <= set(display(category, "dota").words()), (category, names)


def test_dialogue_examples_open_differently() -> None:
    firsts = [_answer(e)["turns"][0]["question"].split()[0] for e in PROMPTS.examples["dialogue"]]
    assert len(set(firsts)) == len(firsts)


def _local_examples() -> list[str]:
    """The local stage's worked examples, whether listed under `examples` or inside `system`."""
    return PROMPTS.examples.get("local") or [PROMPTS.stages["local"]["system"].split("Worked example", 1)[1]]


def _dota_category(name: str) -> str:
    """The DOTA label the prompt's plain name stands for ("large vehicles" -> large-vehicle)."""
    from rsgpt4v.sources.dota import VOCABULARIES

    return next(c for c in VOCABULARIES["2.0"] if name in (display(c, "dota").singular, display(c, "dota").plural))


def local_example_scene(example: str) -> Scene:
    """Listed objects at their boxes; those named only by counts in the middle of the image."""
    listed = [json.loads(line.rstrip(",")) for line in example.splitlines() if line.startswith('{"id"')]
    objs = []
    for entry in listed:
        x0, y0, x1, y1 = (v * 1000 for v in entry["box"])
        poly = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
        objs.append(Obj(category=_dota_category(entry["category"]), polygon=poly, box=bounding_box(poly)))
    omitted = re.search(r"not listed here: ([^.]*)\.", example)
    for n, name in re.findall(r"(\d+) ([a-z ]+)", omitted.group(1) if omitted else ""):
        objs += [_obj(_dota_category(name.strip()), 0.3 + 0.01 * i, 0.6) for i in range(int(n))]
    sample = Sample(source="dota", split="train", image_id="ex", image_path=Path("/ex.png"), rel_image="ex.png",
                    objects=tuple(objs))
    return Scene(sample=sample, window=(0, 0, 1000, 1000), objects=tuple(objs))


def test_local_examples_pass_qc() -> None:
    for example in _local_examples():
        scene = local_example_scene(example)
        assert scene.objects
        assert _qc().local(scene)(LocalResponse.model_validate(_answer(example))) is None


def test_example_inputs_are_rendered_as_the_user_template_renders_them() -> None:
    for stage in ("local", "global", "dialogue"):
        fixed = [line for line in PROMPTS.stages[stage]["user"].splitlines() if line and "$" not in line]
        for example in PROMPTS.examples[stage]:
            lines = example.split("Answer:")[0].splitlines()
            assert all(line in lines for line in fixed), stage


def test_every_worked_example_is_used_and_the_choice_is_stable() -> None:
    keys = [f"0/dota/train/P{n}/0_0_1024_1024" for n in range(20)]
    for stage in ("local", "global", "dialogue"):
        chosen = [PROMPTS.example_index(stage, k) for k in keys]
        assert set(chosen) == set(range(len(PROMPTS.examples[stage])))
        assert chosen == [PromptSet.load().example_index(stage, k) for k in keys]
        text = PROMPTS.system(stage, keys[0])
        assert "$example" not in text and PROMPTS.examples[stage][chosen[0]].strip() in text


def test_a_stage_file_with_one_example_in_its_system_text_still_works(tmp_path: Path) -> None:
    for name in ("local", "global", "dialogue", "judge", "instructions"):
        (tmp_path / f"{name}.yaml").write_text((PROMPTS.folder / f"{name}.yaml").read_text())
    (tmp_path / "global.yaml").write_text("system: |\n  Rules.\n  Example: one.\nuser: |\n  $counts\nretry: |\n"
                                          "  $reason\n")
    prompts = PromptSet.load(tmp_path)
    assert prompts.system("global", "any") == "Rules.\nExample: one." and prompts.examples["global"] == []
    (tmp_path / "global.yaml").write_text("system: |\n  Rules. $example\nuser: |\n  x\nretry: |\n  $reason\n")
    with pytest.raises(PromptError, match="no examples"):
        PromptSet.load(tmp_path)
    (tmp_path / "global.yaml").write_text("system: |\n  Rules.\nexamples: [a, b]\nuser: |\n  x\nretry: |\n  y\n")
    with pytest.raises(PromptError, match=r"\$example"):
        PromptSet.load(tmp_path)


# ---- instruction pools and template answers -------------------------------------------------------

# "a" before a vowel sound, "an" before a consonant sound ("a one-sentence", "a unique", "an hour" are right).
_AN_BEFORE_VOWEL = re.compile(r"\ba (?=[aeio]|u(?!ni|s))(?!one)|\ban (?=[^aeiouh\W])", re.I)


def _render_all(pool: str, source: str, category: str) -> list[str]:
    name = display(category, source)
    values = {"category": name.plural, "expression": "the white plane at the top left", "box": "[0.1, 0.2, 0.3, 0.4]",
              "boxes": "<b0>, <b1>", "more": 3, "choices": "A. beach\nB. forest", "name": name.singular,
              "other": name.singular, "other_box": "[0.5, 0.6, 0.7, 0.8]"}
    out = []
    for template in PROMPTS.instructions[pool]:
        for count in (1, 2):
            noun = name.singular if count == 1 else name.plural
            text = template.replace("$category", noun if pool.endswith(("_answer", "_answer_more")) else name.plural)
            out.append(re.sub(r"\$(\w+)", lambda m: str({**values, "count": count}.get(m.group(1), m.group(0))), text))
    return out


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_instruction_reads_right_with_every_category(source: str) -> None:
    bad = []
    for pool in PROMPTS.instructions:
        for category in SOURCES[source]:
            for text in _render_all(pool, source, category):
                problems = [
                    "$" in text, "  " in text, not re.match(r"[A-Z0-9<\"]", text), not re.search(r"[.?!:]$", text),
                    bool(_AN_BEFORE_VOWEL.search(text)), " the the " in text,
                    pool == "presence" and " one of the " in text,
                    f"1 {display(category, source).plural}" in text, f"2 {display(category, source).singular} " in text,
                    is_dataset_spelling(category) and category.lower() in text.lower(),
                ]
                if any(problems):
                    bad.append((pool, category, text))
    assert bad == []


def test_instruction_pools_pass_qc() -> None:
    qc = _qc()
    # Instructions ask for boxes and lettered choices by design (LLaVA-1.5's wording): talk of boxes
    # and given choices is meta-talk only in the model's own text.
    box_pools = {"grounding", "detection", "region_description", "detection_answer", "detection_answer_more",
                 "classification_choice", "grounded_description"}
    for pool in PROMPTS.instructions:
        for category in VOCABULARIES["2.0"]:
            for text in _render_all(pool, "dota", category):
                problem = qc.style(text, "instruction")
                assert problem is None or (pool in box_pools and problem.kind == "qc_meta_talk"), (pool, text, problem)


def test_template_answers_pass_qc_on_their_scene() -> None:
    qc = _qc()
    objs = ([_obj("small-vehicle", 0.1 + 0.02 * i, 0.2) for i in range(14)]
            + [_obj("large-vehicle", 0.1 + 0.02 * i, 0.6) for i in range(12)] + [_obj("plane", 0.8, 0.8)])
    sample = Sample(source="dota", split="train", image_id="t", image_path=Path("/t.png"), rel_image="t.png",
                    objects=tuple(objs))
    scene = Scene(sample=sample, window=(0, 0, 1000, 1000), objects=tuple(objs))
    for seed in range(12):
        base = {"image": "t.png", "source": "dota", "split": "train", "meta": {}}
        records = [detection_record(scene, PROMPTS, seed, 10, base),
                   counting_record(scene, PROMPTS, seed, VOCABULARIES["2.0"], CFG.qc.absence_exempt, base),
                   presence_record(scene, PROMPTS, seed, CFG.tasks, VOCABULARIES["2.0"], CFG.qc.absence_exempt, base)]
        for record in records:
            for turn in record.turns:
                answer = re.sub(r"<b\d+>", "the box", turn.answer)
                problem = qc.text(scene, answer, "template_answer")
                assert problem is None or (record.task == "detection" and problem.kind == "qc_meta_talk"), answer
            assert record.meta["answers_from"] == "labels"


@pytest.mark.parametrize("source", ["dior", "dior-rsvg", "coco", "fair1m"])
def test_the_mock_writes_what_qc_keeps_on_every_source(tmp_path: Path, source: str) -> None:
    from conftest import dry_run
    from test_coco import make_coco
    from test_dior import make_dior, make_rsvg
    from test_fair1m import make_fair1m
    make = {"dior": make_dior, "dior-rsvg": make_rsvg, "coco": make_coco, "fair1m": make_fair1m}[source]
    _, _, manifest = dry_run(source, make(tmp_path / "in"), tmp_path / "out")
    assert manifest["qc"]["rejected"] == {} and manifest["failures"]["count"] == 0


def test_the_mock_writes_what_qc_keeps_on_the_sample(sample_build: Path) -> None:
    manifest = json.loads((sample_build / "manifest.json").read_text())
    assert manifest["qc"]["rejected"] == {} and manifest["failures"]["count"] == 0


def test_counting_negatives_come_from_the_vocabulary_and_are_never_site_scale() -> None:
    objs = (_obj("plane", 0.5, 0.5),)
    sample = Sample(source="dota", split="train", image_id="n", image_path=Path("/n.png"), rel_image="n.png",
                    objects=objs)
    scene = Scene(sample=sample, window=(0, 0, 1000, 1000), objects=objs)
    base = {"image": "n.png", "source": "dota", "split": "train", "meta": {}}
    asked = set()
    for seed in range(60):
        record = counting_record(scene, PROMPTS, seed, VOCABULARIES["2.0"], CFG.qc.absence_exempt, base)
        zero = [t for t in record.turns if t.answer[0] not in "0123456789" and "plane" not in t.question]
        asked |= {c for c in VOCABULARIES["2.0"] for t in zero if display(c, "dota").plural in t.question}
    assert asked and asked <= set(VOCABULARIES["2.0"]) - set(CFG.qc.absence_exempt) - {"plane"}
    assert not asked & {"airport", "harbor"}
