"""The finance console: payouts awaiting approval and their decisions, payout runs, failed and unknown
payouts, partners' ledgers with adjustments, CSV exports and the audit log (templates in finance/).

Importing the package registers every view on `blp` (mounted under the portal's blueprint at /finance).
"""

from network.portal.finance import invoice_pages, ledger_pages, margin_pages, payout_pages, problem_pages, run_pages
from network.portal.finance.base import blp

__all__ = ["blp", "invoice_pages", "ledger_pages", "margin_pages", "payout_pages", "problem_pages", "run_pages"]
