"""The brand console: home, offers, partners, conversions, integration and reports, at /brand/.

Each module adds its views to the one `brand` blueprint (`common.blp`), registered under the portal's.
"""

from network.portal.brand import billing, conversions, home, integration, offers, partners, reports
from network.portal.brand.common import blp

__all__ = ["billing", "blp", "conversions", "home", "integration", "offers", "partners", "reports"]
