"""What /metrics answers: the processes' counters, and what the database knows, read at scrape time.

The counters and histograms are network/metrics.py's: from every worker's files in multiprocess mode
(PROMETHEUS_MULTIPROC_DIR), else this process's default registry (with its process and GC metrics).
The gauges below are counted from the database when Prometheus asks, a few indexed queries per
scrape, never per request: deliveries waiting or failing, dead letters, payouts by status, each
scheduled job's last success, duration and failures. They hold for the whole network (the
scheduler's processes too), whichever process answers. A database that does not answer leaves
`network_database_up 0` and these gauges out; the scrape itself still answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from network import metrics
from network.config import Settings
from network.db import Database
from network.deadletters.models import DeadLetter
from network.deliveries.models import DeliveryStatus, PostbackDelivery
from network.payouts.models import JobStatus, Payout, PayoutStatus

log = logging.getLogger(__name__)

#: Payout statuses worth watching (paid and canceled only grow).
_PAYOUT_STATUSES = tuple(
    s.value for s in PayoutStatus if s not in (PayoutStatus.PAID, PayoutStatus.CANCELED, PayoutStatus.REVERSED)
)


class DatabaseCollector:
    """Gauges counted from the database at each scrape."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        """Yield the database's gauges (and whether it answered)."""
        up = GaugeMetricFamily("network_database_up", "1 when the database answered this scrape's queries")
        pool = GaugeMetricFamily("network_db_pool_size_per_process", "DATABASE_POOL_SIZE: connections a process keeps")
        pool.add_metric([], self.settings.database_pool_size)
        try:
            with self.database.reading() as session:
                found = [*_deliveries(session), _dead_letters(session), _payouts(session), *_jobs(session)]
        except Exception:
            log.warning("metrics: the database did not answer", exc_info=True)
            up.add_metric([], 0)
            yield from (up, pool)
            return
        up.add_metric([], 1)
        yield from (up, pool, *found)


def _deliveries(session: Session) -> list[Metric]:
    pending = DeliveryStatus.PENDING.value
    rows = session.execute(
        select(
            PostbackDelivery.status,
            func.count(),
            func.sum(case((PostbackDelivery.attempts > 0, 1), else_=0)),
        )
        .where(PostbackDelivery.status != DeliveryStatus.DELIVERED.value)
        .group_by(PostbackDelivery.status)
    ).all()
    counts = {status: (count, retrying or 0) for status, count, retrying in rows}
    waiting = GaugeMetricFamily(
        "network_deliveries",
        "Partner postbacks not delivered, by state: pending (waiting for an attempt), failing (pending after a"
        " failed attempt), failed (stopped: 410, disabled), dead (every attempt failed)",
        labels=["state"],
    )
    waiting.add_metric(["pending"], counts.get(pending, (0, 0))[0])
    waiting.add_metric(["failing"], counts.get(pending, (0, 0))[1])
    for state in (DeliveryStatus.FAILED.value, DeliveryStatus.DEAD.value):
        waiting.add_metric([state], counts.get(state, (0, 0))[0])
    return [waiting]


def _dead_letters(session: Session) -> Metric:
    family = GaugeMetricFamily(
        "network_dead_letters", "Rows the database refused, kept for an operator, by writer", labels=["source"]
    )
    for source, count in session.execute(select(DeadLetter.source, func.count()).group_by(DeadLetter.source)):
        family.add_metric([source], count)
    return family


def _payouts(session: Session) -> Metric:
    family = GaugeMetricFamily("network_payouts", "Payouts not yet settled, by status", labels=["status"])
    rows = dict(
        session.execute(
            select(Payout.status, func.count()).where(Payout.status.in_(_PAYOUT_STATUSES)).group_by(Payout.status)
        ).all()
    )
    for status in _PAYOUT_STATUSES:
        family.add_metric([status], rows.get(status, 0))
    return family


def _jobs(session: Session) -> list[Metric]:
    success = GaugeMetricFamily(
        "network_job_last_success_timestamp_seconds",
        "When each scheduled job last succeeded (Unix time)",
        labels=["job"],
    )
    duration = GaugeMetricFamily(
        "network_job_last_success_duration_seconds", "How long each job's last success took", labels=["job"]
    )
    failure = GaugeMetricFamily(
        "network_job_last_failure_timestamp_seconds", "When each scheduled job last failed (Unix time)", labels=["job"]
    )
    failures = GaugeMetricFamily("network_job_failures", "Each job's failures since its last success", labels=["job"])
    rows = session.execute(
        select(
            JobStatus.job_id,
            JobStatus.last_success_at,
            JobStatus.last_success_ms,
            JobStatus.last_failure_at,
            JobStatus.failures,
        )
    )
    for job, succeeded, ms, failed, count in rows:
        if succeeded is not None:
            success.add_metric([job], succeeded.timestamp())
            duration.add_metric([job], (ms or 0) / 1000)
        if failed is not None:
            failure.add_metric([job], failed.timestamp())
        failures.add_metric([job], count or 0)
    return [success, duration, failure, failures]


class _Process:
    """This process's own registry (plain mode): the domains' counters and the process's own metrics."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def exposition(database: Database, settings: Settings) -> bytes:
    """Return the text Prometheus reads: the counters (every worker's, in multiprocess mode) and the gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if metrics.MULTIPROCESS:
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Process())
    registry.register(DatabaseCollector(database, settings))
    return generate_latest(registry)
