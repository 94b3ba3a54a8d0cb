"""The operator's view: request ids and JSON logs (logs), /healthz, /readyz and /metrics (api, health, collect).

Wiring: it reads every domain's tables at scrape time. The counters the domains move live in the
shared leaf network/metrics.py, which imports no domain.
"""
