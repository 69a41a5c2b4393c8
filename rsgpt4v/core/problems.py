"""One-line wording of what is wrong with a file the package reads: YAML that cannot be read or
parsed, a value a pydantic model refuses. Config, price table, prompts and run report all say it
the same way; each caller adds its file and its own error class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


class UnreadableYAML(Exception):
    """A YAML file that cannot be read or parsed: `file: what is wrong`, in one line."""


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error as one line: its problem and where (PyYAML spreads them over four)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def read_yaml(path: Path, what: str) -> Any:
    """The parsed YAML in `path`, a `what` (a config, a price table); UnreadableYAML says why not."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UnreadableYAML(f"{path}: cannot read {what} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise UnreadableYAML(f"{path}: not UTF-8 text (byte {exc.start + 1}); save the {what} as UTF-8") from None
    except RecursionError:
        raise UnreadableYAML(f"{path}: nested too deeply to be a {what}") from None
    except yaml.YAMLError as exc:
        raise UnreadableYAML(f"{path}: not valid YAML ({yaml_problem(exc)})") from None


def validation_problem(exc: ValidationError) -> str:
    """The first fault pydantic found, as "key.path: what is wrong" (or "key.path: no 'key' entry")."""
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    missing = first["type"] == "missing"
    where = ".".join(loc[:-1] if missing else loc)
    what = f"no {loc[-1]!r} entry" if missing else first["msg"].removeprefix("Value error, ")
    return f"{where}: {what}" if where else what
