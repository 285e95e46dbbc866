"""Rules of the layout that import-linter does not check: no module takes a private name from
another package, and every docs page the code points at exists."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OURS = ("harness", "candidates", "leaderboard", "records")


def _modules(root: Path = REPO) -> dict[str, Path]:
    found = {"bench": root / "bench.py"} if (root / "bench.py").is_file() else {}
    for package in OURS:
        for path in sorted((root / package).rglob("*.py")):
            name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def _package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports(root: Path = REPO) -> list[str]:
    """`from X import _name` and `alias._name` where X is ours and in another package."""
    modules = _modules(root)
    problems = []
    for module, path in modules.items():
        here = _package(module, path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}  # local name -> our module it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] in OURS:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if target in modules:  # `from harness.run import store`: a module
                        aliases[alias.asname or alias.name] = target
                    elif _private(alias.name) and _package(node.module, modules.get(node.module, path)) != here:
                        problems.append(f"{path.relative_to(root)}:{node.lineno}: {node.module}.{alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.asname:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and _private(node.attr)):
                target = aliases[node.value.id]
                if _package(target, modules[target]) != here:
                    problems.append(f"{path.relative_to(root)}:{node.lineno}: {target}.{node.attr}")
    return problems


def test_no_module_takes_a_private_name_from_another_package():
    assert private_imports() == []


def test_the_check_finds_a_private_import(tmp_path):
    """The rule above can fail: a tree where run/ takes score/'s private name, two ways."""
    for folder, source in (
        ("harness/score", "def _normalizer(): ...\n"),
        ("harness/run", "from harness.score.metrics import _normalizer\nfrom harness.score import metrics\n"
                        "metrics._normalizer()\nfrom harness.run.child import _same_package\n"),
    ):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
        (tmp_path / folder / ("metrics.py" if "score" in folder else "record.py")).write_text(source)
    (tmp_path / "harness/run/child.py").write_text("_same_package = 1\n")
    assert private_imports(tmp_path) == ["harness/run/record.py:1: harness.score.metrics._normalizer",
                                         "harness/run/record.py:3: harness.score.metrics._normalizer"]


def test_every_docs_page_the_code_points_at_exists():
    missing = []
    for path in _modules().values():
        for page in re.findall(r"docs/[\w./-]+?\.md", path.read_text(encoding="utf-8")):
            if not (REPO / page).is_file():
                missing.append(f"{path.relative_to(REPO)}: {page}")
    assert missing == []


def test_no_code_points_at_a_design_file_or_readme_section_that_moved():
    stale = []
    for path in _modules().values():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "DESIGN.md" in line or re.search(r"README('s)? (section|candidate)", line):
                stale.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert stale == []


def test_a_candidate_file_naming_a_moved_module_is_told_the_new_path():
    import pytest

    from candidates.families.transformers_base import MOVED_MODULES, resolve_class

    for old, new in MOVED_MODULES.items():
        with pytest.raises(ValueError, match=f'moved; write "{new}:X"'):
            resolve_class(f"{old}:X")
        assert importlib.import_module(new)
