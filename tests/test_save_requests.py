"""`build --save-requests` keeps every request body as the server received it, images shortened, so a
person can read the prompts as rendered (prompts/README.md asks them to)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from conftest import serving
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm.fakeserver import Knobs


def _short(url: str) -> str:
    head, _, data = url.partition(",")
    return f"{head},<{len(base64.b64decode(data)):,} bytes, sha256:{hashlib.sha256(url.encode()).hexdigest()[:16]}...>"


def test_saved_requests_are_the_bodies_the_server_received(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with serving(Knobs()) as (server, bodies):
        result = CliRunner().invoke(app, ["build", "--source", "dota", "--sample", "--no-progress", "--limit", "1",
                                          "--save-requests", "--out", str(out)],
                                    env={"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-test"})
    assert result.exit_code == 0, result.output
    saved = sorted((out / "requests").rglob("*.json"))
    assert len(saved) == len(bodies) > 0
    expected = []
    for body in bodies:
        for message in body["messages"]:
            for part in message["content"] if isinstance(message["content"], list) else []:
                if part["type"] == "image_url":
                    part["image_url"]["url"] = _short(part["image_url"]["url"])
        expected.append(body)
    key = lambda b: json.dumps(b, sort_keys=True)  # noqa: E731
    assert sorted(map(key, (json.loads(p.read_text()) for p in saved))) == sorted(map(key, expected))
    stages = {p.name.split("-")[0] for p in saved}
    assert stages == {"local", "global", "dialogue"}
    assert all(p.relative_to(out / "requests").parts[:3] == ("dota", "train", "P9001") for p in saved)


def test_without_the_flag_no_request_is_kept(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["build", "--source", "dota", "--sample", "--dry-run", "--no-progress",
                                      "--limit", "1", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out" / "requests").exists()
