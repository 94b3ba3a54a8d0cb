"""What docs/ARCHITECTURE.md states, checked against the source with `ast` and radon.

The rules come from the doc itself: its tables between `<!-- rules: NAME -->` and `<!-- /rules -->`
(the domains and what each may import, the shared and wiring modules, who ends transactions, who
imports each outside library). Today's exceptions are listed here as KNOWN_DEBT_*: each entry must
still be an exception (a fixed one fails until it is removed), so the lists only shrink.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from radon.complexity import cc_visit
from radon.visitors import Function

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "network"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

#: Modules that end a transaction although the doc's "Who commits" does not list them. Each must
#: still do so; remove it from here when it stops.
KNOWN_DEBT_COMMITS: frozenset[str] = frozenset()
#: The most lines a module of network/ may have, and the most cyclomatic complexity (radon) a function.
MAX_LINES = 400
MAX_COMPLEXITY = 15
#: Modules over MAX_LINES today. Each must still be over it; remove it from here once split.
KNOWN_DEBT_LONG_MODULES: frozenset[str] = frozenset()
#: Functions over MAX_COMPLEXITY today ("path:Class.function"). Each must still be over it.
KNOWN_DEBT_COMPLEX_FUNCTIONS = frozenset({})

#: Shared modules with no I/O, which pure rules may use (besides other rules modules).
PURE = frozenset({"money", "clock", "errors", "auth"})
#: Wiring that entry-point modules of a domain may import.
ENTRY_WIRING = {"api.py": frozenset({"web"}), "cli.py": frozenset({"migrate"})}
#: The libraries the doc's "Outside systems" governs, by the name it gives them.
LIBRARIES = ("flask", "stripe", "apscheduler", "gevent")


# ---- the doc's rules ---------------------------------------------------------------------------


def _rows(name: str) -> list[list[str]]:
    """Return the cells of each row of the doc's table marked `<!-- rules: name -->`."""
    text = ARCHITECTURE.read_text()
    found = re.search(rf"<!-- rules: {name} -->\n(.*?)<!-- /rules -->", text, re.DOTALL)
    assert found, f"docs/ARCHITECTURE.md has no <!-- rules: {name} --> table"
    lines = [line.strip() for line in found.group(1).strip().splitlines()]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("|")]
    return rows[2:]  # past the header and its rule


def _names(cell: str) -> list[str]:
    """Return the `backticked` names of a cell."""
    return re.findall(r"`([^`]+)`", cell)


#: What each domain may import, as the doc's "Domains and their order" table says.
LOWER: dict[str, frozenset[str]] = {_names(row[0])[0]: frozenset(_names(row[1])) for row in _rows("domains")}
_LAYERS = {row[0]: frozenset(_names(row[1])) for row in _rows("layers")}
#: Shared modules every layer stands on; they import no domain and no wiring module.
BASE = _LAYERS["shared"]
#: Wiring at the top: they may import anything, and nothing below them imports them.
TOP = _LAYERS["wiring"]
#: The modules that may end a transaction.
COMMITTERS = frozenset(name for row in _rows("commits") for name in _names(row[0]))


@dataclass(frozen=True)
class LibraryRule:
    library: str
    patterns: tuple[str, ...]
    lazy_only: bool  #: the modules may import it inside a function (or for type checking) only


IMPORT_RULES = [
    LibraryRule(_names(row[0])[0], tuple(_names(row[1])), "inside a function" in row[0]) for row in _rows("imports")
]


def _library(module: str) -> str | None:
    """Return the library an imported module belongs to, by the doc's names ("flask" for its family)."""
    root = module.split(".")[0]
    if root.startswith("flask") or root in ("werkzeug", "webargs"):
        return "flask"
    return root if root in LIBRARIES else None


# ---- the source --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    module: str  #: the imported module, absolute ("network.offers.service", "flask")
    line: int
    lazy: bool  #: inside a function or an `if TYPE_CHECKING:` block


@dataclass(frozen=True)
class Module:
    path: Path
    name: str  #: "network.offers.service"
    tree: ast.Module
    imports: tuple[Import, ...]

    @property
    def rel(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def parts(self) -> list[str]:
        return self.name.split(".")

    @property
    def domain(self) -> str | None:
        """The domain package ("offers"), or None for a top-level module of network/."""
        return self.parts[1] if len(self.parts) > 2 else None

    @property
    def top_name(self) -> str:
        """The name of a top-level module ("money") or of the package holding it."""
        return self.parts[1] if len(self.parts) > 1 else ""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


_FUNCTION = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


def _imports(tree: ast.Module, name: str, is_package: bool) -> tuple[Import, ...]:
    package = name if is_package else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    visit_stmt(stmt, True)
                for stmt in child.orelse:
                    visit_stmt(stmt, lazy)
                continue
            visit_stmt(child, lazy or isinstance(child, _FUNCTION))

    def visit_stmt(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append(Import(module, node.lineno, lazy))
            # `from network.offers import service` imports network.offers.service.
            found.extend(Import(f"{module}.{alias.name}", node.lineno, lazy) for alias in node.names)
        visit(node, lazy or isinstance(node, _FUNCTION))

    visit(tree, False)
    return tuple(found)


def _modules() -> list[Module]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        modules.append(Module(path, name, tree, _imports(tree, name, path.name == "__init__.py")))
    return modules


MODULES = _modules()


def _network_targets(module: Module) -> list[tuple[Import, str]]:
    """Return (import, top name) for every import of another part of network."""
    result = []
    for imp in module.imports:
        parts = imp.module.split(".")
        if parts[0] == "network" and len(parts) > 1:
            result.append((imp, parts[1]))
    return result


def _is_module(dotted: str) -> bool:
    parts = dotted.split(".")
    path = ROOT.joinpath(*parts)
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _top_names() -> set[str]:
    """Return the name of every top-level module and package of network/."""
    return {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"} | {
        path.parent.name for path in PACKAGE.glob("*/__init__.py")
    }


# ---- the doc is complete -----------------------------------------------------------------------


def test_the_doc_places_every_module_once():
    assert {"partners", "offers", "reports"} <= set(LOWER) and "money" in BASE and "app" in TOP
    placed = [*LOWER, *BASE, *TOP]
    twice = sorted({name for name in placed if placed.count(name) > 1})
    assert not twice, f"docs/ARCHITECTURE.md places these in two layers: {twice}"
    unplaced = sorted(_top_names() - set(placed))
    assert not unplaced, f"network/ has modules docs/ARCHITECTURE.md does not place (domains or layers): {unplaced}"
    gone = sorted(set(placed) - _top_names())
    assert not gone, f"docs/ARCHITECTURE.md places modules that no longer exist: {gone}"
    unknown = sorted({name for allowed in LOWER.values() for name in allowed} - set(LOWER))
    assert not unknown, f"the domains table names unknown domains: {unknown}"


def test_the_scan_sees_the_domains_and_their_imports():
    names = {m.name for m in MODULES}
    assert {"network.offers.service", "network.accounts.service", "network.money", "network.web"} <= names
    offers_service = next(m for m in MODULES if m.name == "network.offers.service")
    assert "network.partners.models" in {i.module for i in offers_service.imports}
    errors = next(m for m in MODULES if m.name == "network.errors")
    assert any(i.module.startswith("flask") and i.lazy for i in errors.imports)
    assert {rule.library for rule in IMPORT_RULES} == set(LIBRARIES)


# ---- the domain order --------------------------------------------------------------------------


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.rel)
def test_domains_import_only_lower_layers(module: Module):
    if module.top_name in BASE:
        return  # a shared package (netguard, db): test_shared_modules_import_no_domain checks it
    domain = module.domain or (module.top_name if module.top_name in LOWER else None)
    if domain is None or module.top_name in TOP:
        return
    allowed = LOWER.get(domain)
    assert allowed is not None, f"{module.rel}: {domain} is not a known layer; add it to docs/ARCHITECTURE.md"
    wrong = [
        f"line {imp.line}: {imp.module}"
        for imp, target in _network_targets(module)
        if target in LOWER and target != domain and target not in allowed and _is_module(imp.module)
    ]
    assert not wrong, f"{module.rel} ({domain}) imports a layer above it or beside it: {wrong}"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.rel)
def test_nothing_below_the_wiring_imports_it(module: Module):
    if module.top_name in TOP:
        return
    wrong = []
    for imp, target in _network_targets(module):
        if target not in TOP:
            continue
        # Entry points reach the wiring they serve: api modules the request plumbing, CLI modules the
        # scheduler and migrations. Any other import of wiring is upside down.
        if target in ENTRY_WIRING.get(module.path.name, ()):
            continue
        wrong.append(f"line {imp.line}: {imp.module}")
    assert not wrong, f"{module.rel} imports app wiring: {wrong}"


@pytest.mark.parametrize("module", [m for m in MODULES if m.top_name in BASE], ids=lambda m: m.rel)
def test_shared_modules_import_no_domain(module: Module):
    wrong = [
        f"line {imp.line}: {imp.module}" for imp, target in _network_targets(module) if target in LOWER or target in TOP
    ]
    assert not wrong, f"{module.rel} is shared by every layer but imports {wrong}"


@pytest.mark.parametrize("module", [m for m in MODULES if m.path.name == "rules.py"], ids=lambda m: m.rel)
def test_rules_are_pure(module: Module):
    wrong = []
    for imp in module.imports:
        root = imp.module.split(".")[0]
        if root == "sqlalchemy" or _library(imp.module):
            wrong.append(f"line {imp.line}: {imp.module}")
        parts = imp.module.split(".")
        # Pure rules stand on money, clock, the error and role types, and other rules modules.
        pure = len(parts) < 2 or parts[1] in PURE or parts[-1] == "rules" or not _is_module(imp.module)
        if root == "network" and not pure:
            wrong.append(f"line {imp.line}: {imp.module}")
    assert not wrong, f"{module.rel} must be pure (stdlib, {', '.join(sorted(PURE))}, rules): {wrong}"


# ---- outside systems ---------------------------------------------------------------------------


def _may_import(module: Module, library: str, lazy: bool) -> bool:
    return any(
        rule.library == library
        and (lazy or not rule.lazy_only)
        and any(fnmatch.fnmatchcase(module.rel, pattern) for pattern in rule.patterns)
        for rule in IMPORT_RULES
    )


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.rel)
def test_outside_libraries_are_imported_only_where_the_doc_says(module: Module):
    wrong = [
        f"line {imp.line}: {imp.module}"
        for imp in module.imports
        if (library := _library(imp.module)) and not _may_import(module, library, imp.lazy)
    ]
    assert not wrong, f"{module.rel} imports what docs/ARCHITECTURE.md ('Outside systems') keeps elsewhere: {wrong}"


@pytest.mark.parametrize("rule", IMPORT_RULES, ids=lambda r: f"{r.library}:{' '.join(r.patterns)}")
def test_each_module_the_doc_names_for_a_library_exists(rule: LibraryRule):
    rels = [m.rel for m in MODULES]
    missing = [p for p in rule.patterns if not any(fnmatch.fnmatchcase(rel, p) for rel in rels)]
    assert not missing, f"docs/ARCHITECTURE.md names modules for {rule.library} that do not exist: {missing}"


# ---- who ends a transaction --------------------------------------------------------------------


def _transaction_ends(tree: ast.Module) -> list[int]:
    """Return the lines that end a transaction: `.commit()`, `.rollback()`, or COMMIT/ROLLBACK sent as SQL."""
    lines = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr in ("commit", "rollback"):
            lines.append(node.lineno)
        elif node.func.attr == "execute" and node.args:
            first = node.args[0]
            sql = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else ""
            if sql.strip().upper() in ("COMMIT", "ROLLBACK"):
                lines.append(node.lineno)
    return lines


ENDS = {module.rel: _transaction_ends(module.tree) for module in MODULES}


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.rel)
def test_only_the_request_the_job_runner_the_cli_and_the_group_commit_end_transactions(module: Module):
    if module.rel in COMMITTERS or module.rel in KNOWN_DEBT_COMMITS:
        return
    lines = ENDS[module.rel]
    assert not lines, (
        f"{module.rel} commits or rolls back (lines {lines}); docs/ARCHITECTURE.md ('Who commits') says who may:"
        " the request, the job's or the CLI's session_scope(), the group commit"
    )


def test_the_doc_and_the_debt_list_name_modules_that_end_transactions():
    assert KNOWN_DEBT_COMMITS.isdisjoint(COMMITTERS)
    idle = sorted(rel for rel in COMMITTERS | KNOWN_DEBT_COMMITS if not ENDS.get(rel))
    assert not idle, (
        f"these no longer commit or roll back (or are gone): {idle}; update docs/ARCHITECTURE.md ('Who commits')"
        " or remove them from KNOWN_DEBT_COMMITS"
    )


# ---- size and complexity -----------------------------------------------------------------------


def _lines(module: Module) -> int:
    return len(module.path.read_text().splitlines())


def _functions(module: Module) -> Iterator[tuple[str, int]]:
    """Yield ("Class.function", radon complexity) for every function, method and nested function."""
    stack: list[tuple[str, Function]] = [
        (block.fullname, block) for block in cc_visit(module.path.read_text()) if isinstance(block, Function)
    ]
    while stack:
        name, function = stack.pop()
        yield name, function.complexity
        stack.extend((f"{name}.{inner.name}", inner) for inner in function.closures)


LONG = {module.rel: _lines(module) for module in MODULES if _lines(module) > MAX_LINES}
COMPLEX = {
    f"{module.rel}:{name}": complexity
    for module in MODULES
    for name, complexity in _functions(module)
    if complexity > MAX_COMPLEXITY
}


def test_no_module_is_too_long():
    new = {rel: lines for rel, lines in LONG.items() if rel not in KNOWN_DEBT_LONG_MODULES}
    assert not new, f"modules over {MAX_LINES} lines: {new}; split each by job (docs/ARCHITECTURE.md, 'Size')"


def test_no_function_is_too_complex():
    new = {name: cc for name, cc in COMPLEX.items() if name not in KNOWN_DEBT_COMPLEX_FUNCTIONS}
    assert not new, f"functions over radon complexity {MAX_COMPLEXITY}: {new} (docs/ARCHITECTURE.md, 'Size')"


def test_the_size_debt_lists_only_shrink():
    fixed_modules = sorted(KNOWN_DEBT_LONG_MODULES - set(LONG))
    fixed_functions = sorted(KNOWN_DEBT_COMPLEX_FUNCTIONS - set(COMPLEX))
    assert not fixed_modules, f"remove from KNOWN_DEBT_LONG_MODULES (now short, or gone): {fixed_modules}"
    assert not fixed_functions, f"remove from KNOWN_DEBT_COMPLEX_FUNCTIONS (now simple, or gone): {fixed_functions}"
