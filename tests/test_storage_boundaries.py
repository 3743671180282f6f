"""SQL lives in cluster/repositories/ (and the migrations), nowhere else in product code.

Scans the string literals of every module (docstrings left out) for SQL statements, and every asyncpg
call (`execute`, `fetch`, ...) whose first argument is a SQL literal; a hit fails naming file and line.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("actors", "adapters", "cluster", "deployments", "domain", "gateway", "gpubroker")
STORAGE = ("cluster/repositories", "cluster/migrations")

STATEMENTS = [
    ("SELECT ... FROM", re.compile(r"\bSELECT\b[\s\S]*?\bFROM\b")),
    ("INSERT INTO", re.compile(r"\bINSERT\s+INTO\b")),
    ("UPDATE ... SET", re.compile(r"\bUPDATE\s+\w+(\s+\w+)?\s+SET\b")),
    ("DELETE FROM", re.compile(r"\bDELETE\s+FROM\b")),
    ("CREATE TABLE", re.compile(r"\bCREATE\s+(TEMP\s+|TEMPORARY\s+|UNLOGGED\s+)?TABLE\b")),
    ("ALTER TABLE", re.compile(r"\bALTER\s+TABLE\b")),
]
ASYNCPG_CALLS = {"execute", "executemany", "fetch", "fetchrow", "fetchval", "cursor", "prepare"}
SQL_START = re.compile(r"^\s*(select|insert|update|delete|with|create|alter|drop|truncate|lock|analyze|set|copy|"
                       r"vacuum|listen|notify)\b", re.IGNORECASE)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _text(node: ast.AST) -> str | None:
    """A string literal's text; an f-string's with each placeholder as `x`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values)
    return None


def sql_hits(source: str, name: str = "<code>") -> list[str]:
    """`name:line: what` for every SQL statement in `source`'s string literals and asyncpg calls."""
    tree = ast.parse(source, name)
    skip = _docstrings(tree)
    hits: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ASYNCPG_CALLS \
                and node.args:
            text = _text(node.args[0])
            if text is not None and SQL_START.match(text):
                hits.add((node.lineno, f"{node.func.attr}() with a SQL literal"))
        if id(node) in skip or isinstance(node, ast.Constant) and not isinstance(node.value, str):
            continue
        if isinstance(node, ast.JoinedStr) or isinstance(node, ast.Constant):
            text = _text(node)
            for what, pattern in STATEMENTS:
                if text and pattern.search(text):
                    hits.add((node.lineno, what))
    return [f"{name}:{line}: {what}" for line, what in sorted(hits)]


def product_modules() -> list[Path]:
    out = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(STORAGE):
                out.append(path)
    return out


def test_no_sql_outside_repositories_and_migrations():
    hits = []
    for path in product_modules():
        hits += sql_hits(path.read_text(), path.relative_to(ROOT).as_posix())
    assert hits == [], "SQL outside cluster/repositories/ and cluster/migrations/:\n" + "\n".join(hits)


def test_the_scan_covers_every_product_folder():
    scanned = {p.relative_to(ROOT).parts[0] for p in product_modules()}
    assert scanned == set(SCANNED)
    assert not any(p.relative_to(ROOT).as_posix().startswith(STORAGE) for p in product_modules())


def test_the_scanner_finds_each_kind_of_statement_and_names_the_line():
    code = '''"""Module docstring: SELECT id FROM offers is prose here."""
ROWS = "SELECT id, name FROM offers WHERE id = $1"


async def handler(conn, table):
    """Docstring: INSERT INTO x is prose."""
    await conn.execute("INSERT INTO audit_log (action) VALUES ($1)", "a")
    await conn.execute(f"UPDATE {table} SET name = $2 WHERE id = $1", 1, "n")
    await conn.execute("UPDATE tenants t SET name = $2 WHERE id = $1", 1, "n")
    await conn.execute("DELETE FROM users WHERE id = $1", 1)
    await conn.execute("CREATE TEMP TABLE _s (a int) ON COMMIT DROP")
    await conn.execute("ALTER TABLE offers ADD COLUMN x int")
    await conn.fetchval("select 1")
'''
    assert sql_hits(code, "m.py") == [
        "m.py:2: SELECT ... FROM",
        "m.py:7: INSERT INTO",
        "m.py:7: execute() with a SQL literal",
        "m.py:8: UPDATE ... SET",
        "m.py:8: execute() with a SQL literal",
        "m.py:9: UPDATE ... SET",
        "m.py:9: execute() with a SQL literal",
        "m.py:10: DELETE FROM",
        "m.py:10: execute() with a SQL literal",
        "m.py:11: CREATE TABLE",
        "m.py:11: execute() with a SQL literal",
        "m.py:12: ALTER TABLE",
        "m.py:12: execute() with a SQL literal",
        "m.py:13: fetchval() with a SQL literal",
    ]


def test_the_scanner_leaves_repository_calls_and_prose_alone():
    code = '''"""Reads offers: SELECT and UPDATE are words here."""
from cluster.repositories import offers


async def handler(pool, redis):
    await offers.has_offers(pool, "gcp")
    await redis.execute_command("SET", "k", "v")
    message = "select a provider from the list"
    return message
'''
    assert sql_hits(code) == []
