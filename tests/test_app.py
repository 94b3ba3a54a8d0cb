"""The app's frame: health, OpenAPI and offline docs, one JSON error shape, settings, database, clock."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from network import clock
from network.accounts.models import Brand
from network.app import create_app
from network.config import ROOT, Settings, from_env
from network.db import UTCDateTime, make_engine
from network.errors import flatten_messages
from tests.conftest import make_settings
from tests.factories import Api, make_key


def test_healthz_answers_when_the_database_does(committed_app):
    # committed_app: the rolled-back test transaction would hold SQLite's write lock.
    r = committed_app.test_client().get("/healthz")
    assert r.status_code == 200 and r.json == {"status": "ok"}


def test_healthz_answers_while_the_process_serves_and_readyz_names_the_database(tmp_path):
    app = create_app(make_settings(f"sqlite:///{tmp_path}/missing/dir/network.db"))
    assert app.test_client().get("/healthz").status_code == 200
    r = app.test_client().get("/readyz")
    assert r.status_code == 503 and r.json["failing"][0] == "database"


def test_the_openapi_document_describes_the_api(client):
    r = client.get("/api/openapi.json")
    assert r.status_code == 200
    spec = r.json
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] == "network"
    for path in (
        "/api/v1/keys",
        "/api/v1/keys/{key_id}/revoke",
        "/api/v1/brands/{brand_id}/postback-token",
        "/api/v1/partners/{partner_id}",
        "/api/v1/offers",
        "/api/v1/offers/{offer_id}/activate",
        "/api/v1/offers/{offer_id}/applications/{access_id}/approve",
        "/api/v1/offers/{offer_id}/invitations",
        "/api/v1/offers/{offer_id}/overrides",
    ):
        assert path in spec["paths"], path
    create = spec["paths"]["/api/v1/offers"]["post"]
    assert "400" in create["responses"] and "422" not in create["responses"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    # The documented error is the one the handler sends.
    assert spec["components"]["schemas"]["Error"]["properties"]["code"]["type"] == "string"
    listing = spec["paths"]["/api/v1/offers"]["get"]["parameters"]
    assert {"limit", "after", "status"} <= {p["name"] for p in listing}


def test_the_interactive_docs_work_offline(client):
    r = client.get("/api/docs")
    assert r.status_code == 200 and b"swagger" in r.data.lower()
    html = r.get_data(as_text=True)
    assert "/api/docs/assets/swagger-ui-bundle.js" in html and "/api/openapi.json" in html
    assert "http://" not in html.replace("http://localhost", "") and "https://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        with client.get(f"/api/docs/assets/{asset}") as response:
            assert response.status_code == 200 and len(response.data) > 1000, asset


# ---- errors -------------------------------------------------------------------------------------


@pytest.fixture
def admin(client, session) -> Api:
    return Api(client, make_key(session, role="admin"))


def test_unknown_paths_and_methods_answer_json(client, admin):
    r = client.get("/no/such/page")
    assert r.status_code == 404 and r.json["code"] == "not_found"
    r = admin.delete("/api/v1/brands")
    assert r.status_code == 405 and r.json["code"] == "method_not_allowed"


def test_a_body_that_is_not_json_is_400(admin):
    r = admin.post("/api/v1/brands", data="{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json["message"] == "request body is not valid JSON"
    r = admin.post("/api/v1/brands", json=["a", "list"])
    assert r.status_code == 400 and r.json["code"] == "validation_error"


def test_schema_errors_are_400_and_name_nested_fields(admin):
    r = admin.post(
        "/api/v1/offers",
        json={
            "brand_id": 1,
            "name": "N",
            "destination_url": "https://a.example/",
            "events": [{"key": "s", "model": "x"}],
        },
    )
    assert r.status_code == 400
    assert r.json["errors"] == {"events[0].model": ["Must be one of: cpa, cpl, cpi, revshare, hybrid."]}
    assert r.json["message"].startswith("invalid events[0].model:")


def test_flatten_messages_names_every_path():
    nested = {"events": {0: {"payout": ["bad"]}, "1": {"key": ["missing"]}}, "_schema": ["whole"], "name": ["empty"]}
    assert flatten_messages(nested) == {
        "events[0].payout": ["bad"],
        "events[1].key": ["missing"],
        "_schema": ["whole"],
        "name": ["empty"],
    }


def test_a_body_over_one_megabyte_is_413(admin):
    r = admin.post("/api/v1/brands", data="x" * (1024 * 1024 + 1), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json["code"] == "request_entity_too_large"


def test_an_unexpected_error_is_a_bare_500_without_a_traceback(app, client, caplog):
    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail nk_admin_leaked")

    r = client.get("/boom")
    assert r.status_code == 500 and r.json == {
        "code": "internal_error",
        "message": "internal error",
        "request_id": r.headers["X-Request-ID"],
    }
    assert b"Traceback" not in r.data and b"secret" not in r.data
    assert "unhandled error" in caplog.text and "RuntimeError" in caplog.text  # the cause is logged, not answered


def test_a_unique_clash_is_409_not_500(app, client, session, db):
    from network import web

    @app.post("/clash")
    def clash() -> dict:
        s = web.session()
        s.add_all(
            [
                Brand(name="A", currency="USD", postback_token="same"),
                Brand(name="B", currency="USD", postback_token="same"),
            ]
        )
        s.flush()
        return {}

    r = client.post("/clash")
    assert r.status_code == 409 and r.json["code"] == "conflict"
    assert session.execute(text("SELECT count(*) FROM brands")).scalar() == 0


# ---- settings -----------------------------------------------------------------------------------


def test_settings_come_from_the_environment():
    settings = from_env(
        {
            "DATABASE_URL": "postgresql+psycopg://u@h/db",
            "SECRET_KEY": "s3cret",
            "PUBLIC_BASE_URL": "https://go.example",
            "PAYOUT_MIN_AMOUNT": "25.00",
            "PAYOUT_SCHEDULE": "0 6 * * *",
            "STRIPE_API_KEY": "sk_test_x",
            "STRIPE_API_BASE": "http://127.0.0.1:12111",
            "STRIPE_WEBHOOK_SECRET": "whsec_x",
            "TRUSTED_COUNTRY_HEADER": "CF-IPCountry",
            "GEOIP_DB": "/data/GeoLite2-Country.mmdb",
            "CLICK_IP_RETENTION_DAYS": "7",
            "POSTBACK_ALLOW_HTTP": "true",
            "POSTBACK_ALLOWED_NETWORKS": "10.1.0.0/16, 192.168.5.5",
            "SCHEDULER_IN_PROCESS": "1",
            "DATABASE_POOL_SIZE": "24",
        }
    )
    assert settings.database_url == "postgresql+psycopg://u@h/db" and settings.secret_key == "s3cret"
    assert settings.public_base_url == "https://go.example" and settings.payout_min_minor("USD") == 2500
    assert settings.payout_min_minor("JPY") == 25 and settings.payout_schedule == "0 6 * * *"
    assert (settings.stripe_api_key, settings.stripe_api_base, settings.stripe_webhook_secret) == (
        "sk_test_x",
        "http://127.0.0.1:12111",
        "whsec_x",
    )
    assert settings.trusted_country_header == "CF-IPCountry" and settings.geoip_db.endswith(".mmdb")
    assert settings.click_ip_retention_days == 7 and settings.postback_allow_http is True
    assert [str(n) for n in settings.postback_allowed_networks] == ["10.1.0.0/16", "192.168.5.5/32"]
    assert settings.scheduler_in_process is True
    assert settings.database_pool_size == 24


@pytest.mark.parametrize("size", ["0", "-3", "many"])
def test_a_bad_pool_size_stops_the_app_at_start_naming_the_setting(size):
    with pytest.raises(ValueError, match="DATABASE_POOL_SIZE"):
        from_env({"SECRET_KEY": "x", "DATABASE_POOL_SIZE": size})


@pytest.mark.parametrize("url", ["sqlite:///{tmp}/pool.db", "postgresql+psycopg://u@127.0.0.1:1/db"])
def test_an_engine_keeps_the_connections_it_is_told_to(tmp_path, url):
    engine = make_engine(url.format(tmp=tmp_path), pool_size=9)  # made lazily: nothing connects here
    try:
        assert engine.pool.size() == 9
    finally:
        engine.dispose()


def test_the_app_keeps_as_many_connections_as_its_pool_size(tmp_path):
    # A worker's threads past the pool would each open and close a connection per request.
    settings = Settings(secret_key="x", database_url=f"sqlite:///{tmp_path}/pool.db", database_pool_size=12)
    database = create_app(settings).extensions["network.db"]
    try:
        assert database.engine.pool.size() == 12
        assert Settings(secret_key="x").database_pool_size >= 8  # the README's --threads
    finally:
        database.dispose()


def test_defaults_give_an_embedded_one_machine_network(tmp_path, monkeypatch):
    settings = Settings(secret_key="x")
    assert settings.database_url == f"sqlite:///{ROOT / 'instance' / 'network.db'}"
    assert settings.payout_min_amount == "50.00" and settings.stripe_api_key is None
    assert settings.postback_allow_http is False and settings.click_ip_retention_days == 30


def test_a_bad_payout_threshold_stops_the_app_at_start():
    with pytest.raises(ValueError):
        from_env({"SECRET_KEY": "x", "PAYOUT_MIN_AMOUNT": "50,00"})


# ---- database and clock -------------------------------------------------------------------------


def test_sqlite_runs_with_wal_and_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_the_database_refuses_a_key_bound_to_no_brand(session):
    with pytest.raises(Exception, match=r"(?i)check|constraint"):
        session.execute(
            text("INSERT INTO api_keys (prefix, key_hash, role, created_at) VALUES ('p', 'h', 'brand', :t)"),
            {"t": dt.datetime(2030, 1, 1)},
        )


def test_utc_columns_refuse_naive_datetimes():
    column = UTCDateTime()
    with pytest.raises(ValueError):
        column.process_bind_param(dt.datetime(2030, 1, 1), make_engine("sqlite://").dialect)
    aware = dt.datetime(2030, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    stored = column.process_bind_param(aware, make_engine("sqlite://").dialect)
    assert stored == dt.datetime(2030, 1, 1, 10)


def test_the_clock_is_aware_utc_and_can_be_frozen(frozen_clock):
    assert clock.now_utc().tzinfo is dt.UTC
    at = dt.datetime(2030, 3, 6, 23, 59, tzinfo=dt.UTC)
    frozen_clock(at)
    assert clock.now_utc() == at
    with pytest.raises(ValueError):
        clock.freeze(dt.datetime(2030, 1, 1))


@pytest.mark.parametrize(
    ("period", "start"),
    [
        ("day", dt.datetime(2030, 3, 6, tzinfo=dt.UTC)),
        ("week", dt.datetime(2030, 3, 4, tzinfo=dt.UTC)),  # Monday
        ("month", dt.datetime(2030, 3, 1, tzinfo=dt.UTC)),
        ("lifetime", dt.datetime(1970, 1, 1, tzinfo=dt.UTC)),
    ],
)
def test_periods_start_at_utc_midnight_monday_and_the_first(period, start):
    assert clock.period_start(dt.datetime(2030, 3, 6, 23, 59, 59, tzinfo=dt.UTC), period) == start


def test_the_wsgi_entry_point_puts_what_start_up_built_out_of_the_collectors_sight(tmp_path):
    # gunicorn imports wsgi in each worker: a full collection there would walk every module,
    # mapper and compiled statement again, in the middle of serving requests.
    code = "import gc, wsgi; print(gc.get_freeze_count())"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/network.db", "SECRET_KEY": "s" * 32}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert int(done.stdout) > 10_000
