"""The billing domain's tables as Core objects, for the bulk statements of an invoice build."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from network.billing.models import (
    BrandBilling,
    BrandEntry,
    Invoice,
    InvoiceCounter,
    InvoiceItem,
    InvoiceItemRelease,
    InvoiceLine,
)

brand_entries = cast(Table, BrandEntry.__table__)
invoices = cast(Table, Invoice.__table__)
invoice_items = cast(Table, InvoiceItem.__table__)
invoice_item_releases = cast(Table, InvoiceItemRelease.__table__)
invoice_lines = cast(Table, InvoiceLine.__table__)
invoice_counters = cast(Table, InvoiceCounter.__table__)
brand_billing = cast(Table, BrandBilling.__table__)
