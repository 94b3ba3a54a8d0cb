"""What the finance console's views share: the blueprint, who may open it, paging links, money in words.

Finance is not a tenant: a finance user (or an admin) sees every partner's money. Brand and partner users
get 404 on every page and download of the console, as the API answers them for another tenant's object
(RELIABILITY.md case 31): the console does not tell them it exists.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from flask import Blueprint, Response, abort, current_app, request, url_for
from flask_login import current_user

from network import money
from network.auth import Role

blp = Blueprint("finance", __name__, url_prefix="/finance")

#: Rows per page of every list of the console.
PAGE = 50
#: The roles the console is for: finance, and the admin who may do everything.
ROLES = (Role.FINANCE, Role.ADMIN)

F = TypeVar("F", bound=Callable[..., Any])


def finance_required(view: F) -> F:
    """Let signed-in finance users and admins in; send others to sign in, and answer brand and partner users 404."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
        if Role(current_user.role) not in ROLES:
            abort(404)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def is_htmx() -> bool:
    """Say whether htmx sent the request (it then swaps in a block of the page, not the whole page)."""
    return request.headers.get("HX-Request") == "true"


def digits(name: str) -> int | None:
    """Return the query argument `name` as a positive integer, or None when it is absent or not ASCII digits."""
    value = request.args.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and 0 < len(value) < 19 else None


def next_link(endpoint: str, last_id: int | None, cursor: str = "after", **values: Any) -> str | None:
    """The link to the next page after the row `last_id` (None on the last page), keeping the other arguments."""
    if last_id is None:
        return None
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != cursor and v}
    return url_for(endpoint, **{**args, **values, cursor: last_id})


def last_id_if_full(rows: Sequence[Any], limit: int = PAGE) -> int | None:
    """The id of a full page's last row (there may be more), else None."""
    return rows[-1].id if len(rows) >= limit else None


def amount(minor: int, currency: str) -> str:
    """An amount as people read it: "12.50 USD"."""
    return f"{money.format_amount(minor, currency)} {currency}"


def sums_in_words(sums: dict[str, int]) -> str:
    """Amounts per currency in one phrase: "120.00 USD and 40.00 EUR" ("nothing" when empty)."""
    parts = [amount(minor, currency) for currency, minor in sorted(sums.items())]
    if not parts:
        return "nothing"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def csv_download(name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    """A CSV attachment (`no-store` like every page); callers neutralise free text (CSV injection) themselves."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
