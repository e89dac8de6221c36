"""The package's shape, checked on its source: no import cycles, imports at the top (a function
imports only a heavy or optional library, and says why), no function over 60 lines, and a
library that never reaches for the command line.

Each check reads every module of ``pythia/`` with :mod:`ast`; none imports the package.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pythia"
MAX_FUNCTION_LINES = 60
WRAPPERS = {"pythia.evaluate.lm_eval_adapter": "lm_eval"}
"""Project modules that exist to subclass or patch a heavy library (imported at their top), and
so may be imported inside a function, with a ``# heavy`` comment, like the library itself."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _comments(path: Path) -> dict[int, str]:
    """Line number -> the comment on that line."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return {t.start[0]: t.string for t in tokens if t.type == tokenize.COMMENT}


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement of ``module`` names, absolute."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:  # relative
        is_package = MODULES[module].name == "__init__.py"
        base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    # `from pythia.x import y` imports the module pythia.x.y when there is one
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]


def _in_type_checking(tree: ast.Module) -> set[int]:
    """ids of import nodes under ``if TYPE_CHECKING:`` (never executed)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def _functions(tree: ast.Module):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _local_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    seen: dict[int, ast.Import | ast.ImportFrom] = {}
    for fn in _functions(tree):
        for n in ast.walk(fn):
            if isinstance(n, (ast.Import, ast.ImportFrom)):
                seen[id(n)] = n
    return list(seen.values())


def import_graph() -> nx.DiGraph:
    """pythia module -> the pythia modules it imports, wherever the import statement is."""
    graph = nx.DiGraph()
    graph.add_nodes_from(MODULES)
    for name, tree in TREES.items():
        skip = _in_type_checking(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skip:
                for target in _imported(name, node):
                    if target in MODULES and target != name:
                        graph.add_edge(name, target)
    return graph


def test_the_checks_see_the_package():
    """The checks below read the real package (a wrong path would make them pass vacuously)."""
    assert len(MODULES) > 50
    assert {"pythia.cli", "pythia.cli.options", "pythia.train.loop", "pythia.runs"} <= set(MODULES)
    assert import_graph().number_of_edges() > 100


def test_no_import_cycles():
    """No two modules import each other, directly or through others, not even inside functions
    (an import moved into a function hides a cycle; it does not remove it)."""
    cycles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_a_cycle_is_found_when_there_is_one():
    graph = import_graph()
    a, b = "pythia.paths", "pythia.runs"
    assert graph.has_edge(b, a)
    graph.add_edge(a, b)
    assert any(len(c) > 1 for c in nx.strongly_connected_components(graph))


def test_functions_import_only_heavy_libraries_and_say_why():
    """A function-local import is for a heavy or optional third-party library only, with a
    comment on its line saying why; the project's own modules are imported at the top."""
    problems = []
    for name, tree in TREES.items():
        comments = _comments(MODULES[name])
        for node in _local_imports(tree):
            where = f"{MODULES[name].relative_to(PACKAGE.parent)}:{node.lineno}"
            targets = _imported(name, node)
            own = [t for t in targets if t == "pythia" or t.startswith("pythia.")]
            if (own and not set(own) <= set(WRAPPERS)) or (
                isinstance(node, ast.ImportFrom) and node.level
            ):
                problems.append(f"{where}: the project's own module inside a function")
            elif own and not comments.get(node.lineno, "").startswith("# heavy"):
                problems.append(f"{where}: a wrapper of a heavy library, without `# heavy: why`")
            elif node.lineno not in comments:
                problems.append(f"{where}: no comment saying why `{ast.unparse(node)}` is local")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_a_wrapper_imports_its_heavy_library_at_the_top(wrapper):
    top = [n for n in TREES[wrapper].body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {t.split(".")[0] for n in top for t in _imported(wrapper, n)}
    assert WRAPPERS[wrapper] in names


def test_no_function_is_longer_than_60_lines():
    long = [
        f"{MODULES[name].relative_to(PACKAGE.parent)}:{fn.lineno} {fn.name} "
        f"({fn.end_lineno - fn.lineno + 1} lines)"
        for name, tree in TREES.items()
        for fn in _functions(tree)
        if fn.end_lineno - fn.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, "\n".join(long)


@pytest.mark.parametrize("name", [m for m in MODULES if not m.startswith("pythia.cli")])
def test_the_library_does_not_reach_for_the_command_line(name):
    """Only pythia/cli/ builds parsers; the library takes values, not argparse namespaces."""
    graph = import_graph()
    assert not any(t.startswith("pythia.cli") for t in graph.successors(name)), name
    skip = _in_type_checking(TREES[name])
    imports_argparse = any(
        isinstance(n, ast.Import) and any(a.name == "argparse" for a in n.names)
        for n in ast.walk(TREES[name])
        if id(n) not in skip
    )
    assert not imports_argparse, f"{name} imports argparse"
