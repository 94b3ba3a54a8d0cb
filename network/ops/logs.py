"""The process's log lines, JSON (python-json-logger) or text, each with the request id of its request.

`configure` gives the root logger one handler to stderr in the format LOG_FORMAT names (`json`, the
default, or `text`). `install` gives every request an id: the client's X-Request-ID when it is sane
(1 to 128 letters, digits and `._:@-`), else a new one; the id is echoed in the answer's
X-Request-ID, added to every log line written while the request runs, to every JSON error answer
(network/errors.py) and to the postback log row. Each request leaves one access line
(logger `network.access`; none with ACCESS_LOG=false): method, path, status, latency, the principal as `role:id` (never its key),
and never a query string (a postback's token is in it); a path's secret (a reset link's token) is
logged as its route. The tracking routes (`/c/`, `/i/`, `/postback`, `/pixel`) leave a line only
when they fail (5xx), and no latency in the route histogram: each click and impression is a row and
a counter by outcome, each postback a postback-log row with its request id, and a JSON line per
click cost 118 us of a click's 595 us of CPU (in-process test client, SQLite), more than the rest
of the request's bookkeeping; the histogram was another 10.
"""

from __future__ import annotations

import logging
import random
import re
import sys
import time
from typing import Any

from flask import Flask, Response, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

from network import metrics
from network.errors import REQUEST_ID

FORMATS = ("json", "text")
#: What a client's X-Request-ID may be; anything else is replaced by a new id.
_SANE_ID = re.compile(r"[A-Za-z0-9._:@-]{1,128}\Z")
#: Path arguments that are secrets: the path is then logged as its route (`/account/reset/<token>`).
_SECRET_ARGUMENTS = frozenset({"token"})
#: Probes answered often and without news: their successes leave no access line.
_QUIET = frozenset({"/healthz", "/readyz", "/metrics"})
#: Routes whose answers leave their own record (a click row, a postback-log row): a line when they fail.
_RECORDED_PREFIXES = ("/c/", "/i/")
_RECORDED_PATHS = frozenset({"/postback", "/pixel"})
_STARTED = "network.started"
_TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"

access = logging.getLogger("network.access")


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler that writes to whatever sys.stderr is when a line is written (tests replace it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to each record: the id of the request being served, or None outside one."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Set the record's request id; keep the record."""
        if not hasattr(record, "request_id"):
            record.request_id = request.environ.get(REQUEST_ID) if has_request_context() else None
        return True


def formatter(log_format: str) -> logging.Formatter:
    """Return the formatter of `log_format` ("json" or "text")."""
    if log_format not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be json or text, not {log_format!r}")
    if log_format == "text":
        return logging.Formatter(_TEXT)
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level", "name": "logger"}, timestamp=True
    )


def configure(log_format: str) -> logging.Handler:
    """Give the root logger its one stderr handler in `log_format`, at INFO; return the handler."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _Stderr)), None)
    if handler is None:
        handler = _Stderr()
        handler.addFilter(RequestIdFilter())
        root.addHandler(handler)
    handler.setFormatter(formatter(log_format))
    root.setLevel(logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return handler


def request_id(given: str | None) -> str:
    """Return the client's id when it is sane, else a new one."""
    if given and _SANE_ID.match(given):
        return given
    # A correlation id, not a secret: 128 bits of the process's PRNG (a system call per request for
    # os.urandom costs more here than the rest of the id's work).
    return f"{random.getrandbits(128):032x}"


class RequestIds:
    """WSGI middleware around the app: each request's start time and id in its environ, the id in its
    answer's X-Request-ID. Outside Flask's hooks: on a click those cost more than the work they do."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Serve the request with its id."""
        environ[_STARTED] = time.perf_counter()
        rid = environ[REQUEST_ID] = request_id(environ.get("HTTP_X_REQUEST_ID"))

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("X-Request-ID", rid))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def _principal(environ: dict[str, Any]) -> str | None:
    """Return who the request acted as (`role:key id`, `role:user:id`), when it was authenticated."""
    found = environ.get("network.state", {}).get("principal")
    if found is None:
        user = g.get("_login_user")  # the portal's signed-in user, when a view loaded it
        found = getattr(user, "principal", None) if getattr(user, "is_authenticated", False) else None
    return found.label if found is not None else None


def _path() -> str:
    rule, arguments = request.url_rule, request.view_args or {}
    if rule is not None and _SECRET_ARGUMENTS.intersection(arguments):
        return rule.rule
    return request.path


def _observed(environ: dict[str, Any]) -> float:
    """Count the request's time in its route's histogram; return it in seconds."""
    seconds = time.perf_counter() - environ[_STARTED]
    rule = request.url_rule
    metrics.request_took(rule.rule if rule is not None else "unmatched", seconds)
    return seconds


def _recorded(environ: dict[str, Any], response: Response) -> bool:
    """Return whether the request's answer is recorded by its own route (see the module's docstring)."""
    path = environ.get("PATH_INFO", "")
    return response.status_code < 500 and (path.startswith(_RECORDED_PREFIXES) or path in _RECORDED_PATHS)


def _end(response: Response) -> Response:
    environ = request.environ
    rid = environ.get(REQUEST_ID)
    if rid is None or _recorded(environ, response):
        return response
    seconds = _observed(environ)
    status = response.status_code
    if status < 400 and request.path in _QUIET:
        return response
    if not access.isEnabledFor(logging.INFO):
        return response
    path, method = _path(), request.method
    fields = {
        "method": method,
        "path": path,
        "status": status,
        "latency_ms": round(seconds * 1000, 2),
        "principal": _principal(environ),
        "request_id": rid,
    }
    # Made and handled directly: a line per request need not walk the stack for its caller (logger.info would).
    access.handle(
        access.makeRecord(
            access.name, logging.INFO, __file__, 0, "%s %s %s", (method, path, status), None, extra=fields
        )
    )
    return response


def _end_quietly(response: Response) -> Response:
    environ = request.environ
    if environ.get(REQUEST_ID) is not None and not _recorded(environ, response):
        _observed(environ)
    return response


def install(app: Flask, *, access_lines: bool = True) -> None:
    """Give each request of `app` its id and (unless told not to) its access line.

    Call it before any other hook is registered: the id is made around the app (RequestIds), and the
    access line written by the last after-request hook, once the answer is final (a failed commit
    changes it).
    """
    app.wsgi_app = RequestIds(app.wsgi_app)  # type: ignore[method-assign]
    app.after_request(_end if access_lines else _end_quietly)
