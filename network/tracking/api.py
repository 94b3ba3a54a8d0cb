"""HTTP for tracking: the links API (flask-smorest) and the hot path /c/{code}, /i/{code} (plain Flask)."""

from __future__ import annotations

import base64
from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Flask, Response, current_app, request
from flask.views import MethodView
from flask_smorest import Api

from network import metrics, web
from network.schemas import page
from network.tracking import rules, service
from network.tracking.redirect import Tracker
from network.tracking.schemas import LinkCreateSchema, LinkListArgs, LinkListSchema, LinkSchema, dump_link

blp = web.Blueprint("links", __name__, url_prefix="/api/v1/links", description="Tracking links")
blp.before_request(web.authenticate)

#: No authentication here: anyone on the internet may click.
hot = FlaskBlueprint("tracking", __name__)

_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_EXTENSION = "network.tracking"


def tracker() -> Tracker:
    """Return the app's tracker (snapshot, click ids, buffered writer)."""
    return current_app.extensions[_EXTENSION]


@blp.route("")
class Links(MethodView):
    @blp.arguments(LinkListArgs, location="query")
    @blp.response(200, LinkListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List links: a partner's own, a brand's offers', all for admin and finance."""
        links = service.list_links(web.replica_session(), web.principal(), **args)  # may be a little behind
        base = web.settings().public_base_url
        return page([dump_link(link, base) for link in links], args["limit"])

    @blp.arguments(LinkCreateSchema)
    @blp.response(201, LinkSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Take a tracking link for an offer the partner may run."""
        link = service.create_link(web.session(), web.principal(), **data)
        return dump_link(link, web.settings().public_base_url)


@blp.route("/<int:link_id>")
class LinkItem(MethodView):
    @blp.response(200, LinkSchema)
    def get(self, link_id: int) -> Any:
        """Read a link."""
        return dump_link(service.get_link(web.session(), web.principal(), link_id), web.settings().public_base_url)


class _Redirect(Response):
    """A response sent with its headers exactly as built."""

    # The Location is ASCII and percent-encoded by the tracking rules, so werkzeug's IRI conversion
    # (a URL parse per click) is skipped; the body is empty and its Content-Length already set.

    #: No Content-Type: the body is empty.
    default_mimetype = None

    def get_wsgi_headers(self, environ: Any) -> Any:
        return self.headers


def _not_found() -> Response:
    return Response("Not Found\n", status=404, mimetype="text/plain")


@hot.get("/c/<code>")
def click(code: str) -> Response:
    """Record a click and redirect to the offer (or its fallback); 404 for an unknown or dead link."""
    # The request proxy is resolved once: every attribute read through it costs a context lookup.
    req = request._get_current_object()  # type: ignore[attr-defined]
    environ = req.environ
    track = current_app.extensions[_EXTENSION]
    key = track.countries.environ_key
    outcome = track.click(
        code,
        req.args.to_dict() if environ.get("QUERY_STRING") else {},
        agent=environ.get("HTTP_USER_AGENT"),
        referrer=environ.get("HTTP_REFERER"),
        ip=req.remote_addr,
        country_header=environ.get(key) if key else None,
        head=environ["REQUEST_METHOD"] == "HEAD",
    )
    metrics.click(outcome.location, outcome.click_id)
    if outcome.location is None:
        return _not_found()
    # No Cache-Control: a 302 without freshness information is not cached.
    headers = [("Location", outcome.location)]
    if outcome.click_id is not None:
        secure = "; Secure" if track.https or environ.get("wsgi.url_scheme") == "https" else ""
        headers.append(
            (
                "Set-Cookie",
                f"{rules.CLICK_COOKIE}={outcome.click_id}; Max-Age={rules.CLICK_COOKIE_MAX_AGE}; Path=/;"
                f" HttpOnly; SameSite=Lax{secure}",
            )
        )
    return _Redirect(b"", status=302, headers=headers)


@hot.get("/i/<code>")
def impression(code: str) -> Response:
    """Count an impression and answer a 1x1 GIF; 404 for an unknown or dead link."""
    counted = tracker().impression(code, agent=request.environ.get("HTTP_USER_AGENT"), head=request.method == "HEAD")
    if not counted:
        return _not_found()
    return Response(_GIF, status=200, mimetype="image/gif", headers=[("Cache-Control", "no-store")])


def register(app: Flask, api: Api) -> None:
    """Wire the links API and the hot path into the app, with the app's tracker and its click writer."""
    settings = app.extensions["network.settings"]
    track = app.extensions[_EXTENSION] = Tracker(settings, app.extensions["network.db"])
    # Conversions in this process find the app's unwritten clicks through the service; it flushes them at exit.
    service.register_writer(track.writer)
    api.register_blueprint(blp)
    app.register_blueprint(hot)
