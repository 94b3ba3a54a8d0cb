"""The click redirect and the impression counter: the network's hottest path.

A click is answered from the in-process snapshot (no query) and queued for the writer (no write); only a
code the snapshot lacks is looked up in the database, once (snapshot.SnapshotCache.find_new).
Only offers with a click cap take a database round trip: the cap is consumed by a conditional
UPDATE so it holds exactly across processes.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
from collections.abc import Mapping
from dataclasses import dataclass

from network import clock
from network.config import Settings
from network.db import Database
from network.offers import caps
from network.offers.models import OfferStatus
from network.text import cleaned
from network.tracking import rules
from network.tracking.clickid import ClickIdCodec
from network.tracking.models import Link
from network.tracking.snapshot import LinkView, OfferView, SnapshotCache
from network.tracking.traffic import CountryResolver, VisitorHasher, classify_agent
from network.tracking.writer import ClickWriter, PendingClick

_PAUSED = OfferStatus.PAUSED.value
_SUBS = ("sub1", "sub2", "sub3", "sub4", "sub5")
#: What a click keeps of each tracking parameter (network.text.clean: control characters dropped,
#: longer values cut with a marker): a sub id as long as a link's own, a referrer as a long URL.
MAX_SUB = int(Link.__table__.c.sub1.type.length)  # type: ignore[attr-defined]
MAX_UTM_VALUE = 255
MAX_REFERRER = 2048


#: The query string: the first value of each parameter.
QueryArgs = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where a click goes: a 302 to `location`, or a 404 (no location)."""

    location: str | None
    #: The click id to put in the cookie (only for clicks sent to the offer).
    click_id: str | None = None


NOT_FOUND = Outcome(None)


def _subs(defaults: tuple[str | None, ...], args: QueryArgs) -> list[str | None]:
    """Return the link's sub ids with those the click's query string gives instead (cleaned, network.text)."""
    subs = list(defaults)
    for i, name in enumerate(_SUBS):
        value = args.get(name)
        if value:
            subs[i] = cleaned(value, MAX_SUB) or subs[i]
    return subs


class Tracker:
    """Resolves clicks and impressions for one app: snapshot, click ids, targeting, buffered writer."""

    def __init__(self, settings: Settings, database: Database) -> None:
        testing = settings.testing
        #: Freeze the garbage collector's view of everything loaded before the first click (servers).
        self.freeze_gc = not testing
        self._frozen_pid = 0
        self.database = database
        #: The public URL is https: cookies are Secure even when TLS ends at a proxy.
        self.https = settings.public_base_url.startswith("https://")
        self.codec = ClickIdCodec(settings.secret_key)
        # Tests change offers under a frozen clock and expect the next click to see it.
        self.snapshots = SnapshotCache(
            database, max_age=0.0 if testing else 0.5, trust_fingerprint=not testing, background=not testing
        )
        self.countries = CountryResolver(settings.trusted_country_header, settings.geoip_db)
        self.writer = ClickWriter(
            database, hasher=VisitorHasher(settings.secret_key), countries=self.countries, background=not testing
        )

    def click(
        self,
        code: str,
        args: QueryArgs,
        *,
        agent: str | None,
        referrer: str | None,
        ip: str | None,
        country_header: str | None,
        head: bool = False,
    ) -> Outcome:
        """Record a click on `code` and return where to send it."""
        if self.freeze_gc and self._frozen_pid != os.getpid():
            self._freeze_gc()
        resolved = self.snapshots.get().resolve(code)
        if resolved is None:
            # A link made since the snapshot's last reload works at once: one look in the database.
            resolved = self.snapshots.find_new(code)
            if resolved is None:
                return NOT_FOUND
        link, offer = resolved
        now = clock.now_utc()
        # The id carries milliseconds: the row keeps the same instant, so both say the same time.
        now = now.replace(microsecond=now.microsecond - now.microsecond % 1000)
        click_id = self.codec.issue(link.id, now)
        subs = _subs(link.subs, args) if args else list(link.subs)
        country, device, reason = self._targeting(offer, link, now, agent, ip, country_header, head)
        utm_pairs = [(k, cleaned(v, MAX_UTM_VALUE)) for k, v in args.items() if k.startswith("utm_")] if args else []
        utm = dict(rules.utm_params(utm_pairs, frozenset())) if utm_pairs else None
        location: str | None
        if reason is None:
            location = self._destination(link, offer, args.get("url"), utm_pairs, click_id, subs)
        else:
            location = offer.fallback_url
        self.writer.add(
            PendingClick(
                id=click_id,
                link_id=link.id,
                offer_id=offer.id,
                partner_id=link.partner_id,
                created_at=now,
                sub1=subs[0],
                sub2=subs[1],
                sub3=subs[2],
                sub4=subs[3],
                sub5=subs[4],
                utm=utm or None,
                referrer=cleaned(referrer, MAX_REFERRER),
                country=country,
                device=device,
                ip=ip,
                fallback_reason=reason,
                agent=agent,
                country_header=country_header,
                head=head,
            )
        )
        return Outcome(location, click_id if reason is None else None)

    def _targeting(
        self,
        offer: OfferView,
        link: LinkView,
        now: dt.datetime,
        agent: str | None,
        ip: str | None,
        country_header: str | None,
        head: bool,
    ) -> tuple[str | None, str | None, str | None]:
        """Return the click's country and device (when the offer targets them) and why it goes to the fallback (or None)."""
        if offer.status == _PAUSED:
            return None, None, rules.PAUSED
        if offer.brand_held:
            return None, None, rules.BRAND_CREDIT
        country = self.countries.resolve(country_header, ip) if offer.countries else None
        device = classify_agent(agent)[0] if offer.devices else None
        reason = rules.targeting_miss(offer.countries, offer.devices, country, device)
        # HEAD requests (link checkers, previews) take no room in a cap.
        if reason is None and offer.click_caps and not head and not self._take_caps(offer, link, now):
            reason = rules.CAP
        return country, device, reason

    def _freeze_gc(self) -> None:
        # The app, SQLAlchemy's metadata and the snapshot are ~150k long-lived objects; each full
        # collection walks them all (~70 ms here), and buffered clicks make those collections
        # frequent. Frozen, they are skipped: collections see only what clicks allocate.
        self._frozen_pid = os.getpid()
        gc.collect()
        gc.freeze()

    def _destination(
        self,
        link: LinkView,
        offer: OfferView,
        deep: str | None,
        utm_pairs: list[tuple[str, str]],
        click_id: str,
        subs: list[str | None],
    ) -> str:
        base = rules.clean_deep_link(deep, offer.allowed) if deep else None
        if base is None and link.deep_link:
            # Checked again: the offer's allowed domains may have changed since the link was made.
            base = rules.clean_deep_link(link.deep_link, offer.allowed)
        if base is not None:
            params = [("click_id", click_id)]
            exclude = rules.compile_target(base).query_keys
        else:
            target = offer.target
            values: dict[str, str | None] = dict(link.macros)
            values["click_id"] = click_id
            values.update(zip(_SUBS, subs, strict=True))
            base = rules.fill(target, values)
            params = [] if target.has_click_id else [("click_id", click_id)]
            exclude = target.query_keys
        if utm_pairs:
            params.extend(rules.utm_params(utm_pairs, exclude))
        return rules.add_params(base, params)

    def _take_caps(self, offer: OfferView, link: LinkView, now: dt.datetime) -> bool:
        """Take room for one click in each of the offer's click caps, all or none; False when one has no room."""
        # The click request's one write, in a transaction of its own (a failed take changes nothing).
        with self.database.session_scope() as session:
            return caps.consume(session, offer.click_caps, partner_id=link.partner_id, at=now, metrics=("clicks",))

    def impression(self, code: str, *, agent: str | None, head: bool = False) -> bool:
        """Count an impression of `code` (bots and HEAD requests are not counted); False when unknown."""
        resolved = self.snapshots.get().resolve(code) or self.snapshots.find_new(code)
        if resolved is None:
            return False
        link, offer = resolved
        if head or offer.status == _PAUSED or classify_agent(agent)[1]:
            return True
        self.writer.add_impression(link.id, offer.id, link.partner_id, clock.now_utc().date())
        return True
