"""The replica's pool is the process's own after a fork, like the primary's (no server needed: pools are lazy)."""

from __future__ import annotations

from network.db import Database, sessions


def test_a_forked_process_gets_a_replica_pool_of_its_own() -> None:
    database = Database(
        "postgresql+psycopg://postgres@127.0.0.1:1/primary",
        replica_url="postgresql+psycopg://postgres@127.0.0.1:1/replica",
    )
    replica = database.replica_session().get_bind()
    pool = replica.pool
    sessions.renew_pools()  # what os.register_at_fork runs in the child
    assert replica.pool is not pool
    assert replica.url.database == "replica" and database.engine.url.database == "primary"
    assert replica.get_execution_options()["postgresql_readonly"] is True
    database.dispose()
