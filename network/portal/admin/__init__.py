"""The admin console at /admin/: partners and their sign-ups, brands, users, API keys, and what is stuck.

Each module adds its views to the one `admin` blueprint (`common.blp`), registered under the portal's. Every
page goes through the same services as the API, as the signed-in admin.
"""

from network.portal.admin import applications, brands, home, keys, partners, stuck
from network.portal.admin.common import blp

__all__ = ["applications", "blp", "brands", "home", "keys", "partners", "stuck"]
