"""For any sub ids and deep link, the redirect goes only to the offer's own or allowed hosts."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from network.auth import SYSTEM
from network.offers import service as offers
from network.tracking import rules

ALLOWED = {"shop.example", "brand.example", "xn--bcher-kva.example"}

_hosts = st.sampled_from(
    [
        "shop.example", "brand.example", "evil.example", "shop.example.evil.example", "brand.example@evil.example",
        "Shop.Example.", "bücher.example", "evil.example\\@shop.example", "127.0.0.1", "[::1]", "",
    ]
)  # fmt: skip
_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
_deep_links = st.one_of(
    _text,
    st.builds(
        lambda scheme, host, rest: f"{scheme}{host}{rest}",
        st.sampled_from(["https://", "http://", "//", "javascript:", "HTTPS://", "https:/", "https:\\\\", ""]),
        _hosts,
        _text,
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subs=st.lists(_text, min_size=5, max_size=5), deep_link=st.one_of(st.none(), _deep_links), extra=_text)
def test_location_host_is_always_allowed(client, session, world, subs, deep_link, extra):
    if not getattr(world, "prepared", False):
        offers.update_offer(
            session,
            SYSTEM,
            world.offer.id,
            {
                "allowed_domains": [*sorted(ALLOWED - {"xn--bcher-kva.example"}), "bücher.example"],
                "destination_url": "https://shop.example/l/{sub3}?a={sub1}&b={sub2}#{sub4}",
            },
        )
        session.flush()
        world.prepared = True
        world.code = world.link(session).code
    params = [(f"sub{i + 1}", value) for i, value in enumerate(subs)] + [("utm_source", extra)]
    if deep_link is not None:
        params.append(("url", deep_link))
    r = client.get(f"/c/{world.code}?{urlencode(params)}")
    assert r.status_code == 302
    location = r.headers["Location"]
    assert location.isascii() and not any(c in location for c in "\r\n\t ")
    parts = urlsplit(location)
    assert parts.scheme in ("http", "https") and parts.username is None
    assert rules.host_of(location) in ALLOWED
