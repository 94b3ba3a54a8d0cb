"""The brand console: home, offers, partners, conversions, integration, reports, coupons and customers, at /brand/.

Each module adds its views to the one `brand` blueprint (`common.blp`), registered under the portal's.
"""

from network.portal.brand import conversions, coupons, customers, home, integration, offers, partners, reports
from network.portal.brand.common import blp

__all__ = ["blp", "conversions", "coupons", "customers", "home", "integration", "offers", "partners", "reports"]
