"""What the admin console's views share: its blueprint and the admin-only gate.

Any other signed-in role gets 404 on every admin page, as for a path that does not exist: the console's
paths are not advertised to brands, partners or finance. Visitors are sent to sign in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, abort, current_app, request
from flask_login import current_user

from network.auth import Role

blp = Blueprint("admin", __name__, url_prefix="/admin")

F = TypeVar("F", bound=Callable[..., Any])


def admin_only(view: F) -> F:
    """Let only signed-in admins in: visitors are sent to sign in, any other role gets 404."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
        if Role(current_user.role) is not Role.ADMIN:
            abort(404)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def int_arg(name: str) -> int | None:
    """A positive integer query argument, or None when absent or not a number."""
    value = request.args.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None


def choice_arg(name: str, allowed: Any) -> str | None:
    """A query argument among `allowed`, or None."""
    value = request.args.get(name) or None
    return value if value in allowed else None
