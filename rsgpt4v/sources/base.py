"""The interface every source adapter implements, and helpers adapters share.

An adapter reads one dataset family from its original on-disk layout and yields, in a stable
order, `Sample`s and `Issue`s (skipped samples or lines, warnings); it never raises on bad data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from rsgpt4v.schema import Issue, Sample


class SourceError(Exception):
    """The root given cannot be read as this source at all (wrong folder, nothing found)."""


class Source(ABC):
    """A dataset family on disk.

    Subclasses set `name` (the `--source` value), `description` (one line for `rsgpt4v sources`),
    `vocabulary` (known category names, may be empty) and `task_kind` ("detection", "caption", ...).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    vocabulary: ClassVar[tuple[str, ...]] = ()
    task_kind: ClassVar[str] = "detection"

    def __init__(self, root: Path, split: str | None = None) -> None:
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise SourceError(f"--root {self.root} is not a folder")

    @abstractmethod
    def __iter__(self) -> Iterator[Sample | Issue]:
        """Samples and issues, in a deterministic order."""

    def relative(self, path: Path) -> str:
        """`path` relative to the root, with forward slashes, for provenance and messages."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()
