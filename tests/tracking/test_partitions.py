"""Clicks partitioned by month on PostgreSQL, kept CLICK_RETENTION_MONTHS, and attributable after their row is gone.

The naming and range rules are pure and run on both databases. The PostgreSQL tests share one
database of this module's own (they make and drop partitions, which the session's shared database
must not see), emptied and given back its usual partitions after each test.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from network import migrate, scheduler
from network.app import create_app
from network.clock import UTC, now_utc
from network.config import Settings, from_env
from network.conversions import reads
from network.conversions.models import Conversion
from network.db import Database
from network.tracking import jobs, partitions, service
from network.tracking.clickid import ClickIdCodec
from network.tracking.models import Click, Link
from network.tracking.partitions import add_months, kept_from, month_named, month_of, months_wanted, name_of
from network.tracking.traffic import CountryResolver, VisitorHasher
from network.tracking.writer import ClickWriter, PendingClick
from tests.conftest import PG_ADMIN_URL, _create_pg_database, _drop_pg_database, make_settings
from tests.conversions.invariants import check_invariants
from tests.factories import make_brand, make_offer, make_partner

SECRET = "test-secret-key"
CODEC = ClickIdCodec(SECRET)
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def at(year: int, month: int, day: int = 1, hour: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=UTC)


# ---- the rules, on both databases ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "wanted"),
    [
        (at(2026, 12, 6, 3), ["clicks_2026_12", "clicks_2027_01", "clicks_2027_02", "clicks_2027_03"]),
        (at(2026, 1, 31, 23), ["clicks_2026_01", "clicks_2026_02", "clicks_2026_03", "clicks_2026_04"]),
        (dt.datetime(2026, 3, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))), ["clicks_2026_02"]),
    ],
)
def test_the_current_month_and_three_after_it_have_partitions(now, wanted):
    names = [name_of(month) for month in months_wanted(now)]
    assert names[: len(wanted)] == wanted  # a time of another zone counts in its UTC month
    assert len(names) == partitions.AHEAD + 1


@pytest.mark.parametrize(
    ("month", "months", "expected"),
    [
        (dt.date(2026, 12, 1), 1, dt.date(2027, 1, 1)),
        (dt.date(2026, 1, 1), -1, dt.date(2025, 12, 1)),
        (dt.date(2026, 12, 1), -13, dt.date(2025, 11, 1)),
        (dt.date(2026, 5, 1), 0, dt.date(2026, 5, 1)),
    ],
)
def test_months_are_added_across_years(month, months, expected):
    assert add_months(month, months) == expected


@pytest.mark.parametrize(
    ("month", "now", "gone"),
    [
        # Kept 13 whole months: on 6 December 2026, November 2025 is kept and October 2025 goes.
        (dt.date(2025, 11, 1), at(2026, 12, 6), False),
        (dt.date(2025, 10, 1), at(2026, 12, 6), True),
        # At midnight opening a month, the month 13 months back ends exactly 13 months ago: it goes.
        (dt.date(2025, 11, 1), at(2026, 12, 1), False),
        (dt.date(2025, 10, 1), at(2026, 12, 1), True),
        (dt.date(2026, 12, 1), at(2026, 12, 6), False),
    ],
)
def test_a_partition_expires_when_all_its_clicks_are_older_than_the_retention(month, now, gone):
    assert partitions.expired(month, now, 13) is gone
    assert kept_from(now, 13) == at(2025, 11, 1)


@pytest.mark.parametrize(
    ("name", "month"),
    [
        ("clicks_2026_12", dt.date(2026, 12, 1)),
        ("clicks_default", None),
        ("clicks_2026_13", None),
        ("clicks_2026_1", None),
        ("archive_2026_01", None),
    ],
)
def test_only_our_month_names_are_read_as_months(name, month):
    assert month_named(name) == month
    if month is not None:
        assert name_of(month) == name


def test_the_range_of_click_times_holds_each_ids_time():
    first, last = at(2026, 3, 1), at(2026, 3, 31, 23)
    low, high = partitions.around([last, first])
    assert low < first and last < high
    assert month_of(low) == dt.date(2026, 2, 1)  # the slack reaches the month before: both are read


def test_click_retention_months_is_a_whole_number_of_at_least_one():
    assert Settings().click_retention_months == 13
    assert from_env({"CLICK_RETENTION_MONTHS": "24", "SECRET_KEY": "k"}).click_retention_months == 24
    with pytest.raises(ValueError, match="CLICK_RETENTION_MONTHS"):
        from_env({"CLICK_RETENTION_MONTHS": "0", "SECRET_KEY": "k"})


def test_on_sqlite_old_clicks_are_deleted_a_day_at_a_time(db, session, dialect):
    if dialect != "sqlite":
        pytest.skip("PostgreSQL drops old clicks with their partition (tested below)")
    link = _link(session)
    now = at(2026, 12, 6)
    for when in (at(2025, 9, 3), at(2025, 10, 31, 23), at(2025, 11, 1), now):
        _row(session, link, when)
    summary = jobs.keep_click_partitions(db, now=now, retention_months=13)
    assert summary == {"deleted": 2}
    session.expire_all()
    assert sorted(c.created_at for c in session.scalars(select(Click))) == [at(2025, 11, 1), now]


# ---- PostgreSQL --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this module's own, migrated to head."""
    if not PG_ADMIN_URL:
        pytest.skip("partitions are PostgreSQL's (set TEST_POSTGRES_URL); SQLite keeps one clicks table")
    url = _create_pg_database(PG_ADMIN_URL)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        _drop_pg_database(PG_ADMIN_URL, url)


@pytest.fixture
def pg(pg_url: str) -> Iterator[Database]:
    """The module's database; afterwards emptied, with the migration's partitions again."""
    database = Database(pg_url)
    yield database
    with database.engine.begin() as conn:
        conn.execute(
            text("TRUNCATE clicks, links, offers, partners, brands, job_claims, job_status RESTART IDENTITY CASCADE")
        )
        for name, month in partitions.existing(conn).items():
            if month is not None:
                partitions.drop_month(conn, name)
        for month in months_wanted(now_utc()):
            partitions.create_month(conn, month)
    database.dispose()


def _link(session: Session, **subs: Any) -> Link:
    brand = make_brand(session)
    offer = make_offer(session, brand=brand, conversion_window_days=30)
    link = Link(code=f"p{offer.id}", offer_id=offer.id, partner_id=make_partner(session).id, **subs)
    session.add(link)
    session.flush()
    return link


def _row(session: Session, link: Link, when: dt.datetime) -> str:
    click_id = CODEC.issue(link.id, when)
    session.add(
        Click(id=click_id, link_id=link.id, offer_id=link.offer_id, partner_id=link.partner_id, created_at=when)
    )
    session.flush()
    return click_id


def _write(database: Database, link: Link, times: list[dt.datetime]) -> list[str]:
    """Write clicks at `times` through the click writer (COPY into the partitioned table); return their ids."""
    writer = ClickWriter(
        database, hasher=VisitorHasher(SECRET), countries=CountryResolver(None, None), background=False
    )
    ids = []
    for when in times:
        click_id = CODEC.issue(link.id, when)
        ids.append(click_id)
        writer.add(
            PendingClick(
                id=click_id,
                link_id=link.id,
                offer_id=link.offer_id,
                partner_id=link.partner_id,
                created_at=when,
                ip="203.0.113.9",
                agent=BROWSER,
            )
        )
    assert writer.flush() == len(times)
    return ids


def _where(database: Database) -> dict[str, str]:
    """Return the partition each click row is in, by click id."""
    with database.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, tableoid::regclass::text FROM clicks"))
        return {click_id: table.removeprefix(f"{partitions.SCHEMA}.") for click_id, table in rows}


def _names(database: Database) -> set[str]:
    with database.engine.connect() as conn:
        return set(partitions.existing(conn))


def _made_link(database: Database, **subs: Any) -> Link:
    with database.session_scope() as session:
        link = _link(session, **subs)
        session.expunge(link)
    return link


def test_the_migration_makes_the_default_partition_and_the_coming_months(pg):
    assert _names(pg) == {"clicks_default", *(name_of(m) for m in months_wanted(now_utc()))}
    with pg.engine.connect() as conn:
        kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = 'clicks'::regclass")).scalar_one()
        options = conn.execute(
            text(
                "SELECT c.relname, c.reloptions FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'clicks'::regclass"
            )
        ).all()
    assert kind == "p"
    # Each partition vacuums after 1 % of it changed: a partitioned table's settings are not inherited.
    assert {name: "autovacuum_vacuum_insert_scale_factor=0.01" in (opts or []) for name, opts in options} == {
        name: True for name in _names(pg)
    }


def test_the_job_makes_months_ahead_once(pg):
    later = now_utc() + dt.timedelta(days=200)
    made = jobs.keep_click_partitions(pg, now=later, retention_months=13)
    assert made["created"] == [name_of(m) for m in months_wanted(later) if m > add_months(month_of(now_utc()), 3)]
    assert jobs.keep_click_partitions(pg, now=later, retention_months=13) == {
        "created": [],
        "moved": 0,
        "dropped": [],
        "deleted": 0,
    }
    assert {name_of(m) for m in months_wanted(later)} <= _names(pg)


def test_the_scheduler_runs_the_job_with_the_retention_setting_once_a_day(pg, pg_url):
    settings = make_settings(pg_url, click_retention_months=2)
    later = now_utc() + dt.timedelta(days=31 * 4)
    run = scheduler.run_job(pg, settings, "keep_click_partitions", now=later)
    assert run["ran"] and name_of(month_of(now_utc())) in run["result"]["dropped"]
    assert {name_of(m) for m in months_wanted(later)} <= _names(pg)
    assert scheduler.run_job(pg, settings, "keep_click_partitions", now=later)["ran"] is False  # claimed


def test_clicks_land_in_their_months_partition(pg):
    link = _made_link(pg)
    this_month = month_of(now_utc())
    times = [partitions.bounds(add_months(this_month, n))[0] for n in range(3)]
    times.append(partitions.bounds(this_month)[1] - dt.timedelta(milliseconds=1))  # the month's last instant
    ids = _write(pg, link, times)
    where = _where(pg)
    expected = [name_of(this_month), name_of(add_months(this_month, 1)), name_of(add_months(this_month, 2))]
    assert [where[i] for i in ids] == [*expected, name_of(this_month)]


def test_a_click_of_a_month_without_partition_is_kept_and_moved_in_when_its_month_is_made(pg):
    link = _made_link(pg)
    now = now_utc()
    future, past = add_months(month_of(now), 6), at(1999, 5, 4)
    soon, long_ago = _write(pg, link, [partitions.bounds(future)[0] + dt.timedelta(hours=5), past])
    assert _where(pg) == {soon: "clicks_default", long_ago: "clicks_default"}
    # The job keeps the far-off month's click where it is until its month is due, and deletes the
    # one older than the retention.
    assert jobs.keep_click_partitions(pg, now=now, retention_months=13)["deleted"] == 1
    assert _where(pg) == {soon: "clicks_default"}
    due = partitions.bounds(future)[0] - dt.timedelta(days=40)
    summary = jobs.keep_click_partitions(pg, now=due, retention_months=13)
    assert name_of(future) in summary["created"] and summary["moved"] == 1
    assert _where(pg) == {soon: name_of(future)}


def test_retention_drops_the_months_older_than_it_and_keeps_the_others(pg):
    link = _made_link(pg)
    now = now_utc()
    this_month = month_of(now)
    # A year and a half of partitions, as a network running that long has them.
    jobs.keep_click_partitions(pg, now=partitions.bounds(add_months(this_month, -18))[0], retention_months=99)
    for n in range(-18, 0, 3):
        jobs.keep_click_partitions(pg, now=partitions.bounds(add_months(this_month, n))[0], retention_months=99)
    old = [partitions.bounds(add_months(this_month, n))[0] + dt.timedelta(days=2) for n in (-15, -14, -13, -12, -1)]
    ids = _write(pg, link, old)
    assert set(_where(pg).values()) <= _names(pg) - {"clicks_default"}

    summary = jobs.keep_click_partitions(pg, now=now, retention_months=13)
    gone = {name_of(add_months(this_month, n)) for n in range(-18, -13)}
    assert set(summary["dropped"]) == gone
    assert not gone & _names(pg)
    assert sorted(_where(pg)) == sorted(ids[2:])  # 13, 12 and 1 month ago are kept
    with pg.engine.connect() as conn:
        left = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'partitions'")).scalar_one()
    assert left == len(_names(pg))  # detached and dropped: no table left behind
    assert jobs.keep_click_partitions(pg, now=now, retention_months=13)["dropped"] == []


def test_several_processes_running_the_job_at_once_make_each_month_once(pg):
    later = now_utc() + dt.timedelta(days=31 * 15)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def run() -> None:
        database = Database(pg.url)
        try:
            start.wait()
            results.append(jobs.keep_click_partitions(database, now=later, retention_months=13))
        except BaseException as error:
            errors.append(error)
        finally:
            database.dispose()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    created = [name for result in results for name in result["created"]]
    dropped = [name for result in results for name in result["dropped"]]
    assert len(created) == len(set(created)) and len(dropped) == len(set(dropped))
    assert {name_of(m) for m in months_wanted(later)} <= _names(pg)
    assert name_of(month_of(now_utc())) not in _names(pg)  # 13 months back from `later`: expired


def test_a_conversion_attributes_by_its_click_id_after_the_clicks_partition_is_dropped(pg, pg_url):
    with pg.session_scope() as session:
        link = _link(session, sub1="from-link")
        code, offer_id, partner_id, link_id = link.code, link.offer_id, link.partner_id, link.id
        token = session.scalar(text("SELECT postback_token FROM brands"))
    app = create_app(make_settings(pg_url), database=pg)
    client = app.test_client()
    answer = client.get(f"/c/{code}?sub1=from-click", headers={"User-Agent": BROWSER})
    click_id = answer.headers["Location"].split("cid=")[1].split("&")[0]
    service.flush_clicks()
    assert click_id in _where(pg)

    # Its month's partition expires (retention 1 month, two months on) and is dropped.
    summary = jobs.keep_click_partitions(pg, now=now_utc() + dt.timedelta(days=62), retention_months=1)
    assert name_of(month_of(now_utc())) in summary["dropped"]
    assert click_id not in _where(pg)

    r = client.get("/postback", query_string={"click_id": click_id, "event": "sale", "amount": "80.00", "token": token})
    assert r.status_code == 200, r.json
    assert (r.json["status"], r.json["reason"]) == ("approved", None)
    with pg.session_scope() as session:
        conversion = session.get(Conversion, r.json["conversion_id"])
        assert conversion is not None
        assert (conversion.offer_id, conversion.partner_id, conversion.link_id) == (offer_id, partner_id, link_id)
        assert conversion.clicked_at == CODEC.verify(click_id).clicked_at  # type: ignore[union-attr]
        # The click's own sub ids went with its row: the link's stand in.
        assert reads.sub_ids(session, [conversion])[conversion.id][0] == "from-link"
        check_invariants(session, SECRET)
