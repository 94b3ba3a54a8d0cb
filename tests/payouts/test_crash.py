"""RELIABILITY.md 22: a settling process killed (SIGKILL) after committing the payout and before
the gateway call, and after the call before recording it; recovery ends with one transfer, paid."""

from __future__ import annotations

import datetime as dt
import os
import select
import signal
import subprocess
import sys

import pytest

from network.auth import SYSTEM
from network.clock import now_utc
from network.config import ROOT
from network.payouts import jobs, service
from network.payouts.models import Payout
from tests.conftest import make_settings
from tests.factories import make_partner
from tests.payouts.support import API_KEY, check_invariants, make_commission, make_shop, stripe_gateway

#: A settler that stops dead at the named phase: it says where it is, then waits to be killed.
SETTLER = """
import sys, time
from network.db import Database
from network.payouts import settlement
from network.payouts.gateway import StripeGateway

url, api_base, api_key, kill_at = sys.argv[1:5]

def hook(phase, ids):
    if phase == kill_at:
        print("AT", phase, *ids, flush=True)
        time.sleep(60)

settlement.set_phase_hook(hook)
gateway = StripeGateway(api_key=api_key, api_base=api_base, timeout_seconds=5)
settlement.settle(Database(url), gateway, actor="admin:system")
print("FINISHED", flush=True)
"""


def wait_for_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """Return the child's first line of output, or fail after `timeout` seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        pytest.fail("the settler never reached its kill point")
    return proc.stdout.readline().strip()


@pytest.mark.parametrize("kill_at", ["leased", "sent"])
def test_killed_settler_is_finished_by_recovery_with_one_transfer(
    committed_db, database_url, fake_stripe, frozen_clock, kill_at
):
    settings = make_settings(database_url, stripe_api_key=API_KEY, stripe_api_base=fake_stripe.base_url)
    with committed_db.session_scope() as session:
        shop = make_shop(session)
        partner = make_partner(session)
        partner.stripe_account_id = fake_stripe.create_account(enabled=True)
        make_commission(session, offer=shop.offer, partner=partner, payout="60.00")
    (payout_id,) = jobs.build(committed_db, settings).built
    with committed_db.session_scope() as session:
        service.decide(session, SYSTEM, payout_id, "approve")

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", SETTLER, database_url, fake_stripe.base_url, API_KEY, kill_at],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    ) as proc:
        try:
            assert wait_for_line(proc) == f"AT {kill_at} {payout_id}"
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()

    with committed_db.session_scope() as session:
        stuck = session.get(Payout, payout_id)
        assert (stuck.status, stuck.idempotency_key) == ("processing", f"payout-{payout_id}")
    assert len(fake_stripe.transfers) == (1 if kill_at == "sent" else 0)

    gateway = stripe_gateway(fake_stripe)
    try:
        # A recoverer running at once leaves the dead settler's lease alone...
        assert jobs.recover_payouts(committed_db, settings, gateway=gateway).paid == []
        # ...and takes the payout over when it runs out.
        frozen_clock(now_utc() + dt.timedelta(minutes=6))
        assert jobs.recover_payouts(committed_db, settings, gateway=gateway).paid == [payout_id]
        assert jobs.recover_payouts(committed_db, settings, gateway=gateway).paid == []
    finally:
        gateway.close()

    (transfer,) = fake_stripe.transfers
    keys = {r.idempotency_key for r in fake_stripe.requests if r.method == "POST"}
    assert keys == {f"payout-{payout_id}"}
    with committed_db.session_scope() as session:
        done = session.get(Payout, payout_id)
        assert (done.status, done.reference, done.amount_minor) == ("paid", transfer["id"], transfer["amount"])
        check_invariants(session, fake_stripe)
