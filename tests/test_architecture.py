"""The import directions of docs/ARCHITECTURE.md, read from the source with `ast`."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "network"

#: What each domain may import from the others: partners <- accounts <- offers <- tracking
#: <- conversions <- payouts, and conversions <- deliveries; payouts and deliveries never
#: import each other; reports reads everything below it.
LOWER: dict[str, frozenset[str]] = {
    #: Below every domain: the writers of tracking, conversions and deliveries keep refused rows there.
    "deadletters": frozenset(),
    "partners": frozenset(),
    "accounts": frozenset({"partners"}),
    "offers": frozenset({"partners", "accounts"}),
    "tracking": frozenset({"deadletters", "partners", "accounts", "offers"}),
    "conversions": frozenset({"deadletters", "partners", "accounts", "offers", "tracking"}),
    "payouts": frozenset({"deadletters", "partners", "accounts", "offers", "tracking", "conversions"}),
    "deliveries": frozenset({"deadletters", "partners", "accounts", "offers", "tracking", "conversions"}),
    "reports": frozenset(
        {"deadletters", "partners", "accounts", "offers", "tracking", "conversions", "payouts", "deliveries"}
    ),
}
#: Shared modules every layer stands on; they import no domain and no wiring module.
BASE = frozenset({"money", "clock", "errors", "db", "config", "auth", "schemas", "netguard", "outage", "mail"})
#: Wiring at the top: they may import anything, and nothing below them imports them.
#: `portal` is the web app for people: a package of views at the top, like `web` and the api modules.
TOP = frozenset({"app", "web", "cli", "demo", "schema", "migrate", "scheduler", "jobruns", "portal"})
#: Shared modules with no I/O, which pure rules may use.
PURE = frozenset({"money", "clock", "errors", "auth"})
#: Wiring that entry-point modules of a domain may import.
ENTRY_WIRING = {"api.py": frozenset({"web"}), "cli.py": frozenset({"scheduler", "migrate"})}
FLASK_FAMILY = ("flask", "flask_smorest", "werkzeug", "webargs")


@dataclass(frozen=True)
class Import:
    module: str  #: the imported module, absolute ("network.offers.service", "flask")
    line: int
    lazy: bool  #: inside a function or an `if TYPE_CHECKING:` block


@dataclass(frozen=True)
class Module:
    path: Path
    name: str  #: "network.offers.service"
    imports: tuple[Import, ...]

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(ROOT))

    @property
    def parts(self) -> list[str]:
        return self.name.split(".")

    @property
    def domain(self) -> str | None:
        """The domain package ("offers"), or None for a top-level module of network/."""
        return self.parts[1] if len(self.parts) > 2 else None

    @property
    def top_name(self) -> str:
        """The name of a top-level module ("money") or of the domain package."""
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


def _imports(path: Path, name: str) -> tuple[Import, ...]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    visit_stmt(stmt, True)
                for stmt in child.orelse:
                    visit_stmt(stmt, lazy)
                continue
            visit_stmt(child, inner)

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
            for alias in node.names:
                found.append(Import(f"{module}.{alias.name}", node.lineno, lazy))
        visit(node, lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(tree, False)
    return tuple(found)


def _modules() -> list[Module]:
    return [
        Module(path, _module_name(path), _imports(path, _module_name(path)))
        for path in sorted(PACKAGE.rglob("*.py"))
        if ".venv" not in path.parts
    ]


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


def test_the_scan_sees_the_domains_and_their_imports():
    names = {m.name for m in MODULES}
    assert {"network.offers.service", "network.accounts.service", "network.money", "network.web"} <= names
    offers_service = next(m for m in MODULES if m.name == "network.offers.service")
    assert ("network.partners.models") in {i.module for i in offers_service.imports}
    errors = next(m for m in MODULES if m.name == "network.errors")
    assert any(i.module.startswith("flask") and i.lazy for i in errors.imports)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.rel)
def test_domains_import_only_lower_layers(module: Module):
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


def _flask_allowed(module: Module) -> bool:
    return (
        module.path.name in ("api.py", "cli.py")
        or module.name in ("network.web", "network.app")
        or module.top_name == "portal"
    )


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.rel)
def test_no_flask_below_api_modules(module: Module):
    if _flask_allowed(module):
        return
    flask_imports = [i for i in module.imports if i.module.split(".")[0] in FLASK_FAMILY]
    if module.name == "network.errors":
        # The error handler is registered on the app, so it imports flask lazily: services import errors.
        flask_imports = [i for i in flask_imports if not i.lazy]
    assert not flask_imports, f"{module.rel} imports flask: {[f'line {i.line}: {i.module}' for i in flask_imports]}"


@pytest.mark.parametrize(
    ("library", "only"),
    [("stripe", "network.payouts.gateway"), ("apscheduler", "network.scheduler")],
)
def test_one_module_owns_each_outside_system(library: str, only: str):
    users = sorted(
        f"{m.rel}:{i.line}" for m in MODULES for i in m.imports if i.module.split(".")[0] == library and m.name != only
    )
    assert not users, f"only {only} may import {library}; also: {users}"


@pytest.mark.parametrize("module", [m for m in MODULES if m.path.name == "rules.py"], ids=lambda m: m.rel)
def test_rules_are_pure(module: Module):
    wrong = []
    for imp in module.imports:
        root = imp.module.split(".")[0]
        if root in ("sqlalchemy", "stripe", "apscheduler", *FLASK_FAMILY):
            wrong.append(f"line {imp.line}: {imp.module}")
        parts = imp.module.split(".")
        if root == "network" and len(parts) > 1 and _is_module(imp.module):
            target = parts[1]
            # Pure rules stand on money, clock, the error and role types, and other rules modules.
            if target not in PURE and parts[-1] != "rules":
                wrong.append(f"line {imp.line}: {imp.module}")
    assert not wrong, f"{module.rel} must be pure (stdlib, {', '.join(sorted(PURE))}, rules): {wrong}"


def _names_a_session(node: ast.expr) -> bool:
    """Whether `node` is a session (`session`, `self.session`, `db_session`); a SAVEPOINT's own
    `commit()` (`savepoint.commit()`) only releases it inside the caller's transaction."""
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name.endswith("session") or (isinstance(node, ast.Call) and _names_a_session(node.func))


@pytest.mark.parametrize(
    "module", [m for m in MODULES if m.path.name in ("service.py", "rules.py", "models.py")], ids=lambda m: m.rel
)
def test_services_never_commit(module: Module):
    tree = ast.parse(module.path.read_text())
    commits = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "commit"
        and _names_a_session(node.func.value)
    ]
    assert not commits, f"{module.rel} commits (lines {commits}); the request or the job's session_scope() commits"
