"""Billing brands: the brand ledger (what each brand owes), invoices and their numbers, and collecting them."""
