"""The replica's pools after a fork, and what the standby fixture does where it cannot make one (no server needed)."""

from __future__ import annotations

import pytest

from network.db import Database
from tests.replica.conftest import _cannot


def test_a_forked_process_gets_a_replica_pool_of_its_own() -> None:
    database = Database(
        "postgresql+psycopg://postgres@127.0.0.1:1/primary",
        replica_url="postgresql+psycopg://postgres@127.0.0.1:1/replica",
    )
    replica = database.replica_session().get_bind()
    pool = replica.pool
    # What os.register_at_fork runs in the child for every Database, here for this one only: renewing
    # every pool of the test process would drop other tests' open connections without closing them.
    database.renew_pools()
    assert replica.pool is not pool
    assert replica.url.database == "replica" and database.engine.url.database == "primary"
    assert replica.get_execution_options()["postgresql_readonly"] is True
    database.dispose()


def test_no_standby_skips_outside_ci_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must test reads from a replica"):
        _cannot("pg_basebackup failed")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="pg_basebackup failed"):
        _cannot("pg_basebackup failed")
