"""The import graph of our top-level folders, read with `ast` (every import, also those inside functions):
no circle between folders, and every arrow in an allowed direction.

The layers, from the bottom:
- domain/       pydantic models and pure rules: imports none of our folders.
- adapters/     one module per provider: domain only.
- cluster/      settings, storage, repositories, Ray environment, deploy configs: domain and adapters.
- actors/       Ray actors: cluster, domain, adapters.
- gateway/      the HTTP edge, login and the WebSocket gateway: actors (the tenant limiter), cluster, domain,
                adapters.
- deployments/  Serve deployments, routes and the composition root (`deployments/app.py`, the `gpubroker`
                command in `deployments/cli.py`): anything.
- gpubroker/    the client SDK, installable without the server: domain only.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("domain", "adapters", "cluster", "actors", "gateway", "deployments", "gpubroker")
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "adapters": {"domain"},
    "cluster": {"domain", "adapters"},
    "actors": {"cluster", "domain", "adapters"},
    "gateway": {"actors", "cluster", "domain", "adapters"},
    "deployments": set(FOLDERS) - {"deployments"},
    "gpubroker": {"domain"},
}
# (file, imported module) pairs allowed against the table above, each with the reason.
EXCEPTIONS: set[tuple[str, str]] = set()


def _imports(source: str, package: list[str]) -> list[tuple[int, str]]:
    """(line, absolute module) for every import statement of a module in `package`, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the file's package
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
    return found


def folder_edges() -> dict[tuple[str, str], list[str]]:
    """(importing folder, imported folder) -> ["file:line module", ...] for every arrow between two folders."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for line, module in _imports(path.read_text(), list(path.relative_to(ROOT).parts[:-1])):
                target = module.split(".")[0]
                if target in FOLDERS and target != folder and (rel, module) not in EXCEPTIONS:
                    edges[(folder, target)].append(f"{rel}:{line} imports {module}")
    return edges


def _cycles(edges) -> list[list[str]]:
    """Every elementary circle through the folder graph, each once (starting at its smallest folder)."""
    succ: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)
    found = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(succ[node]):
            if nxt == start:
                found.append(path + [start])
            elif nxt > start and nxt not in path:
                walk(start, nxt, path + [nxt])

    for start in sorted(succ):
        walk(start, start, [start])
    return found


def test_the_reader_sees_every_kind_of_import():
    source = ("import cluster.settings\n"
              "from domain import gpus\n"
              "def f():\n"
              "    from deployments.app import deploy\n"
              "    class C:\n"
              "        def g(self):\n"
              "            import actors.limiter as lim\n"
              "from . import sibling\n"
              "from ..db import pool\n")
    assert _imports(source, ["cluster", "repositories"]) == [
        (1, "cluster.settings"), (2, "domain"), (8, "cluster.repositories"), (9, "cluster.db"),
        (4, "deployments.app"), (7, "actors.limiter")]
    assert _cycles({("a", "b"): [], ("b", "c"): [], ("c", "a"): [], ("c", "d"): []}) == [["a", "b", "c", "a"]]


def test_no_import_circle_between_folders():
    edges = folder_edges()
    circles = _cycles(edges)
    shown = []
    for circle in circles:
        shown.append(" -> ".join(circle))
        shown += [f"    {e}" for a, b in zip(circle, circle[1:]) for e in edges[(a, b)][:3]]
    assert circles == [], "import circles between top-level folders:\n" + "\n".join(shown)


def test_imports_follow_the_allowed_directions():
    edges = folder_edges()
    wrong = [f"{a} -> {b}: {e}" for (a, b), where in sorted(edges.items()) if b not in ALLOWED[a] for e in where]
    assert wrong == [], "imports against the layer directions (see the module docstring):\n" + "\n".join(wrong)


def test_no_module_is_imported_by_a_name_in_a_string():
    """Routers, commands and start-up steps are imported, so every tool (and this test) sees the arrow."""
    hidden = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    f = node.func
                    name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                    if name in ("import_module", "__import__"):
                        hidden.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert hidden == [], "modules imported by name at run time:\n" + "\n".join(hidden)
