"""Sign-in, sign-up and reset attempts limited by Flask-Limiter, per typed e-mail and per client address.

Flask-Limiter's `init_app` hooks every request of the app (a before_request check, an after_request and a
teardown). Clicks, postbacks and the API must not pay for them, so `install` moves those hooks onto the
portal blueprint: Flask runs a blueprint's hooks for its own (and its children's) requests only.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Flask, request
from flask_limiter import Limiter

#: The limited views: the sign-in and the reset request count per account and per address; a
#: sign-up (whose e-mail may belong to no one yet) per address only.
LIMITED = {
    "portal.account.sign_in": True,
    "portal.account.reset_request": True,
    "portal.account.sign_up": False,
}


def account_key() -> str:
    """The e-mail as typed, normalized and hashed: being limited says nothing about which addresses exist."""
    email = request.form.get("email", "")
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def address_key() -> str:
    """The client's address (the proxy's, when a proxy is not trusted to tell the real one)."""
    return request.remote_addr or "unknown"


def install(app: Flask, *, storage_uri: str, per_account: str, per_address: str, blueprint: str) -> Limiter:
    """Limit the LIMITED views' POSTs on `app` with a limiter of its own, hooked on `blueprint` only."""
    limiter = Limiter(address_key, storage_uri=storage_uri, strategy="moving-window")
    hooks: list[dict[Any, list[Any]]] = [app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs]
    app_wide = [list(hook.get(None, [])) for hook in hooks]
    limiter.init_app(app)
    for hook, kept in zip(hooks, app_wide, strict=True):
        added = hook.get(None, [])[len(kept) :]
        hook[None] = kept
        hook.setdefault(blueprint, []).extend(added)
    for endpoint, per_email in LIMITED.items():
        view: Any = app.view_functions[endpoint]
        if per_email:
            view = limiter.limit(per_account, key_func=account_key, scope="account", methods=["POST"])(view)
        view = limiter.limit(per_address, key_func=address_key, scope="address", methods=["POST"])(view)
        app.view_functions[endpoint] = view
    return limiter
