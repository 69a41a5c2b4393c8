"""The package's imports form layers: a module imports only from its own layer or those below it.

`llm/` knows nothing of datasets, prompts or records; post-build tools (validate, stats, preview,
export, merge) know nothing of the pipeline. A new module must be placed in a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rsgpt4v"

# Bottom to top. A module is named by its dotted path under rsgpt4v; a package stands for its modules.
LAYERS: list[set[str]] = [
    {"core"},
    {"language"},
    {"imaging"},
    {"records", "quality", "llm", "sources"},
    {"prompting"},
    {"tasks"},
    {"builder"},
    {"tools"},
    {"cli", "__main__", ""},
]
# Post-build tools read what a build wrote; they must not reach into how it was made.
BUILD_ONLY = {"builder", "prompting", "llm", "tasks", "sources", "quality"}
# What a model server needs to know: no dataset names, records or images.
LLM_MAY_IMPORT = {"core", "language.words", "llm"}


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


def _layer(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if module in layer or module.split(".")[0] in layer:
            return i
    raise AssertionError(f"rsgpt4v.{module} is in no layer of tests/test_layers.py: place it")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        found |= {n.removeprefix("rsgpt4v").lstrip(".") for n in names if n.split(".")[0] == "rsgpt4v"}
    return found


def test_every_import_points_down_or_sideways() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _name(path)
        for target in _imports(path):
            if target and _layer(target) > _layer(module):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_the_package_root_holds_only_the_cli_and_subpackages() -> None:
    root_modules = {p.name for p in PACKAGE.glob("*.py")}
    assert root_modules == {"__init__.py", "__main__.py"}
    assert (PACKAGE / "cli" / "__init__.py").is_file()
    code_dirs = {p.parent for p in PACKAGE.rglob("*.py")} - {PACKAGE}
    assert all((d / "__init__.py").is_file() for d in code_dirs), sorted(map(str, code_dirs))


def test_llm_knows_nothing_of_datasets_records_or_images() -> None:
    for path in sorted((PACKAGE / "llm").rglob("*.py")):
        reached = {t for t in _imports(path) if t}
        assert all(t.split(".")[0] in {"core", "llm"} or t in LLM_MAY_IMPORT for t in reached), (path, reached)


def test_post_build_tools_know_nothing_of_the_pipeline() -> None:
    for path in sorted((PACKAGE / "tools").rglob("*.py")):
        reached = {t.split(".")[0] for t in _imports(path)}
        assert not reached & BUILD_ONLY, (path, reached & BUILD_ONLY)
