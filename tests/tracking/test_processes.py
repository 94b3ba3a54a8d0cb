"""Clicks under concurrent load on gunicorn workers (several processes), on PostgreSQL."""

from __future__ import annotations

import http.client
import signal
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from bench.harness import Server
from network.tracking.models import Click, Link
from tests.factories import make_brand, make_offer, make_partner
from tests.rollups.support import check_rollups

CLIENTS = 6
PER_CLIENT = 60


def _client(base: str, code: str, agent: str, count: int) -> list[tuple[int, str | None]]:
    parts = urlsplit(base)
    answers = []
    for _ in range(count):
        # A new connection each time, so gunicorn spreads the clicks over its workers.
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request("GET", f"/c/{code}?sub1=load", headers={"User-Agent": agent, "Connection": "close"})
        response = conn.getresponse()
        response.read()
        answers.append((response.status, response.getheader("Location")))
        conn.close()
    return answers


@pytest.mark.postgres_only
@pytest.mark.slow
def test_clicks_from_three_workers_are_all_written_after_a_clean_shutdown(committed_db, database_url, dialect):
    if dialect != "postgresql":
        pytest.skip("several processes writing at once need PostgreSQL")
    with committed_db.session_scope() as session:
        brand = make_brand(session)
        partner = make_partner(session)
        offer = make_offer(session, brand=brand)
        capped = make_offer(
            session,
            brand=brand,
            name="Capped",
            fallback_url="https://shop.example/full",
            caps=[{"metric": "clicks", "period": "day", "limit": 50, "scope": "offer"}],
        )
        session.add_all([Link(code="loadtest", offer_id=offer.id, partner_id=partner.id)])
        session.add_all([Link(code="captest", offer_id=capped.id, partner_id=partner.id)])
    env = {"DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key", "TESTING": "0"}
    server = Server("wsgi:app", env=env, workers=3, threads=2, ready_path="/healthz", timeout=60)
    with server:
        agents = [f"Mozilla/5.0 (X11; Linux x86_64) Firefox/12{i}.0" for i in range(CLIENTS)]
        with ThreadPoolExecutor(CLIENTS * 2) as pool:
            plain = [pool.submit(_client, server.url, "loadtest", agent, PER_CLIENT) for agent in agents]
            capped_runs = [pool.submit(_client, server.url, "captest", agent, 20) for agent in agents]
            answers = [a for f in plain for a in f.result()]
            capped_answers = [a for f in capped_runs for a in f.result()]
        assert server.stop(signal.SIGTERM) == 0, server.output()

    assert {status for status, _ in answers} == {302}
    click_ids = {parse_qs(urlsplit(location).query)["cid"][0] for _, location in answers}
    assert len(click_ids) == CLIENTS * PER_CLIENT
    with committed_db.session_scope() as session:
        rows = session.execute(
            select(Click.id, Click.is_unique, Click.visitor)
            .join(Link, Link.id == Click.link_id)
            .where(Link.code == "loadtest")
        ).all()
        assert {r.id for r in rows} == click_ids  # every click written, none twice
        # One unique click per visitor, although each visitor's clicks met three processes.
        assert sum(r.is_unique for r in rows) == CLIENTS == len({r.visitor for r in rows})
        check_rollups(session)  # three processes' flushes marked every hour they wrote
        to_offer = sum(1 for _, location in capped_answers if urlsplit(location).path == "/landing")
        assert to_offer == 50 and len(capped_answers) == CLIENTS * 20
        capped_rows = session.scalar(
            select(func.count(Click.id)).where(Click.offer_id == capped.id, Click.fallback_reason.is_(None))
        )
        assert capped_rows == 50
