"""The judge stage, through the real `openai` client: what it is sent, what its verdicts do to the
answers (sent back once with the reasons, dropped when contradicted again), what the records and the
run report say, and what it costs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import loopback_build
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.core.config import load_config
from rsgpt4v.core.responses import DialogueResponse, GlobalResponse, JudgeResponse, ObjectNote
from rsgpt4v.llm.fakeserver import FakeServer, Knobs
from rsgpt4v.llm.mock import Style, completion_for
from rsgpt4v.prompting.stages import StageRequests
from rsgpt4v.prompting.templates import PromptSet
from rsgpt4v.quality.judge import DIALOGUE, GLOBAL, JudgeOutcome, Round, Unit, feedback, judged_sentences

MODEL_TASKS = {"caption", "detailed_description", "grounded_description", "region_description",
               "region_attributes", "grounding", "multi_turn_reasoning"}


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]


def _schema(body: dict) -> str:
    return body["response_format"]["json_schema"]["name"]


def _statements(body: dict) -> list[tuple[int, str]]:
    text = body["messages"][1]["content"][0]["text"].split("Statements to judge", 1)[1]
    return [(int(m.group(1)), m.group(2)) for m in re.finditer(r"^(\d+)\. (.+)$", text, re.M)]


# ---- sentences and verdicts ----------------------------------------------------------------------

def _note(i: int, text: str) -> ObjectNote:
    return ObjectNote(id=i, colour="white", shape="long", orientation="north", state="parked", description=text,
                      relations=[], referring_expression="the bus", distinctive=False)


NOTES = {3: _note(3, "A white bus parked in the middle row."), 7: _note(7, "A yellow bus at the end of a row.")}
SCENE_TEXT = GlobalResponse(caption="A bus depot with rows of parked buses.",
                            description="Rows of buses fill the lot. [A yellow bus](7) ends the top row. "
                                        "Trees line the western edge.")
DIALOGUE_ANSWER = DialogueResponse.model_validate({"turns": [
    {"question": "What is this place?", "answer": "It is a bus depot. Buses wait here between runs."},
    {"question": "Why rows?", "answer": "Rows fit the most buses."}]})


def test_every_sentence_once_in_a_seeded_shuffled_order() -> None:
    judged = judged_sentences(NOTES, SCENE_TEXT, DIALOGUE_ANSWER, "0/dota/train/P1888/0_0_712_557/judge")
    texts = [s.text for s in judged]
    assert sorted(texts) == sorted([
        "A white bus parked in the middle row.", "A yellow bus at the end of a row.",
        "A bus depot with rows of parked buses.", "Rows of buses fill the lot.", "A yellow bus ends the top row.",
        "Trees line the western edge.", "It is a bus depot.", "Buses wait here between runs.", "Rows fit the most buses."])
    assert [s.number for s in judged] == list(range(1, 10))
    assert judged == judged_sentences(NOTES, SCENE_TEXT, DIALOGUE_ANSWER, "0/dota/train/P1888/0_0_712_557/judge")
    other = judged_sentences(NOTES, SCENE_TEXT, DIALOGUE_ANSWER, "1/dota/train/P1888/0_0_712_557/judge")
    assert [s.text for s in other] != texts                      # the seed decides the order
    assert {s.about for s in judged if s.unit.stage == "local"} == {3, 7}
    assert all(s.about is None for s in judged if s.unit.stage != "local")
    only = judged_sentences(NOTES, SCENE_TEXT, DIALOGUE_ANSWER, "k", only={GLOBAL})
    assert {s.unit for s in only} == {GLOBAL} and len(only) == 4


def test_the_order_is_not_the_answers_order_over_many_windows() -> None:
    in_order = sum(judged_sentences(NOTES, SCENE_TEXT, DIALOGUE_ANSWER, f"0/w{i}")[0].text == "A white bus parked "
                   "in the middle row." for i in range(200))
    assert in_order < 60        # the first answer's first sentence leads about one time in nine


def test_a_verdict_list_must_cover_every_statement_once() -> None:
    judged = judged_sentences(NOTES, SCENE_TEXT, None, "k")
    check = StageRequests.check_judge(judged)
    full = [{"id": s.number, "verdict": "supported", "reason": ""} for s in judged]
    assert check(JudgeResponse.model_validate({"verdicts": full})) is None
    problem = check(JudgeResponse.model_validate({"verdicts": [
        *full[1:], full[2], {"id": 99, "verdict": "contradicted", "reason": " "}]}))
    assert problem.kind == "verdicts"
    assert problem.detail == ("no verdict for statements 1; no statements numbered 99; more than one verdict for "
                              "statements 3; no reason for the contradicted statements 99")


def test_verdicts_become_record_verdicts_and_notes() -> None:
    judged = judged_sentences(NOTES, SCENE_TEXT, None, "k")
    number = {s.text: s.number for s in judged}
    resp = JudgeResponse.model_validate({"verdicts": [
        {"id": s.number, "verdict": "supported", "reason": ""} for s in judged
        if s.text not in ("A yellow bus at the end of a row.", "Trees line the western edge.")] + [
        {"id": number["A yellow bus at the end of a row."], "verdict": "contradicted", "reason": "it is white"},
        {"id": number["Trees line the western edge."], "verdict": "not_visible", "reason": ""}]})
    round_ = Round.read(judged, resp)
    assert round_.contradicted == {Unit("local", 7): [("A yellow bus at the end of a row.", "it is white")]}
    assert round_.tally == {"supported": 4, "contradicted": 1, "not_visible": 1}
    told = feedback(round_, [Unit("local", 7)])
    assert 'object 7: "A yellow bus at the end of a row." (it is white)' in told
    outcome = JudgeOutcome("gpt-4o-mini")
    outcome.settle({Unit("local", 3), GLOBAL}, round_)
    outcome.sent_back(Unit("local", 7), round_)
    outcome.settle({Unit("local", 7)}, round_)
    meta = outcome.record_meta([Unit("local", 3), Unit("local", 7)])
    assert meta["model"] == "gpt-4o-mini" and meta["verdict"] == "supported"
    assert meta["notes"] == ['sent back once: "A yellow bus at the end of a row." (it is white)']
    assert outcome.record_meta([GLOBAL])["verdict"] == "not_visible"
    assert outcome.record_meta([DIALOGUE])["verdict"] == "unjudged"   # never judged


# ---- builds through the judge ----------------------------------------------------------------------

class ScriptedJudge:
    """The mock for the stages; the judge contradicts every statement containing a word in `wrong`
    (a re-asked answer that still says it is contradicted again) and supports the rest."""

    def __init__(self, wrong: tuple[str, ...]) -> None:
        self.wrong = wrong
        self.style = Style(judge_contradictions=0.0)

    def __call__(self, body: dict) -> tuple[int, dict]:
        completion = completion_for(body, self.style)
        if _schema(body) == "JudgeResponse":
            verdicts = [{"id": n, "verdict": "contradicted", "reason": "the image shows something else"}
                        if any(w in text for w in self.wrong) else {"id": n, "verdict": "supported", "reason": ""}
                        for n, text in _statements(body)]
            completion["choices"][0]["message"]["content"] = json.dumps({"verdicts": verdicts})
        return 200, completion


def test_a_contradicted_answer_goes_back_once_with_the_reason_then_is_dropped(real_dir: Path, tmp_path: Path) -> None:
    # the mock's dialogue always opens the same way: contradicted twice, it is dropped
    manifest, records, server = loopback_build(real_dir / "dota_v1.0", tmp_path / "out",
                                               ScriptedJudge(("It shows",)), "--judge", "gpt-4o-mini")
    judge_bodies = [b for b in server.bodies if _schema(b) == "JudgeResponse"]
    assert len(judge_bodies) == 2 and all(b["model"] == "gpt-4o-mini" for b in judge_bodies)
    dialogue = [b for b in server.bodies if _schema(b) == "DialogueResponse"]
    assert len(dialogue) == 2
    retry = dialogue[1]["messages"][-1]["content"]
    assert "a check against the image found these statements wrong" in retry and "(the image shows something" in retry
    assert "multi_turn_reasoning" not in {r["task"] for r in records}
    j = manifest["judge"]
    assert j["model"] == "gpt-4o-mini" and j["windows"] == 1
    assert j["sent_back"] == {"dialogue": 1} and j["dropped"] == {"dialogue": 1}
    assert j["verdicts"]["contradicted"] >= 1 and j["second_verdicts"]["contradicted"] >= 1
    # the second request judges the answer sent back alone
    assert len(_statements(judge_bodies[1])) < len(_statements(judge_bodies[0]))


def test_an_answer_corrected_on_the_way_back_is_kept_with_a_note(real_dir: Path, tmp_path: Path) -> None:
    # the first global answer holds "paved surfaces"; asked again, the mock answers the same words, so
    # contradict only the first time it is seen
    seen: set[str] = set()

    class Once(ScriptedJudge):
        def __call__(self, body: dict) -> tuple[int, dict]:
            status, completion = super().__call__(body)
            if _schema(body) == "JudgeResponse":
                verdicts = json.loads(completion["choices"][0]["message"]["content"])["verdicts"]
                for v, (_, text) in zip(verdicts, _statements(body)):
                    if v["verdict"] == "contradicted" and text in seen:
                        v.update(verdict="supported", reason="")
                    seen.add(text)
                completion["choices"][0]["message"]["content"] = json.dumps({"verdicts": verdicts})
            return status, completion

    manifest, records, _ = loopback_build(real_dir / "dota_v1.0", tmp_path / "out", Once(("laid out along",)),
                                          "--judge", "gpt-4o-mini")
    assert manifest["judge"]["sent_back"] == {"global": 1} and manifest["judge"]["dropped"] == {}
    described = next(r for r in records if r["task"] == "detailed_description")
    assert described["meta"]["judge"]["verdict"] == "supported"
    assert any(n.startswith('sent back once: "') and "laid out along" in n for n in described["meta"]["judge"]["notes"])


def test_p1888_against_the_fake_server_with_a_judge(real_dir: Path, tmp_path: Path) -> None:
    """Done when: judge requests go out with the judge's model, every model-made record carries meta.judge,
    the manifest counts the verdicts, and the judge is paid for at its own prices."""
    out = tmp_path / "out"
    with FakeServer(Knobs(answer_tokens_per_object=160, mistakes=0.2)) as server:
        result = CliRunner().invoke(app, ["build", "--no-progress", "--source", "dota", "--root",
                                          str(real_dir / "dota_v1.0"), "--backend", "openai", "--out", str(out),
                                          "--judge", "gpt-4o-mini"],
                                    env={"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-judge"},
                                    catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    records = _records(out)
    model_made = [r for r in records if r["task"] in MODEL_TASKS]
    assert model_made and all(r["meta"]["judge"]["model"] == "gpt-4o-mini" for r in model_made)
    assert "grounded_description" in {r["task"] for r in model_made}
    assert {r["meta"]["judge"]["verdict"] for r in model_made} <= {"supported", "not_visible", "unjudged"}
    assert all(r["meta"]["judge"] is None for r in records if r["task"] not in MODEL_TASKS)
    j = manifest["judge"]
    assert j["windows"] == 1 and sum(j["verdicts"].values()) >= 20
    # the notes place their objects rightly (a shadow "towards the north-west" is no place): the mock judge,
    # which checks places and counts, sends back only its seeded contradiction, and nothing is dropped for it
    assert sum(j["dropped"].values()) == 0 and sum(j["sent_back"].values()) <= 1
    assert sum(j["records"].values()) == len(model_made)
    usage = manifest["usage"]["by_stage"]["judge"]
    assert usage["api_calls"] >= 1 and usage["cost_usd"] > 0
    # what --max-cost weighs is everything spent, the judge's requests with the stages'
    spent = manifest["usage"]["cost_usd"]
    assert spent == pytest.approx(sum(s["cost_usd"] for s in manifest["usage"]["by_stage"].values()), abs=1e-5)
    # priced at gpt-4o-mini's rates: its image rule counts the window at 2833 + 5667 per tile
    assert usage["prompt_tokens"] > 2833 * usage["api_calls"]
    assert "judge gpt-4o-mini:" in result.output


def test_estimate_prices_the_judge_at_its_own_model(tmp_path: Path) -> None:
    def estimate(*extra: str) -> dict:
        result = CliRunner().invoke(app, ["estimate", "--source", "dota", "--sample", "--json", *extra],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    without = {r["stage"]: r for r in estimate()["stages"]}
    mini = estimate("--judge", "gpt-4o-mini")
    rows = {r["stage"]: r for r in mini["stages"]}
    assert "judge" not in without and mini["judge"] == "gpt-4o-mini"
    judge = rows["judge"]
    # one request per window, and one more where answers were sent back
    windows = without["global"]["requests"]
    assert windows < judge["requests"] <= windows + sum(mini["judge_sent_back"].values()) and judge["output_tokens"] > 0
    assert judge["usd_live"] > 0 and rows["total"]["usd_live"] == pytest.approx(
        sum(r["usd_live"] for s, r in rows.items() if s != "total"), abs=1e-3)
    big = {r["stage"]: r for r in estimate("--judge", "gpt-4o")["stages"]}["judge"]
    # each at its own prices and image rule: gpt-4o-mini counts an image as ~33 times the tokens, at 1/17 the price
    assert judge["image_tokens"] > 20 * big["image_tokens"] and big["usd_live"] > 2 * judge["usd_live"]


def test_a_judge_that_is_the_generating_model_is_warned_about(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["build", "--no-progress", "--source", "dota", "--sample", "--dry-run",
                                      "--out", str(tmp_path / "out"), "--judge", "gpt-4o-2024-08-06",
                                      "--limit", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "is the generating model" in manifest["judge"]["warning"]
    assert "WARNING: the judge model gpt-4o-2024-08-06 is the generating model" in result.output


def test_a_judged_dry_run_is_byte_identical_twice_and_passes_validate(tmp_path: Path) -> None:
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        result = CliRunner().invoke(app, ["build", "--no-progress", "--source", "dota", "--sample", "--dry-run",
                                          "--out", str(out), "--judge", "gpt-4o-mini"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outs.append(out)
    for split in ("train.jsonl", "val.jsonl"):
        assert (outs[0] / split).read_bytes() == (outs[1] / split).read_bytes()
    validated = CliRunner().invoke(app, ["validate", str(outs[0])])
    assert validated.exit_code == 0, validated.output
    assert json.loads((outs[0] / "manifest.json").read_text())["judge"]["sent_back"]   # the way back is taken


def test_the_judge_request_goes_through_the_stage_request_path() -> None:
    requests = StageRequests(PromptSet.load(), load_config(overrides={"judge": {"model": "gpt-4o-mini"}}), "gpt-4o")
    from rsgpt4v.core.schema import Obj, Sample, Scene
    from rsgpt4v.prompting.stages import SentImage

    poly = ((10.0, 10.0), (30.0, 10.0), (30.0, 20.0), (10.0, 20.0))
    obj = Obj(category="large-vehicle", polygon=poly, box=(10.0, 10.0, 30.0, 20.0))
    sample = Sample(source="dota", split="train", image_id="x", image_path=Path("/x.png"), rel_image="x.png",
                    objects=(obj,), gsd=0.3)
    scene = Scene(sample=sample, window=(0, 0, 100, 100), objects=(obj,))
    image = SentImage(url="data:image/png;base64,iVBORw0KGgo=", width=100, height=100, scale=1.0)
    judged = judged_sentences({1: _note(1, "A white bus.")}, SCENE_TEXT, None, "k")
    req = requests.judge_request(scene, image, judged, None, 1)
    body = req.body()
    assert req.stage == "judge" and body["model"] == "gpt-4o-mini" and body["temperature"] == 0.0
    assert body["max_completion_tokens"] == 4000 and body["response_format"]["json_schema"]["name"] == "JudgeResponse"
    text = body["messages"][1]["content"][0]["text"]
    assert "- [1] large vehicle: box [0.10, 0.10, 0.30, 0.20], top left" in text
    assert "(about object [1]) A white bus." in text and "- 1 large vehicle" in text
    assert body["messages"][1]["content"][1]["image_url"]["url"] == image.url
    assert "Worked example" in body["messages"][0]["content"]
