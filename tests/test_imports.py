"""The shape of the package's imports: no cycles, and every arrow points down the layers.

Layers, from the top: the command line (it starts the server and the demo), then the HTTP
API and the demo, then the core (every other module: fleet, store, plans, models, ...).
A module imports only from its own layer or below, and the store never imports plans.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "agentfleet"

# What each surface may import besides the core and itself.
SURFACES: dict[str, set[str]] = {
    "agentfleet.cli": {"agentfleet.web", "agentfleet.demo"},
    "agentfleet.web": set(),
    "agentfleet.demo": {"agentfleet.demo_train", "agentfleet.demo_workers"},
    "agentfleet.demo_train": {"agentfleet.demo_workers"},
    "agentfleet.demo_workers": set(),
}


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    line: int
    runtime: bool  # False under `if TYPE_CHECKING:`: never executed

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The module an imported name lives in: `a.b.c` is module a.b.c, or a name in a.b."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def arrows() -> Iterator[Arrow]:
    """Every import of one of the package's modules by another, at any depth of the code."""
    known = modules()
    for name, path in known.items():
        yield from _arrows_of(name, path, known)


def _arrows_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[Arrow]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def walk(node: ast.AST, runtime: bool) -> Iterator[Arrow]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for inner in child.body:
                    yield from visit(inner, False)
                for inner in child.orelse:
                    yield from visit(inner, runtime)
            else:
                yield from visit(child, runtime)

    def visit(node: ast.AST, runtime: bool) -> Iterator[Arrow]:
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                parts = package.split(".")
                up = parts[: len(parts) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            if target.split(".")[0] == PACKAGE:
                owner = _owner(target, known)
                if owner is not None and owner != name:
                    yield Arrow(name, owner, getattr(node, "lineno", 0), runtime)
        yield from walk(node, runtime)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), True)


def layer(module: str) -> str:
    for surface in SURFACES:
        if module == surface or module.startswith(surface + "."):
            return surface
    return "core"


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_graph_sees_the_imports_it_should() -> None:
    found = {(a.source, a.target) for a in arrows()}
    assert ("agentfleet.web.api", "agentfleet.serialize") in found
    assert ("agentfleet.cli.serve", "agentfleet.web.server") in found  # inside a function
    assert ("agentfleet.web", "agentfleet.web.app") in found  # under TYPE_CHECKING too
    assert len(modules()) > 40


def test_no_import_cycles() -> None:
    """No cycle among the imports that run, module-level or inside functions alike."""
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for arrow in arrows():
        if arrow.runtime:
            graph[arrow.source].add(arrow.target)
    cycles = _strongly_connected(graph)
    assert cycles == [], "modules that import each other: " + "; ".join(map(", ".join, cycles))


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups, key=len, reverse=True)


def test_every_arrow_points_down_the_layers() -> None:
    wrong = []
    for arrow in arrows():
        source, target = layer(arrow.source), layer(arrow.target)
        if target not in ("core", source) and target not in SURFACES.get(source, set()):
            wrong.append(f"{arrow}: {source} may not import {target}")
    assert wrong == [], "\n".join(wrong)


def test_the_store_never_imports_plans() -> None:
    wrong = [
        str(a)
        for a in arrows()
        if within(a.source, "agentfleet.store") and within(a.target, "agentfleet.plans")
    ]
    assert wrong == [], "\n".join(wrong)


ISOLATED_IMPORTS = """
import importlib, json, sys, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m == "agentfleet" or m.startswith("agentfleet.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "agentfleet":
            failed[name] = traceback.format_exc(limit=-3)
        # else: an extra that is not installed (the web or postgres one), not our concern
    except Exception:
        failed[name] = traceback.format_exc(limit=-3)
print(json.dumps(failed))
"""


def test_every_module_imports_on_its_own() -> None:
    """Each module imported first, in a fresh interpreter: a cycle that breaks one order fails.

    Two interpreters each import half of the modules in turn, dropping all of agentfleet's
    modules from ``sys.modules`` before each one, so each import starts with none of the
    package loaded, as a ``python -c "import agentfleet.web.auth"`` of its own would
    (third-party modules stay loaded, which does not change what agentfleet's import order
    can break).
    """
    names = [m for m in modules() if not m.endswith("__main__")]  # __main__ runs the CLI
    halves = [names[0::2], names[1::2]]  # two interpreters side by side: the machine's cores
    running = [
        subprocess.Popen(
            [sys.executable, "-c", ISOLATED_IMPORTS, json.dumps(half)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for half in halves
    ]
    failed: dict[str, str] = {}
    for proc in running:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        failed |= json.loads(out)
    assert failed == {}, "\n".join(f"{name}:\n{error}" for name, error in failed.items())


def test_the_package_loads_its_public_names_on_first_use() -> None:
    """`import agentfleet` stays cheap (a merge step or a stand-in agent imports only what it
    uses), and every public name still resolves, to the object its home module defines."""
    probe = (
        "import json, sys, agentfleet\n"
        "before = sorted(m for m in sys.modules if m.startswith('agentfleet.'))\n"
        "homes = {n: getattr(agentfleet, n).__module__ for n in agentfleet.__all__\n"
        "         if hasattr(getattr(agentfleet, n), '__module__')}\n"
        "print(json.dumps([before, homes, sorted(dir(agentfleet))]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    before, homes, listed = json.loads(done.stdout)
    assert before == [], f"importing agentfleet loaded {before}"
    assert homes["Fleet"] == "agentfleet.fleet" and homes["Worker"].startswith("agentfleet.worker")
    assert set(listed) >= {"Fleet", "open", "__version__"}
    import agentfleet

    assert agentfleet.open is agentfleet.fleet.open
    try:
        agentfleet.NoSuchName  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchName" in str(exc)
    else:
        raise AssertionError("an unknown name resolved")
