"""An in-process, read-only snapshot of links and offers, so a click needs no database query.

It is reloaded every `max_age` seconds (0.5 by default: changes take effect within a second). A
reload first asks one cheap fingerprint query whether offers, partners, access or click caps
changed; links are append-only and loaded incrementally by id. In a server a background thread
reloads, so requests never wait for the database; without it (tests), the first request that finds
the snapshot stale reloads it while other threads keep answering from the previous one.

A code the snapshot does not hold yet (a link made since the last reload) is looked up once in the
database before its 404 (`find_new`), and then kept; codes the database does not know either are
remembered for `UNKNOWN_FOR` seconds, so a flood of made-up codes costs one query per code, not per
click. Both are held by network.cache.Cache, which says how long an entry lives.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from network import outage
from network.accounts.models import Brand
from network.cache import Cache
from network.db import Database
from network.offers import rules as offer_rules
from network.offers.models import AccessStatus, Cap, Offer, OfferAccess, OfferStatus
from network.partners.models import Partner, PartnerStatus
from network.tracking import rules
from network.tracking.models import Link

log = logging.getLogger(__name__)

#: What the snapshot reads, summed; a set by its count and sums of ids and squares ({1,4} is not {2,3}).
_FINGERPRINT = text(
    """
    SELECT
      (SELECT count(*) FROM offers),
      (SELECT max(updated_at) FROM offers),
      (SELECT count(*) FROM links),
      (SELECT max(id) FROM links),
      (SELECT count(*) FROM partners WHERE status = 'active'),
      (SELECT coalesce(sum(id), 0) FROM partners WHERE status = 'active'),
      (SELECT coalesce(sum(CAST(id AS BIGINT) * id), 0) FROM partners WHERE status = 'active'),
      (SELECT count(*) FROM offer_access WHERE status = 'approved'),
      (SELECT coalesce(sum(id), 0) FROM offer_access WHERE status = 'approved'),
      (SELECT coalesce(sum(CAST(id AS BIGINT) * id), 0) FROM offer_access WHERE status = 'approved'),
      (SELECT count(*) FROM caps WHERE metric = 'clicks'),
      (SELECT coalesce(sum(id + "limit"), 0) FROM caps WHERE metric = 'clicks'),
      (SELECT count(*) FROM brands WHERE credit_hold), (SELECT coalesce(sum(id), 0) FROM brands WHERE credit_hold),
      (SELECT coalesce(sum(CAST(id AS BIGINT) * id), 0) FROM brands WHERE credit_hold)
    """
)


#: What a link code can be (service._new_code draws 12 of these; the column holds 32): anything else
#: is a 404 without a query.
_CODE = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True, slots=True)
class ClickCap:
    """A click cap of an offer."""

    id: int
    period: str
    limit: int
    #: "offer" or "partner".
    scope: str
    metric: str = "clicks"


@dataclass(frozen=True, slots=True)
class OfferView:
    """What a click needs to know about an offer."""

    id: int
    status: str
    visibility: str
    target: rules.Target
    allowed: frozenset[str]
    fallback_url: str | None
    countries: frozenset[str]
    devices: frozenset[str]
    click_caps: tuple[ClickCap, ...]
    #: Its brand is over its credit limit: clicks go to the fallback (rules.BRAND_CREDIT).
    brand_held: bool = False


@dataclass(frozen=True, slots=True)
class LinkView:
    """What a click needs to know about a link."""

    id: int
    offer_id: int
    partner_id: int
    subs: tuple[str | None, str | None, str | None, str | None, str | None]
    deep_link: str | None
    #: The macros a link fixes: offer_id, partner_id, link_id (as text, made once).
    macros: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Links by code and offers by id, with who may run what; never changed once built."""

    links: dict[str, LinkView] = field(default_factory=dict)
    offers: dict[int, OfferView] = field(default_factory=dict)
    active_partners: frozenset[int] = frozenset()
    #: (offer id, partner id) pairs with an approved application or invitation.
    approved: frozenset[tuple[int, int]] = frozenset()

    def resolve(self, code: str) -> tuple[LinkView, OfferView] | None:
        """Return the link and its offer when a click on `code` may be served, else None (404)."""
        link = self.links.get(code)
        if link is None:
            return None
        offer = self.offers.get(link.offer_id)
        if offer is None or link.partner_id not in self.active_partners:
            return None
        # Draft and archived offers are not live; paused ones send clicks to their fallback, for
        # the partners who could run them when active.
        if offer.status not in _LIVE:
            return None
        if not offer_rules.may_run(
            partner_active=True,
            offer_status=OfferStatus.ACTIVE.value,
            visibility=offer.visibility,
            approved=(offer.id, link.partner_id) in self.approved,
        ):
            return None
        return link, offer


_LIVE = frozenset({OfferStatus.ACTIVE.value, OfferStatus.PAUSED.value})


def _offer_view(row: Any, caps: tuple[ClickCap, ...]) -> OfferView:
    return OfferView(
        id=row.id,
        status=row.status,
        visibility=row.visibility,
        target=rules.compile_target(row.destination_url),
        allowed=frozenset(row.allowed_domains or ()),
        fallback_url=row.fallback_url,
        countries=frozenset(row.countries or ()),
        devices=frozenset(row.devices or ()),
        click_caps=caps,
        brand_held=bool(row.credit_hold),
    )


#: What the snapshot keeps of an offer, with its brand's credit hold.
_OFFERS = select(
    Offer.id, Offer.status, Offer.visibility, Offer.destination_url, Offer.allowed_domains, Offer.fallback_url,
    Offer.countries, Offer.devices, Brand.credit_hold,
).join(Brand, Brand.id == Offer.brand_id)  # fmt: skip

#: What the snapshot keeps of a link (all links at a full load, new ones in between).
_LINKS = select(
    Link.id,
    Link.code,
    Link.offer_id,
    Link.partner_id,
    Link.sub1,
    Link.sub2,
    Link.sub3,
    Link.sub4,
    Link.sub5,
    Link.deep_link,
)


def _link_view(row: Any) -> LinkView:
    return LinkView(
        id=row.id,
        offer_id=row.offer_id,
        partner_id=row.partner_id,
        subs=(row.sub1, row.sub2, row.sub3, row.sub4, row.sub5),
        deep_link=row.deep_link,
        macros={"offer_id": str(row.offer_id), "partner_id": str(row.partner_id), "link_id": str(row.id)},
    )


#: The one entry of a SnapshotCache's cache.
SNAPSHOT = "snapshot"
#: Seconds a code the database did not know is remembered as unknown.
UNKNOWN_FOR = 5.0


class SnapshotCache:
    """Holds the current snapshot of one database and reloads it when stale (expiry: network.cache)."""

    def __init__(
        self,
        database: Database,
        *,
        max_age: float = 0.5,
        trust_fingerprint: bool = True,
        background: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        #: Reload from a background thread (servers) instead of the request that finds it stale.
        self.background = background
        self._thread: threading.Thread | None = None
        self._pid = 0
        #: False: reload everything on every check (tests with a frozen clock, where
        #: offers.updated_at would not move).
        self.trust_fingerprint = trust_fingerprint
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._lock_pid = os.getpid()
        self._cache: Cache[str, Snapshot] = Cache(max_age=max_age, size=1, monotonic=monotonic)
        self.max_age = max_age
        self._fingerprint: tuple[Any, ...] | None = None
        self._max_link_id = 0
        #: Codes the database did not know a moment ago (see find_new); links found are not kept here.
        self.unknown: Cache[str, Any] = Cache(max_age=0, miss_age=UNKNOWN_FOR, monotonic=monotonic)
        self._warned_at = float("-inf")

    @property
    def max_age(self) -> float:
        """Seconds a snapshot is served before it is checked for changes."""
        return self._max_age

    @max_age.setter
    def max_age(self, value: float) -> None:
        self._max_age = value
        # With a background reload every max_age, a request reloads only when that thread is two
        # periods and a second late (stuck, or not started in this process yet).
        self._cache.max_age = 2 * value + 1 if self.background else value

    def get(self) -> Snapshot:
        """Return a snapshot no older than max_age, reloading it first when needed."""
        try:
            snapshot = self._cache.get(SNAPSHOT, self._read)
        except Exception as error:
            snapshot = self._cache.peek(SNAPSHOT)
            if snapshot is None:
                raise
            # Keep serving what we have; try again after max_age.
            outage.log_failure(log, "tracking snapshot reload failed", error, what="snapshot reloads failed")
            self._cache.put(SNAPSHOT, snapshot)
        assert snapshot is not None
        return snapshot

    def _read(self, _previous: Snapshot | None) -> Snapshot:
        with self._held():
            # Only one caller reloads (network.cache); the first load is waited for by all.
            if not self._cache.has_fresh(SNAPSHOT):
                self.reload()
            snapshot = self._current()
        if self.background and (self._pid != os.getpid() or self._thread is None):
            self._start()
        return snapshot

    def _held(self) -> threading.Lock:
        """Return this process's reload lock, made anew after a fork.

        Under gunicorn --preload the cache is built in the master: its lock would be an OS lock in a
        gevent worker, and a greenlet that switches while reloading would block the whole worker.
        """
        if self._lock_pid != os.getpid():
            self._lock, self._lock_pid = threading.Lock(), os.getpid()
        return self._lock

    def _start(self) -> None:
        with self._held():
            if self._pid == os.getpid() and self._thread is not None:
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._refresh_loop, name="tracking-snapshot", daemon=True)
            self._thread.start()

    def _refresh_loop(self) -> None:
        while True:
            time.sleep(max(self.max_age - self._cache.age(SNAPSHOT), 0.05))
            try:
                with self._held():
                    self.reload()
            except Exception as error:  # noqa: BLE001 - logged by outage.log_failure
                outage.log_failure(
                    log,
                    "tracking snapshot reload failed; serving the previous one",
                    error,
                    what="snapshot reloads failed",
                )
                time.sleep(self.max_age)

    def find_new(self, code: str) -> tuple[LinkView, OfferView] | None:
        """Resolve a code the snapshot lacks by one look in the database (the 404 path), keeping what it finds."""
        if code in self.get().links or _CODE.fullmatch(code) is None:
            return None
        try:
            row = self.unknown.get(code, lambda _previous: self._look_up(code))
            if row is None:
                return None
            with self._held():
                if code not in self._current().links:
                    # The link's offer, partner and access may be as new as the link itself.
                    self.reload()
                    self._keep(_link_view(row), code)
        except SQLAlchemyError as exc:
            # The database is away: answer 404 as before the look-up existed, and do not ask again at once.
            self.unknown.put(code, None)
            if self._monotonic() - self._warned_at >= UNKNOWN_FOR:  # once per UNKNOWN_FOR, not per click
                self._warned_at = self._monotonic()
                log.warning("could not look up a link code in the database (404 meanwhile): %s", exc)
            return None
        return self._current().resolve(code)

    def _look_up(self, code: str) -> Any:
        """Return the link row of `code` from the database, or None."""
        with self.database.read_session() as session:
            return session.execute(_LINKS.where(Link.code == code)).one_or_none()

    def _current(self) -> Snapshot:
        """Return the snapshot held now, loading the first one if none is (the caller holds the lock)."""
        snapshot = self._cache.peek(SNAPSHOT)
        if snapshot is None:
            self.reload()
            snapshot = self._cache.peek(SNAPSHOT)
        assert snapshot is not None
        return snapshot

    def _keep(self, link: LinkView, code: str) -> None:
        """Add a link the reload did not bring (one committed after a later id was loaded)."""
        old = self._current()
        if code not in old.links:
            self._cache.put(
                SNAPSHOT, Snapshot({**old.links, code: link}, old.offers, old.active_partners, old.approved)
            )

    def invalidate(self) -> None:
        """Make the next get() check the database."""
        self._cache.expire(SNAPSHOT)

    def reload(self) -> None:
        """Bring the snapshot up to date with the database."""
        old = self._cache.peek(SNAPSHOT)
        with self.database.read_session() as session:
            fingerprint = tuple(session.execute(_FINGERPRINT).one())
            links_count, max_link_id = fingerprint[2], fingerprint[3] or 0
            full = (
                old is None
                or not self.trust_fingerprint
                or self._fingerprint is None
                or fingerprint[:2] != self._fingerprint[:2]
                or fingerprint[4:] != self._fingerprint[4:]
                or max_link_id < self._max_link_id
                or links_count < len(old.links)
            )
            if full:
                new = self._load_all(session)
            else:
                assert old is not None
                links = old.links if max_link_id <= self._max_link_id else self._with_new_links(session, old.links)
                new = Snapshot(links, old.offers, old.active_partners, old.approved)
        self._fingerprint = fingerprint
        self._max_link_id = max(max_link_id, max((v.id for v in new.links.values()), default=0))
        self._cache.put(SNAPSHOT, new)

    def _with_new_links(self, session: Any, old: dict[str, LinkView]) -> dict[str, LinkView]:
        """Return the links of the old snapshot and those made since (links are append-only)."""
        links = dict(old)
        for row in session.execute(_LINKS.where(Link.id > self._max_link_id)):
            links[row.code] = _link_view(row)
        return links

    def _load_all(self, session: Any) -> Snapshot:
        caps: dict[int, list[ClickCap]] = {}
        for cap in session.execute(
            select(Cap.id, Cap.offer_id, Cap.period, Cap.limit, Cap.scope).where(Cap.metric == "clicks")
        ):
            caps.setdefault(cap.offer_id, []).append(ClickCap(cap.id, cap.period, cap.limit, cap.scope))
        offers = {row.id: _offer_view(row, tuple(caps.get(row.id, ()))) for row in session.execute(_OFFERS)}
        links = {row.code: _link_view(row) for row in session.execute(_LINKS)}
        active = frozenset(session.scalars(select(Partner.id).where(Partner.status == PartnerStatus.ACTIVE.value)))
        approved = frozenset(
            (row.offer_id, row.partner_id)
            for row in session.execute(
                select(OfferAccess.offer_id, OfferAccess.partner_id).where(
                    OfferAccess.status == AccessStatus.APPROVED.value
                )
            )
        )
        return Snapshot(links, offers, active, approved)

    def link_count(self) -> int:
        """Return how many links the snapshot holds (for diagnostics)."""
        snapshot = self._cache.peek(SNAPSHOT)
        return len(snapshot.links) if snapshot else 0
