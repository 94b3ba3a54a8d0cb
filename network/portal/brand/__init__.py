"""The brand console: home, offers, partners, conversions, integration, reports and coupons, at /brand/.

Each module adds its views to the one `brand` blueprint (`common.blp`), registered under the portal's.
"""

from network.portal.brand import conversions, coupons, home, integration, offers, partners, reports
from network.portal.brand.common import blp

__all__ = ["blp", "conversions", "coupons", "home", "integration", "offers", "partners", "reports"]
