"""HTTP API for dead letters: rows a background writer could not store, with the database's reason."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from network import web
from network.deadletters import service
from network.deadletters.schemas import (
    DeadLetterListArgs,
    DeadLetterListSchema,
    DeadLetterSchema,
    DeadLetterSummarySchema,
    NoArgs,
)
from network.schemas import attrs, page

blp = web.Blueprint("deadletters", __name__, url_prefix="/api/v1", description="Dead letters")
blp.before_request(web.authenticate)


@blp.route("/dead-letters")
class DeadLetters(MethodView):
    @blp.arguments(DeadLetterListArgs, location="query")
    @blp.response(200, DeadLetterListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List rows the writers could not store, oldest first (admin, finance)."""
        rows = service.list_dead_letters(web.session(), web.principal(), **args)
        return page([attrs(r, DeadLetterSchema) for r in rows], args["limit"])


@blp.route("/dead-letters/summary")
class DeadLetterSummary(MethodView):
    @blp.arguments(NoArgs, location="query")
    @blp.response(200, DeadLetterSummarySchema)
    def get(self, _args: dict[str, Any]) -> dict[str, Any]:
        """Count the dead letters of each writer (admin, finance)."""
        found = service.counts(web.session(), web.principal())
        return {"counts": found, "total": sum(found.values())}


@blp.route("/dead-letters/<int:letter_id>")
class DeadLetterItem(MethodView):
    @blp.arguments(NoArgs, location="query")
    @blp.response(200, DeadLetterSchema)
    def get(self, _args: dict[str, Any], letter_id: int) -> dict[str, Any]:
        """Read one dead letter (admin, finance)."""
        return attrs(service.get_dead_letter(web.session(), web.principal(), letter_id), DeadLetterSchema)
