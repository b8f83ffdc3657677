"""The import graph of platform/llmft: no cycles, nothing imports upward, no import strings choose code.

Every module is parsed with `ast` (module-level and function-level imports, relative imports
resolved), so an edge hidden inside a function counts as much as one at the top. Each test
reports ALL its violations in one message, so a reader sees the whole picture at once.

Floors (docs: /work/shared/DESIGN.md, "Inside platform/llmft"):
  ground  config, store (with the audit log), models, and the single-module helpers
  stages  data, train, tune, registry, evaluation, serving
  top     jobs, control, cli, demo (what drives the stages)
A module may import its own floor or a lower one, never a higher one; on top of that the
pairs in FORBIDDEN are refused (a stage importing a sibling it must not depend on).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tests.conftest import REPO_ROOT

SOURCE_ROOT = REPO_ROOT / "platform"
PACKAGE = "llmft"

GROUND, STAGE, TOP = 0, 1, 2
FLOOR_NAMES = {GROUND: "ground", STAGE: "stage", TOP: "top"}
FLOORS = {
    # ground: what every stage stands on
    "config": GROUND, "store": GROUND, "models": GROUND, "errors": GROUND, "settings": GROUND,
    "manifest": GROUND, "environment": GROUND, "credentials": GROUND, "outbound": GROUND,
    "plugins": GROUND, "recording": GROUND, "storage": GROUND, "__init__": GROUND,
    # stages of the lifecycle
    "data": STAGE, "train": STAGE, "tune": STAGE, "registry": STAGE, "evaluation": STAGE, "serving": STAGE,
    # what drives the stages
    "jobs": TOP, "control": TOP, "cli": TOP, "demo": TOP,
}
# (importer, imported) component pairs refused even though the floors would allow them.
FORBIDDEN = {
    ("serving", "train"): "serving runs released adapters; it never needs training code",
    ("serving", "tune"): "serving runs released adapters; it never needs sweep code",
    ("serving", "evaluation"): "evaluation drives serving (through its gateway), not the other way round",
    ("data", "train"): "curation prepares data for any trainer; training code sits above it",
    ("data", "tune"): "curation prepares data for any trainer; sweeps sit above it",
    ("data", "serving"): "curation is offline; it never needs the serving layers",
    ("data", "evaluation"): "curation comes before evaluation in the data flow",
    ("data", "registry"): "curated snapshots live in the store, not the model registry",
    ("registry", "serving"): "serving reads the registry, not the other way round",
    ("registry", "train"): "the registry records releases; it never runs training",
    ("registry", "tune"): "the registry records releases; it never runs sweeps",
    ("registry", "evaluation"): "evaluation attaches reports to versions; the registry stays below it",
    ("train", "serving"): "training does not serve",
    ("train", "evaluation"): "evaluation judges what training produced; it sits above",
    ("train", "tune"): "a sweep runs training trials; training never runs sweeps",
    ("evaluation", "train"): "evaluation judges released versions through serving, not training code",
    ("evaluation", "tune"): "evaluation never runs sweeps",
    ("jobs", "control"): "the control plane uses the job model, not the other way round",
    ("jobs", "cli"): "the CLI uses the job model, not the other way round",
    ("jobs", "demo"): "the demo drives jobs; jobs never depend on the demo",
    ("control", "cli"): "the CLI calls the control plane, not the other way round",
    ("control", "demo"): "the control plane never depends on the demo",
}
DYNAMIC_IMPORTERS = {("importlib", "import_module"), ("builtins", "__import__"), ("importlib.util", "spec_from_file_location"),
                     ("runpy", "run_path"), ("runpy", "run_module")}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int

    def where(self, modules: dict[str, Path]) -> str:
        return f"{modules[self.source].relative_to(REPO_ROOT)}:{self.line}"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SOURCE_ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SOURCE_ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _resolve_from(module: str, node: ast.ImportFrom, modules: dict[str, Path]) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not _is_package(module, modules):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, tree: ast.AST, modules: dict[str, Path]) -> tuple[list[Edge], list[str]]:
    """llmft-internal edges of one module, and the llmft names it imports that do not exist."""
    edges, missing = [], []

    def add(target: str, line: int, candidates: list[str]) -> None:
        if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
            return
        for name in candidates:
            if name in modules:
                if name != module:
                    edges.append(Edge(module, name, line))
                return
        missing.append(f"{modules[module].relative_to(REPO_ROOT)}:{line} imports {target!r}, which does not exist")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno, [alias.name])
        elif isinstance(node, ast.ImportFrom):
            target = _resolve_from(module, node, modules)
            for alias in node.names:
                # `from pkg import sub` names the submodule when there is one, else an attribute of pkg
                add(target, node.lineno, [f"{target}.{alias.name}", target] if alias.name != "*" else [target])
    return edges, missing


def _dynamic_imports(module: str, tree: ast.AST, modules: dict[str, Path]) -> list[str]:
    """Calls that import code chosen by a value rather than written as a literal import."""
    aliases: dict[str, tuple[str, str]] = {"__import__": ("builtins", "__import__")}
    modules_as: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                modules_as[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = (node.module, alias.name)
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func, called = node.func, None
        if isinstance(func, ast.Name):
            called = aliases.get(func.id)
        elif isinstance(func, ast.Attribute):
            owner = ast.unparse(func.value)
            called = (modules_as.get(owner, owner), func.attr)
        if called not in DYNAMIC_IMPORTERS:
            continue
        literal = bool(node.args) and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
        if called[1] in ("import_module", "__import__") and literal:
            continue  # a literal is a plain import written the long way: still visible
        out.append(f"{modules[module].relative_to(REPO_ROOT)}:{node.lineno} {'.'.join(called)}"
                   f"({ast.unparse(node.args[0]) if node.args else ''}): code chosen by a value")
    return out


@lru_cache(maxsize=1)
def _graph() -> tuple[dict[str, Path], list[Edge], list[str], list[str]]:
    """(modules, edges, imports of names that do not exist, dynamic imports), parsed once per session."""
    modules = _modules()
    edges, missing, dynamic = [], [], []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found, absent = _imports(name, tree, modules)
        edges += found
        missing += absent
        dynamic += _dynamic_imports(name, tree, modules)
    return modules, edges, missing, dynamic


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _cycles(nodes: list[str], edges: list[Edge]) -> list[list[str]]:
    """One shortest cycle per strongly connected component (Tarjan), as a list of modules."""
    succ: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        succ[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:  # iterative to stay clear of the recursion limit
        work = [(v, iter(sorted(succ[v])))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(succ[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            strongconnect(v)
    cycles = []
    for comp in comps:
        members = set(comp)
        start = comp[0]
        # BFS from start back to start inside the component: the shortest cycle through it
        prev: dict[str, str] = {}
        frontier, seen, found = [start], {start}, None
        while frontier and found is None:
            nxt = []
            for u in frontier:
                for w in sorted(succ[u] & members):
                    if w == start:
                        found = u
                        break
                    if w not in seen:
                        seen.add(w)
                        prev[w] = u
                        nxt.append(w)
                if found is not None:
                    break
            frontier = nxt
        path = [found]
        while path[-1] != start:
            path.append(prev[path[-1]])
        cycles.append([*reversed(path), start] + ([] if len(comp) == len(path) else [f"(+{len(comp) - len(path)} more in the knot)"]))
    return cycles


def test_every_import_resolves_and_no_module_is_imported_by_a_string():
    _, _, missing, dynamic = _graph()
    problems = missing + dynamic
    assert not problems, "imports that no reader can follow:\n  " + "\n  ".join(problems)


def test_no_import_cycles():
    modules, edges, _, _ = _graph()
    cycles = _cycles(list(modules), edges)
    lines = []
    for cycle in cycles:
        names = [c for c in cycle if not c.startswith("(")]
        hops = []
        for a, b in zip(names, names[1:]):
            e = next(e for e in edges if e.source == a and e.target == b)
            hops.append(f"{a} -> {b} ({e.where(modules)})")
        lines.append("\n    ".join(hops) + (f"\n    {cycle[-1]}" if cycle[-1].startswith("(") else ""))
    assert not cycles, f"{len(cycles)} import cycle(s):\n  - " + "\n  - ".join(lines)


def test_no_cycles_between_packages():
    """Inside every package, its children (modules and sub-packages, each with all it holds) form no cycle.

    Module cycles are caught above; this catches two packages leaning on each other through
    different modules (store.base -> audit.log -> store.schema once made `audit` <-> `store`; now store.audit_log).
    """
    modules, edges, _, _ = _graph()
    packages = sorted(m for m in modules if _is_package(m, modules))
    lines = []
    for parent in packages:
        depth = parent.count(".") + 1

        def child(name: str) -> str | None:
            if not name.startswith(parent + "."):
                return None
            return ".".join(name.split(".")[: depth + 1])

        collapsed: dict[tuple[str, str], Edge] = {}
        for e in edges:
            a, b = child(e.source), child(e.target)
            if a and b and a != b:
                collapsed.setdefault((a, b), e)
        for cycle in _cycles(sorted({c for pair in collapsed for c in pair}),
                             [Edge(a, b, 0) for a, b in collapsed]):
            names = [c for c in cycle if not c.startswith("(")]
            hops = [f"{a} -> {b} (e.g. {collapsed[(a, b)].source} -> {collapsed[(a, b)].target}, "
                    f"{collapsed[(a, b)].where(modules)})" for a, b in zip(names, names[1:])]
            lines.append("\n    ".join(hops))
    assert not lines, f"{len(lines)} cycle(s) between packages:\n  - " + "\n  - ".join(lines)


def test_floors_point_down():
    modules, edges, _, _ = _graph()
    unplaced = sorted({_component(m) for m in modules} - set(FLOORS))
    problems = [f"llmft.{c} is on no floor: add it to FLOORS in this test (and to DESIGN.md)" for c in unplaced]
    for e in sorted(edges, key=lambda e: (e.source, e.line)):
        src, dst = _component(e.source), _component(e.target)
        if src == dst or src in unplaced or dst in unplaced:
            continue
        if FLOORS[dst] > FLOORS[src]:
            problems.append(f"{e.where(modules)} {e.source} ({FLOOR_NAMES[FLOORS[src]]}) imports "
                            f"{e.target} ({FLOOR_NAMES[FLOORS[dst]]}): upward")
        elif (src, dst) in FORBIDDEN:
            problems.append(f"{e.where(modules)} {e.source} imports {e.target}: {FORBIDDEN[(src, dst)]}")
    assert not problems, f"{len(problems)} import(s) against the floors:\n  " + "\n  ".join(problems)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    """The graph is only as good as its parser: an import inside a function and a relative one both count."""
    modules = {"llmft": Path("llmft/__init__.py"), "llmft.a": Path("llmft/a/__init__.py"),
               "llmft.a.x": Path("llmft/a/x.py"), "llmft.b": Path("llmft/b.py")}
    tree = ast.parse("from . import x\n\ndef f():\n    from llmft.b import thing\n    import llmft.gone\n")
    edges, missing = _imports("llmft.a", tree, {k: REPO_ROOT / v for k, v in modules.items()})
    assert {(e.target, e.line) for e in edges} == {("llmft.a.x", 1), ("llmft.b", 4)}
    assert len(missing) == 1 and "'llmft.gone'" in missing[0]
    cyc = _cycles(list(modules), [Edge("llmft.a", "llmft.b", 1), Edge("llmft.b", "llmft.a.x", 1),
                                  Edge("llmft.a.x", "llmft.a", 1)])
    assert cyc == [["llmft.a", "llmft.b", "llmft.a.x", "llmft.a"]]
    dyn = _dynamic_imports("llmft.b", ast.parse("import importlib\nimportlib.import_module(name)\n"
                                                "importlib.import_module('llmft.a')\n"),
                           {"llmft.b": REPO_ROOT / "x.py"})
    assert len(dyn) == 1 and ":2 importlib.import_module(name)" in dyn[0]
