"""Who reads the replica: the modules docs/ARCHITECTURE.md names, in GET views, never near money.

The doc's `<!-- rules: replica -->` table is the list; `Database.replica_session`'s docstring the
rule. Checked with `ast` over network/, like tests/test_architecture.py.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
#: The names that hand out a replica session.
ASKS = frozenset({"replica_session", "replica_reading"})
#: Where they are made (the Database and the request's wrapper), not used.
MAKERS = frozenset({"network/db/sessions.py", "network/web.py"})
#: Modules a money or access decision depends on: never on the replica.
NEVER = (
    "network/payouts/*",
    "network/offers/*",
    "network/accounts/*",
    "network/auth.py",
    "network/jobruns.py",
    "network/scheduler.py",
    "network/*/jobs.py",
    "network/*/service.py",
    "network/*/ledger.py",
    "network/conversions/groupcommit.py",
    "network/conversions/batch.py",
)
#: Names of money modules a view reading the replica must not touch (it would decide on old data).
MONEY_NAMES = frozenset({"ledger", "payouts", "settlement", "building", "caps", "balances", "jobs"})


def _table() -> set[str]:
    text = ARCHITECTURE.read_text()
    found = re.search(r"<!-- rules: replica -->\n(.*?)<!-- /rules -->", text, re.DOTALL)
    assert found, "docs/ARCHITECTURE.md has no <!-- rules: replica --> table"
    rows = [line for line in found.group(1).splitlines() if line.startswith("|")][2:]
    return {re.findall(r"`([^`]+)`", row.split("|")[1])[0] for row in rows}


def _asks(node: ast.AST) -> bool:
    return any(
        isinstance(call, ast.Call)
        and (
            (isinstance(call.func, ast.Attribute) and call.func.attr in ASKS)
            or (isinstance(call.func, ast.Name) and call.func.id in ASKS)
        )
        for call in ast.walk(node)
    )


def _readers() -> dict[str, list[ast.FunctionDef]]:
    """Return each module of network/ that asks for a replica session, with the functions that do."""
    found: dict[str, list[ast.FunctionDef]] = {}
    for path in sorted((ROOT / "network").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(), filename=rel)
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and _asks(n)]
        if rel not in MAKERS and (functions or _asks(tree)):
            found[rel] = functions
    return found


def test_the_modules_reading_the_replica_are_the_ones_the_doc_names() -> None:
    assert set(_readers()) == _table()


@pytest.mark.parametrize("module", sorted(_table()))
def test_no_money_or_access_module_reads_the_replica(module: str) -> None:
    assert not [pattern for pattern in NEVER if fnmatch.fnmatch(module, pattern)]


@pytest.mark.parametrize("module", sorted(_readers()))
def test_only_get_views_read_the_replica_and_touch_no_money(module: str) -> None:
    for function in _readers()[module]:
        assert function.name == "get", f"{module}:{function.name} reads the replica outside a GET view"
        names = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(function) if isinstance(n, ast.Attribute)}
        assert not names & MONEY_NAMES, f"{module}:{function.name} reads the replica beside {names & MONEY_NAMES}"
