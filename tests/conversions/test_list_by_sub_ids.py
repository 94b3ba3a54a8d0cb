"""The conversions list filtered by sub ids: the click's own, else its link's (as reports count them)."""

from __future__ import annotations

import datetime as dt

import pytest

from network.auth import SYSTEM, Principal, Role
from network.conversions import service
from network.errors import ValidationError
from tests.factories import make_brand, make_offer, make_partner
from tests.reports.conftest import add_click, add_conversion, make_link

WHEN = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)


def test_sub_ids_filter_by_the_clicks_own_else_the_links(session):
    offer = make_offer(session, brand=make_brand(session))
    partner, other = make_partner(session), make_partner(session, name="Other")
    link = make_link(session, offer=offer, partner=partner, sub1="spring", sub2="news")
    own = add_conversion(session, link, when=WHEN, click=add_click(session, link, when=WHEN, sub1="autumn"))
    defaults = add_conversion(session, link, when=WHEN)  # its click row is not written yet: the link's
    theirs = add_conversion(session, make_link(session, offer=offer, partner=other, sub1="spring"), when=WHEN)
    me = Principal(Role.PARTNER, key_id=1, partner_id=partner.id)

    def ids(principal: Principal, **subs: str) -> list[int]:
        return [c.id for c in service.list_conversions(session, principal, subs=subs)]

    assert ids(me, sub1="autumn") == [own.id]
    assert ids(me, sub1="spring") == [defaults.id]
    assert ids(me, sub1="spring", sub2="news") == [defaults.id]
    assert ids(me, sub2="news") == [own.id, defaults.id]
    assert ids(me, sub3="x") == []
    assert ids(SYSTEM, sub1="spring") == [defaults.id, theirs.id]
    with pytest.raises(ValidationError) as raised:
        service.list_conversions(session, me, subs={"sub9": "x"})
    assert raised.value.field == "sub9"
