"""The process's Prometheus metrics: counters and histograms the domains move, one line at each place.

A leaf: it imports prometheus-client and the error types only, so every domain may call it. What is
counted on the hot path is a counter's `inc()` or a histogram's `observe()` on a child made once
here, never a query; what the database already knows (deliveries waiting, dead letters, the jobs'
last runs, payouts by status) is read when /metrics is scraped (network/ops/collect.py).

Under gunicorn, set PROMETHEUS_MULTIPROC_DIR before the server starts: prometheus-client then keeps
each process's values in files there, the gunicorn config (network/serving.py) empties the folder
as the server starts and forgets a worker's live gauges when it exits, and a scrape of any worker
answers the sum of all of them. Unset, each process counts for itself (one process, tests).
The names and their meaning are listed in docs/OPERATIONS.md.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from network import outage
from network.errors import DomainError

# A `_created` series beside each counter doubles the answer and says only when a process started.
disable_created_metrics()

#: Set: values live in files of this folder, shared by the server's processes.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
if MULTIPROCESS:  # a process started before gunicorn made it (the CLI) must not fail making its metrics
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
#: Sizes of batches (clicks a flush writes, postbacks a group commit records at once).
_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
#: Seconds a background write takes.
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# ---- clicks --------------------------------------------------------------------------------------

CLICKS = Counter(
    "network_clicks", "Clicks answered, by outcome: redirected, fallback (to the offer's fallback_url), not_found",
    ["outcome"],
)  # fmt: skip
_CLICK = {outcome: CLICKS.labels(outcome) for outcome in ("redirected", "fallback", "not_found")}
CLICKS_DROPPED = Counter("network_clicks_dropped", "Clicks dropped because the click buffer was full")
CLICK_FLUSH_SECONDS = Histogram(
    "network_click_flush_seconds", "Time one flush of the click buffer took", buckets=_SECONDS
)
CLICK_FLUSH_ROWS = Histogram("network_click_flush_rows", "Clicks one flush wrote (the writer's batch)", buckets=_SIZES)
CLICK_FLUSH_FAILURES = Counter("network_click_flush_failures", "Flushes that failed and left their clicks buffered")
CLICK_QUEUE = Gauge(
    "network_click_queue_depth", "Clicks buffered, not yet written (after the last flush)", multiprocess_mode="livesum"
)

# ---- requests ------------------------------------------------------------------------------------

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REQUESTS = Histogram(
    "network_request_duration_seconds", "Time the app took to answer a request, by route (its rule, e.g. /c/<code>)",
    ["route"], buckets=_LATENCY,
)  # fmt: skip

# ---- postbacks -----------------------------------------------------------------------------------

POSTBACKS = Counter(
    "network_postbacks",
    "Postbacks and pixels answered, by source and outcome: the conversion's status (approved, pending,"
    " rejected, reversed), duplicate, an error code (validation_error, forbidden, conflict,"
    " database_unavailable), or error",
    ["source", "outcome"],
)
POSTBACK_BATCH = Histogram(
    "network_postback_batch_size", "Postbacks one group commit recorded in one transaction", buckets=_SIZES
)

# ---- money ---------------------------------------------------------------------------------------

PAYOUT_OUTCOMES = Counter(
    "network_payout_outcomes", "Payouts sent to the gateway by this process, by outcome: paid, failed, unknown",
    ["outcome"],
)  # fmt: skip
INVOICE_OUTCOMES = Counter("network_invoice_outcomes", "Brand invoices by outcome (issued, paid, void)", ["outcome"])

# ---- database pool -------------------------------------------------------------------------------

POOL_CHECKED_OUT = Gauge(
    "network_db_pool_checked_out", "Connections in use now, over the processes", multiprocess_mode="livesum"
)


_ROUTES: dict[str, Any] = {}


def request_took(route: str, seconds: float) -> None:
    """Count a request's time in its route's histogram (each route's child made once)."""
    child = _ROUTES.get(route)
    if child is None:
        child = _ROUTES[route] = REQUESTS.labels(route)
    child.observe(seconds)


def click(location: str | None, click_id: str | None) -> None:
    """Count a click by what it was answered: the offer, its fallback, or 404."""
    _CLICK["not_found" if location is None else "redirected" if click_id is not None else "fallback"].inc()


_F = TypeVar("_F", bound=Callable[..., Any])


def counts_flushes(flush: _F) -> _F:
    """Decorate a click writer's `flush`: its time, its rows, its failures, and the buffer left after it."""

    @functools.wraps(flush)
    def measured(writer: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            written = flush(writer, *args, **kwargs)
        except BaseException:
            CLICK_FLUSH_FAILURES.inc()
            raise
        finally:
            CLICK_QUEUE.set(writer.pending_count())
        if written:
            CLICK_FLUSH_SECONDS.observe(time.perf_counter() - started)
            CLICK_FLUSH_ROWS.observe(written)
        return written

    return measured  # type: ignore[return-value]


def counts_postbacks(handle: _F) -> _F:
    """Decorate the postback handler `handle(app, request, source)`: count each answer by its outcome."""

    @functools.wraps(handle)
    def counted(app: Any, req: Any, source: str, *args: Any, **kwargs: Any) -> Any:
        try:
            answer = handle(app, req, source, *args, **kwargs)
        except DomainError as error:
            POSTBACKS.labels(source, error.code).inc()
            raise
        except Exception as error:
            POSTBACKS.labels(source, _failure(error)).inc()
            raise
        POSTBACKS.labels(source, "duplicate" if answer.duplicate else answer.status or "none").inc()
        return answer

    return counted  # type: ignore[return-value]


def _failure(error: Exception) -> str:
    return "database_unavailable" if outage.is_unavailable(error) else "error"


def postback_batch(plans: Sequence[Any]) -> None:
    """Count one group commit's batch by its size."""
    POSTBACK_BATCH.observe(len(plans))


def payout_outcomes(done: Mapping[str, Sequence[int]]) -> None:
    """Count recorded gateway outcomes ({"paid": [ids], "failed": [...], "unknown": [...]})."""
    for outcome, ids in done.items():
        if ids:
            PAYOUT_OUTCOMES.labels(outcome).inc(len(ids))


def watch_pools() -> None:
    """Count each connection of this process's pools (every engine's) as it is checked out and in."""
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    if not event.contains(Pool, "checkout", _checked_out):
        event.listen(Pool, "checkout", _checked_out)
        event.listen(Pool, "checkin", _checked_in)


def _checked_out(*_args: Any) -> None:
    POOL_CHECKED_OUT.inc()


def _checked_in(*_args: Any) -> None:
    POOL_CHECKED_OUT.dec()
