"""Where a build may write: the one place that decides.

Every output path is built from parts that come from the data (source and split names) and checked
twice: each part must be a safe name (letters, digits, `.`, `_`, `-`, not starting with `.`, no
separators, no NUL), and the joined path must stay under the output folder once symlinks are
resolved. Adapters use `safe_name` to turn an unusable split into an input issue; the dataset
writer uses `under` as the last guard before anything touches the disk.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
SAFE_NAME_RULE = "1-100 letters, digits, '.', '_' or '-', not starting with '.'"


# File systems allow 255 bytes a name; the writers add an extension and suffixes (`__from3.png`).
MAX_NAME_BYTES = 200


def fitted(relative: str) -> str:
    """`relative` with each of its parts that is too long for a file name shortened: its first
    characters, `~`, and a digest of the whole part, so two long names stay two names and a rerun
    gives the same one."""
    parts = []
    for part in relative.split("/"):
        raw = part.encode("utf-8", "surrogateescape")
        if len(raw) > MAX_NAME_BYTES:
            head = raw[:MAX_NAME_BYTES - 40].decode("utf-8", "ignore")
            part = f"{head}~{hashlib.sha256(raw).hexdigest()[:16]}"
        parts.append(part)
    return "/".join(parts)


def is_within(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies inside it, symbolic links resolved: where a command that reads
    `folder` must not write (merge, export, preview never write into a folder they read)."""
    target, inside = Path(path).resolve(), Path(folder).resolve()
    return target == inside or target.is_relative_to(inside)


class UnsafePath(ValueError):
    """A name or path that would write outside the output folder or is not a usable file name."""


def safe_name(value: object) -> bool:
    """Whether `value` may be one component of an output path (a split or source name)."""
    return isinstance(value, str) and _SAFE.fullmatch(value) is not None


def check_name(value: str, what: str) -> str:
    """`value`, or UnsafePath naming `what` it is (a split, a source) and the rule it breaks."""
    if not safe_name(value):
        raise UnsafePath(f"{what} {value!r} cannot be a file name ({SAFE_NAME_RULE})")
    return value


def under(out: Path, relative: str, within: Path | None = None) -> Path:
    """`out / relative`, or UnsafePath when that would leave `out` (absolute, `..`), or leave `within`
    (default `out`) through a symbolic link. A recipe's part folder links its images/ to the whole
    build's, so its writes may follow that link but no further than the build's own folder."""
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts or "\x00" in relative:
        raise UnsafePath(f"{relative!r} would be written outside {out}")
    path = out / candidate
    bound = within or out
    if not path.resolve().is_relative_to(bound.resolve()):
        raise UnsafePath(f"{relative!r} would be written outside {bound} (through a symbolic link)")
    return path
