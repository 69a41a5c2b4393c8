"""Open models on your own GPUs, proven offline: the fake server speaks as vLLM, SGLang, Ollama,
llama.cpp, LM Studio, OpenAI and Azure do (llm/personas.py), refusing json_schema, two images, a
system message or consecutive user messages, and wrapping answers in prose; every build through it
completes with the records a plain OpenAI build gets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import serving
from typer.testing import CliRunner, Result

from rsgpt4v.cli import app
from rsgpt4v.llm.doctor import PROBES
from rsgpt4v.llm.fakeserver import FakeAPI, FakeServer, Knobs
from rsgpt4v.llm.personas import PERSONAS, Quirks
from rsgpt4v.llm.profile import load_profile

ALL_QUIRKS = Quirks(no_json_schema=True, prose=True, max_images=1, strict_roles=True)
MODES = {"json_schema refused": Quirks(no_json_schema=True), "prose and fences": Quirks(prose=True),
         "one image per request": Quirks(max_images=1), "roles alternate, no system": Quirks(strict_roles=True),
         "all at once": ALL_QUIRKS}
# The server each bundled profile was written for; `generic` is for any of them, at their most refusing.
SERVER_OF = {"openai": ("openai", Quirks()), "azure": ("azure", Quirks()), "vllm": ("vllm", Quirks()),
             "sglang": ("sglang", Quirks()), "ollama": ("ollama", Quirks()), "llamacpp": ("llamacpp", Quirks()),
             "lmstudio": ("lmstudio", Quirks()), "generic": ("vllm", ALL_QUIRKS)}


def _run(*args: str, server: FakeServer | None = None) -> Result:
    env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-fake"} if server else {}
    return CliRunner().invoke(app, [*args], env=env, catch_exceptions=False)


def _build(out: Path, *args: str, server: FakeServer | None = None) -> tuple[Result, dict, bytes]:
    result = _run("build", "--no-progress", "--out", str(out), *args, server=server)
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").is_file() else {}
    records = b"".join(p.read_bytes() for p in sorted(out.glob("*.jsonl")))
    return result, manifest, records


def _images(body: dict) -> int:
    return sum(1 for m in body["messages"] if isinstance(m["content"], list)
               for p in m["content"] if p["type"] == "image_url")


@pytest.fixture(scope="module")
def sample_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, bytes]:
    """Two sample images built against plain OpenAI (the fake server as itself)."""
    with serving(Knobs()) as (server, _):
        result, manifest, records = _build(tmp_path_factory.mktemp("ref") / "out", "--source", "dota", "--sample",
                                           "--limit", "2", server=server)
    assert result.exit_code == 0, result.output
    return manifest, records


def test_the_fake_server_is_the_dry_runs_model(tmp_path: Path, sample_reference: tuple[dict, bytes]) -> None:
    """One mock, one naming: the same requests get the same answers whichever way the mock is reached."""
    result, _, records = _build(tmp_path / "dry", "--source", "dota", "--sample", "--limit", "2", "--dry-run")
    assert result.exit_code == 0, result.output
    assert records == sample_reference[1]


def test_dior_rsvg_through_the_fake_server_names_categories_as_the_dry_run(tmp_path: Path) -> None:
    """DIOR spells its labels run together (storagetank): the model is given the plain name, so the fake
    server's answers pass QC as the dry run's do."""
    from scripts.native_tree import write_tree

    write_tree(tmp_path / "data", per_source=5)
    root = tmp_path / "data" / "dior-rsvg"
    for xml in (root / "Annotations").glob("*.xml"):
        xml.write_text(xml.read_text().replace("vehicle", "storagetank"))
    args = ("--source", "dior-rsvg", "--root", str(root))
    dry, dry_manifest, dry_records = _build(tmp_path / "dry", *args, "--dry-run")
    with serving(Knobs()) as (server, bodies):
        live, manifest, records = _build(tmp_path / "live", *args, server=server)
    assert dry.exit_code == 0 and live.exit_code == 0, (dry.output, live.output)
    assert records == dry_records
    sent = "\n".join(p["text"] for b in bodies for m in b["messages"][1:] for p in m["content"] if p["type"] == "text")
    assert '"category": "storage tank"' in sent and "storagetank" not in sent
    assert b"storage tank" in records
    assert manifest["failures"]["count"] == dry_manifest["failures"]["count"] == 0


@pytest.mark.parametrize("profile", sorted(SERVER_OF))
def test_the_sample_builds_through_every_profile(tmp_path: Path, profile: str,
                                                 sample_reference: tuple[dict, bytes]) -> None:
    """Each bundled profile against the server it is for: the request bodies ask only what the profile
    says, and the build gets the reference's tasks and records."""
    persona, quirks = SERVER_OF[profile]
    settings = load_profile(profile)
    with serving(Knobs(emulate=persona, quirks=quirks)) as (server, bodies):
        result, manifest, records = _build(tmp_path / profile, "--source", "dota", "--sample", "--limit", "2",
                                           "--backend-profile", profile, server=server)
        assert server.stats.refused == 0
    assert result.exit_code == 0, result.output
    reference, reference_records = sample_reference
    assert manifest["counts"]["by_task"] == reference["counts"]["by_task"]
    assert manifest["failures"]["count"] == 0
    assert manifest["server"] == {"profile": profile, "given": True, "settings": settings.settings(), "switched": []}
    for body in bodies:
        assert settings.token_limit_param in body
        assert (settings.token_limit_param == "max_tokens") is ("max_completion_tokens" not in body)
        assert _images(body) <= settings.images_per_request
        assert ("system" in [m["role"] for m in body["messages"]]) is settings.system_role
        sent = (body.get("response_format") or {}).get("type", "none")
        assert sent == {"json_schema_strict": "json_schema"}.get(settings.structured_output,
                                                                  settings.structured_output)
    assert records == reference_records          # the same requests in substance, the same answers


@pytest.fixture(scope="module")
def p1888_plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[str, ...], dict, bytes]:
    """The real P1888 window built against plain OpenAI: its build arguments, manifest and records."""
    from conftest import REAL

    if not REAL.is_dir():
        pytest.skip(f"real-data fixtures not present at {REAL}")
    args = ("--source", "dota", "--root", str(REAL / "dota_v1.0"))
    with serving(Knobs()) as (server, _):
        result, manifest, records = _build(tmp_path_factory.mktemp("p1888") / "plain", *args, server=server)
    assert result.exit_code == 0 and manifest["failures"]["count"] == 0, result.output
    return args, manifest, records


@pytest.mark.parametrize("mode", sorted(MODES))
def test_p1888_completes_in_every_mode_with_no_profile_given(tmp_path: Path, mode: str,
                                                             p1888_plain: tuple[tuple[str, ...], dict, bytes]) -> None:
    """The dense real window (50 buses, 14 cars: three local requests) against a server with each
    refusal, and all at once: the build switches off what is refused, records it, and writes the
    records a plain server gives, with no failed stage answer and nothing asked twice that was paid."""
    args, plain, plain_records = p1888_plain
    with serving(Knobs(quirks=MODES[mode])) as (server, bodies):
        result, manifest, records = _build(tmp_path / "mode", *args, server=server)
        stats = server.stats
    assert result.exit_code == 0, result.output
    assert manifest["counts"]["by_task"] == plain["counts"]["by_task"]
    assert records == plain_records
    assert manifest["failures"]["count"] == 0
    assert stats.completed == plain["usage"]["api_calls"] == manifest["usage"]["api_calls"]   # refusals cost nothing
    switched = {(s["setting"], s["after"]) for s in manifest["server"]["switched"]}
    quirks = MODES[mode]
    assert (("structured_output", "json_object") in switched) is quirks.no_json_schema
    assert (("images_per_request", 1) in switched) is (quirks.max_images == 1)
    assert (("system_role", False) in switched) is quirks.strict_roles
    if switched:
        assert "the server refused features; switched for this run" in result.output
    assert len(bodies) == stats.completed
    if quirks.max_images == 1:   # the local stage's windows side by side in one image
        assert all(_images(b) == 1 for b in bodies)
        assert any("side by side" in json.dumps(b) for b in bodies)


def test_retries_join_the_request_when_roles_must_alternate(tmp_path: Path) -> None:
    """Unusable answers are asked again with the problem named: to a template that wants roles to
    alternate, the feedback goes into the one user message, and no window fails for it."""
    with serving(Knobs(quirks=Quirks(strict_roles=True), mistakes=0.4, seed=1)) as (server, bodies):
        result, manifest, _ = _build(tmp_path / "o", "--source", "dota", "--sample", server=server)
    assert result.exit_code == 0, result.output
    switched = [(s["setting"], s["after"]) for s in manifest["server"]["switched"]]
    assert switched == [("system_role", False), ("alternating_roles", True)]
    retried = [b for b in bodies if "Your previous answer could not be used" in json.dumps(b)]
    assert retried and all([m["role"] for m in b["messages"]] == ["user"] for b in retried[-3:])
    failures = manifest["failures"]["list"]
    assert not any(f["kind"] in ("api_400", "transport") for f in failures), failures


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_every_server_with_every_refusal_completes_p1888(tmp_path: Path, persona: str,
                                                         p1888_plain: tuple[tuple[str, ...], dict, bytes]) -> None:
    args, plain, plain_records = p1888_plain
    with serving(Knobs(emulate=persona, quirks=ALL_QUIRKS)) as (server, _):
        result, manifest, records = _build(tmp_path / "o", *args, server=server)
    assert result.exit_code == 0, result.output
    assert manifest["failures"]["count"] == 0 and records == plain_records
    assert manifest["server"]["settings"]["images_per_request"] == 1


def test_a_given_profile_stops_at_the_first_refusal_and_pays_nothing(tmp_path: Path) -> None:
    with serving(Knobs(emulate="vllm", quirks=Quirks(max_images=1))) as (server, _):
        result, manifest, records = _build(tmp_path / "o", "--source", "dota", "--sample", "--backend-profile",
                                           "vllm", server=server)
        assert server.stats.completed == 0 and server.stats.refused > 0
    assert result.exit_code == 1
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("WARNING: ")]
    assert len(lines) == 1 and lines[0].startswith(
        "error: the server refused this many images in one request (400: At most 1 image(s) may be provided in one "
        "prompt.): set images_per_request: 1 in the backend profile vllm (")
    assert manifest["status"] == "stopped" and manifest["failures"]["count"] == 0 and records == b""


def _doctor(server: FakeServer, *extra: str) -> Result:
    return _run("doctor", *extra, server=server)


@pytest.mark.parametrize("quirk, refused", [
    (Quirks(), set()),
    (Quirks(no_json_schema=True), {"response_format json_schema"}),
    (Quirks(no_json_object=True), {"response_format json_object"}),
    (Quirks(max_images=1), {"two images"}),
    (Quirks(strict_roles=True), {"system message", "two user messages in a row"}),
    (Quirks(prose=True), set()),
])
def test_doctor_names_each_refused_feature(quirk: Quirks, refused: set[str]) -> None:
    with serving(Knobs(quirks=quirk)) as (server, _):
        result = _doctor(server)
    assert result.exit_code == 0, result.output
    said = {line[2:32].strip(): line[32:].split()[0] for line in result.output.splitlines() if line.startswith("  ")}
    assert said == {name: "refused" if name in refused else "accepted"
                    for name in ["max_completion_tokens", *(p[0] for p in PROBES)]}


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_doctor_finds_the_profile_for_every_server(tmp_path: Path, persona: str) -> None:
    """With every refusal: the profile saved asks for none of them (Ollama ignores json_schema rather than
    refusing it; llama.cpp folds a system message in); a build with it is refused nothing."""
    saved = tmp_path / "found.yaml"
    with serving(Knobs(emulate=persona, quirks=ALL_QUIRKS)) as (server, _):
        result = _doctor(server, "--save", str(saved))
        assert result.exit_code == 0, result.output
        found = load_profile(saved)
        refused_by_doctor = server.stats.refused
        build, manifest, _ = _build(tmp_path / "o", "--source", "dota", "--sample", "--limit", "1",
                                    "--backend-profile", str(saved), server=server)
        refused_by_build = server.stats.refused - refused_by_doctor
    assert found.images_per_request == 1 and found.alternating_roles
    assert found.system_role is (persona == "llamacpp")
    assert found.structured_output == {"ollama": "json_schema_strict", "lmstudio": "none"}.get(persona, "json_object")
    assert build.exit_code == 0 and manifest["failures"]["count"] == 0
    assert refused_by_build == 0
    assert f"wrote {saved}" in result.output


def test_doctor_on_a_plain_server_suggests_a_bundled_profile() -> None:
    with serving(Knobs(emulate="vllm")) as (server, _):
        result = _doctor(server)
    assert "matches the bundled profile openai (the same settings as azure, vllm, sglang): --backend-profile openai" \
        in result.output


def test_doctor_on_no_server_is_one_line() -> None:
    result = CliRunner().invoke(app, ["doctor"], env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                                                      "OPENAI_API_KEY": "k"})
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith("error: cannot reach the server")


def test_the_fake_server_answers_a_body_cut_short_with_a_400_as_the_api_does() -> None:
    """A build that stops cancels its requests mid-send: the server gets half a body, and says so."""
    status, payload, _ = FakeAPI(Knobs()).handle("POST", "/v1/chat/completions", "application/json", b'{"model": "gp')
    assert status == 400 and payload["error"]["type"] == "invalid_request_error"
    assert payload["error"]["message"] == "We could not parse the JSON body of your request."
