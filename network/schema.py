"""Import every model so Base.metadata is complete (for alembic and the app)."""

from network.accounts import models as accounts_models
from network.billing import models as billing_models
from network.conversions import models as conversions_models
from network.customers import models as customers_models
from network.db import Base
from network.deadletters import models as deadletters_models
from network.deliveries import models as deliveries_models
from network.offers import models as offers_models
from network.partners import models as partners_models
from network.payouts import models as payouts_models
from network.rollups import models as rollups_models
from network.tracking import models as tracking_models

metadata = Base.metadata

__all__ = [
    "accounts_models",
    "billing_models",
    "conversions_models",
    "customers_models",
    "deadletters_models",
    "deliveries_models",
    "metadata",
    "offers_models",
    "partners_models",
    "payouts_models",
    "rollups_models",
    "tracking_models",
]
