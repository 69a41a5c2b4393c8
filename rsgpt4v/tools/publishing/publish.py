"""Publishing an `hf` export: its dataset card and Croissant file, written from the rows the export
wrote and the build's manifest (`rsgpt4v.tools.publishing.publication`), and the folder's upload to the Hugging
Face Hub with `huggingface_hub` (the optional `hub` extra).

The upload is `HfApi.create_repo` (a dataset repository, kept if it exists) then `upload_folder`
of the export folder, whose README.md the Hub validates before accepting the commit. The endpoint
and token are huggingface_hub's own settings: `HF_ENDPOINT` (default https://huggingface.co) and
`HF_TOKEN` or a `hf auth login`.
"""

from __future__ import annotations

from pathlib import Path

from rsgpt4v import __version__
from rsgpt4v.core.report import ReportError, RunReport
from rsgpt4v.tools.publishing.card import write_card
from rsgpt4v.tools.publishing.croissant import write_croissant
from rsgpt4v.tools.publishing.hf_folder import HfForm
from rsgpt4v.tools.publishing.publication import Tally, gather

HUB_INSTALL = 'pip install "rsgpt4v[hub]"'
# Files an interrupted export leaves beside its outputs: never published.
_NOT_PUBLISHED = ["*.partial", "*.tmp", "**/*.partial", "**/*.tmp"]


class HubError(Exception):
    """An upload that did not happen; the message says why."""


def describe(out: Path, dest: Path, form: HfForm, data_files: dict[str, list[Path]], tally: Tally,
             repo: str | None, left_out: int, problems: list[str]) -> list[Path]:
    """Write DEST's dataset card (README.md, LICENSE.md, figures/) and croissant.json; the paths written.
    A manifest that cannot be read is named in `problems` and the card says how the data was made is unknown."""
    manifest = None
    path = out / "manifest.json"
    if path.is_file():
        try:
            manifest = RunReport.read(path)
        except ReportError as exc:
            problems.append(f"{exc}; the dataset card cannot say how the records were made")
    pub = gather(dest, form, data_files, tally, manifest, repo, left_out)
    return [*write_card(pub), write_croissant(pub)]


def push_to_hub(folder: Path, repo: str, private: bool = False) -> str:
    """Upload `folder` to the Hub dataset repository `repo` (created if missing); the commit's URL."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise HubError(f"--push-to-hub needs huggingface_hub: {HUB_INSTALL}") from None
    api = HfApi()
    try:
        api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=repo, repo_type="dataset", folder_path=folder,
                                   commit_message=f"Upload an rsgpt4v {__version__} export",
                                   ignore_patterns=_NOT_PUBLISHED)
    except (ValueError, OSError) as exc:  # huggingface_hub's HTTP and connection errors are OSErrors
        said = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        raise HubError(f"upload of {folder} to {repo} failed: {said}") from None
    return commit.commit_url
