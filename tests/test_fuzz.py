"""Schemathesis against the running app over real HTTP, once per role's key (ISSUE 18: the contract says
everything): no 5xx, and every answer conforms to its documented status, content type, headers and schema.

The app serves on a loopback port, on this run's database with committed objects (for each role a
brand, a partner, an offer, a link), so generated ids sometimes name real objects; each operation also
gets one case whose path ids all name real ones. Generation is derandomized and bounded (FUZZ_EXAMPLES
per operation and generation mode): the same cases every run, about 2 minutes per database. Run alone:
`.venv/bin/pytest tests/test_fuzz.py` (TEST_POSTGRES_URL=... for PostgreSQL; FUZZ_EXAMPLES=30 for a
deeper run). Generated hosts resolve to nothing: no request leaves the machine.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from werkzeug.serving import WSGIRequestHandler, make_server

from network.accounts import service as accounts
from network.app import create_app
from network.auth import Principal, Role
from network.db import Database
from network.tracking import service as tracking
from tests.conftest import _truncate_all, make_settings
from tests.factories import make_brand, make_key, make_offer, make_partner

#: Examples per operation and generation mode, per role: about 25 s per role and mode on a 2-core machine.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
#: Input the schema forbids (negative cases) is judged after the key's role: admin reaches the judgement on
#: every operation, so negative cases run with its key; every role runs the positive ones.
MODES = {"admin": [POSITIVE, NEGATIVE], "brand": [POSITIVE], "partner": [POSITIVE], "finance": [POSITIVE]}

pytestmark = pytest.mark.slow

_real_getaddrinfo = socket.getaddrinfo


def _loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
    """Resolve loopback hosts only: a generated postback URL never reaches past this machine."""
    if host in ("127.0.0.1", "localhost", "::1", b"127.0.0.1"):
        return _real_getaddrinfo(host, *args, **kwargs)
    raise socket.gaierror(socket.EAI_NONAME, "the fuzz run resolves loopback names only")


class _Quiet(WSGIRequestHandler):
    """No access log line per request: a failure's report names its case."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return None


#: Admin last: its ids reach every world, and its run may archive or suspend what it finds.
ROLES = ["brand", "partner", "finance", "admin"]


@dataclass
class World:
    """A brand, a partner, its offer and link: one role's run changes them (archives, suspends) for no other."""

    brand: Any
    partner: Any
    #: Path parameter -> the id (or code) of a real object.
    real: dict[str, Any]


def _world(session: Any) -> World:
    brand = make_brand(session)
    partner = make_partner(session)
    offer = make_offer(
        session, brand=brand, destination_url="http://127.0.0.1:9/landing?cid={click_id}", allowed_domains=["127.0.0.1"]
    )
    link = tracking.create_link(session, Principal(Role.PARTNER, partner_id=partner.id), offer_id=offer.id)
    spare, _ = accounts.create_key(session, role=Role.FINANCE)
    real = {
        "brand_id": brand.id,
        "partner_id": partner.id,
        "offer_id": offer.id,
        "link_id": link.id,
        "key_id": spare.id,
        "code": link.code,
        "step": "return",
    }
    return World(brand, partner, real)


@dataclass
class Served:
    base_url: str
    database: Database
    worlds: dict[str, World]

    def key(self, role: str) -> str:
        """Return a new key of `role` (its world's brand or partner): the fuzz may revoke any key it finds."""
        world = self.worlds[role]
        with self.database.session_scope() as session:
            return make_key(
                session,
                role=role,
                brand=world.brand if role == Role.BRAND else None,
                partner=world.partner if role == Role.PARTNER else None,
            )


@pytest.fixture(scope="module")
def served(database_url: str) -> Iterator[Served]:
    """The app on a loopback port, on committed objects (a world for each role)."""
    patch = pytest.MonkeyPatch()
    patch.setattr(socket, "getaddrinfo", _loopback_only)
    database = Database(database_url)
    session = database.session()
    worlds = {role: _world(session) for role in ROLES}
    session.commit()
    session.close()
    # Made after the objects: its snapshot of links holds them from the start.
    app = create_app(make_settings(database_url), database=database)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{server.server_port}", database, worlds)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["network.tracking"].writer.close()
        _truncate_all(database)
        database.dispose()
        patch.undo()


@pytest.fixture(scope="module")
def schema(served: Served) -> Any:
    return schemathesis.openapi.from_url(f"{served.base_url}/api/openapi.json")


def _fuzz(operation: Any, mode: Any, call: Any) -> None:
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failing case is reported
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        call(case)

    run()


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_as_documented(served: Served, schema: Any, role: str) -> None:
    failures: list[str] = []
    headers: dict[str, str] = {}
    real = served.worlds[role].real
    with requests.Session() as http:

        def call(case: Any) -> None:
            response = case.call(base_url=served.base_url, session=http, headers=headers, allow_redirects=False)
            case.validate_response(response, checks=CHECKS, headers=headers)

        for result in schema.get_all_operations():
            operation = result.ok()
            headers["Authorization"] = f"Bearer {served.key(role)}"
            path_ids = {p.name: real[p.name] for p in operation.path_parameters if p.name in real}
            cases = []
            if len(path_ids) == len(list(operation.path_parameters)) and path_ids:
                cases.append(("real ids", lambda op=operation, ids=path_ids: call(op.Case(path_parameters=ids))))
            for mode in MODES[role]:
                cases.append((mode.value, lambda op=operation, m=mode: _fuzz(op, m, call)))
            for label, run in cases:
                try:
                    run()
                except hypothesis.errors.Unsatisfiable:
                    assert label == "negative", f"{operation.label}: no valid case can be generated"
                except (Exception, FailureGroup) as error:  # a FailureGroup is a BaseException
                    failures.append(f"{operation.label} ({label}): {str(error)[:1500]}")
    assert not failures, f"{len(failures)} operations answered against the document:\n\n" + "\n\n".join(failures)


#: Cases the fuzz found once (with other seeds or more examples), kept so they are tried on every run:
#: (method, path, query). A postback naming one parameter twice, the name holding NUL: its refusal's
#: log line named the parameter and PostgreSQL refused to store it (a 500, not the 400).
FOUND = [
    ("GET", "/postback", {"a\x00b": ["1", "2"]}),
]


@pytest.mark.parametrize(("method", "path", "query"), FOUND)
def test_cases_the_fuzz_found_answer_as_documented(served: Served, schema: Any, method: str, path: str, query: Any):
    case = schema[path][method].Case(query=query)
    with requests.Session() as http:
        response = case.call(base_url=served.base_url, session=http, allow_redirects=False)
    case.validate_response(response, checks=CHECKS)
    assert response.status_code == 400
