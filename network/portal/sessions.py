"""Flask's signed-cookie session for the web app's paths only: the click, postback and API paths open none."""

from __future__ import annotations

from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSessionInterface

#: Paths of the web app; every other request (clicks, postbacks, the API) gets Flask's null session.
WEB_PREFIXES = ("/account/", "/admin/", "/partner/", "/brand/", "/finance/")
WEB_EXACT = frozenset({"/", "/partner", "/brand", "/finance", "/admin"})


def is_web_path(path: str) -> bool:
    """Return whether `path` belongs to the web app."""
    return path in WEB_EXACT or path.startswith(WEB_PREFIXES)


class WebSessions(SecureCookieSessionInterface):
    """Opens the signed cookie session only on the web app's paths.

    Opening it costs a signing serializer per request, a tenth of a click; the rest pay one
    string comparison.
    """

    def open_session(self, app: Flask, request: Request) -> Any:
        if not is_web_path(request.environ.get("PATH_INFO", "")):
            return None  # Flask then hands out its null session, which refuses writes and is never saved
        return super().open_session(app, request)
