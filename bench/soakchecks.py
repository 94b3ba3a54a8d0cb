"""The checks bench/soak runs after the drain, and its report.

Each check appends a sentence to `failures` when it fails; the report holds the figures either way.
"""

from __future__ import annotations

import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bench.soakparts import growth
from bench.soaktraffic import Ledger

#: bench/soak's bounds, passed in its state: loss_before, slack, memory_growth.
Rules = dict[str, float]


def check_all(state: dict[str, Any], args: Any) -> tuple[list[str], dict[str, Any]]:
    """Run every check on the run's state; return (failures, report)."""
    from network.db import make_engine

    rules = state.get("rules", {})
    failures: list[str] = []
    report: dict[str, Any] = {"seconds": args.seconds, "db": args.db}
    if "setup" not in state or "traffic_seconds" not in state:
        failures.append("the run did not finish its set-up or its traffic (see the logs)")
        report["logs"] = {"gunicorn": state.get("server_log", ""), "schedulers": state.get("scheduler_logs", "")}
        return failures, report
    ledger: Ledger = state["ledger"]
    engine = make_engine(state["url"])
    try:
        report["traffic"] = traffic_figures(ledger, state["traffic_seconds"])
        if ledger.unexpected:
            failures.append(f"{len(ledger.unexpected)} unexpected answers, e.g. {ledger.unexpected[:5]}")
        report["drain"] = state.get("drained", "")
        if state.get("drained") != "nothing left to send":
            failures.append(f"the drain did not finish: {state.get('drained')}")
        if state.get("server_exit") != 0:
            failures.append(f"gunicorn exited with {state.get('server_exit')} on SIGTERM")
        report["exits"] = {"gunicorn": state.get("server_exit"), "schedulers": state.get("scheduler_exits")}
        with Session(engine) as session:
            report["invariants"] = invariants(session, state, failures)
            report["clicks"] = clicks(session, ledger, state, rules, failures)
            report["postbacks"] = postbacks(session, ledger, failures)
            report["deliveries"] = deliveries(session, state["listener"].received, failures)
            report["payouts"] = payouts(session, state, failures)
        report["memory"] = memory(state, rules, failures)
    finally:
        engine.dispose()
    if failures:
        report["logs"] = {"gunicorn": state.get("server_log", ""), "schedulers": state.get("scheduler_logs", "")}
    report["failures"] = failures
    return failures, report


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def traffic_figures(ledger: Ledger, seconds: float) -> dict[str, Any]:
    """Return requests per kind, their statuses, and latency percentiles."""
    return {
        "requests": sum(ledger.counts.values()),
        "per_second": sum(ledger.counts.values()) / seconds,
        "kinds": {
            kind: {
                "count": n,
                "p50_ms": round(_p(ledger.latencies[kind], 0.5), 1),
                "p99_ms": round(_p(ledger.latencies[kind], 0.99), 1),
                "statuses": {k.split(" ", 1)[1]: v for k, v in ledger.statuses.items() if k.split(" ", 1)[0] == kind},
            }
            for kind, n in sorted(ledger.counts.items())
        },
    }


def invariants(session: Session, state: dict[str, Any], failures: list[str]) -> dict[str, str]:
    """Call the test suite's invariant checks (RELIABILITY.md) on the soak's database."""
    from tests.conversions.invariants import check_invariants as conversion_invariants
    from tests.payouts.support import check_invariants as money_invariants

    outcome = {}
    for name, check in (
        ("conversions", lambda: conversion_invariants(session, state["secret"])),
        ("money", lambda: money_invariants(session, state["fake"])),
    ):
        try:
            check()
            outcome[name] = "held"
        except AssertionError as exc:
            outcome[name] = "BROKEN at " + _where(exc)
            failures.append(f"invariant ({name}) broken at {_where(exc)}")
        session.rollback()
    return outcome


def _where(exc: AssertionError) -> str:
    """Return the failed assertion's place in the test suite's checks, its source and its message."""
    frame = [f for f in traceback.extract_tb(exc.__traceback__) if "/tests/" in f.filename][-1]
    lines = Path(frame.filename).read_text().splitlines()[max(0, frame.lineno - 3) : frame.lineno + 6]
    source = "\n".join(f"    {line}" for line in lines)
    return f"{frame.filename}:{frame.lineno} {str(exc)[:500]!r}\n{source}"


def clicks(
    session: Session, ledger: Ledger, state: dict[str, Any], rules: Rules, failures: list[str]
) -> dict[str, Any]:
    """Every click answered 302 has its row, except those the SIGKILLed worker answered in its last moments.

    A missing click is excused only when the worker that answered it (the owner of its connection,
    looked up in /proc after the connection's first answer) is the killed one, or is unknown, and
    its answer reached the client at most `loss_before` s before the kill (or `slack` s after it).
    """
    from network.tracking.models import Click

    ids = [cid for _, cid, _ in ledger.clicks]
    found: set[str] = set()
    for start in range(0, len(ids), 1000):
        found.update(session.scalars(select(Click.id).where(Click.id.in_(ids[start : start + 1000]))))
    kill, victim = state["worker_kill"], state["victim"]
    before, after = rules["loss_before"], rules["slack"]
    lost = [(at - kill, cid, owner) for at, cid, owner in ledger.clicks if cid not in found]
    excused = [(o, owner) for o, _, owner in lost if owner in (victim, None) and -before < o <= after]
    unexcused = [
        (round(o, 3), owner, cid) for o, cid, owner in lost if not (owner in (victim, None) and -before < o <= after)
    ]
    if unexcused:
        failures.append(
            f"{len(unexcused)} clicks answered 302 are not stored, and not the killed worker's ({victim}) last "
            f"{before} s (s from the kill, worker, click id): {unexcused[:5]}"
        )
    victims = [o for o, owner in excused if owner == victim]
    return {
        "answered_302": len(ids),
        "stored": len(found),
        "answered_by_killed_worker": sum(1 for *_, owner in ledger.clicks if owner == victim),
        "lost_killed_worker": len(victims),
        "lost_unknown_worker": len(excused) - len(victims),
        "earliest_lost_before_kill_ms": round(-min(o for o, _ in excused) * 1000) if excused else 0,
        "lost_not_excused": len(unexcused),
    }


def postbacks(session: Session, ledger: Ledger, failures: list[str]) -> dict[str, Any]:
    """Every postback answered 200 with a conversion id is stored as answered; replays, 409s and reversals held."""
    rows = {
        r.id: r
        for r in session.execute(text("SELECT id, txn_id, status, amount_minor, event_id, offer_id FROM conversions"))
    }
    missing = [s.conversion_id for s in ledger.new if s.conversion_id not in rows]
    wrong = [
        s.conversion_id for s in ledger.new if s.conversion_id in rows and rows[s.conversion_id].txn_id != s.txn_id
    ]
    if missing:
        failures.append(f"{len(missing)} postbacks answered 200 have no conversion: {missing[:10]}")
    if wrong:
        failures.append(f"{len(wrong)} conversions answered for one txn_id hold another: {wrong[:10]}")
    replays_off = [(first.conversion_id, got) for first, got in ledger.replays if got != first.conversion_id]
    if replays_off:
        failures.append(f"{len(replays_off)} replays answered another conversion (first, replay): {replays_off[:10]}")
    changed = [
        first.conversion_id
        for first, _ in ledger.conflicts
        if first.conversion_id in rows and rows[first.conversion_id].amount_minor != _minor(first.query["amount"])
    ]
    if changed:
        failures.append(f"{len(changed)} conversions changed by a postback answered 409: {changed[:10]}")
    not_reversed = [
        (cid, by) for cid, by, _ in ledger.reversals if rows.get(cid) is None or rows[cid].status != "reversed"
    ]
    if not_reversed:
        failures.append(f"{len(not_reversed)} reversals answered 200 are not stored: {not_reversed[:10]}")
    by_status = Counter(r.status for r in rows.values())
    return {
        "new_answered": len(ledger.new),
        "conversions_stored": len(rows),
        "by_status": dict(sorted(by_status.items())),
        "replays": len(ledger.replays),
        "conflicts_409": len(ledger.conflicts),
        "reversals": dict(Counter(by for _, by, _ in ledger.reversals)),
        "missing": len(missing),
    }


def _minor(amount: str) -> int:
    whole, _, cents = amount.partition(".")
    return int(whole) * 100 + int((cents + "00")[:2])


def deliveries(session: Session, received: Counter[str], failures: list[str]) -> dict[str, Any]:
    """Every delivery row is delivered, and the listener got exactly the delivered ones (by webhook-id)."""
    rows = list(session.execute(text("SELECT webhook_id, status, attempts FROM postback_deliveries")))
    statuses = Counter(r.status for r in rows)
    delivered = {r.webhook_id: r.attempts for r in rows if r.status == "delivered"}
    if statuses.keys() - {"delivered"}:
        failures.append(f"deliveries not delivered at the end: {dict(statuses)}")
    never_received = sorted(delivered.keys() - received.keys())
    unknown = sorted(received.keys() - {r.webhook_id for r in rows})
    if never_received:
        failures.append(
            f"{len(never_received)} deliveries logged delivered never reached the listener: {never_received[:5]}"
        )
    if unknown:
        failures.append(f"the listener got {len(unknown)} requests of no delivery: {unknown[:5]}")
    # A second receipt is a re-send after a lapsed lease (a killed scheduler): only for a row leased again.
    twice = {wid: n for wid, n in received.items() if n > 1}
    unexplained = [wid for wid in twice if delivered.get(wid, 0) < 2]
    if unexplained:
        failures.append(f"{len(unexplained)} deliveries received twice without a second attempt: {unexplained[:5]}")
    return {
        "rows": len(rows),
        "by_status": dict(statuses),
        "received": len(received),
        "received_twice": len(twice),
        "delivered": len(delivered),
    }


def payouts(session: Session, state: dict[str, Any], failures: list[str]) -> dict[str, Any]:
    """Report the payouts by status and the fake's transfers (the money invariants checked them)."""
    by_status = dict(session.execute(text("SELECT status, COUNT(*) FROM payouts GROUP BY status")).all())
    paid = by_status.get("paid", 0)
    transfers = state["fake"].transfers
    if paid and len(transfers) < paid:
        failures.append(f"{paid} payouts paid, but only {len(transfers)} transfers")
    if not paid:
        failures.append("no payout was paid: the scheduler's build, finance's approval and settlement never met")
    runs = dict(session.execute(text("SELECT kind, COUNT(*) FROM payout_runs GROUP BY kind")).all())
    return {
        "by_status": by_status,
        "transfers": len(transfers),
        "amount_paid": sum(t["amount"] for t in transfers) / 100,
        "runs": runs,
        "finance": dict(state["finance"].decided),
    }


def memory(state: dict[str, Any], rules: Rules, failures: list[str]) -> list[dict[str, Any]]:
    """Each process's RSS over the second half of its time under traffic grew at most the bound."""
    until = state["traffic_seconds"]
    rows = []
    for track in state["sampler"].tracks.values():
        first_kb = track.samples[0][1]
        peak_kb = max(kb for _, kb in track.samples)
        found = growth(track, until)
        row: dict[str, Any] = {
            "role": track.role,
            "pid": track.pid,
            "from_s": round(track.samples[0][0], 1),
            "to_s": round(track.samples[-1][0], 1),
            "first_mb": round(first_kb / 1024, 1),
            "peak_mb": round(peak_kb / 1024, 1),
            "cpu_s": round(track.cpu, 1),
        }
        lived = until - max(track.samples[0][0], 0.0)
        if found is None:
            row["second_half"] = "killed" if track.samples[-1][0] < until - 5 else "too few samples"
            rows.append(row)
            continue
        start_kb, end_kb, rate = found
        row.update(half_mb=round(start_kb / 1024, 1), end_mb=round(end_kb / 1024, 1), growth_pct=round(rate * 100, 1))
        if track.samples[0][0] > 1.0 and lived < rules["memory_judged_after"]:
            row["second_half"] = f"not judged: {lived:.0f} s under traffic"
        elif rate > rules["memory_growth"]:
            failures.append(
                f"{track.role} {track.pid}: RSS grew {rate * 100:.1f} % over the second half "
                f"({start_kb / 1024:.1f} -> {end_kb / 1024:.1f} MB), bound {rules['memory_growth'] * 100:.0f} %"
            )
        rows.append(row)
    return rows


def print_report(report: dict[str, Any], failures: list[str]) -> None:
    """Print the report: traffic, clicks, postbacks, deliveries, payouts, memory, and the verdict."""
    traffic = report.get("traffic")
    if traffic:
        print(f"\ntraffic: {traffic['requests']} requests, {traffic['per_second']:.0f}/s")
        print(f"  {'kind':<18} {'count':>7} {'p50 ms':>8} {'p99 ms':>8}  statuses")
        for kind, row in traffic["kinds"].items():
            statuses = " ".join(f"{k}:{v}" for k, v in sorted(row["statuses"].items()))
            print(f"  {kind:<18} {row['count']:>7} {row['p50_ms']:>8} {row['p99_ms']:>8}  {statuses}")
    for section in ("invariants", "clicks", "postbacks", "deliveries", "payouts"):
        if section in report:
            values = report[section]
            print(f"{section}: " + ", ".join(f"{k} {_short(v)}" for k, v in values.items()))
    if report.get("memory"):
        print("memory (RSS; the second half of each process's time under traffic):")
        print(
            f"  {'process':<11} {'pid':>7} {'from s':>7} {'to s':>6} {'first MB':>9} {'half MB':>8} "
            f"{'end MB':>7} {'peak MB':>8} {'growth':>8} {'CPU s':>7}"
        )
        for row in report["memory"]:
            grown = f"{row['growth_pct']:.1f} %" if "growth_pct" in row else "-"
            note = f"  ({row['second_half']})" if "second_half" in row else ""
            print(
                f"  {row['role']:<11} {row['pid']:>7} {row['from_s']:>7} {row['to_s']:>6} {row['first_mb']:>9} "
                f"{row.get('half_mb', '-'):>8} {row.get('end_mb', '-'):>7} {row['peak_mb']:>8} {grown:>8}"
                f" {row['cpu_s']:>7}{note}"
            )
    if failures:
        print(f"\nFAIL: {len(failures)} check(s) failed")
        for failure in failures:
            print(f"  - {failure}")
        logs = report.get("logs", {})
        for name, text_ in logs.items():
            print(f"\n--- {name} log (end) ---\n{text_[-3000:]}")
    else:
        print("\nPASS: every check held")


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) > 60:
        return value[:60] + "..."
    return str(value)
