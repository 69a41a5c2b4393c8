"""The one strict reader of the YAML files people write (config, recipes, price table, prompts), and
the one-line wording of what is wrong with them: `FILE:LINE: what is wrong`.

YAML accepts much that a config never means: a key given twice (the last one silently wins, so a
second `sources:` drops the first list), aliases that expand a few lines into millions of values
(an "alias bomb"), `.inf` and `.nan`, integers of thousands of digits, nesting a thousand levels
deep. The strict loader refuses each of them at the line where it occurs, before any value is
used; everything else reads as `yaml.safe_load` reads it. A pydantic model then checks what the
values mean (`validation_problem`, and `line_of` to find the line of the key at fault).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

# Bounds of what a hand-written config holds; far beyond any real one, far below what hurts.
MAX_DEPTH = 40
MAX_ALIAS_VALUES = 10_000
MAX_INT_DIGITS = 19  # 64-bit integers: seeds, caps and counts never need more

Lines = dict[tuple[Any, ...], int]


class UnreadableYAML(Exception):
    """A YAML file that cannot be read, parsed, or is refused by the strict rules: `file:line: what is
    wrong`, in one line; `line` is None when the file as a whole is at fault."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}" if line is not None else f"{path}: {reason}")
        self.path, self.line, self.reason = path, line, reason


class _Refused(yaml.YAMLError):
    """A construct the strict loader does not accept, at a mark."""

    def __init__(self, mark: yaml.Mark | None, problem: str) -> None:
        super().__init__(problem)
        self.problem_mark = mark
        self.problem = problem


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, deep nesting, non-finite floats and huge integers."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(self.peek_event().start_mark, f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` then a key is an override, YAML's own way of saying it
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first.get(key)
            except TypeError:
                continue  # an unhashable key: the base constructor says so
            if earlier is not None:
                raise _Refused(key_node.start_mark, f"key {key!r} is given twice in one mapping (first at line "
                                                    f"{earlier}); YAML would keep only the last")
            first[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(c.isdigit() for c in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise _Refused(node.start_mark, f"a number of {digits} digits; at most {MAX_INT_DIGITS} are accepted")
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise _Refused(node.start_mark, f"{node.value!r} is not a finite number")
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)
# `1e12` is a number to anyone who writes it (and to JSON and YAML 1.2); YAML 1.1 reads it as text,
# which would turn a typo'd weight into a confusing "expected a number, got '1e12'".
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+$"),
                                    list("-+0123456789"))


def _expanded(node: yaml.Node) -> dict[int, int]:
    """How many values each node stands for once every alias is expanded, by id; _Refused for an
    alias that holds itself. Shared nodes are counted once per use, each computed once, so a bomb
    is measured without being expanded."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(n: yaml.Node) -> int:
        known = sizes.get(id(n))
        if known is not None:
            return known
        if id(n) in open_nodes:
            raise _Refused(n.start_mark, "an alias refers to the value that holds it")
        open_nodes.add(id(n))
        total = 1 + sum(size(c) for c in _children(n))
        open_nodes.discard(id(n))
        sizes[id(n)] = total
        return total

    size(node)
    return sizes


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [c for pair in node.value for c in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _check_aliases(node: yaml.Node, what: str) -> None:
    """_Refused when aliases make the document stand for more than MAX_ALIAS_VALUES values beyond
    those it spells out, at the line of the innermost value that alone goes past the bound."""
    sizes = _expanded(node)
    added = sizes[id(node)] - _distinct(node)
    if added <= MAX_ALIAS_VALUES:
        return
    while True:
        big = [c for c in _children(node) if sizes[id(c)] > MAX_ALIAS_VALUES]
        if not big:
            break
        node = max(big, key=lambda c: sizes[id(c)])
    raise _Refused(node.start_mark, f"aliases expand the file by {added:,} values, more than the "
                                    f"{MAX_ALIAS_VALUES:,} a {what} may use (an alias bomb?)")


def _distinct(node: yaml.Node) -> int:
    seen: set[int] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        stack.extend(_children(n))
    return len(seen)


def _yaml_problem(exc: yaml.YAMLError) -> tuple[int | None, str]:
    """A YAML error as (line, one line of problem and column): PyYAML spreads them over four."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return None, problem
    return mark.line + 1, f"{problem}, column {mark.column + 1}" if not isinstance(exc, _Refused) else problem


def parse_yaml(data: bytes | str, path: Path, what: str) -> tuple[Any, Lines]:
    """The value of the YAML document `data` (the file `path`, a `what`) read strictly, and the line
    of every key and item (`lines`, keyed by the path of keys and indices); UnreadableYAML naming
    file and line otherwise."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise UnreadableYAML(path, None, f"not UTF-8 text (byte {exc.start + 1}); save the {what} as UTF-8") from None
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _check_aliases(node, what)
        value = loader.construct_document(node)
    except RecursionError:
        raise UnreadableYAML(path, None, f"nested too deeply to be a {what}") from None
    except _Refused as exc:
        line, problem = _yaml_problem(exc)
        raise UnreadableYAML(path, line, problem) from None
    except yaml.YAMLError as exc:
        line, problem = _yaml_problem(exc)
        raise UnreadableYAML(path, line, f"not valid YAML ({problem})") from None
    finally:
        loader.dispose()
    lines: Lines = {}
    _lines(node, (), lines)
    return value, lines


def read_yaml(path: Path, what: str) -> tuple[Any, Lines]:
    """The YAML file `path`, a `what` (a config, a price table), read strictly (see `parse_yaml`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UnreadableYAML(path, None, f"cannot read {what} ({exc.strerror or exc})") from None
    return parse_yaml(data, Path(path), what)


def _lines(root: yaml.Node, path: tuple[Any, ...], out: Lines) -> None:
    """Line (1-based) of every value in the composed YAML, keyed by its path of keys and indices; a
    key's own line where its value starts below it. Aliases are not followed (their lines are the
    anchor's)."""
    stack = [(root, path)]
    seen: set[int] = set()
    while stack:
        node, where = stack.pop()
        out.setdefault(where, node.start_mark.line + 1)
        if id(node) in seen:
            continue
        seen.add(id(node))
        children: list[tuple[yaml.Node, tuple[Any, ...]]] = []
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
                out[(*where, name)] = key.start_mark.line + 1
                children.append((value, (*where, name)))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, (*where, i)) for i, item in enumerate(node.value)]
        stack.extend(reversed(children))  # in document order, so an anchor is visited before its aliases


def line_of(lines: Lines, loc: tuple[Any, ...]) -> int | None:
    """The line of the value at `loc`, or of its nearest enclosing value the file holds; None when
    the file holds none of it (a default, a command-line flag)."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def validation_problem(exc: ValidationError) -> str:
    """The first fault pydantic found, as "key.path: what is wrong" (or "key.path: no 'key' entry")."""
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    missing = first["type"] == "missing"
    where = ".".join(loc[:-1] if missing else loc)
    what = f"no {loc[-1]!r} entry" if missing else first["msg"].removeprefix("Value error, ")
    return f"{where}: {what}" if where else what


def validation_line(exc: ValidationError, lines: Lines) -> int | None:
    """The line of the file holding the first fault pydantic found, when the file holds it."""
    return line_of(lines, tuple(exc.errors()[0]["loc"]))
