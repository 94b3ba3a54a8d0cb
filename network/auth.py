"""Roles and the principal a request or job acts as; shared by every domain's services."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from network.errors import Forbidden


class Role(enum.StrEnum):
    ADMIN = "admin"
    FINANCE = "finance"
    BRAND = "brand"
    PARTNER = "partner"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: the role of the key or user and, for brand and partner ones, the tenant it is bound to."""

    role: Role
    key_id: int | None = None
    brand_id: int | None = None
    partner_id: int | None = None
    #: The signed-in person, for requests of the web app (key_id is then None).
    user_id: int | None = None

    @property
    def label(self) -> str:
        """Return a short name for audit logs."""
        if self.user_id is not None:
            return f"{self.role.value}:user:{self.user_id}"
        return f"{self.role.value}:{self.key_id}" if self.key_id is not None else f"{self.role.value}:system"


#: What scheduled jobs and the CLI act as.
SYSTEM = Principal(Role.ADMIN)


def require(principal: Principal, *roles: Role) -> None:
    """Raise Forbidden unless the principal has one of `roles`."""
    if principal.role not in roles:
        raise Forbidden(f"the {principal.role.value} role may not do this")
