"""The brand console: home, offers, partners, coupons, customers, conversions, integration, reports and billing, at /brand/.

Each module adds its views to the one `brand` blueprint (`common.blp`), registered under the portal's.
"""

from network.portal.brand import (
    billing,
    conversions,
    coupons,
    customers,
    home,
    integration,
    offers,
    partners,
    reports,
)
from network.portal.brand.common import blp

__all__ = [
    "billing",
    "blp",
    "conversions",
    "coupons",
    "customers",
    "home",
    "integration",
    "offers",
    "partners",
    "reports",
]
