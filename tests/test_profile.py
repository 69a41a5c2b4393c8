"""Backend profiles shape every request in one place (ChatRequest.body), and a server's refusal of a
feature is recognised from its words and switches that feature off (or, with a profile given,
stops the run naming the setting)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import openai
import pytest

from rsgpt4v.core.responses import GlobalResponse, LocalResponse
from rsgpt4v.llm.personas import PERSONAS, Quirks, refusal
from rsgpt4v.llm.profile import BackendProfile, ProfileError, bundled_profiles, load_profile
from rsgpt4v.llm.refusals import AdaptiveProfile, Feature, FeatureRefused, Refusal, adaptive, refusal_of
from rsgpt4v.llm.request import ChatRequest, cache_key_of, strict_json_schema

BUNDLED = ("azure", "generic", "llamacpp", "lmstudio", "ollama", "openai", "sglang", "vllm")
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}}


def _request(retry: bool = False) -> ChatRequest:
    messages = [{"role": "system", "content": "You describe scenes."},
                {"role": "user", "content": [{"type": "text", "text": "Describe it."}, IMAGE, IMAGE]}]
    if retry:
        messages.append({"role": "user", "content": "Your previous answer could not be used: no caption."})
    one = ChatRequest("global", "m", [messages[0], {"role": "user", "content": [
        {"type": "text", "text": "Both windows side by side."}, IMAGE]}, *messages[2:]], GlobalResponse,
        {"max_completion_tokens": 800, "temperature": 0.5})
    return ChatRequest("global", "m", messages, GlobalResponse, {"max_completion_tokens": 800, "temperature": 0.5},
                       one_image=lambda: one)


def test_every_bundled_profile_loads() -> None:
    assert tuple(bundled_profiles()) == BUNDLED
    for name in BUNDLED:
        profile = load_profile(name)
        assert profile.name == name and profile.description


def test_the_default_profile_sends_what_openai_was_always_sent() -> None:
    request = _request()
    body = request.body(load_profile("openai"))
    assert body == request.body() == {
        "model": "m", "messages": request.messages, "max_completion_tokens": 800, "temperature": 0.5,
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "GlobalResponse", "schema": strict_json_schema(GlobalResponse), "strict": True}}}


def test_the_generic_profile_shapes_every_feature() -> None:
    body = _request(retry=True).body(load_profile("generic"))
    assert "response_format" not in body and "max_completion_tokens" not in body and body["max_tokens"] == 800
    assert [m["role"] for m in body["messages"]] == ["user"]            # no system, retry joined
    parts = body["messages"][0]["content"]
    texts = [p["text"] for p in parts if p["type"] == "text"]
    assert texts[0].startswith("You describe scenes.\n\nAnswer with one JSON object and nothing else")
    schema = json.loads(texts[0].split("JSON Schema (GlobalResponse):\n", 1)[1])
    assert schema == strict_json_schema(GlobalResponse)
    assert texts[1:] == ["Both windows side by side.", "Your previous answer could not be used: no caption."]
    assert sum(p["type"] == "image_url" for p in parts) == 1             # the one-image form


@pytest.mark.parametrize("mode, response_format", [
    ("json_schema_strict", {"type": "json_schema", "strict": True}),
    ("json_schema", {"type": "json_schema", "strict": False}),
    ("json_object", {"type": "json_object"}),
    ("none", None),
])
def test_structured_output_modes(mode: str, response_format: dict | None) -> None:
    body = _request().body(BackendProfile(name="x", structured_output=mode))
    sent = body.get("response_format")
    if response_format is None:
        assert sent is None
    else:
        assert sent["type"] == response_format["type"]
        if "strict" in response_format:
            assert sent["json_schema"]["strict"] is response_format["strict"]
    schema_in_prompt = "JSON Schema (GlobalResponse)" in body["messages"][0]["content"]
    assert schema_in_prompt is (mode in ("json_object", "none"))


def test_a_request_with_more_images_than_allowed_and_no_one_image_form_is_a_bug() -> None:
    request = ChatRequest("local", "m", _request().messages, LocalResponse)
    with pytest.raises(ValueError, match="carries 2 images and has no one-image form"):
        request.body(BackendProfile(name="x", images_per_request=1))


def test_the_verdict_key_is_the_canonical_body_whatever_the_server() -> None:
    """Answers are cached under the body as sent; a request's verdict under its canonical body."""
    request = _request()
    assert request.cache_key() == cache_key_of(request.body(load_profile("openai")))
    assert cache_key_of(request.body(load_profile("generic"))) != request.cache_key()


@pytest.mark.parametrize("text, problem", [
    ("images_per_request: 0\n", "images_per_request: Input should be greater than or equal to 1"),
    ("structured_output: json\n", "structured_output: Input should be 'json_schema_strict', 'json_schema', "
                                  "'json_object' or 'none'"),
    ("system_roles: false\n", "system_roles: Extra inputs are not permitted"),
])
def test_a_bad_profile_file_is_one_line_naming_it(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    assert str(caught.value) == f"{path}:1: not a backend profile ({problem})"


def test_an_unknown_profile_name_lists_the_bundled_ones() -> None:
    with pytest.raises(ProfileError, match=r"'vlm' is neither a bundled profile \(azure, generic, .*vllm\) nor a file"):
        load_profile("vlm")


def _error(status: int, payload: dict) -> openai.APIStatusError:
    """The client's own exception for a server's error reply, as the engine receives it."""
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, json=payload)
    client = openai.OpenAI(api_key="k", base_url="http://x.invalid/v1", max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    return caught.value


_BODIES = {
    "json_schema": {"response_format": {"type": "json_schema"}, "messages": []},
    "json_object": {"response_format": {"type": "json_object"}, "messages": []},
    "images": {"messages": [{"role": "user", "content": [IMAGE, IMAGE]}]},
    "system": {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]},
    "alternation": {"messages": [{"role": "user", "content": "u"}, {"role": "user", "content": "v"}]},
}
_FEATURE = {"json_schema": Feature.RESPONSE_FORMAT, "json_object": Feature.RESPONSE_FORMAT, "images": Feature.IMAGES,
            "system": Feature.SYSTEM_ROLE, "alternation": Feature.ALTERNATION}
_QUIRKS = {"json_schema": Quirks(no_json_schema=True), "json_object": Quirks(no_json_object=True),
           "images": Quirks(max_images=1), "system": Quirks(strict_roles=True), "alternation": Quirks(strict_roles=True)}


@pytest.mark.parametrize("server", sorted(PERSONAS))
@pytest.mark.parametrize("what", sorted(_BODIES))
def test_every_servers_refusal_is_recognised_through_the_client(server: str, what: str) -> None:
    """Each persona's words, status and envelope (llm/personas.py) name the feature to the client."""
    reply = refusal(PERSONAS[server], _QUIRKS[what], _BODIES[what])
    if reply is None:     # this server never refuses it (Ollama ignores json_schema; llama.cpp folds system in)
        assert (server, what) in {("ollama", "json_schema"), ("llamacpp", "system")}
        return
    found = refusal_of(_error(*reply))
    assert found is not None and found.feature == _FEATURE[what], (server, what, reply)
    if what == "images":
        assert found.limit == (1 if "1" in found.message else None)


def test_errors_that_refuse_no_feature_are_not_refusals() -> None:
    assert refusal_of(_error(400, {"error": {"message": "Invalid image: cannot identify image file"}})) is None
    assert refusal_of(_error(503, {"error": {"message": "System role not supported"}})) is None   # not a refusal status
    assert refusal_of(_error(429, {"error": {"message": "Rate limit reached"}})) is None


def _refused(feature: Feature, message: str, limit: int | None = None) -> Refusal:
    return Refusal(feature, 400, message, limit)


def test_with_no_profile_each_refusal_switches_its_feature_off_once() -> None:
    server = adaptive(None)
    assert (server.profile.name, server.given) == ("auto", False)
    start = server.profile
    server.adapt(_refused(Feature.RESPONSE_FORMAT, "json_schema not supported"), _BODIES["json_schema"], start)
    assert server.profile.structured_output == "json_object"
    # a request shaped before that switch and refused for the same reason is simply shaped again
    server.adapt(_refused(Feature.RESPONSE_FORMAT, "json_schema not supported"), _BODIES["json_schema"], start)
    assert len(server.switches) == 1
    now = server.profile
    server.adapt(_refused(Feature.RESPONSE_FORMAT, "'response_format.type' must be 'json_schema' or 'text'"),
                 _BODIES["json_object"], now)
    server.adapt(_refused(Feature.IMAGES, "At most 1 image(s)", 1), _BODIES["images"], server.profile)
    server.adapt(_refused(Feature.ALTERNATION, "roles must alternate"), _BODIES["alternation"], server.profile)
    # an old Mistral template trips over a leading system message with the alternation error
    server.adapt(_refused(Feature.ALTERNATION, "roles must alternate"), _BODIES["system"], server.profile)
    assert server.profile.settings() == {"structured_output": "none", "token_limit_param": "max_completion_tokens",
                                         "images_per_request": 1, "system_role": False, "alternating_roles": True}
    assert [(s.setting, s.before, s.after) for s in server.switches] == [
        ("structured_output", "json_schema_strict", "json_object"), ("structured_output", "json_object", "none"),
        ("images_per_request", 10, 1), ("alternating_roles", False, True), ("system_role", True, False)]
    with pytest.raises(FeatureRefused, match="no backend profile setting avoids it"):
        server.adapt(_refused(Feature.ALTERNATION, "roles must alternate"), {"messages": []}, server.profile)


def test_a_given_profile_stops_at_the_first_refusal_naming_the_setting() -> None:
    server = adaptive("vllm")
    with pytest.raises(FeatureRefused) as caught:
        server.adapt(_refused(Feature.IMAGES, "At most 1 image(s) may be provided in one prompt.", 1),
                     _BODIES["images"], server.profile)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("the server refused this many images in one request (400: At most 1 image(s) may be "
                              "provided in one prompt.): set images_per_request: 1 in the backend profile vllm (")
    assert server.switches == [] and server.profile == load_profile("vllm")


def test_a_model_that_takes_no_image_cannot_be_adapted_to() -> None:
    server = AdaptiveProfile(load_profile("generic"), given=False)
    with pytest.raises(FeatureRefused, match="the model takes no images"):
        server.adapt(_refused(Feature.IMAGES, "image input is not supported"),
                     {"messages": [{"role": "user", "content": [IMAGE]}]}, server.profile)
