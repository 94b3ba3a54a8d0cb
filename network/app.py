"""The application factory: settings, database, error handling, blueprints and CLI."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Any

from flask import Flask
from flask_smorest import Api

from network import errors, openapi, web
from network.config import Settings, from_env
from network.db import Database
from network.ops import api as ops_api
from network.ops import logs

#: Domain modules wired into the app, lowest layer first. Each api module exposes `blp`
#: (a flask-smorest Blueprint) or `register(app, api)`; each cli module exposes `commands`.
DOMAINS = (
    "deadletters",
    "accounts",
    "partners",
    "offers",
    "tracking",
    "customers",
    "conversions",
    "payouts",
    "deliveries",
    "reports",
    "billing",
)


def _optional(name: str) -> Any:
    """Import a module if it exists (a domain may not have an API or CLI)."""
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Flask:
    """Build the WSGI app for `settings` (default: from the environment)."""
    settings = settings or from_env()
    app = Flask(__name__)
    # JSON (or text) log lines, each with its request's id (basicConfig below then adds nothing); the
    # request id and access line hooks go first, to see each request from its start to its final answer.
    logs.configure(settings.log_format)
    logs.install(app, access_lines=settings.access_log)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        TESTING=settings.testing,
        API_TITLE="network",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        # Served from the swagger-ui-bundle package: the docs work offline.
        OPENAPI_SWAGGER_UI_URL="/api/docs/assets/",
        OPENAPI_REDOC_PATH=None,
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.extensions["network.settings"] = settings
    app.extensions["network.db"] = database or Database(
        settings.database_url, replica_url=settings.database_replica_url, pool_size=settings.database_pool_size
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)

    api = Api(app, spec_kwargs=openapi.spec_kwargs())
    errors.register(app)
    web.register(app)

    for domain in DOMAINS:
        module = _optional(f"network.{domain}.api")
        if module is not None:
            if hasattr(module, "register"):
                module.register(app, api)
            else:
                api.register_blueprint(module.blp)
        cli = _optional(f"network.{domain}.cli")
        if cli is not None:
            for command in cli.commands:
                app.cli.add_command(command)

    from network import portal

    # The web app for people; it replaces the session interface with one that opens sessions on its paths only.
    portal.register(app)

    from network import cli as base_cli

    for command in base_cli.commands:
        app.cli.add_command(command)

    @app.get("/api/docs/assets/<path:filename>")
    def swagger_assets(filename: str) -> Any:
        """Serve Swagger UI's static files."""
        import swagger_ui_bundle
        from flask import send_from_directory

        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)

    @app.get("/stripe/onboarding/<any(return, refresh):step>")
    def stripe_onboarding_landing(step: str) -> Any:
        """Where Stripe sends a partner back after (or instead of) onboarding."""
        if step == "return":
            text = "Thank you: Stripe has your details. Payouts start once Stripe enables your account."
        else:
            text = "This onboarding link has expired: ask for a new one (POST /api/v1/partners/{id}/stripe/onboarding)."
        return text, 200, {"Content-Type": "text/plain; charset=utf-8"}

    if settings.scheduler_in_process and not settings.testing:
        # One-machine use only (a single web worker): job claims keep a second scheduler harmless.
        from network import scheduler

        app.extensions["network.scheduler"] = scheduler.start_in_process(app.extensions["network.db"], settings)

    # /healthz, /readyz and /metrics (network/ops).
    ops_api.register(app, api)
    openapi.document(app, api)
    return app
