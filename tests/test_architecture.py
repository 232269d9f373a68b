"""The import graph follows docs/architecture.rst, and the page lists every module.

The layers are read from the page itself, so the page and the code cannot
drift apart: an upward import, an import between two stages of one layer, a
cycle between two modules (a deferred import inside a function counts), a
private name imported from another stage, a module missing from the page or a
page entry without a module each fail here with the offending names.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sklearn_llmconf"
PAGE = ROOT / "docs" / "architecture.rst"
# The one module whose job is to re-export scikit-learn's private names.
PRIVATE_REEXPORTS = {"sklearn_llmconf.utils._sklearn_compat"}


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _stage(module):
    """The stage of a module: its top-level module or subpackage."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(module):
    """``(target module, imported names, line)`` for every import in ``module``.

    Every import statement counts, at module level or inside a function. A
    ``from package import name`` where ``name`` is a submodule targets the
    submodule.
    """
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names
                    if a.name.split(".")[0] == "sklearn_llmconf"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "sklearn_llmconf":
                continue
            names = [a.name for a in node.names]
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if submodules:
                out += [(s, [], node.lineno) for s in submodules]
            else:
                out.append((target, names, node.lineno))
    return out


def _layers():
    """``{stage: layer}`` from the code block of the page's "Layers" section."""
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("\nLayers\n======\n", 1)[1].split("\nModules\n=======\n", 1)[0]
    layers = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\s{3}(\d+)\s+(.+)", line)
        if match:
            for stage in match.group(2).split():
                layers[stage] = int(match.group(1))
    return layers


LAYERS = _layers()


def test_every_stage_has_a_layer():
    stages = {_stage(m) for m in MODULES} - {""}
    assert stages - set(LAYERS) == set(), "stages missing from the Layers table"
    assert set(LAYERS) - stages == set(), "the Layers table names no such stage"


def test_imports_point_down_the_layers():
    wrong = []
    for module in MODULES:
        source = _stage(module)
        for target, _, line in _imports(module):
            if target == "sklearn_llmconf":
                wrong.append(f"{module}:{line} imports the package root")
                continue
            dest = _stage(target)
            if not source or dest == source:
                continue  # the package root re-exports; a stage imports itself
            if LAYERS[dest] >= LAYERS[source]:
                wrong.append(f"{module}:{line} ({source}, layer {LAYERS[source]}) "
                             f"imports {target} ({dest}, layer {LAYERS[dest]})")
    assert wrong == []


def test_no_private_name_crosses_a_stage():
    wrong = []
    for module in MODULES:
        for target, names, line in _imports(module):
            if _stage(target) == _stage(module) or target in PRIVATE_REEXPORTS:
                continue
            wrong += [f"{module}:{line} imports {target}.{n}" for n in names
                      if n.startswith("_")]
    assert wrong == []


def _cycles(graph):
    """The strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_modules():
    graph = {m: {t for t, _, _ in _imports(m) if t in MODULES} for m in MODULES}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    # The check above could pass by finding nothing at all.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c"]]


def _page_modules():
    """``{"folder/module.py"}`` listed under the page's "Modules" section."""
    text = PAGE.read_text(encoding="utf-8").split("\nModules\n=======\n", 1)[1]
    lines = text.splitlines()
    listed, folders, folder = set(), set(), None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1]) and line:
            # Folders are named from the package: "sklearn_llmconf/" is its root.
            folder = "" if line.strip() == "sklearn_llmconf/" else line.strip()
            folders.add(folder)
            continue
        match = re.fullmatch(r"``([\w.]+\.py)``", line)
        if match:
            assert folder is not None, f"{line} listed before any folder heading"
            listed.add(folder + match.group(1))
    return listed, folders


def test_the_architecture_page_lists_every_module():
    listed, folders = _page_modules()
    actual = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
              if p.name != "__init__.py"}
    packages = {(p.parent.relative_to(PACKAGE).as_posix() + "/").lstrip("./")
                for p in PACKAGE.rglob("__init__.py")}
    assert actual - listed == set(), "modules missing from docs/architecture.rst"
    assert listed - actual == set(), "docs/architecture.rst lists missing modules"
    # A package whose only module is __init__.py needs no heading.
    assert {f for f in folders if f not in packages} == set()


@pytest.mark.parametrize("source, target", [
    ("sklearn_llmconf.backends._base", "sklearn_llmconf.scoring._engine"),
    ("sklearn_llmconf.utils._warn", "sklearn_llmconf.backends._base"),
    ("sklearn_llmconf.prompts._template", "sklearn_llmconf.backends._base"),
])
def test_the_layer_rule_refuses_known_upward_imports(source, target):
    # The imports this layout removed (issue 34) would each break the rule.
    assert LAYERS[_stage(target)] >= LAYERS[_stage(source)]
